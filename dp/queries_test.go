package dp

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

func TestQueriesBought(t *testing.T) {
	for _, tc := range []struct{ eps, delta, rho float64 }{
		{1, 1e-6, 1e-4},
		{1, 1e-6, 1e-2},
		{3, 1e-9, 1e-3},
		{0.5, 1e-5, 5e-5},
		{1, 1e-6, 10}, // one query costs more than the whole budget
	} {
		zcdp, basic, err := QueriesBought(tc.eps, tc.delta, tc.rho)
		if err != nil {
			t.Fatalf("QueriesBought(%v, %v, %v): %v", tc.eps, tc.delta, tc.rho, err)
		}
		// zcdp is the integer division of the budget's capacity by the
		// per-query cost, in Rho units.
		budget, _ := RhoForBudget(tc.eps, tc.delta)
		capacity, _ := RhoUnitsFloor(budget)
		cost, _ := RhoUnitsCeil(tc.rho)
		if want := int(capacity / cost); zcdp != want {
			t.Errorf("%+v: zcdp = %d, want %d", tc, zcdp, want)
		}
		// zcdp queries fit the budget through the tight conversion.
		if zcdp > 0 {
			if d, _ := ZCDPToDelta(float64(zcdp)*tc.rho, tc.eps); d > tc.delta {
				t.Errorf("%+v: %d queries give delta %v > %v", tc, zcdp, d, tc.delta)
			}
		}
		// basic is the largest k with k * epsilon_q(delta/k) <= epsilon.
		fits := func(k int) bool {
			e, err := ZCDPToEpsilon(tc.rho, tc.delta/float64(k))
			return err == nil && float64(k)*e <= tc.eps
		}
		if basic > 0 && !fits(basic) {
			t.Errorf("%+v: basic = %d does not fit", tc, basic)
		}
		if fits(basic + 1) {
			t.Errorf("%+v: basic = %d, but %d also fits", tc, basic, basic+1)
		}
		// zCDP composition buys at least as many queries as basic
		// composition once more than one query is bought.
		if basic > 1 && zcdp < basic {
			t.Errorf("%+v: zcdp %d < basic %d", tc, zcdp, basic)
		}
		t.Logf("eps %v delta %v rho/query %v: zCDP %d queries, basic composition %d", tc.eps, tc.delta, tc.rho, zcdp, basic)
	}
	for _, bad := range [][3]float64{{0, 1e-6, 1e-3}, {1, 0, 1e-3}, {1, 1e-6, 0}, {1, 1e-6, -1}, {1, 1e-6, math.NaN()}} {
		if _, _, err := QueriesBought(bad[0], bad[1], bad[2]); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("QueriesBought(%v): err = %v, want ErrInvalidParameter", bad, err)
		}
	}
}

// ExampleQueriesBought prints the kind of table the documentation shows: how
// many queries at a given sigma (sensitivity 1) a budget of epsilon = 1,
// delta = 1e-6 buys.
func ExampleQueriesBought() {
	for _, sigma := range []float64{10, 30, 100} {
		rho, _ := GaussianRho(1, sigma)
		zcdp, basic, _ := QueriesBought(1, 1e-6, rho)
		fmt.Printf("sigma %3.0f: rho %.6f per query, %5d queries under zCDP, %3d under basic composition\n", sigma, rho, zcdp, basic)
	}
	// Output:
	// sigma  10: rho 0.005000 per query,     4 queries under zCDP,   2 under basic composition
	// sigma  30: rho 0.000556 per query,    43 queries under zCDP,   6 under basic composition
	// sigma 100: rho 0.000050 per query,   487 queries under zCDP,  22 under basic composition
}

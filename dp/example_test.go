package dp_test

import (
	"fmt"

	"github.com/hegate/hegate/dp"
)

// The table in docs/privacy.md: how many queries an (epsilon, 1e-5) budget
// buys when each query is a Gaussian mechanism with the noise of a
// (per-query epsilon, 1e-5) guarantee, under zCDP composition (what hegate
// counts) and under basic composition of approximate DP.
func ExampleQueriesBought() {
	const delta = 1e-5
	fmt.Println("budget  query eps  rho/query    zCDP  basic")
	for _, budget := range []float64{1, 4, 8, 16} {
		for _, qeps := range []float64{0.05, 0.1, 0.5} {
			rho, _ := dp.RhoForBudget(qeps, delta)
			z, b, _ := dp.QueriesBought(budget, delta, rho)
			fmt.Printf("%6g  %9g  %9.4g  %6d  %5d\n", budget, qeps, rho, z, b)
		}
	}
	// Output:
	// budget  query eps  rho/query    zCDP  basic
	//      1       0.05  0.0001211     252     16
	//      1        0.1   0.000433      70      8
	//      1        0.5   0.008506       3      1
	//      4       0.05  0.0001211    3082     60
	//      4        0.1   0.000433     861     31
	//      4        0.5   0.008506      43      7
	//      8       0.05  0.0001211   10158    117
	//      8        0.1   0.000433    2840     61
	//      8        0.5   0.008506     144     13
	//     16       0.05  0.0001211   31445    226
	//     16        0.1   0.000433    8791    119
	//     16        0.5   0.008506     447     26
}

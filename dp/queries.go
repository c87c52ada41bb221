package dp

import (
	"fmt"
)

// maxQueriesCounted bounds the counts QueriesBought returns.
const maxQueriesCounted = 1 << 40

// QueriesBought returns how many queries of rhoPerQuery-zCDP each an
// (epsilon, delta)-DP budget pays for, in two ways:
//
//   - zcdp: under zCDP composition, as a budget kept in Rho units grants
//     them: RhoUnitsFloor(RhoForBudget(epsilon, delta)) divided by
//     RhoUnitsCeil(rhoPerQuery), rounded down.
//   - basic: under basic composition of approximate DP (k mechanisms that
//     are each (epsilon_q, delta_q)-DP are (k epsilon_q, k delta_q)-DP),
//     spending the budget evenly: the largest k such that each query is
//     (epsilon/k, delta/k)-DP, where a query's guarantee at delta_q = delta/k
//     is epsilon_q = ZCDPToEpsilon(rhoPerQuery, delta/k), the tight
//     conversion of its zCDP guarantee (which is what holds for the discrete
//     Gaussian).
//
// epsilon and rhoPerQuery must be positive and finite, 0 < delta < 1. Counts
// are capped at 2^40.
func QueriesBought(epsilon, delta, rhoPerQuery float64) (zcdp int, basic int, err error) {
	if err := checkPositive("rho per query", rhoPerQuery); err != nil {
		return 0, 0, err
	}
	budget, err := RhoForBudget(epsilon, delta)
	if err != nil {
		return 0, 0, err
	}
	capacity, err := RhoUnitsFloor(budget)
	if err != nil {
		return 0, 0, err
	}
	cost, err := RhoUnitsCeil(rhoPerQuery)
	if err != nil {
		return 0, 0, err
	}
	zcdp = int(min(int64(capacity/cost), maxQueriesCounted))

	// k * epsilon_q(delta/k) increases with k; find the largest k within
	// epsilon by doubling, then bisection.
	fits := func(k int) (bool, error) {
		e, err := ZCDPToEpsilon(rhoPerQuery, delta/float64(k))
		if err != nil {
			return false, fmt.Errorf("dp: per-query epsilon for %d queries: %w", k, err)
		}
		return float64(k)*e <= epsilon, nil
	}
	ok, err := fits(1)
	if err != nil || !ok {
		return zcdp, 0, err
	}
	lo, hi := 1, 2 // fits(lo), and hi is the first candidate not yet known
	for {
		ok, err := fits(hi)
		if err != nil {
			return 0, 0, err
		}
		if !ok {
			break
		}
		if hi >= maxQueriesCounted {
			return zcdp, maxQueriesCounted, nil
		}
		lo, hi = hi, hi*2
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := fits(mid)
		if err != nil {
			return 0, 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return zcdp, lo, nil
}

package dp

import (
	"fmt"
	"math"
)

// Conversions from rho-zCDP to (epsilon, delta)-differential privacy.
//
// Every function here that optimises over the Renyi order alpha evaluates
// its bound at the alpha it finds, and any alpha > 1 gives a valid bound, so
// an imprecise search can only make the answer more conservative, never
// unsound. The search itself is bisection on the sign of a derivative that
// changes sign exactly once; the functions involved are smooth and convex in
// the region searched.

// ZCDPToEpsilonSimple returns epsilon = rho + 2 sqrt(rho ln(1/delta)): a
// rho-zCDP mechanism is (epsilon, delta)-DP for every 0 < delta < 1 (Bun and
// Steinke 2016, Proposition 1.3). It is looser than ZCDPToEpsilon.
func ZCDPToEpsilonSimple(rho, delta float64) (float64, error) {
	if err := checkNonNegative("rho", rho); err != nil {
		return 0, err
	}
	if err := checkDelta(delta); err != nil {
		return 0, err
	}
	return rho + 2*math.Sqrt(rho*-math.Log(delta)), nil
}

// Bisection settings for the search over the Renyi order alpha = 1 + beta.
const (
	minBeta          = 1e-300 // alpha - 1 is never taken below this
	bisectIterations = 200    // more than enough to exhaust float64 precision
)

// ZCDPToDelta returns the delta of the tight conversion of Canonne, Kamath
// and Steinke 2020 (Proposition 12 / Corollary 13): a rho-zCDP mechanism is
// (epsilon, delta)-DP for
//
//	delta = inf over alpha > 1 of exp((alpha-1)(alpha rho - epsilon)) / (alpha-1) * (1 - 1/alpha)^alpha.
//
// rho and epsilon must be non-negative and finite. The result is in [0, 1].
func ZCDPToDelta(rho, epsilon float64) (float64, error) {
	if err := checkNonNegative("rho", rho); err != nil {
		return 0, err
	}
	if err := checkNonNegative("epsilon", epsilon); err != nil {
		return 0, err
	}
	if rho == 0 {
		return 0, nil
	}
	// With beta = alpha - 1 the log of the bound is
	//   f(beta) = beta((1+beta) rho - epsilon) + beta ln(beta) - (1+beta) ln(1+beta)
	//           = beta((1+beta) rho - epsilon) - beta ln(1+1/beta) - ln(1+beta),
	// the second form free of the cancellation that ruins the first for
	// large beta, and f'(beta) = (2 beta + 1) rho - epsilon - ln(1+1/beta),
	// which increases from -inf (beta -> 0) to +inf and is positive at
	// beta = (epsilon+1)/(2 rho) + 1.
	logDelta := func(beta float64) float64 {
		return beta*((1+beta)*rho-epsilon) - beta*math.Log1p(1/beta) - math.Log1p(beta)
	}
	slope := func(beta float64) float64 {
		return (2*beta+1)*rho - epsilon - math.Log1p(1/beta)
	}
	hi := (epsilon+1)/(2*rho) + 1
	beta := bisectIncreasingLog(slope, minBeta, hi)
	ld := math.Min(logDelta(beta.lo), logDelta(beta.hi))
	if ld >= 0 || math.IsNaN(ld) {
		return 1, nil
	}
	return math.Exp(ld), nil
}

// ZCDPToEpsilon returns the smallest epsilon for which the tight conversion
// of Canonne, Kamath and Steinke 2020 (Corollary 13) makes a rho-zCDP
// mechanism (epsilon, delta)-DP: the inverse of ZCDPToDelta in epsilon.
//
// It minimises over alpha the epsilon that Corollary 13 gives at each fixed
// alpha,
//
//	epsilon(alpha) = alpha rho + (ln(1/delta) + (alpha-1) ln(1-1/alpha) - ln(alpha)) / (alpha-1),
//
// which is the same as inverting ZCDPToDelta by bisection on epsilon but
// more accurate. rho must be non-negative and finite, 0 < delta < 1.
func ZCDPToEpsilon(rho, delta float64) (float64, error) {
	if err := checkNonNegative("rho", rho); err != nil {
		return 0, err
	}
	if err := checkDelta(delta); err != nil {
		return 0, err
	}
	if rho == 0 {
		return 0, nil
	}
	logInvDelta := -math.Log(delta)
	// With beta = alpha - 1,
	//   epsilon(beta) = (1+beta) rho + ln(1/delta)/beta + ln(beta) - (1+beta) ln(1+beta)/beta
	//                 = (1+beta) rho + ln(1/delta)/beta - ln(1+1/beta) - ln(1+beta)/beta
	// (the second form avoids cancellation at large beta); its derivative
	// has the sign of rho + (ln(1+beta) - ln(1/delta)) / beta^2, which changes
	// sign once, and is positive at beta = sqrt(ln(1/delta)/rho) + 1.
	eps := func(beta float64) float64 {
		return (1+beta)*rho + logInvDelta/beta - math.Log1p(1/beta) - math.Log1p(beta)/beta
	}
	slope := func(beta float64) float64 {
		return rho + (math.Log1p(beta)-logInvDelta)/(beta*beta)
	}
	hi := math.Sqrt(logInvDelta/rho) + 1
	beta := bisectIncreasingLog(slope, minBeta, hi)
	e := math.Min(eps(beta.lo), eps(beta.hi))
	if math.IsNaN(e) {
		return 0, fmt.Errorf("dp: converting rho = %v, delta = %v to epsilon did not converge", rho, delta)
	}
	return math.Max(e, 0), nil
}

// RhoForBudget returns the largest rho whose tight conversion (ZCDPToDelta)
// stays within the (epsilon, delta) budget, less a relative 1e-10 safety
// margin for float64 rounding (so within 2e-10 of the optimum): a
// mechanism that is rho-zCDP for the returned rho, or any smaller one, is
// (epsilon, delta)-DP. epsilon must be positive and finite, 0 < delta < 1.
func RhoForBudget(epsilon, delta float64) (float64, error) {
	if err := checkPositive("epsilon", epsilon); err != nil {
		return 0, err
	}
	if err := checkDelta(delta); err != nil {
		return 0, err
	}
	fits := func(rho float64) bool {
		d, err := ZCDPToDelta(rho, epsilon)
		return err == nil && d <= delta
	}
	// Start from the inverse of the simple bound (the tight conversion is
	// at least as good in every case we know of; if not, halve until it
	// fits) and bracket the answer.
	l := -math.Log(delta)
	lo := math.Sqrt(l+epsilon) - math.Sqrt(l)
	lo *= lo
	for i := 0; !fits(lo); i++ {
		if i == 2000 || lo == 0 {
			return 0, fmt.Errorf("dp: no rho > 0 fits the budget epsilon = %v, delta = %v", epsilon, delta)
		}
		lo /= 2
	}
	hi := lo * 2
	for i := 0; fits(hi); i++ {
		if i == 2000 || math.IsInf(hi, 0) {
			return 0, fmt.Errorf("dp: budget epsilon = %v, delta = %v allows unbounded rho", epsilon, delta)
		}
		lo, hi = hi, hi*2
	}
	for i := 0; i < bisectIterations && hi-lo > 1e-13*lo; i++ {
		mid := math.Sqrt(lo * hi)
		if mid <= lo || mid >= hi {
			break
		}
		if fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo * (1 - safetyMargin), nil
}

// safetyMargin is the relative amount by which the calibration functions
// (RhoForBudget, AnalyticGaussianSigma) move their answer to the safe side,
// to absorb float64 rounding in the bounds they invert (about 1e-13
// relative).
const safetyMargin = 1e-10

// SigmaForQuery returns the smallest Gaussian standard deviation (to a
// relative 1e-10, rounded up) at which one query of L2 sensitivity Delta is
// (epsilon, delta)-DP through zCDP: sigma = Delta / sqrt(2 rho) with
// rho = RhoForBudget(epsilon, delta). It holds for the discrete Gaussian
// sampled by this package as well as for the continuous one, and it is the
// sigma whose rho a zCDP budget is charged; for the continuous Gaussian alone
// the slightly smaller AnalyticGaussianSigma is also valid.
func SigmaForQuery(sensitivity, epsilon, delta float64) (float64, error) {
	if err := checkPositive("sensitivity", sensitivity); err != nil {
		return 0, err
	}
	rho, err := RhoForBudget(epsilon, delta)
	if err != nil {
		return 0, err
	}
	return SigmaForRho(sensitivity, rho)
}

// bracket is an interval that contains a root.
type bracket struct{ lo, hi float64 }

// bisectIncreasingLog finds where an increasing function f crosses zero in
// [lo, hi], bisecting in log space. If f does not change sign in the
// interval, the end nearer to the crossing is returned as both ends.
func bisectIncreasingLog(f func(float64) float64, lo, hi float64) bracket {
	if f(lo) >= 0 {
		return bracket{lo, lo}
	}
	if f(hi) <= 0 {
		return bracket{hi, hi}
	}
	for i := 0; i < bisectIterations; i++ {
		mid := math.Sqrt(lo) * math.Sqrt(hi) // avoids overflow of lo*hi
		if mid <= lo || mid >= hi {
			break
		}
		if f(mid) < 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return bracket{lo, hi}
}

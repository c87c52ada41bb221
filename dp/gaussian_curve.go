package dp

import (
	"fmt"
	"math"
)

// The exact privacy curve of one (continuous) Gaussian mechanism, from Balle
// and Wang, "Improving the Gaussian Mechanism for Differential Privacy:
// Analytical Calibration and Optimal Denoising", ICML 2018, Theorem 8. It
// depends on sensitivity and sigma only through their ratio.
//
// These curves are for the continuous Gaussian. The discrete Gaussian's
// curve (CKS 2020, Theorem 7) is very close to it but not proven to be
// below it; account for the discrete Gaussian through zCDP (GaussianRho,
// ZCDPToDelta, SigmaForQuery).

// GaussianDelta returns the smallest delta for which adding N(0, sigma^2)
// noise to a query of L2 sensitivity Delta is (epsilon, delta)-DP:
//
//	delta = Phi(Delta/(2 sigma) - epsilon sigma/Delta) - e^epsilon Phi(-Delta/(2 sigma) - epsilon sigma/Delta).
//
// sensitivity and sigma must be positive and finite, epsilon non-negative
// (+Inf gives 0).
func GaussianDelta(sensitivity, sigma, epsilon float64) (float64, error) {
	if err := checkPositive("sensitivity", sensitivity); err != nil {
		return 0, err
	}
	if err := checkPositive("sigma", sigma); err != nil {
		return 0, err
	}
	if math.IsInf(epsilon, 1) {
		return 0, nil
	}
	if err := checkNonNegative("epsilon", epsilon); err != nil {
		return 0, err
	}
	return gaussianDelta(sensitivity/sigma, epsilon), nil
}

// gaussianDelta is Theorem 8 for mu = sensitivity/sigma.
func gaussianDelta(mu, epsilon float64) float64 {
	a := mu/2 - epsilon/mu
	b := -mu/2 - epsilon/mu
	d := normalCDF(a) - math.Exp(epsilon+logNormalCDF(b))
	return math.Min(math.Max(d, 0), 1)
}

// GaussianEpsilon returns the smallest epsilon (to a relative 1e-13, rounded
// up) at which adding N(0, sigma^2) noise to a query of L2 sensitivity Delta
// is (epsilon, delta)-DP: the inverse of GaussianDelta. 0 < delta < 1.
func GaussianEpsilon(sensitivity, sigma, delta float64) (float64, error) {
	if err := checkPositive("sensitivity", sensitivity); err != nil {
		return 0, err
	}
	if err := checkPositive("sigma", sigma); err != nil {
		return 0, err
	}
	if err := checkDelta(delta); err != nil {
		return 0, err
	}
	mu := sensitivity / sigma
	if gaussianDelta(mu, 0) <= delta {
		return 0, nil
	}
	// delta(epsilon) decreases from delta(0) > delta to 0.
	lo, hi := 0.0, 1.0
	for i := 0; gaussianDelta(mu, hi) > delta; i++ {
		if i == 1100 {
			return 0, fmt.Errorf("dp: no finite epsilon gives delta = %v at sigma/sensitivity = %v", delta, 1/mu)
		}
		lo, hi = hi, hi*2
	}
	for i := 0; i < bisectIterations && hi-lo > 1e-14*hi; i++ {
		mid := lo + (hi-lo)/2
		if gaussianDelta(mu, mid) > delta {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi, nil
}

// AnalyticGaussianSigma returns the smallest sigma (to a relative 1e-10,
// rounded up for float64 safety) at which adding N(0, sigma^2) noise to a query of L2
// sensitivity Delta is (epsilon, delta)-DP: the analytic Gaussian mechanism
// of Balle and Wang 2018 (Algorithm 1, solved here by bisection on Theorem
// 8). It is valid for the continuous Gaussian; see SigmaForQuery for the
// discrete one. sensitivity must be positive, epsilon non-negative, both
// finite, 0 < delta < 1.
func AnalyticGaussianSigma(sensitivity, epsilon, delta float64) (float64, error) {
	if err := checkPositive("sensitivity", sensitivity); err != nil {
		return 0, err
	}
	if err := checkNonNegative("epsilon", epsilon); err != nil {
		return 0, err
	}
	if err := checkDelta(delta); err != nil {
		return 0, err
	}
	// delta decreases as s = sigma/sensitivity grows: from 1 (s -> 0) to 0.
	fits := func(s float64) bool { return gaussianDelta(1/s, epsilon) <= delta }
	lo, hi := 1.0, 1.0
	for i := 0; !fits(hi); i++ {
		if i == 1100 {
			return 0, fmt.Errorf("dp: no finite sigma gives (%v, %v)-DP", epsilon, delta)
		}
		lo, hi = hi, hi*2
	}
	for i := 0; fits(lo); i++ {
		if i == 1100 {
			return 0, fmt.Errorf("dp: sigma for (%v, %v)-DP is below the float64 range", epsilon, delta)
		}
		hi, lo = lo, lo/2
	}
	for i := 0; i < bisectIterations && hi-lo > 1e-14*hi; i++ {
		mid := lo + (hi-lo)/2
		if fits(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return sensitivity * hi * (1 + safetyMargin), nil
}

// normalCDF is the standard normal distribution function Phi.
func normalCDF(x float64) float64 {
	return 0.5 * math.Erfc(-x/math.Sqrt2)
}

// logNormalCDF is ln Phi(x), accurate also where Phi(x) underflows.
func logNormalCDF(x float64) float64 {
	switch {
	case x > 0:
		return math.Log1p(-0.5 * math.Erfc(x/math.Sqrt2))
	case x > -37:
		return math.Log(0.5 * math.Erfc(-x/math.Sqrt2))
	}
	// Phi(x) = phi(x)/|x| * (1 - 1/x^2 + 3/x^4 - 15/x^6 + ...); for
	// x <= -37 ten terms leave an error far below float64 precision.
	z := 1 / (x * x)
	sum, term := 1.0, 1.0
	for k := 1; k <= 10; k++ {
		term *= -float64(2*k-1) * z
		sum += term
	}
	return -x*x/2 - math.Log(-x) - 0.5*math.Log(2*math.Pi) + math.Log(sum)
}

package dp

import (
	"fmt"
	"math"
)

// GaussianRho returns the zCDP parameter rho = Delta^2 / (2 sigma^2) of adding
// Gaussian noise of standard deviation sigma to a query of L2 sensitivity
// Delta (Bun and Steinke, "Concentrated Differential Privacy:
// Simplifications, Extensions, and Lower Bounds", TCC 2016, Proposition 1.6).
//
// The discrete Gaussian N_Z(0, sigma^2) added to an integer-valued query, or
// to a vector of them with L2 sensitivity Delta, has the same rho (Canonne,
// Kamath and Steinke 2020, Theorems 4 and 14). Both arguments must be
// positive and finite.
func GaussianRho(sensitivity, sigma float64) (float64, error) {
	if err := checkPositive("sensitivity", sensitivity); err != nil {
		return 0, err
	}
	if err := checkPositive("sigma", sigma); err != nil {
		return 0, err
	}
	r := sensitivity / sigma
	return r * r / 2, nil
}

// SigmaForRho returns the standard deviation sigma = Delta / sqrt(2 rho) at
// which the Gaussian mechanism on a query of L2 sensitivity Delta is
// rho-zCDP: the inverse of GaussianRho. Both arguments must be positive and
// finite.
func SigmaForRho(sensitivity, rho float64) (float64, error) {
	if err := checkPositive("sensitivity", sensitivity); err != nil {
		return 0, err
	}
	if err := checkPositive("rho", rho); err != nil {
		return 0, err
	}
	return sensitivity / math.Sqrt(2*rho), nil
}

// ComposeRho returns the zCDP parameter of k mechanisms that are each
// rho-zCDP, run on the same data and chosen adaptively: k*rho (Bun and
// Steinke 2016, Lemma 1.7). k must be non-negative.
func ComposeRho(rho float64, k int) (float64, error) {
	if err := checkNonNegative("rho", rho); err != nil {
		return 0, err
	}
	if k < 0 {
		return 0, fmt.Errorf("%w: number of queries must be non-negative, got %d", ErrInvalidParameter, k)
	}
	return float64(k) * rho, nil
}

package dp

import (
	"fmt"
	"math/big"
	"strings"
)

// SigmaToLattice returns (sigma/granularity)^2 exactly: the sigma^2 to pass to
// DiscreteGaussian so that the released noise k*granularity, with
// k ~ N_Z(0, (sigma/granularity)^2), has variance at most sigma^2 (the
// variance of N_Z(0, s^2) is below s^2, as CKS 2020 prove) and within a
// relative 1e-9 of it once sigma/granularity >= 2.
//
// The privacy of the release is that of the discrete Gaussian on the lattice
// granularity*Z: for a query whose values lie on that lattice (round them to
// it before adding noise) and whose L2 sensitivity is Delta, it is
// rho-zCDP with rho = Delta^2 / (2 sigma^2) (CKS 2020, Theorems 4 and 14), the
// same as GaussianRho(Delta, sigma).
//
// Both arguments must be positive.
func SigmaToLattice(sigma, granularity *big.Rat) (*big.Rat, error) {
	if sigma == nil || sigma.Sign() <= 0 {
		return nil, fmt.Errorf("%w: sigma must be positive, got %s", ErrInvalidParameter, ratString(sigma))
	}
	if granularity == nil || granularity.Sign() <= 0 {
		return nil, fmt.Errorf("%w: granularity must be positive, got %s", ErrInvalidParameter, ratString(granularity))
	}
	r := new(big.Rat).Quo(sigma, granularity)
	return r.Mul(r, r), nil
}

// ParseRat parses an exact decimal ("12.5", "1e-3") or fraction ("1/3") into
// a rational. Unlike big.Rat.SetString it returns an error with context and
// refuses inputs longer than 1000 characters.
func ParseRat(s string) (*big.Rat, error) {
	const maxLen = 1000
	if len(s) > maxLen {
		return nil, fmt.Errorf("%w: number of %d characters is longer than %d", ErrInvalidParameter, len(s), maxLen)
	}
	if strings.ContainsAny(s, "xXpP") {
		return nil, fmt.Errorf("%w: cannot parse %q: only decimal numbers and fractions are accepted", ErrInvalidParameter, s)
	}
	// Exponents are refused beyond a few hundred digits: "1e1000000000"
	// would otherwise allocate a huge integer.
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		var exp int
		if _, err := fmt.Sscan(s[i+1:], &exp); err != nil || exp > 400 || exp < -400 {
			return nil, fmt.Errorf("%w: cannot parse %q as a number: exponent out of [-400, 400]", ErrInvalidParameter, s)
		}
	}
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok {
		return nil, fmt.Errorf("%w: cannot parse %q as a decimal or fraction", ErrInvalidParameter, s)
	}
	return r, nil
}

func ratString(r *big.Rat) string {
	if r == nil {
		return "nil"
	}
	return r.RatString()
}

package dp

import (
	"fmt"
	"math/big"
	"math/bits"
)

// gaussianParams are the integers CKS 2020 Algorithm 3 needs for one sigma^2,
// computed once and reused for every draw.
//
// With sigma^2 = p/q in lowest terms and t = floor(sigma) + 1, the rejection
// step accepts a Laplace draw Y with probability exp(-gamma) where
//
//	gamma = (|Y| - sigma^2/t)^2 / (2 sigma^2) = (|Y| q t - p)^2 / (2 p q t^2).
type gaussianParams struct {
	sigma2 big.Rat // the sigma^2 these parameters are for
	t      uint64  // floor(sigma) + 1, the Laplace scale
	p, qt  big.Int // p and q*t
	den    big.Int // 2 p q t^2

	// The same numbers as uint64 when they fit (fits), for the fast path.
	fits             bool
	p64, qt64, den64 uint64
	a, a2            big.Int // scratch for the big path
}

// gaussianCache remembers the parameters of the last sigma^2 a Sampler saw.
type gaussianCache struct {
	last *gaussianParams
}

func newGaussianParams(sigma2 *big.Rat) *gaussianParams {
	g := &gaussianParams{}
	g.sigma2.Set(sigma2)
	p, q := sigma2.Num(), sigma2.Denom()
	// floor(sigma) = floor(sqrt(floor(sigma^2))).
	var fl big.Int
	fl.Quo(p, q)
	fl.Sqrt(&fl)
	g.t = fl.Uint64() + 1 // sigma^2 <= 2^112, so floor(sigma) <= 2^56
	var t big.Int
	t.SetUint64(g.t)
	g.p.Set(p)
	g.qt.Mul(q, &t)
	g.den.Mul(&g.qt, &t)
	g.den.Mul(&g.den, &g.p)
	g.den.Lsh(&g.den, 1)
	if g.p.IsUint64() && g.qt.IsUint64() && g.den.IsUint64() {
		g.fits = true
		g.p64, g.qt64, g.den64 = g.p.Uint64(), g.qt.Uint64(), g.den.Uint64()
	}
	return g
}

// params returns the Algorithm 3 parameters for sigma2, reusing the cached
// ones when sigma2 has not changed.
func (c *gaussianCache) params(sigma2 *big.Rat) *gaussianParams {
	// Both rationals are in lowest terms, so they are equal exactly when
	// numerators and denominators are; comparing those does not allocate.
	if c.last == nil || c.last.sigma2.Num().Cmp(sigma2.Num()) != 0 || c.last.sigma2.Denom().Cmp(sigma2.Denom()) != 0 {
		c.last = newGaussianParams(sigma2)
	}
	return c.last
}

func checkSigma2(sigma2 *big.Rat) error {
	return checkRational("discrete Gaussian sigma^2", sigma2, maxGaussianSigma2Log2)
}

// DiscreteGaussian returns a draw from the discrete Gaussian N_Z(0, sigma2)
// on the integers: P[X = x] is proportional to exp(-x^2 / (2 sigma2)). It is
// CKS 2020 Algorithm 3; the expected number of rejection rounds is below 2.
// sigma2 must be positive and at most MaxGaussianSigma2.
//
// To release real-valued noise of standard deviation sigma at granularity g,
// pass SigmaToLattice(sigma, g) and multiply the result by g.
func (s *Sampler) DiscreteGaussian(sigma2 *big.Rat) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if err := checkSigma2(sigma2); err != nil {
		return 0, err
	}
	return s.gaussian(s.gauss.params(sigma2))
}

// DiscreteGaussianVector returns n independent draws from N_Z(0, sigma2).
// n may be 0 and at most MaxVectorLength.
func (s *Sampler) DiscreteGaussianVector(sigma2 *big.Rat, n int) ([]int64, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := checkSigma2(sigma2); err != nil {
		return nil, err
	}
	if n < 0 || n > MaxVectorLength {
		return nil, fmt.Errorf("%w: vector length %d is outside [0, %d]", ErrInvalidParameter, n, MaxVectorLength)
	}
	g := s.gauss.params(sigma2)
	out := make([]int64, n)
	for i := range out {
		x, err := s.gaussian(g)
		if err != nil {
			return nil, fmt.Errorf("dp: discrete Gaussian vector element %d: %w", i, err)
		}
		out[i] = x
	}
	return out, nil
}

// gaussian is the loop of Algorithm 3.
func (s *Sampler) gaussian(g *gaussianParams) (int64, error) {
	for {
		y, err := s.laplaceUint64(g.t, 1)
		if err != nil {
			return 0, err
		}
		accept, err := s.gaussianAccept(g, y)
		if err != nil {
			return 0, err
		}
		if accept {
			return y, nil
		}
	}
}

// gaussianAccept draws Bernoulli(exp(-(|y| q t - p)^2 / (2 p q t^2))).
func (s *Sampler) gaussianAccept(g *gaussianParams, y int64) (bool, error) {
	abs := uint64(y)
	if y < 0 {
		abs = uint64(-y) // |y| < 2^63: Laplace draws never reach MinInt64
	}
	if g.fits {
		if hi, a := bits.Mul64(abs, g.qt64); hi == 0 {
			diff := a - g.p64
			if a < g.p64 {
				diff = g.p64 - a
			}
			if hi, sq := bits.Mul64(diff, diff); hi == 0 {
				return s.bernoulliExpUint64(sq, g.den64)
			}
		}
	}
	g.a.SetUint64(abs)
	g.a.Mul(&g.a, &g.qt)
	g.a.Sub(&g.a, &g.p)
	g.a2.Mul(&g.a, &g.a)
	return s.bernoulliExpBig(&g.a2, &g.den)
}

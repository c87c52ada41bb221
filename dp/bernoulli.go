package dp

import (
	"math/big"
	"math/bits"
)

// This file implements Algorithm 1 of Canonne, Kamath and Steinke, "The
// Discrete Gaussian for Differential Privacy" (NeurIPS 2020,
// arXiv:2004.00010): an exact Bernoulli(exp(-gamma)) draw for a rational
// gamma = num/den >= 0, using only integer arithmetic.
//
// For gamma in [0, 1] it draws A_k ~ Bernoulli(gamma/k) for k = 1, 2, ...
// until the first A_k = 0 and returns 1 when that k is odd; the probability
// of that is exp(-gamma). For gamma > 1 it multiplies floor(gamma)
// independent Bernoulli(exp(-1)) draws and one Bernoulli(exp(-(gamma -
// floor(gamma)))) draw, stopping at the first 0.

// bernoulliRatio returns true with probability num/den (num <= den, den > 0).
func (s *Sampler) bernoulliRatio(num, den uint64) (bool, error) {
	u, err := s.src.uniformUint64(den)
	if err != nil {
		return false, err
	}
	return u < num, nil
}

// bernoulliExpMinusOne returns true with probability exp(-1).
func (s *Sampler) bernoulliExpMinusOne() (bool, error) {
	k := uint64(1)
	for {
		// A ~ Bernoulli(1/k): a uniform draw from [0, k) equals 0.
		u, err := s.src.uniformUint64(k)
		if err != nil {
			return false, err
		}
		if u != 0 {
			return k%2 == 1, nil
		}
		k++
	}
}

// bernoulliExpFraction returns true with probability exp(-num/den) for
// 0 <= num <= den, den > 0.
func (s *Sampler) bernoulliExpFraction(num, den uint64) (bool, error) {
	k := uint64(1)
	for {
		var a bool
		if hi, dk := bits.Mul64(den, k); hi == 0 {
			// A ~ Bernoulli(num/(den*k)) in one draw.
			u, err := s.src.uniformUint64(dk)
			if err != nil {
				return false, err
			}
			a = u < num
		} else {
			// den*k overflows: Bernoulli(num/den) AND Bernoulli(1/k) has
			// the same law.
			b1, err := s.bernoulliRatio(num, den)
			if err != nil {
				return false, err
			}
			if b1 {
				u, err := s.src.uniformUint64(k)
				if err != nil {
					return false, err
				}
				b1 = u == 0
			}
			a = b1
		}
		if !a {
			return k%2 == 1, nil
		}
		k++
	}
}

// bernoulliExpUint64 returns true with probability exp(-num/den), den > 0.
func (s *Sampler) bernoulliExpUint64(num, den uint64) (bool, error) {
	whole, frac := num/den, num%den
	for i := uint64(0); i < whole; i++ {
		b, err := s.bernoulliExpMinusOne()
		if err != nil || !b {
			return false, err
		}
	}
	return s.bernoulliExpFraction(frac, den)
}

// bernoulliScratch holds the big integers of bernoulliExpBig.
type bernoulliScratch struct {
	whole, frac, k, dk, u big.Int
	uniform               bigScratch
}

// bernoulliExpBig returns true with probability exp(-num/den) for big
// integers num >= 0, den > 0. It does not modify num or den.
func (s *Sampler) bernoulliExpBig(num, den *big.Int) (bool, error) {
	if num.IsUint64() && den.IsUint64() {
		return s.bernoulliExpUint64(num.Uint64(), den.Uint64())
	}
	sc := &s.bern
	sc.whole.QuoRem(num, den, &sc.frac)
	if sc.whole.IsUint64() {
		for i, n := uint64(0), sc.whole.Uint64(); i < n; i++ {
			b, err := s.bernoulliExpMinusOne()
			if err != nil || !b {
				return false, err
			}
		}
	} else {
		// floor(gamma) >= 2^64: the loop below ends at the first 0, which
		// comes after about 1.6 draws; counting down in big arithmetic
		// keeps the algorithm exact without a bound on gamma.
		for sc.whole.Sign() > 0 {
			b, err := s.bernoulliExpMinusOne()
			if err != nil || !b {
				return false, err
			}
			sc.k.SetUint64(1)
			sc.whole.Sub(&sc.whole, &sc.k)
		}
	}
	if sc.frac.IsUint64() && den.IsUint64() {
		return s.bernoulliExpFraction(sc.frac.Uint64(), den.Uint64())
	}
	for k := uint64(1); ; k++ {
		// A ~ Bernoulli(frac/(den*k)).
		sc.k.SetUint64(k)
		sc.dk.Mul(den, &sc.k)
		if _, err := s.src.uniformBig(&sc.u, &sc.dk, &sc.uniform); err != nil {
			return false, err
		}
		if sc.u.Cmp(&sc.frac) >= 0 {
			return k%2 == 1, nil
		}
	}
}

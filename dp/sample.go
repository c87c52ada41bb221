package dp

import (
	"fmt"
	"io"
	"math"
	"math/big"
	"math/bits"
)

// Limits on sampler parameters. They keep every intermediate value and every
// output inside int64 (except with probability below 2^-184) and refuse
// inputs that could only be mistakes.
const (
	// MaxGaussianSigma2 is the largest sigma^2 DiscreteGaussian accepts:
	// 2^112, a standard deviation of 2^56 (the noise that floods a CKKS
	// phase is that large: he/release.go). A draw then leaves int64 only if
	// its Laplace proposal's geometric part reaches 128, with probability
	// e^-128 < 2^-184.
	MaxGaussianSigma2 = 1 << maxGaussianSigma2Log2
	// MaxLaplaceScale is the largest scale DiscreteLaplace accepts: 2^50.
	MaxLaplaceScale = 1 << maxLaplaceScaleLog2
	// MaxRationalBits bounds the bit length of the numerator and of the
	// denominator of a sampler parameter.
	MaxRationalBits = 512
	// MaxVectorLength is the largest n DiscreteGaussianVector accepts.
	MaxVectorLength = 1 << 24

	maxGaussianSigma2Log2 = 112
	maxLaplaceScaleLog2   = 50
)

// Sampler draws exact discrete Laplace and discrete Gaussian noise from a
// source of uniformly random bytes, following Canonne, Kamath and Steinke,
// "The Discrete Gaussian for Differential Privacy" (NeurIPS 2020,
// arXiv:2004.00010), Algorithms 1-3. All arithmetic is on integers and
// rationals; there is no floating point on the sampling path, so the output
// distribution is exactly the stated one, given uniform input bytes.
//
// A Sampler reads its io.Reader in blocks of 512 bytes and keeps unused
// random bits for later draws. It is not safe for concurrent use; give each
// goroutine its own Sampler.
type Sampler struct {
	src   *bitSource
	bern  bernoulliScratch
	lap   laplaceScratch
	gauss gaussianCache
}

// NewSampler returns a Sampler that draws its randomness from r. Production
// callers pass crypto/rand.Reader; tests may pass a seeded deterministic
// reader. Errors from r are returned by the sampling methods.
func NewSampler(r io.Reader) *Sampler {
	return &Sampler{src: newBitSource(r)}
}

func (s *Sampler) check() error {
	if s == nil || s.src == nil {
		return fmt.Errorf("%w: nil or zero Sampler; use NewSampler", ErrInvalidParameter)
	}
	return nil
}

// checkRational validates a positive rational parameter no larger than
// 2^maxLog2.
func checkRational(name string, x *big.Rat, maxLog2 int) error {
	if x == nil {
		return fmt.Errorf("%w: %s is nil", ErrInvalidParameter, name)
	}
	if x.Sign() <= 0 {
		return fmt.Errorf("%w: %s must be positive, got %s", ErrInvalidParameter, name, x.RatString())
	}
	if x.Num().BitLen() > MaxRationalBits || x.Denom().BitLen() > MaxRationalBits {
		return fmt.Errorf("%w: %s has a numerator or denominator longer than %d bits", ErrInvalidParameter, name, MaxRationalBits)
	}
	// x <= 2^maxLog2 for certain when its numerator is below 2^maxLog2;
	// otherwise compare num with den * 2^maxLog2 exactly.
	if x.Num().BitLen() > maxLog2 {
		limit := new(big.Int).Lsh(x.Denom(), uint(maxLog2))
		if x.Num().Cmp(limit) > 0 {
			return fmt.Errorf("%w: %s = %s exceeds the limit 2^%d", ErrInvalidParameter, name, x.FloatString(3), maxLog2)
		}
	}
	return nil
}

// errOutOfRange reports a draw whose magnitude does not fit in an int64. With
// the parameter limits above it happens with probability below 2^-184.
var errOutOfRange = fmt.Errorf("dp: sampled value does not fit in an int64")

// laplaceScratch holds the big integers of the general discrete Laplace path.
type laplaceScratch struct {
	u, x, y, v, r big.Int
	uniform       bigScratch
}

// DiscreteLaplace returns a draw from the discrete Laplace distribution on
// the integers with the given scale b > 0: P[X = x] is proportional to
// exp(-|x|/b). It is CKS 2020 Algorithm 2 with b = t/s for the numerator t
// and denominator s of scale. The scale may be at most MaxLaplaceScale.
func (s *Sampler) DiscreteLaplace(scale *big.Rat) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if err := checkRational("discrete Laplace scale", scale, maxLaplaceScaleLog2); err != nil {
		return 0, err
	}
	t, d := scale.Num(), scale.Denom()
	if t.IsUint64() && d.IsUint64() {
		return s.laplaceUint64(t.Uint64(), d.Uint64())
	}
	return s.laplaceBig(t, d)
}

// geometricExpMinusOne returns V >= 0 with P[V = v] = (1 - 1/e) e^-v: the
// number of Bernoulli(exp(-1)) successes before the first failure.
func (s *Sampler) geometricExpMinusOne() (uint64, error) {
	var v uint64
	for {
		b, err := s.bernoulliExpMinusOne()
		if err != nil {
			return 0, err
		}
		if !b {
			return v, nil
		}
		v++
	}
}

// laplaceUint64 is Algorithm 2 for scale t/d with t, d < 2^64.
func (s *Sampler) laplaceUint64(t, d uint64) (int64, error) {
	for {
		u, err := s.src.uniformUint64(t)
		if err != nil {
			return 0, err
		}
		keep, err := s.bernoulliExpUint64(u, t)
		if err != nil {
			return 0, err
		}
		if !keep {
			continue
		}
		v, err := s.geometricExpMinusOne()
		if err != nil {
			return 0, err
		}
		// X = U + t*V in 128 bits, then Y = floor(X / d).
		hi, lo := bits.Mul64(t, v)
		var carry uint64
		lo, carry = bits.Add64(lo, u, 0)
		hi += carry
		if hi >= d {
			return 0, errOutOfRange
		}
		y, _ := bits.Div64(hi, lo, d)
		if y > math.MaxInt64 {
			return 0, errOutOfRange
		}
		neg, err := s.src.bits(1)
		if err != nil {
			return 0, err
		}
		if neg == 1 && y == 0 {
			continue // reject -0 so that 0 is not counted twice
		}
		if neg == 1 {
			return -int64(y), nil
		}
		return int64(y), nil
	}
}

// laplaceBig is Algorithm 2 for scale t/d with big t or d.
func (s *Sampler) laplaceBig(t, d *big.Int) (int64, error) {
	sc := &s.lap
	for {
		if _, err := s.src.uniformBig(&sc.u, t, &sc.uniform); err != nil {
			return 0, err
		}
		keep, err := s.bernoulliExpBig(&sc.u, t)
		if err != nil {
			return 0, err
		}
		if !keep {
			continue
		}
		v, err := s.geometricExpMinusOne()
		if err != nil {
			return 0, err
		}
		sc.v.SetUint64(v)
		sc.x.Mul(t, &sc.v)
		sc.x.Add(&sc.x, &sc.u)
		sc.y.QuoRem(&sc.x, d, &sc.r)
		if !sc.y.IsInt64() {
			return 0, errOutOfRange
		}
		y := sc.y.Int64()
		neg, err := s.src.bits(1)
		if err != nil {
			return 0, err
		}
		if neg == 1 && y == 0 {
			continue
		}
		if neg == 1 {
			return -y, nil
		}
		return y, nil
	}
}

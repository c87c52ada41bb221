package dp

import (
	"bytes"
	"errors"
	"io"
	"math/big"
	"slices"
	"testing"
)

func TestSamplerRejectsBadParameters(t *testing.T) {
	s := NewSampler(seededReader(1))
	huge := new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), 113))
	longDen := new(big.Rat).SetFrac(big.NewInt(1), new(big.Int).Lsh(big.NewInt(3), MaxRationalBits))
	for _, tc := range []struct {
		name string
		x    *big.Rat
	}{
		{"nil", nil},
		{"zero", new(big.Rat)},
		{"negative", big.NewRat(-9, 1)},
		{"above 2^112", huge},
		{"denominator beyond 512 bits", longDen},
	} {
		if _, err := s.DiscreteGaussian(tc.x); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("DiscreteGaussian(%s): err = %v, want ErrInvalidParameter", tc.name, err)
		}
		if _, err := s.DiscreteGaussianVector(tc.x, 3); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("DiscreteGaussianVector(%s): err = %v, want ErrInvalidParameter", tc.name, err)
		}
		if _, err := s.DiscreteLaplace(tc.x); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("DiscreteLaplace(%s): err = %v, want ErrInvalidParameter", tc.name, err)
		}
	}
	if _, err := s.DiscreteLaplace(big.NewRat(MaxLaplaceScale+1, 1)); !errors.Is(err, ErrInvalidParameter) {
		t.Errorf("DiscreteLaplace(2^50+1): err = %v, want ErrInvalidParameter", err)
	}
	for _, n := range []int{-1, MaxVectorLength + 1} {
		if _, err := s.DiscreteGaussianVector(big.NewRat(9, 1), n); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("DiscreteGaussianVector(n = %d): err = %v, want ErrInvalidParameter", n, err)
		}
	}
	if v, err := s.DiscreteGaussianVector(big.NewRat(9, 1), 0); err != nil || len(v) != 0 {
		t.Errorf("DiscreteGaussianVector(n = 0) = %v, %v; want empty", v, err)
	}
	// The largest accepted parameters work.
	if _, err := s.DiscreteGaussian(new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), 112))); err != nil {
		t.Errorf("DiscreteGaussian(2^112): %v", err)
	}
	if _, err := s.DiscreteGaussian(new(big.Rat).SetInt(new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 112), big.NewInt(1)))); !errors.Is(err, ErrInvalidParameter) {
		t.Errorf("DiscreteGaussian(2^112 + 1): err = %v, want ErrInvalidParameter", err)
	}
	if _, err := s.DiscreteLaplace(new(big.Rat).SetInt64(MaxLaplaceScale)); err != nil {
		t.Errorf("DiscreteLaplace(2^50): %v", err)
	}
}

func TestZeroAndNilSamplersReturnErrors(t *testing.T) {
	var nilSampler *Sampler
	if _, err := nilSampler.DiscreteGaussian(big.NewRat(1, 1)); !errors.Is(err, ErrInvalidParameter) {
		t.Errorf("nil Sampler: err = %v", err)
	}
	if _, err := new(Sampler).DiscreteLaplace(big.NewRat(1, 1)); !errors.Is(err, ErrInvalidParameter) {
		t.Errorf("zero Sampler: err = %v", err)
	}
	if _, err := NewSampler(nil).DiscreteGaussian(big.NewRat(1, 1)); !errors.Is(err, ErrInvalidParameter) {
		t.Errorf("Sampler with nil reader: err = %v", err)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestSamplerReportsReaderErrors(t *testing.T) {
	boom := errors.New("entropy source failed")
	if _, err := NewSampler(failingReader{boom}).DiscreteGaussian(big.NewRat(9, 1)); !errors.Is(err, boom) {
		t.Errorf("failing reader: err = %v, want it to wrap %v", err, boom)
	}
	// A reader that runs dry mid-way: 100 bytes, then EOF.
	short := bytes.NewReader(make([]byte, 100))
	if _, err := NewSampler(short).DiscreteLaplace(big.NewRat(3, 1)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short reader: err = %v, want io.ErrUnexpectedEOF", err)
	}
	// A vector draw that runs out part-way says where.
	src := io.MultiReader(seededReaderN(2, 4096), failingReader{boom})
	if _, err := NewSampler(src).DiscreteGaussianVector(big.NewRat(9, 1), 10_000); !errors.Is(err, boom) {
		t.Errorf("vector with failing reader: err = %v, want it to wrap %v", err, boom)
	}
}

// seededReaderN returns the first n bytes of seededReader(seed).
func seededReaderN(seed byte, n int64) io.Reader {
	return io.LimitReader(seededReader(seed), n)
}

func TestSamplerIsDeterministicForASeed(t *testing.T) {
	a, err := NewSampler(seededReader(7)).DiscreteGaussianVector(big.NewRat(1000, 7), 1000)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSampler(seededReader(7)).DiscreteGaussianVector(big.NewRat(1000, 7), 1000)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewSampler(seededReader(8)).DiscreteGaussianVector(big.NewRat(1000, 7), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Error("two samplers with the same seed drew different vectors")
	}
	if slices.Equal(a, c) {
		t.Error("two samplers with different seeds drew the same vector")
	}
}

// TestSamplerCacheFollowsSigma checks that switching sigma^2 between calls
// on one Sampler uses the new sigma^2 (the Algorithm 3 parameters are
// cached per sigma^2).
func TestSamplerCacheFollowsSigma(t *testing.T) {
	s := NewSampler(seededReader(9))
	var small, large float64
	const n = 20_000
	for i := 0; i < n; i++ {
		x, err := s.DiscreteGaussian(big.NewRat(1, 1))
		if err != nil {
			t.Fatal(err)
		}
		y, err := s.DiscreteGaussian(big.NewRat(10000, 1))
		if err != nil {
			t.Fatal(err)
		}
		small += float64(x * x)
		large += float64(y * y)
	}
	if v := small / n; v < 0.9 || v > 1.1 {
		t.Errorf("interleaved sigma^2 = 1: variance %.3f", v)
	}
	if v := large / n; v < 9000 || v > 11000 {
		t.Errorf("interleaved sigma^2 = 10000: variance %.1f", v)
	}
}

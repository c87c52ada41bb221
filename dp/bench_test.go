package dp

import (
	"crypto/rand"
	"math/big"
	"testing"
)

func benchmarkGaussian(b *testing.B, sigma2 *big.Rat) {
	s := NewSampler(rand.Reader)
	for b.Loop() {
		if _, err := s.DiscreteGaussian(sigma2); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDiscreteGaussianSigma10(b *testing.B)   { benchmarkGaussian(b, big.NewRat(100, 1)) }
func BenchmarkDiscreteGaussianSigma1000(b *testing.B) { benchmarkGaussian(b, big.NewRat(1000000, 1)) }

// Sigma 12.5 at granularity 2^-20: the big-integer acceptance path.
func BenchmarkDiscreteGaussianLattice(b *testing.B) {
	benchmarkGaussian(b, new(big.Rat).SetInt64(171_798_691_840_000))
}

func BenchmarkDiscreteLaplaceScale3(b *testing.B) {
	s := NewSampler(rand.Reader)
	scale := big.NewRat(3, 1)
	for b.Loop() {
		if _, err := s.DiscreteLaplace(scale); err != nil {
			b.Fatal(err)
		}
	}
}

package dp

import (
	"math"
	"math/big"
	"testing"
)

// drawsPerFit is the number of draws in each goodness-of-fit test.
const drawsPerFit = 100_000

// gaussianPMF returns the unnormalised pmf of N_Z(0, sigma2).
func gaussianPMF(sigma2 float64) func(int64) float64 {
	return func(x int64) float64 { return math.Exp(-float64(x) * float64(x) / (2 * sigma2)) }
}

// laplacePMF returns the unnormalised pmf of the discrete Laplace of scale b.
func laplacePMF(b float64) func(int64) float64 {
	return func(x int64) float64 { return math.Exp(-math.Abs(float64(x)) / b) }
}

func ratFloat(r *big.Rat) float64 {
	f, _ := r.Float64()
	return f
}

// fitCase is one goodness-of-fit test: draws from sample, pmf of the
// distribution they should follow.
type fitCase struct {
	name   string
	sample func(s *Sampler) (int64, error)
	pmf    func(int64) float64
	radius int64 // pmf mass beyond it is negligible
}

func gaussianCase(name string, sampled, claimed *big.Rat) fitCase {
	return fitCase{
		name:   name,
		sample: func(s *Sampler) (int64, error) { return s.DiscreteGaussian(sampled) },
		pmf:    gaussianPMF(ratFloat(claimed)),
		radius: int64(60*math.Sqrt(ratFloat(claimed))) + 10,
	}
}

func laplaceCase(name string, sampled, claimed *big.Rat) fitCase {
	return fitCase{
		name:   name,
		sample: func(s *Sampler) (int64, error) { return s.DiscreteLaplace(sampled) },
		pmf:    laplacePMF(ratFloat(claimed)),
		radius: int64(800*ratFloat(claimed)) + 10,
	}
}

// runFit returns the chi-square p-value of drawsPerFit draws.
func runFit(t *testing.T, tc fitCase, seed byte) float64 {
	t.Helper()
	s := NewSampler(seededReader(seed))
	stat, df := chiSquareFit(t, func() (int64, error) { return tc.sample(s) }, tc.pmf, tc.radius, drawsPerFit)
	p := chiSquarePValue(stat, df)
	t.Logf("%s: chi^2 = %.1f, df = %d, critical value at alpha = %g: %.1f, p = %.3g",
		tc.name, stat, df, significance, chiSquareCritical(df, significance), p)
	return p
}

// bigRat returns num/den for decimal strings, for parameters beyond 64 bits.
func bigRat(t *testing.T, num, den string) *big.Rat {
	t.Helper()
	n, ok1 := new(big.Int).SetString(num, 10)
	d, ok2 := new(big.Int).SetString(den, 10)
	if !ok1 || !ok2 {
		t.Fatalf("bad test rational %s/%s", num, den)
	}
	return new(big.Rat).SetFrac(n, d)
}

// TestSamplersFitTheirPMF is a chi-square goodness-of-fit test of 100,000
// draws per case against the exact pmf, at significance 1e-3 (the critical
// value for each case's degrees of freedom is logged). The seeds are fixed,
// so the test is deterministic.
func TestSamplersFitTheirPMF(t *testing.T) {
	cases := []fitCase{
		gaussianCase("discrete Gaussian sigma^2 = 9", big.NewRat(9, 1), big.NewRat(9, 1)),
		gaussianCase("discrete Gaussian sigma^2 = 1000/7", big.NewRat(1000, 7), big.NewRat(1000, 7)),
		gaussianCase("discrete Gaussian sigma^2 = 1/2", big.NewRat(1, 2), big.NewRat(1, 2)),
		// Numerator and denominator beyond 64 bits exercise the big-integer
		// path; the pmf of sigma^2 = 100 differs from it by 1e-28.
		gaussianCase("discrete Gaussian sigma^2 = (10^30+1)/10^28 (big path)",
			bigRat(t, "1000000000000000000000000000001", "10000000000000000000000000000"), big.NewRat(100, 1)),
		laplaceCase("discrete Laplace scale 3", big.NewRat(3, 1), big.NewRat(3, 1)),
		laplaceCase("discrete Laplace scale 7/2", big.NewRat(7, 2), big.NewRat(7, 2)),
		laplaceCase("discrete Laplace scale 1/2", big.NewRat(1, 2), big.NewRat(1, 2)),
		laplaceCase("discrete Laplace scale (3*10^30+1)/10^30 (big path)",
			bigRat(t, "3000000000000000000000000000001", "1000000000000000000000000000000"), big.NewRat(3, 1)),
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if p := runFit(t, tc, byte(i+1)); p < significance {
				t.Errorf("%s: rejected at significance %g (p = %.3g)", tc.name, significance, p)
			}
		})
	}
}

// TestFitRejectsMisScaledSampler shows that the goodness-of-fit test can
// fail: the same test, fed by samplers whose sigma or scale is 10% too large,
// rejects.
func TestFitRejectsMisScaledSampler(t *testing.T) {
	cases := []fitCase{
		// sigma 10% too large: sigma^2 * 1.21.
		gaussianCase("discrete Gaussian sigma^2 = 9 sampled at 9*1.21", big.NewRat(1089, 100), big.NewRat(9, 1)),
		gaussianCase("discrete Gaussian sigma^2 = 1000/7 sampled at 1000/7*1.21", big.NewRat(1210, 7), big.NewRat(1000, 7)),
		laplaceCase("discrete Laplace scale 3 sampled at 3.3", big.NewRat(33, 10), big.NewRat(3, 1)),
		laplaceCase("discrete Laplace scale 7/2 sampled at 3.85", big.NewRat(77, 20), big.NewRat(7, 2)),
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if p := runFit(t, tc, byte(100+i)); p >= significance {
				t.Errorf("%s: a mis-scaled sampler passed the fit test (p = %.3g)", tc.name, p)
			}
		})
	}
}

// moments returns the mean, variance and fourth central moment of a pmf
// over [-radius, radius].
func moments(p func(int64) float64, radius int64) (mean, variance, m4 float64) {
	var z float64
	for x := -radius; x <= radius; x++ {
		z += p(x)
	}
	for x := -radius; x <= radius; x++ {
		mean += float64(x) * p(x) / z
	}
	for x := -radius; x <= radius; x++ {
		d := float64(x) - mean
		variance += d * d * p(x) / z
		m4 += d * d * d * d * p(x) / z
	}
	return mean, variance, m4
}

// checkMoments draws n values and checks the sample mean and variance
// against the pmf's, within 4.5 standard errors (a false alarm has
// probability about 1e-5 per check).
func checkMoments(t *testing.T, draw func() (int64, error), p func(int64) float64, radius int64, n int) (sampleVar float64) {
	t.Helper()
	mean, variance, m4 := moments(p, radius)
	var sum, sumSq float64
	for i := 0; i < n; i++ {
		x, err := draw()
		if err != nil {
			t.Fatal(err)
		}
		sum += float64(x)
		sumSq += float64(x) * float64(x)
	}
	m := sum / float64(n)
	v := sumSq/float64(n) - m*m
	if tol := 4.5 * math.Sqrt(variance/float64(n)); math.Abs(m-mean) > tol {
		t.Errorf("sample mean %.4f, want %.4f +- %.4f", m, mean, tol)
	}
	if tol := 4.5 * math.Sqrt((m4-variance*variance)/float64(n)); math.Abs(v-variance) > tol {
		t.Errorf("sample variance %.4f, want %.4f +- %.4f", v, variance, tol)
	}
	return v
}

func TestSamplerMeanAndVariance(t *testing.T) {
	for i, s2 := range []*big.Rat{big.NewRat(9, 1), big.NewRat(1000, 7), big.NewRat(250000, 1)} {
		s := NewSampler(seededReader(byte(50 + i)))
		f := ratFloat(s2)
		v := checkMoments(t, func() (int64, error) { return s.DiscreteGaussian(s2) },
			gaussianPMF(f), int64(60*math.Sqrt(f))+10, drawsPerFit)
		t.Logf("discrete Gaussian sigma^2 = %s: sample variance %.3f", s2.RatString(), v)
	}
	for i, b := range []*big.Rat{big.NewRat(3, 1), big.NewRat(7, 2)} {
		s := NewSampler(seededReader(byte(60 + i)))
		f := ratFloat(b)
		v := checkMoments(t, func() (int64, error) { return s.DiscreteLaplace(b) },
			laplacePMF(f), int64(800*f)+10, drawsPerFit)
		t.Logf("discrete Laplace scale %s: sample variance %.3f (exact %.3f)", b.RatString(), v,
			2*math.Exp(-1/f)/math.Pow(1-math.Exp(-1/f), 2))
	}
}

// TestLatticeSigmaSampling draws at the lattice sigma^2 of sigma = 12.5,
// granularity 2^-20 (sigma^2 = 156.25 * 2^40, which takes the big-integer
// acceptance path) and checks mean and variance of k*g against sigma.
func TestLatticeSigmaSampling(t *testing.T) {
	sigma, _ := ParseRat("12.5")
	g := new(big.Rat).SetFrac64(1, 1<<20)
	s2, err := SigmaToLattice(sigma, g)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSampler(seededReader(70))
	const n = 50_000
	xs, err := s.DiscreteGaussianVector(s2, n)
	if err != nil {
		t.Fatal(err)
	}
	var sum, sumSq float64
	for _, k := range xs {
		v := float64(k) / (1 << 20)
		sum += v
		sumSq += v * v
	}
	mean, variance := sum/n, sumSq/n-(sum/n)*(sum/n)
	// For a Gaussian, the standard errors are sigma/sqrt(n) and
	// sigma^2 sqrt(2/n).
	if tol := 4.5 * 12.5 / math.Sqrt(n); math.Abs(mean) > tol {
		t.Errorf("mean of noise %.4f, want 0 +- %.4f", mean, tol)
	}
	if tol := 4.5 * 156.25 * math.Sqrt(2.0/n); math.Abs(variance-156.25) > tol {
		t.Errorf("variance of noise %.3f, want 156.25 +- %.3f", variance, tol)
	}
}

// TestBernoulliExp checks Algorithm 1 against exp(-gamma) within 4.5
// standard errors, for gammas that take the fractional, whole-number and
// big-integer paths, and checks gamma = 0 exactly.
func TestBernoulliExp(t *testing.T) {
	s := NewSampler(seededReader(80))
	two70 := new(big.Int).Lsh(big.NewInt(1), 70)
	cases := []struct {
		name     string
		num, den *big.Int
	}{
		{"1/3", big.NewInt(1), big.NewInt(3)},
		{"1", big.NewInt(1), big.NewInt(1)},
		{"5/2", big.NewInt(5), big.NewInt(2)},
		{"4", big.NewInt(4), big.NewInt(1)},
		{"(2^70+2^69)/2^70 big", new(big.Int).Add(two70, new(big.Int).Rsh(two70, 1)), two70},
		{"(3*2^70+1)/2^70 big", new(big.Int).Add(new(big.Int).Mul(big.NewInt(3), two70), big.NewInt(1)), two70},
	}
	const n = 100_000
	for _, tc := range cases {
		gamma, _ := new(big.Rat).SetFrac(tc.num, tc.den).Float64()
		want := math.Exp(-gamma)
		hits := 0
		for i := 0; i < n; i++ {
			b, err := s.bernoulliExpBig(tc.num, tc.den)
			if err != nil {
				t.Fatal(err)
			}
			if b {
				hits++
			}
		}
		got := float64(hits) / n
		if tol := 4.5 * math.Sqrt(want*(1-want)/n); math.Abs(got-want) > tol {
			t.Errorf("Bernoulli(exp(-%s)): frequency %.5f, want %.5f +- %.5f", tc.name, got, want, tol)
		}
	}
	for i := 0; i < 1000; i++ {
		if b, err := s.bernoulliExpUint64(0, 7); err != nil || !b {
			t.Fatalf("Bernoulli(exp(0)) = %v, %v; want true", b, err)
		}
	}
}

// TestUniformHasNoModuloBias runs a chi-square test on uniform draws from
// ranges that are not powers of two, including one beyond 64 bits.
func TestUniformHasNoModuloBias(t *testing.T) {
	src := newBitSource(seededReader(90))
	const n = 120_000
	for _, m := range []uint64{3, 6, 7, 1<<63 + 1} {
		const bins = 6
		counts := make([]float64, bins)
		for i := 0; i < n; i++ {
			v, err := src.uniformUint64(m)
			if err != nil {
				t.Fatal(err)
			}
			if v >= m {
				t.Fatalf("uniform(%d) returned %d", m, v)
			}
			// Bin by value range: equal-width bins hold equal mass up to
			// the rounding of m/bins, which for these m is exact or
			// negligible.
			counts[new(big.Int).Div(new(big.Int).Mul(new(big.Int).SetUint64(v), big.NewInt(bins)), new(big.Int).SetUint64(m)).Int64()]++
		}
		expected := make([]float64, bins)
		for b := range expected {
			// Number of v in [0, m) with floor(v*bins/m) = b.
			lo := new(big.Int).Div(new(big.Int).Add(new(big.Int).Mul(big.NewInt(int64(b)), new(big.Int).SetUint64(m)), big.NewInt(bins-1)), big.NewInt(bins))
			hi := new(big.Int).Div(new(big.Int).Add(new(big.Int).Mul(big.NewInt(int64(b+1)), new(big.Int).SetUint64(m)), big.NewInt(bins-1)), big.NewInt(bins))
			width, _ := new(big.Rat).SetFrac(new(big.Int).Sub(hi, lo), new(big.Int).SetUint64(m)).Float64()
			expected[b] = width * n
		}
		var stat float64
		for b := range counts {
			d := counts[b] - expected[b]
			stat += d * d / expected[b]
		}
		if p := chiSquarePValue(stat, bins-1); p < significance {
			t.Errorf("uniform(%d): chi^2 = %.2f, p = %.3g < %g", m, stat, p, significance)
		}
	}
	// Beyond 64 bits: m = 3 * 2^70, bins by v * 3 / m (exactly equal thirds).
	m := new(big.Int).Lsh(big.NewInt(3), 70)
	var sc bigScratch
	counts := make([]float64, 3)
	v := new(big.Int)
	unit := new(big.Int).Lsh(big.NewInt(1), 70)
	for i := 0; i < n; i++ {
		if _, err := src.uniformBig(v, m, &sc); err != nil {
			t.Fatal(err)
		}
		if v.Sign() < 0 || v.Cmp(m) >= 0 {
			t.Fatalf("uniformBig(3*2^70) returned %s", v)
		}
		counts[new(big.Int).Div(v, unit).Int64()]++
	}
	var stat float64
	for _, c := range counts {
		d := c - n/3.0
		stat += d * d / (n / 3.0)
	}
	if p := chiSquarePValue(stat, 2); p < significance {
		t.Errorf("uniformBig(3*2^70): chi^2 = %.2f, p = %.3g", stat, p)
	}
}

package dp

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"testing"
)

// Statistical helpers for the sampler tests: a goodness-of-fit chi-square
// test against an exact pmf, with p-values from the regularised incomplete
// gamma function (own code, Numerical Recipes style series and continued
// fraction), and a Wilson-Hilferty approximation to cross-check it.

// significance is the level at which the goodness-of-fit tests reject.
const significance = 1e-3

// seededReader returns a deterministic io.Reader for reproducible tests.
func seededReader(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	s[31] = 0x5a
	return rand.NewChaCha8(s)
}

// upperIncompleteGammaQ returns Q(a, x) = Gamma(a, x) / Gamma(a), a > 0, x >= 0.
func upperIncompleteGammaQ(a, x float64) float64 {
	if x <= 0 {
		return 1
	}
	lg, _ := math.Lgamma(a)
	if x < a+1 {
		// Series for P(a, x).
		sum, term, ap := 1/a, 1/a, a
		for i := 0; i < 10000; i++ {
			ap++
			term *= x / ap
			sum += term
			if math.Abs(term) < math.Abs(sum)*1e-17 {
				break
			}
		}
		return 1 - sum*math.Exp(-x+a*math.Log(x)-lg)
	}
	// Continued fraction for Q(a, x) (modified Lentz).
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 10000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-17 {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lg) * h
}

// chiSquarePValue returns P[chi^2_df >= stat].
func chiSquarePValue(stat float64, df int) float64 {
	return upperIncompleteGammaQ(float64(df)/2, stat/2)
}

// chiSquareCritical returns the x with P[chi^2_df >= x] = alpha, by bisection
// on the exact p-value.
func chiSquareCritical(df int, alpha float64) float64 {
	lo, hi := 0.0, float64(df)+10
	for chiSquarePValue(hi, df) > alpha {
		hi *= 2
	}
	for i := 0; i < 200; i++ {
		mid := (lo + hi) / 2
		if chiSquarePValue(mid, df) > alpha {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// wilsonHilfertyCritical approximates chiSquareCritical: chi^2_df quantiles
// are about df (1 - 2/(9 df) + z sqrt(2/(9 df)))^3 for the normal quantile z.
func wilsonHilfertyCritical(df int, alpha float64) float64 {
	// z with P[N(0,1) >= z] = alpha, by bisection on erfc.
	lo, hi := 0.0, 40.0
	for i := 0; i < 200; i++ {
		mid := (lo + hi) / 2
		if 0.5*math.Erfc(mid/math.Sqrt2) > alpha {
			lo = mid
		} else {
			hi = mid
		}
	}
	z := (lo + hi) / 2
	k := float64(df)
	v := 1 - 2/(9*k) + z*math.Sqrt(2/(9*k))
	return k * v * v * v
}

// pmfBins groups the integers into bins for a chi-square test with n draws:
// one bin per x whose expected count n*p(x) is at least 5 (a contiguous range
// [lo, hi] for the unimodal pmfs tested), plus the two tails x < lo and
// x > hi, each merged into its neighbour if it expects fewer than 5.
type pmfBins struct {
	lo, hi    int64
	leftTail  bool // whether x < lo has its own bin
	rightTail bool
	expected  []float64 // per bin, in order: left tail, lo..hi, right tail
}

// newPMFBins builds the bins for pmf p, normalised over [-radius, radius]
// (the mass outside must be negligible).
func newPMFBins(p func(int64) float64, radius int64, n int) (*pmfBins, error) {
	var total float64
	for x := -radius; x <= radius; x++ {
		total += p(x)
	}
	prob := func(x int64) float64 { return p(x) / total }
	b := &pmfBins{lo: 1, hi: 0}
	for x := -radius; x <= radius; x++ {
		if float64(n)*prob(x) >= 5 {
			if b.lo > b.hi {
				b.lo = x
			}
			b.hi = x
		}
	}
	if b.lo > b.hi {
		return nil, fmt.Errorf("no bin expects 5 draws")
	}
	var left, right float64
	for x := -radius; x < b.lo; x++ {
		left += prob(x)
	}
	for x := b.hi + 1; x <= radius; x++ {
		right += prob(x)
	}
	b.leftTail = float64(n)*left >= 5
	b.rightTail = float64(n)*right >= 5
	if b.leftTail {
		b.expected = append(b.expected, float64(n)*left)
	}
	for x := b.lo; x <= b.hi; x++ {
		e := float64(n) * prob(x)
		if x == b.lo && !b.leftTail {
			e += float64(n) * left
		}
		if x == b.hi && !b.rightTail {
			e += float64(n) * right
		}
		b.expected = append(b.expected, e)
	}
	if b.rightTail {
		b.expected = append(b.expected, float64(n)*right)
	}
	return b, nil
}

func (b *pmfBins) index(x int64) int {
	off := 0
	if b.leftTail {
		off = 1
	}
	switch {
	case x < b.lo:
		return 0 // the left tail bin, or bin lo when merged
	case x > b.hi:
		return len(b.expected) - 1
	}
	return off + int(x-b.lo)
}

// chiSquareFit draws n values and returns the chi-square statistic against
// the binned pmf and its degrees of freedom.
func chiSquareFit(t *testing.T, draw func() (int64, error), p func(int64) float64, radius int64, n int) (stat float64, df int) {
	t.Helper()
	bins, err := newPMFBins(p, radius, n)
	if err != nil {
		t.Fatal(err)
	}
	observed := make([]float64, len(bins.expected))
	for i := 0; i < n; i++ {
		x, err := draw()
		if err != nil {
			t.Fatalf("draw %d: %v", i, err)
		}
		observed[bins.index(x)]++
	}
	for i, e := range bins.expected {
		if e < 5 {
			t.Fatalf("bin %d expects %v < 5 draws", i, e)
		}
		d := observed[i] - e
		stat += d * d / e
	}
	return stat, len(bins.expected) - 1
}

// TestChiSquareQuantiles checks the p-value code against published table
// values: the upper 0.1% critical points of the chi-square distribution from
// the NIST/SEMATECH e-Handbook of Statistical Methods, section 1.3.6.7.4
// ("Critical Values of the Chi-Square Distribution"), to the table's three
// decimals.
func TestChiSquareQuantiles(t *testing.T) {
	for _, tc := range []struct {
		df   int
		want float64
	}{
		{1, 10.828}, {2, 13.816}, {5, 20.515}, {10, 29.588},
		{20, 45.315}, {50, 86.661}, {100, 149.449},
	} {
		got := chiSquareCritical(tc.df, 0.001)
		if math.Abs(got-tc.want) > 0.0006 {
			t.Errorf("chi-square critical value df=%d alpha=0.001: got %.4f, table %.3f", tc.df, got, tc.want)
		}
		// Self-check: Wilson-Hilferty agrees to within 1% for df >= 10.
		if tc.df >= 10 {
			wh := wilsonHilfertyCritical(tc.df, 0.001)
			if math.Abs(wh-got) > 0.01*got {
				t.Errorf("Wilson-Hilferty df=%d: %.4f, exact %.4f", tc.df, wh, got)
			}
		}
	}
	// P[chi^2_2 >= x] = exp(-x/2) exactly.
	if got, want := chiSquarePValue(7, 2), math.Exp(-3.5); math.Abs(got-want) > 1e-14 {
		t.Errorf("chi-square p-value df=2 x=7: got %v, want %v", got, want)
	}
}

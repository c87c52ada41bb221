package dp

import (
	"errors"
	"math"
	"testing"
)

// relTol is the relative tolerance for comparisons with published values.
const relTol = 1e-9

func closeRel(got, want, tol float64) bool {
	if want == 0 {
		return math.Abs(got) <= tol
	}
	return math.Abs(got-want) <= tol*math.Abs(want)
}

// TestBunSteinkeFormulas checks the Bun-Steinke 2016 formulas on worked
// numbers. The expected values are closed-form evaluations of the formulas
// by hand (self-checks of the formulas, not values printed in the paper):
// Proposition 1.6, rho = Delta^2/(2 sigma^2); Proposition 1.3,
// epsilon = rho + 2 sqrt(rho ln(1/delta)).
func TestBunSteinkeFormulas(t *testing.T) {
	for _, tc := range []struct {
		sensitivity, sigma, rho float64
	}{
		{1, 4, 1.0 / 32},     // 1/(2*16)
		{2, 10, 0.02},        // 4/200
		{3, 0.5, 18},         // 9/(2*0.25)
		{0.25, 2, 1.0 / 128}, // 0.0625/8
	} {
		got, err := GaussianRho(tc.sensitivity, tc.sigma)
		if err != nil || !closeRel(got, tc.rho, relTol) {
			t.Errorf("GaussianRho(%v, %v) = %v, %v; want %v", tc.sensitivity, tc.sigma, got, err, tc.rho)
		}
		sigma, err := SigmaForRho(tc.sensitivity, tc.rho)
		if err != nil || !closeRel(sigma, tc.sigma, relTol) {
			t.Errorf("SigmaForRho(%v, %v) = %v, %v; want %v", tc.sensitivity, tc.rho, sigma, err, tc.sigma)
		}
	}
	for _, tc := range []struct {
		rho, delta, eps float64
	}{
		{0.5, math.Exp(-2), 2.5},     // 0.5 + 2 sqrt(0.5*2)
		{0.125, math.Exp(-8), 2.125}, // 0.125 + 2 sqrt(0.125*8)
		{1, math.Exp(-9), 7},         // 1 + 2*3
		{0.01, 1e-5, 0.01 + 2*math.Sqrt(0.01*5*math.Ln10)},
	} {
		got, err := ZCDPToEpsilonSimple(tc.rho, tc.delta)
		if err != nil || !closeRel(got, tc.eps, relTol) {
			t.Errorf("ZCDPToEpsilonSimple(%v, %v) = %v, %v; want %v", tc.rho, tc.delta, got, err, tc.eps)
		}
	}
	// Composition: 10 queries of 1/32 each cost 10/32 (Lemma 1.7).
	if got, err := ComposeRho(1.0/32, 10); err != nil || got != 10.0/32 {
		t.Errorf("ComposeRho(1/32, 10) = %v, %v; want 0.3125", got, err)
	}
}

// TestTightConversionPublishedValues checks the CKS 2020 conversion
// (Corollary 13) against the test vectors of the OpenDP library, which
// implements the same bound.
func TestTightConversionPublishedValues(t *testing.T) {
	for _, tc := range []struct {
		rho, eps, delta float64
		source          string
	}{
		// opendp/opendp, rust/src/combinators/measure_cast/zCDP_to_approxDP/cdp_delta/test.rs,
		// test_cdp_delta_rounding_regression: cdp_delta(0.05, 0.25) = 8.17727531036956e-2.
		{0.05, 0.25, 8.17727531036956e-2, "OpenDP cdp_delta/test.rs"},
		// Same file: "optimal alpha exceeds 2^53": cdp_delta(5e-30, 1e-13) = 2.619676329730346e-234.
		{5e-30, 1e-13, 2.619676329730346e-234, "OpenDP cdp_delta/test.rs"},
		// Same file, test_edge_cases: cdp_delta(0.5, 0.) = 0.5588356393474351.
		{0.5, 0, 0.5588356393474351, "OpenDP cdp_delta/test.rs"},
		// opendp/opendp, rust/src/combinators/measure_cast/zCDP_to_approxDP/test.rs,
		// test_zCDP_to_approxDP_nontrivial: Gaussian scale 4, sensitivity 1, so
		// rho = (1/4)^2/2 = 1/32; profile.delta(0.) = 0.1508457845622862.
		{1.0 / 32, 0, 0.1508457845622862, "OpenDP zCDP_to_approxDP/test.rs"},
		// Same test: profile.delta(0.6880024554878085) = 1e-3.
		{1.0 / 32, 0.6880024554878085, 1e-3, "OpenDP zCDP_to_approxDP/test.rs"},
	} {
		got, err := ZCDPToDelta(tc.rho, tc.eps)
		if err != nil || !closeRel(got, tc.delta, relTol) {
			t.Errorf("ZCDPToDelta(%v, %v) = %v, %v; want %v (%s)", tc.rho, tc.eps, got, err, tc.delta, tc.source)
		}
	}
	// opendp/opendp, rust/src/combinators/measure_cast/zCDP_to_approxDP/test.rs,
	// test_zCDP_to_approxDP_nontrivial: cdp_epsilon(1/32, 1e-3) = 0.6880024554878086.
	if got, err := ZCDPToEpsilon(1.0/32, 1e-3); err != nil || !closeRel(got, 0.6880024554878086, relTol) {
		t.Errorf("ZCDPToEpsilon(1/32, 1e-3) = %v, %v; want 0.6880024554878086 (OpenDP)", got, err)
	}
	// Same test: cdp_epsilon(1/32, 0.1508457845622862) = 0: at delta(0) the
	// epsilon is 0.
	if got, err := ZCDPToEpsilon(1.0/32, 0.1508457845622862); err != nil || got > 1e-9 {
		t.Errorf("ZCDPToEpsilon(1/32, 0.1508457845622862) = %v, %v; want 0 (OpenDP)", got, err)
	}
	// opendp cdp_delta/test.rs test_edge_cases: cdp_epsilon(0.5, cdp_delta(0.5, 0)) = 0.
	if got, err := ZCDPToEpsilon(0.5, 0.5588356393474351); err != nil || got > 1e-9 {
		t.Errorf("ZCDPToEpsilon(0.5, 0.5588356393474351) = %v, %v; want 0 (OpenDP)", got, err)
	}
}

// TestGaussianCurvePublishedValues checks the Balle-Wang 2018 Theorem 8
// curve against the test vectors of Google's differential-privacy library,
// whose deltaForGaussian implements the same formula
// (google/differential-privacy, go/noise/gaussian_noise_test.go). Google's
// sensitivity is the L2 sensitivity sqrt(l0) * lInf.
func TestGaussianCurvePublishedValues(t *testing.T) {
	for _, tc := range []struct {
		sensitivity, sigma, eps, delta float64
		source                         string
	}{
		// TestDeltaForGaussian "Correct value calculated".
		{1, 10, 0.1, 0.008751768145810, "TestDeltaForGaussian"},
		// TestDeltaForGaussian "non-trivial lInfSensitivity": sigma 20, lInf 2.
		{2, 20, 0.1, 0.008751768145810, "TestDeltaForGaussian"},
		// TestDeltaForGaussian "non-trivial l0Sensitivity": sigma 20, l0 4, so L2 = 2.
		{2, 20, 0.1, 0.008751768145810, "TestDeltaForGaussian"},
		// TestDeltaForGaussian "typical epsilon": sigma 10, lInf 5, eps ln 3.
		{5, 10, math.Log(3), 0.004159742234000802, "TestDeltaForGaussian"},
		// TestDeltaForGaussian "epsilon = 0": sigma 0.5, sensitivity 1.
		{1, 0.5, 0, 0.6826894921370859, "TestDeltaForGaussian"},
		// thresholdGaussianTestCases "simple values": noiseDelta chosen to get sigma 1.
		{1, 1, math.Log(3), 0.10985556344445052, "thresholdGaussianTestCases"},
		// thresholdGaussianTestCases "scale lInfSensitivity": lInf 0.5, sigma 1.
		{0.5, 1, math.Log(3), 0.0041597422340007885, "thresholdGaussianTestCases"},
		// thresholdGaussianTestCases "scale l0Sensitivity": l0 2, lInf 1, sigma 1.
		{math.Sqrt2, 1, math.Log(3), 0.26546844106038714, "thresholdGaussianTestCases"},
		// TestSigmaForGaussianInvertsDeltaForGaussian "small delta":
		// "Results in delta = 3.129776773173962e-141".
		{10, 500, 0.5, 3.129776773173962e-141, "TestSigmaForGaussianInvertsDeltaForGaussian"},
	} {
		got, err := GaussianDelta(tc.sensitivity, tc.sigma, tc.eps)
		if err != nil || !closeRel(got, tc.delta, relTol) {
			t.Errorf("GaussianDelta(%v, %v, %v) = %.16g, %v; want %.16g (Google %s)",
				tc.sensitivity, tc.sigma, tc.eps, got, err, tc.delta, tc.source)
		}
	}
	// thresholdGaussianTestCases: the noiseDelta 0.10985556344445052 "is
	// chosen to get a sigma of 1" at sensitivity 1, eps ln 3; and
	// 0.26546844106038714 gives sigma 1 at L2 sensitivity sqrt 2.
	for _, tc := range []struct{ sensitivity, delta float64 }{
		{1, 0.10985556344445052},
		{math.Sqrt2, 0.26546844106038714},
	} {
		got, err := AnalyticGaussianSigma(tc.sensitivity, math.Log(3), tc.delta)
		if err != nil || !closeRel(got, 1, relTol) {
			t.Errorf("AnalyticGaussianSigma(%v, ln 3, %v) = %v, %v; want 1 (Google)", tc.sensitivity, tc.delta, got, err)
		}
	}
}

var (
	rhoGrid   = []float64{1e-6, 1e-4, 0.003, 0.02, 1.0 / 32, 0.1, 0.5, 1, 5, 40}
	deltaGrid = []float64{1e-12, 1e-9, 1e-6, 1e-3, 0.05, 0.3}
	epsGrid   = []float64{0, 0.01, 0.1, 0.5, 1, 2, 5, 10}
)

// TestConversionRoundTrips checks that ZCDPToEpsilon and ZCDPToDelta invert
// each other, that the tight conversion is never worse than the simple one,
// and that RhoForBudget returns the largest rho within the budget.
func TestConversionRoundTrips(t *testing.T) {
	for _, rho := range rhoGrid {
		for _, delta := range deltaGrid {
			eps, err := ZCDPToEpsilon(rho, delta)
			if err != nil {
				t.Fatalf("ZCDPToEpsilon(%v, %v): %v", rho, delta, err)
			}
			simple, _ := ZCDPToEpsilonSimple(rho, delta)
			if eps > simple*(1+1e-12) {
				t.Errorf("rho %v delta %v: tight epsilon %v above simple %v", rho, delta, eps, simple)
			}
			if eps == 0 {
				continue // delta is at least delta(epsilon = 0)
			}
			back, err := ZCDPToDelta(rho, eps)
			if err != nil || !closeRel(back, delta, 1e-8) {
				t.Errorf("ZCDPToDelta(%v, ZCDPToEpsilon(%v, %v) = %v) = %v, %v", rho, rho, delta, eps, back, err)
			}
		}
	}
	for _, eps := range []float64{0.01, 0.1, 1, 3, 10} {
		for _, delta := range deltaGrid {
			rho, err := RhoForBudget(eps, delta)
			if err != nil {
				t.Fatalf("RhoForBudget(%v, %v): %v", eps, delta, err)
			}
			d, _ := ZCDPToDelta(rho, eps)
			if d > delta {
				t.Errorf("RhoForBudget(%v, %v) = %v exceeds the budget: delta %v", eps, delta, rho, d)
			}
			over, _ := ZCDPToDelta(rho*(1+1e-8), eps)
			if over <= delta {
				t.Errorf("RhoForBudget(%v, %v) = %v is not the largest: %v also fits", eps, delta, rho, rho*(1+1e-8))
			}
			if e, _ := ZCDPToEpsilon(rho, delta); e > eps {
				t.Errorf("RhoForBudget(%v, %v) = %v: ZCDPToEpsilon gives %v", eps, delta, rho, e)
			}
			// SigmaForQuery is the Gaussian sigma of that rho.
			sigma, err := SigmaForQuery(3, eps, delta)
			if err != nil {
				t.Fatal(err)
			}
			if r, _ := GaussianRho(3, sigma); r > rho*(1+1e-12) {
				t.Errorf("SigmaForQuery(3, %v, %v) = %v has rho %v > %v", eps, delta, sigma, r, rho)
			}
		}
	}
}

func TestConversionsAreMonotone(t *testing.T) {
	for _, eps := range epsGrid {
		prev := 0.0
		for _, rho := range rhoGrid {
			d, err := ZCDPToDelta(rho, eps)
			if err != nil {
				t.Fatal(err)
			}
			if d < prev || d > 1 {
				t.Errorf("ZCDPToDelta(., %v) not increasing in rho or above 1: %v at rho %v after %v", eps, d, rho, prev)
			}
			prev = d
		}
	}
	for _, rho := range rhoGrid {
		prev := 2.0
		for _, eps := range epsGrid {
			d, _ := ZCDPToDelta(rho, eps)
			if d > prev {
				t.Errorf("ZCDPToDelta(%v, .) not decreasing in epsilon: %v at eps %v after %v", rho, d, eps, prev)
			}
			prev = d
		}
		prevEps := math.Inf(1)
		for _, delta := range deltaGrid {
			e, _ := ZCDPToEpsilon(rho, delta)
			if e > prevEps {
				t.Errorf("ZCDPToEpsilon(%v, .) not decreasing in delta: %v at delta %v after %v", rho, e, delta, prevEps)
			}
			prevEps = e
		}
	}
	for _, delta := range deltaGrid {
		prev := 0.0
		for _, eps := range []float64{0.01, 0.1, 1, 3, 10} {
			r, _ := RhoForBudget(eps, delta)
			if r <= prev {
				t.Errorf("RhoForBudget(., %v) not increasing in epsilon: %v at eps %v", delta, r, eps)
			}
			prev = r
		}
	}
}

func TestGaussianCurveRoundTrips(t *testing.T) {
	for _, sigma := range []float64{0.3, 1, 4, 25, 300} {
		prevDelta := 2.0
		for _, eps := range epsGrid {
			d, err := GaussianDelta(1, sigma, eps)
			if err != nil {
				t.Fatal(err)
			}
			if d > prevDelta {
				t.Errorf("GaussianDelta(1, %v, .) not decreasing in epsilon", sigma)
			}
			prevDelta = d
			// The exact Gaussian curve is below the zCDP conversion of the
			// same mechanism (self-check; a tighter analysis must not be
			// looser).
			rho, _ := GaussianRho(1, sigma)
			if z, _ := ZCDPToDelta(rho, eps); d > z*(1+1e-9) {
				t.Errorf("sigma %v eps %v: Gaussian delta %v above its zCDP bound %v", sigma, eps, d, z)
			}
			if d < 1e-300 || eps == 0 {
				continue
			}
			back, err := GaussianEpsilon(1, sigma, d)
			if err != nil || !closeRel(back, eps, 1e-8) {
				t.Errorf("GaussianEpsilon(1, %v, GaussianDelta(.. %v) = %v) = %v, %v", sigma, eps, d, back, err)
			}
		}
	}
	for _, eps := range []float64{0.1, 0.5, 1, 4} {
		for _, delta := range deltaGrid {
			sigma, err := AnalyticGaussianSigma(2, eps, delta)
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := GaussianDelta(2, sigma, eps); d > delta {
				t.Errorf("AnalyticGaussianSigma(2, %v, %v) = %v gives delta %v", eps, delta, sigma, d)
			}
			if d, _ := GaussianDelta(2, sigma*(1-1e-8), eps); d <= delta {
				t.Errorf("AnalyticGaussianSigma(2, %v, %v) = %v is not the smallest", eps, delta, sigma)
			}
			// Self-check: the analytic sigma is below the classical
			// sqrt(2 ln(1.25/delta)) Delta/eps (valid for eps < 1) and below
			// the zCDP-calibrated sigma.
			if eps < 1 {
				if classical := 2 * math.Sqrt(2*math.Log(1.25/delta)) / eps; sigma > classical {
					t.Errorf("analytic sigma %v above classical %v (eps %v, delta %v)", sigma, classical, eps, delta)
				}
			}
			if z, _ := SigmaForQuery(2, eps, delta); sigma > z {
				t.Errorf("analytic sigma %v above zCDP sigma %v (eps %v, delta %v)", sigma, z, eps, delta)
			}
		}
	}
}

func TestAccountingRejectsBadInput(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	calls := map[string]func() error{}
	add := func(name string, f func() (float64, error)) {
		calls[name] = func() error { _, err := f(); return err }
	}
	for _, bad := range []float64{0, -1, nan, inf} {
		add("GaussianRho sensitivity", func() (float64, error) { return GaussianRho(bad, 1) })
		add("GaussianRho sigma", func() (float64, error) { return GaussianRho(1, bad) })
		add("SigmaForRho rho", func() (float64, error) { return SigmaForRho(1, bad) })
		add("SigmaForRho sensitivity", func() (float64, error) { return SigmaForRho(bad, 1) })
		add("RhoForBudget epsilon", func() (float64, error) { return RhoForBudget(bad, 1e-6) })
		add("SigmaForQuery sensitivity", func() (float64, error) { return SigmaForQuery(bad, 1, 1e-6) })
		add("SigmaForQuery epsilon", func() (float64, error) { return SigmaForQuery(1, bad, 1e-6) })
		add("GaussianDelta sigma", func() (float64, error) { return GaussianDelta(1, bad, 1) })
		add("GaussianDelta sensitivity", func() (float64, error) { return GaussianDelta(bad, 1, 1) })
		add("GaussianEpsilon sigma", func() (float64, error) { return GaussianEpsilon(1, bad, 1e-6) })
		add("AnalyticGaussianSigma sensitivity", func() (float64, error) { return AnalyticGaussianSigma(bad, 1, 1e-6) })
		for name, f := range calls {
			if err := f(); !errors.Is(err, ErrInvalidParameter) {
				t.Errorf("%s(%v): err = %v, want ErrInvalidParameter", name, bad, err)
			}
		}
		clear(calls)
	}
	// Non-negative parameters: zero is fine, negative, NaN and Inf are not.
	for _, bad := range []float64{-1e-300, -1, nan, inf} {
		add("ZCDPToDelta rho", func() (float64, error) { return ZCDPToDelta(bad, 1) })
		add("ZCDPToDelta epsilon", func() (float64, error) { return ZCDPToDelta(1, bad) })
		add("ZCDPToEpsilon rho", func() (float64, error) { return ZCDPToEpsilon(bad, 1e-6) })
		add("ZCDPToEpsilonSimple rho", func() (float64, error) { return ZCDPToEpsilonSimple(bad, 1e-6) })
		add("ComposeRho rho", func() (float64, error) { return ComposeRho(bad, 3) })
		add("AnalyticGaussianSigma epsilon", func() (float64, error) { return AnalyticGaussianSigma(1, bad, 1e-6) })
		for name, f := range calls {
			if err := f(); !errors.Is(err, ErrInvalidParameter) {
				t.Errorf("%s(%v): err = %v, want ErrInvalidParameter", name, bad, err)
			}
		}
		clear(calls)
	}
	// delta must be in (0, 1).
	for _, bad := range []float64{0, 1, -0.1, 1.5, nan, inf} {
		add("ZCDPToEpsilon delta", func() (float64, error) { return ZCDPToEpsilon(0.1, bad) })
		add("ZCDPToEpsilonSimple delta", func() (float64, error) { return ZCDPToEpsilonSimple(0.1, bad) })
		add("RhoForBudget delta", func() (float64, error) { return RhoForBudget(1, bad) })
		add("SigmaForQuery delta", func() (float64, error) { return SigmaForQuery(1, 1, bad) })
		add("GaussianEpsilon delta", func() (float64, error) { return GaussianEpsilon(1, 1, bad) })
		add("AnalyticGaussianSigma delta", func() (float64, error) { return AnalyticGaussianSigma(1, 1, bad) })
		for name, f := range calls {
			if err := f(); !errors.Is(err, ErrInvalidParameter) {
				t.Errorf("%s(%v): err = %v, want ErrInvalidParameter", name, bad, err)
			}
		}
		clear(calls)
	}
	if _, err := ComposeRho(0.1, -1); !errors.Is(err, ErrInvalidParameter) {
		t.Errorf("ComposeRho(0.1, -1): err = %v", err)
	}
	if _, err := GaussianDelta(1, 1, -1); !errors.Is(err, ErrInvalidParameter) {
		t.Errorf("GaussianDelta(eps = -1): err = %v", err)
	}
	// Edge values that are valid.
	if d, err := ZCDPToDelta(0, 1); err != nil || d != 0 {
		t.Errorf("ZCDPToDelta(0, 1) = %v, %v; want 0", d, err)
	}
	if e, err := ZCDPToEpsilon(0, 1e-6); err != nil || e != 0 {
		t.Errorf("ZCDPToEpsilon(0, 1e-6) = %v, %v; want 0", e, err)
	}
	if d, err := GaussianDelta(1, 1, inf); err != nil || d != 0 {
		t.Errorf("GaussianDelta(eps = +Inf) = %v, %v; want 0", d, err)
	}
}

package rdp

import (
	"math"
	"testing"
)

// Expected values below are copied from the published test suites and
// documentation of TensorFlow Privacy (github.com/tensorflow/privacy) and
// Opacus (github.com/pytorch/opacus); each is cited with the file it comes
// from. None is computed by this package.

// near reports whether got is within rel (relative) or abs (absolute) of want.
func near(got, want, rel, abs float64) bool {
	if math.IsInf(want, 0) {
		return got == want
	}
	d := math.Abs(got - want)
	return d <= abs || d <= rel*math.Abs(want)
}

// tfOrders are the orders of TensorFlow Privacy's compute_dp_sgd_privacy
// (tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_lib.py and
// compute_dp_sgd_privacy.py): 1.25, ..., 4.5, 5..63, 128, 256, 512.
func tfOrders() []float64 {
	o := []float64{1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5}
	for a := 5; a < 64; a++ {
		o = append(o, float64(a))
	}
	return append(o, 128, 256, 512)
}

func TestDefaultOrders(t *testing.T) {
	o := DefaultOrders()
	// Opacus RDPAccountant.DEFAULT_ALPHAS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
	if len(o) != 99+52 || o[0] != 1.1 || o[98] != 10.9 || o[99] != 12 || o[len(o)-1] != 63 {
		t.Fatalf("default orders %v", o)
	}
	for i := 1; i < len(o); i++ {
		if !(o[i] > o[i-1]) {
			t.Fatalf("orders not increasing at %d: %v", i, o)
		}
	}
}

// tensorflow_privacy/privacy/analysis/rdp_accountant_test.py:
// test_compute_rdp_no_data, test_compute_rdp_no_sampling,
// test_compute_rdp_scalar (places=5), test_compute_rdp_sequence (delta=1e-5).
func TestSampledGaussianTFPrivacy(t *testing.T) {
	if got := SampledGaussianSteps(0, 10, 1, []float64{20})[0]; got != 0 {
		t.Errorf("q=0: %v, want 0", got)
	}
	if got := SampledGaussianSteps(1, 10, 1, []float64{20})[0]; got != 0.1 {
		t.Errorf("q=1, sigma 10, order 20: %v, want 0.1", got)
	}
	if got := SampledGaussianSteps(0.1, 2, 10, []float64{5})[0]; !near(got, 0.07737, 0, 0.5e-5) {
		t.Errorf("q 0.1, sigma 2, 10 steps, order 5: %v, want 0.07737", got)
	}
	orders := []float64{1.5, 2.5, 5, 50, 100, math.Inf(1)}
	want := []float64{0.00065, 0.001085, 0.00218075, 0.023846, 167.416307, math.Inf(1)}
	got := SampledGaussianSteps(0.01, 2.5, 50, orders)
	for i := range orders {
		if !near(got[i], want[i], 0, 1e-5) {
			t.Errorf("q 0.01, sigma 2.5, 50 steps, order %v: %v, want %v", orders[i], got[i], want[i])
		}
	}
}

// tensorflow_privacy/privacy/analysis/rdp_accountant_test.py:
// test_compute_heterogeneous_rdp_different_sampling_probabilities: one step
// at q = 0 and one at q = 1, noise 10, order 20, compose to 0.1.
func TestAccountantComposition(t *testing.T) {
	a := NewAccountant(20)
	if err := a.Compose(0, 10, 1); err != nil {
		t.Fatal(err)
	}
	if err := a.Compose(1, 10, 1); err != nil {
		t.Fatal(err)
	}
	if got := a.RDP()[0]; got != 0.1 {
		t.Errorf("composed RDP %v, want 0.1", got)
	}
	// Composition is additive: 3 steps at once equal 1 + 2.
	b, c := NewAccountant(), &Accountant{}
	for _, err := range []error{b.Compose(0.01, 1.1, 3), c.Compose(0.01, 1.1, 1), c.Compose(0.01, 1.1, 2)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	rb, rc := b.RDP(), c.RDP()
	for i := range rb {
		if !near(rb[i], rc[i], 1e-14, 0) {
			t.Fatalf("order %v: 3 steps %v, 1+2 steps %v", b.Orders()[i], rb[i], rc[i])
		}
	}
}

// tensorflow_privacy/privacy/analysis/rdp_accountant_test.py,
// test_get_privacy_spent_check_target_delta and _check_target_eps (the
// version with the improved conversion: orders 2..32 at a constant RDP of
// 1.1 give epsilon 1.32783806176 at delta 1e-5, at order 32; the Gaussian
// mechanism with noise 4.530877117, no subsampling, orders 1.000..99.999,
// gives (1, 1e-6)). assertAlmostEqual: 7 decimal places.
func TestConversionTFPrivacy(t *testing.T) {
	var orders, rdp []float64
	for a := 2; a <= 32; a++ {
		orders = append(orders, float64(a))
		rdp = append(rdp, 1.1)
	}
	eps, order, err := Epsilon(orders, rdp, 1e-5)
	if err != nil || order != 32 || !near(eps, 1.32783806176, 0, 0.5e-7) {
		t.Errorf("constant RDP 1.1: epsilon %v at order %v (%v), want 1.32783806176 at 32", eps, order, err)
	}
	delta, order, err := Delta(orders, rdp, 1.32783806176)
	if err != nil || order != 32 || !near(delta, 1e-5, 0, 0.5e-7) {
		t.Errorf("constant RDP 1.1: delta %v at order %v (%v), want 1e-5 at 32", delta, order, err)
	}

	orders = orders[:0]
	for i := 1000; i < 100000; i++ {
		orders = append(orders, 0.001*float64(i))
	}
	rdp = SampledGaussianSteps(1, 4.530877117, 1, orders)
	if eps, _, err := Epsilon(orders, rdp, 1e-6); err != nil || !near(eps, 1, 0, 0.5e-7) {
		t.Errorf("Gaussian, noise 4.530877117: epsilon %v (%v) at delta 1e-6, want 1", eps, err)
	}
	if delta, _, err := Delta(orders, rdp, 1); err != nil || !near(delta, 1e-6, 0, 0.5e-7) {
		t.Errorf("Gaussian, noise 4.530877117: delta %v (%v) at epsilon 1, want 1e-6", delta, err)
	}
}

// tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py,
// test_compute_dp_sgd_privacy: (n, batch, noise, epochs, delta) → (epsilon,
// optimal order), with q = batch/n, steps = ceil(epochs·n/batch) and
// tfOrders (compute_dp_sgd_privacy_lib.py, dp_accounting's RdpAccountant:
// the same improved conversion). The test checks 7 decimal places; here
// 1e-9 relative (the third epsilon is 5.9e6).
func TestDPSGDTFPrivacy(t *testing.T) {
	for _, c := range []struct {
		n, batch, noise, epochs, delta float64
		eps, order                     float64
	}{
		{60000, 150, 1.3, 15, 1e-5, 0.7242234026109595, 19},
		{100000, 100, 1.0, 30, 1e-7, 1.4154988495444842, 13},
		{100000000, 1024, 0.1, 10, 1e-7, 5907982.3113978775, 1.25},
	} {
		q := c.batch / c.n
		steps := int(math.Ceil(c.epochs * c.n / c.batch))
		o := tfOrders()
		eps, order, err := Epsilon(o, SampledGaussianSteps(q, c.noise, steps, o), c.delta)
		if err != nil || order != c.order || !near(eps, c.eps, 1e-9, 0) {
			t.Errorf("%+v: epsilon %.16g at order %v (%v), want %.16g at %v", c, eps, order, err, c.eps, c.order)
		}
	}
}

// tensorflow_privacy/tutorials/README.md ("Expected Output" and "Select
// Parameters"): the MNIST tutorial (batch 256 of 60,000, 234 steps per
// epoch, tutorials/mnist_dpsgd_tutorial.py compute_epsilon with Opacus'
// default orders) prints epsilon to 2 decimals at delta 1e-5; those
// figures were made with the classic conversion. (The README's row "noise
// 0.6, 30 epochs, 9.74" is not reproduced: we get 9.747.)
func TestClassicTFTutorial(t *testing.T) {
	for _, c := range []struct {
		noise  float64
		epochs int
		eps    float64
	}{
		{1.12, 1, 1.00}, {1.12, 2, 1.04}, {1.12, 60, 2.92}, {1.2, 10, 1.20},
	} {
		o := DefaultOrders()
		eps, _, err := EpsilonClassic(o, SampledGaussianSteps(256.0/60000, c.noise, c.epochs*(60000/256), o), 1e-5)
		if err != nil || math.Round(eps*100)/100 != c.eps {
			t.Errorf("noise %v, %d epochs: classic epsilon %v (%v), printed %.2f", c.noise, c.epochs, eps, err, c.eps)
		}
		better, _, _ := Epsilon(o, SampledGaussianSteps(256.0/60000, c.noise, c.epochs*(60000/256), o), 1e-5)
		if !(better < eps) {
			t.Errorf("noise %v, %d epochs: improved conversion %v not below classic %v", c.noise, c.epochs, better, eps)
		}
	}
}

// opacus/tests/accountants_test.py, test_rdp_accountant: noise 1.5, sample
// rate 0.04, int(90/0.04) = 2250 steps, delta 1e-5 → 7.32911117143
// (assertAlmostEqual, 7 places).
func TestAccountantOpacus(t *testing.T) {
	rate := 0.04
	steps := int(90 / rate)
	if steps != 2250 {
		t.Fatalf("steps %d", steps)
	}
	a := NewAccountant()
	if err := a.Compose(rate, 1.5, steps); err != nil {
		t.Fatal(err)
	}
	if eps, _, err := a.Epsilon(1e-5); err != nil || !near(eps, 7.32911117143, 0, 0.5e-7) {
		t.Errorf("epsilon %.12g (%v), want 7.32911117143", eps, err)
	}
}

// opacusNoiseMultiplier is Opacus' get_noise_multiplier
// (opacus/accountants/utils.py), bisection and tolerance included: it
// returns a sigma whose epsilon is below the target by at most 0.01.
func opacusNoiseMultiplier(target, delta, rate float64, steps int) float64 {
	eps := func(sigma float64) float64 {
		o := DefaultOrders()
		e, _, _ := Epsilon(o, SampledGaussianSteps(rate, sigma, steps, o), delta)
		return e
	}
	low, high := 0.0, 10.0
	epsHigh := math.Inf(1)
	for epsHigh > target {
		high *= 2
		epsHigh = eps(high)
	}
	for target-epsHigh > 0.01 {
		sigma := (low + high) / 2
		if e := eps(sigma); e < target {
			high, epsHigh = sigma, e
		} else {
			low = sigma
		}
	}
	return high
}

// opacus/tests/accountants_test.py, test_get_noise_multiplier_rdp_epochs
// (epsilon 8, delta 1e-5, rate 0.04, 90 epochs → 1.416, 4 places) and
// test_get_noise_multiplier_rdp_steps (2000 steps → 1.3562, 4 places).
// Opacus stops its bisection within 0.01 of the target epsilon; the
// replica above reproduces its figures, and NoiseMultiplier, which
// bisects to the smallest sigma, is at most that.
func TestNoiseMultiplierOpacus(t *testing.T) {
	for _, c := range []struct {
		steps int
		sigma float64
	}{{int(90 / 0.04), 1.416}, {2000, 1.3562}} {
		op := opacusNoiseMultiplier(8, 1e-5, 0.04, c.steps)
		if !near(op, c.sigma, 0, 0.5e-4) {
			t.Errorf("%d steps: Opacus' bisection gives %v, Opacus' test %v", c.steps, op, c.sigma)
		}
		sigma, err := NoiseMultiplier(8, 1e-5, 0.04, c.steps, nil)
		if err != nil {
			t.Fatal(err)
		}
		if sigma > op || sigma < op-0.01 {
			t.Errorf("%d steps: NoiseMultiplier %v, Opacus %v", c.steps, sigma, op)
		}
	}
}

// NoiseMultiplier returns a sigma meeting the target, and a slightly
// smaller one would not.
func TestNoiseMultiplierTight(t *testing.T) {
	for _, c := range []struct {
		eps, delta, q float64
		steps         int
	}{
		{0.5, 1e-5, 1024.0 / 60000, 1000},
		{1, 1e-5, 256.0 / 60000, 3000},
		{8, 1e-5, 0.04, 2250},
		{2, 1e-6, 1, 10}, // no subsampling
	} {
		sigma, err := NoiseMultiplier(c.eps, c.delta, c.q, c.steps, nil)
		if err != nil {
			t.Fatal(err)
		}
		at := func(s float64) float64 {
			a := NewAccountant()
			if err := a.Compose(c.q, s, c.steps); err != nil {
				t.Fatal(err)
			}
			e, _, _ := a.Epsilon(c.delta)
			return e
		}
		if e := at(sigma); e > c.eps {
			t.Errorf("%+v: sigma %v gives epsilon %v", c, sigma, e)
		}
		if e := at(sigma * (1 - 3e-6)); e <= c.eps {
			t.Errorf("%+v: sigma %v is not the smallest: %v gives epsilon %v", c, sigma, sigma*(1-3e-6), e)
		}
	}
	if _, err := NoiseMultiplier(1e-9, 1e-9, 1, 1e9, nil); err != ErrBudgetTooSmall {
		t.Errorf("tiny budget: %v", err)
	}
	for _, bad := range [][4]float64{{0, 1e-5, 0.1, 1}, {1, 0, 0.1, 1}, {1, 1e-5, 0, 1}, {1, 1e-5, 1.5, 1}, {1, 1e-5, 0.1, 0}} {
		if _, err := NoiseMultiplier(bad[0], bad[1], bad[2], int(bad[3]), nil); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// The fractional-order series and the integer closed form agree where they
// meet, and RDP grows with the order (RDP is non-decreasing in alpha).
func TestFractionalMeetsInteger(t *testing.T) {
	for _, c := range [][2]float64{{0.01, 1.1}, {256.0 / 60000, 0.8}, {0.1, 3}, {0.5, 1}} {
		q, sigma := c[0], c[1]
		for _, a := range []float64{2, 3, 8, 20, 50} {
			exact := SampledGaussian(q, sigma, a)
			for _, d := range []float64{-1e-7, 1e-7} {
				if frac := SampledGaussian(q, sigma, a+d); !near(frac, exact, 1e-5, 1e-12) {
					t.Errorf("q %v sigma %v: order %v gives %v, order %v gives %v", q, sigma, a+d, frac, a, exact)
				}
			}
		}
		prev := 0.0
		for a := 1.05; a < 64; a += 0.25 {
			r := SampledGaussian(q, sigma, a)
			if !(r >= prev*(1-1e-9)) || math.IsNaN(r) {
				t.Errorf("q %v sigma %v: RDP %v at order %v below %v at the order before", q, sigma, r, a, prev)
			}
			prev = r
		}
	}
}

// A_alpha by numerical integration (Simpson's rule in z), as
// rdp_accountant_test.py's test_compute_log_a_equals_mp does with mpmath,
// for some of its parameters (rtol 1e-4 there too).
func TestLogAQuadrature(t *testing.T) {
	for _, c := range []struct{ q, sigma, alpha float64 }{
		{1e-4, 1, 1.5}, {1e-3, 1, 2}, {0.01, 10, 20}, {0.1, 100, 20.5}, {1e-6, 1, 27}, {0.3, 2, 7.5},
	} {
		// log of the integrand mu0(z) ((1-q) + q exp((2z-1)/(2 sigma²)))^alpha
		f := func(z float64) float64 {
			u := (2*z - 1) / (2 * c.sigma * c.sigma)
			return -z*z/(2*c.sigma*c.sigma) - math.Log(c.sigma*math.Sqrt(2*math.Pi)) +
				c.alpha*logAdd(math.Log1p(-c.q), math.Log(c.q)+u)
		}
		lo, hi := -40*c.sigma, 40*c.sigma+c.alpha
		const n = 200000
		h := (hi - lo) / n
		terms := make([]float64, 0, n+1)
		for i := 0; i <= n; i++ {
			w := 2.0
			if i == 0 || i == n {
				w = 1
			} else if i%2 == 1 {
				w = 4
			}
			terms = append(terms, math.Log(w*h/3)+f(lo+float64(i)*h))
		}
		want := logSumExp(terms)
		if got := logA(c.q, c.sigma, c.alpha); !near(got, want, 1e-4, 1e-12) {
			t.Errorf("%+v: log A %v, quadrature %v", c, got, want)
		}
	}
}

func TestLogErfc(t *testing.T) {
	// The asymptotic series (from 25 on) agrees with math.Erfc where both
	// hold.
	for _, x := range []float64{25, 25.5, 26} {
		if a, b := logErfc(x), math.Log(math.Erfc(x)); !near(a, b, 1e-14, 0) {
			t.Errorf("log erfc(%v): series %v, math.Erfc %v", x, a, b)
		}
	}
	for _, x := range []float64{-3, 0, 1, 5, 20, 24.9} {
		if got, want := logErfc(x), math.Log(math.Erfc(x)); !near(got, want, 1e-14, 0) {
			t.Errorf("log erfc(%v) = %v, want %v", x, got, want)
		}
	}
	if v := logErfc(1e4); math.IsInf(v, 0) || math.IsNaN(v) || !near(v, -1e8-math.Log(1e4)-0.5*math.Log(math.Pi), 1e-15, 0) {
		t.Errorf("log erfc(1e4) = %v", v)
	}
}

func TestBadParameters(t *testing.T) {
	for _, c := range [][3]float64{{-0.1, 1, 2}, {1.1, 1, 2}, {0.1, -1, 2}, {0.1, 1, 1}, {0.1, 1, 0.5}, {math.NaN(), 1, 2}} {
		if r := SampledGaussian(c[0], c[1], c[2]); !math.IsNaN(r) {
			t.Errorf("SampledGaussian(%v) = %v, want NaN", c, r)
		}
	}
	a := NewAccountant()
	for _, c := range [][2]float64{{-0.1, 1}, {2, 1}, {0.1, -1}, {0.1, math.NaN()}} {
		if err := a.Compose(c[0], c[1], 10); err == nil {
			t.Errorf("Compose(%v): no error", c)
		}
	}
	if err := a.Compose(0.1, 1, -1); err == nil {
		t.Error("negative steps: no error")
	}
	if err := NewAccountant(1, 2).Compose(0.1, 1, 1); err == nil {
		t.Error("order 1: no error")
	}
	for _, r := range a.RDP() {
		if r != 0 {
			t.Fatalf("refused compositions changed the RDP: %v", a.RDP())
		}
	}
}

func TestConversionEdges(t *testing.T) {
	if _, _, err := Epsilon([]float64{2}, []float64{1, 2}, 1e-5); err == nil {
		t.Error("length mismatch: no error")
	}
	if _, _, err := Epsilon([]float64{2}, []float64{1}, 0); err == nil {
		t.Error("delta 0: no error")
	}
	if eps, order, _ := Epsilon([]float64{2, 3}, []float64{math.Inf(1), math.Inf(1)}, 1e-5); !math.IsInf(eps, 1) || !math.IsNaN(order) {
		t.Errorf("no privacy: %v at %v", eps, order)
	}
	// Orders at or below 1 are skipped.
	if _, order, _ := Epsilon([]float64{1, 0.5, 4}, []float64{0, 0, 1}, 1e-5); order != 4 {
		t.Errorf("optimal order %v, want 4", order)
	}
	// Tiny RDP: epsilon clamped at 0.
	if eps, _, _ := Epsilon([]float64{2}, []float64{0}, 0.9); eps != 0 {
		t.Errorf("epsilon %v, want 0", eps)
	}
	// Epsilon and Delta are inverse.
	o := DefaultOrders()
	r := SampledGaussianSteps(0.01, 1.3, 1000, o)
	eps, _, _ := Epsilon(o, r, 1e-5)
	if d, _, _ := Delta(o, r, eps); !near(d, 1e-5, 1e-9, 0) {
		t.Errorf("Delta(Epsilon(1e-5)) = %v", d)
	}
}

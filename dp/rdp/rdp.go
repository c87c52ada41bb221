// Package rdp is a Rényi differential privacy (RDP) accountant for the
// Poisson-subsampled Gaussian mechanism, the mechanism of DP-SGD: at each
// step every example is included independently with probability q, the
// included examples' contributions (each clipped to L2 norm C) are summed,
// and Gaussian noise of standard deviation sigma·C is added to the sum.
// sigma is the noise multiplier.
//
// The RDP of one step at order alpha is computed as in Mironov, Talwar and
// Zhang, "Rényi Differential Privacy of the Sampled Gaussian Mechanism"
// (2019, arXiv:1908.10530, section 3.3): a closed-form finite sum for
// integer alpha and a convergent series of erfc terms for fractional alpha,
// both evaluated in log space (log-sum-exp). It is the computation of
// compute_rdp in TensorFlow Privacy
// (tensorflow_privacy/privacy/analysis/rdp_accountant.py) and of Opacus
// (opacus/accountants/analysis/rdp.py), including their stopping rule for
// the fractional series, so that the numbers agree with theirs. The
// adjacency is add-or-remove-one example.
//
// RDP composes additively over steps (Mironov 2017, Proposition 1): T steps
// at order alpha cost T times one step.
//
// The conversion to (epsilon, delta)-DP, [Epsilon], is the improved one of
// Balle, Barthe, Gaboardi, Hsu and Sato, "Hypothesis Testing
// Interpretations and Rényi Differential Privacy" (AISTATS 2020, Theorem 21
// of arXiv:1905.09982), also given by Canonne, Kamath and Steinke, "The
// Discrete Gaussian for Differential Privacy" (2020, arXiv:2004.00010):
//
//	epsilon = min over alpha of  rdp(alpha) + log((alpha-1)/alpha) - (log(delta) + log(alpha))/(alpha-1)
//
// as Opacus' get_privacy_spent and Google's dp_accounting compute it.
// [EpsilonClassic] is the older, looser conversion of Mironov 2017
// (Proposition 3), epsilon = rdp - log(delta)/(alpha-1), kept to check this
// package against figures published with it.
//
// The bound is only as tight as the list of orders it is minimised over;
// [DefaultOrders] are those of Opacus' RDPAccountant.
package rdp

import (
	"errors"
	"fmt"
	"math"
)

// DefaultOrders returns the orders alpha at which an [Accountant] tracks the
// RDP unless told otherwise: 1.1, 1.2, ..., 10.9 and 12, 13, ..., 63, the
// DEFAULT_ALPHAS of Opacus' RDPAccountant (opacus/accountants/rdp.py), also
// the orders of TensorFlow Privacy's MNIST tutorial.
func DefaultOrders() []float64 {
	orders := make([]float64, 0, 99+52)
	for x := 1; x < 100; x++ {
		orders = append(orders, 1+float64(x)/10)
	}
	for a := 12; a < 64; a++ {
		orders = append(orders, float64(a))
	}
	return orders
}

// SampledGaussian returns the RDP at order alpha (> 1) of one step of the
// sampled Gaussian mechanism with sampling rate q (0 ≤ q ≤ 1) and noise
// multiplier sigma (≥ 0), for a function of L2 sensitivity 1 (the clip
// norm). It is 0 for q = 0, alpha/(2 sigma²) for q = 1 (no subsampling),
// and +Inf for sigma = 0 or alpha = +Inf; NaN for parameters out of range.
func SampledGaussian(q, sigma, alpha float64) float64 {
	switch {
	case !(q >= 0 && q <= 1) || !(sigma >= 0) || !(alpha > 1):
		return math.NaN()
	case q == 0:
		return 0
	case sigma == 0:
		return math.Inf(1)
	case q == 1:
		return alpha / (2 * sigma * sigma)
	case math.IsInf(alpha, 1):
		return math.Inf(1)
	}
	return logA(q, sigma, alpha) / (alpha - 1)
}

// SampledGaussianSteps returns the RDP at each of orders of steps
// compositions of the sampled Gaussian mechanism (sampling rate q, noise
// multiplier sigma): steps times [SampledGaussian] at each order.
func SampledGaussianSteps(q, sigma float64, steps int, orders []float64) []float64 {
	rdp := make([]float64, len(orders))
	for i, a := range orders {
		rdp[i] = float64(steps) * SampledGaussian(q, sigma, a)
	}
	return rdp
}

// logA is log(A_alpha) of Mironov et al. 2019, section 3.3, for 0 < q < 1:
// A_alpha = E_{z~N(0,sigma²)} [((1-q) + q·exp((2z-1)/(2sigma²)))^alpha].
func logA(q, sigma, alpha float64) float64 {
	if alpha == math.Trunc(alpha) && alpha < 1<<31 {
		return logAInt(q, sigma, int(alpha))
	}
	return logAFrac(q, sigma, alpha)
}

// logAInt is the closed form for integer alpha:
//
//	A_alpha = sum_{i=0}^{alpha} binom(alpha, i) q^i (1-q)^(alpha-i) exp((i²-i)/(2 sigma²)).
func logAInt(q, sigma float64, alpha int) float64 {
	terms := make([]float64, alpha+1)
	lq, l1q := math.Log(q), math.Log1p(-q)
	for i := range terms {
		fi := float64(i)
		terms[i] = logBinom(float64(alpha), fi) + fi*lq + float64(alpha-i)*l1q + (fi*fi-fi)/(2*sigma*sigma)
	}
	return logSumExp(terms)
}

// logAFrac is the series for fractional alpha: A_alpha splits into the
// integrals over (-inf, z0] and [z0, +inf) with z0 = sigma² log(1/q - 1) +
// 1/2, each a series over i of binom(alpha, i) (signed for i > alpha) times
// Gaussian tail masses. The series stops, as TensorFlow Privacy and Opacus
// do, at the first i where both of its terms are below exp(-30).
func logAFrac(q, sigma, alpha float64) float64 {
	// The positive and the negative terms of each part are summed apart
	// (log-sum-exp of each) and subtracted at the end.
	var pos0, neg0, pos1, neg1 []float64
	z0 := sigma*sigma*math.Log(1/q-1) + 0.5
	lq, l1q := math.Log(q), math.Log1p(-q)
	s2 := 2 * sigma * sigma
	for i := 0; ; i++ {
		fi := float64(i)
		logCoef, sign := logAbsBinom(alpha, fi)
		j := alpha - fi
		logT0 := logCoef + fi*lq + j*l1q
		logT1 := logCoef + j*lq + fi*l1q
		logE0 := math.Log(0.5) + logErfc((fi-z0)/(math.Sqrt2*sigma))
		logE1 := math.Log(0.5) + logErfc((z0-j)/(math.Sqrt2*sigma))
		logS0 := logT0 + (fi*fi-fi)/s2 + logE0
		logS1 := logT1 + (j*j-j)/s2 + logE1
		if sign > 0 {
			pos0, pos1 = append(pos0, logS0), append(pos1, logS1)
		} else {
			neg0, neg1 = append(neg0, logS0), append(neg1, logS1)
		}
		if max(logS0, logS1) < -30 {
			break
		}
		if i > 1e6 {
			// Not reached for sigma > 0; guards against a NaN loop.
			return math.NaN()
		}
	}
	a0 := logSub(logSumExp(pos0), logSumExp(neg0))
	a1 := logSub(logSumExp(pos1), logSumExp(neg1))
	return logAdd(a0, a1)
}

// logBinom is log binom(n, k) for 0 ≤ k ≤ n.
func logBinom(n, k float64) float64 {
	a, _ := math.Lgamma(n + 1)
	b, _ := math.Lgamma(k + 1)
	c, _ := math.Lgamma(n - k + 1)
	return a - b - c
}

// logAbsBinom is log |binom(alpha, k)| and its sign, for real alpha > 0
// (not an integer) and integer k ≥ 0: binom(alpha, k) = Γ(alpha+1) /
// (Γ(k+1) Γ(alpha-k+1)), whose sign is that of Γ(alpha-k+1).
func logAbsBinom(alpha, k float64) (float64, int) {
	a, _ := math.Lgamma(alpha + 1)
	b, _ := math.Lgamma(k + 1)
	c, sc := math.Lgamma(alpha - k + 1)
	return a - b - c, sc
}

// logErfc is log(erfc(x)), accurate also where erfc(x) underflows.
func logErfc(x float64) float64 {
	if x < 25 {
		// math.Erfc keeps its relative accuracy down to about 1e-280.
		return math.Log(math.Erfc(x))
	}
	// Asymptotic series: erfc(x) = exp(-x²)/(x sqrt(pi)) ·
	// (1 - 1/(2x²) + 3/(2x²)² - 15/(2x²)³ + ...); at x ≥ 25 the terms fall
	// by a factor of at least 80 each, so 10 terms reach double precision.
	y := 1 / (2 * x * x)
	s, t := 1.0, 1.0
	for n := 1; n <= 10; n++ {
		t *= -float64(2*n-1) * y
		s += t
	}
	return -x*x - math.Log(x) - 0.5*math.Log(math.Pi) + math.Log(s)
}

// logSumExp is log(sum exp(v)), -Inf for an empty v.
func logSumExp(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = max(m, x)
	}
	if math.IsInf(m, 0) {
		return m
	}
	s := 0.0
	for _, x := range v {
		s += math.Exp(x - m)
	}
	return m + math.Log(s)
}

// logAdd is log(exp(x) + exp(y)).
func logAdd(x, y float64) float64 {
	a, b := min(x, y), max(x, y)
	if math.IsInf(a, -1) {
		return b
	}
	return math.Log1p(math.Exp(a-b)) + b
}

// logSub is log(exp(x) - exp(y)) for x ≥ y; NaN if x < y.
func logSub(x, y float64) float64 {
	switch {
	case x < y:
		return math.NaN()
	case math.IsInf(y, -1):
		return x
	case x == y:
		return math.Inf(-1)
	}
	return math.Log(-math.Expm1(y-x)) + x
}

// Epsilon converts the RDP guarantees rdp[i] at orders[i] into an
// (epsilon, delta)-DP guarantee with the conversion of Balle et al. 2020
// (Theorem 21) / Canonne, Kamath and Steinke 2020 (see the package
// comment), minimised over the orders. It returns epsilon (never below 0)
// and the order that attains it. Orders ≤ 1 are skipped (the conversion
// needs alpha > 1); if no order gives a finite epsilon, it returns +Inf and
// NaN.
func Epsilon(orders, rdp []float64, delta float64) (eps, order float64, err error) {
	return convert(orders, rdp, delta, func(a, r float64) float64 {
		return r + math.Log1p(-1/a) - (math.Log(delta)+math.Log(a))/(a-1)
	})
}

// EpsilonClassic is the conversion of Mironov 2017 (Proposition 3),
// epsilon = rdp - log(delta)/(alpha-1), minimised over the orders. It is
// never smaller than [Epsilon]'s; use Epsilon. It is here because older
// published DP-SGD figures (TensorFlow Privacy's tutorials) used it.
func EpsilonClassic(orders, rdp []float64, delta float64) (eps, order float64, err error) {
	return convert(orders, rdp, delta, func(a, r float64) float64 {
		return r - math.Log(delta)/(a-1)
	})
}

func convert(orders, rdp []float64, delta float64, f func(alpha, rdp float64) float64) (float64, float64, error) {
	if len(orders) != len(rdp) {
		return 0, 0, fmt.Errorf("rdp: %d orders but %d RDP values", len(orders), len(rdp))
	}
	if !(delta > 0 && delta < 1) {
		return 0, 0, fmt.Errorf("rdp: delta %v not in (0, 1)", delta)
	}
	best, bestOrder := math.Inf(1), math.NaN()
	for i, a := range orders {
		if !(a > 1) || math.IsInf(a, 1) || math.IsNaN(rdp[i]) || rdp[i] < 0 {
			continue
		}
		if e := f(a, rdp[i]); e < best {
			best, bestOrder = e, a
		}
	}
	return max(0, best), bestOrder, nil
}

// Delta is the inverse of [Epsilon]: the smallest delta, over the orders,
// for which the RDP guarantees give (eps, delta)-DP with the same
// conversion, and the order that attains it; at most 1.
func Delta(orders, rdp []float64, eps float64) (delta, order float64, err error) {
	if len(orders) != len(rdp) {
		return 0, 0, fmt.Errorf("rdp: %d orders but %d RDP values", len(orders), len(rdp))
	}
	if !(eps >= 0) {
		return 0, 0, fmt.Errorf("rdp: epsilon %v is negative", eps)
	}
	best, bestOrder := 0.0, math.NaN() // log delta
	for i, a := range orders {
		if !(a > 1) || math.IsInf(a, 1) || math.IsNaN(rdp[i]) || rdp[i] < 0 {
			continue
		}
		// Solve eps = r + log1p(-1/a) - (log delta + log a)/(a-1) for log delta.
		ld := (a-1)*(rdp[i]-eps+math.Log1p(-1/a)) - math.Log(a)
		if ld < best || math.IsNaN(bestOrder) {
			best, bestOrder = ld, a
		}
	}
	return math.Exp(min(best, 0)), bestOrder, nil
}

// Accountant accumulates the RDP of a sequence of sampled Gaussian
// mechanisms at a fixed list of orders. The zero value tracks
// [DefaultOrders].
type Accountant struct {
	orders []float64
	rdp    []float64
}

// NewAccountant returns an accountant tracking the given orders (all > 1),
// or [DefaultOrders] if none are given.
func NewAccountant(orders ...float64) *Accountant {
	a := &Accountant{}
	a.init(orders)
	return a
}

func (a *Accountant) init(orders []float64) {
	if a.orders != nil {
		return
	}
	if len(orders) == 0 {
		orders = DefaultOrders()
	}
	a.orders = append([]float64(nil), orders...)
	a.rdp = make([]float64, len(a.orders))
}

// Compose adds steps steps of the sampled Gaussian mechanism with sampling
// rate q (0 ≤ q ≤ 1) and noise multiplier sigma (≥ 0). It refuses
// parameters out of range, and orders ≤ 1.
func (a *Accountant) Compose(q, sigma float64, steps int) error {
	a.init(nil)
	if !(q >= 0 && q <= 1) || !(sigma >= 0) || steps < 0 {
		return fmt.Errorf("rdp: sampling rate %v, noise multiplier %v, %d steps: want 0 ≤ q ≤ 1, sigma ≥ 0, steps ≥ 0", q, sigma, steps)
	}
	for _, o := range a.orders {
		if !(o > 1) {
			return fmt.Errorf("rdp: order %v: orders must be > 1", o)
		}
	}
	for i, r := range SampledGaussianSteps(q, sigma, steps, a.orders) {
		a.rdp[i] += r
	}
	return nil
}

// Orders returns the orders tracked.
func (a *Accountant) Orders() []float64 {
	a.init(nil)
	return append([]float64(nil), a.orders...)
}

// RDP returns the accumulated RDP at each of [Accountant.Orders].
func (a *Accountant) RDP() []float64 {
	a.init(nil)
	return append([]float64(nil), a.rdp...)
}

// Epsilon is [Epsilon] of what was composed so far.
func (a *Accountant) Epsilon(delta float64) (eps, order float64, err error) {
	a.init(nil)
	return Epsilon(a.orders, a.rdp, delta)
}

// MaxNoiseMultiplier bounds the search of [NoiseMultiplier].
const MaxNoiseMultiplier = 1e6

// ErrBudgetTooSmall is returned by [NoiseMultiplier] when no noise
// multiplier up to [MaxNoiseMultiplier] meets the target.
var ErrBudgetTooSmall = errors.New("rdp: privacy budget too small for any noise multiplier up to 1e6")

// NoiseMultiplier returns the smallest noise multiplier sigma (to a
// relative 1e-6) such that steps steps of the sampled Gaussian mechanism
// with sampling rate q satisfy (eps, delta)-DP by [Epsilon] over orders
// (nil: [DefaultOrders]). The sigma returned always meets the target:
// epsilon(sigma) ≤ eps. It bisects, since epsilon decreases as sigma
// grows.
func NoiseMultiplier(eps, delta, q float64, steps int, orders []float64) (float64, error) {
	if !(eps > 0) || !(delta > 0 && delta < 1) || !(q > 0 && q <= 1) || steps <= 0 {
		return 0, fmt.Errorf("rdp: need eps > 0, 0 < delta < 1, 0 < q ≤ 1 and steps > 0; have %v, %v, %v, %d", eps, delta, q, steps)
	}
	if orders == nil {
		orders = DefaultOrders()
	}
	epsAt := func(sigma float64) float64 {
		e, _, _ := Epsilon(orders, SampledGaussianSteps(q, sigma, steps, orders), delta)
		return e
	}
	lo, hi := 0.0, 1.0
	for epsAt(hi) > eps {
		lo, hi = hi, 2*hi
		if hi > MaxNoiseMultiplier {
			return 0, ErrBudgetTooSmall
		}
	}
	// Invariant: epsAt(hi) ≤ eps, and epsAt(lo) > eps (lo = 0 is +Inf).
	for hi-lo > 1e-6*hi {
		mid := (lo + hi) / 2
		if epsAt(mid) <= eps {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}

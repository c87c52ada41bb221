package he

import (
	"fmt"
	"math"
	"sort"
)

// Activations without an exact CKKS form (ReLU, and the |x| inside a
// polynomial max) are replaced by Chebyshev interpolants on a range
// calibrated from sample inputs. The compiler normalises the input of such
// an activation to u ∈ [-1, 1] (the normalisation folds into the linear
// step before it) and evaluates Σ c_k T_k(u) with Lattigo's polynomial
// evaluator (Paterson–Stockmeyer, depth ceil(log2(d+1))).
//
// Outside its range a polynomial is not clamped: Chebyshev polynomials grow
// like (|u| + sqrt(u²-1))^d, so a value beyond the calibrated range gives a
// result that is wrong, and quickly very wrong. Calibration therefore adds a
// margin, and Model.Calibrate reports how close sample values come to the
// edges.

// cheb is a polynomial in the Chebyshev basis on [-1, 1] approximating
// f(lo + (u+1)(hi-lo)/2), that is f on [lo, hi].
type cheb struct {
	fn     string // "relu" or "abs"
	lo, hi float64
	coeffs []float64
}

// degree is the polynomial's degree.
func (c *cheb) degree() int { return len(c.coeffs) - 1 }

// eval is the polynomial at u (Clenshaw's recurrence).
func (c *cheb) eval(u float64) float64 {
	var b1, b2 float64
	for k := len(c.coeffs) - 1; k >= 1; k-- {
		b1, b2 = 2*u*b1-b2+c.coeffs[k], b1
	}
	return u*b1 - b2 + c.coeffs[0]
}

// normalise maps x ∈ [lo, hi] to u ∈ [-1, 1]: u = a·x + b.
func (c *cheb) normalise() (a, b float64) {
	a = 2 / (c.hi - c.lo)
	return a, -(c.hi + c.lo) / (c.hi - c.lo)
}

// at is the approximation of f(x).
func (c *cheb) at(x float64) float64 {
	a, b := c.normalise()
	return c.eval(a*x + b)
}

// maxError is the largest |approximation - f| on a fine grid of [lo, hi].
func (c *cheb) maxError() float64 {
	f := activationFn(c.fn)
	worst := 0.0
	const steps = 4096
	for i := 0; i <= steps; i++ {
		x := c.lo + (c.hi-c.lo)*float64(i)/steps
		worst = math.Max(worst, math.Abs(c.at(x)-f(x)))
	}
	return worst
}

func activationFn(name string) func(float64) float64 {
	switch name {
	case "abs":
		return math.Abs
	default:
		return func(x float64) float64 { return math.Max(x, 0) }
	}
}

// chebyshevInterpolant interpolates fn on [lo, hi] at the d+1 Chebyshev
// nodes: within a small factor of the best (minimax) polynomial of degree
// d, and exact for polynomials up to degree d.
func chebyshevInterpolant(fn string, lo, hi float64, d int) (*cheb, error) {
	if !(hi > lo) || math.IsInf(lo, 0) || math.IsInf(hi, 0) || math.IsNaN(lo) || math.IsNaN(hi) {
		return nil, fmt.Errorf("range [%g, %g] is empty or not finite", lo, hi)
	}
	if d < 1 || d > maxActivationDegree {
		return nil, fmt.Errorf("degree %d out of range 1..%d", d, maxActivationDegree)
	}
	f := activationFn(fn)
	n := d + 1
	fx := make([]float64, n)
	theta := make([]float64, n)
	for j := 0; j < n; j++ {
		theta[j] = math.Pi * (float64(j) + 0.5) / float64(n)
		u := math.Cos(theta[j])
		fx[j] = f(lo + (u+1)*(hi-lo)/2)
	}
	c := &cheb{fn: fn, lo: lo, hi: hi, coeffs: make([]float64, n)}
	for k := 0; k < n; k++ {
		s := 0.0
		for j := 0; j < n; j++ {
			s += fx[j] * math.Cos(float64(k)*theta[j])
		}
		c.coeffs[k] = 2 * s / float64(n)
	}
	c.coeffs[0] /= 2
	// |x| is even and relu(x) - x/2 is even: when the range is symmetric
	// the odd (even) coefficients vanish; zero the round-off so Lattigo
	// can skip those powers.
	if lo == -hi {
		for k := range c.coeffs {
			if (fn == "abs" && k%2 == 1) || (fn == "relu" && k%2 == 1 && k > 1) {
				c.coeffs[k] = 0
			}
		}
	}
	return c, nil
}

// maxActivationDegree bounds the degree of an approximation.
const maxActivationDegree = 255

// depthOf is the number of levels a degree-d polynomial takes.
func depthOf(d int) int {
	depth := 0
	for (1 << depth) < d+1 {
		depth++
	}
	return depth
}

// signPreset is a composite minimax approximation of sign: stages p_0 … p_k
// in the Chebyshev basis, each evaluated on the previous one's output. It
// is within a small error of ±1 on [-1, -2^-logAlpha] ∪ [2^-logAlpha, 1]
// (see tools/gen-sign). ReLU(x) = x·(1 + sign(x))/2 and |x| = x·sign(x)
// then cost one more multiplication, and their error is relative to |x|
// away from zero, which is what keeps deep networks accurate; a single
// Chebyshev interpolant's error is absolute and largest near zero.
type signPreset struct {
	logAlpha int
	stages   [][]float64
}

// DefaultSignPreset is the composite sign approximation used unless
// ApproxOptions.Sign names another: within 2^-13 of ±1 for |x| ≥ R/128,
// depth 11. ("a6-15-15", depth 8, is within only 2^-5.3, which costs a
// Keras model of the shared test data 8 points of accuracy.)
const DefaultSignPreset = "a7-7-15-15"

// SignPresets lists the composite sign approximations by name.
func SignPresets() []string {
	names := make([]string, 0, len(signPresets))
	for name := range signPresets {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

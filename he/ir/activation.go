package ir

import (
	"fmt"
	"math"
)

// Poly is the element-wise activation y = Σ_i Coeffs[i]·x^i (power basis),
// for activations trained as polynomials.
type Poly struct {
	Coeffs []float64 `json:"coeffs"`
}

// Eval evaluates the polynomial at x (Horner).
func (p *Poly) Eval(x float64) float64 {
	y := 0.0
	for i := len(p.Coeffs) - 1; i >= 0; i-- {
		y = y*x + p.Coeffs[i]
	}
	return y
}

// Degree is the degree, ignoring zero leading coefficients.
func (p *Poly) Degree() int {
	d := len(p.Coeffs) - 1
	for d > 0 && p.Coeffs[d] == 0 {
		d--
	}
	return d
}

// MaxPolyDegree bounds the degree of a Poly activation.
const MaxPolyDegree = 63

type polyOp struct{}

func (polyOp) attr(n *Node) bool { return n.Poly != nil && n.attrCount() == 1 }
func (polyOp) arity() int        { return 1 }

func (polyOp) shape(n *Node, in [][]int) ([]int, error) {
	p := n.Poly
	if len(p.Coeffs) == 0 || len(p.Coeffs) > MaxPolyDegree+1 {
		return nil, fmt.Errorf("%d coefficients, want 1 to %d", len(p.Coeffs), MaxPolyDegree+1)
	}
	if err := finiteSlices(p.Coeffs); err != nil {
		return nil, err
	}
	return in[0], nil
}

func (polyOp) run(n *Node, in []Tensor) Tensor {
	return elementwise(in[0], n.Poly.Eval)
}

type reluOp struct{}

func (reluOp) attr(n *Node) bool { return n.attrCount() == 0 }
func (reluOp) arity() int        { return 1 }

func (reluOp) shape(_ *Node, in [][]int) ([]int, error) { return in[0], nil }

func (reluOp) run(_ *Node, in []Tensor) Tensor {
	return elementwise(in[0], func(x float64) float64 { return math.Max(x, 0) })
}

func elementwise(x Tensor, f func(float64) float64) Tensor {
	out := make([]float64, len(x.Data))
	for i, v := range x.Data {
		out[i] = f(v)
	}
	return Tensor{Shape: x.Shape, Data: out}
}

package ir

import "fmt"

// Affine is y = Scale[c]·x + Shift[c] per channel c (dimension 0 of the
// value: the channel of a [C,H,W] map, the element of a vector). It is what
// BatchNormalization computes at inference, and how constant Mul, Add, Sub
// and Div by per-channel constants import. A Scale or Shift of length 1
// applies to every channel.
type Affine struct {
	Scale []float64 `json:"scale"`
	Shift []float64 `json:"shift"`
}

func (a *Affine) at(v []float64, c int) float64 {
	if len(v) == 1 {
		return v[0]
	}
	return v[c]
}

type affineOp struct{}

func (affineOp) attr(n *Node) bool { return n.Affine != nil && n.attrCount() == 1 }
func (affineOp) arity() int        { return 1 }

func (affineOp) shape(n *Node, in [][]int) ([]int, error) {
	a := n.Affine
	c := in[0][0]
	for _, v := range [][]float64{a.Scale, a.Shift} {
		if len(v) != 1 && len(v) != c {
			return nil, fmt.Errorf("scale and shift must have 1 or %d (channels) values, not %d", c, len(v))
		}
	}
	if err := finiteSlices(a.Scale, a.Shift); err != nil {
		return nil, err
	}
	return in[0], nil
}

func (affineOp) run(n *Node, in []Tensor) Tensor {
	a := n.Affine
	x := in[0]
	per := len(x.Data) / x.Shape[0]
	out := make([]float64, len(x.Data))
	for i, v := range x.Data {
		c := i / per
		out[i] = a.at(a.Scale, c)*v + a.at(a.Shift, c)
	}
	return Tensor{Shape: x.Shape, Data: out}
}

func (affineOp) linear(n *Node, in []int) *Matrix {
	a := n.Affine
	size := Prod(in)
	per := size / in[0]
	m := &Matrix{Rows: size, Cols: size, Bias: make([]float64, size)}
	for i := 0; i < size; i++ {
		c := i / per
		m.Bias[i] = a.at(a.Shift, c)
		if s := a.at(a.Scale, c); s != 0 {
			m.Entries = append(m.Entries, Entry{Row: i, Col: i, W: s})
		}
	}
	return m
}

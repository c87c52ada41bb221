package ir

import "fmt"

// Reshape gives a value another shape with the same elements in the same
// (row-major) order. ONNX Flatten and Reshape import as this.
type Reshape struct {
	Shape []int `json:"shape"` // without a batch dimension
}

type reshapeOp struct{}

func (reshapeOp) attr(n *Node) bool { return n.Reshape != nil && n.attrCount() == 1 }
func (reshapeOp) arity() int        { return 1 }

func (reshapeOp) shape(n *Node, in [][]int) ([]int, error) {
	s := n.Reshape.Shape
	if err := checkShape(s); err != nil {
		return nil, fmt.Errorf("target shape %v %v", s, err)
	}
	if Prod(s) != Prod(in[0]) {
		return nil, fmt.Errorf("target shape %v has %d elements, the input %v has %d", s, Prod(s), in[0], Prod(in[0]))
	}
	if len(s) != 1 && len(s) != 3 {
		return nil, fmt.Errorf("target shape %v: want [C,H,W] or [n]", s)
	}
	return append([]int(nil), s...), nil
}

func (reshapeOp) run(n *Node, in []Tensor) Tensor {
	return Tensor{Shape: append([]int(nil), n.Reshape.Shape...), Data: append([]float64(nil), in[0].Data...)}
}

func (reshapeOp) linear(_ *Node, in []int) *Matrix {
	perm := make([]int, Prod(in))
	for i := range perm {
		perm[i] = i
	}
	return permutation(perm)
}

// Transpose permutes the dimensions of a value: output dimension i is input
// dimension Perm[i] (ONNX Transpose without the batch dimension).
type Transpose struct {
	Perm []int `json:"perm"`
}

type transposeOp struct{}

func (transposeOp) attr(n *Node) bool { return n.Transpose != nil && n.attrCount() == 1 }
func (transposeOp) arity() int        { return 1 }

func (transposeOp) shape(n *Node, in [][]int) ([]int, error) {
	perm := n.Transpose.Perm
	s := in[0]
	if len(perm) != len(s) {
		return nil, fmt.Errorf("perm %v for a value of %d dimensions", perm, len(s))
	}
	seen := make([]bool, len(s))
	out := make([]int, len(s))
	for i, p := range perm {
		if p < 0 || p >= len(s) || seen[p] {
			return nil, fmt.Errorf("perm %v is not a permutation of 0..%d", perm, len(s)-1)
		}
		seen[p] = true
		out[i] = s[p]
	}
	if len(out) != 1 && len(out) != 3 {
		return nil, fmt.Errorf("output shape %v: want [C,H,W] or [n]", out)
	}
	return out, nil
}

// Gather returns, for each output index, the input index it copies.
func (t *Transpose) Gather(in []int) []int {
	rank := len(in)
	outShape := make([]int, rank)
	for i, p := range t.Perm {
		outShape[i] = in[p]
	}
	inStride := make([]int, rank)
	st := 1
	for d := rank - 1; d >= 0; d-- {
		inStride[d] = st
		st *= in[d]
	}
	total := Prod(in)
	gather := make([]int, total)
	idx := make([]int, rank) // output multi-index
	for o := 0; o < total; o++ {
		src := 0
		for i := 0; i < rank; i++ {
			src += idx[i] * inStride[t.Perm[i]]
		}
		gather[o] = src
		for d := rank - 1; d >= 0; d-- {
			if idx[d]++; idx[d] < outShape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return gather
}

func (transposeOp) run(n *Node, in []Tensor) Tensor {
	shape, _ := transposeOp{}.shape(n, [][]int{in[0].Shape})
	g := n.Transpose.Gather(in[0].Shape)
	out := make([]float64, len(g))
	for i, j := range g {
		out[i] = in[0].Data[j]
	}
	return Tensor{Shape: shape, Data: out}
}

func (transposeOp) linear(n *Node, in []int) *Matrix {
	return permutation(n.Transpose.Gather(in))
}

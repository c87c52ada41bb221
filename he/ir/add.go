package ir

import "fmt"

type addOp struct{}

func (addOp) attr(n *Node) bool { return n.attrCount() == 0 }
func (addOp) arity() int        { return 2 }

func (addOp) shape(_ *Node, in [][]int) ([]int, error) {
	if !shapeEq(in[0], in[1]) {
		return nil, fmt.Errorf("adds shapes %v and %v: both inputs must have one shape (no broadcasting)", in[0], in[1])
	}
	return in[0], nil
}

func (addOp) run(_ *Node, in []Tensor) Tensor {
	out := make([]float64, len(in[0].Data))
	for i := range out {
		out[i] = in[0].Data[i] + in[1].Data[i]
	}
	return Tensor{Shape: in[0].Shape, Data: out}
}

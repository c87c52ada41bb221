package ir

import "fmt"

// Dense is y = W x + b over a vector. Weights are [Out][In], flattened
// row-major (ONNX Gemm with transB = 1, or MatMul + Add).
type Dense struct {
	In      int       `json:"in"`
	Out     int       `json:"out"`
	Weights []float64 `json:"weights"`
	Bias    []float64 `json:"bias"`
}

type denseOp struct{}

func (denseOp) attr(n *Node) bool { return n.Dense != nil && n.attrCount() == 1 }
func (denseOp) arity() int        { return 1 }

func (denseOp) shape(n *Node, in [][]int) ([]int, error) {
	d := n.Dense
	if len(in[0]) != 1 {
		return nil, fmt.Errorf("input shape %v is not a vector; flatten or reshape it first", in[0])
	}
	if d.In != in[0][0] || d.Out <= 0 || d.Out > MaxTensorElems {
		return nil, fmt.Errorf("in %d, out %d, but the input has %d values", d.In, d.Out, in[0][0])
	}
	if int64(len(d.Weights)) != int64(d.In)*int64(d.Out) {
		return nil, fmt.Errorf("%d weights, want %d", len(d.Weights), int64(d.In)*int64(d.Out))
	}
	if len(d.Bias) != d.Out {
		return nil, fmt.Errorf("%d biases, want %d", len(d.Bias), d.Out)
	}
	if err := finiteSlices(d.Weights, d.Bias); err != nil {
		return nil, err
	}
	return []int{d.Out}, nil
}

func (denseOp) run(n *Node, in []Tensor) Tensor {
	d := n.Dense
	x := in[0].Data
	out := make([]float64, d.Out)
	for o := range out {
		s := d.Bias[o]
		row := d.Weights[o*d.In : (o+1)*d.In]
		for i, v := range x {
			s += row[i] * v
		}
		out[o] = s
	}
	return Tensor{Shape: []int{d.Out}, Data: out}
}

func (denseOp) linear(n *Node, _ []int) *Matrix {
	d := n.Dense
	m := &Matrix{Rows: d.Out, Cols: d.In, Bias: append([]float64(nil), d.Bias...)}
	for o := 0; o < d.Out; o++ {
		for i := 0; i < d.In; i++ {
			if v := d.Weights[o*d.In+i]; v != 0 {
				m.Entries = append(m.Entries, Entry{Row: o, Col: i, W: v})
			}
		}
	}
	return m
}

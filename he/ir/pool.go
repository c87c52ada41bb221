package ir

import (
	"fmt"
	"math"
)

// Pool is a pooling window over a [C,H,W] value (floor mode). Max pooling
// ignores padded positions; average pooling counts them only with
// CountIncludePad.
type Pool struct {
	Kernel          [2]int `json:"kernel"`
	Stride          [2]int `json:"stride"`
	Pads            [4]int `json:"pads"` // [top, left, bottom, right]
	CountIncludePad bool   `json:"count_include_pad,omitempty"`
}

// OutputHW is the spatial output size for an input of h×w.
func (p *Pool) OutputHW(h, w int) (int, int) {
	return ConvOutputSize(h, p.Kernel[0], p.Stride[0], p.Pads[0], p.Pads[2]),
		ConvOutputSize(w, p.Kernel[1], p.Stride[1], p.Pads[1], p.Pads[3])
}

// Window calls f with the input index (c,iy,ix flattened) of every
// in-bounds element of output (c, oy, ox)'s window, and returns how many
// window positions there are in all (padding included).
func (p *Pool) Window(h, w, c, oy, ox int, f func(idx int)) int {
	for ky := 0; ky < p.Kernel[0]; ky++ {
		iy := oy*p.Stride[0] + ky - p.Pads[0]
		if iy < 0 || iy >= h {
			continue
		}
		for kx := 0; kx < p.Kernel[1]; kx++ {
			ix := ox*p.Stride[1] + kx - p.Pads[1]
			if ix < 0 || ix >= w {
				continue
			}
			f((c*h+iy)*w + ix)
		}
	}
	return p.Kernel[0] * p.Kernel[1]
}

type poolOp struct{ max bool }

func (poolOp) attr(n *Node) bool { return n.Pool != nil && n.attrCount() == 1 }
func (poolOp) arity() int        { return 1 }

func (o poolOp) shape(n *Node, in [][]int) ([]int, error) {
	s := in[0]
	if len(s) != 3 {
		return nil, fmt.Errorf("input shape %v is not [C,H,W]", s)
	}
	p := n.Pool
	if err := checkWindow(p.Kernel, p.Stride, p.Pads, s[1], s[2]); err != nil {
		return nil, err
	}
	if o.max && p.CountIncludePad {
		return nil, fmt.Errorf("count_include_pad applies to average pooling only")
	}
	oh, ow := p.OutputHW(s[1], s[2])
	return []int{s[0], oh, ow}, nil
}

func (o poolOp) run(n *Node, in []Tensor) Tensor {
	p := n.Pool
	x := in[0]
	c, h, w := x.Shape[0], x.Shape[1], x.Shape[2]
	oh, ow := p.OutputHW(h, w)
	out := make([]float64, c*oh*ow)
	for ch := 0; ch < c; ch++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				acc, count := 0.0, 0
				if o.max {
					acc = math.Inf(-1)
				}
				total := p.Window(h, w, ch, oy, ox, func(idx int) {
					count++
					if o.max {
						acc = math.Max(acc, x.Data[idx])
					} else {
						acc += x.Data[idx]
					}
				})
				if !o.max {
					if p.CountIncludePad {
						count = total
					}
					acc /= float64(count)
				}
				out[(ch*oh+oy)*ow+ox] = acc
			}
		}
	}
	return Tensor{Shape: []int{c, oh, ow}, Data: out}
}

// linearMatrix is average pooling's matrix (max pooling has none).
func (o poolOp) linearMatrix(n *Node, in []int) *Matrix {
	p := n.Pool
	c, h, w := in[0], in[1], in[2]
	oh, ow := p.OutputHW(h, w)
	m := &Matrix{Rows: c * oh * ow, Cols: c * h * w, Bias: make([]float64, c*oh*ow)}
	for ch := 0; ch < c; ch++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				row := (ch*oh+oy)*ow + ox
				var cols []int
				total := p.Window(h, w, ch, oy, ox, func(idx int) { cols = append(cols, idx) })
				count := len(cols)
				if p.CountIncludePad {
					count = total
				}
				for _, col := range cols {
					m.Entries = append(m.Entries, Entry{Row: row, Col: col, W: 1 / float64(count)})
				}
			}
		}
	}
	return m
}

// avgPoolLinear makes average pooling a linearOp (max pooling is not).
type avgPoolLinear struct{ poolOp }

func (a avgPoolLinear) linear(n *Node, in []int) *Matrix { return a.linearMatrix(n, in) }

type gapOp struct{}

func (gapOp) attr(n *Node) bool { return n.attrCount() == 0 }
func (gapOp) arity() int        { return 1 }

func (gapOp) shape(_ *Node, in [][]int) ([]int, error) {
	if len(in[0]) != 3 {
		return nil, fmt.Errorf("input shape %v is not [C,H,W]", in[0])
	}
	return []int{in[0][0], 1, 1}, nil
}

func (gapOp) run(_ *Node, in []Tensor) Tensor {
	x := in[0]
	c := x.Shape[0]
	per := len(x.Data) / c
	out := make([]float64, c)
	for ch := range out {
		s := 0.0
		for _, v := range x.Data[ch*per : (ch+1)*per] {
			s += v
		}
		out[ch] = s / float64(per)
	}
	return Tensor{Shape: []int{c, 1, 1}, Data: out}
}

func (gapOp) linear(_ *Node, in []int) *Matrix {
	c := in[0]
	per := Prod(in) / c
	m := &Matrix{Rows: c, Cols: c * per, Bias: make([]float64, c)}
	for ch := 0; ch < c; ch++ {
		for k := 0; k < per; k++ {
			m.Entries = append(m.Entries, Entry{Row: ch, Col: ch*per + k, W: 1 / float64(per)})
		}
	}
	return m
}

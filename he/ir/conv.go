package ir

import "fmt"

// Conv is a 2-D convolution with bias over a [C,H,W] value, with zero
// padding, dilation 1 and one group. Weights are [Out][In][KH][KW],
// flattened row-major.
type Conv struct {
	InChannels  int       `json:"in_channels"`
	OutChannels int       `json:"out_channels"`
	Kernel      [2]int    `json:"kernel"` // [KH, KW]
	Stride      [2]int    `json:"stride"` // [SH, SW]
	Pads        [4]int    `json:"pads"`   // [top, left, bottom, right]
	Weights     []float64 `json:"weights"`
	Bias        []float64 `json:"bias"`
}

// ConvOutputSize is the output size along one axis of a convolution or a
// pooling window (floor mode).
func ConvOutputSize(in, kernel, stride, padBefore, padAfter int) int {
	return (in+padBefore+padAfter-kernel)/stride + 1
}

// OutputHW is the spatial output size for an input of h×w.
func (c *Conv) OutputHW(h, w int) (int, int) {
	return ConvOutputSize(h, c.Kernel[0], c.Stride[0], c.Pads[0], c.Pads[2]),
		ConvOutputSize(w, c.Kernel[1], c.Stride[1], c.Pads[1], c.Pads[3])
}

type convOp struct{}

func (convOp) attr(n *Node) bool { return n.Conv != nil && n.attrCount() == 1 }
func (convOp) arity() int        { return 1 }

func (convOp) shape(n *Node, in [][]int) ([]int, error) {
	c := n.Conv
	s := in[0]
	if len(s) != 3 {
		return nil, fmt.Errorf("input shape %v is not [C,H,W]", s)
	}
	if c.InChannels != s[0] {
		return nil, fmt.Errorf("in_channels %d but the input has %d channels", c.InChannels, s[0])
	}
	if err := checkWindow(c.Kernel, c.Stride, c.Pads, s[1], s[2]); err != nil {
		return nil, err
	}
	if c.OutChannels <= 0 || c.OutChannels > 1<<14 {
		return nil, fmt.Errorf("out_channels %d out of range 1..%d", c.OutChannels, 1<<14)
	}
	if want := int64(c.OutChannels) * int64(c.InChannels) * int64(c.Kernel[0]) * int64(c.Kernel[1]); int64(len(c.Weights)) != want {
		return nil, fmt.Errorf("%d weights, want %d", len(c.Weights), want)
	}
	if len(c.Bias) != c.OutChannels {
		return nil, fmt.Errorf("%d biases, want %d", len(c.Bias), c.OutChannels)
	}
	if err := finiteSlices(c.Weights, c.Bias); err != nil {
		return nil, err
	}
	oh, ow := c.OutputHW(s[1], s[2])
	return []int{c.OutChannels, oh, ow}, nil
}

// checkWindow checks a kernel, stride and padding against an h×w input.
func checkWindow(kernel, stride [2]int, pads [4]int, h, w int) error {
	for i := 0; i < 2; i++ {
		if kernel[i] < 1 || kernel[i] > 64 || stride[i] < 1 || stride[i] > 64 {
			return fmt.Errorf("kernel %v or stride %v out of range 1..64", kernel, stride)
		}
	}
	for _, p := range pads {
		if p < 0 || p > 64 {
			return fmt.Errorf("pads %v out of range 0..64", pads)
		}
	}
	if pads[0] >= kernel[0] || pads[2] >= kernel[0] || pads[1] >= kernel[1] || pads[3] >= kernel[1] {
		return fmt.Errorf("pads %v: a pad must be smaller than the kernel %v", pads, kernel)
	}
	if h+pads[0]+pads[2] < kernel[0] || w+pads[1]+pads[3] < kernel[1] {
		return fmt.Errorf("kernel %v larger than the padded input %dx%d", kernel, h, w)
	}
	return nil
}

func (convOp) run(n *Node, in []Tensor) Tensor {
	c := n.Conv
	x := in[0]
	h, w := x.Shape[1], x.Shape[2]
	oh, ow := c.OutputHW(h, w)
	kh, kw := c.Kernel[0], c.Kernel[1]
	out := make([]float64, c.OutChannels*oh*ow)
	for o := 0; o < c.OutChannels; o++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				s := c.Bias[o]
				for i := 0; i < c.InChannels; i++ {
					for ky := 0; ky < kh; ky++ {
						iy := oy*c.Stride[0] + ky - c.Pads[0]
						if iy < 0 || iy >= h {
							continue
						}
						wrow := c.Weights[((o*c.InChannels+i)*kh+ky)*kw:]
						xrow := x.Data[(i*h+iy)*w:]
						for kx := 0; kx < kw; kx++ {
							ix := ox*c.Stride[1] + kx - c.Pads[1]
							if ix < 0 || ix >= w {
								continue
							}
							s += wrow[kx] * xrow[ix]
						}
					}
				}
				out[(o*oh+oy)*ow+ox] = s
			}
		}
	}
	return Tensor{Shape: []int{c.OutChannels, oh, ow}, Data: out}
}

func (convOp) linear(n *Node, in []int) *Matrix {
	c := n.Conv
	h, w := in[1], in[2]
	oh, ow := c.OutputHW(h, w)
	kh, kw := c.Kernel[0], c.Kernel[1]
	m := &Matrix{Rows: c.OutChannels * oh * ow, Cols: c.InChannels * h * w, Bias: make([]float64, c.OutChannels*oh*ow)}
	for o := 0; o < c.OutChannels; o++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				row := (o*oh+oy)*ow + ox
				m.Bias[row] = c.Bias[o]
				for i := 0; i < c.InChannels; i++ {
					for ky := 0; ky < kh; ky++ {
						iy := oy*c.Stride[0] + ky - c.Pads[0]
						if iy < 0 || iy >= h {
							continue
						}
						for kx := 0; kx < kw; kx++ {
							ix := ox*c.Stride[1] + kx - c.Pads[1]
							if ix < 0 || ix >= w {
								continue
							}
							if v := c.Weights[((o*c.InChannels+i)*kh+ky)*kw+kx]; v != 0 {
								m.Entries = append(m.Entries, Entry{Row: row, Col: (i*h+iy)*w + ix, W: v})
							}
						}
					}
				}
			}
		}
	}
	return m
}

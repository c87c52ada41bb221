package he

import (
	"fmt"
)

// Reference evaluates the graph in float64 on a plaintext input. It is the
// ground truth that every encrypted result is checked against.
func (g *Graph) Reference(x []float64) ([]float64, error) {
	if len(x) != g.InputSize() {
		return nil, fmt.Errorf("reference: input has %d values, model %s wants %d", len(x), g.Name, g.InputSize())
	}
	cur := append([]float64(nil), x...)
	shape := g.Input
	for _, l := range g.Layers {
		switch l.Op {
		case OpConv2D:
			cur, shape = conv2D(l.Conv, cur, shape)
		case OpDense:
			cur = dense(l.Dense, cur)
			shape = []int{l.Dense.Out}
		case OpPoly:
			for i, v := range cur {
				cur[i] = evalPoly(l.Poly.Coeffs, v)
			}
		case OpFlatten:
			shape = []int{len(cur)}
		}
	}
	return cur, nil
}

func conv2D(c *Conv2D, x []float64, shape []int) ([]float64, []int) {
	h, w := shape[1], shape[2]
	oh, ow := ConvOutputSize(h, c.Kernel, c.Stride, c.Padding), ConvOutputSize(w, c.Kernel, c.Stride, c.Padding)
	out := make([]float64, c.OutChannels*oh*ow)
	k := c.Kernel
	for o := 0; o < c.OutChannels; o++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				s := c.Bias[o]
				for i := 0; i < c.InChannels; i++ {
					for ky := 0; ky < k; ky++ {
						iy := oy*c.Stride + ky - c.Padding
						if iy < 0 || iy >= h {
							continue
						}
						for kx := 0; kx < k; kx++ {
							ix := ox*c.Stride + kx - c.Padding
							if ix < 0 || ix >= w {
								continue
							}
							s += c.Weights[((o*c.InChannels+i)*k+ky)*k+kx] * x[(i*h+iy)*w+ix]
						}
					}
				}
				out[(o*oh+oy)*ow+ox] = s
			}
		}
	}
	return out, []int{c.OutChannels, oh, ow}
}

func dense(d *Dense, x []float64) []float64 {
	out := make([]float64, d.Out)
	for o := 0; o < d.Out; o++ {
		s := d.Bias[o]
		row := d.Weights[o*d.In : (o+1)*d.In]
		for i, v := range x {
			s += row[i] * v
		}
		out[o] = s
	}
	return out
}

func evalPoly(coeffs []float64, x float64) float64 {
	// Horner.
	y := 0.0
	for i := len(coeffs) - 1; i >= 0; i-- {
		y = y*x + coeffs[i]
	}
	return y
}

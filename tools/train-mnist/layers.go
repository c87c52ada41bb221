package main

// The three layer kinds of the network, each with a forward pass and a
// backward pass. Parameters are passed in as slices so that one flat vector
// can hold all of them (see params in net.go). Conventions:
//
//   - forward writes its output y (len = output size);
//   - backward takes the layer input x and the loss gradient dy with respect
//     to the output, ADDS the parameter gradients to dw, db (or dc), and
//     OVERWRITES dx with the gradient with respect to x (skipped if dx is nil).
//
// dense takes batches: xs[j], ys[j], dys[j], dxs[j] belong to input j, and
// the parameter gradients are summed over the batch.

// conv2D is a convolution over a C×H×W tensor with square kernels, zero
// padding and a stride. Weights are [out][in][k][k] row-major and the output
// is out×oh×ow row-major, exactly as in ir.Conv and ir.Graph.Run.
//
// It works on patches ("im2col"): cols holds, for each output position, the
// in·k·k input values under the kernel (zero where the kernel hangs over the
// padding), so forward and backward are plain dot products. Each output is
// summed in the same order as ir.Graph.Run (padding adds exact zeros).
type conv2D struct {
	in, out, k, stride, pad int
	h, w                    int     // input height and width
	oh, ow                  int     // output height and width
	patch                   []int32 // patch value t of position q is x[patch[q*K+t]], or 0 if -1
}

func newConv2D(in, out, k, stride, pad, h, w int) conv2D {
	c := conv2D{
		in: in, out: out, k: k, stride: stride, pad: pad, h: h, w: w,
		oh: (h+2*pad-k)/stride + 1,
		ow: (w+2*pad-k)/stride + 1,
	}
	c.patch = make([]int32, 0, c.oh*c.ow*c.patchSize())
	for oy := 0; oy < c.oh; oy++ {
		for ox := 0; ox < c.ow; ox++ {
			for i := 0; i < in; i++ {
				for ky := 0; ky < k; ky++ {
					for kx := 0; kx < k; kx++ {
						iy, ix := oy*stride+ky-pad, ox*stride+kx-pad
						if iy < 0 || iy >= h || ix < 0 || ix >= w {
							c.patch = append(c.patch, -1)
						} else {
							c.patch = append(c.patch, int32((i*h+iy)*w+ix))
						}
					}
				}
			}
		}
	}
	return c
}

func (c *conv2D) inSize() int    { return c.in * c.h * c.w }
func (c *conv2D) outSize() int   { return c.out * c.oh * c.ow }
func (c *conv2D) patchSize() int { return c.in * c.k * c.k }
func (c *conv2D) colsSize() int  { return c.oh * c.ow * c.patchSize() }
func (c *conv2D) nWeights() int  { return c.out * c.patchSize() }
func (c *conv2D) positions() int { return c.oh * c.ow }

// forward fills cols (len colsSize) with the patches of x and writes y.
func (c *conv2D) forward(w, b, x, cols, y []float64) {
	cols = cols[:len(c.patch)]
	for t, j := range c.patch {
		if j < 0 {
			cols[t] = 0
		} else {
			cols[t] = x[j]
		}
	}
	K, P := c.patchSize(), c.positions()
	for q := 0; q < P; q++ {
		patch := cols[q*K : (q+1)*K]
		for o := 0; o < c.out; o++ {
			row := w[o*K : (o+1)*K]
			s := b[o]
			for t, v := range patch {
				s += row[t] * v
			}
			y[o*P+q] = s
		}
	}
}

// backward takes the patches cols that forward filled in place of x.
func (c *conv2D) backward(w, cols, dy, dw, db, dx []float64) {
	K, P := c.patchSize(), c.positions()
	if dx != nil {
		clear(dx[:c.inSize()])
	}
	for o := 0; o < c.out; o++ {
		row, grow := w[o*K:(o+1)*K], dw[o*K:(o+1)*K]
		for q := 0; q < P; q++ {
			g := dy[o*P+q]
			db[o] += g
			patch := cols[q*K : (q+1)*K]
			for t, v := range patch {
				grow[t] += g * v
			}
			if dx != nil {
				for t, j := range c.patch[q*K : (q+1)*K] {
					if j >= 0 {
						dx[j] += g * row[t]
					}
				}
			}
		}
	}
}

// dense is y = W x + b with W stored [out][in] row-major, as in ir.Dense.
// It works on a batch of inputs at once (xs[j] is the j-th input), so each
// row of W is read from memory once per batch rather than once per input:
// for the 845×100 layer that is what bounds the speed of training. Each
// output is summed in the same order as ir.Graph.Run.
type dense struct {
	in, out int
}

func (d *dense) forward(w, b []float64, xs, ys [][]float64) {
	for o := 0; o < d.out; o++ {
		row := w[o*d.in : (o+1)*d.in]
		j := 0
		for ; j+4 <= len(xs); j += 4 {
			x0, x1, x2, x3 := xs[j][:len(row)], xs[j+1][:len(row)], xs[j+2][:len(row)], xs[j+3][:len(row)]
			s0, s1, s2, s3 := b[o], b[o], b[o], b[o]
			for i, r := range row {
				s0 += r * x0[i]
				s1 += r * x1[i]
				s2 += r * x2[i]
				s3 += r * x3[i]
			}
			ys[j][o], ys[j+1][o], ys[j+2][o], ys[j+3][o] = s0, s1, s2, s3
		}
		for ; j < len(xs); j++ {
			x := xs[j][:len(row)]
			s := b[o]
			for i, r := range row {
				s += r * x[i]
			}
			ys[j][o] = s
		}
	}
}

func (d *dense) backward(w []float64, xs, dys [][]float64, dw, db []float64, dxs [][]float64) {
	for _, dx := range dxs {
		clear(dx[:d.in])
	}
	for o := 0; o < d.out; o++ {
		row := w[o*d.in : (o+1)*d.in]
		grow := dw[o*d.in : (o+1)*d.in]
		j := 0
		for ; j+4 <= len(xs); j += 4 {
			g0, g1, g2, g3 := dys[j][o], dys[j+1][o], dys[j+2][o], dys[j+3][o]
			db[o] += g0 + g1 + g2 + g3
			x0, x1, x2, x3 := xs[j][:len(grow)], xs[j+1][:len(grow)], xs[j+2][:len(grow)], xs[j+3][:len(grow)]
			for i := range grow {
				grow[i] += g0*x0[i] + g1*x1[i] + g2*x2[i] + g3*x3[i]
			}
			if dxs != nil {
				d0, d1, d2, d3 := dxs[j][:len(row)], dxs[j+1][:len(row)], dxs[j+2][:len(row)], dxs[j+3][:len(row)]
				for i, r := range row {
					d0[i] += g0 * r
					d1[i] += g1 * r
					d2[i] += g2 * r
					d3[i] += g3 * r
				}
			}
		}
		for ; j < len(xs); j++ {
			g := dys[j][o]
			db[o] += g
			x := xs[j][:len(grow)]
			for i := range grow {
				grow[i] += g * x[i]
			}
			if dxs != nil {
				dx := dxs[j][:len(row)]
				for i, r := range row {
					dx[i] += g * r
				}
			}
		}
	}
}

// poly is the element-wise activation y = c[0] + c[1] x + ... + c[d] x^d,
// with one coefficient vector c for the whole layer (ir.Poly). n is the
// number of elements.
type poly struct {
	n      int
	degree int
}

func (p *poly) forward(c, x, y []float64) {
	for i, v := range x[:p.n] {
		s := 0.0
		for j := p.degree; j >= 0; j-- { // Horner, as ir.Poly.Eval
			s = s*v + c[j]
		}
		y[i] = s
	}
}

func (p *poly) backward(c, x, dy, dc, dx []float64) {
	for i, v := range x[:p.n] {
		g := dy[i]
		// d/dx: sum_j j c[j] x^(j-1); d/dc[j]: x^j.
		deriv, pow := 0.0, 1.0
		for j := 0; j <= p.degree; j++ {
			dc[j] += g * pow
			if j < p.degree {
				deriv += float64(j+1) * c[j+1] * pow
			}
			pow *= v
		}
		if dx != nil {
			dx[i] = g * deriv
		}
	}
}

// backwardInput overwrites dxs[j] with the gradient with respect to xs[j]
// (Wᵀ dys[j]) and leaves the parameter gradients alone; backwardWeights
// adds the parameter gradients and leaves dxs alone. Together they do what
// backward does, for DP-SGD, which needs each input's dys before it can
// scale them (see clippedGrad).
func (d *dense) backwardInput(w []float64, dys, dxs [][]float64) {
	for _, dx := range dxs {
		clear(dx[:d.in])
	}
	for o := 0; o < d.out; o++ {
		row := w[o*d.in : (o+1)*d.in]
		j := 0
		for ; j+4 <= len(dys); j += 4 {
			g0, g1, g2, g3 := dys[j][o], dys[j+1][o], dys[j+2][o], dys[j+3][o]
			d0, d1, d2, d3 := dxs[j][:len(row)], dxs[j+1][:len(row)], dxs[j+2][:len(row)], dxs[j+3][:len(row)]
			for i, r := range row {
				d0[i] += g0 * r
				d1[i] += g1 * r
				d2[i] += g2 * r
				d3[i] += g3 * r
			}
		}
		for ; j < len(dys); j++ {
			g := dys[j][o]
			dx := dxs[j][:len(row)]
			for i, r := range row {
				dx[i] += g * r
			}
		}
	}
}

func (d *dense) backwardWeights(xs, dys [][]float64, dw, db []float64) {
	for o := 0; o < d.out; o++ {
		grow := dw[o*d.in : (o+1)*d.in]
		j := 0
		for ; j+4 <= len(xs); j += 4 {
			g0, g1, g2, g3 := dys[j][o], dys[j+1][o], dys[j+2][o], dys[j+3][o]
			db[o] += g0 + g1 + g2 + g3
			x0, x1, x2, x3 := xs[j][:len(grow)], xs[j+1][:len(grow)], xs[j+2][:len(grow)], xs[j+3][:len(grow)]
			for i := range grow {
				grow[i] += g0*x0[i] + g1*x1[i] + g2*x2[i] + g3*x3[i]
			}
		}
		for ; j < len(xs); j++ {
			g := dys[j][o]
			db[o] += g
			x := xs[j][:len(grow)]
			for i := range grow {
				grow[i] += g * x[i]
			}
		}
	}
}

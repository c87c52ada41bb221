package main

import "math"

// The layer kinds of the network, each with a forward and a backward pass.
// Parameters are slices into one flat vector (see params in net.go). Values
// of a batch of B images are stored one image after the other, each image's
// value row-major ([C][H][W] for a feature map). Conventions:
//
//   - forward writes its output;
//   - backward takes what forward saved and the loss gradient with respect
//     to the output, ADDS the parameter gradients to dw (dgamma, dc, ...),
//     and for the gradient with respect to the input either ADDS (conv,
//     which may feed two branches) or OVERWRITES (the others), as each
//     method says.
//
// Every forward pass in eval mode sums in the same order as the ir
// package's reference executor (ir.Graph.Run), so that the exported graph
// computes what the trainer computes.

// conv is a convolution over a C×H×W value with a square k×k kernel, equal
// zero padding on all sides, a stride and no bias (a batch normalization
// follows every convolution, which makes a bias redundant; the exported
// conv node has zero biases). Weights are [out][in][k][k] row-major, as in
// ir.Conv.
//
// It works on patches ("im2col"): cols holds, for each output position q,
// the K = in·k·k input values under the kernel (zero where it hangs over
// the padding), in the order ir.Conv sums them, so the three products of
// forward and backward are dense matrix products (gemmNT).
type conv struct {
	in, out, k, stride, pad int
	h, w                    int     // input height and width
	oh, ow                  int     // output height and width
	patch                   []int32 // patch value t of position q is x[patch[q*K+t]], or 0 if -1
}

func newConv(in, out, k, stride, pad, h, w int) conv {
	c := conv{
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

func (c *conv) inSize() int    { return c.in * c.h * c.w }
func (c *conv) outSize() int   { return c.out * c.oh * c.ow }
func (c *conv) patchSize() int { return c.in * c.k * c.k }
func (c *conv) colsSize() int  { return c.oh * c.ow * c.patchSize() }
func (c *conv) nWeights() int  { return c.out * c.patchSize() }
func (c *conv) positions() int { return c.oh * c.ow }

// forward computes the output y of one image x, filling cols (colsSize)
// with its patches.
func (c *conv) forward(w, x, cols, y []float64) {
	cols = cols[:len(c.patch)]
	for t, j := range c.patch {
		if j < 0 {
			cols[t] = 0
		} else {
			cols[t] = x[j]
		}
	}
	// y[o][q] = Σ_t w[o][t]·cols[q][t]
	gemmNT(y, w, cols, c.out, c.positions(), c.patchSize(), false)
}

// convScratch is the scratch space of conv.backward for the largest conv.
type convScratch struct {
	colsT, dyT, wT, dcols []float64
}

func newConvScratch(convs ...*conv) *convScratch {
	m := 0
	for _, c := range convs {
		m = max(m, c.colsSize(), c.nWeights(), c.outSize())
	}
	return &convScratch{colsT: make([]float64, m), dyT: make([]float64, m), wT: make([]float64, m), dcols: make([]float64, m)}
}

// backward takes the patches cols that forward filled for one image and
// the gradient dy of its output; it adds the weight gradient to dw and, if
// dx is not nil, ADDS the input gradient to dx. wT must hold w transposed
// (see transposeWeights), computed once per batch.
func (c *conv) backward(wT, cols, dy, dw, dx []float64, s *convScratch) {
	K, P := c.patchSize(), c.positions()
	// dw[o][t] += Σ_q dy[o][q]·cols[q][t] = Σ_q dy[o][q]·colsT[t][q]
	colsT := s.colsT[:K*P]
	transpose(colsT, cols[:P*K], P, K)
	gemmNT(dw, dy, colsT, c.out, K, P, true)
	if dx == nil {
		return
	}
	// dcols[q][t] = Σ_o dy[o][q]·w[o][t] = Σ_o dyT[q][o]·wT[t][o]
	dyT := s.dyT[:P*c.out]
	transpose(dyT, dy[:c.out*P], c.out, P)
	dcols := s.dcols[:P*K]
	gemmNT(dcols, dyT, wT, P, K, c.out, false)
	for t, j := range c.patch {
		if j >= 0 {
			dx[j] += dcols[t]
		}
	}
}

// transposeWeights writes w ([out][K]) transposed to wT ([K][out]).
func (c *conv) transposeWeights(w, wT []float64) {
	transpose(wT, w, c.out, c.patchSize())
}

// transpose writes the r×c matrix a transposed to t (c×r).
func transpose(t, a []float64, r, c int) {
	for i := 0; i < r; i++ {
		row := a[i*c : (i+1)*c]
		for j, v := range row {
			t[j*r+i] = v
		}
	}
}

// gemmNT computes C = A·Bᵀ for A m×k, B n×k and C m×n, all row-major:
// C[i][j] = Σ_l A[i][l]·B[j][l], summed in the order of l from 0 (so each
// entry is the plain dot product), then stored, or added to C if acc.
// Tiles of 4 rows of A by 2 rows of B keep eight sums in registers.
func gemmNT(c, a, b []float64, m, n, k int, acc bool) {
	put := func(i, j int, s float64) {
		if acc {
			c[i*n+j] += s
		} else {
			c[i*n+j] = s
		}
	}
	i := 0
	for ; i+4 <= m; i += 4 {
		a0, a1, a2, a3 := a[i*k:(i+1)*k], a[(i+1)*k:(i+2)*k], a[(i+2)*k:(i+3)*k], a[(i+3)*k:(i+4)*k]
		j := 0
		for ; j+2 <= n; j += 2 {
			b0, b1 := b[j*k:(j+1)*k], b[(j+1)*k:(j+2)*k]
			b1, a0, a1, a2, a3 := b1[:len(b0)], a0[:len(b0)], a1[:len(b0)], a2[:len(b0)], a3[:len(b0)]
			var s00, s01, s10, s11, s20, s21, s30, s31 float64
			for l, x0 := range b0 {
				x1 := b1[l]
				v := a0[l]
				s00 += v * x0
				s01 += v * x1
				v = a1[l]
				s10 += v * x0
				s11 += v * x1
				v = a2[l]
				s20 += v * x0
				s21 += v * x1
				v = a3[l]
				s30 += v * x0
				s31 += v * x1
			}
			put(i, j, s00)
			put(i, j+1, s01)
			put(i+1, j, s10)
			put(i+1, j+1, s11)
			put(i+2, j, s20)
			put(i+2, j+1, s21)
			put(i+3, j, s30)
			put(i+3, j+1, s31)
		}
		for ; j < n; j++ {
			b0 := b[j*k : (j+1)*k]
			a0, a1, a2, a3 := a0[:len(b0)], a1[:len(b0)], a2[:len(b0)], a3[:len(b0)]
			var s0, s1, s2, s3 float64
			for l, x := range b0 {
				s0 += a0[l] * x
				s1 += a1[l] * x
				s2 += a2[l] * x
				s3 += a3[l] * x
			}
			put(i, j, s0)
			put(i+1, j, s1)
			put(i+2, j, s2)
			put(i+3, j, s3)
		}
	}
	for ; i < m; i++ {
		a0 := a[i*k : (i+1)*k]
		for j := 0; j < n; j++ {
			b0 := b[j*k : (j+1)*k]
			a0 := a0[:len(b0)]
			s := 0.0
			for l, x := range b0 {
				s += a0[l] * x
			}
			put(i, j, s)
		}
	}
}

// bnEps is the ε of batch normalization.
const bnEps = 1e-5

// batchNorm normalizes each channel of a [c][per] value. In training it
// uses the statistics of the batch (mean and biased variance over the B
// images and per positions) and learns the scale gamma and shift beta; at
// inference it is the per-channel affine map of the running statistics
// (affine, as ir.Affine).
type batchNorm struct {
	c, per int
}

func (l *batchNorm) size() int { return l.c * l.per }

// forwardTrain normalizes z (B images) with the batch statistics, writing
// the normalized value to xhat, the output gamma·xhat + beta to u, and the
// statistics to mean, variance and invstd = 1/sqrt(variance + ε).
func (l *batchNorm) forwardTrain(gamma, beta, z, xhat, u, mean, variance, invstd []float64, B int) {
	size, per := l.size(), l.per
	m := float64(B * per)
	for c := 0; c < l.c; c++ {
		s := 0.0
		for b := range B {
			for _, v := range z[b*size+c*per:][:per] {
				s += v
			}
		}
		mu := s / m
		ss := 0.0
		for b := range B {
			for _, v := range z[b*size+c*per:][:per] {
				ss += (v - mu) * (v - mu)
			}
		}
		va := ss / m
		is := 1 / math.Sqrt(va+bnEps)
		mean[c], variance[c], invstd[c] = mu, va, is
		g, bt := gamma[c], beta[c]
		for b := range B {
			o := b*size + c*per
			zs, xs, us := z[o:o+per], xhat[o:o+per], u[o:o+per]
			for i, v := range zs {
				xh := (v - mu) * is
				xs[i] = xh
				us[i] = g*xh + bt
			}
		}
	}
}

// affine returns the inference form of the normalization with running
// statistics rmean and rvar: u = scale·z + shift per channel.
func (l *batchNorm) affine(gamma, beta, rmean, rvar []float64) (scale, shift []float64) {
	scale, shift = make([]float64, l.c), make([]float64, l.c)
	for c := range scale {
		scale[c] = gamma[c] / math.Sqrt(rvar[c]+bnEps)
		shift[c] = beta[c] - rmean[c]*scale[c]
	}
	return scale, shift
}

// forwardEval computes u = scale·z + shift for B images (as ir.Affine).
func (l *batchNorm) forwardEval(scale, shift, z, u []float64, B int) {
	size, per := l.size(), l.per
	for b := range B {
		for c := 0; c < l.c; c++ {
			o := b*size + c*per
			a, s := scale[c], shift[c]
			us := u[o : o+per]
			for i, v := range z[o : o+per] {
				us[i] = a*v + s
			}
		}
	}
}

// backward takes the normalized xhat and invstd of forwardTrain and the
// output gradient du, adds the gradients of gamma and beta and
// OVERWRITES dz with the input gradient (through the batch statistics).
func (l *batchNorm) backward(gamma, xhat, invstd, du, dgamma, dbeta, dz []float64, B int) {
	size, per := l.size(), l.per
	m := float64(B * per)
	for c := 0; c < l.c; c++ {
		sdy, sdyx := 0.0, 0.0
		for b := range B {
			o := b*size + c*per
			xs := xhat[o : o+per]
			for i, g := range du[o : o+per] {
				sdy += g
				sdyx += g * xs[i]
			}
		}
		dgamma[c] += sdyx
		dbeta[c] += sdy
		k, mdy, mdyx := gamma[c]*invstd[c], sdy/m, sdyx/m
		for b := range B {
			o := b*size + c*per
			xs, ds := xhat[o:o+per], dz[o:o+per]
			for i, g := range du[o : o+per] {
				ds[i] = k * (g - mdy - xs[i]*mdyx)
			}
		}
	}
}

// poly is the element-wise activation y = c[0] + c[1] x + ... + c[d] x^d
// with one coefficient vector for the whole value (ir.Poly).
type poly struct {
	degree int
}

func (p *poly) forward(c, x, y []float64) {
	for i, v := range x {
		s := 0.0
		for j := p.degree; j >= 0; j-- { // Horner, as ir.Poly.Eval
			s = s*v + c[j]
		}
		y[i] = s
	}
}

// backward adds the coefficient gradient to dc and OVERWRITES dx.
func (p *poly) backward(c, x, dy, dc, dx []float64) {
	for i, v := range x {
		g := dy[i]
		// d/dx: Σ_j j c[j] x^(j-1); d/dc[j]: x^j.
		deriv, pow := 0.0, 1.0
		for j := 0; j <= p.degree; j++ {
			dc[j] += g * pow
			if j < p.degree {
				deriv += float64(j+1) * c[j+1] * pow
			}
			pow *= v
		}
		dx[i] = g * deriv
	}
}

// add is y = a + b element-wise (the residual connection); its backward
// pass hands dy to both inputs unchanged.
func add(a, b, y []float64) {
	for i := range y {
		y[i] = a[i] + b[i]
	}
}

// gap is global average pooling of one image's [c][per] value to [c].
func gap(c, per int, x, y []float64) {
	for ch := 0; ch < c; ch++ {
		s := 0.0
		for _, v := range x[ch*per : (ch+1)*per] {
			s += v
		}
		y[ch] = s / float64(per)
	}
}

// gapBackward OVERWRITES dx with the gradient of gap.
func gapBackward(c, per int, dy, dx []float64) {
	for ch := 0; ch < c; ch++ {
		g := dy[ch] / float64(per)
		for i := range dx[ch*per : (ch+1)*per] {
			dx[ch*per+i] = g
		}
	}
}

// dense is y = W x + b for one input, W [out][in] row-major as ir.Dense.
type dense struct {
	in, out int
}

func (d *dense) forward(w, b, x, y []float64) {
	x = x[:d.in]
	for o := 0; o < d.out; o++ {
		row := w[o*d.in : (o+1)*d.in]
		s := b[o]
		for i, v := range x {
			s += row[i] * v
		}
		y[o] = s
	}
}

// backward adds the parameter gradients to dw, db and OVERWRITES dx.
func (d *dense) backward(w, x, dy, dw, db, dx []float64) {
	clear(dx[:d.in])
	for o := 0; o < d.out; o++ {
		g := dy[o]
		db[o] += g
		row, grow := w[o*d.in:(o+1)*d.in], dw[o*d.in:(o+1)*d.in]
		for i, v := range x[:d.in] {
			grow[i] += g * v
			dx[i] += g * row[i]
		}
	}
}

package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/hegate/hegate/tools/internal/nn"
)

func randVec(rng *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return v
}

// checkGrad compares an analytic gradient with central finite differences of
// loss with respect to each entry of x, to a relative tolerance tol.
func checkGrad(t *testing.T, name string, x, analytic []float64, tol float64, loss func() float64) {
	t.Helper()
	const h = 1e-6
	for i := range x {
		old := x[i]
		x[i] = old + h
		lp := loss()
		x[i] = old - h
		lm := loss()
		x[i] = old
		num := (lp - lm) / (2 * h)
		if d := math.Abs(num - analytic[i]); d > tol*max(1, math.Abs(num)) {
			t.Errorf("%s[%d]: analytic %.9g, numeric %.9g", name, i, analytic[i], num)
			return
		}
	}
}

// dot is the test loss: a fixed random projection of a layer's output.
func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// naiveConv is the convolution as ir.Conv.run computes it (no bias).
func naiveConv(c *conv, w, x []float64) []float64 {
	y := make([]float64, c.outSize())
	for o := 0; o < c.out; o++ {
		for oy := 0; oy < c.oh; oy++ {
			for ox := 0; ox < c.ow; ox++ {
				s := 0.0
				for i := 0; i < c.in; i++ {
					for ky := 0; ky < c.k; ky++ {
						for kx := 0; kx < c.k; kx++ {
							iy, ix := oy*c.stride+ky-c.pad, ox*c.stride+kx-c.pad
							if iy >= 0 && iy < c.h && ix >= 0 && ix < c.w {
								s += w[((o*c.in+i)*c.k+ky)*c.k+kx] * x[(i*c.h+iy)*c.w+ix]
							}
						}
					}
				}
				y[(o*c.oh+oy)*c.ow+ox] = s
			}
		}
	}
	return y
}

var convCases = []struct{ in, out, k, stride, pad, h, w int }{
	{1, 1, 1, 1, 0, 3, 3},
	{2, 3, 3, 1, 1, 5, 4},
	{2, 5, 3, 2, 1, 7, 6}, // stride 2 with padding, odd sizes
	{1, 8, 3, 2, 1, 8, 8}, // the stem's geometry
	{3, 6, 1, 2, 0, 7, 7}, // the 1×1 projection
	{4, 9, 3, 1, 1, 4, 4}, // a remainder in both tiles of gemmNT
}

func TestConvForward(t *testing.T) {
	for _, tt := range convCases {
		rng := rand.New(rand.NewPCG(1, 3))
		c := newConv(tt.in, tt.out, tt.k, tt.stride, tt.pad, tt.h, tt.w)
		w, x := randVec(rng, c.nWeights()), randVec(rng, c.inSize())
		y, cols := make([]float64, c.outSize()), make([]float64, c.colsSize())
		c.forward(w, x, cols, y)
		want := naiveConv(&c, w, x)
		for i := range want {
			if y[i] != want[i] { // same summation order: exact
				t.Fatalf("%+v: y[%d] = %v, want %v", tt, i, y[i], want[i])
			}
		}
	}
}

func TestConvGradient(t *testing.T) {
	for _, tt := range convCases {
		t.Run(fmt.Sprintf("ok/%+v", tt), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			c := newConv(tt.in, tt.out, tt.k, tt.stride, tt.pad, tt.h, tt.w)
			w, x := randVec(rng, c.nWeights()), randVec(rng, c.inSize())
			r := randVec(rng, c.outSize())
			y, cols := make([]float64, c.outSize()), make([]float64, c.colsSize())
			loss := func() float64 { c.forward(w, x, cols, y); return dot(y, r) }
			loss()
			wT := make([]float64, len(w))
			c.transposeWeights(w, wT)
			dw := make([]float64, len(w))
			dx := randVec(rng, len(x)) // backward adds to dx
			dx0 := append([]float64(nil), dx...)
			c.backward(wT, cols, r, dw, dx, newConvScratch(&c))
			for i := range dx {
				dx[i] -= dx0[i]
			}
			checkGrad(t, "dw", w, dw, 1e-6, loss)
			checkGrad(t, "dx", x, dx, 1e-6, loss)
		})
	}
}

func TestGemmNT(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, s := range [][3]int{{1, 1, 1}, {4, 2, 3}, {5, 3, 7}, {8, 9, 2}, {3, 5, 0}} {
		m, n, k := s[0], s[1], s[2]
		a, b := randVec(rng, m*k), randVec(rng, n*k)
		c := randVec(rng, m*n)
		c0 := append([]float64(nil), c...)
		gemmNT(c, a, b, m, n, k, true)
		for i := range m {
			for j := range n {
				want := 0.0
				for l := range k {
					want += a[i*k+l] * b[j*k+l]
				}
				if got := c[i*n+j] - c0[i*n+j]; math.Abs(got-want) > 1e-12 {
					t.Fatalf("%v: C[%d][%d] grew by %v, want %v", s, i, j, got, want)
				}
			}
		}
	}
}

func TestBatchNormGradient(t *testing.T) {
	for _, B := range []int{1, 3} {
		t.Run(fmt.Sprintf("ok/batch %d", B), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, uint64(B)))
			l := batchNorm{c: 3, per: 5}
			sz := B * l.size()
			gamma, beta, z, r := randVec(rng, 3), randVec(rng, 3), randVec(rng, sz), randVec(rng, sz)
			xhat, u := make([]float64, sz), make([]float64, sz)
			mean, variance, invstd := make([]float64, 3), make([]float64, 3), make([]float64, 3)
			loss := func() float64 {
				l.forwardTrain(gamma, beta, z, xhat, u, mean, variance, invstd, B)
				return dot(u, r)
			}
			loss()
			dg, db, dz := make([]float64, 3), make([]float64, 3), make([]float64, sz)
			l.backward(gamma, xhat, invstd, r, dg, db, dz, B)
			checkGrad(t, "dgamma", gamma, dg, 1e-6, loss)
			checkGrad(t, "dbeta", beta, db, 1e-6, loss)
			checkGrad(t, "dz", z, dz, 1e-5, loss)
			// The normalized value has mean 0 and variance 1 per channel.
			for c := range 3 {
				s, ss := 0.0, 0.0
				for b := range B {
					for _, v := range xhat[b*l.size()+c*l.per:][:l.per] {
						s += v
						ss += v * v
					}
				}
				m := float64(B * l.per)
				if math.Abs(s/m) > 1e-12 || math.Abs(ss/m-variance[c]/(variance[c]+bnEps)) > 1e-9 {
					t.Errorf("channel %d: normalized mean %v, mean square %v", c, s/m, ss/m)
				}
			}
		})
	}
}

// In eval mode the normalization is the affine map of the statistics.
func TestBatchNormAffine(t *testing.T) {
	l := batchNorm{c: 2, per: 1}
	scale, shift := l.affine([]float64{2, 3}, []float64{1, -1}, []float64{0.5, -2}, []float64{4 - bnEps, 9 - bnEps})
	u := make([]float64, 2)
	l.forwardEval(scale, shift, []float64{2.5, 1}, u, 1)
	// 2·(2.5−0.5)/2 + 1 = 3; 3·(1+2)/3 − 1 = 2.
	if math.Abs(u[0]-3) > 1e-12 || math.Abs(u[1]-2) > 1e-12 {
		t.Fatalf("eval batch norm %v, want [3 2]", u)
	}
}

func TestPolyGradient(t *testing.T) {
	for _, degree := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("ok/degree %d", degree), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, uint64(degree)))
			p := poly{degree: degree}
			c, x, r := randVec(rng, degree+1), randVec(rng, 6), randVec(rng, 6)
			y := make([]float64, 6)
			loss := func() float64 { p.forward(c, x, y); return dot(y, r) }
			dc, dx := make([]float64, len(c)), make([]float64, len(x))
			p.backward(c, x, r, dc, dx)
			checkGrad(t, "dc", c, dc, 1e-6, loss)
			checkGrad(t, "dx", x, dx, 1e-6, loss)
		})
	}
}

// A residual unit y = poly(a + b) with a = poly(x): the gradient of x gets
// both paths (through a, and through b = x directly), as in block 1.
func TestResidualGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	p := poly{degree: 2}
	c1, c2 := randVec(rng, 3), randVec(rng, 3)
	x, r := randVec(rng, 7), randVec(rng, 7)
	a, s, y := make([]float64, 7), make([]float64, 7), make([]float64, 7)
	loss := func() float64 {
		p.forward(c1, x, a)
		add(a, x, s)
		p.forward(c2, s, y)
		return dot(y, r)
	}
	loss()
	dc1, dc2, ds, da := make([]float64, 3), make([]float64, 3), make([]float64, 7), make([]float64, 7)
	p.backward(c2, s, r, dc2, ds)
	p.backward(c1, x, ds, dc1, da)
	dx := make([]float64, 7)
	for i := range dx {
		dx[i] = da[i] + ds[i] // the two paths
	}
	checkGrad(t, "dx", x, dx, 1e-6, loss)
	checkGrad(t, "dc1", c1, dc1, 1e-6, loss)
	checkGrad(t, "dc2", c2, dc2, 1e-6, loss)
}

func TestGAPGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	x, r := randVec(rng, 3*6), randVec(rng, 3)
	y := make([]float64, 3)
	loss := func() float64 { gap(3, 6, x, y); return dot(y, r) }
	dx := make([]float64, len(x))
	gapBackward(3, 6, r, dx)
	checkGrad(t, "dx", x, dx, 1e-6, loss)
}

func TestDenseGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 1))
	d := dense{in: 7, out: 4}
	w, b, x, r := randVec(rng, 28), randVec(rng, 4), randVec(rng, 7), randVec(rng, 4)
	y := make([]float64, 4)
	loss := func() float64 { d.forward(w, b, x, y); return dot(y, r) }
	dw, db, dx := make([]float64, len(w)), make([]float64, len(b)), make([]float64, len(x))
	d.backward(w, x, r, dw, db, dx)
	checkGrad(t, "dw", w, dw, 1e-6, loss)
	checkGrad(t, "db", b, db, 1e-6, loss)
	checkGrad(t, "dx", x, dx, 1e-6, loss)
}

func TestPenalize(t *testing.T) {
	z := []float64{-3, 0.5, 2.5}
	dz := make([]float64, 3)
	loss := func() float64 { return nn.Penalize(z, make([]float64, 3), 1, 0.5, 2) }
	pen := nn.Penalize(z, dz, 1, 0.5, 2)
	if want := 0.5*4 + 0.5*2.25; math.Abs(pen-want) > 1e-12 {
		t.Fatalf("penalty %v, want %v", pen, want)
	}
	for i := range dz {
		dz[i] /= 2 // dz carries scale, the returned penalty does not
	}
	checkGrad(t, "dz", z, dz, 1e-6, loss)
}

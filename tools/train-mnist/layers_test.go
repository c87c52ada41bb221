package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hegate/hegate/he/ir"
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
// loss with respect to each entry of x.
func checkGrad(t *testing.T, name string, x, analytic []float64, loss func() float64) {
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
		if d := math.Abs(num - analytic[i]); d > 1e-6*max(1, math.Abs(num)) {
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

func TestConv2DGradient(t *testing.T) {
	for _, tt := range []struct{ in, out, k, stride, pad, h, w int }{
		{1, 1, 1, 1, 0, 3, 3},
		{2, 3, 3, 1, 1, 5, 4},
		{2, 3, 3, 2, 1, 7, 6},
		{1, 2, 5, 2, 1, 9, 9},
		{3, 2, 2, 3, 2, 8, 5},
	} {
		t.Run(fmt.Sprintf("ok/%+v", tt), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			c := newConv2D(tt.in, tt.out, tt.k, tt.stride, tt.pad, tt.h, tt.w)
			w, b, x := randVec(rng, c.nWeights()), randVec(rng, tt.out), randVec(rng, c.inSize())
			r := randVec(rng, c.outSize())
			y, cols := make([]float64, c.outSize()), make([]float64, c.colsSize())
			loss := func() float64 { c.forward(w, b, x, cols, y); return dot(y, r) }
			loss()
			dw, db, dx := make([]float64, len(w)), make([]float64, len(b)), make([]float64, len(x))
			c.backward(w, cols, r, dw, db, dx)
			checkGrad(t, "dw", w, dw, loss)
			checkGrad(t, "db", b, db, loss)
			checkGrad(t, "dx", x, dx, loss)
		})
	}
}

func randBatch(rng *rand.Rand, m, n int) [][]float64 {
	b := make([][]float64, m)
	for j := range b {
		b[j] = randVec(rng, n)
	}
	return b
}

func TestDenseGradient(t *testing.T) {
	// Batches of 1, 4 and 6 exercise the 4-way unrolled loop and the rest.
	for _, m := range []int{1, 4, 6} {
		t.Run(fmt.Sprintf("ok/batch %d", m), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, uint64(m)))
			d := dense{in: 7, out: 4}
			w, b := randVec(rng, 28), randVec(rng, 4)
			xs, rs, ys := randBatch(rng, m, 7), randBatch(rng, m, 4), randBatch(rng, m, 4)
			loss := func() float64 {
				d.forward(w, b, xs, ys)
				l := 0.0
				for j := range ys {
					l += dot(ys[j], rs[j])
				}
				return l
			}
			dw, db, dxs := make([]float64, len(w)), make([]float64, len(b)), randBatch(rng, m, 7)
			d.backward(w, xs, rs, dw, db, dxs)
			checkGrad(t, "dw", w, dw, loss)
			checkGrad(t, "db", b, db, loss)
			for j := range xs {
				checkGrad(t, fmt.Sprintf("dx%d", j), xs[j], dxs[j], loss)
			}
		})
	}
}

func TestPolyGradient(t *testing.T) {
	for _, degree := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("ok/degree %d", degree), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, uint64(degree)))
			p := poly{n: 6, degree: degree}
			c, x, r := randVec(rng, degree+1), randVec(rng, 6), randVec(rng, 6)
			y := make([]float64, 6)
			loss := func() float64 { p.forward(c, x, y); return dot(y, r) }
			dc, dx := make([]float64, len(c)), make([]float64, len(x))
			p.backward(c, x, r, dc, dx)
			checkGrad(t, "dc", c, dc, loss)
			checkGrad(t, "dx", x, dx, loss)
		})
	}
}

// The backward passes accumulate into the parameter gradients.
func TestBackwardAccumulates(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	d := dense{in: 3, out: 2}
	w, xs, rs := randVec(rng, 6), randBatch(rng, 1, 3), randBatch(rng, 1, 2)
	once, twice := make([]float64, 6), make([]float64, 6)
	db := make([]float64, 2)
	d.backward(w, xs, rs, once, db, nil)
	d.backward(w, xs, rs, twice, db, nil)
	d.backward(w, xs, rs, twice, db, nil)
	for i := range once {
		if math.Abs(twice[i]-2*once[i]) > 1e-12 {
			t.Fatalf("dw[%d]: %v after two passes, %v after one", i, twice[i], once[i])
		}
	}
}

var tiny = arch{H: 8, W: 7, Channels: 2, Kernel: 3, Stride: 2, Pad: 1, Hidden: 6, Classes: 4, Degree: 2}

// The whole network's gradient, loss and penalty included.
func TestNetworkGradient(t *testing.T) {
	for _, b := range []bounds{{}, {conv: 0.5, hidden: 0.5, logits: 0.5, weight: 0.3}} {
		t.Run(fmt.Sprintf("ok/penalty %v", b.weight), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 8))
			n := newNetwork(tiny)
			flat := randVec(rng, n.size)
			xs := randBatch(rng, 5, n.H*n.W)
			labels := []int{2, 0, 3, 3, 1}
			p, ws := n.view(flat), n.newWorkspace(len(xs))
			grad := make([]float64, n.size)
			const scale = 0.5
			n.backward(p, n.view(grad), ws, xs, labels, scale, b)
			loss := func() float64 {
				l, _ := n.backward(p, n.view(make([]float64, n.size)), ws, xs, labels, scale, b)
				return scale * l
			}
			checkGrad(t, "params", flat, grad, loss)
		})
	}
}

// The trainer's forward pass and ir.Graph.Run on the exported graph agree,
// value by value, so what is trained is what is served.
func TestGraphMatchesForward(t *testing.T) {
	for _, a := range []arch{tiny, cryptoNets} {
		rng := rand.New(rand.NewPCG(11, 12))
		n := newNetwork(a)
		flat := n.initial(rng)
		p := n.view(flat)
		p.act1[0], p.act2[0] = 0.1, -0.2
		g := n.graph(flat, 17) // 17 digits: exact
		shapes, err := g.Shapes()
		if err != nil {
			t.Fatal(err)
		}
		if got := shapes[nodeNames[0]]; a == cryptoNets && !slices.Equal(got, []int{5, 13, 13}) {
			t.Fatalf("conv output shape %v, want [5 13 13]", got)
		}
		if got := shapes[g.Output]; !slices.Equal(got, []int{a.Classes}) {
			t.Fatalf("output shape %v, want [%d]", got, a.Classes)
		}
		xs := randBatch(rng, 5, n.H*n.W)
		ws := n.newWorkspace(len(xs))
		n.forward(p, ws, xs)
		for j, x := range xs {
			// What the trainer computed for each node's output.
			want := map[string][]float64{
				"conv2d0": ws.z1[j], "poly1": ws.a1[j], "flatten2": ws.a1[j],
				"dense3": ws.z2[j], "poly4": ws.a2[j], "dense5": ws.z3[j],
			}
			visited := 0
			got, err := g.Trace(x, func(nd *ir.Node, out ir.Tensor) {
				visited++
				w, ok := want[nd.Output]
				if !ok {
					t.Fatalf("%+v: value %q of node %s is not one of the trainer's", a, nd.Output, nd.Name)
				}
				if len(out.Data) != len(w) {
					t.Fatalf("%+v: %s: %d values, forward has %d", a, nd.Name, len(out.Data), len(w))
				}
				for i := range w {
					if math.Abs(out.Data[i]-w[i]) > 1e-12*max(1, math.Abs(w[i])) {
						t.Fatalf("%+v: %s[%d]: Run %v, forward %v", a, nd.Name, i, out.Data[i], w[i])
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if visited != len(want) {
				t.Fatalf("%+v: visited %d nodes, want %d", a, visited, len(want))
			}
			run, err := g.Run(x)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(run, got) {
				t.Fatalf("%+v: Run %v and Trace %v differ", a, run, got)
			}
		}
	}
}
func TestTranslate(t *testing.T) {
	src := []float64{
		1, 2, 3,
		4, 5, 6,
	}
	dst := make([]float64, 6)
	for _, tt := range []struct {
		dx, dy int
		want   []float64
	}{
		{0, 0, []float64{1, 2, 3, 4, 5, 6}},
		{1, 0, []float64{0, 1, 2, 0, 4, 5}},
		{-1, 0, []float64{2, 3, 0, 5, 6, 0}},
		{0, 1, []float64{0, 0, 0, 1, 2, 3}},
		{-2, -1, []float64{6, 0, 0, 0, 0, 0}},
		{3, 0, []float64{0, 0, 0, 0, 0, 0}},
	} {
		translate(dst, src, 2, 3, tt.dx, tt.dy)
		if !slices.Equal(dst, tt.want) {
			t.Errorf("shift (%d,%d): %v, want %v", tt.dx, tt.dy, dst, tt.want)
		}
	}
}

func TestLRSchedule(t *testing.T) {
	const total = 1000
	if lr := nn.LRAt(1, 0, total); lr <= 0 || lr > 0.1 {
		t.Errorf("first step lr %v", lr)
	}
	if lr := nn.LRAt(1, total/50, total); lr != 1 {
		t.Errorf("peak lr %v", lr)
	}
	if lr := nn.LRAt(1, total-1, total); lr > 1e-4 {
		t.Errorf("last step lr %v", lr)
	}
}

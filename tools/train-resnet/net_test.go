package main

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hegate/hegate/he/ir"
)

var tiny = arch{H: 8, W: 7, C1: 2, C2: 3, Classes: 4, Degree: 2}

func randBatch(rng *rand.Rand, m, n int) [][]float64 {
	b := make([][]float64, m)
	for j := range b {
		b[j] = randVec(rng, n)
	}
	return b
}

// The whole network's gradient in training mode (batch statistics), loss
// and penalty included, against finite differences for every parameter.
func TestNetworkGradient(t *testing.T) {
	for _, b := range []bounds{{}, {preact: 0.5, logits: 0.5, weight: 0.3}} {
		t.Run(fmt.Sprintf("ok/penalty %v", b.weight), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 8))
			n := newNetwork(tiny)
			flat := n.initial(rng)
			for i := range flat {
				flat[i] += 0.2 * rng.NormFloat64()
			}
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
			checkGrad(t, "params", flat, grad, 1e-5, loss)
		})
	}
}

// randomStats are running statistics far from the identity.
func randomStats(n *network, rng *rand.Rand) *stats {
	st := n.newStats()
	for i := range st.mean {
		for c := range st.mean[i] {
			st.mean[i][c] = rng.NormFloat64()
			st.variance[i][c] = 0.5 + rng.Float64()
		}
	}
	return st
}

// The trainer's eval-mode forward pass and ir.Graph.Run on the exported
// graph (written and read back) agree, so what is trained is what is
// served.
func TestGraphMatchesForward(t *testing.T) {
	for _, a := range []arch{tiny, mnistResNet} {
		rng := rand.New(rand.NewPCG(11, 12))
		n := newNetwork(a)
		flat := n.initial(rng)
		for i := range flat {
			flat[i] += 0.1 * rng.NormFloat64()
		}
		st := randomStats(n, rng)
		var buf bytes.Buffer
		if err := ir.Write(&buf, n.graph(flat, st, 17)); err != nil { // 17 digits: exact
			t.Fatal(err)
		}
		g, err := ir.Read(&buf)
		if err != nil {
			t.Fatal(err)
		}
		xs := make([][]float64, 4)
		for j := range xs {
			xs[j] = make([]float64, n.H*n.W)
			for i := range xs[j] {
				xs[j][i] = rng.Float64()
			}
		}
		ws := n.newWorkspace(len(xs))
		n.forward(n.view(flat), st, ws, xs)
		for j, x := range xs {
			want := img(ws.logits, j, n.Classes)
			got, err := g.Run(x)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if math.Abs(got[i]-want[i]) > 1e-9 {
					t.Fatalf("%+v: image %d logit %d: Run %v, forward %v", a, j, i, got[i], want[i])
				}
			}
		}
		// The activation inputs agree too.
		vals := map[string][]float64{}
		if _, err := g.Trace(xs[0], func(nd *ir.Node, out ir.Tensor) { vals[nd.Output] = append([]float64(nil), out.Data...) }); err != nil {
			t.Fatal(err)
		}
		for k, name := range actNames {
			in := g.Producer(name).Inputs[0]
			want := ws.pre(k)[:n.actSize(k)]
			got := vals[in]
			if len(got) != len(want) {
				t.Fatalf("%s: input %s has %d values, want %d", name, in, len(got), len(want))
			}
			for i := range want {
				if math.Abs(got[i]-want[i]) > 1e-9 {
					t.Fatalf("%s input %d: Run %v, forward %v", name, i, got[i], want[i])
				}
			}
		}
	}
}

// The exported graph has the architecture the compiler's level budget is
// planned for.
func TestGraphShape(t *testing.T) {
	n := newNetwork(mnistResNet)
	g := n.graph(n.initial(rand.New(rand.NewPCG(1, 1))), n.newStats(), 7)
	shapes, err := g.Shapes()
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, nd := range g.Nodes {
		ops = append(ops, string(nd.Op))
	}
	want := "conv affine poly " +
		"conv affine poly conv affine add poly " +
		"conv affine poly conv affine conv affine add poly " +
		"globalavgpool reshape dense"
	if got := strings.Join(ops, " "); got != want {
		t.Fatalf("ops %s\nwant %s", got, want)
	}
	for name, s := range map[string][]int{
		"stem.act": {8, 14, 14}, "block1.act2": {8, 14, 14}, "block2.conv1": {16, 7, 7},
		"block2.skip.bn": {16, 7, 7}, "block2.act2": {16, 7, 7}, "gap": {16, 1, 1}, "logits": {10},
	} {
		if !slices.Equal(shapes[name], s) {
			t.Errorf("%s: shape %v, want %v", name, shapes[name], s)
		}
	}
	if add := g.Producer("block1.add"); !slices.Equal(add.Inputs, []string{"block1.bn2", "stem.act"}) {
		t.Errorf("block 1 adds %v", add.Inputs)
	}
	if add := g.Producer("block2.add"); !slices.Equal(add.Inputs, []string{"block2.bn2", "block2.skip.bn"}) {
		t.Errorf("block 2 adds %v", add.Inputs)
	}
	if skip := g.Producer("block2.skip.conv"); skip.Inputs[0] != "block1.act2" || skip.Conv.Kernel != [2]int{1, 1} || skip.Conv.Stride != [2]int{2, 2} {
		t.Errorf("skip projection %+v", skip)
	}
	for name, s := range shapes {
		if ir.Prod(s) > 4096 {
			t.Errorf("%s: %v has more than 4096 values", name, s)
		}
	}
	if p := g.Input.Preprocess; g.Input.Name != "input" || p == nil || p.Scale != 1/255.0 || p.Std != 1 || p.Layout != "NCHW" {
		t.Errorf("input %+v", g.Input)
	}
	if g.Name != modelName || g.Output != "logits" {
		t.Errorf("graph %s with output %s", g.Name, g.Output)
	}
}

func TestGraphRounding(t *testing.T) {
	n := newNetwork(tiny)
	flat := n.initial(rand.New(rand.NewPCG(1, 1)))
	n.view(flat).convW[cStem][0] = 0.123456789123
	g := n.graph(flat, n.newStats(), 7)
	if got := g.Nodes[0].Conv.Weights[0]; got != 0.1234568 {
		t.Fatalf("rounded weight %v, want 0.1234568", got)
	}
}

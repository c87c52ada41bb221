package main

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/internal/mnist/mnisteval"
	"github.com/hegate/hegate/modelzoo"
)

func TestGraphExport(t *testing.T) {
	n := newNetwork(tiny)
	flat := n.initial(rand.New(rand.NewPCG(1, 1)))
	n.view(flat).convW[0] = 0.123456789123
	n.view(flat).fc2B[1] = -9.87654321e-5
	g := n.graph(flat, 7)
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := g.Nodes[0].Conv.Weights[0]; got != 0.1234568 {
		t.Errorf("rounded weight %v, want 0.1234568", got)
	}
	if got := g.Nodes[5].Dense.Bias[1]; got != -9.876543e-5 {
		t.Errorf("rounded bias %v, want -9.876543e-5", got)
	}
	if g.Name != modelName {
		t.Errorf("name %q, want %q", g.Name, modelName)
	}
	var names, ops []string
	prev := "input"
	for _, nd := range g.Nodes {
		names = append(names, nd.Name)
		ops = append(ops, string(nd.Op))
		if nd.Output != nd.Name || !slices.Equal(nd.Inputs, []string{prev}) {
			t.Errorf("node %s reads %v and writes %q, want a chain reading %q and writing %q", nd.Name, nd.Inputs, nd.Output, prev, nd.Name)
		}
		prev = nd.Output
	}
	if !slices.Equal(names, nodeNames[:]) {
		t.Errorf("nodes %v, want %v", names, nodeNames)
	}
	if want := []string{"conv", "poly", "reshape", "dense", "poly", "dense"}; !slices.Equal(ops, want) {
		t.Errorf("ops %v, want %v", ops, want)
	}
	c := g.Nodes[0].Conv
	if c.Kernel != [2]int{3, 3} || c.Stride != [2]int{2, 2} || c.Pads != [4]int{1, 1, 1, 1} {
		t.Errorf("conv kernel %v stride %v pads %v, want tiny's 3, 2, 1", c.Kernel, c.Stride, c.Pads)
	}
	if g.Output != "dense5" || !slices.Equal(g.Tail, []ir.TailOp{ir.TailArgMax}) {
		t.Errorf("output %q, tail %v", g.Output, g.Tail)
	}
	want := ir.Input{Name: "input", Shape: []int{1, tiny.H, tiny.W}, Preprocess: &ir.Preprocess{Scale: 1 / 255.0, Mean: 0, Std: 1, Layout: "NCHW"}}
	if !reflect.DeepEqual(g.Input, want) {
		t.Errorf("input %+v (preprocess %+v), want %+v", g.Input, g.Input.Preprocess, want)
	}
}

// The graph's preprocessing turns an MNIST image back into what the network
// was trained on (pixel/255), to the last bit or so.
func TestGraphInput(t *testing.T) {
	g := newNetwork(cryptoNets).graph(make([]float64, newNetwork(cryptoNets).size), 7)
	img := make([]float64, cryptoNets.H*cryptoNets.W)
	for i := range img {
		img[i] = float64(i%256) / 255
	}
	x := mnisteval.Input(g, img)
	for i, v := range x {
		if math.Abs(v-img[i]) > 1e-15 {
			t.Fatalf("pixel %d: model input %v, trained on %v", i, v, img[i])
		}
	}
}

// What writeGraph writes, readGraph (ir.Read) reads back unchanged, and no
// temporary file is left behind.
func TestGraphFileRoundTrip(t *testing.T) {
	n := newNetwork(tiny)
	g := n.graph(n.initial(rand.New(rand.NewPCG(2, 3))), 7)
	g.Training = map[string]any{"seed": 1.0, "optimizer": "adam", "max_abs_per_layer": []any{1.5, 2.0}}
	dir := t.TempDir()
	path := filepath.Join(dir, "m.json")
	if err := writeGraph(path, g); err != nil {
		t.Fatal(err)
	}
	back, size, err := readGraph(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, g) {
		t.Error("graph read back differs from the graph written")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if size != fi.Size() || fi.Mode().Perm() != 0o644 {
		t.Errorf("size %d (file %d), mode %v", size, fi.Size(), fi.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the output folder, want 1", len(entries))
	}
	if _, _, err := readGraph(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file: no error")
	}
}

// Exporting the committed model's own weights gives back the committed
// model (all but its training record): the file is what this trainer
// writes.
func TestCommittedModel(t *testing.T) {
	zoo, err := modelzoo.MNIST()
	if err != nil {
		t.Fatal(err)
	}
	var ops []ir.OpType
	for _, nd := range zoo.Nodes {
		ops = append(ops, nd.Op)
	}
	// ir.Read checked that each node carries its op's attribute.
	if want := []ir.OpType{ir.OpConv, ir.OpPoly, ir.OpReshape, ir.OpDense, ir.OpPoly, ir.OpDense}; !slices.Equal(ops, want) {
		t.Fatalf("committed model has ops %v, the trainer exports %v", ops, want)
	}
	n := newNetwork(cryptoNets)
	flat := make([]float64, n.size)
	p := n.view(flat)
	for _, c := range []struct{ dst, src []float64 }{
		{p.convW, zoo.Nodes[0].Conv.Weights}, {p.convB, zoo.Nodes[0].Conv.Bias},
		{p.act1, zoo.Nodes[1].Poly.Coeffs},
		{p.fc1W, zoo.Nodes[3].Dense.Weights}, {p.fc1B, zoo.Nodes[3].Dense.Bias},
		{p.act2, zoo.Nodes[4].Poly.Coeffs},
		{p.fc2W, zoo.Nodes[5].Dense.Weights}, {p.fc2B, zoo.Nodes[5].Dense.Bias},
	} {
		if len(c.src) != len(c.dst) {
			t.Fatalf("committed model has %d parameters where the trainer has %d", len(c.src), len(c.dst))
		}
		copy(c.dst, c.src)
	}
	g := n.graph(flat, digits)
	zoo.Training = nil
	if !reflect.DeepEqual(g, zoo) {
		for i := range g.Nodes {
			if !reflect.DeepEqual(g.Nodes[i], zoo.Nodes[i]) {
				t.Errorf("node %d: exported %s %s %v→%s, committed %s %s %v→%s", i,
					g.Nodes[i].Name, g.Nodes[i].Op, g.Nodes[i].Inputs, g.Nodes[i].Output,
					zoo.Nodes[i].Name, zoo.Nodes[i].Op, zoo.Nodes[i].Inputs, zoo.Nodes[i].Output)
			}
		}
		t.Errorf("exported graph differs from the committed one (input %+v, output %q, tail %v; committed %+v, %q, %v)",
			g.Input, g.Output, g.Tail, zoo.Input, zoo.Output, zoo.Tail)
	}
}

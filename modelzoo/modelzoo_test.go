package modelzoo

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/internal/mnist/mnisteval"
)

// Limits every model of the zoo is held to: they are MNIST classifiers
// served under leveled CKKS.
const (
	minAccuracy = 0.985
	// minDPAccuracy is the floor of a model trained with DP-SGD (its
	// training record has a "dp" member): privacy costs accuracy.
	minDPAccuracy = 0.90
	maxPreact     = 64  // |input of a polynomial activation|
	maxLogit      = 200 // |output|
)

func all(t *testing.T) []*ir.Graph {
	t.Helper()
	gs, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) == 0 {
		t.Fatal("no embedded models")
	}
	return gs
}

func TestAll(t *testing.T) {
	gs := all(t)
	seen := map[string]bool{}
	for _, g := range gs {
		if err := g.Validate(); err != nil {
			t.Errorf("%s: %v", g.Name, err)
		}
		if seen[g.Name] {
			t.Errorf("two models named %s", g.Name)
		}
		seen[g.Name] = true
		// Every model reads an MNIST image and gives 10 scores.
		if g.InputSize() != mnist.Pixels || ir.Prod(g.OutputShape()) != mnist.Classes {
			t.Errorf("%s: maps %v to %v, want %d values to %d", g.Name, g.Input.Shape, g.OutputShape(), mnist.Pixels, mnist.Classes)
		}
	}
	if !seen[MNISTName] {
		t.Errorf("no model named %s among %v", MNISTName, seen)
	}
	// A fresh copy on each call.
	gs[0].Name = "changed"
	if again := all(t); again[0].Name == "changed" {
		t.Error("All returns shared graphs")
	}
}

func TestMNISTShape(t *testing.T) {
	g, err := MNIST()
	if err != nil {
		t.Fatal(err)
	}
	if g.Name != MNISTName {
		t.Errorf("name %q, want %q", g.Name, MNISTName)
	}
	var ops []string
	for _, n := range g.Nodes {
		ops = append(ops, string(n.Op))
	}
	if got := strings.Join(ops, " "); got != "conv poly reshape dense poly dense" {
		t.Fatalf("nodes %s", got)
	}
	// A chain: each node reads the one before it; the last is the output.
	prev := g.Input.Name
	for _, n := range g.Nodes {
		if !slices.Equal(n.Inputs, []string{prev}) {
			t.Errorf("node %s reads %v, want [%s]", n.Name, n.Inputs, prev)
		}
		prev = n.Output
	}
	if g.Output != prev {
		t.Errorf("output %q, want the last node's %q", g.Output, prev)
	}
	shapes, err := g.Shapes()
	if err != nil {
		t.Fatal(err)
	}
	if s := g.Input.Shape; !slices.Equal(s, []int{1, 28, 28}) {
		t.Errorf("input shape %v, want [1 28 28]", s)
	}
	if p := g.Input.Preprocess; p == nil || *p != (ir.Preprocess{Scale: 1 / 255.0, Mean: 0, Std: 1, Layout: "NCHW"}) {
		t.Errorf("input preprocessing %+v, want pixels/255", p)
	}
	if c := shapes[g.Nodes[0].Output]; len(c) != 3 || ir.Prod(c) != 845 || !slices.Equal(c, []int{5, 13, 13}) {
		t.Errorf("conv output %v, want [5 13 13] (845 ≤ 1024 slots)", c)
	}
	for _, i := range []int{1, 4} {
		if d := g.Nodes[i].Poly.Degree(); d != 2 || len(g.Nodes[i].Poly.Coeffs) != 3 {
			t.Errorf("node %s: polynomial of degree %d (%d coefficients), want 2", g.Nodes[i].Name, d, len(g.Nodes[i].Poly.Coeffs))
		}
	}
	if out := shapes[g.Output]; !slices.Equal(out, []int{10}) {
		t.Errorf("output shape %v, want [10]", out)
	}
	if !slices.Equal(g.Tail, []ir.TailOp{ir.TailArgMax}) {
		t.Errorf("tail %v, want [argmax]", g.Tail)
	}
	for _, k := range []string{"epochs", "seed", "optimizer", "test_accuracy", "go_version", "max_abs_preactivation"} {
		if _, ok := g.Training[k]; !ok {
			t.Errorf("training record lacks %q", k)
		}
	}
	// Each call returns a fresh copy.
	g.Nodes[0].Conv.Weights[0] = 1e9
	if h, _ := MNIST(); h.Nodes[0].Conv.Weights[0] == 1e9 {
		t.Error("MNIST returns shared weights")
	}
}

func loadSet(t *testing.T, which mnist.Split) *mnist.Set {
	t.Helper()
	dir, err := mnist.Dir()
	if err != nil {
		t.Fatal(err)
	}
	s, err := mnist.Load(dir, which)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// evaluations caches mnisteval.Evaluate of each zoo model on the 10,000
// test images, shared by the accuracy and magnitude tests.
var evaluations struct {
	sync.Mutex
	test *mnist.Set
	r    map[string]*mnisteval.Result
}

func evaluate(t *testing.T, g *ir.Graph) *mnisteval.Result {
	t.Helper()
	evaluations.Lock()
	defer evaluations.Unlock()
	if r, ok := evaluations.r[g.Name]; ok {
		return r
	}
	if evaluations.test == nil {
		evaluations.test = loadSet(t, mnist.Test)
		evaluations.r = map[string]*mnisteval.Result{}
	}
	r, err := mnisteval.Evaluate(g, evaluations.test, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.N != 10000 {
		t.Fatalf("evaluated %d images", r.N)
	}
	evaluations.r[g.Name] = r
	return r
}

// Each model's plaintext accuracy (ir.Graph.Run) on the 10,000 MNIST test
// images, and what its training record says it is.
func TestAccuracy(t *testing.T) {
	for _, g := range all(t) {
		t.Run(g.Name, func(t *testing.T) {
			r := evaluate(t, g)
			t.Logf("%s: test accuracy %.4f (%d/%d)", g.Name, r.Acc, r.Correct, r.N)
			floor := minAccuracy
			if _, private := g.Training["dp"]; private {
				floor = minDPAccuracy
			}
			if r.Acc < floor {
				t.Errorf("test accuracy %.4f < %.3f", r.Acc, floor)
			}
			rec, ok := g.Training["test_accuracy"]
			if !ok {
				t.Logf("training record has no test_accuracy")
				return
			}
			if acc, ok := rec.(float64); !ok || acc != r.Acc {
				t.Errorf("training record says test accuracy %v, measured %v", rec, r.Acc)
			}
		})
	}
}

// On the 10,000 test images, the inputs of every model's polynomial
// activations and its logits stay in the range the CKKS evaluation is set
// up for.
func TestMagnitudes(t *testing.T) {
	for _, g := range all(t) {
		t.Run(g.Name, func(t *testing.T) {
			r := evaluate(t, g)
			polys := 0
			for _, n := range g.Nodes {
				v, ok := r.MaxAbs[n.Output]
				if !ok {
					t.Errorf("node %s: no magnitude recorded for %q", n.Name, n.Output)
				}
				if n.Op != ir.OpPoly {
					continue
				}
				polys++
				in := n.Inputs[0]
				pre, ok := r.MaxAbs[in]
				if !ok {
					// The input of the graph: pixels after preprocessing.
					t.Errorf("node %s: no magnitude recorded for its input %q", n.Name, in)
				}
				t.Logf("%s (%s of %s): max |input| %.3f, max |output| %.3f", n.Name, n.Op, in, pre, v)
				if pre > maxPreact {
					t.Errorf("node %s: max |input| (%s) %.3f > %d", n.Name, in, pre, maxPreact)
				}
			}
			if polys == 0 {
				t.Errorf("no polynomial activation")
			}
			logit, ok := r.MaxAbs[g.Output]
			if !ok {
				t.Fatalf("no magnitude recorded for the output %q", g.Output)
			}
			t.Logf("max |logit| %.3f", logit)
			if logit > maxLogit {
				t.Errorf("max |logit| %.3f > %d", logit, maxLogit)
			}
		})
	}
}

// Every model compiles for a 128-bit preset: the default one, or
// n15-leveled when the default has too few levels. The manifest is sane,
// and on test images every step of the encrypted circuit stays well inside
// what its CKKS level can hold.
func TestCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles every zoo model")
	}
	train := loadSet(t, mnist.Train)
	test := loadSet(t, mnist.Test)
	for _, g := range all(t) {
		t.Run(g.Name, func(t *testing.T) {
			inputs := func(imgs [][]float64) [][]float64 {
				out := make([][]float64, len(imgs))
				for i, img := range imgs {
					out[i] = mnisteval.Input(g, img)
				}
				return out
			}
			opts := he.CompileOptions{Calibration: inputs(train.Images[:256])}
			m, err := he.Compile(context.Background(), g, opts)
			if err != nil && hegate.Is(err, hegate.KindInvalid) && strings.Contains(err.Error(), "levels") {
				t.Logf("default preset: %v", err)
				opts.Params = "n15-leveled"
				m, err = he.Compile(context.Background(), g, opts)
			}
			if err != nil {
				t.Fatal(err)
			}
			man := m.Manifest()
			t.Logf("%s: preset %s (log N %d, %d levels), uses %d levels, %d slots, %d steps, %d Galois keys, key set %d bytes, cost %+v",
				g.Name, man.Params.Preset, man.Params.LogN, man.Params.MaxLevel, man.Levels, 1<<man.LogSlots,
				len(man.Steps), len(man.GaloisElements), man.KeySetBytes, man.Cost)
			if g.Name == MNISTName && man.Params.Preset != he.DefaultPreset {
				t.Errorf("compiled for %s, want the default preset %s", man.Params.Preset, he.DefaultPreset)
			}
			if string(man.Name) != g.Name || !slices.Equal(man.Input, g.Input.Shape) || man.OutputSize != mnist.Classes {
				t.Errorf("manifest %s maps %v to %d values, want %s, %v, %d", man.Name, man.Input, man.OutputSize, g.Name, g.Input.Shape, mnist.Classes)
			}
			if man.Params.SecurityBits != 128 || man.Params.Fingerprint == "" {
				t.Errorf("params %+v, want a 128-bit preset", man.Params)
			}
			if man.Levels < 1 || man.Levels > man.Params.MaxLevel {
				t.Errorf("uses %d levels of %d", man.Levels, man.Params.MaxLevel)
			}
			if man.LogSlots < 1 || man.LogSlots > man.Params.LogN-1 {
				t.Errorf("log slots %d for log N %d", man.LogSlots, man.Params.LogN)
			}
			if len(man.Steps) == 0 {
				t.Error("no steps")
			}
			for i, st := range man.Steps {
				if st.Level > man.Levels || st.Depth < 0 || st.Level-st.Depth < 0 {
					t.Errorf("step %d (%s %s): at level %d consumes %d levels, of %d", i, st.Kind, st.Name, st.Level, st.Depth, man.Levels)
				}
			}
			if len(man.GaloisElements) != len(man.GaloisLevels) || len(man.GaloisElements) == 0 {
				t.Errorf("%d Galois elements, %d levels", len(man.GaloisElements), len(man.GaloisLevels))
			}
			if man.KeySetBytes <= 0 || man.CiphertextBytes <= 0 || man.ResultBytes <= 0 {
				t.Errorf("sizes: key set %d, ciphertext %d, result %d bytes", man.KeySetBytes, man.CiphertextBytes, man.ResultBytes)
			}
			cal, err := m.Calibrate(inputs(test.Images[:200]))
			if err != nil {
				t.Error(err)
			}
			if cal.Samples != 200 || len(cal.Steps) != len(man.Steps) {
				t.Errorf("calibration of %d samples over %d steps, want 200 over %d", cal.Samples, len(cal.Steps), len(man.Steps))
			}
		})
	}
}

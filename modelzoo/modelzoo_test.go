package modelzoo

import (
	"strings"
	"testing"

	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/internal/mnist/mnisteval"
)

// Limits a CKKS evaluation of the MNIST model is set up for.
const (
	minAccuracy = 0.985
	maxPreact   = 64  // |input of a polynomial activation|
	maxLogit    = 200 // |output|
)

func TestAll(t *testing.T) {
	gs, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) == 0 {
		t.Fatal("no embedded models")
	}
	for _, g := range gs {
		if err := g.Validate(); err != nil {
			t.Errorf("%s: %v", g.Name, err)
		}
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
	for _, l := range g.Layers {
		ops = append(ops, string(l.Op))
	}
	if got := strings.Join(ops, " "); got != "conv2d poly flatten dense poly dense" {
		t.Fatalf("layers %s", got)
	}
	shapes := g.Shapes()
	if c := shapes[0]; len(c) != 3 || c[0]*c[1]*c[2] != 845 {
		t.Errorf("conv output %v, want [5 13 13] (845 ≤ 1024 slots)", c)
	}
	for _, i := range []int{1, 4} {
		if n := len(g.Layers[i].Poly.Coeffs); n != 3 {
			t.Errorf("layer %d: polynomial of degree %d, want 2", i, n-1)
		}
	}
	if g.OutputSize() != 10 {
		t.Errorf("%d outputs", g.OutputSize())
	}
	for _, k := range []string{"epochs", "seed", "optimizer", "test_accuracy", "go_version", "max_abs_preactivation"} {
		if _, ok := g.Training[k]; !ok {
			t.Errorf("training record lacks %q", k)
		}
	}
	// Each call returns a fresh copy.
	g.Layers[0].Conv.Weights[0] = 1e9
	if h, _ := MNIST(); h.Layers[0].Conv.Weights[0] == 1e9 {
		t.Error("MNIST returns shared weights")
	}
}

func loadTest(t *testing.T) *mnist.Set {
	t.Helper()
	dir, err := mnist.Dir()
	if err != nil {
		t.Fatal(err)
	}
	s, err := mnist.Load(dir, mnist.Test)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The embedded model's plaintext accuracy on the 10,000 MNIST test images,
// with he.Graph.Reference.
func TestMNISTAccuracy(t *testing.T) {
	g, err := MNIST()
	if err != nil {
		t.Fatal(err)
	}
	r, err := mnisteval.Evaluate(g, loadTest(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: test accuracy %.4f (%d/%d)", g.Name, r.Acc, r.Correct, r.N)
	if r.N != 10000 {
		t.Fatalf("evaluated %d images", r.N)
	}
	if r.Acc < minAccuracy {
		t.Errorf("test accuracy %.4f < %.3f", r.Acc, minAccuracy)
	}
	if rec, ok := g.Training["test_accuracy"].(float64); !ok || rec != r.Acc {
		t.Errorf("training record says test accuracy %v, measured %v", g.Training["test_accuracy"], r.Acc)
	}
}

// On the first 1,000 test images, the inputs of the activations and the
// logits stay in the range the CKKS evaluation is set up for.
func TestMNISTMagnitudes(t *testing.T) {
	g, err := MNIST()
	if err != nil {
		t.Fatal(err)
	}
	r, err := mnisteval.Evaluate(g, loadTest(t), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if r.N != 1000 {
		t.Fatalf("evaluated %d images", r.N)
	}
	for i, l := range g.Layers {
		t.Logf("layer %d %s: max |output| %.3f", i, l.Op, r.MaxAbs[i])
		if i+1 < len(g.Layers) && g.Layers[i+1].Op == he.OpPoly && r.MaxAbs[i] > maxPreact {
			t.Errorf("layer %d (%s): max |pre-activation| %.3f > %d", i, l.Op, r.MaxAbs[i], maxPreact)
		}
	}
	if logit := r.MaxAbs[len(r.MaxAbs)-1]; logit > maxLogit {
		t.Errorf("max |logit| %.3f > %d", logit, maxLogit)
	}
}

// TestMNISTCalibration compiles the model for the default preset and checks,
// on the first 1,000 test images, that every step of the encrypted circuit
// stays well inside what its CKKS level can hold.
func TestMNISTCalibration(t *testing.T) {
	g, err := MNIST()
	if err != nil {
		t.Fatal(err)
	}
	m, err := he.Compile(g, he.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cal, err := m.Calibrate(loadTest(t).Images[:1000])
	if err != nil {
		t.Fatal(err)
	}
	t.Log(cal)
}

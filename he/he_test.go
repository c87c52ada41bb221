package he

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he/ir"
)

func randVec(r *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = (r.Float64()*2 - 1) * scale
	}
	return v
}

// testRelease releases results with noise far below the tests' tolerances
// (1e-3): the tests here check the circuit; release_test.go checks the
// noise.
var testRelease = Release{Sigma: 1e-6}

// keyed is a compiled model with a device secret key and its parsed key set.
type keyed struct {
	m  *Model
	sk *SecretKey
	ks *KeySet
}

func withKeys(t testing.TB, m *Model) keyed {
	t.Helper()
	sk, err := m.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	var keys bytes.Buffer
	if _, err := m.WriteKeySet(&keys, sk); err != nil {
		t.Fatal(err)
	}
	ks, err := m.ReadKeySet(&keys)
	if err != nil {
		t.Fatal(err)
	}
	return keyed{m: m, sk: sk, ks: ks}
}

// evaluate encrypts x, evaluates it with model (k.m when nil) and returns
// the result ciphertext.
func (k keyed) evaluate(t *testing.T, model *Model, x []float64) []byte {
	t.Helper()
	if model == nil {
		model = k.m
	}
	ct, err := k.m.Encrypt(k.sk, x)
	if err != nil {
		t.Fatal(err)
	}
	res, _, err := model.Evaluate(context.Background(), k.ks, ct, testRelease)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// checkAgainstReference fails unless the decrypted result is within 1e-3
// of the compiled circuit's float64 executor on x (which is the graph's
// reference for graphs without approximated activations: see
// TestApproximateIsReference).
func (k keyed) checkAgainstReference(t *testing.T, x []float64, res []byte) {
	t.Helper()
	want, err := k.m.Approximate(x)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.m.Decrypt(k.sk, res)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-3 {
			t.Fatalf("output %d: encrypted %v, reference %v", i, got[i], want[i])
		}
	}
}

// Node builders for test graphs.
type nodes struct{ r *rand.Rand }

func (b nodes) conv(in, out, k, s, p int) *ir.Node {
	return &ir.Node{Op: ir.OpConv, Conv: &ir.Conv{InChannels: in, OutChannels: out, Kernel: [2]int{k, k}, Stride: [2]int{s, s}, Pads: [4]int{p, p, p, p},
		Weights: randVec(b.r, out*in*k*k, 0.5), Bias: randVec(b.r, out, 0.2)}}
}
func (b nodes) dense(in, out int) *ir.Node {
	return &ir.Node{Op: ir.OpDense, Dense: &ir.Dense{In: in, Out: out, Weights: randVec(b.r, in*out, 0.5), Bias: randVec(b.r, out, 0.3)}}
}
func (b nodes) affine(c int) *ir.Node {
	return &ir.Node{Op: ir.OpAffine, Affine: &ir.Affine{Scale: randVec(b.r, c, 1), Shift: randVec(b.r, c, 0.2)}}
}
func poly(c ...float64) *ir.Node { return &ir.Node{Op: ir.OpPoly, Poly: &ir.Poly{Coeffs: c}} }
func flatten(n int) *ir.Node {
	return &ir.Node{Op: ir.OpReshape, Reshape: &ir.Reshape{Shape: []int{n}}}
}
func relu() *ir.Node { return &ir.Node{Op: ir.OpRelu} }
func maxpool(k, s int) *ir.Node {
	return &ir.Node{Op: ir.OpMaxPool, Pool: &ir.Pool{Kernel: [2]int{k, k}, Stride: [2]int{s, s}}}
}

// tinyDense is input [16], dense 16→8, a·x²+b·x+c, dense 8→4.
func tinyDense(r *rand.Rand) *ir.Graph {
	b := nodes{r}
	return ir.Chain("tiny-dense", []int{16}, b.dense(16, 8), poly(0.1, 0.5, 0.25), b.dense(8, 4))
}

// tinyCNN is a CryptoNets-shaped network on a 1×10×10 input: 5×5 output
// positions, so the im2col layout is padded to blocks of 32 slots.
func tinyCNN(r *rand.Rand) *ir.Graph {
	b := nodes{r}
	return ir.Chain("tiny-cnn", []int{1, 10, 10}, b.conv(1, 2, 3, 2, 1), poly(0, 0.5, 0.1), flatten(50),
		b.dense(50, 6), poly(0, 0.5, 0.1), b.dense(6, 3))
}

// tinyResNet has a stem, a residual block with an identity skip and one
// with a strided 1×1 projection, BatchNorm as affine nodes, global average
// pooling and a linear head.
func tinyResNet(r *rand.Rand) *ir.Graph {
	b := nodes{r}
	act := func() *ir.Node { return poly(0.05, 0.5, 0.1) }
	g := ir.Chain("tiny-resnet", []int{1, 8, 8}, b.conv(1, 2, 3, 1, 1), b.affine(2), act())
	stem := g.Output
	g2 := ir.Chain("", nil, b.conv(2, 2, 3, 1, 1), b.affine(2), act(), b.conv(2, 2, 3, 1, 1), b.affine(2))
	prefix(g2, "b1")
	g2.Nodes[0].Inputs = []string{stem}
	g.Nodes = append(g.Nodes, g2.Nodes...)
	add1 := &ir.Node{Name: "b1add", Op: ir.OpAdd, Inputs: []string{stem, g2.Output}, Output: "b1add"}
	act1 := act()
	act1.Name, act1.Output, act1.Inputs = "b1act", "b1act", []string{"b1add"}
	g.Nodes = append(g.Nodes, add1, act1)
	g3 := ir.Chain("", nil, b.conv(2, 4, 3, 2, 1), b.affine(4), act(), b.conv(4, 4, 3, 1, 1), b.affine(4))
	prefix(g3, "b2")
	g3.Nodes[0].Inputs = []string{"b1act"}
	proj := b.conv(2, 4, 1, 2, 0)
	proj.Name, proj.Output, proj.Inputs = "proj", "proj", []string{"b1act"}
	g.Nodes = append(g.Nodes, g3.Nodes...)
	g.Nodes = append(g.Nodes, proj,
		&ir.Node{Name: "b2add", Op: ir.OpAdd, Inputs: []string{"proj", g3.Output}, Output: "b2add"})
	tail := ir.Chain("", nil, act(), &ir.Node{Op: ir.OpGlobalAvgPool}, flatten(4), b.dense(4, 3))
	prefix(tail, "head")
	tail.Nodes[0].Inputs = []string{"b2add"}
	g.Nodes = append(g.Nodes, tail.Nodes...)
	g.Output = tail.Output
	return g
}

// prefix renames a chain's nodes and values so chains can be joined.
func prefix(g *ir.Graph, p string) {
	for _, n := range g.Nodes {
		n.Name, n.Output = p+n.Name, p+n.Output
		for i, in := range n.Inputs {
			if in != "input" {
				n.Inputs[i] = p + in
			}
		}
	}
	g.Output = p + g.Output
}

// tinyReluCNN uses ReLU and max pooling, which the compiler approximates.
func tinyReluCNN(r *rand.Rand) *ir.Graph {
	b := nodes{r}
	return ir.Chain("tiny-relu-cnn", []int{1, 8, 8}, b.conv(1, 2, 3, 1, 1), relu(), maxpool(2, 2), flatten(32), b.dense(32, 3))
}

// calibrationSet is 64 random inputs like those the tests use.
func calibrationSet(g *ir.Graph) [][]float64 {
	r := rand.New(rand.NewPCG(99, 100))
	var xs [][]float64
	for i := 0; i < 64; i++ {
		xs = append(xs, randVec(r, g.InputSize(), 1))
	}
	return xs
}

var testOpts = CompileOptions{Params: "test-n12-deep", AllowInsecure: true}

// compileTest compiles g for tests, calibrating on random inputs.
func compileTest(t *testing.T, g *ir.Graph, opts CompileOptions) *Model {
	t.Helper()
	if opts.Calibration == nil {
		opts.Calibration = calibrationSet(g)
	}
	m, err := Compile(context.Background(), g, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEncryptedMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	composite := CompileOptions{Params: "test-n12-deepest", AllowInsecure: true, Approx: ApproxOptions{Sign: "a4-7-7"}}
	chebyshev := CompileOptions{Params: "test-n12-deep", AllowInsecure: true, Approx: ApproxOptions{Method: "chebyshev", ReluDegree: 3, AbsDegree: 3}}
	for _, tc := range []struct {
		g    *ir.Graph
		opts CompileOptions
	}{{tinyDense(r), testOpts}, {tinyCNN(r), testOpts}, {tinyResNet(r), testOpts}, {tinyReluCNN(r), chebyshev}, {tinyReluCNN(r), composite}} {
		g := tc.g
		t.Run("ok/"+g.Name+"/"+tc.opts.Approx.Method, func(t *testing.T) {
			opts := tc.opts
			m := compileTest(t, g, opts)
			man := m.Manifest()
			if len(g.Input.Shape) == 3 && man.Packing == nil {
				t.Errorf("the first convolution's input is not unrolled (im2col)")
			}
			t.Logf("manifest: slots 2^%d levels %d galois %d cost %+v keyset %d bytes", man.LogSlots, man.Levels, len(man.GaloisElements), man.Cost, man.KeySetBytes)
			for _, st := range man.Steps {
				t.Logf("  %s %q level %d depth %d %s diags %d baby %d giant %d fn %s deg %d", st.Kind, st.Name, st.Level, st.Depth, st.Method, st.Diagonals, st.BabySteps, st.GiantSteps, st.Function, st.Degree)
			}
			// The device works from the served manifest only.
			js, err := json.Marshal(man)
			if err != nil {
				t.Fatal(err)
			}
			var served Manifest
			if err := json.Unmarshal(js, &served); err != nil {
				t.Fatal(err)
			}
			dev, err := NewDevice(served, true)
			if err != nil {
				t.Fatal(err)
			}
			sk, err := dev.GenerateSecretKey()
			if err != nil {
				t.Fatal(err)
			}
			var keys bytes.Buffer
			n, err := dev.WriteKeySet(&keys, sk)
			if err != nil {
				t.Fatal(err)
			}
			if n != man.KeySetBytes || int64(keys.Len()) != n {
				t.Fatalf("key set is %d bytes (buffer %d), manifest says %d", n, keys.Len(), man.KeySetBytes)
			}
			if _, err := m.CheckKeySet(bytes.NewReader(keys.Bytes())); err != nil {
				t.Fatal(err)
			}
			ks, err := m.ReadKeySet(bytes.NewReader(keys.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			k := keyed{m: m, sk: sk, ks: ks}
			for trial := 0; trial < 3; trial++ {
				x := randVec(r, g.InputSize(), 1)
				ct, err := dev.Encrypt(sk, x)
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(ct)) != man.CiphertextBytes {
					t.Fatalf("ciphertext %d bytes, manifest %d", len(ct), man.CiphertextBytes)
				}
				if err := m.CheckCiphertext(ct); err != nil {
					t.Fatal(err)
				}
				res, _, err := m.Evaluate(context.Background(), ks, ct, testRelease)
				if err != nil {
					t.Fatal(err)
				}
				k.checkAgainstReference(t, x, res)
			}
		})
	}
}

// TestApproximateIsReference checks the lowering (fusion, layouts, im2col,
// residual adds, folded activations) against the graph's own reference
// executor, in float64, and that approximated activations stay close to the
// exact ones on inputs like the calibration samples.
func TestApproximateIsReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		g      *ir.Graph
		tol    float64
		approx ApproxOptions
	}{{tinyDense(r), 1e-9, ApproxOptions{}}, {tinyCNN(r), 1e-9, ApproxOptions{}}, {tinyResNet(r), 1e-9, ApproxOptions{}},
		{tinyReluCNN(r), 0.25, ApproxOptions{Method: "chebyshev"}},
		{tinyReluCNN(r), 0.05, ApproxOptions{}},
		// Average pooling in place of max, when asked for: the reference
		// is then the graph with its max pooling replaced (below).
		{tinyReluCNN(r), 0.05, ApproxOptions{MaxPool: "average"}}} {
		t.Run("ok/"+tc.g.Name+"/"+tc.approx.Method, func(t *testing.T) {
			opts := testOpts
			opts.Approx = tc.approx
			opts.Calibration = calibrationSet(tc.g)
			circ, err := Lower(context.Background(), tc.g, opts)
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for trial := 0; trial < 20; trial++ {
				x := randVec(r, tc.g.InputSize(), 1)
				ref := tc.g
				if tc.approx.MaxPool == "average" {
					ref = tc.g.Clone()
					for _, n := range ref.Nodes {
						if n.Op == ir.OpMaxPool {
							n.Op = ir.OpAvgPool
						}
					}
				}
				want, err := ref.Run(x)
				if err != nil {
					t.Fatal(err)
				}
				got, err := circ.Run(x)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					worst = math.Max(worst, math.Abs(got[i]-want[i]))
				}
			}
			t.Logf("largest |compiled - reference| %.3g", worst)
			if worst > tc.tol {
				t.Fatalf("compiled circuit differs from the reference by %g > %g", worst, tc.tol)
			}
		})
	}
}

// TestCompileShapes checks the lowering's special cases against the
// reference executor: a graph ending in an activation, adjacent dense
// layers fused into one, a degree-1 activation folded away, and a
// convolution that is the only layer (no padded layout then).
func TestCompileShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	b := nodes{r}
	tests := []struct {
		name   string
		g      *ir.Graph
		levels int
	}{
		{"ok/ends-in-activation", ir.Chain("a", []int{8}, b.dense(8, 4), poly(0.2, 0.5, 0.3)), 3},
		{"ok/dense-dense-fused", ir.Chain("b", []int{8}, b.dense(8, 6), b.dense(6, 3)), 1},
		{"ok/degree-1-folded", ir.Chain("c", []int{8}, b.dense(8, 6), poly(0.1, 2), b.dense(6, 3)), 1},
		{"ok/conv-only", ir.Chain("d", []int{1, 6, 6}, b.conv(1, 2, 3, 2, 0)), 1},
		{"ok/activation-first", ir.Chain("e", []int{4}, poly(0, 0, 1), b.dense(4, 2)), 3},
		{"ok/residual-add-costs-no-level", ir.Chain("f", []int{4}, b.dense(4, 4), poly(0, 1, 0.5), b.dense(4, 4)), 3},
		// A dense layer reading only part of a convolution's output is no
		// convolution any more (this once made the compiler panic).
		{"ok/conv-then-partial-dense", ir.Chain("g", []int{1, 4, 4}, b.conv(1, 2, 3, 1, 0), flatten(8),
			&ir.Node{Op: ir.OpDense, Dense: &ir.Dense{In: 8, Out: 2, Weights: []float64{1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, Bias: []float64{0, 0}}}), 1},
		// A nearly linear activation is lowered without the huge shift
		// b/2a (which lost precision).
		{"ok/nearly-linear-activation", ir.Chain("h", []int{8}, b.dense(8, 4), poly(0.1, 0.5, 1e-6), b.dense(4, 3)), 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := compileTest(t, tc.g, testOpts)
			if got := m.Manifest().Levels; got != tc.levels {
				t.Fatalf("%d levels, want %d", got, tc.levels)
			}
			k := withKeys(t, m)
			x := randVec(r, tc.g.InputSize(), 1)
			k.checkAgainstReference(t, x, k.evaluate(t, nil, x))
		})
	}
}

func TestCompileRefuses(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	b := nodes{r}
	sq := func() *ir.Node { return poly(0, 0, 1) }
	small := CompileOptions{Params: "test-n12", AllowInsecure: true}
	tests := []struct {
		name, want string
		g          *ir.Graph
		opts       CompileOptions
		noCal      bool
	}{
		{"fail/too-deep", "needs 7 levels", ir.Chain("c", []int{4}, b.dense(4, 4), sq(), b.dense(4, 4), sq(), b.dense(4, 4), sq(), b.dense(4, 4)), small, false},
		{"fail/too-wide", "slots", ir.Chain("d", []int{4096}, b.dense(4096, 2)), small, false},
		{"fail/insecure", "128-bit", ir.Chain("e", []int{4}, b.dense(4, 2)), CompileOptions{Params: "test-n12"}, false},
		{"fail/unknown-preset", "unknown parameter preset", ir.Chain("f", []int{4}, b.dense(4, 2)), CompileOptions{Params: "n99"}, false},
		{"fail/shape", "in 5", ir.Chain("g", []int{4}, b.dense(5, 2)), small, false},
		{"fail/relu-uncalibrated", "calibrat", ir.Chain("h", []int{4}, b.dense(4, 4), relu(), b.dense(4, 2)), small, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			if !tc.noCal {
				opts.Calibration = [][]float64{randVec(r, tc.g.InputSize(), 1)}
			}
			_, err := Compile(context.Background(), tc.g, opts)
			if !hegate.Is(err, hegate.KindInvalid) || !strings.Contains(hegate.DetailOf(err), tc.want) {
				t.Fatalf("got %v, want invalid mentioning %q", err, tc.want)
			}
		})
	}
}

// TestResultHoldsOnlyOutputs checks that the slots of a result beyond the
// outputs carry nothing else: each holds a copy of an output (the hybrid
// method replicates with the last step's period) or zero. A device that
// decodes every slot learns no more than the outputs (noise aside).
func TestResultHoldsOnlyOutputs(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, g := range []*ir.Graph{tinyDense(r), tinyCNN(r), tinyResNet(r)} {
		t.Run("ok/"+g.Name, func(t *testing.T) {
			m := compileTest(t, g, testOpts)
			k := withKeys(t, m)
			sk := k.sk
			x := randVec(r, g.InputSize(), 1)
			want, _ := g.Run(x)
			res := k.evaluate(t, nil, x)
			c := m.c
			p := c.params.ckks
			parsed, err := c.params.parseCiphertext("test", res, ctWant{kind: ctResult, level: 0, logSlots: c.logN})
			if err != nil {
				t.Fatal(err)
			}
			all := make([]float64, c.n)
			if err := ckks.NewEncoder(p).Decode(rlwe.NewDecryptor(p, sk.sk.sk).DecryptNew(parsed), all); err != nil {
				t.Fatal(err)
			}
			period := c.steps[len(c.steps)-1].lin.period
			for i, v := range all {
				expect := 0.0
				if k := i % period; k < len(want) {
					expect = want[k]
				}
				if math.Abs(v-expect) > 1e-3 {
					t.Fatalf("slot %d holds %v, want %v (period %d, %d outputs)", i, v, expect, period, len(want))
				}
			}
		})
	}
}

// TestParallelEvaluation splits the linear steps across goroutines and
// checks the result against the reference (run with -race to check the
// evaluators are not shared).
func TestParallelEvaluation(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	g := tinyCNN(r)
	par := testOpts
	par.Parallelism = 3
	m := compileTest(t, g, par)
	split := false
	for _, st := range m.c.steps {
		if st.lin != nil {
			for _, tm := range st.lin.terms {
				split = split || len(tm.parts) > 1
			}
		}
	}
	if !split {
		t.Fatal("no step was split into parts")
	}
	one := testOpts
	one.Parallelism = 1
	seq := compileTest(t, g, one)
	if a, b := m.Manifest().GaloisElements, seq.Manifest().GaloisElements; !slices.Equal(a, b) {
		t.Fatalf("parallel parts need other keys: %v vs %v", a, b)
	}
	k := withKeys(t, m)
	x := randVec(r, g.InputSize(), 1)
	// Three evaluations at once on one model and one key set, as a worker
	// with several jobs on the same device runs them.
	ct, err := m.Encrypt(k.sk, x)
	if err != nil {
		t.Fatal(err)
	}
	models := []*Model{m, seq, m}
	results := make([][]byte, len(models))
	errs := make([]error, len(models))
	var wg sync.WaitGroup
	for i, model := range models {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _, errs[i] = model.Evaluate(context.Background(), k.ks, ct, testRelease)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, res := range results {
		k.checkAgainstReference(t, x, res)
	}
}

// TestSplitInference cuts the tiny ResNet after its first block: the
// device runs the head in the clear and encrypts its output, the model
// evaluates the rest, and the result matches the whole graph's reference.
func TestSplitInference(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	g := tinyResNet(r)
	opts := testOpts
	opts.SplitAfter = "b1act"
	m := compileTest(t, g, opts)
	whole := compileTest(t, g, testOpts)
	man := m.Manifest()
	if man.Split == nil || man.Split.After != "b1act" || man.Split.HeadDigest != m.Head().Digest() {
		t.Fatalf("manifest split %+v", man.Split)
	}
	if !slices.Equal(man.Input, []int{2, 8, 8}) {
		t.Fatalf("split model input %v, want the block's output [2 8 8]", man.Input)
	}
	if man.Levels >= whole.Manifest().Levels || man.CiphertextBytes >= whole.Manifest().CiphertextBytes {
		t.Fatalf("split: %d levels, %d bytes up; whole: %d levels, %d bytes", man.Levels, man.CiphertextBytes, whole.Manifest().Levels, whole.Manifest().CiphertextBytes)
	}
	t.Logf("split after b1act: %d levels, %d bytes up; whole: %d levels, %d bytes", man.Levels, man.CiphertextBytes, whole.Manifest().Levels, whole.Manifest().CiphertextBytes)
	k := withKeys(t, m)
	for trial := 0; trial < 2; trial++ {
		x := randVec(r, g.InputSize(), 1)
		feat, err := m.Head().Run(x)
		if err != nil {
			t.Fatal(err)
		}
		res := k.evaluate(t, nil, feat)
		got, err := m.Decrypt(k.sk, res)
		if err != nil {
			t.Fatal(err)
		}
		want, err := g.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-3 {
				t.Fatalf("output %d: split %v, whole graph %v", i, got[i], want[i])
			}
		}
	}
	// "auto" picks the latest cut the device can afford.
	auto := testOpts
	auto.SplitAfter, auto.DeviceMACs = "auto", m.Manifest().Split.HeadMACs
	am := compileTest(t, g, auto)
	if s := am.Manifest().Split; s == nil || s.HeadMACs > auto.DeviceMACs || s.After != "b1act" {
		t.Fatalf("auto split: %+v", s)
	}
	bad := testOpts
	bad.SplitAfter = "b1poly2" // inside the block: the skip reads the stem's output too
	if _, err := Compile(context.Background(), g, bad); !hegate.Is(err, hegate.KindInvalid) || !strings.Contains(hegate.DetailOf(err), "also reads") {
		t.Fatalf("split inside a residual block: %v", err)
	}
}

// TestRangesReproduce compiles a model with approximations once from
// calibration samples and again from the ranges the first compile
// recorded, as another process does from the stored model: same manifest,
// same outputs.
func TestRangesReproduce(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	g := tinyReluCNN(r)
	opts := testOpts
	opts.Approx = ApproxOptions{Method: "chebyshev", ReluDegree: 3, AbsDegree: 3}
	first := compileTest(t, g, opts)
	rg := first.Ranges()
	if len(rg.Relu) != 1 || len(rg.Pool) != 1 {
		t.Fatalf("ranges %+v", rg)
	}
	opts.Ranges = &rg
	opts.Calibration = [][]float64{make([]float64, g.InputSize())} // ignored
	again, err := Compile(context.Background(), g, opts)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(first.Manifest())
	b, _ := json.Marshal(again.Manifest())
	if !bytes.Equal(a, b) {
		t.Fatalf("manifests differ:\n%s\n%s", a, b)
	}
	x := randVec(r, g.InputSize(), 1)
	ya, _ := first.Approximate(x)
	yb, _ := again.Approximate(x)
	if !slices.Equal(ya, yb) {
		t.Fatalf("outputs differ: %v vs %v", ya, yb)
	}
}

// TestCalibrate: inputs like the calibration samples pass; inputs far
// outside drive an approximation out of its range, which CKKS would not
// notice, and Calibrate says which step; a layer whose values outgrow
// their level is named too.
func TestCalibrate(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	g := tinyReluCNN(r)
	m := compileTest(t, g, CompileOptions{Params: "test-n12-deepest", AllowInsecure: true, Approx: ApproxOptions{Sign: "a4-7-7"}})
	var like, far [][]float64
	for i := 0; i < 16; i++ {
		like = append(like, randVec(r, g.InputSize(), 0.9))
		far = append(far, randVec(r, g.InputSize(), 10))
	}
	cal, err := m.Calibrate(like)
	if err != nil {
		t.Fatalf("in-range samples: %v (%s)", err, cal)
	}
	if _, err := m.Calibrate(far); !hegate.Is(err, hegate.KindInvalid) || !strings.Contains(hegate.DetailOf(err), "left the approximation's range") {
		t.Fatalf("out-of-range samples: %v", err)
	}
	b := nodes{r}
	big := b.dense(8, 4)
	for i := range big.Dense.Weights {
		big.Dense.Weights[i] *= 1e6
	}
	loud := compileTest(t, ir.Chain("loud", []int{8}, big, poly(0, 0, 1), b.dense(4, 2)), testOpts)
	if _, err := loud.Calibrate([][]float64{randVec(r, 8, 1)}); !hegate.Is(err, hegate.KindInvalid) || !strings.Contains(hegate.DetailOf(err), "too close") {
		t.Fatalf("values beyond their level: %v", err)
	}
}

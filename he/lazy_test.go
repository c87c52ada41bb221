package he

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he/ir"
)

// lazyPair is one graph compiled with pre-encoded and with lazy weights,
// each with a key set read from the same bytes (one secret key, one set of
// keys: key switching with other keys would give other ciphertexts).
type lazyPair struct {
	g           *ir.Graph
	eager, lazy keyed
}

func compileLazyPair(t *testing.T, g *ir.Graph, opts CompileOptions) lazyPair {
	t.Helper()
	opts.Calibration = calibrationSet(g)
	enc := opts
	enc.Weights = WeightsEncoded
	lz := opts
	lz.Weights = WeightsLazy
	eager := compileTest(t, g, enc)
	lazy := compileTest(t, g, lz)
	if eager.c.lazy || !lazy.c.lazy {
		t.Fatalf("lazy: encoded model %v, lazy model %v", eager.c.lazy, lazy.c.lazy)
	}
	linear := 0
	for _, st := range lazy.c.steps {
		if st.lin == nil {
			continue
		}
		for _, tm := range st.lin.terms {
			linear++
			if tm.parts != nil || tm.diags == nil {
				t.Fatalf("step %s: lazy term holds %d encoded parts, diagonals %v", st.name, len(tm.parts), tm.diags != nil)
			}
		}
	}
	if linear == 0 {
		t.Fatal("no linear term")
	}
	if a, b := eager.Manifest().GaloisElements, lazy.Manifest().GaloisElements; !slices.Equal(a, b) {
		t.Fatalf("lazy weights need other keys: %v vs %v", b, a)
	}
	sk, err := eager.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	var keys bytes.Buffer
	if _, err := eager.WriteKeySet(&keys, sk); err != nil {
		t.Fatal(err)
	}
	ksE, err := eager.ReadKeySet(bytes.NewReader(keys.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	ksL, err := lazy.ReadKeySet(bytes.NewReader(keys.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return lazyPair{g: g, eager: keyed{m: eager, sk: sk, ks: ksE}, lazy: keyed{m: lazy, sk: sk, ks: ksL}}
}

// rawRun evaluates the input ciphertext ct (wire format) with k's model
// and key set, without the release (which re-randomises), and returns the
// result ciphertext's bytes and the time the circuit took.
func rawRun(t *testing.T, k keyed, ct []byte) ([]byte, time.Duration) {
	t.Helper()
	c := k.m.c
	in, err := c.params.parseCiphertext("test", ct, k.m.inputWant())
	if err != nil {
		t.Fatal(err)
	}
	evals, err := k.ks.k.evaluators(c)
	if err != nil {
		t.Fatal(err)
	}
	defer k.ks.k.pool.Put(evals)
	start := time.Now()
	out, err := c.run(context.Background(), in, evals)
	d := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	b, err := out.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b, d
}

// check encrypts x once, runs both models on that ciphertext and fails
// unless the results are the same bytes; then evaluates the lazy model
// through Evaluate (with the release), decrypts, and checks the result
// against the compiled circuit's float64 executor and, when exact is set
// (no approximated activation), against the graph's reference. It logs
// the circuit's time with each kind of weights, best of reps.
func (p lazyPair) check(t *testing.T, x []float64, exact bool, reps int) {
	t.Helper()
	ct, err := p.eager.m.Encrypt(p.eager.sk, x)
	if err != nil {
		t.Fatal(err)
	}
	var bestE, bestL time.Duration
	for rep := 0; rep < reps; rep++ {
		be, de := rawRun(t, p.eager, ct)
		bl, dl := rawRun(t, p.lazy, ct)
		if !bytes.Equal(be, bl) {
			t.Fatalf("rep %d: lazy result (%d bytes) differs from the pre-encoded one (%d bytes)", rep, len(bl), len(be))
		}
		if rep == 0 || de < bestE {
			bestE = de
		}
		if rep == 0 || dl < bestL {
			bestL = dl
		}
	}
	man := p.lazy.m.Manifest()
	t.Logf("%s on %s (logN %d, 2^%d slots, parallelism %d): circuit with pre-encoded weights %v, lazy %v (×%.2f, best of %d); encoded bytes %d → %d, evaluation bytes %d → %d",
		p.g.Name, man.Params.Preset, man.Params.LogN, man.LogSlots, p.lazy.m.c.parallelism, bestE, bestL, float64(bestL)/float64(bestE), reps,
		p.eager.m.Manifest().EncodedBytes, man.EncodedBytes, p.eager.m.Manifest().EvaluationBytes, man.EvaluationBytes)
	res, _, err := p.lazy.m.Evaluate(context.Background(), p.lazy.ks, ct, testRelease)
	if err != nil {
		t.Fatal(err)
	}
	p.lazy.checkAgainstReference(t, x, res)
	if exact {
		got, err := p.lazy.m.Decrypt(p.lazy.sk, res)
		if err != nil {
			t.Fatal(err)
		}
		want, err := p.g.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-3 {
				t.Fatalf("output %d: encrypted %v, graph reference %v", i, got[i], want[i])
			}
		}
	}
}

// TestLazyWeightsMatchEncoded: a network with convolutions, residual
// blocks and a strided projection, compiled with lazy weights, gives the
// same result ciphertext bit for bit as with pre-encoded weights (same
// keys, same input ciphertext), sequentially and with the diagonals
// encoded by two goroutines into split parts; and it decrypts to the
// graph's reference.
func TestLazyWeightsMatchEncoded(t *testing.T) {
	for _, par := range []int{1, 2} {
		r := rand.New(rand.NewPCG(71, 72))
		g := tinyResNet(r)
		opts := testOpts
		opts.Parallelism = par
		p := compileLazyPair(t, g, opts)
		if par > 1 {
			split := false
			for _, st := range p.lazy.m.c.steps {
				if st.lin != nil {
					for _, tm := range st.lin.terms {
						split = split || len(tm.lists) > 1
					}
				}
			}
			if !split {
				t.Fatal("no lazy term is split into parts")
			}
		}
		p.check(t, randVec(r, g.InputSize(), 1), true, 3)
	}
}

// TestLazyWeightsBootstrapped: the same on the bootstrapping test preset,
// for the tiny CNN with ReLU and max pooling of TestBootstrappedReluCNN.
func TestLazyWeightsBootstrapped(t *testing.T) {
	r := rand.New(rand.NewPCG(67, 68))
	g := tinyReluCNN(r)
	opts := bootOpts
	opts.Approx = ApproxOptions{Sign: "a4-7-7"}
	p := compileLazyPair(t, g, opts)
	if p.lazy.m.Manifest().Cost.Bootstraps == 0 {
		t.Fatal("no bootstrap placed")
	}
	p.check(t, randVec(r, g.InputSize(), 1), false, 2)
}

// TestLazyWeightsManifest checks the memory figures of lazy weights against
// their formulas, that the manifests differ in nothing else, and when
// Weights "" (auto) picks lazy weights.
func TestLazyWeightsManifest(t *testing.T) {
	r := rand.New(rand.NewPCG(73, 74))
	g := tinyResNet(r)
	opts := testOpts
	opts.Parallelism = 2
	opts.Calibration = calibrationSet(g)
	compile := func(weights string, maxEncoded int64) *Model {
		o := opts
		o.Weights, o.MaxEncodedBytes = weights, maxEncoded
		return compileTest(t, g, o)
	}
	eager, lazy, auto := compile(WeightsEncoded, 0), compile(WeightsLazy, 0), compile("", 0)
	me, ml := eager.Manifest(), lazy.Manifest()
	p := eager.c.params.ckks
	N, n, P := int64(p.N()), int64(1)<<me.LogSlots, int64(p.PCount())
	var wantE, wantL int64
	for _, st := range me.Steps {
		if st.Kind == "linear" {
			// One plaintext in QP at the step's level per diagonal, or
			// n float64 values.
			wantE += int64(st.Diagonals) * (int64(st.Level) + 1 + P) * N * 8
			wantL += int64(st.Diagonals) * n * 8
		}
	}
	if me.EncodedBytes != wantE || ml.EncodedBytes != wantL || wantL == 0 {
		t.Fatalf("encoded bytes: pre-encoded %d (want %d), lazy %d (want %d)", me.EncodedBytes, wantE, ml.EncodedBytes, wantL)
	}
	// Lazy keeps the largest term's plaintexts and an encoder per
	// goroutine during an evaluation.
	var term int64
	for _, st := range lazy.c.steps {
		if st.lin != nil {
			for _, tm := range st.lin.terms {
				term = max(term, int64(len(tm.diags))*(int64(st.level)+1+P)*N*8)
			}
		}
	}
	ecds := int64(lazy.c.parallelism) * int64((p.MaxLevel()+1)*8+16) * N
	if ml.EvaluationBytes != me.EvaluationBytes+term+ecds || ml.Weights != WeightsLazy || me.Weights != "" {
		t.Fatalf("evaluation bytes: lazy %d, pre-encoded %d + largest term %d + encoders %d; weights %q, %q", ml.EvaluationBytes, me.EvaluationBytes, term, ecds, ml.Weights, me.Weights)
	}
	t.Logf("resident weights: pre-encoded %d bytes, lazy %d (1/%.0f); evaluation %d → %d bytes", me.EncodedBytes, ml.EncodedBytes, float64(me.EncodedBytes)/float64(ml.EncodedBytes), me.EvaluationBytes, ml.EvaluationBytes)

	// The manifests differ in those three fields only, and the default
	// (auto, below the bound) is the pre-encoded one, byte for byte.
	js := func(m Manifest, drop bool) string {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !drop {
			return string(b)
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		delete(v, "encoded_bytes")
		delete(v, "evaluation_bytes")
		delete(v, "weights")
		b, _ = json.Marshal(v)
		return string(b)
	}
	if js(me, true) != js(ml, true) {
		t.Fatalf("manifests differ beyond the weights:\n%s\n%s", js(me, true), js(ml, true))
	}
	if auto.c.lazy || js(auto.Manifest(), false) != js(me, false) {
		t.Fatalf("auto below the default bound: lazy %v, manifest\n%s\nwant\n%s", auto.c.lazy, js(auto.Manifest(), false), js(me, false))
	}
	// Auto with a bound below the pre-encoded size is lazy; at the size,
	// pre-encoded.
	if below := compile("", me.EncodedBytes-1); !below.c.lazy || below.Manifest().Weights != WeightsLazy || js(below.Manifest(), false) != js(ml, false) {
		t.Fatalf("auto with max %d < %d: lazy %v", me.EncodedBytes-1, me.EncodedBytes, below.c.lazy)
	}
	if at := compile("", me.EncodedBytes); at.c.lazy || js(at.Manifest(), false) != js(me, false) {
		t.Fatalf("auto with max %d = the pre-encoded size: lazy %v", me.EncodedBytes, at.c.lazy)
	}
	for _, bad := range []CompileOptions{{Weights: "streamed"}, {MaxEncodedBytes: -1}} {
		o := opts
		o.Weights, o.MaxEncodedBytes = bad.Weights, bad.MaxEncodedBytes
		if _, err := Compile(context.Background(), g, o); !hegate.Is(err, hegate.KindInvalid) {
			t.Fatalf("weights %q, max %d: %v", bad.Weights, bad.MaxEncodedBytes, err)
		}
	}
}

// BenchmarkLazyWeights times one evaluation (the circuit, without the
// release) with pre-encoded and with lazy weights on a test preset.
func BenchmarkLazyWeights(b *testing.B) {
	r := rand.New(rand.NewPCG(75, 76))
	g := tinyResNet(r)
	for _, weights := range []string{WeightsEncoded, WeightsLazy} {
		b.Run(weights, func(b *testing.B) {
			opts := testOpts
			opts.Weights, opts.Calibration = weights, calibrationSet(g)
			m, err := Compile(context.Background(), g, opts)
			if err != nil {
				b.Fatal(err)
			}
			k := withKeys(b, m)
			ct, err := m.Encrypt(k.sk, randVec(r, g.InputSize(), 1))
			if err != nil {
				b.Fatal(err)
			}
			evals, err := k.ks.k.evaluators(m.c)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				in, err := m.c.params.parseCiphertext("bench", ct, m.inputWant())
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := m.c.run(context.Background(), in, evals); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDescribeOnly: a model compiled for a process that never evaluates
// serves the same manifest as the evaluating one (byte for byte), holds no
// weights, checks a key set the same way, and refuses to evaluate.
func TestDescribeOnly(t *testing.T) {
	r := rand.New(rand.NewPCG(75, 76))
	g := tinyResNet(r)
	opts := testOpts
	opts.Calibration = calibrationSet(g)
	full := compileTest(t, g, opts)
	opts.DescribeOnly = true
	desc := compileTest(t, g, opts)
	a, err := json.Marshal(full.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(desc.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("manifests differ:\n%s\n%s", a, b)
	}
	for _, st := range desc.c.steps {
		if st.lin == nil {
			continue
		}
		for _, term := range st.lin.terms {
			if term.parts != nil || term.diags != nil {
				t.Fatalf("step %s keeps weights (%d parts, %d diagonals)", st.name, len(term.parts), len(term.diags))
			}
		}
	}
	k := withKeys(t, full)
	var keys bytes.Buffer
	if _, err := full.WriteKeySet(&keys, k.sk); err != nil {
		t.Fatal(err)
	}
	if _, err := desc.CheckKeySet(bytes.NewReader(keys.Bytes())); err != nil {
		t.Fatalf("the describing model refuses the key set: %v", err)
	}
	ct, err := full.Encrypt(k.sk, randVec(r, g.InputSize(), 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := desc.Evaluate(context.Background(), k.ks, ct, testRelease); err == nil || !strings.Contains(err.Error(), "DescribeOnly") {
		t.Fatalf("Evaluate on a describing model: %v", err)
	}
}

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
)

func randVec(r *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = (r.Float64()*2 - 1) * scale
	}
	return v
}

// keyed is a compiled model with a device secret key and its parsed key set.
type keyed struct {
	m  *Model
	sk *SecretKey
	ks *KeySet
}

func withKeys(t *testing.T, m *Model) keyed {
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
	res, _, err := model.Evaluate(context.Background(), k.ks, ct)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// checkAgainstReference fails unless the decrypted result is within 1e-3
// of the graph's float64 reference on x.
func (k keyed) checkAgainstReference(t *testing.T, x []float64, res []byte) {
	t.Helper()
	want, err := k.m.Graph().Reference(x)
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

// tinyDense is input [16], dense 16→8, a·x²+b·x+c, dense 8→4.
func tinyDense(r *rand.Rand) *Graph {
	return &Graph{
		Name:  "tiny-dense",
		Input: []int{16},
		Layers: []Layer{
			{Op: OpDense, Dense: &Dense{In: 16, Out: 8, Weights: randVec(r, 128, 0.5), Bias: randVec(r, 8, 0.5)}},
			{Op: OpPoly, Poly: &Poly{Coeffs: []float64{0.1, 0.5, 0.25}}},
			{Op: OpDense, Dense: &Dense{In: 8, Out: 4, Weights: randVec(r, 32, 0.5), Bias: randVec(r, 4, 0.5)}},
		},
	}
}

// tinyCNN is a CryptoNets-shaped network on a 1×10×10 input: 5×5 output
// positions, so the im2col layout is padded to blocks of 32 slots.
func tinyCNN(r *rand.Rand) *Graph {
	return &Graph{
		Name:  "tiny-cnn",
		Input: []int{1, 10, 10},
		Layers: []Layer{
			{Op: OpConv2D, Conv: &Conv2D{InChannels: 1, OutChannels: 2, Kernel: 3, Stride: 2, Padding: 1, Weights: randVec(r, 18, 0.5), Bias: randVec(r, 2, 0.2)}},
			{Op: OpPoly, Poly: &Poly{Coeffs: []float64{0, 0.5, 0.1}}},
			{Op: OpFlatten},
			{Op: OpDense, Dense: &Dense{In: 50, Out: 6, Weights: randVec(r, 300, 0.3), Bias: randVec(r, 6, 0.2)}},
			{Op: OpPoly, Poly: &Poly{Coeffs: []float64{0, 0.5, 0.1}}},
			{Op: OpDense, Dense: &Dense{In: 6, Out: 3, Weights: randVec(r, 18, 0.5), Bias: randVec(r, 3, 0.2)}},
		},
	}
}

func TestEncryptedMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, g := range []*Graph{tinyDense(r), tinyCNN(r)} {
		t.Run("ok/"+g.Name, func(t *testing.T) {
			m, err := Compile(g, CompileOptions{Params: "test-n12", AllowInsecure: true})
			if err != nil {
				t.Fatal(err)
			}
			man := m.Manifest()
			t.Logf("manifest: slots 2^%d levels %d galois %d cost %+v keyset %d bytes", man.LogSlots, man.Levels, len(man.GaloisElements), man.Cost, man.KeySetBytes)
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
			for trial := 0; trial < 3; trial++ {
				x := randVec(r, g.InputSize(), 1)
				want, err := g.Reference(x)
				if err != nil {
					t.Fatal(err)
				}
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
				res, _, err := m.Evaluate(context.Background(), ks, ct)
				if err != nil {
					t.Fatal(err)
				}
				got, err := dev.Decrypt(sk, res)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if math.Abs(got[i]-want[i]) > 1e-3 {
						t.Fatalf("output %d: encrypted %v, reference %v", i, got[i], want[i])
					}
				}
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
	dense := func(in, out int) Layer {
		return Layer{Op: OpDense, Dense: &Dense{In: in, Out: out, Weights: randVec(r, in*out, 0.5), Bias: randVec(r, out, 0.3)}}
	}
	poly := func(c ...float64) Layer { return Layer{Op: OpPoly, Poly: &Poly{Coeffs: c}} }
	tests := []struct {
		name   string
		g      *Graph
		levels int
	}{
		{"ok/ends-in-activation", &Graph{Name: "a", Input: []int{8}, Layers: []Layer{dense(8, 4), poly(0.2, 0.5, 0.3)}}, 3},
		{"ok/dense-dense-fused", &Graph{Name: "b", Input: []int{8}, Layers: []Layer{dense(8, 6), dense(6, 3)}}, 1},
		{"ok/degree-1-folded", &Graph{Name: "c", Input: []int{8}, Layers: []Layer{dense(8, 6), poly(0.1, 2), dense(6, 3)}}, 1},
		{"ok/conv-only", &Graph{Name: "d", Input: []int{1, 6, 6}, Layers: []Layer{
			{Op: OpConv2D, Conv: &Conv2D{InChannels: 1, OutChannels: 2, Kernel: 3, Stride: 2, Padding: 0, Weights: randVec(r, 18, 0.5), Bias: randVec(r, 2, 0.1)}},
		}}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Compile(tc.g, CompileOptions{Params: "test-n12", AllowInsecure: true})
			if err != nil {
				t.Fatal(err)
			}
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
	dense := func(in, out int) Layer {
		return Layer{Op: OpDense, Dense: &Dense{In: in, Out: out, Weights: randVec(r, in*out, 0.5), Bias: randVec(r, out, 0.3)}}
	}
	sq := Layer{Op: OpPoly, Poly: &Poly{Coeffs: []float64{0, 0, 1}}}
	tests := []struct {
		name, want string
		g          *Graph
		opts       CompileOptions
	}{
		{"fail/degree-3", "degree 3", &Graph{Name: "a", Input: []int{4}, Layers: []Layer{dense(4, 4), {Op: OpPoly, Poly: &Poly{Coeffs: []float64{0, 1, 0, 1}}}}}, CompileOptions{Params: "test-n12", AllowInsecure: true}},
		{"fail/activation-first", "must follow", &Graph{Name: "b", Input: []int{4}, Layers: []Layer{sq, dense(4, 2)}}, CompileOptions{Params: "test-n12", AllowInsecure: true}},
		{"fail/too-deep", "levels", &Graph{Name: "c", Input: []int{4}, Layers: []Layer{dense(4, 4), sq, dense(4, 4), sq, dense(4, 4), sq, dense(4, 4)}}, CompileOptions{Params: "test-n12", AllowInsecure: true}},
		{"fail/too-wide", "slots", &Graph{Name: "d", Input: []int{4096}, Layers: []Layer{dense(4096, 2)}}, CompileOptions{Params: "test-n12", AllowInsecure: true}},
		{"fail/insecure", "128-bit", &Graph{Name: "e", Input: []int{4}, Layers: []Layer{dense(4, 2)}}, CompileOptions{Params: "test-n12"}},
		{"fail/unknown-preset", "unknown parameter preset", &Graph{Name: "f", Input: []int{4}, Layers: []Layer{dense(4, 2)}}, CompileOptions{Params: "n99"}},
		{"fail/shape", "in 5", &Graph{Name: "g", Input: []int{4}, Layers: []Layer{dense(5, 2)}}, CompileOptions{Params: "test-n12", AllowInsecure: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.g, tc.opts)
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
	for _, g := range []*Graph{tinyDense(r), tinyCNN(r)} {
		t.Run("ok/"+g.Name, func(t *testing.T) {
			m, err := Compile(g, CompileOptions{Params: "test-n12", AllowInsecure: true})
			if err != nil {
				t.Fatal(err)
			}
			k := withKeys(t, m)
			sk := k.sk
			x := randVec(r, g.InputSize(), 1)
			want, _ := g.Reference(x)
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
			period := c.steps[len(c.steps)-1].period
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
	m, err := Compile(g, CompileOptions{Params: "test-n12", AllowInsecure: true, Parallelism: 3})
	if err != nil {
		t.Fatal(err)
	}
	split := false
	for _, st := range m.c.steps {
		split = split || len(st.parts) > 1
	}
	if !split {
		t.Fatal("no step was split into parts")
	}
	seq, err := Compile(g, CompileOptions{Params: "test-n12", AllowInsecure: true, Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
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
			results[i], _, errs[i] = model.Evaluate(context.Background(), k.ks, ct)
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

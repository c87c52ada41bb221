package he

import (
	"bytes"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/dp"
	"github.com/hegate/hegate/he/ir"
)

// seededReader is a deterministic io.Reader for reproducible noise.
type seededReader struct{ r *rand.ChaCha8 }

func newSeededReader(seed byte) *seededReader {
	var s [32]byte
	s[0] = seed
	return &seededReader{rand.NewChaCha8(s)}
}

func (s *seededReader) Read(p []byte) (int, error) { return s.r.Read(p) }

// TestReleaseNoise runs 1,000 encrypted queries end to end and checks
// that decrypted outputs minus the float64 reference have mean 0 and the
// requested standard deviation: the exact discrete Gaussian added to the
// phase in the coefficient domain shows in every output, after Decrypt
// averages the replicas, as noise of exactly sigma.
func TestReleaseNoise(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 encrypted queries")
	}
	r := rand.New(rand.NewPCG(41, 42))
	g := tinyDense(r)
	m := compileTest(t, g, testOpts)
	k := withKeys(t, m)
	const (
		queries = 1000
		sigma   = 0.25
	)
	rel := Release{Sigma: sigma, Rand: newSeededReader(1)}
	var sum, sum2 float64
	n := 0
	for q := 0; q < queries; q++ {
		x := randVec(r, g.InputSize(), 1)
		ct, err := m.Encrypt(k.sk, x)
		if err != nil {
			t.Fatal(err)
		}
		res, _, err := m.Evaluate(context.Background(), k.ks, ct, rel)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Decrypt(k.sk, res)
		if err != nil {
			t.Fatal(err)
		}
		want, err := m.Approximate(x)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			d := got[i] - want[i]
			sum += d
			sum2 += d * d
			n++
		}
	}
	mean := sum / float64(n)
	std := math.Sqrt(sum2/float64(n) - mean*mean)
	// The sample mean has standard deviation sigma/√n and the sample
	// standard deviation about sigma/√(2n) (1.1% here): 5 of each.
	if tol := 5 * sigma / math.Sqrt(float64(n)); math.Abs(mean) > tol {
		t.Errorf("mean noise %.5f over %d outputs, want 0 ± %.5f", mean, n, tol)
	}
	if tol := 5 / math.Sqrt(2*float64(n)); math.Abs(std/sigma-1) > tol {
		t.Errorf("noise standard deviation %.5f over %d outputs, want %.5f ± %.1f%%", std, n, sigma, 100*tol)
	}
	t.Logf("%d queries, %d outputs: noise mean %.5f, std %.5f (sigma %.3f)", queries, n, mean, std, sigma)
}

// rawResult evaluates without releasing: only tests can.
func rawResult(t *testing.T, k keyed, x []float64) (*rlwe.Ciphertext, []byte) {
	t.Helper()
	ct, err := k.m.Encrypt(k.sk, x)
	if err != nil {
		t.Fatal(err)
	}
	c := k.m.c
	parsed, err := c.params.parseCiphertext("test", ct, k.m.inputWant())
	if err != nil {
		t.Fatal(err)
	}
	evals, _ := k.ks.k.evaluators(c)
	defer k.ks.k.pool.Put(evals)
	out, err := c.run(context.Background(), parsed, evals)
	if err != nil {
		t.Fatal(err)
	}
	return out, ct
}

// TestReleaseRerandomises checks that two releases of the same input
// with the same key set share nothing in c1, and that neither is the raw
// result's c1: what the device receives is not a function of the weights
// it could test guesses against.
func TestReleaseRerandomises(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	g := tinyDense(r)
	m := compileTest(t, g, testOpts)
	k := withKeys(t, m)
	raw, ct := rawResult(t, k, randVec(r, g.InputSize(), 1))
	c1 := func(b []byte) []uint64 {
		parsed, err := m.c.params.parseCiphertext("test", b, ctWant{kind: ctResult, level: 0, logSlots: m.c.logN})
		if err != nil {
			t.Fatal(err)
		}
		return parsed.Value[1].Coeffs[0]
	}
	var released [][]uint64
	for i := 0; i < 2; i++ {
		res, _, err := m.Evaluate(context.Background(), k.ks, ct, testRelease)
		if err != nil {
			t.Fatal(err)
		}
		released = append(released, c1(res))
	}
	q := m.c.params.ckks.Q()[0]
	same := func(a, b []uint64) int {
		n := 0
		for i := range a {
			if a[i] == b[i] {
				n++
			}
		}
		return n
	}
	rawC1 := raw.Value[1].Coeffs[0]
	// Unrelated uniform values mod a 55-bit prime coincide with
	// probability 2^-55 per coefficient: any match is a failure.
	for _, pair := range [][2][]uint64{{released[0], released[1]}, {released[0], rawC1}, {released[1], rawC1}} {
		if n := same(pair[0], pair[1]); n > 0 {
			t.Fatalf("%d of %d c1 coefficients equal between releases (or a release and the raw result)", n, len(pair[0]))
		}
	}
	// The difference of two releases' c1 is itself uniform: its mean
	// coefficient (as a fraction of q) is near 1/2.
	mean := 0.0
	for i := range released[0] {
		d := (released[0][i] + q - released[1][i]) % q
		mean += float64(d) / float64(q)
	}
	mean /= float64(len(released[0]))
	if math.Abs(mean-0.5) > 0.05 {
		t.Fatalf("c1 difference of two releases has mean %.3f of q, want about 0.5 (uniform)", mean)
	}
}

// TestReleaseIsTheOnlyPath reads the package's source: a result
// ciphertext is encoded in one place only, Evaluate, and only after
// release. So no exported function hands out an unre-randomised result.
func TestReleaseIsTheOnlyPath(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	found := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			var releaseAt, marshalAt token.Pos
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				switch sel.Sel.Name {
				case "release":
					releaseAt = call.Pos()
				case "marshalCiphertext":
					if id, ok := call.Args[0].(*ast.Ident); ok && id.Name == "ctResult" {
						marshalAt = call.Pos()
					}
				}
				return true
			})
			if marshalAt == token.NoPos {
				continue
			}
			found++
			if fn.Name.Name != "Evaluate" || releaseAt == token.NoPos || releaseAt > marshalAt {
				t.Errorf("%s: %s encodes a result ciphertext without releasing it first", fset.Position(marshalAt), fn.Name.Name)
			}
		}
	}
	if found != 1 {
		t.Fatalf("found %d functions that encode result ciphertexts, want exactly 1 (Evaluate)", found)
	}
}

// TestReleaseRefuses checks what Evaluate refuses to release.
func TestReleaseRefuses(t *testing.T) {
	r := rand.New(rand.NewPCG(45, 46))
	g := tinyDense(r)
	m := compileTest(t, g, testOpts)
	k := withKeys(t, m)
	ct, err := m.Encrypt(k.sk, randVec(r, g.InputSize(), 1))
	if err != nil {
		t.Fatal(err)
	}
	noPK := &KeySet{k: &keySet{evk: k.ks.k.evk}}
	for _, tc := range []struct {
		name string
		ks   *KeySet
		rel  Release
		want string
	}{
		{"zero sigma", k.ks, Release{}, "must be positive"},
		{"NaN sigma", k.ks, Release{Sigma: math.NaN()}, "must be positive"},
		{"infinite sigma", k.ks, Release{Sigma: math.Inf(1)}, "must be positive"},
		{"sigma too large", k.ks, Release{Sigma: 2 * m.c.releaseMaxSigma()}, "exceeds"},
		{"no public key", noPK, testRelease, "no public key"},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			_, _, err := m.Evaluate(context.Background(), tc.ks, ct, tc.rel)
			if !hegate.Is(err, hegate.KindInvalid) || !strings.Contains(hegate.DetailOf(err), tc.want) {
				t.Fatalf("got %v, want invalid mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("fail/version 1 key set", func(t *testing.T) {
		var keys bytes.Buffer
		if _, err := m.WriteKeySet(&keys, k.sk); err != nil {
			t.Fatal(err)
		}
		b := keys.Bytes()
		b[4] = 1
		_, err := m.CheckKeySet(bytes.NewReader(b))
		if !hegate.Is(err, hegate.KindInvalid) || !strings.Contains(hegate.DetailOf(err), "no public key") {
			t.Fatalf("got %v, want a refusal that names the missing public key", err)
		}
	})
	t.Run("fail/public key record missing", func(t *testing.T) {
		var keys bytes.Buffer
		if _, err := m.WriteKeySet(&keys, k.sk); err != nil {
			t.Fatal(err)
		}
		b := keys.Bytes()[:keys.Len()-int(m.c.publicKeyBytes())]
		_, err := m.CheckKeySet(bytes.NewReader(b))
		if !hegate.Is(err, hegate.KindInvalid) || !strings.Contains(hegate.DetailOf(err), "public key") {
			t.Fatalf("got %v, want a refusal that names the public key", err)
		}
	})
}

// TestMechanism checks the declared mechanism against its definition and
// against measurements: the calibrated range holds the outputs, and the
// raw evaluation error of every slot stays below the declared SlotError.
func TestMechanism(t *testing.T) {
	r := rand.New(rand.NewPCG(47, 48))
	for _, g := range []*ir.Graph{tinyDense(r), tinyCNN(r), tinyResNet(r)} {
		t.Run("ok/"+g.Name, func(t *testing.T) {
			m := compileTest(t, g, testOpts)
			mech := m.Privacy()
			if mech == nil {
				t.Fatalf("no mechanism: %s", m.Manifest().PrivacyNote)
			}
			man := m.Manifest()
			w := mech.OutputRange[1] - mech.OutputRange[0]
			wantS := math.Sqrt(float64(man.OutputSize))*w + 2*mech.SlotError*math.Sqrt(float64(mech.Period)) + 2*m.c.outsideSlotsError(mech.Period)
			if mech.Outputs != man.OutputSize || mech.Period != man.OutputPeriod || mech.Period*mech.Replicas != 1<<man.LogSlots ||
				math.Abs(mech.Sensitivity/wantS-1) > 1e-12 || math.Abs(mech.SlotError/(w/1024)-1) > 1e-12 {
				t.Fatalf("mechanism %+v does not follow its definition (sensitivity want %v)", *mech, wantS)
			}
			rho, _ := dp.GaussianRho(mech.Sensitivity, mech.Sigma)
			eps, _ := dp.ZCDPToEpsilon(rho, mech.Delta)
			if math.Abs(mech.Rho/rho-1) > 1e-12 || math.Abs(mech.Epsilon/eps-1) > 1e-12 || math.Abs(mech.Epsilon/DefaultQueryEpsilon-1) > 1e-6 {
				t.Fatalf("mechanism rho %v epsilon %v, want %v and %v (the default per-query epsilon %v)", mech.Rho, mech.Epsilon, rho, eps, DefaultQueryEpsilon)
			}
			k := withKeys(t, m)
			c := m.c
			p := c.params.ckks
			worst := 0.0
			for trial := 0; trial < 4; trial++ {
				x := randVec(r, g.InputSize(), 1)
				want, _ := m.Approximate(x)
				for _, v := range want {
					if v < mech.OutputRange[0] || v > mech.OutputRange[1] {
						t.Fatalf("output %v outside the declared range %v", v, mech.OutputRange)
					}
				}
				raw, _ := rawResult(t, k, x)
				all := make([]complex128, c.n)
				if err := ckks.NewEncoder(p).Decode(rlwe.NewDecryptor(p, k.sk.sk.sk).DecryptNew(raw), all); err != nil {
					t.Fatal(err)
				}
				for i, v := range all {
					expect := 0.0
					if j := i % mech.Period; j < len(want) {
						expect = want[j]
					}
					// Real and imaginary parts: the phase holds both.
					worst = math.Max(worst, math.Max(math.Abs(real(v)-expect), math.Abs(imag(v))))
				}
			}
			if worst >= mech.SlotError {
				t.Fatalf("raw evaluation error %.3g in some slot, declared bound %.3g", worst, mech.SlotError)
			}
			t.Logf("worst raw slot error %.3g, declared %.3g; sensitivity %.4g, sigma %.4g at epsilon %v", worst, mech.SlotError, mech.Sensitivity, mech.Sigma, mech.Epsilon)
		})
	}
}

// TestOutputClip compiles a model with the output clip: the declared range
// is [−R, R] and holds, exactly, for network outputs up to 2R; the order of
// outputs inside the range is kept; the encrypted result matches the
// clipped reference, and the slots beyond the outputs still hold zero.
func TestOutputClip(t *testing.T) {
	r := rand.New(rand.NewPCG(49, 50))
	g := tinyDense(r)
	opts := testOpts
	opts.Privacy = PrivacyOptions{Clip: true}
	m := compileTest(t, g, opts)
	mech := m.Privacy()
	if mech == nil || !mech.Clip {
		t.Fatalf("mechanism %+v: want the clip (%s)", mech, m.Manifest().PrivacyNote)
	}
	R := mech.OutputRange[1]
	if mech.OutputRange[0] != -R || mech.ClipDomain != [2]float64{-2 * R, 2 * R} {
		t.Fatalf("range %v, clip domain %v: want [−R, R] and [−2R, 2R]", mech.OutputRange, mech.ClipDomain)
	}
	clipped := m.Graph()
	if clipped.Output != "privacy.clip" {
		t.Fatalf("the compiled graph's output is %q", clipped.Output)
	}
	// In plaintext: the clip is R·f(y/R) of the network's output y, within
	// [−R, R] for |y| <= 2R, and increasing on [−R, R].
	for trial := 0; trial < 200; trial++ {
		x := randVec(r, g.InputSize(), 1+3*r.Float64())
		y, _ := g.Run(x)
		z, _ := clipped.Run(x)
		for i := range y {
			u := y[i] / R
			if want := R * (1.5*u - 0.5*u*u*u); math.Abs(z[i]-want) > 1e-9*R {
				t.Fatalf("clip(%v) = %v, want %v", y[i], z[i], want)
			}
			if math.Abs(y[i]) <= 2*R && math.Abs(z[i]) > R*(1+1e-12) {
				t.Fatalf("network output %v (within 2R = %v) clipped to %v, outside [−R, R]", y[i], 2*R, z[i])
			}
		}
		for i := range y {
			for j := range y {
				if math.Abs(y[i]) <= R && math.Abs(y[j]) <= R && y[i] < y[j] && !(z[i] < z[j]) {
					t.Fatalf("clip does not keep the order of %v < %v (%v, %v)", y[i], y[j], z[i], z[j])
				}
			}
		}
	}
	k := withKeys(t, m)
	x := randVec(r, g.InputSize(), 1)
	k.checkAgainstReference(t, x, k.evaluate(t, nil, x))
	want, _ := m.Approximate(x)
	raw, _ := rawResult(t, k, x)
	p := m.c.params.ckks
	all := make([]float64, m.c.n)
	if err := ckks.NewEncoder(p).Decode(rlwe.NewDecryptor(p, k.sk.sk.sk).DecryptNew(raw), all); err != nil {
		t.Fatal(err)
	}
	for i, v := range all {
		expect := 0.0
		if j := i % mech.Period; j < len(want) {
			expect = want[j]
		}
		if math.Abs(v-expect) > mech.SlotError {
			t.Fatalf("slot %d holds %v, want %v", i, v, expect)
		}
	}
}

// TestComplexInputIsProjected plays a device that encrypts complex values
// (the SDK never does, but nothing on the wire prevents it): the gateway
// projects the input onto its real part, so the result is the model's
// output on the real part and every imaginary part is zero, not a second,
// uncounted channel of model-dependent values.
func TestComplexInputIsProjected(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	for _, g := range []*ir.Graph{tinyDense(r), tinyCNN(r)} {
		t.Run("ok/"+g.Name, func(t *testing.T) {
			m := compileTest(t, g, testOpts)
			k := withKeys(t, m)
			c := m.c
			p := c.params.ckks
			x := randVec(r, g.InputSize(), 1)
			y := randVec(r, g.InputSize(), 1)
			packedX, err := m.Device().PackInput(x)
			if err != nil {
				t.Fatal(err)
			}
			packedY, _ := m.Device().PackInput(y)
			vals := make([]complex128, c.n)
			for i := range packedX {
				vals[i] = complex(packedX[i]/2, packedY[i]) // the honest half, plus a large imaginary part
			}
			pt := ckks.NewPlaintext(p, c.inputLevel)
			pt.LogDimensions.Cols = c.logN
			if err := ckks.NewEncoder(p).Encode(vals, pt); err != nil {
				t.Fatal(err)
			}
			ct, err := rlwe.NewEncryptor(p, k.sk.sk.sk).EncryptNew(pt)
			if err != nil {
				t.Fatal(err)
			}
			evals, _ := k.ks.k.evaluators(c)
			defer k.ks.k.pool.Put(evals)
			out, err := c.run(context.Background(), ct, evals)
			if err != nil {
				t.Fatal(err)
			}
			all := make([]complex128, c.n)
			if err := ckks.NewEncoder(p).Decode(rlwe.NewDecryptor(p, k.sk.sk.sk).DecryptNew(out), all); err != nil {
				t.Fatal(err)
			}
			want, _ := m.Approximate(x)
			mech := m.Privacy()
			for i, v := range all {
				expect := 0.0
				if j := i % mech.Period; j < len(want) {
					expect = want[j]
				}
				if math.Abs(real(v)-expect) > mech.SlotError || math.Abs(imag(v)) > mech.SlotError {
					t.Fatalf("slot %d holds %v, want %v + 0i within %v", i, v, expect, mech.SlotError)
				}
			}
		})
	}
}

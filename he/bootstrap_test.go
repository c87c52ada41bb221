package he

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tuneinsight/lattigo/v6/circuits/ckks/bootstrapping"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he/ir"
)

var bootOpts = CompileOptions{Params: "test-n10-boot", AllowInsecure: true}

// deepNet is blocks × (dense 8→8, x + 0.05·x²) then dense 8→4: two
// levels a block, deeper than any leveled test preset for 16 blocks. Each
// dense layer is 0.9 × a cyclic shift plus small random weights: close to
// an isometry, so the output still depends on the input after 33 levels
// and the values stay O(1).
func deepNet(r *rand.Rand, blocks int) *ir.Graph {
	b := nodes{r}
	var layers []*ir.Node
	for i := 0; i < blocks; i++ {
		d := b.dense(8, 8)
		for k := range d.Dense.Weights {
			d.Dense.Weights[k] *= 0.15
		}
		for row := 0; row < 8; row++ {
			d.Dense.Weights[row*8+(row+1+i)%8] += 0.9
		}
		for k := range d.Dense.Bias {
			d.Dense.Bias[k] *= 0.1
		}
		layers = append(layers, d, poly(0, 1, 0.05))
	}
	layers = append(layers, b.dense(8, 4))
	return ir.Chain("deep", []int{8}, layers...)
}

// TestBootstrappedMatchesReference compiles a network deeper than every
// leveled test preset on the bootstrapping test preset, makes the device's
// keys from the served manifest (bootstrapping keys included), encrypts,
// evaluates with the placed bootstraps, decrypts and checks the result
// against the graph's reference executor.
func TestBootstrappedMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	g := deepNet(r, 16)
	deepest, err := LoadParams("test-n12-deepest", true)
	if err != nil {
		t.Fatal(err)
	}
	circ, err := Lower(context.Background(), g, bootOpts)
	if err != nil {
		t.Fatal(err)
	}
	if circ.Levels() <= deepest.ckks.MaxLevel() {
		t.Fatalf("the network needs %d levels, not more than the deepest leveled test preset's %d", circ.Levels(), deepest.ckks.MaxLevel())
	}
	start := time.Now()
	m := compileTest(t, g, bootOpts)
	man := m.Manifest()
	t.Logf("compiled in %v: %d levels needed, preset holds %d; %d bootstraps, input at level %d, key set %d bytes (bootstrapping keys %d: %d Galois, relin at %d), placement cost %.1f (exact %v)",
		time.Since(start), circ.Levels(), man.Params.MaxLevel, man.Cost.Bootstraps, man.Levels, man.KeySetBytes, man.BootstrapKeys.Bytes, len(man.BootstrapKeys.GaloisElements), man.BootstrapKeys.RelinLevel, m.c.placementCost, m.c.placementExact)
	t.Logf("placement:%s", m.BootstrapReport())
	// 33 levels, 8 per refresh and at most 8 at the input: at least 4.
	if man.Cost.Bootstraps < 4 || man.Cost.Bootstraps != len(man.Bootstraps) || man.BootstrapKeys == nil {
		t.Fatalf("%d bootstraps (report %d), keys %v", man.Cost.Bootstraps, len(man.Bootstraps), man.BootstrapKeys)
	}
	for _, bi := range man.Bootstraps {
		if man.Steps[bi.Step].Kind != "bootstrap" || bi.OutputLevel != man.Params.MaxLevel || !strings.Contains(bi.Reason, "level") {
			t.Fatalf("bootstrap report %+v, step %+v", bi, man.Steps[bi.Step])
		}
	}
	if man.Cost.Bootstraps != 4 {
		t.Errorf("%d bootstraps; 4 suffice for 33 levels", man.Cost.Bootstraps)
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
	start = time.Now()
	n, err := dev.WriteKeySet(&keys, sk)
	if err != nil {
		t.Fatal(err)
	}
	keygen := time.Since(start)
	if n != man.KeySetBytes || int64(keys.Len()) != n || keys.Bytes()[4] != keySetVersionBoot {
		t.Fatalf("key set %d bytes (buffer %d, version %d), manifest says %d", n, keys.Len(), keys.Bytes()[4], man.KeySetBytes)
	}
	if _, err := m.CheckKeySet(bytes.NewReader(keys.Bytes())); err != nil {
		t.Fatal(err)
	}
	// A corrupted bootstrapping record is refused, naming it.
	bad := bytes.Clone(keys.Bytes())
	off := man.KeySetBytes - man.BootstrapKeys.Bytes - dev.s.publicKeyBytes() + recordHead + seedSize
	binary.LittleEndian.PutUint64(bad[off:], ^uint64(0))
	if _, err := m.CheckKeySet(bytes.NewReader(bad)); !hegate.Is(err, hegate.KindInvalid) || !strings.Contains(hegate.DetailOf(err), "encapsulation") {
		t.Fatalf("corrupted encapsulation key: %v", err)
	}
	start = time.Now()
	ks, err := m.ReadKeySet(bytes.NewReader(keys.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	read := time.Since(start)
	k := keyed{m: m, sk: sk, ks: ks}
	worst := 0.0
	for trial := 0; trial < 2; trial++ {
		x := randVec(r, g.InputSize(), 1)
		ct, err := dev.Encrypt(sk, x)
		if err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		res, st, err := m.Evaluate(context.Background(), ks, ct, testRelease)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dev.Decrypt(sk, res)
		if err != nil {
			t.Fatal(err)
		}
		want, err := g.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			worst = math.Max(worst, math.Abs(got[i]-want[i]))
		}
		t.Logf("evaluation %d: %v (%d bootstraps), outputs %.4f, reference %.4f", trial, time.Since(start), st.Cost.Bootstraps, got, want)
		k.checkAgainstReference(t, x, res)
	}
	t.Logf("key generation %v, key set read %v, largest |encrypted − reference| %.3g (tolerance 1e-3)", keygen, read, worst)
	checkBootstrapperEstimate(t, m, ks)
	if worst > 1e-3 {
		t.Fatalf("encrypted result differs from the reference by %g", worst)
	}
	if cal, err := m.Calibrate(calibrationSet(g)[:8]); err != nil {
		t.Fatalf("calibration: %v (%s)", err, cal)
	}
	// A leveled key set (version 2) is no key set for this model.
	v2 := bytes.Clone(keys.Bytes())
	v2[4] = keySetVersion
	if _, err := m.CheckKeySet(bytes.NewReader(v2)); !hegate.Is(err, hegate.KindInvalid) || !strings.Contains(hegate.DetailOf(err), "bootstrapping keys") {
		t.Fatalf("version 2 key set for a bootstrapped model: %v", err)
	}
	// A manifest claiming other bootstrapping keys is refused by the device.
	forged := served
	forged.BootstrapKeys = served.BootstrapKeys.clone()
	forged.BootstrapKeys.GaloisLevels[0]++
	if _, err := NewDevice(forged, true); !hegate.Is(err, hegate.KindInvalid) {
		t.Fatalf("forged bootstrap_keys: %v", err)
	}
}

// TestBootstrappedReluCNN runs the tiny CNN with ReLU and max pooling
// through their composite sign approximations (the kind of network that
// needs bootstrapping): many live values at once (x, the sign stages, the
// pool's candidates), bootstraps placed inside the approximations, and the
// result checked against the compiled circuit's float64 executor.
func TestBootstrappedReluCNN(t *testing.T) {
	r := rand.New(rand.NewPCG(67, 68))
	g := tinyReluCNN(r)
	opts := bootOpts
	opts.Approx = ApproxOptions{Sign: "a4-7-7"}
	m := compileTest(t, g, opts)
	man := m.Manifest()
	if man.Cost.Bootstraps == 0 || !m.c.placementExact {
		t.Fatalf("%d bootstraps, exact placement %v", man.Cost.Bootstraps, m.c.placementExact)
	}
	t.Logf("slots 2^%d, %d bootstraps, input at level %d, key set %d bytes:%s", man.LogSlots, man.Cost.Bootstraps, man.Levels, man.KeySetBytes, m.BootstrapReport())
	if _, err := m.Calibrate(calibrationSet(g)[:8]); err != nil {
		t.Fatal(err)
	}
	k := withKeys(t, m)
	x := randVec(r, g.InputSize(), 1)
	start := time.Now()
	res := k.evaluate(t, nil, x)
	t.Logf("evaluation %v", time.Since(start))
	k.checkAgainstReference(t, x, res)
}

// TestBootstrapPresetLeveledFits: a graph that fits the levels compiles
// on a bootstrapping preset without bootstraps, bootstrapping keys or the
// new key-set version; a leveled preset still refuses a graph too deep.
func TestBootstrapPresetLeveledFits(t *testing.T) {
	r := rand.New(rand.NewPCG(63, 64))
	m := compileTest(t, tinyDense(r), bootOpts)
	man := m.Manifest()
	if man.Cost.Bootstraps != 0 || man.Bootstraps != nil || man.BootstrapKeys != nil || m.c.boot != nil {
		t.Fatalf("a fitting graph got bootstraps: %+v %+v", man.Bootstraps, man.BootstrapKeys)
	}
	k := withKeys(t, m)
	var keys bytes.Buffer
	if _, err := m.WriteKeySet(&keys, k.sk); err != nil {
		t.Fatal(err)
	}
	if keys.Bytes()[4] != keySetVersion || int64(keys.Len()) != man.KeySetBytes {
		t.Fatalf("leveled key set version %d, %d bytes (manifest %d)", keys.Bytes()[4], keys.Len(), man.KeySetBytes)
	}
	x := randVec(r, 16, 1)
	k.checkAgainstReference(t, x, k.evaluate(t, nil, x))
	if _, err := Compile(context.Background(), deepNet(r, 6), CompileOptions{Params: "test-n12", AllowInsecure: true}); !hegate.Is(err, hegate.KindInvalid) || !strings.Contains(hegate.DetailOf(err), "does not bootstrap") {
		t.Fatalf("too deep for a leveled preset: %v", err)
	}
}

// synthetic builds a circuit for the placement tests: values of size 1,
// nodes given as (kind, inputs) with depth 1, poly nodes of the given depth.
type synthetic struct{ c *circuit }

func newSynthetic() *synthetic {
	s := &synthetic{c: &circuit{}}
	s.c.input = s.c.newValue([]int{1})
	return s
}

func (s *synthetic) node(kind nodeKind, name string, in ...int) int {
	out := s.c.newValue([]int{1})
	n := &cnode{kind: kind, name: name, in: in, out: out}
	if kind == kindLinear {
		for _, v := range in {
			n.terms = append(n.terms, term{in: v})
		}
	}
	s.c.add(n)
	s.c.output = out
	return out
}

// place runs the placement with a cost of 1 + 0.1·level per node and 100
// per bootstrap.
func (s *synthetic) place(t *testing.T, top int) *placement {
	t.Helper()
	pc := &placeCost{boot: 100}
	for range s.c.nodes {
		pc.costs = append(pc.costs, func(l int) float64 { return 1 + 0.1*float64(l) })
	}
	pl, err := placeBootstraps(s.c, top, func(int) int { return 0 }, pc)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// checkLevels verifies a placement: every node runs at a level its inputs
// are available at, and no more than top.
func checkLevels(t *testing.T, c *circuit, pl *placement, top int) {
	t.Helper()
	avail := map[int]int{c.input: pl.inputLevel}
	boots := map[int][]placedBoot{}
	for _, b := range pl.boots {
		boots[b.before] = append(boots[b.before], b)
	}
	for i, n := range c.nodes {
		for _, b := range boots[i] {
			if avail[b.value] != b.level {
				t.Fatalf("bootstrap of value %d at level %d, it is at %d", b.value, b.level, avail[b.value])
			}
			avail[b.value] = top
		}
		l := pl.nodeLevel[i]
		if l < n.depth() || l > top {
			t.Fatalf("node %d at level %d, depth %d", i, l, n.depth())
		}
		for _, v := range n.in {
			if avail[v] < l {
				t.Fatalf("node %d (%s) runs at level %d, its input %d is at %d", i, n.name, l, v, avail[v])
			}
		}
		avail[n.out] = l - n.depth()
	}
}

// TestPlacement checks the placement on synthetic circuits: the fewest
// bootstraps on a chain, a residual block whose refresh goes outside the
// branch when that saves one after it, inside when the block's input has
// levels enough, and a circuit that fits gets none.
func TestPlacement(t *testing.T) {
	t.Run("ok/chain-minimal", func(t *testing.T) {
		for _, tc := range []struct{ nodes, top, boots int }{{4, 4, 0}, {5, 4, 1}, {10, 4, 2}, {12, 4, 2}, {13, 4, 3}, {33, 8, 4}} {
			s := newSynthetic()
			v := s.c.input
			for i := 0; i < tc.nodes; i++ {
				v = s.node(kindSquare, "sq", v)
			}
			pl := s.place(t, tc.top)
			checkLevels(t, s.c, pl, tc.top)
			if len(pl.boots) != tc.boots {
				t.Fatalf("chain of %d on %d levels: %d bootstraps, want %d", tc.nodes, tc.top, len(pl.boots), tc.boots)
			}
		}
	})
	// stem (6 nodes) → block: skip and a branch of 3 nodes, joined by an
	// add → tail of 2 nodes, on 8 levels with the input at 8 at most.
	// The stem leaves the block's input at level 2: bootstrapping it once
	// before the block serves both the skip and the branch and leaves the
	// tail enough levels (1 bootstrap); bootstrapping inside the branch
	// would make the add run at level 2 and the tail need another.
	residual := func(stem, branch, tail int) (*synthetic, int) {
		s := newSynthetic()
		v := s.c.input
		for i := 0; i < stem; i++ {
			v = s.node(kindSquare, "stem", v)
		}
		x := v
		for i := 0; i < branch; i++ {
			v = s.node(kindSquare, "branch", v)
		}
		v = s.node(kindLinear, "add", x, v)
		for i := 0; i < tail; i++ {
			v = s.node(kindSquare, "tail", v)
		}
		return s, x
	}
	t.Run("ok/residual-refresh-outside", func(t *testing.T) {
		s, x := residual(6, 3, 3)
		pl := s.place(t, 8)
		checkLevels(t, s.c, pl, 8)
		if len(pl.boots) != 1 || pl.boots[0].value != x {
			t.Fatalf("bootstraps %+v, want one of the block's input (value %d)", pl.boots, x)
		}
	})
	t.Run("ok/residual-refresh-inside", func(t *testing.T) {
		// The stem leaves 5 levels, the branch needs 7 with the add: one
		// bootstrap in the branch (the skip needs none) is enough, and
		// the tail is short.
		s, x := residual(3, 6, 1)
		pl := s.place(t, 8)
		checkLevels(t, s.c, pl, 8)
		if len(pl.boots) != 1 || pl.boots[0].value == x {
			t.Fatalf("bootstraps %+v, want one inside the branch", pl.boots)
		}
	})
	t.Run("ok/fits-no-bootstrap", func(t *testing.T) {
		s, _ := residual(2, 3, 2)
		pl := s.place(t, 8)
		checkLevels(t, s.c, pl, 8)
		if len(pl.boots) != 0 {
			t.Fatalf("bootstraps %+v for a circuit of 7 levels on 8", pl.boots)
		}
	})
	t.Run("fail/node-deeper-than-levels", func(t *testing.T) {
		s := newSynthetic()
		out := s.c.newValue([]int{1})
		s.c.add(&cnode{kind: kindPoly, name: "deep", in: []int{s.c.input}, out: out, monomial: make([]float64, 1<<9+1)})
		s.c.output = out
		pc := &placeCost{boot: 100, costs: []func(int) float64{func(int) float64 { return 1 }}}
		if _, err := placeBootstraps(s.c, 8, func(int) int { return 0 }, pc); err == nil || !strings.Contains(err.Error(), "needs 10 levels") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestBootProfileDefinition checks the 128-bit bootstrapping profile's
// definition without making any key: its largest modulus is within the
// HomomorphicEncryption.org bound, and the key list it asks for. It
// instantiates logN 16 parameters (moduli and NTT tables, about 100 MB)
// and is skipped with -short.
func TestBootProfileDefinition(t *testing.T) {
	if testing.Short() {
		t.Skip("instantiates logN 16 parameters")
	}
	p, err := LoadParams("n16-boot", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, logSlots := range []int{p.ckks.LogMaxSlots(), 13, 11} {
		bp, err := p.bootParams(logSlots)
		if err != nil {
			t.Fatal(err)
		}
		checkProfile(t, p, bp)
	}
	// Offered by name since the slow suite runs it (-tags boot16), never
	// chosen automatically.
	if names := Presets(); !strings.Contains(strings.Join(names, ","), "n16-boot") {
		t.Fatalf("n16-boot is not offered by Presets(): %v", names)
	}
	for _, name := range autoPresets() {
		if name == "n16-boot" {
			t.Fatal("the automatic preset choice tries n16-boot")
		}
	}
}

func checkProfile(t *testing.T, p *Params, bp *bootParams) {
	pb := bp.btp.BootstrappingParameters
	var gal, relin int
	var resident int64
	for _, r := range bp.records {
		if r.kind == bootGalois {
			gal++
		}
		if r.kind == bootRelin {
			relin = r.levelQ
		}
		resident += 2 * bp.recordSize(r).bodyBytes
	}
	t.Logf("n16-boot, 2^%d slots: residual logQP %.1f, %d levels; bootstrapping logQP %.1f (bound %d), %d special primes, depth %d (CoeffsToSlots %d, EvalMod %d, SlotsToCoeffs %d); %d keys (%d Galois, relin at level %d of %d); wire %.2f GB, expanded %.2f GB",
		bp.logSlots, p.ckks.LogQP(), p.ckks.MaxLevel(), pb.LogQP(), maxLogQP128[16], pb.PCount(), bp.btp.Depth(), bp.btp.CoeffsToSlotsParameters.Depth(true), bp.btp.DepthEvalMod(), bp.btp.SlotsToCoeffsParameters.Depth(true),
		len(bp.records), gal, relin, pb.MaxLevel(), float64(bp.keyBytes())/1e9, float64(resident)/1e9)
	if pb.LogQP() > float64(maxLogQP128[16]) {
		t.Fatalf("logQP %.1f above the bound", pb.LogQP())
	}
}

// BenchmarkBootstrapCostModel measures, on the bootstrapping test preset,
// what the placement's cost table models: a key switch at each residual
// level (relative to the top level) and one bootstrap (in top-level key
// switches), and prints them beside the model's figures.
//
//	go test ./he -run '^$' -bench BootstrapCostModel -benchtime 3x
func BenchmarkBootstrapCostModel(b *testing.B) {
	r := rand.New(rand.NewPCG(65, 66))
	g := deepNet(r, 16)
	opts := bootOpts
	opts.Calibration = calibrationSet(g)
	m, err := Compile(context.Background(), g, opts)
	if err != nil {
		b.Fatal(err)
	}
	k := withKeys(b, m)
	c := m.c
	p := c.params.ckks
	ev, err := k.ks.k.evaluators(c)
	if err != nil {
		b.Fatal(err)
	}
	eval := ev.evals[0]
	ct, err := m.Encrypt(k.sk, randVec(r, 8, 1))
	if err != nil {
		b.Fatal(err)
	}
	x, err := c.params.parseCiphertext("bench", ct, m.inputWant())
	if err != nil {
		b.Fatal(err)
	}
	pc := newPlaceCost(c.circ, c.layouts, c.params, c.boot)
	top := p.MaxLevel()
	galEl := c.galEls[0]
	timeOf := func(f func()) time.Duration {
		return fastestOf(b, max(b.N, 3), func() error { f(); return nil })
	}
	at := func(level int) *rlwe.Ciphertext {
		cp := x.CopyNew()
		if cp.Level() > level {
			eval.DropLevel(cp, cp.Level()-level)
		}
		if cp.Level() < level {
			// the input sits below the top: a fresh encryption there
			pt := ckks.NewPlaintext(p, level)
			cp, _ = rlwe.NewEncryptor(p, k.sk.sk.sk).EncryptNew(pt)
		}
		return cp
	}
	ksTop := timeOf(func() {
		in := at(top)
		_ = eval.Automorphism(in, galEl, in)
	})
	for _, l := range []int{top, top / 2, 1} {
		d := timeOf(func() {
			in := at(l)
			_ = eval.Automorphism(in, galEl, in)
		})
		b.Logf("key switch at level %d: %v = %.2f of the top level's (model %.2f)", l, d, float64(d)/float64(ksTop), pc.ks(l))
	}
	boot := timeOf(func() {
		if _, err := ev.boot.Evaluate(at(0)); err != nil {
			b.Fatal(err)
		}
	})
	b.ReportMetric(float64(boot)/1e6, "ms/bootstrap")
	b.ReportMetric(float64(boot)/float64(ksTop), "keyswitches/bootstrap")
	b.Logf("bootstrap %v = %.0f top-level key switches (model %.0f); key switch at the top %v", boot, float64(boot)/float64(ksTop), pc.boot, ksTop)
}

// checkBootstrapperEstimate builds a bootstrapper on the key set's keys and
// checks the bound on its DFT matrices' memory (Manifest.EvaluationBytes
// counts it, so workers admit bootstrapped jobs by it) against the matrices
// Lattigo builds: at least their size, within 2.5 times it. (The scratch
// buffers' share is calibrated on a heap profile, not asserted here.)
func checkBootstrapperEstimate(t *testing.T, m *Model, ks *KeySet) {
	t.Helper()
	bp := m.c.boot
	ev, err := bootstrapping.NewEvaluator(bp.btp, ks.k.bootKeys)
	if err != nil {
		t.Fatal(err)
	}
	measured := dftMatrixBytes(ev)
	t.Logf("bootstrapper: DFT matrices %d bytes (bound %d); estimate with scratch buffers %d", measured, bp.dftBytes(), bp.evaluatorBytes())
	if measured > bp.dftBytes() || float64(bp.dftBytes()) > 2.5*float64(measured) {
		t.Errorf("DFT matrices %d bytes, bound %d", measured, bp.dftBytes())
	}
}

package he

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sort"
	"sync"

	"github.com/tuneinsight/lattigo/v6/circuits/ckks/polynomial"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
	"github.com/tuneinsight/lattigo/v6/utils/bignum"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he/ir"
)

// Compile lowers g to a circuit (circuit.go), fuses its linear nodes
// (fuse.go), packs the input (packing.go), lays every value out in slots
// and plans the levels (plan.go), chooses a method per linear step and
// pre-encodes every weight (linear.go; or keeps them as float64 values to
// encode per step at evaluation: CompileOptions.Weights), and lists the
// keys a device must make. Errors are KindInvalid when the graph cannot be compiled, and say
// which node and why (or how many levels it needs and the preset has).
func Compile(ctx context.Context, g *ir.Graph, opts CompileOptions) (*Model, error) {
	switch opts.Weights {
	case "", WeightsEncoded, WeightsLazy:
	default:
		return nil, hegate.E("he.Compile", hegate.KindInvalid, nil, "weights %q: want \"\" (auto), %q or %q", opts.Weights, WeightsEncoded, WeightsLazy)
	}
	if opts.MaxEncodedBytes < 0 {
		return nil, hegate.E("he.Compile", hegate.KindInvalid, nil, "max encoded bytes %d is negative", opts.MaxEncodedBytes)
	}
	if opts.Privacy.Clip {
		var err error
		if g, opts, err = withOutputClip(ctx, g, opts); err != nil {
			return nil, err
		}
	}
	if opts.SplitAfter == "" {
		return compileWhole(ctx, g, opts)
	}
	if opts.SplitAfter == "auto" {
		cut, err := autoCut(g, opts.DeviceMACs)
		if err != nil {
			return nil, err
		}
		opts.SplitAfter = cut
	}
	head, tail, err := ir.Split(g, opts.SplitAfter)
	if err != nil {
		return nil, err
	}
	var cal [][]float64
	for _, x := range opts.Calibration {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		y, err := head.Run(x)
		if err != nil {
			return nil, fmt.Errorf("he.Compile: calibration sample through the head: %w", err)
		}
		cal = append(cal, y)
	}
	opts.Calibration = cal
	m, err := compileWhole(ctx, tail, opts)
	if err != nil {
		return nil, err
	}
	shapes, _ := g.Shapes()
	macs := int64(0)
	for _, n := range head.Nodes {
		macs += n.MACs(shapes)
	}
	m.graph, m.head = g, head
	m.c.name = g.Name
	if opts.Name != "" {
		m.c.name = opts.Name
	}
	m.split = &SplitInfo{After: opts.SplitAfter, HeadDigest: head.Digest(), HeadNodes: len(head.Nodes), HeadMACs: macs}
	m.c.split, m.c.preprocess = m.split, g.Input.Preprocess
	m.manifest = m.buildManifest()
	return m, nil
}

func compileWhole(ctx context.Context, g *ir.Graph, opts CompileOptions) (*Model, error) {
	lowered, err := Lower(ctx, g, opts)
	if err != nil {
		return nil, err
	}
	if opts.Params != "" {
		return compileFor(ctx, g, opts, opts.Params, lowered)
	}
	// No preset named: the smallest 128-bit preset the circuit fits.
	var firstErr error
	for _, name := range autoPresets() {
		params, err := LoadParams(name, false)
		if err != nil {
			return nil, err
		}
		if params.ckks.MaxLevel() < lowered.levels {
			// Report against the deepest preset tried.
			firstErr = depthError(g, lowered.c, params)
			continue
		}
		m, err := compileFor(ctx, g, opts, name, lowered)
		if err == nil || !hegate.Is(err, hegate.KindInvalid) {
			return m, err
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// autoPresets are the secure presets, smallest first.
func autoPresets() []string { return []string{"n14-leveled", "n15-leveled"} }

func depthError(g *ir.Graph, c *circuit, params *Params) error {
	lp := planLevels(c)
	return hegate.E("he.Compile", hegate.KindInvalid, nil,
		"model %s needs %d levels but preset %s has %d and does not bootstrap (compile for a bootstrapping preset, use a deeper preset, lower activation degrees, or fewer layers); depth by node:%s",
		g.Name, lp.inputLevel, params.name, params.ckks.MaxLevel(), depthReport(c, lp))
}

// compileFor compiles g for one preset.
func compileFor(ctx context.Context, g *ir.Graph, opts CompileOptions, preset string, lowered *Circuit) (m *Model, err error) {
	const op = "he.Compile"
	defer func() {
		// A compiler bug must fail this compile, not the process (uploaded
		// models compile in workers).
		if r := recover(); r != nil {
			m, err = nil, hegate.E(op, hegate.KindInternal, fmt.Errorf("compiler panic on model %s: %v", g.Name, r), "")
		}
	}()
	params, err := LoadParams(preset, opts.AllowInsecure)
	if err != nil {
		return nil, err
	}
	rg := lowered.ranges
	// A copy: packing rewrites the circuit's input.
	circ := lowered.c.clone()
	p := params.ckks
	packing := circ.applyIm2col(p.MaxSlots())
	inLayout := compactLayout(g.Input.Shape)
	if packing.im2col != nil {
		inLayout = compactLayout([]int{packing.size(g.InputSize())})
	}
	layouts, err := chooseLayouts(circ, inLayout, p.MaxSlots())
	if err != nil {
		return nil, hegate.E(op, hegate.KindInvalid, nil, "model %s: %v (preset %s has %d slots)", g.Name, err, params.name, p.MaxSlots())
	}
	width := 1
	for _, l := range layouts {
		if l != nil {
			width = max(width, l.span())
		}
	}
	slots := nextPow2(width)
	if slots > p.MaxSlots() {
		return nil, hegate.E(op, hegate.KindInvalid, nil, "model %s needs %d slots but preset %s has %d; use a larger preset", g.Name, slots, params.name, p.MaxSlots())
	}
	for _, l := range layouts {
		if l != nil && l.period == 0 {
			l.period = slots
		}
	}
	lp := planLevels(circ)
	var boot *bootParams
	var placed *placement
	if lp.inputLevel > p.MaxLevel() {
		if !params.Bootstraps() {
			return nil, depthError(g, circ, params)
		}
		// Too deep for the levels: place bootstraps (placement.go).
		logSlots := bits.Len(uint(slots)) - 1
		if logSlots < 1 {
			return nil, hegate.E(op, hegate.KindInvalid, nil, "model %s uses one slot; bootstrapping needs at least two", g.Name)
		}
		if boot, err = params.bootParams(logSlots); err != nil {
			return nil, fmt.Errorf("%s: model %s: %w", op, g.Name, err)
		}
		prod := map[int]*cnode{}
		for _, n := range circ.nodes {
			prod[n.out] = n
		}
		minIn := func(v int) int {
			// A square's or product's output has a scale other than Δ:
			// the bootstrap needs one level above 0 to match it exactly
			// (Lattigo's ScaleDown).
			if n := prod[v]; n != nil && (n.kind == kindSquare || n.kind == kindMul) {
				return 1
			}
			return 0
		}
		pc := newPlaceCost(circ, layouts, params, boot)
		if placed, err = placeBootstraps(circ, p.MaxLevel(), minIn, pc); err != nil {
			return nil, hegate.E(op, hegate.KindInvalid, nil, "model %s: placing bootstraps on preset %s: %v", g.Name, params.name, err)
		}
		lp, layouts = applyPlacement(circ, placed, p.MaxLevel(), layouts)
	}
	par := opts.Parallelism
	if par <= 0 {
		par = min(runtime.GOMAXPROCS(0), 8)
	}
	c := &compiled{
		parallelism: par,
		circ:        circ,
		layouts:     layouts,
		deviceSpec: &deviceSpec{
			preprocess: g.Input.Preprocess, tail: g.Tail,
			name: g.Name, params: params, inputShape: append([]int(nil), g.Input.Shape...), packing: packing,
			n: slots, logN: bits.Len(uint(slots)) - 1, inputLevel: lp.inputLevel, outputSize: circ.values[circ.output].size,
			boot: boot,
		},
	}
	if placed != nil {
		c.placementCost, c.placementExact = placed.cost, placed.exact
	}
	progress := func(stage string, done, total int) {
		if opts.Progress != nil {
			opts.Progress(stage, done, total)
		}
	}
	c.keepDiagonals = opts.keepDiagonals
	c.describeOnly = opts.DescribeOnly
	c.weights, c.maxEncoded = opts.Weights, opts.MaxEncodedBytes
	if c.maxEncoded == 0 {
		c.maxEncoded = DefaultMaxEncodedBytes
	}
	if err := c.build(ctx, lp, progress); err != nil {
		return nil, err
	}
	if opts.Name != "" {
		c.name = opts.Name
	}
	calOut := [2]float64{math.Inf(1), math.Inf(-1)}
	if rg.Output != nil {
		calOut = *rg.Output
	}
	c.clipOutput = opts.Privacy.Clip
	period, err := c.releasePeriod()
	var mech *Mechanism
	if err == nil {
		c.outputPeriod = period
		mech, err = c.buildMechanism(opts.Privacy, period, calOut)
	}
	switch {
	case err != nil && opts.Privacy != (PrivacyOptions{}):
		return nil, hegate.E(op, hegate.KindInvalid, nil, "model %s: privacy: %v", g.Name, err)
	case err != nil:
		c.privacyNote = err.Error()
	default:
		c.mechanism = mech
	}
	m = &Model{graph: g, c: c, ranges: rg}
	m.manifest = m.buildManifest()
	return m, nil
}

// Circuit is a graph lowered to CKKS-friendly nodes with its activations
// approximated, before it is fitted to any parameters: what Compile
// evaluates, in float64. Use it to measure what the approximations cost in
// accuracy, and how deep the circuit is, for graphs that do not fit a
// preset.
type Circuit struct {
	c      *circuit
	levels int
	ranges Ranges
}

// Lower calibrates the ranges of g's approximated activations on
// opts.Calibration (unless opts.Ranges gives them), lowers g and fuses its
// linear nodes. Only opts.Calibration, opts.Ranges, opts.Approx and
// opts.Progress are used.
func Lower(ctx context.Context, g *ir.Graph, opts CompileOptions) (*Circuit, error) {
	const op = "he.Lower"
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if opts.Progress != nil {
		opts.Progress("calibrate", 0, len(opts.Calibration))
	}
	var rg Ranges
	var err error
	if opts.Ranges != nil {
		rg = *opts.Ranges
	} else if rg, err = calibrateRanges(ctx, g, opts.Calibration); err != nil {
		return nil, fmt.Errorf("%s: calibrating: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Progress != nil {
		opts.Progress("lower", 0, 1)
	}
	circ, err := lowerGraph(g, rg, opts.Approx)
	if err != nil {
		return nil, err
	}
	circ.fuse()
	circ.ensureLinearAround()
	return &Circuit{c: circ, levels: planLevels(circ).inputLevel, ranges: rg}, nil
}

// Run evaluates the circuit in float64 on one input of the graph.
func (c *Circuit) Run(x []float64) ([]float64, error) {
	if len(x) != c.c.values[c.c.input].size {
		return nil, hegate.E("he.Circuit.Run", hegate.KindInvalid, nil, "input has %d values, want %d", len(x), c.c.values[c.c.input].size)
	}
	return c.c.run(x, nil), nil
}

// Levels is the multiplicative depth of the circuit: the levels a leveled
// preset must have to run it.
func (c *Circuit) Levels() int { return c.levels }

// Ranges are the calibrated ranges the circuit's approximations use.
func (c *Circuit) Ranges() Ranges { return c.ranges }

// DepthReport lists the circuit's nodes with the level each runs at.
func (c *Circuit) DepthReport() string { return depthReport(c.c, planLevels(c.c)) }

// build encodes every step and collects the keys.
func (c *compiled) build(ctx context.Context, lp levelPlan, progress func(string, int, int)) error {
	const op = "he.Compile"
	p := c.params.ckks
	ecd := ckks.NewEncoder(p)
	delta := p.DefaultScale()
	scales := make([]rlwe.Scale, len(c.circ.values))
	scales[c.circ.input] = delta
	galLevel := map[uint64]int{}
	use := func(ge uint64, level int) { galLevel[ge] = max(galLevel[ge], level) }
	c.lastUse = make([]int, len(c.circ.values))
	for i, n := range c.circ.nodes {
		for _, v := range n.in {
			c.lastUse[v] = i
		}
	}
	c.lastUse[c.circ.output] = len(c.circ.nodes)
	// Lay out every linear step first (each reads its inputs' periods,
	// which the steps before it set), so the size of the pre-encoded
	// weights is known before any is encoded.
	lins := make([]*linStep, len(c.circ.nodes))
	eagerBytes := int64(0)
	for i, n := range c.circ.nodes {
		if n.kind != kindLinear {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		ls := planLinear(n, c.layouts, c.layouts[n.out], c.n)
		c.layouts[n.out].period = ls.period
		lins[i] = ls
		for _, t := range ls.terms {
			eagerBytes += int64(len(t.diags)) * int64(lp.nodeLevel[i]+1+p.MaxLevelP()+1) * int64(p.N()) * 8
		}
	}
	c.lazy = c.weights == WeightsLazy || (c.weights == "" && eagerBytes > c.maxEncoded)
	for i, n := range c.circ.nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		progress("encode", i, len(c.circ.nodes))
		level := lp.nodeLevel[i]
		st := step{kind: n.kind, name: n.name, in: n.in, out: n.out, level: level, outLevel: level - n.depth()}
		switch n.kind {
		case kindLinear:
			ls := lins[i]
			// Each term's plaintext scale brings its product to Δ·q_level,
			// so the terms add up and the rescale leaves exactly Δ.
			q := rlwe.NewScale(p.Q()[level])
			for _, t := range ls.terms {
				ptScale := q.Mul(delta).Div(scales[t.in])
				if c.lazy {
					// Encoded per evaluation (evaluate.go): keep the
					// float64 diagonals.
					t.plan(p, level, c.logN, ptScale, c.parallelism)
					for _, d := range t.diags {
						c.encodedBytes += int64(len(d)) * 8
					}
					c.transientBytes = max(c.transientBytes, t.encodedBytes(p))
				} else if c.describeOnly {
					t.plan(p, level, c.logN, ptScale, c.parallelism)
					c.encodedBytes += t.encodedBytes(p)
				} else {
					if err := t.encode(p, ecd, level, c.logN, ptScale, c.parallelism); err != nil {
						return fmt.Errorf("%s: node %q: %w", op, n.name, err)
					}
					c.encodedBytes += t.encodedBytes(p)
				}
				for _, ge := range t.galEls {
					use(ge, level)
				}
				st.cost.add(Cost{Rotations: t.baby + t.giant, PlainMults: len(t.diags)})
				st.diags += len(t.diags)
				if c.describeOnly || (!c.lazy && !c.keepDiagonals) {
					t.diags = nil // encoded: the float64 copies are not needed any more
				}
			}
			for _, r := range ls.rotSum {
				use(p.GaloisElement(r), level-1)
			}
			st.cost.Rotations += len(ls.rotSum)
			st.cost.Rescales = 1
			st.lin = ls
			scales[n.out] = delta
		case kindSquare, kindMul:
			st.cost = Cost{CipherMults: 1, Relins: 1, Rescales: 1}
			c.relinLevel = max(c.relinLevel, level)
			a, b := scales[n.in[0]], scales[n.in[len(n.in)-1]]
			scales[n.out] = a.Mul(b).Div(rlwe.NewScale(p.Q()[level]))
		case kindBootstrap:
			st.outLevel = p.MaxLevel()
			st.cost = Cost{Bootstraps: 1}
			scales[n.out] = delta
		case kindPoly:
			var bp bignum.Polynomial
			if n.cheb != nil {
				bp = bignum.NewPolynomial(bignum.Chebyshev, n.cheb.coeffs, [2]float64{-1, 1})
			} else {
				bp = bignum.NewPolynomial(bignum.Monomial, n.monomial, nil)
			}
			poly := polynomial.NewPolynomial(bp)
			st.poly = &poly
			d := n.degree()
			st.cost = Cost{CipherMults: polyMults(d), Relins: polyMults(d), Rescales: n.depth()}
			c.relinLevel = max(c.relinLevel, level)
			scales[n.out] = delta
			if n.signStage != "" {
				// Clear the imaginary part after each stage (x + conj(x)):
				// composing polynomials amplifies it.
				st.cleanImag = true
				use(p.GaloisElementOrderTwoOrthogonalSubgroup(), n.out2Level(level))
				st.cost.Rotations++
			}
		}
		c.cost.add(st.cost)
		c.steps = append(c.steps, st)
	}
	// The input is projected onto its real part before the first step
	// (evaluate.go): one conjugation at the input level.
	use(p.GaloisElementOrderTwoOrthogonalSubgroup(), c.inputLevel)
	c.cost.Rotations++
	for ge := range galLevel {
		c.galEls = append(c.galEls, ge)
	}
	sort.Slice(c.galEls, func(a, b int) bool { return c.galEls[a] < c.galEls[b] })
	for _, ge := range c.galEls {
		c.galLevels = append(c.galLevels, galLevel[ge])
	}
	if c.relinLevel == 0 {
		// No multiplication: the key is still sent (the format always has
		// one), at the lowest level so it costs little.
		c.relinLevel = 1
	}
	if c.lazy {
		// Each goroutine's encoder (encodeParts): a polynomial at the
		// top level and its complex buffer.
		c.ecdBase = ecd
		c.transientBytes += int64(c.parallelism) * int64((p.MaxLevel()+1)*8+16) * int64(p.N())
	}
	progress("encode", len(c.circ.nodes), len(c.circ.nodes))
	return nil
}

// encoders returns c.parallelism encoders for one evaluation of a model
// with lazy weights (give them back with putEncoders): an encoder is not
// safe for concurrent use, so each goroutine encoding a term's diagonals
// has its own, sharing the base encoder's roots.
func (c *compiled) encoders() []*ckks.Encoder {
	if e, ok := c.ecdPool.Get().([]*ckks.Encoder); ok {
		return e
	}
	e := make([]*ckks.Encoder, c.parallelism)
	for i := range e {
		e[i] = c.ecdBase.ShallowCopy()
	}
	return e
}

func (c *compiled) putEncoders(e []*ckks.Encoder) { c.ecdPool.Put(e) }

// polyMults estimates the ciphertext multiplications of a Paterson–Stockmeyer
// evaluation of degree d: about sqrt(2d) + log2(d).
func polyMults(d int) int {
	if d <= 1 {
		return 0
	}
	s := 1
	for s*s < 2*d {
		s++
	}
	return s + depthOf(d)
}

func (c *Cost) add(o Cost) {
	c.Rotations += o.Rotations
	c.PlainMults += o.PlainMults
	c.CipherMults += o.CipherMults
	c.Relins += o.Relins
	c.Rescales += o.Rescales
	c.Bootstraps += o.Bootstraps
}

// step is one compiled CKKS step.
type step struct {
	kind     nodeKind
	name     string
	in       []int
	out      int
	level    int // level its inputs enter at
	outLevel int
	lin      *linStep
	poly     *polynomial.Polynomial
	// cleanImag: after the polynomial, replace the result by its real
	// part (a conjugation, one key switch).
	cleanImag bool
	diags     int
	cost      Cost
}

// deviceSpec is everything a device needs to make keys, encrypt and
// decrypt for a model, and nothing about its weights.
type deviceSpec struct {
	preprocess *ir.Preprocess
	tail       []ir.TailOp
	split      *SplitInfo
	name       string
	params     *Params
	inputShape []int
	packing    inputPacking
	n, logN    int // plaintext dimension (slots used) and its log2
	inputLevel int
	galEls     []uint64
	galLevels  []int // level of each Galois key: the highest it is used at
	relinLevel int   // level of the relinearisation key
	outputSize int
	// outputPeriod: the outputs repeat every outputPeriod slots (the
	// device averages the replicas); 0 when unknown.
	outputPeriod int
	// boot is set when the circuit bootstraps: the bootstrapping
	// parameters, whose keys the key set carries.
	boot *bootParams
}

type compiled struct {
	*deviceSpec
	encodedBytes  int64 // resident weights: pre-encoded, or float64 when lazy
	keepDiagonals bool
	describeOnly  bool // CompileOptions.DescribeOnly: nothing encoded, Evaluate refuses
	// weights and maxEncoded are CompileOptions.Weights and
	// MaxEncodedBytes; lazy is the choice made: the linear terms keep
	// their float64 diagonals and are encoded at each evaluation.
	weights    string
	maxEncoded int64
	lazy       bool
	// transientBytes (lazy weights): the largest term's plaintexts and the
	// evaluation's encoders' buffers, live during one evaluation.
	transientBytes int64
	// ecdBase (lazy weights) is only shallow-copied, never encoded with
	// after compilation; ecdPool holds []*ckks.Encoder of c.parallelism.
	ecdBase     *ckks.Encoder
	ecdPool     sync.Pool
	parallelism int // goroutines one evaluation may use
	circ        *circuit
	layouts     []*layout
	steps       []step
	lastUse     []int // per value: the last step that reads it
	cost        Cost
	// mechanism is how results are released; nil, with privacyNote saying
	// why, when they cannot be.
	mechanism   *Mechanism
	privacyNote string
	clipOutput  bool // the last step is the output clip (clip.go)
	// placementCost is the placement's estimated cost (placement.go's
	// units), placementExact whether the programme kept every state.
	placementCost  float64
	placementExact bool
}

// liveCiphertexts is the largest number of values alive at once during an
// evaluation (the input included).
func (c *compiled) liveCiphertexts() int {
	live, peak := 1, 1
	for i, st := range c.steps {
		live++ // the step's output
		peak = max(peak, live)
		for _, v := range st.in {
			if c.lastUse[v] == i {
				live--
			}
		}
	}
	return peak
}

// autoCut is the latest value g can be split after whose head costs at
// most budget multiply-accumulates.
func autoCut(g *ir.Graph, budget int64) (string, error) {
	const op = "he.Compile"
	if budget <= 0 {
		return "", hegate.E(op, hegate.KindInvalid, nil, "split_after auto needs the device's budget (DeviceMACs)")
	}
	cuts, err := ir.Cuts(g)
	if err != nil {
		return "", err
	}
	best := ""
	for _, c := range cuts {
		if c.HeadMACs <= budget {
			best = c.After
		}
	}
	if best == "" {
		return "", hegate.E(op, hegate.KindInvalid, nil, "no cut of model %s fits a device budget of %d multiply-accumulates", g.Name, budget)
	}
	return best, nil
}

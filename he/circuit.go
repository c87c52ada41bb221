package he

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he/ir"
)

// The compiler first lowers the IR graph to a circuit in logical
// coordinates, independent of CKKS parameters, with four kinds of node:
//
//   - linear: y = Σ_k W_k x_k + b over one or more inputs. Every linear op
//     of the IR (conv, dense, affine/BatchNorm, pooling by average, reshape,
//     transpose) and every residual add becomes one; chains of them are then
//     multiplied together (fuse), so BatchNorm, reshapes and the scale of an
//     activation cost nothing. One level.
//   - square: y = x², and mul: y = a ⊙ b. A degree-2 activation a·x² + b·x + c is
//     a·(x + b/2a)² + c': the shift joins the linear node before it, the
//     scale and constant the linear nodes after it. One level.
//   - poly: y = p(x), a polynomial given in the Chebyshev basis on [-1, 1]
//     (ReLU and |x| approximations, whose input normalisation is a linear
//     node before them) or in the power basis (trained polynomials of
//     degree above 2). ceil(log2(d+1)) levels.
//
// MaxPool is rewritten as a tree of max(a, b) = (a+b)/2 + |a−b|/2.
//
// The float64 executor of this circuit (run) is what "accuracy with the
// approximations" means: it computes exactly what the encrypted circuit
// computes, up to CKKS noise.

type nodeKind uint8

const (
	kindLinear nodeKind = iota
	kindSquare
	kindPoly
	kindMul // y = a ⊙ b, two values of one shape
	// kindBootstrap refreshes its input to the residual top level (the
	// placement inserts it; y = x).
	kindBootstrap
)

func (k nodeKind) String() string {
	return [...]string{"linear", "square", "poly", "mul", "bootstrap"}[k]
}

// term is W·x for one input x of a linear node (W: node size × input size).
type term struct {
	in int // value index
	w  []ir.Entry
}

// cnode is one node of the logical circuit; it defines value out.
type cnode struct {
	kind nodeKind
	name string // the IR node(s) it implements, for reports
	in   []int  // input values (one per term for linear nodes)
	out  int

	// linear
	terms []term
	bias  []float64
	// conv is set while the node is a plain convolution of one input (its
	// only term), with the weights as fused: the device may then unroll
	// its input (im2col).
	conv *ir.Conv

	// poly: Chebyshev on [-1,1] (cheb) or power basis (monomial)
	cheb     *cheb
	monomial []float64
	// signStage is set on the stages of a composite sign approximation
	// (cheb then holds the stage); cleanImag asks the evaluator to clear
	// the imaginary part after it, which the composition would amplify.
	signStage string
}

// degree is the degree of a poly node.
func (n *cnode) degree() int {
	if n.cheb != nil {
		return n.cheb.degree()
	}
	return len(n.monomial) - 1
}

// out2Level is the level of the node's output when its input enters at level.
func (n *cnode) out2Level(level int) int { return level - n.depth() }

// depth is the number of levels the node consumes.
func (n *cnode) depth() int {
	switch n.kind {
	case kindPoly:
		return depthOf(n.degree())
	case kindBootstrap:
		return 0
	default:
		return 1
	}
}

type cvalue struct {
	shape []int
	size  int
}

// circuit is the lowered graph. Nodes are in topological order.
type circuit struct {
	values []cvalue
	nodes  []*cnode
	input  int
	output int
}

func (c *circuit) newValue(shape []int) int {
	c.values = append(c.values, cvalue{shape: append([]int(nil), shape...), size: ir.Prod(shape)})
	return len(c.values) - 1
}

func (c *circuit) add(n *cnode) *cnode {
	c.nodes = append(c.nodes, n)
	return n
}

// consumers returns, per value, the indices of the nodes that read it.
func (c *circuit) consumers() map[int][]int {
	m := map[int][]int{}
	for i, n := range c.nodes {
		seen := map[int]bool{}
		for _, v := range n.in {
			if !seen[v] {
				m[v] = append(m[v], i)
				seen[v] = true
			}
		}
	}
	return m
}

// producer returns the index of the node defining value v, or -1.
func (c *circuit) producer(v int) int {
	for i, n := range c.nodes {
		if n.out == v {
			return i
		}
	}
	return -1
}

// ApproxOptions choose how activations without an exact CKKS form are
// approximated.
type ApproxOptions struct {
	// Method is "composite" (the default: ReLU and |x| through a composite
	// minimax approximation of sign, relative error away from zero) or
	// "chebyshev" (one Chebyshev interpolant of the function itself: less
	// depth, absolute error).
	Method string
	// Sign names the composite sign approximation (SignPresets);
	// "" means DefaultSignPreset.
	Sign string
	// ReluDegree and AbsDegree are the degrees of the Chebyshev
	// interpolants of ReLU and of the |x| inside max pooling. 0 means
	// DefaultReluDegree and DefaultAbsDegree.
	ReluDegree int
	AbsDegree  int
	// Margin widens every calibrated range by this factor around its
	// centre (0 means DefaultRangeMargin): inputs unlike the samples may go
	// further.
	Margin float64
	// MaxPool is "max" (the default: a polynomial max) or "average": the
	// user accepts average pooling in its place (no depth, other results:
	// measure the accuracy it costs).
	MaxPool string
}

// Defaults for approximations.
const (
	DefaultReluDegree  = 15
	DefaultAbsDegree   = 15
	DefaultRangeMargin = 1.25
)

// Validate reports the first problem with the options, naming the field.
func (o ApproxOptions) Validate() error {
	bad := func(format string, args ...any) error {
		return hegate.E("he.ApproxOptions", hegate.KindInvalid, nil, format, args...)
	}
	switch {
	case o.Method != "" && o.Method != "composite" && o.Method != "chebyshev":
		return bad("Method %q: want composite or chebyshev", o.Method)
	case o.Sign != "" && signPresets[o.Sign].stages == nil:
		return bad("Sign %q: want one of %v", o.Sign, SignPresets())
	case o.ReluDegree < 0 || o.ReluDegree > maxActivationDegree:
		return bad("ReluDegree %d out of range 1..%d", o.ReluDegree, maxActivationDegree)
	case o.AbsDegree < 0 || o.AbsDegree > maxActivationDegree:
		return bad("AbsDegree %d out of range 1..%d", o.AbsDegree, maxActivationDegree)
	case o.Margin != 0 && !(o.Margin >= 1 && o.Margin <= 16):
		return bad("Margin %g out of range 1..16", o.Margin)
	case o.MaxPool != "" && o.MaxPool != "max" && o.MaxPool != "average":
		return bad("MaxPool %q: want max or average", o.MaxPool)
	}
	return nil
}

func (o ApproxOptions) withDefaults() ApproxOptions {
	if o.Method == "" {
		o.Method = "composite"
	}
	if o.Sign == "" {
		o.Sign = DefaultSignPreset
	}
	if o.ReluDegree == 0 {
		o.ReluDegree = DefaultReluDegree
	}
	if o.AbsDegree == 0 {
		o.AbsDegree = DefaultAbsDegree
	}
	if o.Margin == 0 {
		o.Margin = DefaultRangeMargin
	}
	return o
}

// Ranges are the value ranges a graph's approximated activations were
// calibrated on, before the margin: for each ReLU node (by name) its
// input's [min, max]; for each MaxPool node, the range of the differences
// that each round of its max tree takes |·| of. Stored with a model, they
// make every process compile it to the same circuit.
type Ranges struct {
	Relu map[string][2]float64   `json:"relu,omitempty"`
	Pool map[string][][2]float64 `json:"pool,omitempty"`
	// Output is the range of the graph's output on the samples (the
	// privacy mechanism's declared range is derived from it); nil when
	// there were no samples.
	Output *[2]float64 `json:"output,omitempty"`
}

// calibrateRanges runs g's exact reference on the samples and records the
// ranges its approximations need.
func calibrateRanges(ctx context.Context, g *ir.Graph, samples [][]float64) (Ranges, error) {
	r := Ranges{Relu: map[string][2]float64{}, Pool: map[string][][2]float64{}}
	shapes, err := g.Shapes()
	if err != nil {
		return r, err
	}
	readers := map[string][]*ir.Node{} // value name → the relu/maxpool nodes reading it
	trees := map[string]*poolTree{}    // maxpool node → its max tree, built once
	for _, n := range g.Nodes {
		if n.Op == ir.OpRelu || n.Op == ir.OpMaxPool {
			readers[n.Inputs[0]] = append(readers[n.Inputs[0]], n)
		}
		if n.Op == ir.OpMaxPool {
			trees[n.Name] = newPoolTree(n.Pool, shapes[n.Inputs[0]])
		}
	}
	if len(samples) == 0 {
		return r, nil
	}
	widen := func(old [2]float64, ok bool, lo, hi float64) [2]float64 {
		if !ok {
			return [2]float64{lo, hi}
		}
		return [2]float64{math.Min(old[0], lo), math.Max(old[1], hi)}
	}
	observe := func(value string, data []float64) {
		if value == g.Output {
			lo, hi := minMax(data)
			if r.Output == nil {
				r.Output = &[2]float64{lo, hi}
			} else {
				r.Output = &[2]float64{math.Min(r.Output[0], lo), math.Max(r.Output[1], hi)}
			}
		}
		for _, n := range readers[value] {
			switch n.Op {
			case ir.OpRelu:
				lo, hi := minMax(data)
				old, ok := r.Relu[n.Name]
				r.Relu[n.Name] = widen(old, ok, lo, hi)
			case ir.OpMaxPool:
				diffs := trees[n.Name].roundDiffs(data)
				old := r.Pool[n.Name]
				for k, d := range diffs {
					lo, hi := minMax(d)
					if k < len(old) {
						old[k] = widen(old[k], true, lo, hi)
					} else {
						old = append(old, [2]float64{lo, hi})
					}
				}
				r.Pool[n.Name] = old
			}
		}
	}
	for _, x := range samples {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		observe(g.Input.Name, x)
		if _, err := g.Trace(x, func(n *ir.Node, out ir.Tensor) { observe(n.Output, out.Data) }); err != nil {
			return r, err
		}
	}
	return r, nil
}

func minMax(v []float64) (float64, float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range v {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi
}

// poolTree is how a max pool reduces each window: the window's in-bounds
// elements (padding is ignored, as ONNX does) are candidates; each round
// pairs candidates 2i and 2i+1 and keeps max(a, b); an odd one out is
// carried to the next round.
type poolTree struct {
	c, h, w, oh, ow int
	windows         [][]int // per output element, the input indices of its window
}

func newPoolTree(p *ir.Pool, shape []int) *poolTree {
	t := &poolTree{c: shape[0], h: shape[1], w: shape[2]}
	t.oh, t.ow = p.OutputHW(t.h, t.w)
	for ch := 0; ch < t.c; ch++ {
		for oy := 0; oy < t.oh; oy++ {
			for ox := 0; ox < t.ow; ox++ {
				var win []int
				p.Window(t.h, t.w, ch, oy, ox, func(idx int) { win = append(win, idx) })
				t.windows = append(t.windows, win)
			}
		}
	}
	return t
}

// rounds is the number of pairing rounds (log2 of the largest window, rounded up).
func (t *poolTree) rounds() int {
	k := 0
	for _, w := range t.windows {
		r := 0
		for n := len(w); n > 1; n = (n + 1) / 2 {
			r++
		}
		k = max(k, r)
	}
	return k
}

// roundDiffs computes, exactly, the differences a−b that each round of the
// max tree takes |·| of on input x, for calibration.
func (t *poolTree) roundDiffs(x []float64) [][]float64 {
	cands := make([][]float64, len(t.windows))
	for i, win := range t.windows {
		for _, idx := range win {
			cands[i] = append(cands[i], x[idx])
		}
	}
	var out [][]float64
	for r := 0; r < t.rounds(); r++ {
		var d []float64
		for i, cs := range cands {
			var next []float64
			for j := 0; j+1 < len(cs); j += 2 {
				d = append(d, cs[j]-cs[j+1])
				next = append(next, math.Max(cs[j], cs[j+1]))
			}
			if len(cs)%2 == 1 {
				next = append(next, cs[len(cs)-1])
			}
			cands[i] = next
		}
		if len(d) == 0 {
			d = []float64{0}
		}
		out = append(out, d)
	}
	return out
}

// Limits on the work a graph may cause before it meets any CKKS
// parameters (a hostile upload must not make the compiler allocate without
// bound).
const (
	// MaxCompileMACs bounds the multiply-accumulates of one evaluation in
	// float64: the compiler's sparse matrices have about that many entries.
	MaxCompileMACs = 1 << 25
	// MaxValueElems bounds any one value: four ciphertexts of the largest
	// leveled preset's slots.
	MaxValueElems = 4 << 14
)

// CheckSize refuses graphs whose compilation would take more work than
// MaxCompileMACs or hold a value larger than MaxValueElems. Errors are
// KindInvalid and name the node.
func CheckSize(g *ir.Graph) error {
	const op = "he.CheckSize"
	shapes, err := g.Shapes()
	if err != nil {
		return err
	}
	if n := g.InputSize(); n > MaxValueElems {
		return hegate.E(op, hegate.KindInvalid, nil, "the input has %d values; at most %d are supported", n, MaxValueElems)
	}
	total := int64(0)
	for _, n := range g.Nodes {
		if size := ir.Prod(shapes[n.Output]); size > MaxValueElems {
			return hegate.E(op, hegate.KindInvalid, nil, "node %q outputs %d values; at most %d are supported (four ciphertexts of 16384 slots)", n.Name, size, MaxValueElems)
		}
		total += n.MACs(shapes)
		if total > MaxCompileMACs {
			return hegate.E(op, hegate.KindInvalid, nil, "the model needs more than %d multiply-accumulates per input (at node %q); it is too large to compile here", MaxCompileMACs, n.Name)
		}
	}
	return nil
}

// lowerGraph builds the circuit of g with its activations approximated on
// the calibrated ranges.
func lowerGraph(g *ir.Graph, rg Ranges, ao ApproxOptions) (*circuit, error) {
	const op = "he.Compile"
	shapes, err := g.Shapes()
	if err != nil {
		return nil, err
	}
	if err := ao.Validate(); err != nil {
		return nil, err
	}
	ao = ao.withDefaults()
	c := &circuit{}
	val := map[string]int{}
	c.input = c.newValue(g.Input.Shape)
	val[g.Input.Name] = c.input
	refuse := func(n *ir.Node, format string, args ...any) error {
		return hegate.E(op, hegate.KindInvalid, nil, "node %q (%s): "+format, append([]any{n.Name, n.Op}, args...)...)
	}
	for _, n := range g.Nodes {
		inShape := shapes[n.Inputs[0]]
		outShape := shapes[n.Output]
		x := val[n.Inputs[0]]
		var out int
		switch {
		case n.Op == ir.OpAdd:
			out = c.newValue(outShape)
			id := identity(ir.Prod(outShape))
			c.add(&cnode{kind: kindLinear, name: n.Name, in: []int{x, val[n.Inputs[1]]}, out: out,
				terms: []term{{in: x, w: id}, {in: val[n.Inputs[1]], w: id}}, bias: make([]float64, ir.Prod(outShape))})
		case ir.IsLinear(n.Op):
			m, _ := n.Linear(inShape)
			out = c.newValue(outShape)
			cn := c.add(&cnode{kind: kindLinear, name: n.Name, in: []int{x}, out: out, terms: []term{{in: x, w: m.Entries}}, bias: m.Bias})
			if n.Op == ir.OpConv {
				cv := *n.Conv
				cn.conv = &cv
			}
		case n.Op == ir.OpPoly:
			out = c.lowerPoly(n, x, outShape)
		case n.Op == ir.OpRelu:
			lr, ok := rg.Relu[n.Name]
			if !ok {
				return nil, refuse(n, "ReLU needs a calibrated input range: compile with calibration samples")
			}
			lo, hi := widenRange(lr, ao.Margin)
			if ao.Method == "composite" {
				sp, ok := signPresets[ao.Sign]
				if !ok {
					return nil, refuse(n, "unknown sign approximation %q (known: %v)", ao.Sign, SignPresets())
				}
				// relu(x) = x/2 + x·sign(x)/2.
				s := c.sign(n.Name, x, outShape, ao.Margin*math.Max(math.Abs(lr[0]), math.Abs(lr[1])), ao.Sign, sp)
				m := c.newValue(outShape)
				c.add(&cnode{kind: kindMul, name: n.Name, in: []int{x, s}, out: m})
				out = c.newValue(outShape)
				size := ir.Prod(outShape)
				half := diagonal(constant(size, 0.5))
				c.add(&cnode{kind: kindLinear, name: n.Name, in: []int{x, m}, out: out, terms: []term{{in: x, w: half}, {in: m, w: half}}, bias: make([]float64, size)})
				break
			}
			ch, err := chebyshevInterpolant("relu", lo, hi, ao.ReluDegree)
			if err != nil {
				return nil, refuse(n, "approximating ReLU: %v", err)
			}
			out = c.approx(n.Name, x, outShape, ch)
		case n.Op == ir.OpMaxPool && ao.MaxPool == "average":
			avg := *n
			avg.Op = ir.OpAvgPool
			m, _ := avg.Linear(inShape)
			out = c.newValue(outShape)
			c.add(&cnode{kind: kindLinear, name: n.Name + " (average)", in: []int{x}, out: out, terms: []term{{in: x, w: m.Entries}}, bias: m.Bias})
		case n.Op == ir.OpMaxPool:
			pr, ok := rg.Pool[n.Name]
			if !ok {
				return nil, refuse(n, "MaxPool needs calibrated ranges: compile with calibration samples")
			}
			var err error
			if out, err = c.lowerMaxPool(n, x, inShape, pr, ao); err != nil {
				return nil, refuse(n, "%v", err)
			}
		default:
			return nil, refuse(n, "op is not supported by the compiler")
		}
		val[n.Output] = out
	}
	c.output = val[g.Output]
	return c, nil
}

// widenRange widens [lo, hi] by margin around its centre (for a Chebyshev
// interpolant on [lo, hi]); a composite sign approximation instead uses
// margin·max(|lo|, |hi|) around zero.
func widenRange(r [2]float64, margin float64) (float64, float64) {
	lo, hi := r[0], r[1]
	if hi-lo < 1e-6 {
		lo, hi = lo-1e-3, hi+1e-3
	}
	mid, half := (lo+hi)/2, (hi-lo)/2*margin
	return mid - half, mid + half
}

func identity(n int) []ir.Entry {
	w := make([]ir.Entry, n)
	for i := range w {
		w[i] = ir.Entry{Row: i, Col: i, W: 1}
	}
	return w
}

func diagonal(d []float64) []ir.Entry {
	var w []ir.Entry
	for i, v := range d {
		if v != 0 {
			w = append(w, ir.Entry{Row: i, Col: i, W: v})
		}
	}
	return w
}

func constant(n int, v float64) []float64 {
	b := make([]float64, n)
	for i := range b {
		b[i] = v
	}
	return b
}

// affineNode adds y = a·x + b element-wise (a linear node).
func (c *circuit) affineNode(name string, x int, shape []int, a, b float64) int {
	size := ir.Prod(shape)
	out := c.newValue(shape)
	c.add(&cnode{kind: kindLinear, name: name, in: []int{x}, out: out, terms: []term{{in: x, w: diagonal(constant(size, a))}}, bias: constant(size, b)})
	return out
}

// lowerPoly lowers a trained polynomial activation.
func (c *circuit) lowerPoly(n *ir.Node, x int, shape []int) int {
	p := n.Poly
	d := p.Degree()
	co := func(i int) float64 {
		if i < len(p.Coeffs) {
			return p.Coeffs[i]
		}
		return 0
	}
	switch d {
	case 0, 1:
		return c.affineNode(n.Name, x, shape, co(1), co(0))
	case 2:
		a, b, k := co(2), co(1), co(0)
		if math.Abs(b) > 64*math.Abs(a) {
			// A nearly linear activation: the shift b/2a would be huge and
			// the square lose precision. a·x² + b·x + c as one linear node
			// over x² and x (same depth, one more term in the next layer).
			sq := c.newValue(shape)
			c.add(&cnode{kind: kindSquare, name: n.Name, in: []int{x}, out: sq})
			out := c.newValue(shape)
			size := ir.Prod(shape)
			c.add(&cnode{kind: kindLinear, name: n.Name, in: []int{sq, x}, out: out,
				terms: []term{{in: sq, w: diagonal(constant(size, a))}, {in: x, w: diagonal(constant(size, b))}}, bias: constant(size, k)})
			return out
		}
		// a(x+β)² + γ with β = b/2a, γ = c − b²/4a.
		beta := b / (2 * a)
		shifted := c.affineNode(n.Name, x, shape, 1, beta)
		sq := c.newValue(shape)
		c.add(&cnode{kind: kindSquare, name: n.Name, in: []int{shifted}, out: sq})
		return c.affineNode(n.Name, sq, shape, a, k-b*b/(4*a))
	default:
		out := c.newValue(shape)
		c.add(&cnode{kind: kindPoly, name: n.Name, in: []int{x}, out: out, monomial: append([]float64(nil), p.Coeffs[:d+1]...)})
		return out
	}
}

// sign adds the composite approximation of sign(x) for |x| ≤ r: the
// normalisation x/r, then the stages.
func (c *circuit) sign(name string, x int, shape []int, r float64, preset string, sp signPreset) int {
	u := c.affineNode(name, x, shape, 1/r, 0)
	for _, st := range sp.stages {
		out := c.newValue(shape)
		c.add(&cnode{kind: kindPoly, name: name, in: []int{u}, out: out, cheb: &cheb{fn: "sign", lo: -r, hi: r, coeffs: st}, signStage: preset})
		u = out
	}
	return u
}

// approx adds a Chebyshev approximation of ch.fn applied to x: the
// normalisation to [-1, 1], then the polynomial.
func (c *circuit) approx(name string, x int, shape []int, ch *cheb) int {
	a, b := ch.normalise()
	u := c.affineNode(name, x, shape, a, b)
	out := c.newValue(shape)
	c.add(&cnode{kind: kindPoly, name: name, in: []int{u}, out: out, cheb: ch})
	return out
}

// lowerMaxPool rewrites a max pool as rounds of max(a,b) = (a+b)/2 + |a−b|/2.
// The candidates of every window are kept as linear combinations of x and
// of the |·| outputs of earlier rounds; each round takes |·| of all its
// differences at once, in one polynomial evaluation.
func (c *circuit) lowerMaxPool(n *ir.Node, x int, inShape []int, pr [][2]float64, ao ApproxOptions) (int, error) {
	t := newPoolTree(n.Pool, inShape)
	rounds := t.rounds()
	if len(pr) < rounds {
		return 0, fmt.Errorf("calibration has %d rounds of ranges, the pool needs %d", len(pr), rounds)
	}
	// A candidate is Σ coef·value[idx] over (value, idx) pairs.
	type lin map[[2]int]float64
	cands := make([][]lin, len(t.windows))
	for i, win := range t.windows {
		for _, idx := range win {
			cands[i] = append(cands[i], lin{{x, idx}: 1})
		}
	}
	combine := func(a, b lin, ca, cb float64) lin {
		out := lin{}
		for k, v := range a {
			out[k] += ca * v
		}
		for k, v := range b {
			out[k] += cb * v
		}
		return out
	}
	// linearOf builds a linear node whose rows are the given combinations.
	linearOf := func(rows []lin) int {
		out := c.newValue([]int{len(rows)})
		terms := map[int][]ir.Entry{}
		for r, l := range rows {
			for k, v := range l {
				if v != 0 {
					terms[k[0]] = append(terms[k[0]], ir.Entry{Row: r, Col: k[1], W: v})
				}
			}
		}
		cn := &cnode{kind: kindLinear, name: n.Name, out: out, bias: make([]float64, len(rows))}
		ins := make([]int, 0, len(terms))
		for v := range terms {
			ins = append(ins, v)
		}
		sort.Ints(ins)
		for _, v := range ins {
			cn.in = append(cn.in, v)
			cn.terms = append(cn.terms, term{in: v, w: terms[v]})
		}
		c.add(cn)
		return out
	}
	for r := 0; r < rounds; r++ {
		var diffs []lin
		type pair struct{ win, j, row int }
		var pairs []pair
		for i, cs := range cands {
			for j := 0; j+1 < len(cs); j += 2 {
				pairs = append(pairs, pair{i, j, len(diffs)})
				diffs = append(diffs, combine(cs[j], cs[j+1], 1, -1))
			}
		}
		if len(diffs) == 0 {
			break
		}
		d := linearOf(diffs)
		lo, hi := widenRange(pr[r], ao.Margin)
		m := math.Max(math.Abs(lo), math.Abs(hi))
		if ao.Method == "composite" {
			m = ao.Margin * math.Max(math.Abs(pr[r][0]), math.Abs(pr[r][1]))
		}
		var abs int
		if ao.Method == "composite" {
			sp, ok := signPresets[ao.Sign]
			if !ok {
				return 0, fmt.Errorf("unknown sign approximation %q (known: %v)", ao.Sign, SignPresets())
			}
			// |d| = d·sign(d); the normalised copy of d is its own linear
			// node (so it costs no level of its own).
			s := c.sign(n.Name, d, []int{len(diffs)}, m, ao.Sign, sp)
			abs = c.newValue([]int{len(diffs)})
			c.add(&cnode{kind: kindMul, name: n.Name, in: []int{d, s}, out: abs})
		} else {
			ch, err := chebyshevInterpolant("abs", -m, m, ao.AbsDegree)
			if err != nil {
				return 0, fmt.Errorf("approximating |x| in round %d: %v", r+1, err)
			}
			abs = c.approx(n.Name, d, []int{len(diffs)}, ch)
		}
		next := make([][]lin, len(cands))
		k := 0
		for i, cs := range cands {
			for j := 0; j+1 < len(cs); j += 2 {
				p := pairs[k]
				k++
				m := combine(cs[j], cs[j+1], 0.5, 0.5)
				m[[2]int{abs, p.row}] += 0.5
				next[i] = append(next[i], m)
			}
			if len(cs)%2 == 1 {
				next[i] = append(next[i], cs[len(cs)-1])
			}
		}
		cands = next
	}
	rows := make([]lin, len(cands))
	for i, cs := range cands {
		rows[i] = cs[0]
	}
	flat := linearOf(rows)
	c.values[flat].shape = []int{t.c, t.oh, t.ow}
	return flat, nil
}

// run evaluates the circuit in float64 on the input value (logical
// coordinates). visit, when not nil, sees every node's output.
func (c *circuit) run(x []float64, visit func(i int, n *cnode, out []float64)) []float64 {
	vals := make([][]float64, len(c.values))
	vals[c.input] = x
	for i, n := range c.nodes {
		var y []float64
		switch n.kind {
		case kindLinear:
			y = append([]float64(nil), n.bias...)
			for _, t := range n.terms {
				xv := vals[t.in]
				for _, e := range t.w {
					y[e.Row] += e.W * xv[e.Col]
				}
			}
		case kindSquare:
			xv := vals[n.in[0]]
			y = make([]float64, len(xv))
			for k, v := range xv {
				y[k] = v * v
			}
		case kindMul:
			a, b := vals[n.in[0]], vals[n.in[1]]
			y = make([]float64, len(a))
			for k := range a {
				y[k] = a[k] * b[k]
			}
		case kindBootstrap:
			y = vals[n.in[0]]
		case kindPoly:
			xv := vals[n.in[0]]
			y = make([]float64, len(xv))
			f := (&ir.Poly{Coeffs: n.monomial}).Eval
			if n.cheb != nil {
				f = n.cheb.eval
			}
			for k, v := range xv {
				y[k] = f(v)
			}
		}
		vals[n.out] = y
		if visit != nil {
			visit(i, n, y)
		}
	}
	return vals[c.output]
}

package he

import (
	"fmt"
	"math/bits"
	"runtime"
	"sort"

	"github.com/tuneinsight/lattigo/v6/circuits/ckks/lintrans"
	commonlintrans "github.com/tuneinsight/lattigo/v6/circuits/common/lintrans"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"

	"github.com/hegate/hegate"
)

// The compiler lowers a graph to a chain of two kinds of CKKS steps:
//
//   - linear: y = W x + b as a diagonal linear transform with baby-step
//     giant-step rotations (hoisted), one level;
//   - square: y = x², one ciphertext multiplication, one level.
//
// A degree-2 activation a·x² + b·x + c is rewritten as a·(x + b/2a)² + c':
// the shift b/2a joins the bias of the linear step before it, and the scale
// a and the constant c' fold into the weights and bias of the linear step
// after it, so every activation costs exactly one multiplication and one
// level. Degree-1 activations fold away entirely.
//
// Packing. Vectors live in the first n slots of a ciphertext whose plaintext
// dimension is n (a power of two, the largest layer rounded up), so slot
// rotations are cyclic modulo n. When the first layer is a convolution the
// device sends its input already unrolled into patches (im2col); the
// convolution then has only (patch size + channels - 1) non-zero diagonals.
// A linear step whose output is much narrower than n may use the hybrid
// method (Halevi-Shoup): m extended diagonals, then log2(n/m) rotations that
// sum the n/m partial blocks, which leaves the output replicated with period
// m. The compiler picks, per step, the method with the lower estimated cost.

// rotationWeight is the cost of one key-switching rotation in units of one
// plaintext multiplication, measured at logN 14 on this project's machine
// (roughly 4 ms against 0.25 ms).
const rotationWeight = 16

// logBSGSRatio is log2 of the giant/baby step ratio of the linear transforms.
const logBSGSRatio = 1

type entry struct {
	i, j int
	v    float64
}

// linearOp is y = W x + b with W sparse, out×in. Row i of the output
// lands in slot rowSlot[i] (nil: slot i); columns index the previous
// op's logical outputs (or, for the first op, input slots).
type linearOp struct {
	out, in int
	w       []entry
	bias    []float64
	rowSlot []int
}

func (l *linearOp) slotOf(i int) int {
	if l.rowSlot == nil {
		return i
	}
	return l.rowSlot[i]
}

// affine scales W and b by a and adds c to every output.
func (l *linearOp) affine(a, c float64) {
	for k := range l.w {
		l.w[k].v *= a
	}
	for i := range l.bias {
		l.bias[i] = a*l.bias[i] + c
	}
}

type opKind int

const (
	kindLinear opKind = iota
	kindSquare
)

type lowered struct {
	kind opKind
	lin  *linearOp
}

// inputPacking says how the device lays its input out in the slots.
type inputPacking struct {
	// im2col is set when the first layer is a convolution that the device
	// unrolls; otherwise the input goes in as it is (C×H×W order).
	im2col *im2colPacking
}

type im2colPacking struct {
	c, h, w             int // input shape
	kernel, stride, pad int
	oh, ow              int
	// block is the slot distance between two patch elements (and between
	// two output channels of the convolution): oh·ow, or the next power of
	// two, which makes the convolution's diagonals multiples of a power of
	// two and so needs far fewer rotation keys.
	block int
}

func (q *im2colPacking) patch() int { return q.c * q.kernel * q.kernel }

// size is the number of slots the packed input spans.
func (p inputPacking) size(inputSize int) int {
	if p.im2col != nil {
		q := p.im2col
		return (q.patch()-1)*q.block + q.oh*q.ow
	}
	return inputSize
}

func (p inputPacking) manifest() *Packing {
	if p.im2col == nil {
		return nil
	}
	return &Packing{Kind: "im2col", Kernel: p.im2col.kernel, Stride: p.im2col.stride, Padding: p.im2col.pad, Block: p.im2col.block}
}

// pack lays x out as the device must encrypt it.
func (p inputPacking) pack(x []float64) []float64 {
	if p.im2col == nil {
		return append([]float64(nil), x...)
	}
	q := p.im2col
	out := make([]float64, p.size(len(x)))
	for c := 0; c < q.c; c++ {
		for ky := 0; ky < q.kernel; ky++ {
			for kx := 0; kx < q.kernel; kx++ {
				patch := (c*q.kernel+ky)*q.kernel + kx
				for oy := 0; oy < q.oh; oy++ {
					iy := oy*q.stride + ky - q.pad
					if iy < 0 || iy >= q.h {
						continue
					}
					for ox := 0; ox < q.ow; ox++ {
						ix := ox*q.stride + kx - q.pad
						if ix < 0 || ix >= q.w {
							continue
						}
						out[patch*q.block+oy*q.ow+ox] = x[(c*q.h+iy)*q.w+ix]
					}
				}
			}
		}
	}
	return out
}

// lower turns the graph into linear and square ops with activations folded.
// maxSlots bounds the padded im2col layout; 0 disables the padding.
func lower(g *Graph, maxSlots int) (inputPacking, []lowered, error) {
	const op = "he.Compile"
	unsupported := func(format string, args ...any) error {
		return hegate.E(op, hegate.KindInvalid, nil, format, args...)
	}
	var packing inputPacking
	var ops []lowered
	shape := g.Input
	for li, l := range g.Layers {
		switch l.Op {
		case OpConv2D:
			c := l.Conv
			oh, ow := ConvOutputSize(shape[1], c.Kernel, c.Stride, c.Padding), ConvOutputSize(shape[2], c.Kernel, c.Stride, c.Padding)
			if li == 0 {
				q := &im2colPacking{c: shape[0], h: shape[1], w: shape[2], kernel: c.Kernel, stride: c.Stride, pad: c.Padding, oh: oh, ow: ow, block: oh * ow}
				if padded := nextPow2(oh * ow); maxSlots > 0 && max(q.patch(), c.OutChannels)*padded <= maxSlots {
					q.block = padded
				}
				packing.im2col = q
				ops = append(ops, lowered{kind: kindLinear, lin: im2colConv(c, oh*ow, q.block)})
			} else {
				ops = append(ops, lowered{kind: kindLinear, lin: convMatrix(c, shape)})
			}
			shape = []int{c.OutChannels, oh, ow}
		case OpDense:
			d := l.Dense
			lin := &linearOp{out: d.Out, in: d.In, bias: append([]float64(nil), d.Bias...)}
			for i := 0; i < d.Out; i++ {
				for j := 0; j < d.In; j++ {
					if v := d.Weights[i*d.In+j]; v != 0 {
						lin.w = append(lin.w, entry{i, j, v})
					}
				}
			}
			ops = append(ops, lowered{kind: kindLinear, lin: lin})
			shape = []int{d.Out}
		case OpFlatten:
			shape = []int{prod(shape)}
		case OpPoly:
			coeffs := trimPoly(l.Poly.Coeffs)
			if len(coeffs) > 3 {
				return packing, nil, unsupported("layer %d: polynomial activation of degree %d is not supported yet (degree 2 at most); retrain with a degree-2 activation", li, len(coeffs)-1)
			}
			var prev *linearOp
			if n := len(ops); n > 0 && ops[n-1].kind == kindLinear {
				prev = ops[n-1].lin
			}
			if prev == nil {
				return packing, nil, unsupported("layer %d: a polynomial activation must follow a conv2d or dense layer", li)
			}
			c0, c1, c2 := coeff(coeffs, 0), coeff(coeffs, 1), coeff(coeffs, 2)
			if c2 == 0 {
				prev.affine(c1, c0)
				continue
			}
			// a(x+β)² + γ with β = b/2a, γ = c - b²/4a.
			beta := c1 / (2 * c2)
			gamma := c0 - c1*c1/(4*c2)
			prev.affine(1, beta)
			ops = append(ops, lowered{kind: kindSquare})
			ops = append(ops, lowered{kind: kindLinear, lin: &linearOp{out: prod(shape), in: prod(shape), bias: nil}})
			pending := ops[len(ops)-1].lin
			pending.w = nil
			pending.bias = make([]float64, pending.out)
			for i := 0; i < pending.out; i++ {
				pending.w = append(pending.w, entry{i, i, c2})
				pending.bias[i] = gamma
			}
		}
	}
	return packing, fuseLinear(ops), nil
}

// fuseLinear multiplies adjacent linear ops into one, so the scaling
// placeholder left by an activation disappears into the next real layer.
func fuseLinear(ops []lowered) []lowered {
	var out []lowered
	for _, o := range ops {
		n := len(out)
		if o.kind == kindLinear && n > 0 && out[n-1].kind == kindLinear {
			out[n-1].lin = compose(o.lin, out[n-1].lin)
			continue
		}
		out = append(out, o)
	}
	return out
}

// compose returns second∘first.
func compose(second, first *linearOp) *linearOp {
	// Index first by row.
	rows := make([][]entry, first.out)
	for _, e := range first.w {
		rows[e.i] = append(rows[e.i], e)
	}
	acc := make(map[[2]int]float64)
	res := &linearOp{out: second.out, in: first.in, bias: append([]float64(nil), second.bias...), rowSlot: second.rowSlot}
	for _, e := range second.w {
		res.bias[e.i] += e.v * first.bias[e.j]
		for _, f := range rows[e.j] {
			acc[[2]int{e.i, f.j}] += e.v * f.v
		}
	}
	for k, v := range acc {
		if v != 0 {
			res.w = append(res.w, entry{k[0], k[1], v})
		}
	}
	sort.Slice(res.w, func(a, b int) bool {
		if res.w[a].i != res.w[b].i {
			return res.w[a].i < res.w[b].i
		}
		return res.w[a].j < res.w[b].j
	})
	return res
}

func trimPoly(c []float64) []float64 {
	n := len(c)
	for n > 1 && c[n-1] == 0 {
		n--
	}
	return c[:n]
}

func coeff(c []float64, i int) float64 {
	if i < len(c) {
		return c[i]
	}
	return 0
}

// im2colConv is the convolution as a matrix over the unrolled input, whose
// patch element k of position p sits in slot k·B + p (B = block):
// out[o·P + p] = Σ_k W[o][k] · v[k·B + p] + b[o], P = positions, and
// output row o·P + p lands in slot o·B + p. Every entry then lies on the
// diagonal (k - o)·B.
func im2colConv(c *Conv2D, positions, block int) *linearOp {
	patch := c.InChannels * c.Kernel * c.Kernel
	out := c.OutChannels * positions
	lin := &linearOp{out: out, in: (patch-1)*block + positions, bias: make([]float64, out)}
	if block != positions {
		lin.rowSlot = make([]int, out)
	}
	for o := 0; o < c.OutChannels; o++ {
		for p := 0; p < positions; p++ {
			row := o*positions + p
			lin.bias[row] = c.Bias[o]
			if lin.rowSlot != nil {
				lin.rowSlot[row] = o*block + p
			}
			for k := 0; k < patch; k++ {
				if v := c.Weights[o*patch+k]; v != 0 {
					lin.w = append(lin.w, entry{row, k*block + p, v})
				}
			}
		}
	}
	return lin
}

// convMatrix is a convolution over a C×H×W input as a sparse matrix.
func convMatrix(c *Conv2D, shape []int) *linearOp {
	h, w := shape[1], shape[2]
	oh, ow := ConvOutputSize(h, c.Kernel, c.Stride, c.Padding), ConvOutputSize(w, c.Kernel, c.Stride, c.Padding)
	k := c.Kernel
	lin := &linearOp{out: c.OutChannels * oh * ow, in: c.InChannels * h * w, bias: make([]float64, c.OutChannels*oh*ow)}
	for o := 0; o < c.OutChannels; o++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				row := (o*oh+oy)*ow + ox
				lin.bias[row] = c.Bias[o]
				for i := 0; i < c.InChannels; i++ {
					for ky := 0; ky < k; ky++ {
						iy := oy*c.Stride + ky - c.Padding
						if iy < 0 || iy >= h {
							continue
						}
						for kx := 0; kx < k; kx++ {
							ix := ox*c.Stride + kx - c.Padding
							if ix < 0 || ix >= w {
								continue
							}
							if v := c.Weights[((o*c.InChannels+i)*k+ky)*k+kx]; v != 0 {
								lin.w = append(lin.w, entry{row, (i*h+iy)*w + ix, v})
							}
						}
					}
				}
			}
		}
	}
	return lin
}

// step is one compiled CKKS step.
type step struct {
	kind  opKind
	level int // level of the ciphertext entering the step
	// parts are the step's diagonals, split by giant-step group into one
	// transform per goroutine (one part when evaluation is sequential).
	parts  []lintrans.LinearTransformation
	galEls []uint64 // the Galois elements the step's rotations need
	diags  int
	rotSum []int     // hybrid method: rotations of the rotate-and-sum, in order
	bias   []float64 // length n, added after the rescale
	period int       // the output is replicated with this period (n when not)
	cost   Cost
}

// deviceSpec is everything a device needs to make keys, encrypt and
// decrypt for a model, and nothing about its weights.
type deviceSpec struct {
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
}

type compiled struct {
	*deviceSpec
	parallelism int // goroutines one evaluation may use
	steps       []step
	ops         []lowered // the steps in logical coordinates, for calibration
	cost        Cost
}

func nextPow2(x int) int {
	if x <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(x-1))
}

// Compile lowers g and prepares it for evaluation under the chosen parameters:
// it plans levels, chooses a method per linear step, lists the Galois
// elements and pre-encodes every weight matrix (a bias is encoded when it is
// added, at the exact scale the ciphertext has then). Errors are KindInvalid when the
// graph cannot be compiled (and say which layer and why).
func Compile(g *Graph, opts CompileOptions) (*Model, error) {
	const op = "he.Compile"
	if err := g.Validate(); err != nil {
		return nil, err
	}
	params, err := LoadParams(opts.Params, opts.AllowInsecure)
	if err != nil {
		return nil, err
	}
	packing, ops, err := lower(g, params.ckks.MaxSlots())
	if err == nil && len(ops) > 0 && ops[len(ops)-1].kind == kindLinear && ops[len(ops)-1].lin.rowSlot != nil {
		// The output must sit in the first slots: no padded layout then.
		packing, ops, err = lower(g, 0)
	}
	if err != nil {
		return nil, err
	}
	par := opts.Parallelism
	if par <= 0 {
		par = min(runtime.GOMAXPROCS(0), 8)
	}
	c := &compiled{parallelism: par, deviceSpec: &deviceSpec{name: g.Name, params: params, inputShape: append([]int(nil), g.Input...), packing: packing, outputSize: g.OutputSize()}}

	width := packing.size(g.InputSize())
	for _, o := range ops {
		if o.kind == kindLinear {
			width = max(width, o.lin.in, o.lin.slotOf(o.lin.out-1)+1)
		}
	}
	c.n = nextPow2(width)
	c.logN = bits.Len(uint(c.n)) - 1
	if c.n > params.ckks.MaxSlots() {
		return nil, hegate.E(op, hegate.KindInvalid, nil, "model %s needs %d slots (widest layer %d values) but preset %s has %d; use a larger preset", g.Name, c.n, width, params.name, params.ckks.MaxSlots())
	}
	if len(ops) == 0 || ops[len(ops)-1].kind != kindLinear {
		// A model ending in an activation: add the identity so the output
		// is produced by a linear step (clean, fixed layout).
		out := g.OutputSize()
		id := &linearOp{out: out, in: out, bias: make([]float64, out)}
		for i := 0; i < out; i++ {
			id.w = append(id.w, entry{i, i, 1})
		}
		ops = append(ops, lowered{kind: kindLinear, lin: id})
	}
	c.inputLevel = len(ops)
	if c.inputLevel > params.ckks.MaxLevel() {
		return nil, hegate.E(op, hegate.KindInvalid, nil, "model %s needs %d levels but preset %s has %d; bootstrapping is not available yet, so use a deeper preset or fewer layers", g.Name, c.inputLevel, params.name, params.ckks.MaxLevel())
	}

	ecd := ckks.NewEncoder(params.ckks)
	galLevel := map[uint64]int{} // Galois element → highest level it rotates at
	use := func(ge uint64, level int) { galLevel[ge] = max(galLevel[ge], level) }
	level := c.inputLevel
	var colSlot []int // where the previous linear step left each logical value
	inPeriod := c.n   // the period with which the current vector repeats in the slots
	for _, o := range ops {
		st := step{kind: o.kind, level: level, period: c.n}
		switch o.kind {
		case kindSquare:
			st.cost = Cost{CipherMults: 1, Relins: 1, Rescales: 1}
			c.relinLevel = max(c.relinLevel, level)
		case kindLinear:
			if err := c.planLinear(&st, toSlots(o.lin, colSlot), ecd, inPeriod); err != nil {
				return nil, fmt.Errorf("%s: %w", op, err)
			}
			colSlot = o.lin.rowSlot
			inPeriod = st.period
			for _, ge := range st.galEls {
				use(ge, level) // rotations of the input, before the rescale
			}
			for _, r := range st.rotSum {
				use(params.ckks.GaloisElement(r), level-1) // after the rescale
			}
		}
		c.cost.add(st.cost)
		c.steps = append(c.steps, st)
		c.ops = append(c.ops, o)
		level--
	}
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
	m := &Model{graph: g, c: c}
	m.manifest = m.buildManifest()
	return m, nil
}

func (c *Cost) add(o Cost) {
	c.Rotations += o.Rotations
	c.PlainMults += o.PlainMults
	c.CipherMults += o.CipherMults
	c.Relins += o.Relins
	c.Rescales += o.Rescales
}

// toSlots rewrites l in slot coordinates: row i goes to l's row slot,
// column j to colSlot[j] (the previous step's layout; nil: slot j).
func toSlots(l *linearOp, colSlot []int) *linearOp {
	if l.rowSlot == nil && colSlot == nil {
		return l
	}
	out := 0
	for i := 0; i < l.out; i++ {
		out = max(out, l.slotOf(i)+1)
	}
	res := &linearOp{out: out, in: l.in, bias: make([]float64, out), w: make([]entry, len(l.w))}
	for i, b := range l.bias {
		res.bias[l.slotOf(i)] = b
	}
	for k, e := range l.w {
		j := e.j
		if colSlot != nil {
			j = colSlot[j]
		}
		res.w[k] = entry{l.slotOf(e.i), j, e.v}
	}
	return res
}

// plainDiagonals returns diag[k][i] = W[i][(i+k) mod n].
func plainDiagonals(l *linearOp, n int) map[int][]float64 {
	d := map[int][]float64{}
	for _, e := range l.w {
		k := ((e.j-e.i)%n + n) % n
		if d[k] == nil {
			d[k] = make([]float64, n)
		}
		d[k][e.i] += e.v
	}
	return d
}

// hybridDiagonals returns the m extended diagonals d_k[j] = W[j mod m][(j+k) mod n].
func hybridDiagonals(l *linearOp, n, m int) map[int][]float64 {
	d := map[int][]float64{}
	for _, e := range l.w {
		r := ((e.j-e.i)%n + n) % n
		t, k := r/m, r%m
		if d[k] == nil {
			d[k] = make([]float64, n)
		}
		d[k][e.i+t*m] += e.v
	}
	return d
}

func bsgsRotations(diags map[int][]float64, n int) int {
	idx := make([]int, 0, len(diags))
	for k := range diags {
		idx = append(idx, k)
	}
	n1 := findBSGS(idx, n)
	giant, baby := map[int]bool{}, map[int]bool{}
	for _, k := range idx {
		giant[(k/n1)*n1] = true
		baby[k%n1] = true
	}
	delete(giant, 0)
	delete(baby, 0)
	return len(giant) + len(baby)
}

func findBSGS(idx []int, n int) int {
	// Mirrors lintrans.FindBestBSGSRatio so cost estimates match what runs.
	return commonlintrans.FindBestBSGSRatio(idx, n, logBSGSRatio)
}

// planLinear chooses the method for one linear step and encodes it at its level.
//
// inPeriod is the period with which the input is replicated in the slots
// (n for the packed input; a step's output period after that). The step
// then works in dimension nEff = max(inPeriod, its own rows rounded up):
// rotations modulo nEff see the same values as rotations modulo n, so the
// diagonals are nEff long (repeated across the slots), and the hybrid
// method's rotate-and-sum needs only log2(nEff/m) rotations, not log2(n/m).
func (c *compiled) planLinear(st *step, l *linearOp, ecd *ckks.Encoder, inPeriod int) error {
	n := c.n
	nEff := max(inPeriod, nextPow2(l.out))
	plain := plainDiagonals(l, nEff)
	plainRot := bsgsRotations(plain, n)
	best := plain
	bestCost := Cost{PlainMults: len(plain), Rotations: plainRot, Rescales: 1}
	var rotSum []int
	period := nEff
	m := nextPow2(l.out)
	if m < nEff {
		hyb := hybridDiagonals(l, nEff, m)
		hybRot := bsgsRotations(hyb, n)
		var rs []int
		for s := m; s < nEff; s *= 2 {
			rs = append(rs, s)
		}
		if len(hyb)+rotationWeight*(hybRot+len(rs)) < len(plain)+rotationWeight*plainRot {
			best, rotSum, period = hyb, rs, m
			bestCost = Cost{PlainMults: len(hyb), Rotations: hybRot + len(rs), Rescales: 1}
		}
	}
	for k, d := range best {
		best[k] = repeatTo(d, n)
	}
	if len(best) == 0 {
		// An all-zero matrix: keep one zero diagonal so the step still
		// consumes its level and the layout stays uniform.
		best = map[int][]float64{0: make([]float64, n)}
		bestCost.PlainMults = 1
	}
	if err := c.encodeDiagonals(st, best, ecd); err != nil {
		return err
	}
	bias := make([]float64, n)
	for i := 0; i < n; i++ {
		if row := i % period; row < l.out {
			bias[i] = l.bias[row]
		}
	}
	if allZero(bias) {
		bias = nil
	}
	st.diags, st.rotSum, st.bias, st.period, st.cost = len(best), rotSum, bias, period, bestCost
	return nil
}

// encodeDiagonals encodes a linear step at level: the whole transform
// (whose Galois elements the key set covers) and, when the step has several
// giant-step groups and the model compiles for parallel evaluation, the same
// diagonals split by giant-step group into parts that share the baby-step
// size N1, so that they need no other keys and can run on separate cores.
func (c *compiled) encodeDiagonals(st *step, diags map[int][]float64, ecd *ckks.Encoder) error {
	p := c.params.ckks
	idx := diagIndex(diags)
	ltParams := func(list []int) lintrans.Parameters {
		return lintrans.Parameters{
			DiagonalsIndexList:        list,
			LevelQ:                    st.level,
			LevelP:                    p.MaxLevelP(),
			Scale:                     rlwe.NewScale(p.Q()[st.level]),
			LogDimensions:             ring.Dimensions{Rows: 0, Cols: c.logN},
			LogBabyStepGiantStepRatio: logBSGSRatio,
		}
	}
	st.galEls = lintrans.GaloisElements(p, ltParams(idx))
	n1 := findBSGS(idx, c.n)
	groups := map[int][]int{} // giant step → its diagonals
	for _, k := range idx {
		g := (k / n1) * n1
		groups[g] = append(groups[g], k)
	}
	lists := [][]int{idx}
	if c.parallelism > 1 && len(groups) > 1 {
		// Deal the groups, largest first, to the part with the fewest
		// diagonals. Every part keeps the whole's baby-step size N1, so
		// the parts need no keys the whole would not.
		giants := make([]int, 0, len(groups))
		for g := range groups {
			giants = append(giants, g)
		}
		sort.Slice(giants, func(a, b int) bool {
			if la, lb := len(groups[giants[a]]), len(groups[giants[b]]); la != lb {
				return la > lb
			}
			return giants[a] < giants[b]
		})
		lists = make([][]int, min(c.parallelism, len(groups)))
		for _, g := range giants {
			small := 0
			for i := range lists {
				if len(lists[i]) < len(lists[small]) {
					small = i
				}
			}
			lists[small] = append(lists[small], groups[g]...)
		}
	}
	st.parts = make([]lintrans.LinearTransformation, len(lists))
	for i, list := range lists {
		sort.Ints(list)
		part := lintrans.NewTransformation(p, ltParams(list))
		part.N1 = n1
		sub := lintrans.Diagonals[float64]{}
		for _, k := range list {
			sub[k] = diags[k]
		}
		if err := lintrans.Encode(ecd, sub, part); err != nil {
			return fmt.Errorf("encoding linear step (part %d of %d): %w", i+1, len(lists), err)
		}
		st.parts[i] = part
	}
	return nil
}

// repeatTo repeats v (whose length divides n) to length n.
func repeatTo(v []float64, n int) []float64 {
	if len(v) == n {
		return v
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = v[i%len(v)]
	}
	return out
}

func diagIndex(d map[int][]float64) []int {
	idx := make([]int, 0, len(d))
	for k := range d {
		idx = append(idx, k)
	}
	sort.Ints(idx)
	return idx
}

func allZero(v []float64) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

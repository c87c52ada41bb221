package he

import (
	"fmt"
	"sort"

	"github.com/tuneinsight/lattigo/v6/circuits/ckks/lintrans"
	commonlintrans "github.com/tuneinsight/lattigo/v6/circuits/common/lintrans"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// Linear steps are diagonal linear transforms: y = Σ_k d_k ⊙ rot(x, k)
// summed over the non-zero diagonals k of the matrix in slot coordinates,
// with baby-step giant-step rotations: the input is decomposed once, its
// baby-step rotations are hoisted (each costs about a sixth of a full key
// switch here), and each giant step is one key switch. The split N1 between
// baby and giant steps is chosen per term by that cost model.
//
// A step whose output is a narrow vector (m values, m ≪ n) may use the
// hybrid method (Halevi–Shoup): m extended diagonals, then log2(nEff/m)
// rotate-and-sum steps, which leaves the output replicated with period m.
// When every input is itself replicated with period p, the step works in
// dimension nEff = max(p, its output span rounded up): rotations modulo nEff
// see the same values as rotations modulo n.

// Cost-model weights, in units of one key-switched rotation, measured at
// logN 14 on this project's 2-core machine: a hoisted baby step costs about
// a sixth of a rotation, a plaintext multiplication (in QP, inside BSGS)
// about a twelfth, and the one decomposition of the input about a third.
// costKey prices the evaluation key each distinct rotation needs (the
// device makes and uploads it): without it the split would buy small time
// savings with many more keys.
const (
	costKey       = 0.5
	costGiant     = 1.0
	costBaby      = 1.0 / 6
	costPlainMult = 1.0 / 12
	costDecompose = 1.0 / 3
	// logBSGSRatio is only used by Lattigo to allocate a transformation;
	// the compiler sets N1 itself.
	logBSGSRatio = 1
)

// linTerm is one input's transform in a linear step.
type linTerm struct {
	in     int
	diags  map[int][]float64               // diagonal index → values (length n)
	n1     int                             // baby-step size
	parts  []lintrans.LinearTransformation // encoded at compile time; nil for lazy weights
	galEls []uint64                        // for the baby and giant steps, at the step's level
	baby   int                             // non-zero baby steps
	giant  int                             // non-zero giant steps
	// lt is the parts' Lattigo parameters (level, scale, dimensions;
	// DiagonalsIndexList set per part) and lists each part's diagonal
	// indices: what encodeParts needs to encode the term again.
	lt    lintrans.Parameters
	lists [][]int
}

// linStep is a compiled linear node.
type linStep struct {
	terms  []*linTerm
	rotSum []int     // hybrid: the rotate-and-sum rotations, after the rescale
	bias   []float64 // length n, added after the rescale (nil: zero)
	period int       // the output repeats with this period (n: it does not)
	method string
}

// bsgsSplit returns the baby-step size that minimises the cost model for
// the diagonal indices idx (in [0, slots)), and the counts of non-zero baby
// and giant steps.
func bsgsSplit(idx []int, slots int) (n1, baby, giant int) {
	best := -1.0
	for cand := 1; cand <= slots; cand <<= 1 {
		_, giants, babies := commonlintrans.BSGSIndex(idx, slots, cand)
		b, g := nonZero(babies), nonZero(giants)
		cost := float64(g)*costGiant + float64(b)*costBaby + float64(b+g)*costKey
		if b+g > 0 {
			cost += costDecompose
		}
		if best < 0 || cost < best {
			best, n1, baby, giant = cost, cand, b, g
		}
	}
	return n1, baby, giant
}

func nonZero(rots []int) int {
	c := 0
	for _, r := range rots {
		if r != 0 {
			c++
		}
	}
	return c
}

func (t *linTerm) cost() float64 {
	c := float64(t.giant)*costGiant + float64(t.baby)*costBaby + float64(len(t.diags))*costPlainMult
	if t.baby+t.giant > 0 {
		c += costDecompose
	}
	return c
}

// planLinear lays a linear node out in slots: diagonals per term, method.
func planLinear(n *cnode, ls []*layout, out *layout, slots int) *linStep {
	nEff := nextPow2(max(out.span(), 1))
	for _, t := range n.terms {
		p := ls[t.in].period
		if p == 0 {
			p = slots
		}
		nEff = max(nEff, p)
	}
	size := len(out.slots)
	plain := &linStep{period: nEff, method: "diagonal"}
	for _, t := range n.terms {
		plain.terms = append(plain.terms, newLinTerm(t.in, plainDiagonals(t, ls[t.in], out, nEff), nEff))
	}
	best := plain
	if m := nextPow2(max(out.span(), size)); m < nEff {
		hyb := &linStep{period: m, method: "hybrid"}
		for _, t := range n.terms {
			hyb.terms = append(hyb.terms, newLinTerm(t.in, hybridDiagonals(t, ls[t.in], out, nEff, m), nEff))
		}
		for s := m; s < nEff; s *= 2 {
			hyb.rotSum = append(hyb.rotSum, s)
		}
		if hyb.cost() < plain.cost() {
			best = hyb
		}
	}
	for _, t := range best.terms {
		for k, d := range t.diags {
			t.diags[k] = repeatTo(d, slots)
		}
	}
	bias := make([]float64, slots)
	// The output element at slot s also appears at s + j·period.
	for row, s := range out.slots {
		for j := s; j < slots; j += best.period {
			bias[j] = n.bias[row]
		}
	}
	if !allZero(bias) {
		best.bias = bias
	}
	return best
}

func (s *linStep) cost() float64 {
	c := float64(len(s.rotSum)) * costGiant
	for _, t := range s.terms {
		c += t.cost()
	}
	return c
}

func newLinTerm(in int, diags map[int][]float64, nEff int) *linTerm {
	if len(diags) == 0 {
		// An all-zero matrix: keep one zero diagonal so the term still
		// has a transform at the step's level.
		diags = map[int][]float64{0: make([]float64, nEff)}
	}
	t := &linTerm{in: in, diags: diags}
	t.n1, t.baby, t.giant = bsgsSplit(diagIndex(diags), nEff)
	return t
}

// plainDiagonals returns d_k[r] = W[r][(r+k) mod nEff] in slot coordinates.
func plainDiagonals(t term, in, out *layout, nEff int) map[int][]float64 {
	d := map[int][]float64{}
	for _, e := range t.w {
		r, col := out.slots[e.Row], in.slots[e.Col]%nEff
		k := ((col-r)%nEff + nEff) % nEff
		if d[k] == nil {
			d[k] = make([]float64, nEff)
		}
		d[k][r] += e.W
	}
	return d
}

// hybridDiagonals returns the m extended diagonals d_k[j] = W[j mod m][(j+k) mod nEff]
// in slot coordinates, for an output whose slots are all below m: after the
// rotate-and-sum, slot s < m holds the sum over j ≡ s (mod m).
func hybridDiagonals(t term, in, out *layout, nEff, m int) map[int][]float64 {
	d := map[int][]float64{}
	for _, e := range t.w {
		col, row := in.slots[e.Col]%nEff, out.slots[e.Row]
		r := ((col-row)%nEff + nEff) % nEff
		tt, k := r/m, r%m
		if d[k] == nil {
			d[k] = make([]float64, nEff)
		}
		d[k][row+tt*m] += e.W
	}
	return d
}

// encode encodes a term at level with plaintext scale ptScale, split into
// parts (by giant-step group, for parallel evaluation) that share N1 and so
// need no other keys: the eager path, which keeps the parts.
func (t *linTerm) encode(params ckks.Parameters, ecd *ckks.Encoder, level, logSlots int, ptScale rlwe.Scale, parallelism int) error {
	t.plan(params, level, logSlots, ptScale, parallelism)
	parts, err := t.encodeParts(params, []*ckks.Encoder{ecd})
	if err != nil {
		return err
	}
	t.parts = parts
	return nil
}

// plan fixes what encoding the term needs without encoding it: the Galois
// elements of its baby and giant steps, and its split into parts (by
// giant-step group, for parallel evaluation) that share N1 and so need no
// other keys. A term with lazy weights is planned at compile time and
// encoded (encodeParts) at every evaluation.
func (t *linTerm) plan(params ckks.Parameters, level, logSlots int, ptScale rlwe.Scale, parallelism int) {
	idx := diagIndex(t.diags)
	slots := 1 << logSlots
	t.lt = lintrans.Parameters{
		LevelQ:                    level,
		LevelP:                    params.MaxLevelP(),
		Scale:                     ptScale,
		LogDimensions:             ring.Dimensions{Rows: 0, Cols: logSlots},
		LogBabyStepGiantStepRatio: logBSGSRatio,
	}
	_, giants, babies := commonlintrans.BSGSIndex(idx, slots, t.n1)
	t.galEls = nil
	for _, r := range append(append([]int(nil), babies...), giants...) {
		if r != 0 {
			t.galEls = append(t.galEls, params.GaloisElement(r))
		}
	}
	groups := map[int][]int{} // giant step → its diagonals
	for _, k := range idx {
		g := (k / t.n1) * t.n1
		groups[g] = append(groups[g], k)
	}
	lists := [][]int{idx}
	if zero := groups[0]; parallelism > 1 && len(groups) == 1 && len(zero) >= 2*parallelism {
		// Only baby steps: the diagonals need no giant key switch, so any
		// split costs nothing extra; the parts share the hoisted rotations.
		lists = make([][]int, parallelism)
		for i, k := range zero {
			lists[i%parallelism] = append(lists[i%parallelism], k)
		}
	} else if parallelism > 1 && len(groups) > 1 {
		// Deal the groups, largest first, to the part with the fewest
		// diagonals.
		giantList := make([]int, 0, len(groups))
		for g := range groups {
			giantList = append(giantList, g)
		}
		sort.Slice(giantList, func(a, b int) bool {
			if la, lb := len(groups[giantList[a]]), len(groups[giantList[b]]); la != lb {
				return la > lb
			}
			return giantList[a] < giantList[b]
		})
		lists = make([][]int, min(parallelism, len(groups)))
		for _, g := range giantList {
			small := 0
			for i := range lists {
				if len(lists[i]) < len(lists[small]) {
					small = i
				}
			}
			lists[small] = append(lists[small], groups[g]...)
		}
	}
	for _, list := range lists {
		sort.Ints(list)
	}
	t.lists = lists
}

// encodedBytes is the memory of the term's encoded parts: one plaintext
// in QP at the term's level per diagonal.
func (t *linTerm) encodedBytes(params ckks.Parameters) int64 {
	return int64(len(t.diags)) * int64(t.lt.LevelQ+1+t.lt.LevelP+1) * int64(params.N()) * 8
}

// encodeParts encodes the planned term's parts from its float64 diagonals,
// the same way whether the parts are kept (eager) or made for one
// evaluation (lazy). With several encoders (one per goroutine: an encoder
// is not safe for concurrent use) the diagonals are dealt round-robin to
// goroutines, each encoding its share into the parts' own plaintexts
// through a view of the transformation that holds only those diagonals:
// each diagonal's plaintext depends only on its values, its giant step and
// the scale, so the parts are the same bit for bit as one encoder makes.
func (t *linTerm) encodeParts(params ckks.Parameters, ecds []*ckks.Encoder) ([]lintrans.LinearTransformation, error) {
	parts := make([]lintrans.LinearTransformation, len(t.lists))
	total := 0
	for i, list := range t.lists {
		ltp := t.lt
		ltp.DiagonalsIndexList = list
		parts[i] = lintrans.NewTransformation(params, ltp)
		parts[i].N1 = t.n1
		total += len(list)
	}
	encodeOne := func(ecd *ckks.Encoder, i int, list []int) error {
		part := parts[i]
		sub := lintrans.Diagonals[float64]{}
		for _, k := range list {
			sub[k] = t.diags[k]
		}
		if len(list) != len(t.lists[i]) {
			// A view of the part holding only list's plaintexts (shared
			// with the part) and its own metadata (Encode writes it).
			md := *part.MetaData
			part.MetaData = &md
			part.Vec = make(map[int]ringqp.Poly, len(list))
			for _, k := range list {
				part.Vec[k] = parts[i].Vec[k]
			}
		}
		if err := lintrans.Encode(ecd, sub, part); err != nil {
			return fmt.Errorf("encoding linear transform (part %d of %d): %w", i+1, len(parts), err)
		}
		return nil
	}
	workers := min(len(ecds), total)
	if workers <= 1 {
		for i, list := range t.lists {
			if err := encodeOne(ecds[0], i, list); err != nil {
				return nil, err
			}
		}
		return parts, nil
	}
	// shares[w][i]: the diagonals of part i that goroutine w encodes.
	shares := make([][][]int, workers)
	for w := range shares {
		shares[w] = make([][]int, len(parts))
	}
	n := 0
	for i, list := range t.lists {
		for _, k := range list {
			shares[n%workers][i] = append(shares[n%workers][i], k)
			n++
		}
	}
	if err := parallel(workers, func(w int) error {
		for i, list := range shares[w] {
			if len(list) == 0 {
				continue
			}
			if err := encodeOne(ecds[w], i, list); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return parts, nil
}

// transforms returns the term's encoded parts: those kept at compile time,
// or (lazy weights) parts encoded now with ecds, for one evaluation.
func (t *linTerm) transforms(params ckks.Parameters, ecds []*ckks.Encoder) ([]lintrans.LinearTransformation, error) {
	if t.parts != nil {
		return t.parts, nil
	}
	if t.diags == nil || len(ecds) == 0 {
		return nil, fmt.Errorf("linear term on value %d has neither encoded weights nor diagonals", t.in)
	}
	return t.encodeParts(params, ecds)
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

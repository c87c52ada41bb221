package he

import (
	"fmt"
	"math/bits"

	"github.com/hegate/hegate/he/ir"
)

// Level planning. Every node consumes its depth in levels (linear and
// square one, a polynomial ceil(log2(d+1))); the output leaves at level 0.
// Nodes run as late (as low) as possible: a value is produced at the
// highest level any reader needs, and each reader drops its copy to its
// own level, so the two branches of a residual block meet at one level
// without spending any. A bootstrap node would reset the level of a value;
// the planner is where it will be placed.

type levelPlan struct {
	nodeLevel  []int // per node: the level its inputs enter at
	valueLevel []int // per value: the level it is produced at
	inputLevel int
}

func planLevels(c *circuit) levelPlan {
	req := make([]int, len(c.values))
	for i := range req {
		req[i] = -1
	}
	req[c.output] = 0
	lp := levelPlan{nodeLevel: make([]int, len(c.nodes))}
	for i := len(c.nodes) - 1; i >= 0; i-- {
		n := c.nodes[i]
		in := max(req[n.out], 0) + n.depth()
		lp.nodeLevel[i] = in
		for _, v := range n.in {
			req[v] = max(req[v], in)
		}
	}
	lp.valueLevel = req
	lp.inputLevel = req[c.input]
	return lp
}

// depthReport lists, for a compile report, the depth each node adds.
func depthReport(c *circuit, lp levelPlan) string {
	s := ""
	for i, n := range c.nodes {
		s += fmt.Sprintf("\n  %s %q at level %d, depth %d", n.kind, n.name, lp.nodeLevel[i], n.depth())
	}
	return s
}

// layout places the elements of one value in the slots of a ciphertext.
type layout struct {
	slots []int // slot of each logical element
	// strided describes [C,H,W] layouts slot = c·cs + y·rs + x·xs (zero
	// for other layouts).
	cs, rs, xs int
	// period: the content repeats with this period across the n slots (0:
	// it does not, the other slots hold zeros or garbage that no reader
	// looks at).
	period int
}

func (l *layout) span() int {
	m := 0
	for _, s := range l.slots {
		m = max(m, s+1)
	}
	return m
}

func compactLayout(shape []int) *layout {
	l := &layout{slots: make([]int, ir.Prod(shape))}
	for i := range l.slots {
		l.slots[i] = i
	}
	if len(shape) == 3 {
		l.cs, l.rs, l.xs = shape[1]*shape[2], shape[2], 1
	}
	return l
}

func stridedLayout(shape []int, cs, rs, xs int) *layout {
	c, h, w := shape[0], shape[1], shape[2]
	l := &layout{slots: make([]int, c*h*w), cs: cs, rs: rs, xs: xs}
	for ch := 0; ch < c; ch++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				l.slots[(ch*h+y)*w+x] = ch*cs + y*rs + x*xs
			}
		}
	}
	return l
}

// injective reports whether no two elements share a slot.
func (l *layout) injective() bool {
	seen := make(map[int]bool, len(l.slots))
	for _, s := range l.slots {
		if seen[s] {
			return false
		}
		seen[s] = true
	}
	return true
}

// anchorLayout puts each output row in the slot of the first input element
// it reads through its first term (for max pooling, whose intermediate
// values then sit where their windows are, so the combinations need few
// rotations). Nil when two rows would share a slot.
func anchorLayout(n *cnode, size int, in *layout) *layout {
	l := &layout{slots: make([]int, size)}
	for i := range l.slots {
		l.slots[i] = -1
	}
	for _, e := range n.terms[0].w {
		s := in.slots[e.Col]
		if l.slots[e.Row] < 0 || s < l.slots[e.Row] {
			l.slots[e.Row] = s
		}
	}
	for _, s := range l.slots {
		if s < 0 {
			return nil
		}
	}
	if !l.injective() {
		return nil
	}
	return l
}

// countDiagonals is the number of distinct diagonals (col slot − row slot)
// of a term between two layouts, a proxy for its cost.
func countDiagonals(t term, in, out *layout, n int) int {
	d := map[int]bool{}
	for _, e := range t.w {
		d[((in.slots[e.Col]-out.slots[e.Row])%n+n)%n] = true
	}
	return len(d)
}

// chooseLayouts gives every value a layout. The input's comes from the
// packing; a linear node picks, among compact, channel-padded, strided
// (inheriting its input's grid, so a strided convolution keeps constant
// diagonals) and anchored layouts, the one with the fewest diagonals; squares
// and polynomials keep their input's layout. maxSlots bounds every layout.
func chooseLayouts(c *circuit, input *layout, maxSlots int) ([]*layout, error) {
	ls := make([]*layout, len(c.values))
	ls[c.input] = input
	for _, n := range c.nodes {
		v := c.values[n.out]
		if n.kind != kindLinear {
			ls[n.out] = ls[n.in[0]]
			if n.kind == kindMul && !sameLayout(ls[n.in[0]], ls[n.in[1]]) {
				return nil, fmt.Errorf("node %q multiplies values laid out differently (a compiler bug)", n.name)
			}
			continue
		}
		var cands []*layout
		cands = append(cands, compactLayout(v.shape))
		if n.out != c.output {
			if len(v.shape) == 3 {
				if p := nextPow2(v.shape[1] * v.shape[2]); p != v.shape[1]*v.shape[2] {
					cands = append(cands, stridedLayout(v.shape, p, v.shape[2], 1))
				}
				in := ls[n.in[0]]
				ish := c.values[n.in[0]].shape
				if in.cs > 0 && len(ish) == 3 && v.shape[1] > 0 && v.shape[2] > 0 {
					sh, sw := max(ish[1]/v.shape[1], 1), max(ish[2]/v.shape[2], 1)
					if l := stridedLayout(v.shape, in.cs, in.rs*sh, in.xs*sw); l.injective() && (v.shape[1]-1)*in.rs*sh+(v.shape[2]-1)*in.xs*sw < in.cs {
						cands = append(cands, l)
					}
				}
			}
			if l := anchorLayout(n, v.size, ls[n.in[0]]); l != nil {
				if len(v.shape) == 3 {
					l.cs, l.rs, l.xs = anchorStrides(l, v.shape)
				}
				cands = append(cands, l)
			}
		}
		var best *layout
		bestCost := -1
		for _, l := range cands {
			if l.span() > maxSlots {
				continue
			}
			n2 := nextPow2(max(l.span(), 2))
			cost := 0
			for _, t := range n.terms {
				n2 = max(n2, nextPow2(ls[t.in].span()))
			}
			for _, t := range n.terms {
				cost += countDiagonals(t, ls[t.in], l, n2)
			}
			if best == nil || cost < bestCost {
				best, bestCost = l, cost
			}
		}
		if best == nil {
			return nil, fmt.Errorf("value of shape %v (node %q) does not fit %d slots; values spanning several ciphertexts are not supported yet", v.shape, n.name, maxSlots)
		}
		ls[n.out] = best
	}
	return ls, nil
}

// anchorStrides recovers (cs, rs, xs) when an anchored [C,H,W] layout is
// strided, so that readers may inherit it; zeros otherwise.
func anchorStrides(l *layout, shape []int) (int, int, int) {
	c, h, w := shape[0], shape[1], shape[2]
	base := l.slots[0]
	cs, rs, xs := 0, 0, 0
	if c > 1 {
		cs = l.slots[h*w] - base
	}
	if h > 1 {
		rs = l.slots[w] - base
	}
	if w > 1 {
		xs = l.slots[1] - base
	}
	if base != 0 {
		return 0, 0, 0
	}
	s := stridedLayout(shape, cs, rs, xs)
	for i := range s.slots {
		if s.slots[i] != l.slots[i] {
			return 0, 0, 0
		}
	}
	return cs, rs, xs
}

func nextPow2(x int) int {
	if x <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(x-1))
}

func sameLayout(a, b *layout) bool {
	if len(a.slots) != len(b.slots) || a.period != b.period {
		return false
	}
	for i := range a.slots {
		if a.slots[i] != b.slots[i] {
			return false
		}
	}
	return true
}

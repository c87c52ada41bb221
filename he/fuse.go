package he

import (
	"sort"

	"github.com/hegate/hegate/he/ir"
)

// fuse multiplies linear nodes into the linear nodes that read them, so a
// chain conv → BatchNorm → activation shift costs one level, and the scale
// of a degree-2 activation joins the layers after it. A linear node is fused
// into its readers when they are all linear and either there is one reader,
// or the node is diagonal (element-wise), so that duplicating it into each
// reader adds no work. The graph output is never fused away.
func (c *circuit) fuse() {
	for {
		cons := c.consumers()
		changed := false
		for i, n := range c.nodes {
			if n.kind != kindLinear || n.out == c.output {
				continue
			}
			users := cons[n.out]
			if len(users) == 0 {
				continue
			}
			ok := len(users) == 1 || n.isDiagonal()
			for _, u := range users {
				ok = ok && c.nodes[u].kind == kindLinear && productSize(c.nodes[u], n) <= maxFusedEntries
			}
			if !ok {
				continue
			}
			for _, u := range users {
				c.nodes[u].substitute(n)
			}
			c.nodes = append(c.nodes[:i], c.nodes[i+1:]...)
			changed = true
			break
		}
		if !changed {
			break
		}
	}
	c.absorbDiagonals()
	c.prune()
}

// absorbDiagonals lets an element-wise linear node (the normalisation in
// front of an approximation, say) whose input comes from a linear node
// that other nodes also read compute that node again, fused with itself:
// the work of one more transform buys a level.
func (c *circuit) absorbDiagonals() {
	for {
		prod := map[int]*cnode{}
		for _, n := range c.nodes {
			prod[n.out] = n
		}
		changed := false
		for _, n := range c.nodes {
			if n.kind != kindLinear || !n.isDiagonal() {
				continue
			}
			if p := prod[n.terms[0].in]; p != nil && p.kind == kindLinear && productSize(n, p) <= maxFusedEntries {
				n.substitute(p)
				changed = true
			}
		}
		if !changed {
			return
		}
	}
}

// maxFusedEntries bounds the work of one fusion (the entries the sparse
// product visits): beyond it, the two linear nodes stay apart and cost a
// level more, rather than the compiler minutes and gigabytes.
const maxFusedEntries = 1 << 24

// productSize is the number of products substituting p into n visits.
func productSize(n, p *cnode) int {
	rows := map[int]int{}
	for _, t := range p.terms {
		for _, e := range t.w {
			rows[e.Row]++
		}
	}
	size := 0
	for _, t := range n.terms {
		if t.in != p.out {
			continue
		}
		for _, e := range t.w {
			size += rows[e.Col]
		}
	}
	return size
}

// prune removes nodes whose outputs nothing reads.
func (c *circuit) prune() {
	for {
		cons := c.consumers()
		kept := c.nodes[:0]
		removed := false
		for _, n := range c.nodes {
			if n.out != c.output && len(cons[n.out]) == 0 {
				removed = true
				continue
			}
			kept = append(kept, n)
		}
		c.nodes = kept
		if !removed {
			return
		}
	}
}

// isDiagonal reports whether the node is element-wise: one term, every
// weight on the diagonal.
func (n *cnode) isDiagonal() bool {
	if len(n.terms) != 1 {
		return false
	}
	for _, e := range n.terms[0].w {
		if e.Row != e.Col {
			return false
		}
	}
	return true
}

// substitute replaces the reads of p's output in n by p's own terms.
func (n *cnode) substitute(p *cnode) {
	var kept []term
	var added []term
	// The fused node stays a convolution only when n is an element-wise
	// map of the convolution's whole output.
	convOK := n.conv == nil && p.conv != nil && len(n.terms) == 1 && len(n.bias) == len(p.bias)
	for _, t := range n.terms {
		if t.in != p.out {
			kept = append(kept, t)
			continue
		}
		for _, e := range t.w {
			n.bias[e.Row] += e.W * p.bias[e.Col]
		}
		for _, pt := range p.terms {
			added = append(added, term{in: pt.in, w: matmul(t.w, pt.w)})
		}
		if convOK {
			n.conv = scaleConv(p.conv, t.w, n.bias)
		}
	}
	if !convOK {
		n.conv = nil
	}
	n.terms = mergeTerms(append(kept, added...))
	n.in = n.in[:0]
	for _, t := range n.terms {
		n.in = append(n.in, t.in)
	}
	n.name = p.name + "+" + n.name
}

// scaleConv is conv followed by the diagonal d (and then the bias of the
// fused node): still a convolution when d is constant per output channel.
func scaleConv(conv *ir.Conv, d []ir.Entry, bias []float64) *ir.Conv {
	rows := len(bias)
	if rows%conv.OutChannels != 0 {
		return nil
	}
	per := rows / conv.OutChannels
	scale := make([]float64, rows)
	for _, e := range d {
		if e.Row != e.Col {
			return nil
		}
		scale[e.Row] = e.W
	}
	out := *conv
	out.Weights = append([]float64(nil), conv.Weights...)
	out.Bias = make([]float64, conv.OutChannels)
	wpo := len(conv.Weights) / conv.OutChannels
	for o := 0; o < conv.OutChannels; o++ {
		s := scale[o*per]
		for k := 0; k < per; k++ {
			if scale[o*per+k] != s || bias[o*per+k] != bias[o*per] {
				return nil
			}
		}
		for k := 0; k < wpo; k++ {
			out.Weights[o*wpo+k] *= s
		}
		out.Bias[o] = bias[o*per]
	}
	return &out
}

// matmul is the sparse product a·b.
func matmul(a, b []ir.Entry) []ir.Entry {
	rows := map[int][]ir.Entry{}
	for _, e := range b {
		rows[e.Row] = append(rows[e.Row], e)
	}
	acc := map[[2]int]float64{}
	for _, e := range a {
		for _, f := range rows[e.Col] {
			acc[[2]int{e.Row, f.Col}] += e.W * f.W
		}
	}
	return entriesOf(acc)
}

func entriesOf(acc map[[2]int]float64) []ir.Entry {
	out := make([]ir.Entry, 0, len(acc))
	for k, v := range acc {
		if v != 0 {
			out = append(out, ir.Entry{Row: k[0], Col: k[1], W: v})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Row != out[j].Row {
			return out[i].Row < out[j].Row
		}
		return out[i].Col < out[j].Col
	})
	return out
}

// mergeTerms sums the terms that read the same value, ordered by value.
func mergeTerms(ts []term) []term {
	by := map[int][]term{}
	for _, t := range ts {
		by[t.in] = append(by[t.in], t)
	}
	ins := make([]int, 0, len(by))
	for v := range by {
		ins = append(ins, v)
	}
	sort.Ints(ins)
	out := make([]term, 0, len(ins))
	for _, v := range ins {
		group := by[v]
		if len(group) == 1 {
			out = append(out, group[0])
			continue
		}
		acc := map[[2]int]float64{}
		for _, t := range group {
			for _, e := range t.w {
				acc[[2]int{e.Row, e.Col}] += e.W
			}
		}
		out = append(out, term{in: v, w: entriesOf(acc)})
	}
	return out
}

// ensureLinearAround makes the outputs of squares and products feed only
// linear nodes, and the output come from a linear node, inserting
// identities where needed (the compiler corrects the scale of a square or
// a product in the linear step that reads it).
func (c *circuit) ensureLinearAround() {
	prod := map[int]*cnode{}
	for _, n := range c.nodes {
		prod[n.out] = n
	}
	var out []*cnode
	rewire := map[int]int{} // nonlinear output → identity output, for nonlinear readers
	for _, n := range c.nodes {
		if n.kind != kindLinear {
			for k, v := range n.in {
				// A square's or product's output has a scale other than
				// the default: only a linear step can take it (and
				// correct it). The graph input, linear and polynomial
				// outputs have the default scale.
				if p := prod[v]; p == nil || (p.kind != kindSquare && p.kind != kindMul) {
					continue
				}
				if r, ok := rewire[v]; ok {
					n.in[k] = r
					continue
				}
				id := c.newValue(c.values[v].shape)
				out = append(out, &cnode{kind: kindLinear, name: "identity", in: []int{v}, out: id,
					terms: []term{{in: v, w: identity(c.values[v].size)}}, bias: make([]float64, c.values[v].size)})
				rewire[v] = id
				n.in[k] = id
			}
		}
		out = append(out, n)
	}
	c.nodes = out
	if p := c.producerNode(c.output); p == nil || p.kind != kindLinear {
		v := c.output
		id := c.newValue(c.values[v].shape)
		c.nodes = append(c.nodes, &cnode{kind: kindLinear, name: "output", in: []int{v}, out: id,
			terms: []term{{in: v, w: identity(c.values[v].size)}}, bias: make([]float64, c.values[v].size)})
		c.output = id
	}
}

// producerThrough is the producer of v in prod, looking through bootstraps
// (which change no value).
func (c *circuit) producerThrough(prod map[int]*cnode, v int) *cnode {
	p := prod[v]
	for p != nil && p.kind == kindBootstrap {
		p = prod[p.in[0]]
	}
	return p
}

func (c *circuit) producerNode(v int) *cnode {
	if i := c.producer(v); i >= 0 {
		return c.nodes[i]
	}
	return nil
}

// clone copies the circuit's structure so that packing can rewrite a copy
// (matrix entries are shared: nothing changes them in place).
func (c *circuit) clone() *circuit {
	out := &circuit{input: c.input, output: c.output, values: append([]cvalue(nil), c.values...)}
	for _, n := range c.nodes {
		cp := *n
		cp.in = append([]int(nil), n.in...)
		cp.terms = append([]term(nil), n.terms...)
		cp.bias = append([]float64(nil), n.bias...)
		out.nodes = append(out.nodes, &cp)
	}
	return out
}

package ir

import (
	"fmt"
	"math"

	"github.com/hegate/hegate"
)

// Run evaluates the graph in float64 on one input (the input's shape, in
// row-major order) with exact ReLU and max: the reference every encrypted
// result and every import is checked against. The graph must be valid.
func (g *Graph) Run(x []float64) ([]float64, error) {
	out, err := g.Trace(x, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Trace is Run that also calls visit (when not nil) with every node's
// output as it is computed, before any reader sees it. visit must not keep
// out.Data; it may change it in place, and the readers then see the change
// (a quantizing executor rounds values so).
func (g *Graph) Trace(x []float64, visit func(n *Node, out Tensor)) ([]float64, error) {
	const op = "ir.Run"
	if len(x) != g.InputSize() {
		return nil, hegate.E(op, hegate.KindInvalid, nil, "input has %d values, model %s wants %d (shape %v)", len(x), g.Name, g.InputSize(), g.Input.Shape)
	}
	// Free each value after its last reader, so memory stays at the
	// widest cut of the graph.
	last := map[string]int{}
	for i, n := range g.Nodes {
		for _, in := range n.Inputs {
			last[in] = i
		}
	}
	last[g.Output] = len(g.Nodes)
	vals := map[string]Tensor{g.Input.Name: {Shape: g.Input.Shape, Data: append([]float64(nil), x...)}}
	for i, n := range g.Nodes {
		o, ok := opOf(n.Op)
		if !ok {
			return nil, hegate.E(op, hegate.KindInvalid, nil, "node %q: unknown op %q", n.Name, n.Op)
		}
		in := make([]Tensor, len(n.Inputs))
		for k, name := range n.Inputs {
			t, ok := vals[name]
			if !ok {
				return nil, fmt.Errorf("%s: node %q reads %q, which is not computed yet (was the graph validated?)", op, n.Name, name)
			}
			in[k] = t
		}
		out := o.run(n, in)
		if visit != nil {
			visit(n, out)
		}
		vals[n.Output] = out
		for _, name := range n.Inputs {
			if last[name] == i {
				delete(vals, name)
			}
		}
	}
	return vals[g.Output].Data, nil
}

// ApplyTail applies the graph's client-side tail ops to a decrypted output.
func (g *Graph) ApplyTail(y []float64) []float64 {
	out := append([]float64(nil), y...)
	for _, t := range g.Tail {
		switch t {
		case TailSoftmax, TailLogSoftmax:
			m := math.Inf(-1)
			for _, v := range out {
				m = math.Max(m, v)
			}
			sum := 0.0
			for _, v := range out {
				sum += math.Exp(v - m)
			}
			for i, v := range out {
				if t == TailSoftmax {
					out[i] = math.Exp(v-m) / sum
				} else {
					out[i] = v - m - math.Log(sum)
				}
			}
		case TailArgMax:
			out = []float64{float64(ArgMax(out))}
		}
	}
	return out
}

// ArgMax is the index of the largest value (the first, on ties).
func ArgMax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

package ir

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/hegate/hegate"
)

// Split inference: the device runs the first nodes of a network (the head)
// in the clear on its own data, encrypts the value at the cut, and the
// gateway evaluates the rest (the tail) under encryption. A value is a
// valid cut when the tail reads nothing else of the head: every path from
// the input to the output goes through it (at a residual block, only the
// block's output qualifies).

// Split cuts g after value cut. head computes cut from g's input; tail
// takes cut as its input (same name) and computes g's output. Errors are
// KindInvalid and say why the value cannot be a cut.
func Split(g *Graph, cut string) (head, tail *Graph, err error) {
	const op = "ir.Split"
	shapes, err := g.Shapes()
	if err != nil {
		return nil, nil, err
	}
	shape, ok := shapes[cut]
	if !ok || cut == g.Input.Name {
		return nil, nil, hegate.E(op, hegate.KindInvalid, nil, "model %s has no node output %q to split after", g.Name, cut)
	}
	if cut == g.Output {
		return nil, nil, hegate.E(op, hegate.KindInvalid, nil, "splitting after the output %q leaves nothing to evaluate encrypted", cut)
	}
	if len(shape) != 1 && len(shape) != 3 {
		return nil, nil, hegate.E(op, hegate.KindInvalid, nil, "value %q has shape %v: a cut must be [C,H,W] or [n]", cut, shape)
	}
	// The head: cut's ancestors.
	need := map[string]bool{cut: true}
	for i := len(g.Nodes) - 1; i >= 0; i-- {
		n := g.Nodes[i]
		if need[n.Output] {
			for _, in := range n.Inputs {
				need[in] = true
			}
		}
	}
	headName := g.Name
	if len(headName) > maxNameLen-5 {
		headName = headName[:maxNameLen-5]
	}
	head = &Graph{Name: headName + "-head", Input: g.Input, Output: cut, Source: g.Source}
	tail = &Graph{Name: g.Name, Input: Input{Name: cut, Shape: shape}, Output: g.Output, Tail: g.Tail, Source: g.Source, Training: g.Training}
	headValues := map[string]bool{g.Input.Name: true}
	for _, n := range g.Nodes {
		if need[n.Output] {
			head.Nodes = append(head.Nodes, n)
			headValues[n.Output] = true
		} else {
			tail.Nodes = append(tail.Nodes, n)
		}
	}
	for _, n := range tail.Nodes {
		for _, in := range n.Inputs {
			if in != cut && headValues[in] {
				return nil, nil, hegate.E(op, hegate.KindInvalid, nil,
					"cannot split after %q: node %q of the rest also reads %q, which the device would compute (split at a value every path goes through, such as a residual block's output)", cut, n.Name, in)
			}
		}
	}
	if len(tail.Nodes) == 0 {
		return nil, nil, hegate.E(op, hegate.KindInvalid, nil, "splitting after %q leaves nothing to evaluate encrypted", cut)
	}
	if _, err := head.Shapes(); err != nil {
		return nil, nil, fmt.Errorf("%s: head: %w", op, err)
	}
	if _, err := tail.Shapes(); err != nil {
		return nil, nil, fmt.Errorf("%s: tail: %w", op, err)
	}
	return head, tail, nil
}

// Cuts lists the values g can be split after, in order, with the
// multiply-accumulates the device spends to compute each (its head).
func Cuts(g *Graph) ([]Cut, error) {
	shapes, err := g.Shapes()
	if err != nil {
		return nil, err
	}
	var out []Cut
	macs := int64(0)
	for _, n := range g.Nodes {
		macs += n.MACs(shapes)
		if n.Output == g.Output {
			continue
		}
		if _, _, err := Split(g, n.Output); err == nil {
			out = append(out, Cut{After: n.Output, Shape: shapes[n.Output], HeadMACs: macs})
		}
	}
	return out, nil
}

// Cut is a value a graph can be split after.
type Cut struct {
	After    string `json:"after"`
	Shape    []int  `json:"shape"`
	HeadMACs int64  `json:"head_macs"` // multiply-accumulates of the head, per input
}

// MACs is the number of multiply-accumulates the node computes in float64
// (a measure of the device's work for a head).
func (n *Node) MACs(shapes map[string][]int) int64 {
	out := int64(Prod(shapes[n.Output]))
	switch n.Op {
	case OpConv:
		c := n.Conv
		return out * int64(c.InChannels*c.Kernel[0]*c.Kernel[1])
	case OpDense:
		return int64(n.Dense.In) * int64(n.Dense.Out)
	case OpAvgPool, OpMaxPool:
		return out * int64(n.Pool.Kernel[0]*n.Pool.Kernel[1])
	case OpGlobalAvgPool:
		return int64(Prod(shapes[n.Inputs[0]]))
	case OpPoly:
		return out * int64(len(n.Poly.Coeffs))
	case OpReshape, OpTranspose:
		return 0
	}
	return out
}

// Digest is the hex SHA-256 of what the graph computes: the JSON encoding
// of its input shape, nodes and output (not its name, preprocessing or
// records). A device checks that the head it runs is the one a split model
// was compiled with.
func (g *Graph) Digest() string {
	b, err := json.Marshal(struct {
		Input  []int   `json:"input"`
		Nodes  []*Node `json:"nodes"`
		Output string  `json:"output"`
	}{g.Input.Shape, g.Nodes, g.Output})
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Clone returns a deep copy of g (through its JSON form).
func (g *Graph) Clone() *Graph {
	b, err := json.Marshal(g)
	if err != nil {
		return nil
	}
	var c Graph
	if err := json.Unmarshal(b, &c); err != nil {
		return nil
	}
	c.Input.Shape = slices.Clone(g.Input.Shape)
	return &c
}

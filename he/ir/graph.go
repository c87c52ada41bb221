package ir

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/hegate/hegate"
)

// OpType names an op of the IR.
type OpType string

// The ops the IR knows. Each is defined in one file: its attributes, its
// shape rule and its float64 semantics.
const (
	OpConv          OpType = "conv"          // 2-D convolution with bias over [C,H,W] (conv.go)
	OpDense         OpType = "dense"         // y = W x + b over [n] (dense.go)
	OpAffine        OpType = "affine"        // per-channel y = a·x + b, e.g. BatchNormalization (affine.go)
	OpRelu          OpType = "relu"          // max(x, 0) element-wise (activation.go)
	OpPoly          OpType = "poly"          // element-wise polynomial Σ c_i x^i (activation.go)
	OpAdd           OpType = "add"           // element-wise sum of two values of one shape (add.go)
	OpAvgPool       OpType = "avgpool"       // average pooling over [C,H,W] (pool.go)
	OpMaxPool       OpType = "maxpool"       // max pooling over [C,H,W] (pool.go)
	OpGlobalAvgPool OpType = "globalavgpool" // [C,H,W] to [C] by averaging (pool.go)
	OpReshape       OpType = "reshape"       // same data, another shape; Flatten is a reshape (shape.go)
	OpTranspose     OpType = "transpose"     // permutes the dimensions (shape.go)
)

// OpTypes lists every op the IR knows, for messages.
func OpTypes() []OpType {
	return []OpType{OpConv, OpDense, OpAffine, OpRelu, OpPoly, OpAdd, OpAvgPool, OpMaxPool, OpGlobalAvgPool, OpReshape, OpTranspose}
}

// Graph is a network: one input, nodes in topological order, one output.
type Graph struct {
	Name  string `json:"name"`
	Input Input  `json:"input"`
	// Nodes are in topological order: a node reads only the graph input
	// and outputs of nodes before it, so the graph is acyclic by
	// construction.
	Nodes []*Node `json:"nodes"`
	// Output names the value the server computes (and encrypts back).
	Output string `json:"output"`
	// Tail lists ops the client applies after decryption, in order (for
	// example a trailing Softmax moved off the encrypted circuit).
	Tail []TailOp `json:"tail,omitempty"`
	// Source records where the graph came from (importer, producer,
	// opset); Training how its weights were obtained. Both are for people.
	Source   map[string]any `json:"source,omitempty"`
	Training map[string]any `json:"training,omitempty"`
}

// Input is the graph's input value.
type Input struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"` // without a batch dimension: [C,H,W], [H,W,C] or [n]
	// Preprocess says how raw data becomes this input. It is stored with
	// the model and applied by the client; the graph starts after it.
	Preprocess *Preprocess `json:"preprocess,omitempty"`
}

// Preprocess maps raw input values (for images, pixels 0..255) to the
// model's input: x = (raw·Scale − Mean) / Std, laid out as Layout.
type Preprocess struct {
	Scale  float64 `json:"scale"`
	Mean   float64 `json:"mean"`
	Std    float64 `json:"std"`
	Layout string  `json:"layout,omitempty"` // "NCHW" (default) or "NHWC": the order of the input's dimensions
}

// Apply maps raw values to model inputs.
func (p *Preprocess) Apply(raw []float64) []float64 {
	out := make([]float64, len(raw))
	for i, v := range raw {
		if p == nil {
			out[i] = v
			continue
		}
		out[i] = (v*p.Scale - p.Mean) / p.Std
	}
	return out
}

// TailOp is an op the client applies to the decrypted output.
type TailOp string

// The tail ops.
const (
	TailSoftmax    TailOp = "softmax"
	TailLogSoftmax TailOp = "log_softmax"
	TailArgMax     TailOp = "argmax"
)

// Node is one op application. Exactly the attribute field matching Op is
// set (none for relu, add and globalavgpool).
type Node struct {
	Name   string   `json:"name"`
	Op     OpType   `json:"op"`
	Inputs []string `json:"inputs"`
	Output string   `json:"output"`

	Conv      *Conv      `json:"conv,omitempty"`
	Dense     *Dense     `json:"dense,omitempty"`
	Affine    *Affine    `json:"affine,omitempty"`
	Poly      *Poly      `json:"poly,omitempty"`
	Pool      *Pool      `json:"pool,omitempty"`
	Reshape   *Reshape   `json:"reshape,omitempty"`
	Transpose *Transpose `json:"transpose,omitempty"`
}

// Limits on graphs from untrusted input.
const (
	MaxGraphBytes  = 256 << 20 // a JSON model file
	MaxNodes       = 2048
	MaxTensorElems = 1 << 22 // elements of any one value or weight tensor
	MaxWeights     = 1 << 25 // weights of the whole graph
	maxNameLen     = 256
)

// op is what every op of the IR defines, in its own file.
type op interface {
	// attr reports whether the node carries its op's attribute (and no other).
	attr(n *Node) bool
	// arity is the number of inputs.
	arity() int
	// shape checks the attributes against the input shapes and returns the
	// output shape. Errors are plain messages; Validate adds the context.
	shape(n *Node, in [][]int) ([]int, error)
	// run computes the output in float64. Shapes are checked.
	run(n *Node, in []Tensor) Tensor
}

func opOf(t OpType) (op, bool) {
	switch t {
	case OpConv:
		return convOp{}, true
	case OpDense:
		return denseOp{}, true
	case OpAffine:
		return affineOp{}, true
	case OpRelu:
		return reluOp{}, true
	case OpPoly:
		return polyOp{}, true
	case OpAdd:
		return addOp{}, true
	case OpAvgPool:
		return avgPoolLinear{poolOp{max: false}}, true
	case OpMaxPool:
		return poolOp{max: true}, true
	case OpGlobalAvgPool:
		return gapOp{}, true
	case OpReshape:
		return reshapeOp{}, true
	case OpTranspose:
		return transposeOp{}, true
	}
	return nil, false
}

// attrCount is the number of attribute fields set on n.
func (n *Node) attrCount() int {
	c := 0
	for _, set := range []bool{n.Conv != nil, n.Dense != nil, n.Affine != nil, n.Poly != nil, n.Pool != nil, n.Reshape != nil, n.Transpose != nil} {
		if set {
			c++
		}
	}
	return c
}

// Tensor is a value with its shape.
type Tensor struct {
	Shape []int
	Data  []float64
}

// Read decodes and validates a graph from JSON, reading at most
// MaxGraphBytes. Errors are KindInvalid or KindTooLarge and say what is wrong.
func Read(r io.Reader) (*Graph, error) {
	const op = "ir.Read"
	lr := &io.LimitedReader{R: r, N: MaxGraphBytes + 1}
	var g Graph
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		if lr.N <= 0 {
			return nil, hegate.E(op, hegate.KindTooLarge, err, "model file exceeds %d bytes", MaxGraphBytes)
		}
		return nil, hegate.E(op, hegate.KindInvalid, err, "model file is not valid JSON: %v", err)
	}
	if _, err := g.Shapes(); err != nil {
		return nil, err
	}
	return &g, nil
}

// Write encodes g as JSON.
func Write(w io.Writer, g *Graph) error {
	return json.NewEncoder(w).Encode(g)
}

// Validate checks the whole graph: names, order, attributes, shapes, sizes
// and that every weight is finite. Errors are KindInvalid and name the node.
func (g *Graph) Validate() error {
	_, err := g.Shapes()
	return err
}

// Shapes validates the graph and returns the shape of every value by name.
func (g *Graph) Shapes() (map[string][]int, error) {
	const op = "ir.Validate"
	bad := func(format string, args ...any) error {
		return hegate.E(op, hegate.KindInvalid, nil, format, args...)
	}
	if g.Name == "" || len(g.Name) > maxNameLen {
		return nil, bad("model name must have 1 to %d characters", maxNameLen)
	}
	if err := checkShape(g.Input.Shape); err != nil {
		return nil, bad("input %q: shape %v %v", g.Input.Name, g.Input.Shape, err)
	}
	if len(g.Input.Shape) != 1 && len(g.Input.Shape) != 3 {
		return nil, bad("input %q: shape %v: want [C,H,W] or [n] (no batch dimension)", g.Input.Name, g.Input.Shape)
	}
	if p := g.Input.Preprocess; p != nil {
		if !finite(p.Scale, p.Mean, p.Std) || p.Std == 0 || p.Scale == 0 {
			return nil, bad("input preprocessing: scale and std must be finite and non-zero")
		}
		if p.Layout != "" && p.Layout != "NCHW" && p.Layout != "NHWC" {
			return nil, bad("input preprocessing: layout %q: want NCHW or NHWC", p.Layout)
		}
	}
	if len(g.Nodes) == 0 || len(g.Nodes) > MaxNodes {
		return nil, bad("model has %d nodes: want 1 to %d", len(g.Nodes), MaxNodes)
	}
	shapes := map[string][]int{}
	if g.Input.Name == "" {
		return nil, bad("input has no name")
	}
	shapes[g.Input.Name] = g.Input.Shape
	nodeNames := map[string]bool{}
	weights := 0
	for i, n := range g.Nodes {
		if n == nil {
			return nil, bad("node %d is null", i)
		}
		where := fmt.Sprintf("node %d (%q, %s)", i, n.Name, n.Op)
		if n.Name == "" || len(n.Name) > maxNameLen || nodeNames[n.Name] {
			return nil, bad("%s: node names must be unique and have 1 to %d characters", where, maxNameLen)
		}
		nodeNames[n.Name] = true
		o, ok := opOf(n.Op)
		if !ok {
			return nil, bad("%s: unknown op %q (known: %s)", where, n.Op, opList())
		}
		if !o.attr(n) {
			return nil, bad("%s: attributes missing or mixed with another op's", where)
		}
		if len(n.Inputs) != o.arity() {
			return nil, bad("%s: %d inputs, want %d", where, len(n.Inputs), o.arity())
		}
		in := make([][]int, len(n.Inputs))
		for k, name := range n.Inputs {
			s, ok := shapes[name]
			if !ok {
				return nil, bad("%s: input %q is not the graph input or the output of an earlier node (nodes must be in topological order, and the graph acyclic)", where, name)
			}
			in[k] = s
		}
		if n.Output == "" || len(n.Output) > maxNameLen {
			return nil, bad("%s: output must have a name of 1 to %d characters", where, maxNameLen)
		}
		if _, dup := shapes[n.Output]; dup {
			return nil, bad("%s: output %q is already defined (every value has one producer)", where, n.Output)
		}
		out, err := o.shape(n, in)
		if err != nil {
			return nil, bad("%s: %v", where, err)
		}
		if err := checkShape(out); err != nil {
			return nil, bad("%s: output shape %v %v", where, out, err)
		}
		weights += n.weightCount()
		if weights > MaxWeights {
			return nil, bad("%s: the model has more than %d weights", where, MaxWeights)
		}
		shapes[n.Output] = out
	}
	if _, ok := shapes[g.Output]; !ok || g.Output == g.Input.Name {
		return nil, bad("output %q is not the output of a node", g.Output)
	}
	for _, t := range g.Tail {
		switch t {
		case TailSoftmax, TailLogSoftmax, TailArgMax:
		default:
			return nil, bad("tail op %q: want softmax, log_softmax or argmax", t)
		}
	}
	return shapes, nil
}

func opList() string {
	var s []string
	for _, t := range OpTypes() {
		s = append(s, string(t))
	}
	return strings.Join(s, ", ")
}

func (n *Node) weightCount() int {
	switch {
	case n.Conv != nil:
		return len(n.Conv.Weights) + len(n.Conv.Bias)
	case n.Dense != nil:
		return len(n.Dense.Weights) + len(n.Dense.Bias)
	case n.Affine != nil:
		return len(n.Affine.Scale) + len(n.Affine.Shift)
	case n.Poly != nil:
		return len(n.Poly.Coeffs)
	}
	return 0
}

// InputSize is the number of input values.
func (g *Graph) InputSize() int { return Prod(g.Input.Shape) }

// OutputShape is the shape of the output value. The graph must be valid.
func (g *Graph) OutputShape() []int {
	s, err := g.Shapes()
	if err != nil {
		return nil
	}
	return s[g.Output]
}

// Producer returns the node that computes value name, or nil for the input.
func (g *Graph) Producer(name string) *Node {
	for _, n := range g.Nodes {
		if n.Output == name {
			return n
		}
	}
	return nil
}

// Prod is the product of the dimensions.
func Prod(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// CheckShape checks a shape from untrusted input: 1 to 4 dimensions, each
// positive, the product at most MaxTensorElems, without overflowing on
// hostile dimensions.
func CheckShape(shape []int) error { return checkShape(shape) }

func checkShape(shape []int) error {
	if len(shape) == 0 || len(shape) > 4 {
		return fmt.Errorf("has %d dimensions: want 1 to 4", len(shape))
	}
	elems := 1
	for _, d := range shape {
		if d <= 0 || d > MaxTensorElems {
			return fmt.Errorf("has a bad dimension %d", d)
		}
		// Each factor is at most MaxTensorElems, so checking after every
		// step keeps the product far from overflowing.
		if elems *= d; elems > MaxTensorElems {
			return fmt.Errorf("has more than %d elements", MaxTensorElems)
		}
	}
	return nil
}

func finite(vs ...float64) bool {
	for _, x := range vs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

func finiteSlices(vs ...[]float64) error {
	for _, v := range vs {
		for _, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("weight %v is not finite", x)
			}
		}
	}
	return nil
}

// shapeEq reports whether two shapes are equal.
func shapeEq(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Chain builds a graph whose nodes each read the previous one's output
// (the first reads the input "input"), naming nodes and values that have
// no name. It does not validate.
func Chain(name string, input []int, nodes ...*Node) *Graph {
	g := &Graph{Name: name, Input: Input{Name: "input", Shape: input}}
	prev := "input"
	for i, n := range nodes {
		if n.Name == "" {
			n.Name = fmt.Sprintf("%s%d", n.Op, i)
		}
		if n.Output == "" {
			n.Output = n.Name
		}
		if n.Inputs == nil {
			n.Inputs = []string{prev}
		}
		prev = n.Output
		g.Nodes = append(g.Nodes, n)
	}
	g.Output = prev
	return g
}

package onnx

import (
	"fmt"
	"strings"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/he/onnx/internal/onnxpb"
)

// importer holds the state of one import.
type importer struct {
	opts   Options
	model  *onnxpb.ModelProto
	graph  *onnxpb.GraphProto
	sha256 string
	opset  int64
	size   int // bytes of the model file

	budget int // elements the import may materialize (see budget.go)
	spent  int // elements materialized so far

	inits    map[string]*onnxpb.TensorProto // checked, decoded on use
	consts   map[string]*constant           // decoded and folded constants
	input    string                         // the ONNX graph input
	inShape  []int                          // its shape without the batch dimension
	nodes    []*node                        // in file order
	order    []*node                        // in topological order
	producer map[string]*node               // value name to the node computing it
	canon    map[string]string              // value names removed with Identity/Dropout to what they stand for
	readers  map[string]int                 // canonical value name to the number of readers (graph output included)
	output   string                         // the canonical graph output
	tail     []*node                        // trailing Softmax/LogSoftmax/ArgMax, in order
	live     map[*node]bool                 // nodes the circuit output depends on: the ones converted
	uses     map[string]int                 // canonical value name to its live readers not yet converted

	owned   map[*float64]bool // constant data (by first element) an IR node holds
	vals    map[string]*value // computed values by ONNX name
	irNames map[string]bool   // IR value names in use
	irNodes []*ir.Node
	layout  string // "NCHW" or "NHWC" for rank-4 inputs
}

// node is an ONNX node with what the importer knows about it.
type node struct {
	idx    int
	p      *onnxpb.NodeProto
	name   string // unique: the ONNX name or a generated one
	op     string
	spec   *opSpec
	attrs  map[string]*onnxpb.AttributeProto
	inputs []string // canonical names; "" for an absent optional input
	alias  bool     // Identity or Dropout: removed, its output stands for its input
	isTail bool
}

// value is a value computed by the circuit.
type value struct {
	name  string   // IR name
	shape []int    // IR shape: no batch dimension
	node  *ir.Node // the IR node computing it; nil for the graph input
	onnx  string   // the ONNX value it was made for
}

// where is the prefix of messages about the node.
func (n *node) where() string {
	return fmt.Sprintf("node %d (%s, %s)", n.idx, short(n.name), opName(n.op))
}

// errf is a KindInvalid error about the node.
func (n *node) errf(format string, args ...any) error {
	return hegate.E(opImport, hegate.KindInvalid, nil, n.where()+": "+format, args...)
}

func (im *importer) run() (*ir.Graph, error) {
	if err := im.checkModel(); err != nil {
		return nil, err
	}
	if err := im.readInitializers(); err != nil {
		return nil, err
	}
	if err := im.readIO(); err != nil {
		return nil, err
	}
	if err := im.readNodes(); err != nil {
		return nil, err
	}
	if err := im.sort(); err != nil {
		return nil, err
	}
	if err := im.resolve(); err != nil {
		return nil, err
	}
	if err := im.findTail(); err != nil {
		return nil, err
	}
	im.findLive()
	if err := im.convert(); err != nil {
		return nil, err
	}
	return im.finish()
}

// checkModel checks the model header: a graph and a supported opset.
func (im *importer) checkModel() error {
	m := im.model
	im.graph = m.GetGraph()
	if im.graph == nil {
		return invalid("the file has no graph; it is not an ONNX model")
	}
	found := false
	for _, o := range m.GetOpsetImport() {
		switch o.GetDomain() {
		case "", "ai.onnx":
			if found && o.GetVersion() != im.opset {
				return invalid("the model imports the default ONNX opset twice (versions %d and %d)", im.opset, o.GetVersion())
			}
			found = true
			im.opset = o.GetVersion()
		}
	}
	if !found {
		return invalid("the model does not import the default ONNX opset; export it with an opset from %d to %d", minOpset, maxOpset)
	}
	if im.opset < minOpset || im.opset > maxOpset {
		return invalid("the model uses ONNX opset %d; opsets %d to %d are supported: export it with opset_version in that range or convert it with onnx.version_converter", im.opset, minOpset, maxOpset)
	}
	if len(im.graph.GetSparseInitializer()) > 0 {
		return invalid("the model has sparse initializers, which are not supported; store the weights as dense tensors")
	}
	return nil
}

// readInitializers checks every initializer's metadata; the data is decoded
// when a node uses it.
func (im *importer) readInitializers() error {
	im.inits = map[string]*onnxpb.TensorProto{}
	im.consts = map[string]*constant{}
	for k, t := range im.graph.GetInitializer() {
		name := t.GetName()
		if name == "" {
			return invalid("initializer %d has no name", k)
		}
		if _, dup := im.inits[name]; dup {
			return invalid("initializer %s is defined twice", short(name))
		}
		if err := checkTensor(t); err != nil {
			return invalid("initializer %s %v", short(name), err)
		}
		im.inits[name] = t
	}
	return nil
}

// readIO finds the one graph input that is not an initializer, checks its
// shape, and the one graph output.
func (im *importer) readIO() error {
	var inputs []*onnxpb.ValueInfoProto
	for _, in := range im.graph.GetInput() {
		if _, ok := im.inits[in.GetName()]; ok {
			continue // older exporters list the initializers as inputs too
		}
		inputs = append(inputs, in)
	}
	if len(inputs) != 1 {
		names := make([]string, 0, len(inputs))
		for k, in := range inputs {
			if k == 4 {
				names = append(names, "...")
				break
			}
			names = append(names, short(in.GetName()))
		}
		return invalid("the graph has %d inputs (%s) besides its initializers; exactly one input is supported", len(inputs), strings.Join(names, ", "))
	}
	in := inputs[0]
	im.input = in.GetName()
	if im.input == "" {
		return invalid("the graph input has no name")
	}
	where := "graph input " + short(im.input)
	tt := in.GetType().GetTensorType()
	if tt == nil {
		return invalid("%s is not a tensor", where)
	}
	if et := tt.GetElemType(); et != dtFloat && et != dtDouble {
		return invalid("%s has element type %s; the input must be FLOAT or DOUBLE", where, dtypeName(et))
	}
	if tt.GetShape() == nil {
		return invalid("%s has no shape; export the model with a fixed input shape such as [N,C,H,W]", where)
	}
	dims := tt.GetShape().GetDim()
	if len(dims) != 2 && len(dims) != 4 {
		return invalid("%s has %d dimensions; the input must be [N,C,H,W], [N,H,W,C] or [N,n] with the batch dimension first", where, len(dims))
	}
	switch b := dims[0]; {
	case b.GetDimParam() != "":
	case b.GetValue() == nil:
	default:
		if v := b.GetDimValue(); v != 1 && v != 0 && v != -1 {
			return invalid("%s has batch dimension %d; export the model with a dynamic batch dimension or batch size 1", where, v)
		}
	}
	shape := make([]int, len(dims)-1)
	total := 1
	for k, d := range dims[1:] {
		if p := d.GetDimParam(); p != "" {
			return invalid("%s: dimension %d is symbolic (%s); export the model with a fixed input size (only the batch dimension, the first, may be symbolic)", where, k+1, short(p))
		}
		if d.GetValue() == nil {
			return invalid("%s: dimension %d has no size; export the model with a fixed input size", where, k+1)
		}
		v := d.GetDimValue()
		if v <= 0 || v > ir.MaxTensorElems {
			return invalid("%s: dimension %d is %d; it must be from 1 to %d", where, k+1, v, ir.MaxTensorElems)
		}
		shape[k] = int(v)
		if total *= int(v); total > ir.MaxTensorElems {
			return invalid("%s has more than %d values", where, ir.MaxTensorElems)
		}
	}
	im.inShape = shape
	if outs := im.graph.GetOutput(); len(outs) != 1 {
		return invalid("the graph has %d outputs; exactly one output is supported", len(outs))
	}
	if im.graph.GetOutput()[0].GetName() == "" {
		return invalid("the graph output has no name")
	}
	return nil
}

// readNodes checks every node's domain, operator, attributes and arity,
// names the nodes, and maps every value to its producer.
func (im *importer) readNodes() error {
	ps := im.graph.GetNode()
	if len(ps) == 0 {
		return invalid("the graph has no nodes")
	}
	if len(ps) > ir.MaxNodes {
		return invalid("the graph has %d nodes, more than the limit of %d; use a smaller model", len(ps), ir.MaxNodes)
	}
	// Keep the ONNX node names that are usable and unique.
	count := map[string]int{}
	for _, p := range ps {
		count[p.GetName()]++
	}
	used := map[string]bool{}
	im.nodes = make([]*node, len(ps))
	for k, p := range ps {
		n := &node{idx: k, p: p, op: p.GetOpType(), name: p.GetName()}
		if n.name == "" || len(n.name) > 256 || count[n.name] > 1 {
			n.name = ""
		} else {
			used[n.name] = true
		}
		im.nodes[k] = n
	}
	for _, n := range im.nodes {
		if n.name != "" {
			continue
		}
		base := fmt.Sprintf("%s_%d", opName(n.op), n.idx)
		if len(base) > 200 || strings.ContainsAny(base, "\"") {
			base = fmt.Sprintf("node_%d", n.idx)
		}
		name := base
		for s := 2; used[name]; s++ {
			name = fmt.Sprintf("%s_%d", base, s)
		}
		used[name] = true
		n.name = name
	}
	im.producer = map[string]*node{}
	for _, n := range im.nodes {
		if d := n.p.GetDomain(); d != "" && d != "ai.onnx" {
			return n.errf("operator domain %s is not supported (a custom or non-standard operator); only the default ONNX domain is: re-export the model using standard ONNX operators", short(d))
		}
		spec, ok := specs[n.op]
		if !ok {
			return n.errf("operator %s is not supported%s; supported operators: %s", opName(n.op), hint(n.op), supportedList())
		}
		n.spec = spec
		if err := im.readAttrs(n); err != nil {
			return err
		}
		in := n.p.GetInput()
		if len(in) < spec.minIn || len(in) > spec.maxIn {
			return n.errf("has %d inputs, want %s", len(in), arity(spec.minIn, spec.maxIn))
		}
		for k := 0; k < spec.minIn; k++ {
			if in[k] == "" {
				return n.errf("required input %d is missing", k)
			}
		}
		outs := n.p.GetOutput()
		if len(outs) < 1 || len(outs) > spec.maxOut || outs[0] == "" {
			return n.errf("has %d outputs, want %s with the first named", len(outs), arity(1, spec.maxOut))
		}
		for _, o := range outs {
			if o == "" {
				continue
			}
			if _, dup := im.producer[o]; dup {
				return n.errf("output %s is already computed by another node (every value must have one producer)", short(o))
			}
			if _, isInit := im.inits[o]; isInit || o == im.input {
				return n.errf("output %s is also a graph input or initializer", short(o))
			}
			im.producer[o] = n
		}
	}
	return nil
}

// readAttrs indexes a node's attributes, refusing unknown or repeated ones.
func (im *importer) readAttrs(n *node) error {
	n.attrs = map[string]*onnxpb.AttributeProto{}
	for _, a := range n.p.GetAttribute() {
		name := a.GetName()
		if !n.spec.hasAttr(name) {
			return n.errf("attribute %s is not supported for %s", short(name), n.op)
		}
		if _, dup := n.attrs[name]; dup {
			return n.errf("attribute %s is given twice", short(name))
		}
		if a.GetRefAttrName() != "" {
			return n.errf("attribute %s refers to a function attribute, which is not supported", short(name))
		}
		if err := n.checkAttrData(a); err != nil {
			return err
		}
		n.attrs[name] = a
	}
	return nil
}

// checkAttrData bounds the data an attribute carries before anything reads
// it: lists of at most ir.MaxTensorElems values, and a tensor only in a
// Constant's value, whose declared size is checked against its data.
func (n *node) checkAttrData(a *onnxpb.AttributeProto) error {
	name := a.GetName()
	if k := max(len(a.GetFloats()), len(a.GetInts()), len(a.GetStrings())); k > ir.MaxTensorElems {
		return n.errf("attribute %s has %d values, more than the limit of %d", short(name), k, ir.MaxTensorElems)
	}
	if n.op == "Constant" && name == "sparse_value" {
		return n.errf("attribute sparse_value is not supported; only numeric dense tensors are")
	}
	if len(a.GetTensors()) > 0 || a.GetSparseTensor() != nil || len(a.GetSparseTensors()) > 0 {
		return n.errf("attribute %s carries tensors, which %s does not take", short(name), opName(n.op))
	}
	if t := a.GetT(); t != nil {
		if n.op != "Constant" || name != "value" {
			return n.errf("attribute %s carries a tensor, which %s does not take", short(name), opName(n.op))
		}
		if err := checkTensor(t); err != nil {
			return n.errf("value %v", err)
		}
	}
	return nil
}

func arity(min, max int) string {
	if min == max {
		return fmt.Sprint(min)
	}
	return fmt.Sprintf("%d to %d", min, max)
}

// sort orders the nodes topologically (Kahn's algorithm, ties in file
// order), refusing reads of undefined values and cycles.
func (im *importer) sort() error {
	index := map[*node]int{}
	for k, n := range im.nodes {
		index[n] = k
	}
	indeg := make([]int, len(im.nodes))
	succ := make([][]int, len(im.nodes))
	for k, n := range im.nodes {
		for _, in := range n.p.GetInput() {
			if in == "" {
				continue
			}
			if p, ok := im.producer[in]; ok {
				succ[index[p]] = append(succ[index[p]], k)
				indeg[k]++
				continue
			}
			if _, ok := im.inits[in]; ok || in == im.input {
				continue
			}
			return n.errf("reads %s, which no node, initializer or graph input defines", short(in))
		}
	}
	queue := make([]int, 0, len(im.nodes))
	for k := range im.nodes {
		if indeg[k] == 0 {
			queue = append(queue, k)
		}
	}
	im.order = make([]*node, 0, len(im.nodes))
	for len(queue) > 0 {
		k := queue[0]
		queue = queue[1:]
		im.order = append(im.order, im.nodes[k])
		for _, s := range succ[k] {
			if indeg[s]--; indeg[s] == 0 {
				queue = append(queue, s)
			}
		}
	}
	if len(im.order) == len(im.nodes) {
		return nil
	}
	// Every node left has a predecessor left: walk back until a node
	// repeats; it is on a cycle.
	start := -1
	for k := range im.nodes {
		if indeg[k] > 0 {
			start = k
			break
		}
	}
	seen := map[int]bool{}
	k := start
	for !seen[k] {
		seen[k] = true
		next := -1
		for _, in := range im.nodes[k].p.GetInput() {
			if p, ok := im.producer[in]; ok && indeg[index[p]] > 0 {
				next = index[p]
				break
			}
		}
		if next < 0 { // cannot happen; stop rather than loop
			break
		}
		k = next
	}
	return im.nodes[k].errf("is on a cycle: the graph must be acyclic")
}

// resolve removes Identity and Dropout (their outputs stand for their
// inputs), canonicalizes every node's inputs, counts the readers of every
// value and checks that secondary outputs are unused.
func (im *importer) resolve() error {
	im.canon = map[string]string{}
	c := func(name string) string {
		if to, ok := im.canon[name]; ok {
			return to
		}
		return name
	}
	for _, n := range im.order {
		n.inputs = make([]string, len(n.p.GetInput()))
		for k, in := range n.p.GetInput() {
			n.inputs[k] = c(in)
		}
		switch n.op {
		case "Identity", "Dropout":
			if n.op == "Dropout" {
				if err := im.checkDropout(n); err != nil {
					return err
				}
			}
			n.alias = true
			im.canon[n.p.GetOutput()[0]] = n.inputs[0]
		}
	}
	im.output = c(im.graph.GetOutput()[0].GetName())
	if _, ok := im.producer[im.output]; !ok {
		if _, ok := im.inits[im.output]; ok || im.output == im.input {
			return invalid("the graph output %s is the input or a constant: the model computes nothing", short(im.graph.GetOutput()[0].GetName()))
		}
		return invalid("the graph output %s is not computed by any node", short(im.graph.GetOutput()[0].GetName()))
	}
	im.readers = map[string]int{im.output: 1}
	for _, n := range im.order {
		if n.alias {
			continue
		}
		for _, in := range n.inputs {
			if in != "" {
				im.readers[in]++
			}
		}
	}
	for _, n := range im.order {
		for k, o := range n.p.GetOutput() {
			if k > 0 && o != "" && im.readers[c(o)] > 0 {
				return n.errf("output %d (%s) is used; only the first output of %s is supported (inference mode)", k, short(o), n.op)
			}
		}
	}
	return nil
}

// checkDropout accepts a Dropout in inference mode only.
func (im *importer) checkDropout(n *node) error {
	if len(n.inputs) < 3 || n.inputs[2] == "" {
		return nil
	}
	t, ok, err := im.constant(n, n.inputs[2])
	if err != nil {
		return err
	}
	if !ok || t.size() != 1 {
		return n.errf("training_mode must be a constant scalar; export the model in inference mode (model.eval())")
	}
	if t.floats()[0] != 0 {
		return n.errf("training_mode is true; export the model in inference mode (model.eval())")
	}
	return nil
}

// findTail moves a trailing chain of Softmax, LogSoftmax and ArgMax that
// produces the graph output off the circuit, and refuses them anywhere
// else.
func (im *importer) findTail() error {
	for {
		p, ok := im.producer[im.output]
		if !ok || !isTailOp(p.op) || im.readers[im.output] != 1 {
			break
		}
		in := p.inputs[0]
		if im.readers[in] != 1 || in == im.input || im.isConst(in) {
			break
		}
		if len(im.tail) > 0 && p.op == "ArgMax" {
			break // nothing may follow ArgMax on the client
		}
		p.isTail = true
		im.tail = append([]*node{p}, im.tail...)
		im.readers[im.output] = 0
		im.readers[in] = 1 // now read as the output
		im.output = in
	}
	for _, n := range im.order {
		if isTailOp(n.op) && !n.isTail {
			return n.errf("%s in the middle of a network cannot run under encryption; only a %s that computes the graph output from a value nothing else reads can be moved to the client; replace it, or remove what follows it", n.op, n.op)
		}
	}
	return nil
}

func isTailOp(op string) bool {
	return op == "Softmax" || op == "LogSoftmax" || op == "ArgMax"
}

// isConst reports whether a value is known at import time. It is exact for
// initializers and Constant nodes, and for folded values once their node
// is converted.
func (im *importer) isConst(name string) bool {
	if _, ok := im.consts[name]; ok {
		return true
	}
	if _, ok := im.inits[name]; ok {
		return true
	}
	p, ok := im.producer[name]
	return ok && p.op == "Constant"
}

// constant returns a value known at import time, decoding initializers and
// Constant nodes on first use; n is the node that reads it, which the
// decoded elements are charged to.
func (im *importer) constant(n *node, name string) (*constant, bool, error) {
	if c, ok := im.consts[name]; ok {
		return c, true, nil
	}
	if t, ok := im.inits[name]; ok {
		// readInitializers checked the metadata: the size is valid.
		_, size, _ := elems(t.GetDims())
		if err := im.spend(n, size, "decoding initializer "+short(name)); err != nil {
			return nil, false, err
		}
		c, err := decodeTensor(t)
		if err != nil {
			return nil, false, invalid("initializer %s %v", short(name), err)
		}
		im.consts[name] = c
		t.Reset() // release the encoded data; the name stays in inits
		return c, true, nil
	}
	if p, ok := im.producer[name]; ok && p.op == "Constant" {
		c, err := im.constantNode(p)
		if err != nil {
			return nil, false, err
		}
		im.consts[name] = c
		return c, true, nil
	}
	return nil, false, nil
}

// own returns c's float data for an IR node to keep: the slice itself the
// first time, a copy (charged to the budget) afterwards, so no two nodes
// share weights. Folds that keep the data (Reshape, Cast, ...) give
// constants that share it, so the data is tracked, not the constant.
func (im *importer) own(n *node, c *constant) ([]float64, error) {
	if len(c.f) == 0 {
		return c.f, nil
	}
	if im.owned == nil {
		im.owned = map[*float64]bool{}
	}
	if key := &c.f[0]; !im.owned[key] {
		im.owned[key] = true
		return c.f, nil
	}
	if err := im.spend(n, len(c.f), "copying the weights"); err != nil {
		return nil, err
	}
	return append([]float64(nil), c.f...), nil
}

// findLive marks the nodes the circuit output depends on; only they are
// converted, so a dead branch costs nothing (it was checked by readNodes,
// sort and resolve). It counts the live readers of every value so that
// convert can drop constants after their last reader.
func (im *importer) findLive() {
	im.live = map[*node]bool{}
	im.uses = map[string]int{}
	stack := []string{im.output}
	seen := map[string]bool{im.output: true}
	for len(stack) > 0 {
		name := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		p, ok := im.producer[name]
		if !ok || p.alias || p.isTail || im.live[p] {
			continue
		}
		im.live[p] = true
		for _, in := range p.inputs {
			if in != "" && !seen[in] {
				seen[in] = true
				stack = append(stack, in)
			}
		}
	}
	for _, n := range im.order {
		if !im.live[n] {
			continue
		}
		for _, in := range n.inputs {
			if in != "" {
				im.uses[in]++
			}
		}
	}
}

// release drops the constants that n was the last live reader of. Their
// data stays only where an IR node owns it.
func (im *importer) release(n *node) {
	for _, in := range n.inputs {
		if in == "" {
			continue
		}
		if im.uses[in]--; im.uses[in] <= 0 {
			delete(im.consts, in)
		}
	}
}

// convert converts the live nodes in topological order.
func (im *importer) convert() error {
	im.vals = map[string]*value{}
	im.irNames = map[string]bool{}
	v := &value{name: im.irName(im.input), shape: im.inShape, onnx: im.input}
	im.vals[im.input] = v
	if len(im.inShape) == 3 {
		im.layout = "NCHW"
	}
	for _, n := range im.order {
		if n.alias || n.isTail || !im.live[n] {
			continue
		}
		if n.op == "Constant" {
			if _, _, err := im.constant(n, n.p.GetOutput()[0]); err != nil {
				return err
			}
			continue
		}
		if err := n.spec.conv(im, n); err != nil {
			return err
		}
		im.release(n)
	}
	return nil
}

// irName allocates a unique IR value name, keeping the ONNX name when it
// can.
func (im *importer) irName(onnxName string) string {
	name := onnxName
	if name == "" || len(name) > 256 || im.irNames[name] {
		for k := len(im.irNames); ; k++ {
			name = fmt.Sprintf("v%d", k)
			if !im.irNames[name] {
				break
			}
		}
	}
	im.irNames[name] = true
	return name
}

// finish assembles the graph: drops dead nodes, sets the tail and the
// provenance, and validates it.
func (im *importer) finish() (*ir.Graph, error) {
	out, ok := im.vals[im.output]
	if !ok || out.node == nil {
		return nil, invalid("the model computes nothing under encryption: its output is the input or a constant")
	}
	// Keep only nodes the output depends on.
	need := map[string]bool{out.name: true}
	var nodes []*ir.Node
	for k := len(im.irNodes) - 1; k >= 0; k-- {
		n := im.irNodes[k]
		if !need[n.Output] {
			continue
		}
		for _, in := range n.Inputs {
			need[in] = true
		}
		nodes = append(nodes, n)
	}
	for i, j := 0, len(nodes)-1; i < j; i, j = i+1, j-1 {
		nodes[i], nodes[j] = nodes[j], nodes[i]
	}
	g := &ir.Graph{
		Name:   im.opts.Name,
		Input:  ir.Input{Name: im.vals[im.input].name, Shape: append([]int(nil), im.inShape...)},
		Nodes:  nodes,
		Output: out.name,
	}
	if g.Name == "" {
		g.Name = sanitizeName(im.graph.GetName())
	}
	if err := im.setTail(g, out.shape); err != nil {
		return nil, err
	}
	g.Source = map[string]any{
		"format":           "onnx",
		"importer":         "he/onnx",
		"producer_name":    cut(im.model.GetProducerName()),
		"producer_version": cut(im.model.GetProducerVersion()),
		"ir_version":       im.model.GetIrVersion(),
		"opset":            im.opset,
		"graph_name":       cut(im.graph.GetName()),
		"sha256":           im.sha256,
	}
	if im.layout != "" {
		g.Source["layout"] = im.layout
	}
	if p := im.opts.Preprocess; p != nil {
		cp := *p
		if im.layout == "NHWC" {
			cp.Layout = "NHWC"
		}
		g.Input.Preprocess = &cp
	}
	if err := g.Validate(); err != nil {
		return nil, hegate.E(opImport, hegate.KindInvalid, err, "the converted model is not valid: %s", hegate.DetailOf(err))
	}
	return g, nil
}

func cut(s string) string {
	if len(s) > 256 {
		return s[:256]
	}
	return s
}

// setTail checks the tail ops against the shape of the circuit's output
// and records them.
func (im *importer) setTail(g *ir.Graph, shape []int) error {
	for _, n := range im.tail {
		var t ir.TailOp
		switch n.op {
		case "Softmax":
			t = ir.TailSoftmax
		case "LogSoftmax":
			t = ir.TailLogSoftmax
		case "ArgMax":
			t = ir.TailArgMax
		}
		if err := im.checkTail(n, shape); err != nil {
			return err
		}
		g.Tail = append(g.Tail, t)
	}
	return nil
}

// checkTail checks that a tail op works on the whole output vector, which
// is what the client applies (ir.Graph.ApplyTail).
func (im *importer) checkTail(n *node, shape []int) error {
	rank := len(shape) + 1
	def := int64(-1)
	if n.op == "ArgMax" {
		def = 0
	} else if im.opset < 13 {
		def = 1
	}
	axis, err := n.int("axis", def)
	if err != nil {
		return err
	}
	if axis < -int64(rank) || axis >= int64(rank) {
		return n.errf("axis %d is out of range for a value of %d dimensions", axis, rank)
	}
	if axis < 0 {
		axis += int64(rank)
	}
	if n.op != "ArgMax" && im.opset < 13 {
		// Before opset 13, Softmax works on the value flattened from axis on.
		if axis > 1 && ir.Prod(shape[:axis-1]) != 1 {
			return n.errf("axis %d does not cover the whole output %v; the client applies %s to the whole output vector", axis, shape, n.op)
		}
		return nil
	}
	if axis == 0 {
		return n.errf("axis 0 is the batch axis; export the model with %s over the class axis (axis=1 or -1)", n.op)
	}
	if ir.Prod(shape) != shape[axis-1] {
		return n.errf("axis %d does not cover the whole output %v; the client applies %s to the whole output vector", axis, shape, n.op)
	}
	if n.op == "ArgMax" {
		sel, err := n.int("select_last_index", 0)
		if err != nil {
			return err
		}
		if sel != 0 {
			return n.errf("select_last_index=1 is not supported (the client returns the first maximum)")
		}
		if _, err := n.int("keepdims", 1); err != nil {
			return err
		}
	}
	return nil
}

package onnx

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/he/onnx/internal/onnxpb"
)

// opSpec describes a supported ONNX operator: its attributes, arity and
// conversion.
type opSpec struct {
	attrs        []string
	minIn, maxIn int
	maxOut       int  // outputs it may declare; only the first may be used
	constOnly    bool // folded at import time; works on constants only
	conv         func(im *importer, n *node) error
}

func (s *opSpec) hasAttr(name string) bool {
	for _, a := range s.attrs {
		if a == name {
			return true
		}
	}
	return false
}

var specs map[string]*opSpec

func init() {
	window := []string{"auto_pad", "kernel_shape", "pads", "strides", "dilations", "ceil_mode"}
	arith := &opSpec{minIn: 2, maxIn: 2, maxOut: 1, conv: convArith}
	specs = map[string]*opSpec{
		"Conv":               {attrs: []string{"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}, minIn: 2, maxIn: 3, maxOut: 1, conv: convConv},
		"BatchNormalization": {attrs: []string{"epsilon", "momentum", "training_mode", "spatial"}, minIn: 5, maxIn: 5, maxOut: 5, conv: convBatchNorm},
		"Relu":               {minIn: 1, maxIn: 1, maxOut: 1, conv: convRelu},
		"Add":                arith,
		"Sub":                arith,
		"Mul":                arith,
		"Div":                arith,
		"Gemm":               {attrs: []string{"alpha", "beta", "transA", "transB"}, minIn: 2, maxIn: 3, maxOut: 1, conv: convGemm},
		"MatMul":             {minIn: 2, maxIn: 2, maxOut: 1, conv: convMatMul},
		"AveragePool":        {attrs: append([]string{"count_include_pad"}, window...), minIn: 1, maxIn: 1, maxOut: 1, conv: convAvgPool},
		"MaxPool":            {attrs: append([]string{"storage_order"}, window...), minIn: 1, maxIn: 1, maxOut: 2, conv: convMaxPool},
		"GlobalAveragePool":  {minIn: 1, maxIn: 1, maxOut: 1, conv: convGlobalAvgPool},
		"Flatten":            {attrs: []string{"axis"}, minIn: 1, maxIn: 1, maxOut: 1, conv: convFlatten},
		"Reshape":            {attrs: []string{"allowzero"}, minIn: 2, maxIn: 2, maxOut: 1, conv: convReshape},
		"Transpose":          {attrs: []string{"perm"}, minIn: 1, maxIn: 1, maxOut: 1, conv: convTranspose},
		"Identity":           {minIn: 1, maxIn: 1, maxOut: 1},
		"Dropout":            {attrs: []string{"ratio", "seed", "is_test"}, minIn: 1, maxIn: 3, maxOut: 2},
		"Constant":           {attrs: []string{"value", "value_float", "value_floats", "value_int", "value_ints", "sparse_value", "value_string", "value_strings"}, maxOut: 1},
		"Softmax":            {attrs: []string{"axis"}, minIn: 1, maxIn: 1, maxOut: 1},
		"LogSoftmax":         {attrs: []string{"axis"}, minIn: 1, maxIn: 1, maxOut: 1},
		"ArgMax":             {attrs: []string{"axis", "keepdims", "select_last_index"}, minIn: 1, maxIn: 1, maxOut: 1},
		"Squeeze":            {attrs: []string{"axes"}, minIn: 1, maxIn: 2, maxOut: 1, conv: convSqueeze},
		"Unsqueeze":          {attrs: []string{"axes"}, minIn: 1, maxIn: 2, maxOut: 1, conv: convUnsqueeze},
		"Cast":               {attrs: []string{"to", "saturate"}, minIn: 1, maxIn: 1, maxOut: 1, conv: convCast},
		"Shape":              {attrs: []string{"start", "end"}, minIn: 1, maxIn: 1, maxOut: 1, constOnly: true, conv: convShape},
		"Gather":             {attrs: []string{"axis"}, minIn: 2, maxIn: 2, maxOut: 1, constOnly: true, conv: convGather},
		"Concat":             {attrs: []string{"axis"}, minIn: 1, maxIn: 64, maxOut: 1, constOnly: true, conv: convConcat},
	}
}

// hint suggests what to do about an unsupported operator.
func hint(op string) string {
	switch op {
	case "LSTM", "GRU", "RNN":
		return " (recurrent layers cannot be imported): use convolutional and dense layers"
	case "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Selu", "Gelu", "HardSigmoid", "HardSwish", "Softplus", "Softsign", "PRelu", "Mish", "Clip", "Celu", "ThresholdedRelu":
		return ": replace the activation with ReLU"
	case "GlobalMaxPool", "ReduceMean", "ReduceMax":
		return ": use GlobalAveragePool"
	case "LayerNormalization", "InstanceNormalization", "GroupNormalization", "LRN", "MeanVarianceNormalization":
		return ": use BatchNormalization"
	case "ConvTranspose", "Resize", "Upsample":
		return " (upsampling cannot be imported): use Conv with strides and pooling"
	}
	return ": re-export the model with only supported operators (onnx-simplifier folds many constant sub-graphs)"
}

// supportedList lists the supported operators for messages.
func supportedList() string {
	var s, consts []string
	for op, sp := range specs {
		if sp.constOnly {
			consts = append(consts, op)
		} else {
			s = append(s, op)
		}
	}
	sort.Strings(s)
	sort.Strings(consts)
	return strings.Join(s, ", ") + ", and on constants " + strings.Join(consts, ", ")
}

// has reports whether optional input k is given.
func (n *node) has(k int) bool { return k < len(n.inputs) && n.inputs[k] != "" }

// dyn returns input k as a computed value.
func (im *importer) dyn(n *node, k int) (*value, error) {
	name := n.inputs[k]
	if v, ok := im.vals[name]; ok {
		return v, nil
	}
	if im.isConst(name) {
		return nil, n.errf("input %d (%s) is a constant; %s needs a computed value there", k, short(name), n.op)
	}
	return nil, n.errf("input %d (%s) has no value", k, short(name))
}

// cnst returns input k as a constant.
func (im *importer) cnst(n *node, k int, what string) (*constant, error) {
	name := n.inputs[k]
	c, ok, err := im.constant(n, name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, n.errf("%s (input %d, %s) must be a constant (an initializer or a Constant node), not a computed value", what, k, short(name))
	}
	return c, nil
}

// intsInput returns input k as a constant integer vector.
func (im *importer) intsInput(n *node, k int, what string) ([]int64, error) {
	c, err := im.cnst(n, k, what)
	if err != nil {
		return nil, err
	}
	if !c.integer || len(c.dims) > 1 {
		return nil, n.errf("%s must be a 1-D INT64 tensor", what)
	}
	return c.i, nil
}

// floatsInput returns input k as constant floating-point values.
func (im *importer) floatsInput(n *node, k int, what string) (*constant, error) {
	c, err := im.cnst(n, k, what)
	if err != nil {
		return nil, err
	}
	if c.integer {
		return nil, n.errf("%s must be a FLOAT or DOUBLE tensor", what)
	}
	return c, nil
}

// emit appends an IR node computing n's first output.
func (im *importer) emit(n *node, op ir.OpType, ins []*value, shape []int, set func(*ir.Node)) error {
	if err := checkOut(n, shape); err != nil {
		return err
	}
	out := n.p.GetOutput()[0]
	nd := &ir.Node{Name: n.name, Op: op, Output: im.irName(out)}
	for _, v := range ins {
		nd.Inputs = append(nd.Inputs, v.name)
	}
	if set != nil {
		set(nd)
	}
	im.irNodes = append(im.irNodes, nd)
	im.vals[out] = &value{name: nd.Output, shape: shape, node: nd, onnx: out}
	return nil
}

// alias makes n's output stand for v (an op that changes nothing).
func (im *importer) alias(n *node, v *value) { im.vals[n.p.GetOutput()[0]] = v }

// fold records n's output as a constant.
func (im *importer) fold(n *node, c *constant) { im.consts[n.p.GetOutput()[0]] = c }

// checkOut checks an IR output shape.
func checkOut(n *node, shape []int) error {
	if len(shape) != 1 && len(shape) != 3 {
		return n.errf("gives a value of shape %v (without the batch dimension); only [C,H,W] feature maps and [n] vectors are supported", shape)
	}
	total := 1
	for _, d := range shape {
		if d <= 0 || d > ir.MaxTensorElems {
			return n.errf("gives a value of shape %v, which has an empty or invalid dimension", shape)
		}
		if total *= d; total > ir.MaxTensorElems {
			return n.errf("gives a value of shape %v, more than %d values", shape, ir.MaxTensorElems)
		}
	}
	return nil
}

// onnxDims is the ONNX shape of a computed value: batch 1 first.
func onnxDims(v *value) []int { return append([]int{1}, v.shape...) }

// pair reads a 2-D attribute such as strides.
func (n *node) pair(name string, def [2]int) ([2]int, error) {
	v, set, err := n.ints(name, nil)
	if err != nil || !set {
		return def, err
	}
	if len(v) != 2 {
		return def, n.errf("%s %v has %d values; only 2-D (two values) is supported", name, v, len(v))
	}
	for _, x := range v {
		if x < 1 || x > 64 {
			return def, n.errf("%s %v is out of range (1 to 64)", name, v)
		}
	}
	return [2]int{int(v[0]), int(v[1])}, nil
}

// noDilation refuses dilations other than 1.
func (n *node) noDilation() error {
	v, _, err := n.ints("dilations", nil)
	if err != nil {
		return err
	}
	for _, d := range v {
		if d != 1 {
			return n.errf("dilations %v are not supported; export the model with dilation 1", v)
		}
	}
	return nil
}

// windowPads computes the [top, left, bottom, right] padding of a
// convolution or pooling window over h×w from auto_pad and pads.
func (n *node) windowPads(h, w int, kernel, stride [2]int) ([4]int, error) {
	var pads [4]int
	ap, err := n.str("auto_pad", "NOTSET")
	if err != nil {
		return pads, err
	}
	switch ap {
	case "NOTSET", "":
		v, set, err := n.ints("pads", nil)
		if err != nil || !set {
			return pads, err
		}
		if len(v) != 4 {
			return pads, n.errf("pads %v has %d values; 2-D windows need 4 (begin and end of each axis)", v, len(v))
		}
		for k, p := range v {
			if p < 0 || p > 64 {
				return pads, n.errf("pads %v are out of range (0 to 64)", v)
			}
			// ONNX [x1_begin, x2_begin, x1_end, x2_end] is IR [top, left, bottom, right].
			pads[k] = int(p)
		}
	case "VALID":
	case "SAME_UPPER", "SAME_LOWER":
		in := [2]int{h, w}
		for a := 0; a < 2; a++ {
			out := (in[a] + stride[a] - 1) / stride[a]
			total := max(0, (out-1)*stride[a]+kernel[a]-in[a])
			small, big := total/2, total-total/2
			if ap == "SAME_UPPER" {
				pads[a], pads[a+2] = small, big
			} else {
				pads[a], pads[a+2] = big, small
			}
		}
	default:
		return pads, n.errf("auto_pad %s is not supported (NOTSET, VALID, SAME_UPPER, SAME_LOWER are)", short(ap))
	}
	return pads, nil
}

// checkWindow checks a window against the IR's limits for an h×w input.
func (n *node) checkWindow(kernel, stride [2]int, pads [4]int, h, w int) error {
	for a := 0; a < 2; a++ {
		if kernel[a] < 1 || kernel[a] > 64 {
			return n.errf("kernel %v is out of range (1 to 64)", kernel)
		}
		if stride[a] < 1 || stride[a] > 64 {
			return n.errf("strides %v are out of range (1 to 64)", stride)
		}
	}
	for _, p := range pads {
		if p < 0 || p > 64 {
			return n.errf("pads %v are out of range (0 to 64)", pads)
		}
	}
	if pads[0] >= kernel[0] || pads[2] >= kernel[0] || pads[1] >= kernel[1] || pads[3] >= kernel[1] {
		return n.errf("pads %v (top, left, bottom, right): each pad must be smaller than the kernel %v", pads, kernel)
	}
	if h+pads[0]+pads[2] < kernel[0] || w+pads[1]+pads[3] < kernel[1] {
		return n.errf("kernel %v is larger than the padded input (%dx%d)", kernel, h+pads[0]+pads[2], w+pads[1]+pads[3])
	}
	return nil
}

func convConv(im *importer, n *node) error {
	x, err := im.dyn(n, 0)
	if err != nil {
		return err
	}
	if len(x.shape) != 3 {
		return n.errf("input has shape %v; Conv needs a 4-D input [N,C,H,W]", onnxDims(x))
	}
	group, err := n.int("group", 1)
	if err != nil {
		return err
	}
	if group != 1 {
		return n.errf("group %d is not supported; export the model with group=1 convolutions (no grouped or depthwise convolutions)", group)
	}
	if err := n.noDilation(); err != nil {
		return err
	}
	w, err := im.floatsInput(n, 1, "the weights")
	if err != nil {
		return err
	}
	if len(w.dims) != 4 {
		return n.errf("weights have shape %v; only 2-D convolutions (weights [M,C,kH,kW]) are supported", w.dims)
	}
	m, c, kh, kw := w.dims[0], w.dims[1], w.dims[2], w.dims[3]
	if c != x.shape[0] {
		return n.errf("weights of shape %v take %d input channels, but the input %v has %d", w.dims, c, onnxDims(x), x.shape[0])
	}
	if ks, set, err := n.ints("kernel_shape", nil); err != nil {
		return err
	} else if set && (len(ks) != 2 || ks[0] != int64(kh) || ks[1] != int64(kw)) {
		return n.errf("kernel_shape %v does not match the weights of shape %v", ks, w.dims)
	}
	if m < 1 || m > 1<<14 {
		return n.errf("has %d output channels; 1 to %d are supported", m, 1<<14)
	}
	kernel := [2]int{kh, kw}
	if err := n.checkWindow(kernel, [2]int{1, 1}, [4]int{}, kh, kw); err != nil {
		return err
	}
	stride, err := n.pair("strides", [2]int{1, 1})
	if err != nil {
		return err
	}
	pads, err := n.windowPads(x.shape[1], x.shape[2], kernel, stride)
	if err != nil {
		return err
	}
	if err := n.checkWindow(kernel, stride, pads, x.shape[1], x.shape[2]); err != nil {
		return err
	}
	if err := im.spend(n, m, "the bias"); err != nil {
		return err
	}
	bias := make([]float64, m)
	if n.has(2) {
		b, err := im.floatsInput(n, 2, "the bias")
		if err != nil {
			return err
		}
		if b.size() != m || len(b.dims) != 1 {
			return n.errf("bias has shape %v; want [%d] (one per output channel)", b.dims, m)
		}
		copy(bias, b.f)
	}
	weights, err := im.own(n, w)
	if err != nil {
		return err
	}
	cv := &ir.Conv{InChannels: c, OutChannels: m, Kernel: kernel, Stride: stride, Pads: pads,
		Weights: weights, Bias: bias}
	oh, ow := cv.OutputHW(x.shape[1], x.shape[2])
	return im.emit(n, ir.OpConv, []*value{x}, []int{m, oh, ow}, func(nd *ir.Node) { nd.Conv = cv })
}

func convBatchNorm(im *importer, n *node) error {
	x, err := im.dyn(n, 0)
	if err != nil {
		return err
	}
	if t, err := n.int("training_mode", 0); err != nil {
		return err
	} else if t != 0 {
		return n.errf("training_mode=1 is not supported; export the model in inference mode (model.eval())")
	}
	if s, err := n.int("spatial", 1); err != nil {
		return err
	} else if s != 1 {
		return n.errf("spatial=0 is not supported")
	}
	eps, err := n.float("epsilon", 1e-5)
	if err != nil {
		return err
	}
	c := x.shape[0]
	var p [4][]float64
	for k, what := range []string{"scale", "B", "mean", "var"} {
		t, err := im.floatsInput(n, k+1, what)
		if err != nil {
			return err
		}
		if t.size() != c || len(t.dims) != 1 {
			return n.errf("%s has shape %v; want [%d] (one per channel of the input %v)", what, t.dims, c, onnxDims(x))
		}
		p[k] = t.f
	}
	if err := im.spend(n, 2*c, "the scale and shift"); err != nil {
		return err
	}
	a := &ir.Affine{Scale: make([]float64, c), Shift: make([]float64, c)}
	for ch := 0; ch < c; ch++ {
		d := p[3][ch] + eps
		if !(d > 0) || math.IsInf(d, 0) {
			return n.errf("channel %d: var + epsilon = %g is not positive and finite", ch, d)
		}
		a.Scale[ch] = p[0][ch] / math.Sqrt(d)
		a.Shift[ch] = p[1][ch] - p[2][ch]*a.Scale[ch]
	}
	return im.emit(n, ir.OpAffine, []*value{x}, x.shape, func(nd *ir.Node) { nd.Affine = a })
}

func convRelu(im *importer, n *node) error {
	if c, ok, err := im.constant(n, n.inputs[0]); err != nil {
		return err
	} else if ok {
		if c.integer {
			return n.errf("Relu of an integer constant is not supported")
		}
		if err := im.spend(n, len(c.f), "folding it"); err != nil {
			return err
		}
		out := &constant{dims: c.dims, f: make([]float64, len(c.f))}
		for k, v := range c.f {
			out.f[k] = math.Max(v, 0)
		}
		im.fold(n, out)
		return nil
	}
	x, err := im.dyn(n, 0)
	if err != nil {
		return err
	}
	return im.emit(n, ir.OpRelu, []*value{x}, x.shape, nil)
}

// convArith converts Add, Sub, Mul and Div.
func convArith(im *importer, n *node) error {
	a, b := n.inputs[0], n.inputs[1]
	ca, cb := im.isConst(a), im.isConst(b)
	switch {
	case ca && cb:
		x, err := im.cnst(n, 0, "input A")
		if err != nil {
			return err
		}
		y, err := im.cnst(n, 1, "input B")
		if err != nil {
			return err
		}
		c, err := im.foldArith(n, x, y)
		if err != nil {
			return err
		}
		im.fold(n, c)
		return nil
	case !ca && !cb:
		x, err := im.dyn(n, 0)
		if err != nil {
			return err
		}
		y, err := im.dyn(n, 1)
		if err != nil {
			return err
		}
		if n.op != "Add" {
			return n.errf("%s of two computed values is not supported (only Add is); one side must be a constant", n.op)
		}
		if !eqInts(x.shape, y.shape) {
			return n.errf("adds values of shapes %v and %v; both must have the same shape (no broadcasting between computed values)", onnxDims(x), onnxDims(y))
		}
		return im.emit(n, ir.OpAdd, []*value{x, y}, x.shape, nil)
	}
	left := !ca // the computed value is on the left
	k := 0
	if !left {
		k = 1
	}
	if n.op == "Div" && !left {
		return n.errf("divides a constant by a computed value, which is not linear and cannot run under encryption")
	}
	x, err := im.dyn(n, k)
	if err != nil {
		return err
	}
	c, err := im.cnst(n, 1-k, "the constant")
	if err != nil {
		return err
	}
	v, err := im.perChannel(n, x, c)
	if err != nil {
		return err
	}
	if n.op == "Div" || n.op == "Sub" && left {
		if err := im.spend(n, len(v), "the constant"); err != nil {
			return err
		}
	}
	var scale, shift []float64
	switch n.op {
	case "Add":
		scale, shift = []float64{1}, v
	case "Sub":
		if left {
			scale, shift = []float64{1}, neg(v)
		} else {
			scale, shift = []float64{-1}, v
		}
	case "Mul":
		scale, shift = v, []float64{0}
	case "Div":
		scale = make([]float64, len(v))
		for i, d := range v {
			if d == 0 {
				return n.errf("divides by a constant that is zero")
			}
			scale[i] = 1 / d
		}
		shift = []float64{0}
	}
	// A constant bias added to a dense layer's output that nothing else
	// reads is folded into the layer (MatMul + Add).
	in := n.inputs[k]
	if len(scale) == 1 && scale[0] == 1 && x.node != nil && x.node.Dense != nil && x.onnx == in && im.readers[in] == 1 {
		d := x.node.Dense
		for o := range d.Bias {
			d.Bias[o] += at(shift, o)
		}
		out := n.p.GetOutput()[0]
		x.node.Output = im.irName(out)
		im.vals[out] = &value{name: x.node.Output, shape: x.shape, node: x.node, onnx: out}
		return nil
	}
	aff := &ir.Affine{Scale: scale, Shift: shift}
	return im.emit(n, ir.OpAffine, []*value{x}, x.shape, func(nd *ir.Node) { nd.Affine = aff })
}

func at(v []float64, i int) float64 {
	if len(v) == 1 {
		return v[0]
	}
	return v[i]
}

func neg(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = -x
	}
	return out
}

// perChannel returns the values of a constant that broadcasts over x per
// channel (ONNX axis 1): one value, or one per channel (a copy charged to
// the budget).
func (im *importer) perChannel(n *node, x *value, c *constant) ([]float64, error) {
	xd := onnxDims(x)
	if len(c.dims) > len(xd) {
		return nil, n.errf("the constant of shape %v has more dimensions than the input %v", c.dims, xd)
	}
	off := len(xd) - len(c.dims)
	per := false
	for j, d := range c.dims {
		axis := off + j
		if d == 1 {
			continue
		}
		if axis == 1 && d == xd[1] {
			per = true
			continue
		}
		return nil, n.errf("the constant of shape %v does not broadcast per channel over the input %v; only scalars and per-channel constants ([1,C,1,1] or [C,1,1], and [C] or [1,C] for vectors) are supported", c.dims, xd)
	}
	if !per {
		return []float64{c.at(0)}, nil
	}
	if err := im.spend(n, c.size(), "the per-channel constant"); err != nil {
		return nil, err
	}
	out := make([]float64, c.size())
	for k := range out {
		out[k] = c.at(k)
	}
	return out, nil
}

// foldArith computes Add, Sub, Mul or Div of two constants of one shape
// or of a constant and a scalar.
func (im *importer) foldArith(n *node, x, y *constant) (*constant, error) {
	if x.integer != y.integer {
		return nil, n.errf("mixes integer and floating-point constants")
	}
	dims := x.dims
	switch {
	case eqInts(x.dims, y.dims):
	case y.size() == 1 && len(y.dims) <= len(x.dims):
	case x.size() == 1 && len(x.dims) <= len(y.dims):
		dims = y.dims
	default:
		return nil, n.errf("constants of shapes %v and %v: folding supports one shape or a scalar", x.dims, y.dims)
	}
	size := ir.Prod(dims)
	if err := im.spend(n, size, "folding it"); err != nil {
		return nil, err
	}
	out := &constant{dims: dims, integer: x.integer}
	idx := func(c *constant, k int) int {
		if c.size() == 1 {
			return 0
		}
		return k
	}
	if x.integer {
		out.i = make([]int64, size)
		for k := range out.i {
			p, q := x.i[idx(x, k)], y.i[idx(y, k)]
			switch n.op {
			case "Add":
				out.i[k] = p + q
			case "Sub":
				out.i[k] = p - q
			case "Mul":
				out.i[k] = p * q
			case "Div":
				if q == 0 || (p == math.MinInt64 && q == -1) {
					return nil, n.errf("integer division by zero or overflow")
				}
				out.i[k] = p / q
			}
		}
		return out, nil
	}
	out.f = make([]float64, size)
	for k := range out.f {
		p, q := x.f[idx(x, k)], y.f[idx(y, k)]
		switch n.op {
		case "Add":
			out.f[k] = p + q
		case "Sub":
			out.f[k] = p - q
		case "Mul":
			out.f[k] = p * q
		case "Div":
			out.f[k] = p / q
		}
	}
	return out, nil
}

func eqInts(a, b []int) bool {
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

func convGemm(im *importer, n *node) error {
	x, err := im.dyn(n, 0)
	if err != nil {
		return err
	}
	if len(x.shape) != 1 {
		return n.errf("input A has shape %v; Gemm needs a 2-D input [N,K]: flatten it first", onnxDims(x))
	}
	if t, err := n.int("transA", 0); err != nil {
		return err
	} else if t != 0 {
		return n.errf("transA=%d is not supported; export the model with the batch as the first dimension of A (transA=0)", t)
	}
	transB, err := n.int("transB", 0)
	if err != nil {
		return err
	}
	if transB != 0 && transB != 1 {
		return n.errf("transB=%d: want 0 or 1", transB)
	}
	alpha, err := n.float("alpha", 1)
	if err != nil {
		return err
	}
	beta, err := n.float("beta", 1)
	if err != nil {
		return err
	}
	b, err := im.floatsInput(n, 1, "B (the weights)")
	if err != nil {
		return err
	}
	k := x.shape[0]
	if len(b.dims) != 2 {
		return n.errf("B has shape %v; want a 2-D matrix", b.dims)
	}
	kb, out := b.dims[0], b.dims[1]
	if transB == 1 {
		kb, out = out, kb
	}
	if kb != k {
		return n.errf("B of shape %v (transB=%d) does not fit an input of %d values", b.dims, transB, k)
	}
	if err := im.spend(n, out, "the bias"); err != nil {
		return err
	}
	d := &ir.Dense{In: k, Out: out, Bias: make([]float64, out)}
	if transB == 1 && alpha == 1 {
		if d.Weights, err = im.own(n, b); err != nil { // already [Out][In]
			return err
		}
	} else {
		if err := im.spend(n, k*out, "the transposed weights"); err != nil {
			return err
		}
		d.Weights = make([]float64, k*out)
		for o := 0; o < out; o++ {
			for i := 0; i < k; i++ {
				var w float64
				if transB == 1 {
					w = b.f[o*k+i]
				} else {
					w = b.f[i*out+o]
				}
				d.Weights[o*k+i] = alpha * w
			}
		}
	}
	if n.has(2) {
		c, err := im.floatsInput(n, 2, "C (the bias)")
		if err != nil {
			return err
		}
		if err := rowBias(n, c, out, beta, d.Bias); err != nil {
			return err
		}
	}
	return im.emit(n, ir.OpDense, []*value{x}, []int{out}, func(nd *ir.Node) { nd.Dense = d })
}

// rowBias adds beta·c, broadcast to [1,out], to bias.
func rowBias(n *node, c *constant, out int, beta float64, bias []float64) error {
	ok := len(c.dims) <= 2
	if ok && len(c.dims) >= 1 {
		last := c.dims[len(c.dims)-1]
		ok = last == 1 || last == out
		if len(c.dims) == 2 && c.dims[0] != 1 {
			ok = false
		}
	}
	if !ok {
		return n.errf("C has shape %v; want [%d], [1,%d] or a scalar", c.dims, out, out)
	}
	for o := range bias {
		if c.size() == 1 {
			bias[o] += beta * c.f[0]
		} else {
			bias[o] += beta * c.f[o]
		}
	}
	return nil
}

func convMatMul(im *importer, n *node) error {
	if im.isConst(n.inputs[0]) {
		return n.errf("the left-hand side is a constant; only x·W with a computed x [N,K] and a constant W [K,N] is supported")
	}
	x, err := im.dyn(n, 0)
	if err != nil {
		return err
	}
	if !im.isConst(n.inputs[1]) {
		return n.errf("multiplies two computed values, which cannot be imported; the right-hand side must be a constant weight matrix")
	}
	if len(x.shape) != 1 {
		return n.errf("input has shape %v; only a 2-D input [N,K] times a constant [K,N] is supported: flatten it first", onnxDims(x))
	}
	b, err := im.floatsInput(n, 1, "the weights")
	if err != nil {
		return err
	}
	k := x.shape[0]
	if len(b.dims) != 2 || b.dims[0] != k {
		return n.errf("weights of shape %v do not fit an input of %d values; want [%d,N]", b.dims, k, k)
	}
	out := b.dims[1]
	if err := im.spend(n, k*out+out, "the transposed weights and the bias"); err != nil {
		return err
	}
	d := &ir.Dense{In: k, Out: out, Weights: make([]float64, k*out), Bias: make([]float64, out)}
	for o := 0; o < out; o++ {
		for i := 0; i < k; i++ {
			d.Weights[o*k+i] = b.f[i*out+o]
		}
	}
	return im.emit(n, ir.OpDense, []*value{x}, []int{out}, func(nd *ir.Node) { nd.Dense = d })
}

func convAvgPool(im *importer, n *node) error { return convPool(im, n, false) }
func convMaxPool(im *importer, n *node) error { return convPool(im, n, true) }

func convPool(im *importer, n *node, isMax bool) error {
	x, err := im.dyn(n, 0)
	if err != nil {
		return err
	}
	if len(x.shape) != 3 {
		return n.errf("input has shape %v; %s needs a 4-D input [N,C,H,W]", onnxDims(x), n.op)
	}
	if _, set, err := n.ints("kernel_shape", nil); err != nil {
		return err
	} else if !set {
		return n.errf("kernel_shape is missing")
	}
	kernel, err := n.pair("kernel_shape", [2]int{})
	if err != nil {
		return err
	}
	stride, err := n.pair("strides", [2]int{1, 1})
	if err != nil {
		return err
	}
	if err := n.noDilation(); err != nil {
		return err
	}
	if isMax {
		if so, err := n.int("storage_order", 0); err != nil {
			return err
		} else if so != 0 {
			return n.errf("storage_order=%d is not supported; export with storage_order=0", so)
		}
	}
	cip := int64(0)
	if !isMax {
		if cip, err = n.int("count_include_pad", 0); err != nil {
			return err
		}
		if cip != 0 && cip != 1 {
			return n.errf("count_include_pad=%d: want 0 or 1", cip)
		}
	}
	ceil, err := n.int("ceil_mode", 0)
	if err != nil {
		return err
	}
	if ceil != 0 && ceil != 1 {
		return n.errf("ceil_mode=%d: want 0 or 1", ceil)
	}
	h, w := x.shape[1], x.shape[2]
	pads, err := n.windowPads(h, w, kernel, stride)
	if err != nil {
		return err
	}
	if err := n.checkWindow(kernel, stride, pads, h, w); err != nil {
		return err
	}
	p := &ir.Pool{Kernel: kernel, Stride: stride, Pads: pads, CountIncludePad: cip == 1}
	oh, ow := p.OutputHW(h, w)
	if ceil == 1 {
		ch := (h+pads[0]+pads[2]-kernel[0]+stride[0]-1)/stride[0] + 1
		cw := (w+pads[1]+pads[3]-kernel[1]+stride[1]-1)/stride[1] + 1
		if ch != oh || cw != ow {
			return n.errf("ceil_mode=1 gives a %dx%d output where floor mode gives %dx%d, which is not supported; export with ceil_mode=0 (PyTorch: ceil_mode=False) or change the padding", ch, cw, oh, ow)
		}
	}
	op := ir.OpAvgPool
	if isMax {
		op = ir.OpMaxPool
	}
	return im.emit(n, op, []*value{x}, []int{x.shape[0], oh, ow}, func(nd *ir.Node) { nd.Pool = p })
}

func convGlobalAvgPool(im *importer, n *node) error {
	x, err := im.dyn(n, 0)
	if err != nil {
		return err
	}
	if len(x.shape) != 3 {
		return n.errf("input has shape %v; GlobalAveragePool needs a 4-D input [N,C,H,W]", onnxDims(x))
	}
	return im.emit(n, ir.OpGlobalAvgPool, []*value{x}, []int{x.shape[0], 1, 1}, nil)
}

// data returns input 0 as a constant, or as a computed value.
func (im *importer) data(n *node) (*constant, *value, error) {
	c, ok, err := im.constant(n, n.inputs[0])
	if err != nil || ok {
		return c, nil, err
	}
	v, err := im.dyn(n, 0)
	return nil, v, err
}

// reshapeTo gives computed value x the ONNX shape dims (batch first),
// as an IR reshape, or nothing when the shape does not change.
func (im *importer) reshapeTo(n *node, x *value, dims []int) error {
	if len(dims) == 0 || dims[0] != 1 {
		return n.errf("gives shape %v, which changes the batch dimension; keep the batch dimension first (for a reshape, for example [-1, %d] or [0, -1])", dims, ir.Prod(x.shape))
	}
	out := append([]int(nil), dims[1:]...)
	if len(out) != 1 && len(out) != 3 {
		return n.errf("gives shape %v; only [N,C,H,W] and [N,n] values are supported", dims)
	}
	if ir.Prod(out) != ir.Prod(x.shape) {
		return n.errf("gives shape %v, which has %d values, from %v, which has %d", dims, ir.Prod(dims), onnxDims(x), ir.Prod(x.shape))
	}
	if eqInts(out, x.shape) {
		im.alias(n, x)
		return nil
	}
	return im.emit(n, ir.OpReshape, []*value{x}, out, func(nd *ir.Node) { nd.Reshape = &ir.Reshape{Shape: out} })
}

// withDims is c with other dimensions (same data, same element count).
func withDims(c *constant, dims []int) *constant {
	return &constant{dims: dims, integer: c.integer, f: c.f, i: c.i}
}

func convFlatten(im *importer, n *node) error {
	c, x, err := im.data(n)
	if err != nil {
		return err
	}
	var dims []int
	if c != nil {
		dims = c.dims
	} else {
		dims = onnxDims(x)
	}
	axis, err := n.int("axis", 1)
	if err != nil {
		return err
	}
	r := int64(len(dims))
	if axis < -r || axis > r {
		return n.errf("axis %d is out of range for a value of %d dimensions", axis, r)
	}
	if axis < 0 {
		axis += r
	}
	if c != nil {
		im.fold(n, withDims(c, []int{ir.Prod(dims[:axis]), ir.Prod(dims[axis:])}))
		return nil
	}
	if axis != 1 {
		return n.errf("axis %d is not supported; only Flatten with axis=1, which keeps the batch dimension, is", axis)
	}
	return im.reshapeTo(n, x, []int{1, ir.Prod(x.shape)})
}

func convReshape(im *importer, n *node) error {
	c, x, err := im.data(n)
	if err != nil {
		return err
	}
	shape, err := im.intsInput(n, 1, "the shape")
	if err != nil {
		return err
	}
	allowzero, err := n.int("allowzero", 0)
	if err != nil {
		return err
	}
	var in []int
	if c != nil {
		in = c.dims
	} else {
		in = onnxDims(x)
	}
	if len(shape) > 8 {
		return n.errf("shape %v has more than 8 dimensions", shape)
	}
	out := make([]int, len(shape))
	infer, known := -1, 1
	for i, s := range shape {
		switch {
		case s == -1:
			if infer >= 0 {
				return n.errf("shape %v has more than one -1", shape)
			}
			infer = i
			continue
		case s == 0 && allowzero == 0:
			if i >= len(in) {
				return n.errf("shape %v copies dimension %d (0) that the input %v does not have", shape, i, in)
			}
			out[i] = in[i]
		case s < 1 || s > ir.MaxTensorElems:
			return n.errf("shape %v has an invalid dimension %d", shape, s)
		default:
			out[i] = int(s)
		}
		if known *= out[i]; known > ir.MaxTensorElems || known == 0 {
			return n.errf("shape %v gives an empty or too large tensor", shape)
		}
	}
	total := ir.Prod(in)
	if infer >= 0 {
		if total%known != 0 {
			return n.errf("cannot reshape %v (%d values) to %v", in, total, shape)
		}
		out[infer] = total / known
	} else if known != total {
		return n.errf("cannot reshape %v (%d values) to %v", in, total, shape)
	}
	if c != nil {
		im.fold(n, withDims(c, out))
		return nil
	}
	return im.reshapeTo(n, x, out)
}

func convTranspose(im *importer, n *node) error {
	c, x, err := im.data(n)
	if err != nil {
		return err
	}
	var dims []int
	if c != nil {
		dims = c.dims
	} else {
		dims = onnxDims(x)
	}
	r := len(dims)
	p, set, err := n.ints("perm", nil)
	if err != nil {
		return err
	}
	perm := make([]int, r)
	if !set {
		for i := range perm {
			perm[i] = r - 1 - i
		}
	} else {
		if len(p) != r {
			return n.errf("perm %v for a value of %d dimensions", p, r)
		}
		seen := make([]bool, r)
		for i, v := range p {
			if v < 0 || v >= int64(r) || seen[v] {
				return n.errf("perm %v is not a permutation of 0..%d", p, r-1)
			}
			seen[v] = true
			perm[i] = int(v)
		}
	}
	out := make([]int, r)
	for i, q := range perm {
		out[i] = dims[q]
	}
	if c != nil {
		if err := im.spend(n, c.size(), "folding it"); err != nil {
			return err
		}
		t := &ir.Transpose{Perm: perm}
		g := t.Gather(dims)
		res := &constant{dims: out, integer: c.integer}
		if c.integer {
			res.i = make([]int64, len(g))
			for i, j := range g {
				res.i[i] = c.i[j]
			}
		} else {
			res.f = make([]float64, len(g))
			for i, j := range g {
				res.f[i] = c.f[j]
			}
		}
		im.fold(n, res)
		return nil
	}
	if perm[0] != 0 {
		return n.errf("perm %v moves the batch dimension; only transposes that keep the batch dimension first are supported", perm)
	}
	if n.inputs[0] == im.input && eqInts(perm, []int{0, 3, 1, 2}) {
		im.layout = "NHWC"
	}
	// Moving only axes of size 1 keeps the data order: a reshape.
	last, keeps := -1, true
	for _, q := range perm {
		if dims[q] == 1 {
			continue
		}
		if q < last {
			keeps = false
		}
		last = q
	}
	if keeps {
		return im.reshapeTo(n, x, out)
	}
	irPerm := make([]int, r-1)
	for i := range irPerm {
		irPerm[i] = perm[i+1] - 1
	}
	return im.emit(n, ir.OpTranspose, []*value{x}, out[1:], func(nd *ir.Node) { nd.Transpose = &ir.Transpose{Perm: irPerm} })
}

// axesOf reads the axes of Squeeze or Unsqueeze: an attribute before
// opset 13, an optional input from 13 on.
func (im *importer) axesOf(n *node) ([]int64, bool, error) {
	if n.has(1) {
		v, err := im.intsInput(n, 1, "axes")
		return v, true, err
	}
	return n.ints("axes", nil)
}

func convUnsqueeze(im *importer, n *node) error {
	c, x, err := im.data(n)
	if err != nil {
		return err
	}
	axes, set, err := im.axesOf(n)
	if err != nil {
		return err
	}
	if !set {
		return n.errf("axes are missing")
	}
	var dims []int
	if c != nil {
		dims = c.dims
	} else {
		dims = onnxDims(x)
	}
	r := len(dims) + len(axes)
	if r > 8 {
		return n.errf("gives %d dimensions; at most 8 are supported", r)
	}
	ins := make([]bool, r)
	for _, a := range axes {
		if a < -int64(r) || a >= int64(r) {
			return n.errf("axis %d is out of range for %d dimensions", a, r)
		}
		if a < 0 {
			a += int64(r)
		}
		if ins[a] {
			return n.errf("axes %v repeat an axis", axes)
		}
		ins[a] = true
	}
	out := make([]int, 0, r)
	k := 0
	for i := 0; i < r; i++ {
		if ins[i] {
			out = append(out, 1)
		} else {
			out = append(out, dims[k])
			k++
		}
	}
	if c != nil {
		im.fold(n, withDims(c, out))
		return nil
	}
	return im.reshapeTo(n, x, out)
}

func convSqueeze(im *importer, n *node) error {
	c, x, err := im.data(n)
	if err != nil {
		return err
	}
	axes, set, err := im.axesOf(n)
	if err != nil {
		return err
	}
	var dims []int
	if c != nil {
		dims = c.dims
	} else {
		dims = onnxDims(x)
	}
	r := len(dims)
	drop := make([]bool, r)
	if !set {
		for i, d := range dims {
			drop[i] = d == 1
		}
	}
	for _, a := range axes {
		if a < -int64(r) || a >= int64(r) {
			return n.errf("axis %d is out of range for %d dimensions", a, r)
		}
		if a < 0 {
			a += int64(r)
		}
		if dims[a] != 1 {
			return n.errf("axis %d has size %d; only axes of size 1 can be squeezed", a, dims[a])
		}
		drop[a] = true
	}
	var out []int
	for i, d := range dims {
		if !drop[i] {
			out = append(out, d)
		}
	}
	if c != nil {
		im.fold(n, withDims(c, out))
		return nil
	}
	return im.reshapeTo(n, x, out)
}

func convCast(im *importer, n *node) error {
	to, err := n.int("to", 0)
	if err != nil {
		return err
	}
	if int64(int32(to)) != to {
		return n.errf("cast to type %d is not supported", to)
	}
	var integer bool
	switch int32(to) {
	case dtFloat, dtDouble:
	case dtInt64, dtInt32:
		integer = true
	default:
		return n.errf("cast to %s is not supported (FLOAT, DOUBLE, INT64 and INT32 are)", dtypeName(int32(to)))
	}
	c, x, err := im.data(n)
	if err != nil {
		return err
	}
	if x != nil {
		if integer {
			return n.errf("casting a computed value to an integer type is not supported")
		}
		im.alias(n, x)
		return nil
	}
	if integer != c.integer {
		if err := im.spend(n, c.size(), "folding it"); err != nil {
			return err
		}
	}
	out := &constant{dims: c.dims, integer: integer}
	switch {
	case integer && c.integer:
		out.i = c.i
	case integer:
		out.i = make([]int64, len(c.f))
		for k, v := range c.f {
			if math.IsNaN(v) || math.Abs(v) >= 1<<62 {
				return n.errf("cannot cast %g to an integer", v)
			}
			out.i[k] = int64(v)
		}
	default:
		out.f = c.floats()
	}
	if integer && int32(to) == dtInt32 {
		for _, v := range out.i {
			if v < math.MinInt32 || v > math.MaxInt32 {
				return n.errf("cannot cast %d to INT32", v)
			}
		}
	}
	im.fold(n, out)
	return nil
}

func convShape(im *importer, n *node) error {
	c, x, err := im.data(n)
	if err != nil {
		return err
	}
	var dims []int
	if c != nil {
		dims = c.dims
	} else {
		dims = onnxDims(x) // the batch is 1
	}
	r := int64(len(dims))
	start, err := n.int("start", 0)
	if err != nil {
		return err
	}
	end, err := n.int("end", r)
	if err != nil {
		return err
	}
	clamp := func(v int64) int64 {
		if v < 0 {
			v += r
		}
		return min(max(v, 0), r)
	}
	start, end = clamp(start), clamp(end)
	if err := im.spend(n, int(max(end-start, 0)), "folding it"); err != nil {
		return err
	}
	out := &constant{integer: true, i: []int64{}}
	for k := start; k < end; k++ {
		out.i = append(out.i, int64(dims[k]))
	}
	out.dims = []int{len(out.i)}
	im.fold(n, out)
	return nil
}

func convGather(im *importer, n *node) error {
	if !im.isConst(n.inputs[0]) {
		return n.errf("Gather on a computed value is not supported (Gather is folded on constants only)")
	}
	data, err := im.cnst(n, 0, "the data")
	if err != nil {
		return err
	}
	idx, err := im.cnst(n, 1, "the indices")
	if err != nil {
		return err
	}
	if !idx.integer {
		return n.errf("the indices must be integers")
	}
	r := int64(len(data.dims))
	axis, err := n.int("axis", 0)
	if err != nil {
		return err
	}
	if r == 0 || axis < -r || axis >= r {
		return n.errf("axis %d is out of range for data of shape %v", axis, data.dims)
	}
	if axis < 0 {
		axis += r
	}
	var dims64 []int64
	for _, d := range data.dims[:axis] {
		dims64 = append(dims64, int64(d))
	}
	for _, d := range idx.dims {
		dims64 = append(dims64, int64(d))
	}
	for _, d := range data.dims[axis+1:] {
		dims64 = append(dims64, int64(d))
	}
	dims, size, err := elems(dims64)
	if err != nil {
		return n.errf("the result %v", err)
	}
	if err := im.spend(n, size, "folding it"); err != nil {
		return err
	}
	outer, inner, ax := ir.Prod(data.dims[:axis]), ir.Prod(data.dims[axis+1:]), data.dims[axis]
	out := &constant{dims: dims, integer: data.integer}
	if data.integer {
		out.i = make([]int64, 0, size)
	} else {
		out.f = make([]float64, 0, size)
	}
	for o := 0; o < outer; o++ {
		for _, k := range idx.i {
			if k < 0 {
				k += int64(ax)
			}
			if k < 0 || k >= int64(ax) {
				return n.errf("index %d is out of range for axis %d of size %d", k, axis, ax)
			}
			from := (o*ax + int(k)) * inner
			if data.integer {
				out.i = append(out.i, data.i[from:from+inner]...)
			} else {
				out.f = append(out.f, data.f[from:from+inner]...)
			}
		}
	}
	im.fold(n, out)
	return nil
}

func convConcat(im *importer, n *node) error {
	var cs []*constant
	for k, in := range n.inputs {
		if in == "" {
			return n.errf("input %d is empty", k)
		}
		if !im.isConst(in) {
			return n.errf("Concat of computed values is not supported (Concat is folded on constants only)")
		}
		c, err := im.cnst(n, k, fmt.Sprintf("input %d", k))
		if err != nil {
			return err
		}
		cs = append(cs, c)
	}
	axis, err := n.int("axis", math.MinInt64)
	if err != nil {
		return err
	}
	if axis == math.MinInt64 {
		return n.errf("axis is missing")
	}
	first := cs[0]
	r := int64(len(first.dims))
	if r == 0 || axis < -r || axis >= r {
		return n.errf("axis %d is out of range for inputs of shape %v", axis, first.dims)
	}
	if axis < 0 {
		axis += r
	}
	total := 0
	for _, c := range cs {
		if len(c.dims) != len(first.dims) || c.integer != first.integer {
			return n.errf("inputs of shapes %v and %v (or types) do not concatenate", first.dims, c.dims)
		}
		for i := range c.dims {
			if int64(i) != axis && c.dims[i] != first.dims[i] {
				return n.errf("inputs of shapes %v and %v do not concatenate on axis %d", first.dims, c.dims, axis)
			}
		}
		if total += c.dims[axis]; total > ir.MaxTensorElems {
			return n.errf("the result is too large")
		}
	}
	dims := append([]int(nil), first.dims...)
	dims[axis] = total
	if ir.Prod(dims) > ir.MaxTensorElems {
		return n.errf("the result is too large")
	}
	if err := im.spend(n, ir.Prod(dims), "folding it"); err != nil {
		return err
	}
	outer := ir.Prod(first.dims[:axis])
	out := &constant{dims: dims, integer: first.integer}
	if first.integer {
		out.i = make([]int64, 0, ir.Prod(dims))
	} else {
		out.f = make([]float64, 0, ir.Prod(dims))
	}
	for o := 0; o < outer; o++ {
		for _, c := range cs {
			chunk := ir.Prod(c.dims[axis:])
			if c.integer {
				out.i = append(out.i, c.i[o*chunk:(o+1)*chunk]...)
			} else {
				out.f = append(out.f, c.f[o*chunk:(o+1)*chunk]...)
			}
		}
	}
	im.fold(n, out)
	return nil
}

// constantNode decodes the value of a Constant node, charging its elements
// to the budget. readAttrs checked the sizes against ir.MaxTensorElems;
// they are checked again here, before anything is allocated.
func (im *importer) constantNode(n *node) (*constant, error) {
	if len(n.attrs) != 1 {
		return nil, n.errf("has %d value attributes; want exactly one", len(n.attrs))
	}
	for name, a := range n.attrs {
		switch name {
		case "value":
			t := a.GetT()
			if t == nil {
				return nil, n.errf("attribute value has no tensor")
			}
			if err := checkTensor(t); err != nil {
				return nil, n.errf("value %v", err)
			}
			_, size, _ := elems(t.GetDims())
			if err := im.spend(n, size, "its value"); err != nil {
				return nil, err
			}
			c, err := decodeTensor(t)
			if err != nil {
				return nil, n.errf("value %v", err)
			}
			return c, nil
		case "value_float":
			f, err := n.float(name, 0)
			if err != nil {
				return nil, err
			}
			return &constant{dims: []int{}, f: []float64{f}}, im.spend(n, 1, "its value")
		case "value_int":
			i, err := n.int(name, 0)
			if err != nil {
				return nil, err
			}
			return &constant{dims: []int{}, integer: true, i: []int64{i}}, im.spend(n, 1, "its value")
		case "value_floats":
			if _, _, err := n.attr(name, onnxpb.AttributeProto_FLOATS); err != nil {
				return nil, err
			}
			v := a.GetFloats()
			if err := im.listSize(n, name, len(v)); err != nil {
				return nil, err
			}
			c := &constant{dims: []int{len(v)}, f: make([]float64, len(v))}
			for k, x := range v {
				c.f[k] = float64(x)
			}
			return c, nil
		case "value_ints":
			v, _, err := n.ints(name, nil)
			if err != nil {
				return nil, err
			}
			if err := im.listSize(n, name, len(v)); err != nil {
				return nil, err
			}
			return &constant{dims: []int{len(v)}, integer: true, i: v}, nil
		}
		return nil, n.errf("attribute %s is not supported; only numeric dense tensors are", name)
	}
	return nil, n.errf("has no value")
}

// listSize checks the length of a value_floats or value_ints list and
// charges it to the budget.
func (im *importer) listSize(n *node, name string, k int) error {
	if k > ir.MaxTensorElems {
		return n.errf("attribute %s has %d values, more than the limit of %d", name, k, ir.MaxTensorElems)
	}
	return im.spend(n, k, "its value ("+name+")")
}

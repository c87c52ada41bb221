package onnx

import (
	"math"
	"strings"
	"testing"

	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/he/onnx/internal/onnxpb"
)

// ops lists the ops of a graph's nodes.
func ops(g *ir.Graph) []ir.OpType {
	var s []ir.OpType
	for _, n := range g.Nodes {
		s = append(s, n.Op)
	}
	return s
}

func near(a, b []float64, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return false
		}
	}
	return true
}

func TestImportOK(t *testing.T) {
	x := "x"
	tests := []struct {
		name  string
		model mdl
		opts  Options
		input []float64
		want  []float64   // g.Run's output (before the tail)
		ops   []ir.OpType // nil: not checked
		check func(t *testing.T, g *ir.Graph)
	}{
		{
			// scale/sqrt(var+eps) and B - mean·scale per channel.
			name: "ok/batchnorm",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 2, 1, 2)},
				nodes:  []*onnxpb.NodeProto{nd("BatchNormalization", "bn", in(x, "s", "b", "m", "v"), in("y"), aFloat("epsilon", 0))},
				inits: []*onnxpb.TensorProto{
					floatT("s", dims(2), 2, 3), floatT("b", dims(2), 1, -1),
					floatT("m", dims(2), 0.5, 1), floatT("v", dims(2), 4, 0.25),
				},
				output: "y",
			},
			input: []float64{1, 2, 1, 2},
			// channel 0: scale 2/2 = 1, shift 1 - 0.5 = 0.5; channel 1: scale 3/0.5 = 6, shift -1 - 6 = -7.
			want: []float64{1.5, 2.5, -1, 5},
			ops:  []ir.OpType{ir.OpAffine},
			check: func(t *testing.T, g *ir.Graph) {
				a := g.Nodes[0].Affine
				if !near(a.Scale, []float64{1, 6}, 1e-12) || !near(a.Shift, []float64{0.5, -7}, 1e-12) {
					t.Errorf("affine %+v, want scale [1 6] shift [0.5 -7]", a)
				}
			},
		},
		{
			name: "ok/batchnorm-default-epsilon-on-vector",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, 1, 2)},
				nodes:  []*onnxpb.NodeProto{nd("BatchNormalization", "", in(x, "s", "b", "m", "v"), in("y"))},
				inits: []*onnxpb.TensorProto{
					floatT("s", dims(2), 1, 1), floatT("b", dims(2), 0, 0),
					floatT("m", dims(2), 0, 0), floatT("v", dims(2), 1, 1),
				},
				output: "y",
			},
			input: []float64{1, -2},
			want:  []float64{1 / math.Sqrt(1+float64(float32(1e-5))), -2 / math.Sqrt(1+float64(float32(1e-5)))},
			check: func(t *testing.T, g *ir.Graph) {
				if g.Nodes[0].Name != "BatchNormalization_0" {
					t.Errorf("generated node name %q, want BatchNormalization_0", g.Nodes[0].Name)
				}
			},
		},
		{
			// y = alpha·B·x + beta·C with B stored [N,K] (transB=1).
			name: "ok/gemm-transB-alpha-beta",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "batch", 3)},
				nodes: []*onnxpb.NodeProto{nd("Gemm", "fc", in(x, "B", "C"), in("y"),
					aFloat("alpha", 2), aFloat("beta", 0.5), aInt("transB", 1))},
				inits:  []*onnxpb.TensorProto{floatT("B", dims(2, 3), 1, 2, 3, 4, 5, 6), floatT("C", dims(2), 10, 20)},
				output: "y",
			},
			input: []float64{1, 0, -1},
			// B·x = [-2, -2]; 2·[-2,-2] + 0.5·[10,20] = [1, 6].
			want: []float64{1, 6},
			ops:  []ir.OpType{ir.OpDense},
			check: func(t *testing.T, g *ir.Graph) {
				d := g.Nodes[0].Dense
				if d.In != 3 || d.Out != 2 || !near(d.Weights, []float64{2, 4, 6, 8, 10, 12}, 0) || !near(d.Bias, []float64{5, 10}, 0) {
					t.Errorf("dense %+v", d)
				}
			},
		},
		{
			// B stored [K,N] (transB=0), C of shape [1,N].
			name: "ok/gemm-transB-0",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, 1, 3)},
				nodes:  []*onnxpb.NodeProto{nd("Gemm", "fc", in(x, "B", "C"), in("y"))},
				inits:  []*onnxpb.TensorProto{floatT("B", dims(3, 2), 1, 4, 2, 5, 3, 6), floatT("C", dims(1, 2), 10, 20)},
				output: "y",
			},
			input: []float64{1, 0, -1},
			want:  []float64{8, 18},
		},
		{
			name: "ok/gemm-scalar-bias",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, 1, 2)},
				nodes:  []*onnxpb.NodeProto{nd("Gemm", "fc", in(x, "B", "C"), in("y"), aInt("transB", 1))},
				inits:  []*onnxpb.TensorProto{floatT("B", dims(1, 2), 1, 1), floatT("C", nil, 7)},
				output: "y",
			},
			input: []float64{1, 2},
			want:  []float64{10},
		},
		{
			// MatMul W[K,N] then Add b[N] become one dense layer.
			name: "ok/matmul-add-fused",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 3)},
				nodes: []*onnxpb.NodeProto{
					nd("MatMul", "mm", in(x, "W"), in("t")),
					nd("Add", "bias", in("t", "b"), in("y")),
				},
				inits:  []*onnxpb.TensorProto{floatT("W", dims(3, 2), 1, 4, 2, 5, 3, 6), floatT("b", dims(2), 0.5, -0.5)},
				output: "y",
			},
			input: []float64{1, 1, 1},
			want:  []float64{6.5, 14.5},
			ops:   []ir.OpType{ir.OpDense},
			check: func(t *testing.T, g *ir.Graph) {
				if g.Output != "y" || g.Nodes[0].Output != "y" || !near(g.Nodes[0].Dense.Bias, []float64{0.5, -0.5}, 0) {
					t.Errorf("output %q, node %+v", g.Output, g.Nodes[0])
				}
			},
		},
		{
			// The MatMul result is read twice: the bias is not fused.
			name: "ok/matmul-add-shared-not-fused",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 3)},
				nodes: []*onnxpb.NodeProto{
					nd("MatMul", "mm", in(x, "W"), in("t")),
					nd("Add", "bias", in("b", "t"), in("u")),
					nd("Add", "res", in("u", "t"), in("y")),
				},
				inits:  []*onnxpb.TensorProto{floatT("W", dims(3, 2), 1, 4, 2, 5, 3, 6), floatT("b", dims(1, 2), 0.5, -0.5)},
				output: "y",
			},
			input: []float64{1, 1, 1},
			want:  []float64{12.5, 29.5},
			ops:   []ir.OpType{ir.OpDense, ir.OpAffine, ir.OpAdd},
		},
		{
			// 0 copies a dimension, -1 is inferred; the batch stays first.
			name: "ok/reshape-0-and-minus1",
			model: mdl{
				opset:  11,
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 2, 2, 3)},
				nodes: []*onnxpb.NodeProto{
					nd("Reshape", "r1", in(x, "s1"), in("a")),
					nd("Relu", "relu", in("a"), in("b")),
					nd("Constant", "c", nil, in("s2"), aTensor("value", intT("", dims(2), -1, 12))),
					nd("Reshape", "r2", in("b", "s2"), in("y")),
				},
				inits:  []*onnxpb.TensorProto{intT("s1", dims(4), 0, 3, -1, 2)},
				output: "y",
			},
			input: []float64{1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12},
			want:  []float64{1, 0, 3, 0, 5, 0, 7, 0, 9, 0, 11, 0},
			ops:   []ir.OpType{ir.OpReshape, ir.OpRelu, ir.OpReshape},
			check: func(t *testing.T, g *ir.Graph) {
				if s := g.Nodes[0].Reshape.Shape; !eqInts(s, []int{3, 2, 2}) {
					t.Errorf("first reshape to %v, want [3 2 2]", s)
				}
				if s := g.Nodes[2].Reshape.Shape; !eqInts(s, []int{12}) {
					t.Errorf("second reshape to %v, want [12]", s)
				}
			},
		},
		{
			// A reshape to the same shape is dropped; Flatten of a vector too.
			name: "ok/reshape-same-shape-dropped",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 4)},
				nodes: []*onnxpb.NodeProto{
					nd("Reshape", "r", in(x, "s"), in("a")),
					nd("Flatten", "f", in("a"), in("b")),
					nd("Relu", "relu", in("b"), in("y")),
				},
				inits:  []*onnxpb.TensorProto{intT("s", dims(2), 1, 4)},
				output: "y",
			},
			input: []float64{-1, 2, -3, 4},
			want:  []float64{0, 2, 0, 4},
			ops:   []ir.OpType{ir.OpRelu},
			check: func(t *testing.T, g *ir.Graph) {
				if g.Nodes[0].Inputs[0] != "x" {
					t.Errorf("relu reads %q, want x", g.Nodes[0].Inputs[0])
				}
			},
		},
		{
			// 5×5, kernel 2, stride 2, SAME_UPPER: 3×3 output, pads [0,0,1,1].
			name: "ok/conv-auto-pad-same-upper",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 1, 5, 5)},
				nodes: []*onnxpb.NodeProto{nd("Conv", "conv", in(x, "W"), in("y"),
					aStr("auto_pad", "SAME_UPPER"), aInts("strides", 2, 2), aInts("kernel_shape", 2, 2))},
				inits:  []*onnxpb.TensorProto{floatT("W", dims(1, 1, 2, 2), 1, 1, 1, 1)},
				output: "y",
			},
			input: grid(5, 5),
			want:  []float64{16, 24, 15, 56, 64, 35, 43, 47, 25},
			ops:   []ir.OpType{ir.OpConv},
			check: func(t *testing.T, g *ir.Graph) {
				if p := g.Nodes[0].Conv.Pads; p != [4]int{0, 0, 1, 1} {
					t.Errorf("pads %v, want [0 0 1 1]", p)
				}
			},
		},
		{
			name: "ok/maxpool-same-lower-and-ceil-mode-equal",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 1, 5, 5)},
				nodes: []*onnxpb.NodeProto{nd("MaxPool", "pool", in(x), in("y"),
					aStr("auto_pad", "SAME_LOWER"), aInts("strides", 2, 2), aInts("kernel_shape", 2, 2), aInt("ceil_mode", 1))},
				output: "y",
			},
			input: grid(5, 5),
			// pads [1,1,0,0]: windows start at -1, 1, 3.
			want: []float64{1, 3, 5, 11, 13, 15, 21, 23, 25},
			check: func(t *testing.T, g *ir.Graph) {
				if p := g.Nodes[0].Pool.Pads; p != [4]int{1, 1, 0, 0} {
					t.Errorf("pads %v, want [1 1 0 0]", p)
				}
			},
		},
		{
			// Rectangular kernel with explicit pads [x1_begin, x2_begin, x1_end, x2_end] and a bias.
			name: "ok/conv-asymmetric-pads-bias",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 1, 2, 3)},
				nodes: []*onnxpb.NodeProto{nd("Conv", "conv", in(x, "W", "B"), in("y"),
					aInts("pads", 1, 0, 0, 1), aInts("dilations", 1, 1), aInt("group", 1))},
				inits:  []*onnxpb.TensorProto{floatT("W", dims(1, 1, 2, 2), 1, 0, 0, 10), floatT("B", dims(1), 100)},
				output: "y",
			},
			// x = [[1,2,3],[4,5,6]], padded on top and right: [[0,0,0,0],[1,2,3,0],[4,5,6,0]].
			input: grid(2, 3),
			want:  []float64{120, 130, 100, 151, 162, 103},
			check: func(t *testing.T, g *ir.Graph) {
				c := g.Nodes[0].Conv
				if c.Pads != [4]int{1, 0, 0, 1} || c.Kernel != [2]int{2, 2} {
					t.Errorf("conv pads %v kernel %v", c.Pads, c.Kernel)
				}
			},
		},
		{
			name: "ok/conv-rectangular-kernel-strides",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 1, 2, 3)},
				nodes:  []*onnxpb.NodeProto{nd("Conv", "conv", in(x, "W"), in("y"), aInts("strides", 1, 2))},
				inits:  []*onnxpb.TensorProto{floatT("W", dims(1, 1, 2, 1), 1, 10)},
				output: "y",
			},
			input: grid(2, 3),
			want:  []float64{41, 63},
		},
		{
			name: "ok/avgpool-count-include-pad-and-global",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 1, 2, 2)},
				nodes: []*onnxpb.NodeProto{
					nd("AveragePool", "ap", in(x), in("a"), aInts("kernel_shape", 2, 2), aInts("pads", 1, 1, 0, 0), aInt("count_include_pad", 1)),
					nd("GlobalAveragePool", "gap", in("a"), in("y")),
				},
				output: "y",
			},
			// windows: {1}/4, {1,2}/4, {1,3}/4, {1,2,3,4}/4 → mean of [0.25 0.75 1 2.5].
			input: []float64{1, 2, 3, 4},
			want:  []float64{1.125},
			ops:   []ir.OpType{ir.OpAvgPool, ir.OpGlobalAvgPool},
		},
		{
			// Identity and Dropout (inference, mask unused) disappear.
			name: "ok/identity-dropout-removed",
			model: mdl{
				opset:  12,
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 3)},
				nodes: []*onnxpb.NodeProto{
					nd("Identity", "id1", in(x), in("a")),
					nd("Relu", "relu", in("a"), in("b")),
					nd("Dropout", "drop", in("b", "ratio", "train"), in("c", "mask"), aInt("seed", 3)),
					nd("Identity", "id2", in("c"), in("y")),
				},
				inits:  []*onnxpb.TensorProto{floatT("ratio", nil, 0.5), {Name: "train", DataType: dtBool, RawData: []byte{0}}},
				output: "y",
			},
			input: []float64{-1, 0, 2},
			want:  []float64{0, 0, 2},
			ops:   []ir.OpType{ir.OpRelu},
			check: func(t *testing.T, g *ir.Graph) {
				n := g.Nodes[0]
				if n.Inputs[0] != "x" || g.Output != n.Output || n.Output != "b" {
					t.Errorf("relu %+v, output %q", n, g.Output)
				}
			},
		},
		{
			// A trailing ArgMax moves to the tail; the output is the value before it.
			name: "ok/argmax-tail",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 3)},
				nodes: []*onnxpb.NodeProto{
					nd("Gemm", "fc", in(x, "B"), in("logits"), aInt("transB", 1)),
					nd("ArgMax", "am", in("logits"), in("y"), aInt("axis", 1), aInt("keepdims", 1)),
				},
				inits:  []*onnxpb.TensorProto{floatT("B", dims(2, 3), 1, 0, 0, 0, 0, 1)},
				output: "y",
			},
			input: []float64{1, 5, 3},
			want:  []float64{1, 3},
			ops:   []ir.OpType{ir.OpDense},
			check: func(t *testing.T, g *ir.Graph) {
				if len(g.Tail) != 1 || g.Tail[0] != ir.TailArgMax || g.Output != "logits" {
					t.Errorf("tail %v, output %q", g.Tail, g.Output)
				}
				if got := g.ApplyTail([]float64{1, 3}); len(got) != 1 || got[0] != 1 {
					t.Errorf("ApplyTail %v, want [1]", got)
				}
			},
		},
		{
			// keras2onnx: Softmax, then an Identity to the output.
			name: "ok/softmax-identity-tail",
			model: mdl{
				opset:  10,
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 2)},
				nodes: []*onnxpb.NodeProto{
					nd("Identity", "id", in("sm"), in("y")),
					nd("Softmax", "softmax", in("r"), in("sm"), aInt("axis", -1)),
					nd("Relu", "relu", in(x), in("r")),
				},
				output: "y",
			},
			input: []float64{-1, 1},
			want:  []float64{0, 1},
			check: func(t *testing.T, g *ir.Graph) {
				if len(g.Tail) != 1 || g.Tail[0] != ir.TailSoftmax {
					t.Errorf("tail %v", g.Tail)
				}
			},
		},
		{
			name: "ok/logsoftmax-then-nothing",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 2)},
				nodes: []*onnxpb.NodeProto{
					nd("Relu", "relu", in(x), in("r")),
					nd("LogSoftmax", "lsm", in("r"), in("y"), aInt("axis", 1)),
				},
				output: "y",
			},
			input: []float64{-1, 1},
			want:  []float64{0, 1},
			check: func(t *testing.T, g *ir.Graph) {
				if len(g.Tail) != 1 || g.Tail[0] != ir.TailLogSoftmax {
					t.Errorf("tail %v", g.Tail)
				}
			},
		},
		{
			// Constants on either side of Sub, Mul and Div, per channel or scalar.
			name: "ok/arithmetic-with-constants",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 2, 1, 1)},
				nodes: []*onnxpb.NodeProto{
					nd("Sub", "sub", in(x, "mean"), in("a")),    // x - [1,2]
					nd("Div", "div", in("a", "std"), in("b")),   // / [2,4]
					nd("Mul", "mul", in("three", "b"), in("c")), // 3·
					nd("Sub", "rsub", in("ten", "c"), in("d")),  // 10 -
					nd("Add", "add", in("d", "shift"), in("y")), // + [0,1]
				},
				inits: []*onnxpb.TensorProto{
					floatT("mean", dims(1, 2, 1, 1), 1, 2), floatT("std", dims(2, 1, 1), 2, 4),
					floatT("three", nil, 3), floatT("ten", dims(1), 10), floatT("shift", dims(2, 1, 1), 0, 1),
				},
				output: "y",
			},
			input: []float64{5, 6},
			// a = [4, 4]; b = [2, 1]; c = [6, 3]; d = [4, 7]; y = [4, 8].
			want: []float64{4, 8},
			ops:  []ir.OpType{ir.OpAffine, ir.OpAffine, ir.OpAffine, ir.OpAffine, ir.OpAffine},
		},
		{
			// Two computed values of one shape (a residual connection).
			name: "ok/add-two-values",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 1, 1, 2)},
				nodes: []*onnxpb.NodeProto{
					nd("Relu", "relu", in(x), in("r")),
					nd("Add", "res", in("r", x), in("y")),
				},
				output: "y",
			},
			input: []float64{-1, 2},
			want:  []float64{-1, 4},
			ops:   []ir.OpType{ir.OpRelu, ir.OpAdd},
		},
		{
			// NHWC input: the transpose to NCHW is a real transpose with 2 channels.
			name: "ok/nhwc-input-transpose",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 2, 2, 2)},
				nodes: []*onnxpb.NodeProto{
					nd("Transpose", "t", in(x), in("a"), aInts("perm", 0, 3, 1, 2)),
					nd("Relu", "relu", in("a"), in("y")),
				},
				output: "y",
			},
			opts:  Options{Preprocess: &ir.Preprocess{Scale: 1.0 / 255, Std: 1}},
			input: []float64{1, 2, 3, 4, 5, 6, 7, 8}, // [h][w][c]
			want:  []float64{1, 3, 5, 7, 2, 4, 6, 8},
			ops:   []ir.OpType{ir.OpTranspose, ir.OpRelu},
			check: func(t *testing.T, g *ir.Graph) {
				if p := g.Nodes[0].Transpose.Perm; !eqInts(p, []int{2, 0, 1}) {
					t.Errorf("perm %v, want [2 0 1]", p)
				}
				if g.Input.Preprocess == nil || g.Input.Preprocess.Layout != "NHWC" || g.Source["layout"] != "NHWC" {
					t.Errorf("preprocess %+v, source layout %v", g.Input.Preprocess, g.Source["layout"])
				}
			},
		},
		{
			// One channel: NHWC to NCHW keeps the data order, a reshape.
			name: "ok/nhwc-one-channel-reshape",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 2, 2, 1)},
				nodes: []*onnxpb.NodeProto{
					nd("Transpose", "t", in(x), in("a"), aInts("perm", 0, 3, 1, 2)),
					nd("Relu", "relu", in("a"), in("y")),
				},
				output: "y",
			},
			input: []float64{1, -2, 3, -4},
			want:  []float64{1, 0, 3, 0},
			ops:   []ir.OpType{ir.OpReshape, ir.OpRelu},
			check: func(t *testing.T, g *ir.Graph) {
				if s := g.Nodes[0].Reshape.Shape; !eqInts(s, []int{1, 2, 2}) || g.Source["layout"] != "NHWC" || g.Input.Preprocess != nil {
					t.Errorf("reshape %v, layout %v, preprocess %+v", s, g.Source["layout"], g.Input.Preprocess)
				}
			},
		},
		{
			// Old PyTorch x.view(x.size(0), -1): Shape, Gather, Unsqueeze, Concat fold to a constant.
			name: "ok/shape-gather-unsqueeze-concat-reshape",
			model: mdl{
				opset:  11,
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 2, 1, 2)},
				nodes: []*onnxpb.NodeProto{
					nd("Shape", "shape", in(x), in("s")),
					nd("Constant", "zero", nil, in("i0"), aTensor("value", intT("", nil, 0))),
					nd("Gather", "gather", in("s", "i0"), in("n"), aInt("axis", 0)),
					nd("Unsqueeze", "unsq", in("n"), in("n1"), aInts("axes", 0)),
					nd("Concat", "cat", in("n1", "minus1"), in("shape2"), aInt("axis", 0)),
					nd("Reshape", "flat", in(x, "shape2"), in("f")),
					nd("Gemm", "fc", in("f", "B"), in("y"), aInt("transB", 1)),
				},
				inits:  []*onnxpb.TensorProto{intT("minus1", dims(1), -1), floatT("B", dims(1, 4), 1, 1, 1, 1)},
				output: "y",
			},
			input: []float64{1, 2, 3, 4},
			want:  []float64{10},
			ops:   []ir.OpType{ir.OpReshape, ir.OpDense},
		},
		{
			// keras2onnx lists the initializers among the graph inputs; typed data fields.
			name: "ok/initializers-listed-as-inputs-typed-data",
			model: mdl{
				opset:  9,
				inputs: []*onnxpb.ValueInfoProto{valueInfo("W", 2, 2), valueInfo(x, "N", 2), valueInfo("b", 2)},
				nodes: []*onnxpb.NodeProto{
					nd("MatMul", "mm", in(x, "W"), in("t")),
					nd("Add", "add", in("t", "b"), in("y")),
				},
				inits: []*onnxpb.TensorProto{
					{Name: "W", Dims: dims(2, 2), DataType: dtFloat, FloatData: []float32{1, 2, 3, 4}},
					{Name: "b", Dims: dims(2), DataType: dtDouble, DoubleData: []float64{0.25, 0.5}},
				},
				output: "y",
			},
			input: []float64{1, 1},
			want:  []float64{4.25, 6.5},
			ops:   []ir.OpType{ir.OpDense},
		},
		{
			// Nodes out of order (as keras2onnx writes them) and a dead branch.
			name: "ok/unsorted-nodes-dead-branch",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 2)},
				nodes: []*onnxpb.NodeProto{
					nd("Relu", "second", in("a"), in("y")),
					nd("Relu", "dead", in(x), in("unused")),
					nd("Add", "first", in(x, "one"), in("a")),
				},
				inits:  []*onnxpb.TensorProto{floatT("one", nil, 1)},
				output: "y",
			},
			input: []float64{-3, 3},
			want:  []float64{0, 4},
			ops:   []ir.OpType{ir.OpAffine, ir.OpRelu},
		},
		{
			// Two layers with one weight tensor get their own copies.
			name: "ok/shared-weights-not-aliased",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, "N", 2)},
				nodes: []*onnxpb.NodeProto{
					nd("Gemm", "fc1", in(x, "B"), in("a"), aInt("transB", 1)),
					nd("Gemm", "fc2", in("a", "B"), in("y"), aInt("transB", 1)),
				},
				inits:  []*onnxpb.TensorProto{floatT("B", dims(2, 2), 0, 1, 1, 0)},
				output: "y",
			},
			input: []float64{1, 2},
			want:  []float64{1, 2},
			check: func(t *testing.T, g *ir.Graph) {
				if &g.Nodes[0].Dense.Weights[0] == &g.Nodes[1].Dense.Weights[0] {
					t.Error("the two dense layers share one weight slice")
				}
			},
		},
		{
			name: "ok/name-from-graph",
			model: mdl{
				name:   "My Graph: v2!",
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, 1, 1)},
				nodes:  []*onnxpb.NodeProto{nd("Relu", "r", in(x), in("y"))},
				output: "y",
			},
			input: []float64{2},
			want:  []float64{2},
			check: func(t *testing.T, g *ir.Graph) {
				if g.Name != "My-Graph-v2" {
					t.Errorf("name %q, want My-Graph-v2", g.Name)
				}
				if g.Source["producer_name"] != "hegate-test" || g.Source["opset"] != int64(13) || len(g.Source["sha256"].(string)) != 64 {
					t.Errorf("source %v", g.Source)
				}
			},
		},
		{
			name: "ok/name-option-and-long-value-names",
			model: mdl{
				inputs: []*onnxpb.ValueInfoProto{valueInfo(x, 1, 1)},
				nodes:  []*onnxpb.NodeProto{nd("Relu", "", in(x), in(strings.Repeat("y", 300)))},
				output: strings.Repeat("y", 300),
			},
			opts:  Options{Name: "mnist-small"},
			input: []float64{-2},
			want:  []float64{0},
			check: func(t *testing.T, g *ir.Graph) {
				if g.Name != "mnist-small" || len(g.Output) > 256 || g.Nodes[0].Name != "Relu_0" {
					t.Errorf("name %q, output %q, node %q", g.Name, g.Output, g.Nodes[0].Name)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var pre ir.Preprocess
			if tc.opts.Preprocess != nil {
				pre = *tc.opts.Preprocess
			}
			g, err := importBytes(tc.model.bytes(t), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Validate(); err != nil {
				t.Fatal(err)
			}
			if tc.opts.Preprocess != nil && *tc.opts.Preprocess != pre {
				t.Errorf("Import changed the caller's Preprocess to %+v", *tc.opts.Preprocess)
			}
			if tc.ops != nil && !eqOps(ops(g), tc.ops) {
				t.Errorf("ops %v, want %v", ops(g), tc.ops)
			}
			got, err := g.Run(tc.input)
			if err != nil {
				t.Fatal(err)
			}
			if !near(got, tc.want, 1e-9) {
				t.Errorf("output %v, want %v", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, g)
			}
		})
	}
}

func eqOps(a, b []ir.OpType) bool {
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

// grid is the h×w image 1, 2, ..., h·w in row-major order.
func grid(h, w int) []float64 {
	v := make([]float64, h*w)
	for k := range v {
		v[k] = float64(k + 1)
	}
	return v
}

package onnx

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he/onnx/internal/onnxpb"
)

// base is a small valid network: Conv, Relu, Flatten, Gemm, Softmax.
func base() mdl {
	return mdl{
		inputs: []*onnxpb.ValueInfoProto{valueInfo("x", "N", 1, 4, 4)},
		nodes: []*onnxpb.NodeProto{
			nd("Conv", "conv", in("x", "W", "B"), in("c"), aInts("kernel_shape", 3, 3)),
			nd("Relu", "relu", in("c"), in("r")),
			nd("Flatten", "flat", in("r"), in("f")),
			nd("Gemm", "fc", in("f", "FW", "FB"), in("logits"), aInt("transB", 1)),
			nd("Softmax", "softmax", in("logits"), in("y"), aInt("axis", 1)),
		},
		inits: []*onnxpb.TensorProto{
			floatT("W", dims(2, 1, 3, 3), seq(18)...), floatT("B", dims(2), 1, 2),
			floatT("FW", dims(3, 8), seq(24)...), floatT("FB", dims(3), 1, 2, 3),
		},
		output: "y",
	}
}

// with returns base() changed by f.
func with(f func(m *mdl)) func(t testing.TB) []byte {
	return func(t testing.TB) []byte {
		m := base()
		f(&m)
		return m.bytes(t)
	}
}

// withProto returns base()'s proto changed by f.
func withProto(f func(m *onnxpb.ModelProto)) func(t testing.TB) []byte {
	return func(t testing.TB) []byte {
		m := base().proto()
		f(m)
		return marshal(t, m)
	}
}

func raw(b []byte) func(t testing.TB) []byte { return func(testing.TB) []byte { return b } }

// initNamed returns the initializer of m with the name.
func initNamed(m *mdl, name string) *onnxpb.TensorProto {
	for _, t := range m.inits {
		if t.Name == name {
			return t
		}
	}
	panic("no initializer " + name)
}

// checkRefused imports data and checks the error's kind and detail, and
// that the import allocated a bounded amount of memory.
func checkRefused(t *testing.T, data []byte, opts Options, kind hegate.Kind, want []string) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	g, err := importBytes(data, opts)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatalf("imported %d nodes (%v); want an error", len(g.Nodes), ops(g))
	}
	if got := hegate.KindOf(err); got != kind {
		t.Fatalf("kind %v, want %v: %v", got, kind, err)
	}
	detail := hegate.DetailOf(err)
	if detail == "" {
		t.Fatalf("no client-safe detail: %v", err)
	}
	for _, w := range want {
		if !strings.Contains(detail, w) {
			t.Errorf("detail %q does not mention %q", detail, w)
		}
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20+8*uint64(len(data)) {
		t.Errorf("allocated %d MB for a %d-byte file", alloc>>20, len(data))
	}
}

func TestImportFail(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	noise := make([]byte, 4096)
	for k := range noise {
		noise[k] = byte(rng.UintN(256))
	}
	tests := []struct {
		name string
		data func(t testing.TB) []byte
		opts Options
		kind hegate.Kind // KindInvalid when zero
		want []string
	}{
		{name: "fail/empty", data: raw(nil), want: []string{"empty"}},
		{name: "fail/garbage-text", data: raw([]byte("this is not an ONNX model at all, just some text\n")), want: []string{"not an ONNX model"}},
		{name: "fail/garbage-random", data: raw(noise), want: []string{"not an ONNX model"}},
		{name: "fail/garbage-ff", data: raw(bytes.Repeat([]byte{0xff}, 1000)), want: []string{"not an ONNX model"}},
		{name: "fail/no-graph", data: raw(marshal(t, &onnxpb.ModelProto{IrVersion: 7, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 13}}})), want: []string{"no graph"}},
		{name: "fail/too-large", data: with(func(*mdl) {}), opts: Options{MaxBytes: 64}, kind: hegate.KindTooLarge, want: []string{"exceeds", "64 bytes"}},
		{
			name: "fail/cycle",
			data: with(func(m *mdl) {
				m.nodes = []*onnxpb.NodeProto{
					nd("Add", "loop_add", in("x", "b"), in("a")),
					nd("Relu", "loop_relu", in("a"), in("b")),
					nd("Relu", "out", in("a"), in("y")),
				}
			}),
			want: []string{"cycle", "loop_"},
		},
		{
			name: "fail/self-loop",
			data: with(func(m *mdl) { m.nodes = []*onnxpb.NodeProto{nd("Add", "self", in("x", "y"), in("y"))} }),
			want: []string{`node 0 ("self", Add)`, "cycle"},
		},
		{name: "fail/input-negative-dim", data: with(func(m *mdl) { m.inputs[0] = valueInfo("x", "N", 1, -5, 4) }), want: []string{"dimension 2 is -5"}},
		{name: "fail/input-absurd-dim", data: with(func(m *mdl) { m.inputs[0] = valueInfo("x", "N", 1, int64(1)<<40, 4) }), want: []string{"dimension 2 is 1099511627776"}},
		{name: "fail/input-too-many-values", data: with(func(m *mdl) { m.inputs[0] = valueInfo("x", "N", 1, 4096, 4096) }), want: []string{"more than 4194304 values"}},
		{name: "fail/input-symbolic-dim", data: with(func(m *mdl) { m.inputs[0] = valueInfo("x", "N", 1, "height", 4) }), want: []string{"symbolic", "fixed input size"}},
		{name: "fail/input-unknown-dim", data: with(func(m *mdl) { m.inputs[0] = valueInfo("x", "N", 1, nil, 4) }), want: []string{"dimension 2 has no size"}},
		{name: "fail/input-batch-8", data: with(func(m *mdl) { m.inputs[0] = valueInfo("x", 8, 1, 4, 4) }), want: []string{"batch dimension 8"}},
		{name: "fail/input-rank-3", data: with(func(m *mdl) { m.inputs[0] = valueInfo("x", "N", 4, 4) }), want: []string{"3 dimensions"}},
		{
			name: "fail/input-int64",
			data: with(func(m *mdl) { m.inputs[0].Type.GetTensorType().ElemType = dtInt64 }),
			want: []string{"element type INT64"},
		},
		{name: "fail/two-inputs", data: with(func(m *mdl) { m.inputs = append(m.inputs, valueInfo("mask", "N", 4)) }), want: []string{"2 inputs", `"mask"`}},
		{name: "fail/no-input", data: with(func(m *mdl) { m.inputs = nil }), want: []string{"0 inputs"}},
		{
			name: "fail/two-outputs",
			data: withProto(func(m *onnxpb.ModelProto) { m.Graph.Output = append(m.Graph.Output, valueInfo("logits")) }),
			want: []string{"2 outputs"},
		},
		{name: "fail/init-negative-dim", data: with(func(m *mdl) { initNamed(m, "W").Dims = dims(-2, 1, 3, 3) }), want: []string{`initializer "W"`, "negative dimension -2"}},
		{
			// 2^40 elements declared with 4 bytes of data: refused before allocating.
			name: "fail/init-huge-declared",
			data: with(func(m *mdl) { *initNamed(m, "W") = *floatT("W", dims(1<<20, 1<<20), 1) }),
			want: []string{`initializer "W"`, "more than 4194304 elements"},
		},
		{name: "fail/init-absurd-dim", data: with(func(m *mdl) { initNamed(m, "W").Dims = dims(1 << 62) }), want: []string{`initializer "W"`, "4611686018427387904"}},
		{name: "fail/init-raw-size", data: with(func(m *mdl) { w := initNamed(m, "W"); w.RawData = w.RawData[:12] }), want: []string{"declares 18 elements (72 bytes) but has 12 bytes of raw_data"}},
		{
			name: "fail/init-typed-count",
			data: with(func(m *mdl) {
				*initNamed(m, "B") = onnxpb.TensorProto{Name: "B", Dims: dims(2), DataType: dtFloat, FloatData: []float32{1, 2, 3}}
			}),
			want: []string{"declares 2 elements but has 3 values"},
		},
		{
			name: "fail/init-int8",
			data: with(func(m *mdl) {
				*initNamed(m, "B") = onnxpb.TensorProto{Name: "B", Dims: dims(2), DataType: 3, RawData: []byte{1, 2}}
			}),
			want: []string{"element type INT8"},
		},
		{
			name: "fail/external-data",
			data: with(func(m *mdl) {
				w := initNamed(m, "W")
				w.RawData = nil
				w.DataLocation = onnxpb.TensorProto_EXTERNAL
				w.ExternalData = []*onnxpb.StringStringEntryProto{{Key: "location", Value: "weights.bin"}, {Key: "length", Value: "72"}}
			}),
			want: []string{`initializer "W"`, "external file", "save_as_external_data=False"},
		},
		{
			name: "fail/external-data-entries-only",
			data: with(func(m *mdl) {
				initNamed(m, "B").ExternalData = []*onnxpb.StringStringEntryProto{{Key: "location", Value: "/etc/passwd"}}
			}),
			want: []string{`initializer "B"`, "external file"},
		},
		{
			name: "fail/10000-nodes",
			data: func(t testing.TB) []byte {
				m := mdl{inputs: []*onnxpb.ValueInfoProto{valueInfo("x", "N", 4)}, output: "v10000"}
				for k := 1; k <= 10000; k++ {
					m.nodes = append(m.nodes, nd("Relu", "", in(fmt.Sprintf("v%d", k-1)), in(fmt.Sprintf("v%d", k))))
				}
				m.nodes[0].Input[0] = "x"
				return m.bytes(t)
			},
			want: []string{"more than 2048 nodes"},
		},
		{
			name: "fail/lstm",
			data: with(func(m *mdl) { m.nodes[1] = nd("LSTM", "rnn_layer", in("c", "W"), in("r"), aInt("hidden_size", 4)) }),
			want: []string{`node 1 ("rnn_layer", LSTM)`, "operator LSTM is not supported", "recurrent", "Conv", "Gemm"},
		},
		{
			name: "fail/unnamed-unsupported-op",
			data: with(func(m *mdl) { m.nodes[1] = nd("Sigmoid", "", in("c"), in("r")) }),
			want: []string{`node 1 ("Sigmoid_1", Sigmoid)`, "ReLU"},
		},
		{
			name: "fail/custom-domain",
			data: with(func(m *mdl) { m.nodes[1].Domain = "com.microsoft" }),
			want: []string{`node 1 ("relu", Relu)`, `domain "com.microsoft"`},
		},
		{name: "fail/conv-group-2", data: with(func(m *mdl) { m.nodes[0].Attribute = append(m.nodes[0].Attribute, aInt("group", 2)) }), want: []string{`node 0 ("conv", Conv)`, "group 2 is not supported", "group=1"}},
		{name: "fail/conv-dilation-2", data: with(func(m *mdl) { m.nodes[0].Attribute = append(m.nodes[0].Attribute, aInts("dilations", 2, 2)) }), want: []string{"dilations [2 2]", "dilation 1"}},
		{name: "fail/conv-1d-weights", data: with(func(m *mdl) { initNamed(m, "W").Dims = dims(2, 1, 9) }), want: []string{"only 2-D convolutions"}},
		{name: "fail/conv-kernel-shape-mismatch", data: with(func(m *mdl) { m.nodes[0].Attribute[0] = aInts("kernel_shape", 2, 2) }), want: []string{"kernel_shape [2 2] does not match"}},
		{name: "fail/conv-pad-not-smaller-than-kernel", data: with(func(m *mdl) { m.nodes[0].Attribute = append(m.nodes[0].Attribute, aInts("pads", 3, 0, 0, 0)) }), want: []string{"smaller than the kernel"}},
		{name: "fail/conv-auto-pad-unknown", data: with(func(m *mdl) { m.nodes[0].Attribute = append(m.nodes[0].Attribute, aStr("auto_pad", "FULL")) }), want: []string{`auto_pad "FULL"`}},
		{name: "fail/conv-weights-computed", data: with(func(m *mdl) { m.nodes[0].Input[1] = "x" }), want: []string{"must be a constant"}},
		{name: "fail/nan-weight", data: with(func(m *mdl) { *initNamed(m, "B") = *floatT("B", dims(2), float32(math.NaN()), 1) }), want: []string{"not finite"}},
		{
			name: "fail/softmax-middle",
			data: with(func(m *mdl) {
				m.nodes[1] = nd("Softmax", "sm", in("c"), in("r"), aInt("axis", 1))
			}),
			want: []string{`node 1 ("sm", Softmax)`, "Softmax in the middle of a network cannot run under encryption"},
		},
		{
			name: "fail/argmax-then-softmax",
			data: with(func(m *mdl) {
				m.nodes[4] = nd("ArgMax", "am", in("logits"), in("idx"), aInt("axis", 1))
				m.nodes = append(m.nodes, nd("Softmax", "sm", in("idx"), in("y")))
			}),
			want: []string{`("am", ArgMax)`, "ArgMax in the middle"},
		},
		{name: "fail/argmax-axis-0", data: with(func(m *mdl) { m.nodes[4] = nd("ArgMax", "am", in("logits"), in("y")) }), want: []string{"axis 0 is the batch axis"}},
		{name: "fail/opset-8", data: with(func(m *mdl) { m.opset = 8 }), want: []string{"opset 8", "9 to 21"}},
		{name: "fail/opset-22", data: with(func(m *mdl) { m.opset = 22 }), want: []string{"opset 22"}},
		{name: "fail/no-default-opset", data: withProto(func(m *onnxpb.ModelProto) { m.OpsetImport[0].Domain = "ai.onnx.ml" }), want: []string{"does not import the default ONNX opset"}},
		{name: "fail/undefined-input", data: with(func(m *mdl) { m.nodes[1].Input[0] = "ghost" }), want: []string{`node 1 ("relu", Relu)`, `"ghost"`}},
		{name: "fail/output-undefined", data: with(func(m *mdl) { m.output = "nowhere" }), want: []string{`"nowhere"`, "not computed"}},
		{name: "fail/output-is-input", data: with(func(m *mdl) { m.nodes = []*onnxpb.NodeProto{nd("Identity", "id", in("x"), in("y"))} }), want: []string{"computes nothing"}},
		{name: "fail/duplicate-output", data: with(func(m *mdl) { m.nodes[2].Output[0] = "r" }), want: []string{`output "r" is already computed`}},
		{name: "fail/unknown-attribute", data: with(func(m *mdl) { m.nodes[1].Attribute = []*onnxpb.AttributeProto{aFloat("alpha", 0.1)} }), want: []string{`attribute "alpha" is not supported for Relu`}},
		{name: "fail/attribute-wrong-type", data: with(func(m *mdl) { m.nodes[3].Attribute[0] = aFloat("transB", 1) }), want: []string{"attribute transB has type FLOAT, want INT"}},
		{name: "fail/mul-two-values", data: with(func(m *mdl) { m.nodes[1] = nd("Mul", "sq", in("c", "c"), in("r")) }), want: []string{"Mul of two computed values"}},
		{name: "fail/add-broadcast-values", data: with(func(m *mdl) { m.nodes[2] = nd("Add", "add", in("r", "x"), in("f")) }), want: []string{"same shape"}},
		{
			name: "fail/div-constant-by-value",
			data: with(func(m *mdl) { m.nodes[1] = nd("Div", "inv", in("B", "c"), in("r")) }),
			want: []string{"divides a constant by a computed value"},
		},
		{
			name: "fail/div-by-zero",
			data: with(func(m *mdl) {
				m.nodes[1] = nd("Div", "d", in("c", "zero"), in("r"))
				m.inits = append(m.inits, floatT("zero", nil, 0))
			}),
			want: []string{"zero"},
		},
		{
			// [2] aligns with the last axis (W), not the channels.
			name: "fail/per-column-constant",
			data: with(func(m *mdl) {
				m.nodes[1] = nd("Mul", "m", in("c", "col"), in("r"))
				m.inits = append(m.inits, floatT("col", dims(2), 1, 2))
			}),
			want: []string{"constant of shape [2] does not broadcast per channel over the input [1 2 2 2]"},
		},
		{
			name: "fail/maxpool-ceil-mode-larger",
			data: with(func(m *mdl) {
				m.inputs[0] = valueInfo("x", "N", 1, 7, 7)
				m.nodes[1] = nd("MaxPool", "pool", in("c"), in("r"), aInts("kernel_shape", 2, 2), aInts("strides", 2, 2), aInt("ceil_mode", 1))
			}),
			want: []string{"ceil_mode=1 gives a 3x3 output where floor mode gives 2x2", "ceil_mode=0"},
		},
		{
			name: "fail/maxpool-storage-order",
			data: with(func(m *mdl) {
				m.nodes[1] = nd("MaxPool", "pool", in("c"), in("r"), aInts("kernel_shape", 1, 1), aInt("storage_order", 1))
			}),
			want: []string{"storage_order=1"},
		},
		{
			name: "fail/maxpool-indices-used",
			data: with(func(m *mdl) {
				m.nodes[1] = nd("MaxPool", "pool", in("c"), in("r", "idx"), aInts("kernel_shape", 1, 1))
				m.nodes = append(m.nodes, nd("Relu", "ri", in("idx"), in("z")))
			}),
			want: []string{`output 1 ("idx") is used`},
		},
		{name: "fail/matmul-constant-left", data: with(func(m *mdl) { m.nodes[3] = nd("MatMul", "mm", in("FW", "f"), in("logits")) }), want: []string{"left-hand side is a constant"}},
		{name: "fail/matmul-two-values", data: with(func(m *mdl) { m.nodes[3] = nd("MatMul", "mm", in("f", "f"), in("logits")) }), want: []string{"two computed values"}},
		{name: "fail/matmul-4d", data: with(func(m *mdl) { m.nodes[2] = nd("MatMul", "mm", in("r", "FW"), in("f")) }), want: []string{"flatten it first"}},
		{name: "fail/gemm-transA", data: with(func(m *mdl) { m.nodes[3].Attribute = append(m.nodes[3].Attribute, aInt("transA", 1)) }), want: []string{"transA=1 is not supported"}},
		{name: "fail/gemm-bad-bias", data: with(func(m *mdl) { initNamed(m, "FB").Dims = dims(3, 1) }), want: []string{"C has shape [3 1]"}},
		{
			name: "fail/reshape-batch",
			data: with(func(m *mdl) {
				m.nodes[2] = nd("Reshape", "flat", in("r", "s"), in("f"))
				m.inits = append(m.inits, intT("s", dims(1), -1))
			}),
			want: []string{"changes the batch dimension"},
		},
		{
			name: "fail/reshape-two-minus-ones",
			data: with(func(m *mdl) {
				m.nodes[2] = nd("Reshape", "flat", in("r", "s"), in("f"))
				m.inits = append(m.inits, intT("s", dims(2), -1, -1))
			}),
			want: []string{"more than one -1"},
		},
		{
			name: "fail/reshape-computed-shape",
			data: with(func(m *mdl) { m.nodes[2] = nd("Reshape", "flat", in("r", "c"), in("f")) }),
			want: []string{"the shape (input 1", "must be a constant"},
		},
		{name: "fail/transpose-batch", data: with(func(m *mdl) { m.nodes[1] = nd("Transpose", "t", in("c"), in("r"), aInts("perm", 1, 0, 2, 3)) }), want: []string{"moves the batch dimension"}},
		{name: "fail/flatten-axis-2", data: with(func(m *mdl) { m.nodes[2].Attribute = []*onnxpb.AttributeProto{aInt("axis", 2)} }), want: []string{"axis 2 is not supported"}},
		{
			name: "fail/dropout-mask-used",
			data: with(func(m *mdl) {
				m.nodes[1] = nd("Dropout", "drop", in("c"), in("r", "mask"))
				m.nodes = append(m.nodes, nd("Relu", "rm", in("mask"), in("z")))
			}),
			want: []string{`output 1 ("mask") is used`},
		},
		{
			name: "fail/dropout-training",
			data: with(func(m *mdl) {
				m.nodes[1] = nd("Dropout", "drop", in("c", "", "train"), in("r"))
				m.inits = append(m.inits, &onnxpb.TensorProto{Name: "train", DataType: dtBool, RawData: []byte{1}})
			}),
			want: []string{"training_mode is true"},
		},
		{
			name: "fail/batchnorm-training",
			data: with(func(m *mdl) {
				m.nodes[1] = nd("BatchNormalization", "bn", in("c", "B", "B", "B", "B"), in("r"), aInt("training_mode", 1))
			}),
			want: []string{"training_mode=1"},
		},
		{
			name: "fail/batchnorm-negative-variance",
			data: with(func(m *mdl) {
				m.nodes[1] = nd("BatchNormalization", "bn", in("c", "B", "B", "B", "neg"), in("r"))
				m.inits = append(m.inits, floatT("neg", dims(2), 1, -1))
			}),
			want: []string{"channel 1", "not positive"},
		},
		{
			name: "fail/deep-nesting",
			data: func(t testing.TB) []byte {
				g := &onnxpb.GraphProto{Name: "leaf"}
				for k := 0; k < 100; k++ {
					g = &onnxpb.GraphProto{Node: []*onnxpb.NodeProto{{OpType: "If", Attribute: []*onnxpb.AttributeProto{{Name: "then_branch", Type: onnxpb.AttributeProto_GRAPH, G: g}}}}}
				}
				m := base().proto()
				m.Graph.Node[1].Attribute = []*onnxpb.AttributeProto{{Name: "g", Type: onnxpb.AttributeProto_GRAPH, G: g}}
				return marshal(t, m)
			},
			want: []string{"nests messages more than 64 levels"},
		},
		{
			// 300,000 empty value_info messages: 600 KB that would decode to ~100 MB.
			name: "fail/many-messages",
			data: func(testing.TB) []byte {
				var graph []byte
				for k := 0; k < 300000; k++ {
					graph = protowire.AppendTag(graph, 13, protowire.BytesType)
					graph = protowire.AppendVarint(graph, 0)
				}
				b := protowire.AppendTag(nil, 7, protowire.BytesType)
				return protowire.AppendBytes(b, graph)
			},
			want: []string{"more than 262144 protobuf messages"},
		},
		{
			// 9 M one-byte packed dims: 9 MB that would decode to 72 MB.
			name: "fail/many-varints",
			data: func(testing.TB) []byte {
				tensor := protowire.AppendTag(nil, 1, protowire.BytesType)
				tensor = protowire.AppendBytes(tensor, make([]byte, 9<<20))
				graph := protowire.AppendTag(nil, 5, protowire.BytesType)
				graph = protowire.AppendBytes(graph, tensor)
				b := protowire.AppendTag(nil, 7, protowire.BytesType)
				return protowire.AppendBytes(b, graph)
			},
			want: []string{"integers in repeated fields"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind := tc.kind
			if kind == 0 {
				kind = hegate.KindInvalid
			}
			checkRefused(t, tc.data(t), tc.opts, kind, tc.want)
		})
	}
}

// TestImportTruncated cuts a real model at many offsets.
func TestImportTruncated(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(sharedDir(t), "pytorch-cnn-maxpool-mnist.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := importBytes(data, Options{}); err != nil {
		t.Fatalf("the whole file: %v", err)
	}
	offsets := []int{1, 2, 3, 10, 100, 1000, 10000, 100000, len(data) / 2, len(data) - 100, len(data) - 10, len(data) - 1}
	rng := rand.New(rand.NewPCG(3, 4))
	for k := 0; k < 8; k++ {
		offsets = append(offsets, 1+rng.IntN(len(data)-1))
	}
	for _, off := range offsets {
		t.Run(fmt.Sprintf("fail/truncated-at-%d", off), func(t *testing.T) {
			checkRefused(t, data[:off], Options{}, hegate.KindInvalid, nil)
		})
	}
	t.Run("fail/too-large-file", func(t *testing.T) {
		_, err := ImportFile(filepath.Join(sharedDir(t), "pytorch-cnn-maxpool-mnist.onnx"), Options{MaxBytes: 1 << 20})
		if hegate.KindOf(err) != hegate.KindTooLarge {
			t.Fatalf("got %v, want KindTooLarge", err)
		}
	})
	t.Run("fail/missing-file", func(t *testing.T) {
		_, err := ImportFile(filepath.Join(t.TempDir(), "none.onnx"), Options{})
		if hegate.KindOf(err) != hegate.KindInvalid {
			t.Fatalf("got %v, want KindInvalid", err)
		}
	})
}

// TestErrorsNameTheNode checks the shape of a typical message.
func TestErrorsNameTheNode(t *testing.T) {
	m := base()
	m.nodes[0].Name = ""
	m.nodes[0].Attribute = append(m.nodes[0].Attribute, aInt("group", 2))
	_, err := importBytes(m.bytes(t), Options{})
	want := `node 0 ("Conv_0", Conv): group 2 is not supported; export the model with group=1 convolutions`
	if d := hegate.DetailOf(err); !strings.HasPrefix(d, want) {
		t.Fatalf("detail %q, want it to begin %q", d, want)
	}
	var e *hegate.Error
	if !errors.As(err, &e) || e.Op != "onnx.Import" {
		t.Fatalf("error %#v, want an *hegate.Error with op onnx.Import", err)
	}
}

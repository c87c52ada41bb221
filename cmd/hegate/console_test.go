package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/he/onnx"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/internal/mnist/mnisteval"
)

// linearMNISTONNX is an ONNX file (opset 13, as torch.onnx.export writes
// a torch.nn.Sequential(Flatten, Linear(784, 10), Softmax)) of a linear
// digit classifier: softmax regression trained here, deterministically,
// on the first 6,000 MNIST training images. The third-party ONNX files in
// ../shared/data/onnx all need bootstrapping (81 levels and more), so the
// story imports this one, which compiles leveled.
func linearMNISTONNX(t testing.TB) []byte {
	t.Helper()
	set, err := mnist.LoadDefault(mnist.Train)
	if err != nil {
		t.Fatal(err)
	}
	const in, out = mnist.Pixels, mnist.Classes
	w := make([]float64, out*in)
	b := make([]float64, out)
	n := min(6000, set.Len())
	logits := make([]float64, out)
	for epoch := 0; epoch < 3; epoch++ {
		lr := 0.1 / float64(epoch+1)
		for k := 0; k < n; k++ {
			x, y := set.Images[k], set.Labels[k]
			mx := math.Inf(-1)
			for o := range out {
				s := b[o]
				for i, v := range x {
					s += w[o*in+i] * v
				}
				logits[o] = s
				mx = max(mx, s)
			}
			var sum float64
			for o := range logits {
				logits[o] = math.Exp(logits[o] - mx)
				sum += logits[o]
			}
			for o := range out {
				g := logits[o] / sum
				if o == y {
					g--
				}
				b[o] -= lr * g
				for i, v := range x {
					if v != 0 {
						w[o*in+i] -= lr * g * v
					}
				}
			}
		}
	}
	return encodeLinearONNX(w, b)
}

// encodeLinearONNX writes the ONNX ModelProto of
// input[1,1,28,28] -> Flatten -> Gemm(W[10,784]ᵀ, B) -> Softmax with the
// protobuf wire format (field numbers of onnx.proto).
func encodeLinearONNX(w, b []float64) []byte {
	msg := func(fields ...[]byte) []byte { return bytes.Join(fields, nil) }
	str := func(num protowire.Number, s string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), s)
	}
	sub := func(num protowire.Number, m []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), m)
	}
	varint := func(num protowire.Number, v int64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), uint64(v))
	}
	floats := func(v []float64) []byte {
		raw := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(x)))
		}
		return raw
	}
	// TensorProto: dims 1, data_type 2 (FLOAT 1), name 8, raw_data 9.
	tensor := func(name string, dims []int64, v []float64) []byte {
		var m []byte
		for _, d := range dims {
			m = append(m, varint(1, d)...)
		}
		return msg(m, varint(2, 1), str(8, name), sub(9, floats(v)))
	}
	// ValueInfoProto: name 1, type 2 (TypeProto.tensor_type 1: elem_type
	// 1, shape 2 (TensorShapeProto.dim 1: dim_value 1)).
	valueInfo := func(name string, dims ...int64) []byte {
		var shape []byte
		for _, d := range dims {
			shape = append(shape, sub(1, varint(1, d))...)
		}
		return msg(str(1, name), sub(2, sub(1, msg(varint(1, 1), sub(2, shape)))))
	}
	// AttributeProto: name 1, i 3, type 20 (INT 2).
	intAttr := func(name string, v int64) []byte { return msg(str(1, name), varint(3, v), varint(20, 2)) }
	// NodeProto: input 1, output 2, name 3, op_type 4, attribute 5.
	node := func(op, name string, ins, outs []string, attrs ...[]byte) []byte {
		var m []byte
		for _, s := range ins {
			m = append(m, str(1, s)...)
		}
		for _, s := range outs {
			m = append(m, str(2, s)...)
		}
		m = append(m, str(3, name)...)
		m = append(m, str(4, op)...)
		for _, a := range attrs {
			m = append(m, sub(5, a)...)
		}
		return m
	}
	// GraphProto: node 1, name 2, initializer 5, input 11, output 12.
	graph := msg(
		sub(1, node("Flatten", "/flatten/Flatten", []string{"input"}, []string{"/flatten/Flatten_output_0"}, intAttr("axis", 1))),
		sub(1, node("Gemm", "/fc/Gemm", []string{"/flatten/Flatten_output_0", "fc.weight", "fc.bias"}, []string{"logits"},
			msg(str(1, "alpha"), protowire.AppendFixed32(protowire.AppendTag(nil, 2, protowire.Fixed32Type), math.Float32bits(1)), varint(20, 1)),
			msg(str(1, "beta"), protowire.AppendFixed32(protowire.AppendTag(nil, 2, protowire.Fixed32Type), math.Float32bits(1)), varint(20, 1)),
			intAttr("transB", 1))),
		sub(1, node("Softmax", "/softmax/Softmax", []string{"logits"}, []string{"probabilities"}, intAttr("axis", 1))),
		str(2, "main_graph"),
		sub(5, tensor("fc.weight", []int64{int64(len(b)), int64(len(w) / len(b))}, w)),
		sub(5, tensor("fc.bias", []int64{int64(len(b))}, b)),
		sub(11, valueInfo("input", 1, 1, 28, 28)),
		sub(12, valueInfo("probabilities", 1, int64(len(b)))),
	)
	// ModelProto: ir_version 1, producer_name 2, producer_version 3,
	// graph 7, opset_import 8 (OperatorSetIdProto: domain 1, version 2).
	return msg(varint(1, 7), str(2, "pytorch"), str(3, "2.1.0"), sub(7, graph), sub(8, msg(str(1, ""), varint(2, 13))))
}

func TestConsoleONNXScratch(t *testing.T) {
	t0 := time.Now()
	b := linearMNISTONNX(t)
	t.Logf("trained in %s, %d bytes", time.Since(t0), len(b))
	p := filepath.Join(t.TempDir(), "m.onnx")
	os.WriteFile(p, b, 0o600)
	g, err := onnx.ImportFile(p, onnx.Options{Name: "digits-linear"})
	if err != nil {
		t.Fatal(err)
	}
	set, _ := mnist.LoadDefault(mnist.Test)
	r, err := mnisteval.Evaluate(g, set, 2000)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("accuracy %.3f", r.Acc)
	samples, err := calibrationFor(g)
	if err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	m, err := he.Compile(context.Background(), g, he.CompileOptions{Calibration: samples})
	if err != nil {
		t.Fatal(err)
	}
	man := m.Manifest()
	t.Logf("compiled in %s: preset %s levels %d keyset %d bytes galois %d privacy %+v note %q", time.Since(t0), man.Params.Preset, man.Levels, man.KeySetBytes, len(man.GaloisElements), man.Privacy, man.PrivacyNote)
}

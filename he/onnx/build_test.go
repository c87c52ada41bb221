package onnx

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/he/onnx/internal/onnxpb"
)

// Builders of small ONNX models for the tests, with the generated types.

// dim is a dimension of a value info: an int64 is a dim_value, a string a
// dim_param, nil neither.
func valueInfo(name string, dims ...any) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		switch d := d.(type) {
		case int:
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
		case int64:
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		case string:
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}})
		case nil:
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{})
		}
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: dtFloat, Shape: shape}}}}
}

func nd(op, name string, ins, outs []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: op, Name: name, Input: ins, Output: outs, Attribute: attrs}
}

func in(names ...string) []string { return names }

func aInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INT, I: v}
}

func aInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INTS, Ints: v}
}

func aFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_FLOAT, F: v}
}

func aStr(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_STRING, S: []byte(v)}
}

func aTensor(name string, t *onnxpb.TensorProto) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_TENSOR, T: t}
}

// floatT is a FLOAT tensor stored as raw_data.
func floatT(name string, dims []int64, v ...float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(v))
	for k, x := range v {
		binary.LittleEndian.PutUint32(raw[4*k:], math.Float32bits(x))
	}
	return &onnxpb.TensorProto{Name: name, Dims: dims, DataType: dtFloat, RawData: raw}
}

// intT is an INT64 tensor stored in int64_data.
func intT(name string, dims []int64, v ...int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: name, Dims: dims, DataType: dtInt64, Int64Data: v}
}

func dims(d ...int64) []int64 { return d }

// mdl builds a model of opset 13 with one input and output.
type mdl struct {
	opset  int64
	inputs []*onnxpb.ValueInfoProto
	nodes  []*onnxpb.NodeProto
	inits  []*onnxpb.TensorProto
	output string
	name   string
}

func (m mdl) proto() *onnxpb.ModelProto {
	opset := m.opset
	if opset == 0 {
		opset = 13
	}
	name := m.name
	if name == "" {
		name = "test"
	}
	return &onnxpb.ModelProto{
		IrVersion:       7,
		ProducerName:    "hegate-test",
		ProducerVersion: "1",
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: "", Version: opset}},
		Graph: &onnxpb.GraphProto{
			Name:        name,
			Node:        m.nodes,
			Initializer: m.inits,
			Input:       m.inputs,
			Output:      []*onnxpb.ValueInfoProto{valueInfo(m.output)},
		},
	}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (m mdl) bytes(t testing.TB) []byte { return marshal(t, m.proto()) }

func importBytes(b []byte, opts Options) (*ir.Graph, error) {
	return Import(bytes.NewReader(b), opts)
}

// seq is 1, 2, ..., n as float32.
func seq(n int) []float32 {
	v := make([]float32, n)
	for k := range v {
		v[k] = float32(k + 1)
	}
	return v
}

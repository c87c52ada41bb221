package onnx

import (
	"github.com/hegate/hegate/he/onnx/internal/onnxpb"
)

// Attribute accessors. An attribute whose type is UNDEFINED (some old
// exporters leave it out) is read from the field the accessor wants.

func (n *node) attr(name string, want onnxpb.AttributeProto_AttributeType) (*onnxpb.AttributeProto, bool, error) {
	a, ok := n.attrs[name]
	if !ok {
		return nil, false, nil
	}
	if t := a.GetType(); t != want && t != onnxpb.AttributeProto_UNDEFINED {
		return nil, false, n.errf("attribute %s has type %s, want %s", name, t, want)
	}
	return a, true, nil
}

func (n *node) int(name string, def int64) (int64, error) {
	a, ok, err := n.attr(name, onnxpb.AttributeProto_INT)
	if err != nil || !ok {
		return def, err
	}
	return a.GetI(), nil
}

func (n *node) ints(name string, def []int64) ([]int64, bool, error) {
	a, ok, err := n.attr(name, onnxpb.AttributeProto_INTS)
	if err != nil || !ok {
		return def, false, err
	}
	return a.GetInts(), true, nil
}

func (n *node) float(name string, def float64) (float64, error) {
	a, ok, err := n.attr(name, onnxpb.AttributeProto_FLOAT)
	if err != nil || !ok {
		return def, err
	}
	return float64(a.GetF()), nil
}

func (n *node) str(name, def string) (string, error) {
	a, ok, err := n.attr(name, onnxpb.AttributeProto_STRING)
	if err != nil || !ok {
		return def, err
	}
	return string(a.GetS()), nil
}

package onnx

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/he/onnx/internal/onnxpb"
)

// ONNX tensor element types the importer reads.
const (
	dtFloat  = int32(onnxpb.TensorProto_FLOAT)
	dtInt32  = int32(onnxpb.TensorProto_INT32)
	dtInt64  = int32(onnxpb.TensorProto_INT64)
	dtDouble = int32(onnxpb.TensorProto_DOUBLE)
	dtBool   = int32(onnxpb.TensorProto_BOOL)
)

// dtypeName names an ONNX element type for messages.
func dtypeName(t int32) string {
	if s, ok := onnxpb.TensorProto_DataType_name[t]; ok {
		return s
	}
	return fmt.Sprintf("type %d", t)
}

// constant is a tensor known at import time: an initializer, the value of
// a Constant node, or the result of folding constant operators. Exactly
// one of f (float types) and i (integer types) holds the data.
type constant struct {
	dims    []int // ONNX dimensions, batch included where there is one
	integer bool
	f       []float64
	i       []int64
}

func (c *constant) size() int { return ir.Prod(c.dims) }

// at returns element k as float64.
func (c *constant) at(k int) float64 {
	if c.integer {
		return float64(c.i[k])
	}
	return c.f[k]
}

// floats returns the data as float64.
func (c *constant) floats() []float64 {
	if !c.integer {
		return c.f
	}
	out := make([]float64, len(c.i))
	for k, v := range c.i {
		out[k] = float64(v)
	}
	return out
}

// elems checks ONNX dimensions: each non-negative and their product at
// most ir.MaxTensorElems (computed without overflow).
func elems(dims []int64) ([]int, int, error) {
	if len(dims) > 8 {
		return nil, 0, fmt.Errorf("has %d dimensions (at most 8 are supported)", len(dims))
	}
	out := make([]int, len(dims))
	n := 1
	for k, d := range dims {
		if d < 0 {
			return nil, 0, fmt.Errorf("has a negative dimension %d", d)
		}
		if d > ir.MaxTensorElems {
			return nil, 0, fmt.Errorf("has a dimension of %d, more than the limit of %d elements", d, ir.MaxTensorElems)
		}
		out[k] = int(d)
		// Both factors are at most MaxTensorElems (2^22): no overflow.
		if n *= int(d); n > ir.MaxTensorElems {
			return nil, 0, fmt.Errorf("with dimensions %v has more than %d elements", dims, ir.MaxTensorElems)
		}
	}
	return out, n, nil
}

// checkTensor checks a tensor's metadata (type, storage, declared size
// against the data present) without decoding it.
func checkTensor(t *onnxpb.TensorProto) error {
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL || len(t.GetExternalData()) > 0 {
		return fmt.Errorf("stores its data in an external file; save the model with all tensors inside it (onnx.save_model(model, path, save_as_external_data=False))")
	}
	if t.GetSegment() != nil {
		return fmt.Errorf("is a segment of a larger tensor, which is not supported")
	}
	_, n, err := elems(t.GetDims())
	if err != nil {
		return err
	}
	var width, typed int
	switch t.GetDataType() {
	case dtFloat:
		width, typed = 4, len(t.GetFloatData())
	case dtDouble:
		width, typed = 8, len(t.GetDoubleData())
	case dtInt64:
		width, typed = 8, len(t.GetInt64Data())
	case dtInt32:
		width, typed = 4, len(t.GetInt32Data())
	case dtBool:
		width, typed = 1, len(t.GetInt32Data())
	default:
		return fmt.Errorf("has element type %s; only FLOAT and DOUBLE (weights) and INT64, INT32 and BOOL (shapes, axes, flags) are supported", dtypeName(t.GetDataType()))
	}
	raw := t.GetRawData()
	switch {
	case len(raw) > 0 && typed > 0:
		return fmt.Errorf("has both raw_data and typed data")
	case len(raw) > 0 || typed == 0:
		if int64(len(raw)) != int64(n)*int64(width) {
			return fmt.Errorf("declares %d elements (%d bytes) but has %d bytes of raw_data", n, int64(n)*int64(width), len(raw))
		}
	default:
		if typed != n {
			return fmt.Errorf("declares %d elements but has %d values", n, typed)
		}
	}
	return nil
}

// decodeTensor decodes a tensor, checking it first.
func decodeTensor(t *onnxpb.TensorProto) (*constant, error) {
	if err := checkTensor(t); err != nil {
		return nil, err
	}
	dims, n, _ := elems(t.GetDims())
	c := &constant{dims: dims}
	raw := t.GetRawData()
	switch t.GetDataType() {
	case dtFloat:
		c.f = make([]float64, n)
		if len(raw) > 0 {
			for k := range c.f {
				c.f[k] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:])))
			}
		} else {
			for k, v := range t.GetFloatData() {
				c.f[k] = float64(v)
			}
		}
	case dtDouble:
		c.f = make([]float64, n)
		if len(raw) > 0 {
			for k := range c.f {
				c.f[k] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*k:]))
			}
		} else {
			copy(c.f, t.GetDoubleData())
		}
	case dtInt64:
		c.integer = true
		c.i = make([]int64, n)
		if len(raw) > 0 {
			for k := range c.i {
				c.i[k] = int64(binary.LittleEndian.Uint64(raw[8*k:]))
			}
		} else {
			copy(c.i, t.GetInt64Data())
		}
	case dtBool:
		c.integer = true
		c.i = make([]int64, n)
		if len(raw) > 0 {
			for k, b := range raw {
				c.i[k] = int64(b)
			}
		} else {
			for k, v := range t.GetInt32Data() {
				c.i[k] = int64(v)
			}
		}
	case dtInt32:
		c.integer = true
		c.i = make([]int64, n)
		if len(raw) > 0 {
			for k := range c.i {
				c.i[k] = int64(int32(binary.LittleEndian.Uint32(raw[4*k:])))
			}
		} else {
			for k, v := range t.GetInt32Data() {
				c.i[k] = int64(v)
			}
		}
	}
	return c, nil
}

package api

import (
	"encoding/json"
	"math"

	"github.com/hegate/hegate/he"
)

// Parameters are OIP parameters. Values are strings, numbers or booleans;
// after JSON decoding numbers are float64.
type Parameters map[string]any

// String returns the named parameter if it is present and a string.
func (p Parameters) String(name string) (string, bool) {
	s, ok := p[name].(string)
	return s, ok
}

// Bool returns the named parameter if it is present and a boolean.
func (p Parameters) Bool(name string) (value, ok bool) {
	b, ok := p[name].(bool)
	return b, ok
}

// Int64 returns the named parameter if it is present and an integral number
// that fits an int64.
func (p Parameters) Int64(name string) (int64, bool) {
	switch v := p[name].(type) {
	case int:
		return int64(v), true
	case int64:
		return v, true
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return 0, false
		}
		return int64(v), true
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	}
	return 0, false
}

// Tensor is an OIP tensor: an input of a request or an output of a response.
// Data is absent when the tensor's data travels in binary (see the package
// documentation); otherwise it holds the JSON array of elements.
type Tensor struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters Parameters      `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
}

// RequestedOutput names an output a request wants and how.
type RequestedOutput struct {
	Name       string     `json:"name"`
	Parameters Parameters `json:"parameters,omitempty"`
}

// InferRequest is the OIP inference request (the JSON part of a
// binary-extension request).
type InferRequest struct {
	ID         string            `json:"id,omitempty"`
	Parameters Parameters        `json:"parameters,omitempty"`
	Inputs     []Tensor          `json:"inputs"`
	Outputs    []RequestedOutput `json:"outputs,omitempty"`
}

// InferResponse is the OIP inference response (the JSON part of a
// binary-extension response). Its ParamJobID parameter names the job.
type InferResponse struct {
	ModelName    string     `json:"model_name"`
	ModelVersion string     `json:"model_version,omitempty"`
	ID           string     `json:"id,omitempty"`
	Parameters   Parameters `json:"parameters,omitempty"`
	Outputs      []Tensor   `json:"outputs"`
}

// ServerMetadata answers GET /v2.
type ServerMetadata struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// TensorMetadata describes a model input or output.
type TensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// ModelMetadata answers GET /v2/models/{model}. Hegate is the compiled
// model's manifest: what a device needs to generate keys and encrypt.
type ModelMetadata struct {
	Name       string           `json:"name"`
	Versions   []string         `json:"versions,omitempty"`
	Platform   string           `json:"platform"`
	Inputs     []TensorMetadata `json:"inputs"`
	Outputs    []TensorMetadata `json:"outputs"`
	Parameters Parameters       `json:"parameters,omitempty"`
	Hegate     *he.Manifest     `json:"hegate,omitempty"`
}

// ModelList answers GET /v2/models, a hegate extension of OIP.
type ModelList struct {
	Models []ModelMetadata `json:"models"`
}

// ModelReady answers GET /v2/models/{model}/ready.
type ModelReady struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
}

// Liveness answers GET /v2/health/live.
type Liveness struct {
	Live bool `json:"live"`
}

// Readiness answers GET /v2/health/ready.
type Readiness struct {
	Ready bool `json:"ready"`
}

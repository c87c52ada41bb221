package he

import (
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/hegate/hegate"
)

// Op names a layer kind in the graph IR.
type Op string

// The layer kinds the IR knows.
const (
	OpConv2D  Op = "conv2d"  // 2-D convolution, with bias, over a C×H×W tensor
	OpDense   Op = "dense"   // fully connected layer, with bias, over a flat vector
	OpPoly    Op = "poly"    // element-wise polynomial activation
	OpFlatten Op = "flatten" // C×H×W to a flat vector (data order unchanged)
)

// Graph is a feed-forward network: a chain of layers over one input tensor.
// Tensors are float64 in row-major C×H×W order; a flat vector has shape [n].
type Graph struct {
	Name   string  `json:"name"`
	Input  []int   `json:"input"` // [C, H, W] or [n]
	Layers []Layer `json:"layers"`
	// Training records how the weights were obtained (free-form, for humans).
	Training map[string]any `json:"training,omitempty"`
}

// Layer is one node of the chain. Exactly the field matching Op is set.
type Layer struct {
	Op    Op      `json:"op"`
	Conv  *Conv2D `json:"conv,omitempty"`
	Dense *Dense  `json:"dense,omitempty"`
	Poly  *Poly   `json:"poly,omitempty"`
}

// Conv2D is a square-kernel convolution with zero padding.
// Weights are [OutChannels][InChannels][Kernel][Kernel], flattened row-major.
type Conv2D struct {
	InChannels  int       `json:"in_channels"`
	OutChannels int       `json:"out_channels"`
	Kernel      int       `json:"kernel"`
	Stride      int       `json:"stride"`
	Padding     int       `json:"padding"`
	Weights     []float64 `json:"weights"`
	Bias        []float64 `json:"bias"`
}

// Dense is y = W x + b. Weights are [Out][In], flattened row-major.
type Dense struct {
	In      int       `json:"in"`
	Out     int       `json:"out"`
	Weights []float64 `json:"weights"`
	Bias    []float64 `json:"bias"`
}

// Poly is the activation y = sum_i Coeffs[i] x^i, applied element-wise.
type Poly struct {
	Coeffs []float64 `json:"coeffs"`
}

// Limits on graphs read from untrusted input.
const (
	MaxGraphBytes  = 256 << 20 // a model file
	maxLayers      = 256
	maxTensorElems = 1 << 22
)

// ReadGraph decodes and validates a graph from JSON, reading at most
// MaxGraphBytes.
func ReadGraph(r io.Reader) (*Graph, error) {
	const op = "he.ReadGraph"
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
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return &g, nil
}

// WriteGraph encodes g as JSON.
func WriteGraph(w io.Writer, g *Graph) error {
	enc := json.NewEncoder(w)
	return enc.Encode(g)
}

func prod(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// ConvOutputSize returns the spatial output size of a convolution.
func ConvOutputSize(in, kernel, stride, padding int) int {
	return (in+2*padding-kernel)/stride + 1
}

// Shapes returns the shape after each layer: Shapes()[i] is the output of
// layer i. Validate must have passed.
func (g *Graph) Shapes() [][]int {
	shapes := make([][]int, len(g.Layers))
	cur := g.Input
	for i, l := range g.Layers {
		switch l.Op {
		case OpConv2D:
			c := l.Conv
			cur = []int{c.OutChannels, ConvOutputSize(cur[1], c.Kernel, c.Stride, c.Padding), ConvOutputSize(cur[2], c.Kernel, c.Stride, c.Padding)}
		case OpDense:
			cur = []int{l.Dense.Out}
		case OpFlatten:
			cur = []int{prod(cur)}
		}
		shapes[i] = cur
	}
	return shapes
}

// InputSize is the number of input values.
func (g *Graph) InputSize() int { return prod(g.Input) }

// OutputSize is the number of output values.
func (g *Graph) OutputSize() int {
	if len(g.Layers) == 0 {
		return g.InputSize()
	}
	s := g.Shapes()
	return prod(s[len(s)-1])
}

// Validate checks that shapes chain, sizes are bounded and every weight is
// finite. Errors are KindInvalid and name the layer.
func (g *Graph) Validate() error {
	const op = "he.Graph.Validate"
	bad := func(format string, args ...any) error {
		return hegate.E(op, hegate.KindInvalid, nil, format, args...)
	}
	if g.Name == "" {
		return bad("model has no name")
	}
	if len(g.Input) != 1 && len(g.Input) != 3 {
		return bad("input shape %v: want [C,H,W] or [n]", g.Input)
	}
	if err := checkShape(g.Input); err != nil {
		return bad("input shape %v %v", g.Input, err)
	}
	if len(g.Layers) == 0 || len(g.Layers) > maxLayers {
		return bad("model has %d layers: want 1 to %d", len(g.Layers), maxLayers)
	}
	cur := g.Input
	for i, l := range g.Layers {
		set := 0
		for _, p := range []bool{l.Conv != nil, l.Dense != nil, l.Poly != nil} {
			if p {
				set++
			}
		}
		switch l.Op {
		case OpConv2D:
			c := l.Conv
			if c == nil || set != 1 {
				return bad("layer %d (conv2d): conv parameters missing or mixed with others", i)
			}
			if len(cur) != 3 {
				return bad("layer %d (conv2d): input shape %v is not [C,H,W]", i, cur)
			}
			if c.InChannels != cur[0] {
				return bad("layer %d (conv2d): in_channels %d but input has %d channels", i, c.InChannels, cur[0])
			}
			if c.OutChannels <= 0 || c.Kernel <= 0 || c.Stride <= 0 || c.Padding < 0 || c.OutChannels > 4096 || c.Kernel > 64 || c.Stride > 64 || c.Padding > 64 {
				return bad("layer %d (conv2d): out_channels, kernel, stride or padding out of range", i)
			}
			oh, ow := ConvOutputSize(cur[1], c.Kernel, c.Stride, c.Padding), ConvOutputSize(cur[2], c.Kernel, c.Stride, c.Padding)
			if oh <= 0 || ow <= 0 {
				return bad("layer %d (conv2d): kernel %d larger than padded input %dx%d", i, c.Kernel, cur[1], cur[2])
			}
			if want := c.OutChannels * c.InChannels * c.Kernel * c.Kernel; len(c.Weights) != want {
				return bad("layer %d (conv2d): %d weights, want %d", i, len(c.Weights), want)
			}
			if len(c.Bias) != c.OutChannels {
				return bad("layer %d (conv2d): %d biases, want %d", i, len(c.Bias), c.OutChannels)
			}
			if err := finite(c.Weights, c.Bias); err != nil {
				return bad("layer %d (conv2d): %v", i, err)
			}
			cur = []int{c.OutChannels, oh, ow}
		case OpDense:
			d := l.Dense
			if d == nil || set != 1 {
				return bad("layer %d (dense): dense parameters missing or mixed with others", i)
			}
			if len(cur) != 1 {
				return bad("layer %d (dense): input shape %v is not flat; add a flatten layer", i, cur)
			}
			if d.In != cur[0] || d.Out <= 0 || d.Out > maxTensorElems {
				return bad("layer %d (dense): in %d out %d, but input has %d values", i, d.In, d.Out, cur[0])
			}
			if len(d.Weights) != d.In*d.Out {
				return bad("layer %d (dense): %d weights, want %d", i, len(d.Weights), d.In*d.Out)
			}
			if len(d.Bias) != d.Out {
				return bad("layer %d (dense): %d biases, want %d", i, len(d.Bias), d.Out)
			}
			if err := finite(d.Weights, d.Bias); err != nil {
				return bad("layer %d (dense): %v", i, err)
			}
			cur = []int{d.Out}
		case OpPoly:
			p := l.Poly
			if p == nil || set != 1 {
				return bad("layer %d (poly): coefficients missing or mixed with others", i)
			}
			if len(p.Coeffs) == 0 || len(p.Coeffs) > 64 {
				return bad("layer %d (poly): %d coefficients, want 1 to 64", i, len(p.Coeffs))
			}
			if err := finite(p.Coeffs); err != nil {
				return bad("layer %d (poly): %v", i, err)
			}
		case OpFlatten:
			if set != 0 {
				return bad("layer %d (flatten): takes no parameters", i)
			}
			cur = []int{prod(cur)}
		default:
			return bad("layer %d: unknown op %q (known: conv2d, dense, poly, flatten)", i, l.Op)
		}
		if prod(cur) > maxTensorElems {
			return bad("layer %d: output shape %v is too large", i, cur)
		}
	}
	return nil
}

// checkShape checks that every dimension is positive and the product at
// most maxTensorElems, without overflowing on hostile dimensions.
func checkShape(shape []int) error {
	elems := 1
	for _, d := range shape {
		if d <= 0 || d > maxTensorElems {
			return fmt.Errorf("has a bad dimension")
		}
		// Each factor is at most maxTensorElems, so checking after every
		// step keeps the product far from overflowing.
		if elems *= d; elems > maxTensorElems {
			return fmt.Errorf("is too large")
		}
	}
	return nil
}

func finite(vs ...[]float64) error {
	for _, v := range vs {
		for _, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("weight %v is not finite", x)
			}
		}
	}
	return nil
}

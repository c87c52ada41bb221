package main

import (
	"math"
	"math/rand/v2"

	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/tools/internal/nn"
)

// arch fixes the shapes of the network
//
//	input [1,h,w] → conv2d (channels, kernel, stride, pad) → poly → flatten
//	→ dense hidden → poly → dense classes.
type arch struct {
	H, W                          int
	Channels, Kernel, Stride, Pad int
	Hidden, Classes               int
	Degree                        int // of both polynomial activations
}

// cryptoNets is the MNIST network hegate serves: 845 values after the
// convolution, so that one CKKS ciphertext of 1024 slots holds them.
var cryptoNets = arch{H: 28, W: 28, Channels: 5, Kernel: 5, Stride: 2, Pad: 1, Hidden: 100, Classes: 10, Degree: 2}

// network is the layer geometry; its parameters live in one flat vector,
// cut into named pieces by view.
type network struct {
	arch
	conv       conv2D
	act1, act2 poly
	fc1, fc2   dense
	size       int // number of parameters
}

// params are views into one flat parameter (or gradient) vector.
type params struct {
	convW, convB []float64
	act1         []float64 // coefficients c0..c_degree
	fc1W, fc1B   []float64
	act2         []float64
	fc2W, fc2B   []float64
}

func newNetwork(a arch) *network {
	n := &network{arch: a}
	n.conv = newConv2D(1, a.Channels, a.Kernel, a.Stride, a.Pad, a.H, a.W)
	n.act1 = poly{n: n.conv.outSize(), degree: a.Degree}
	n.fc1 = dense{in: n.conv.outSize(), out: a.Hidden}
	n.act2 = poly{n: a.Hidden, degree: a.Degree}
	n.fc2 = dense{in: a.Hidden, out: a.Classes}
	n.size = n.conv.nWeights() + a.Channels + 2*(a.Degree+1) +
		n.fc1.in*n.fc1.out + n.fc1.out + n.fc2.in*n.fc2.out + n.fc2.out
	return n
}

// view cuts flat (of length n.size) into the parameters of each layer.
func (n *network) view(flat []float64) params {
	if len(flat) != n.size {
		panic("train-mnist: parameter vector of the wrong size")
	}
	take := func(k int) []float64 {
		s := flat[:k:k]
		flat = flat[k:]
		return s
	}
	return params{
		convW: take(n.conv.nWeights()), convB: take(n.Channels),
		act1: take(n.Degree + 1),
		fc1W: take(n.fc1.in * n.fc1.out), fc1B: take(n.fc1.out),
		act2: take(n.Degree + 1),
		fc2W: take(n.fc2.in * n.fc2.out), fc2B: take(n.fc2.out),
	}
}

// initial returns freshly initialised parameters: weights drawn from
// N(0, 1/fan_in), zero biases, and activations 0.5x + 0.1x² (c1 = 0.5,
// c2 = 0.1, higher coefficients zero).
func (n *network) initial(rng *rand.Rand) []float64 {
	flat := make([]float64, n.size)
	p := n.view(flat)
	normal := func(w []float64, fanIn int) {
		std := 1 / math.Sqrt(float64(fanIn))
		for i := range w {
			w[i] = std * rng.NormFloat64()
		}
	}
	normal(p.convW, n.Kernel*n.Kernel)
	normal(p.fc1W, n.fc1.in)
	normal(p.fc2W, n.fc2.in)
	for _, c := range [][]float64{p.act1, p.act2} {
		c[1] = 0.5
		if n.Degree >= 2 {
			c[2] = 0.1
		}
	}
	return flat
}

// bounds are soft limits on the pre-activations (conv and hidden dense
// outputs) and on the logits. Beyond them the loss grows by
// weight·(|z| − bound)² per value, averaged over the batch.
type bounds struct {
	conv, hidden, logits float64
	weight               float64
}

// workspace holds the activations and gradients of a batch of up to
// len(z1) images: z1[j] is the conv output of image j, and so on.
type workspace struct {
	cols                    [][]float64 // patches of the input image (see conv2D)
	z1, a1, z2, a2, z3      [][]float64 // conv out, poly, dense out, poly, logits
	dz3, da2, dz2, da1, dz1 [][]float64
	prob                    []float64
}

func (n *network) newWorkspace(size int) *workspace {
	c, h, k := n.conv.outSize(), n.Hidden, n.Classes
	m := func(k int) [][]float64 {
		v := make([][]float64, size)
		for j := range v {
			v[j] = make([]float64, k)
		}
		return v
	}
	return &workspace{
		cols: m(n.conv.colsSize()),
		z1:   m(c), a1: m(c), z2: m(h), a2: m(h), z3: m(k),
		dz3: m(k), da2: m(h), dz2: m(h), da1: m(c), dz1: m(c),
		prob: make([]float64, k),
	}
}

// forward runs the images xs (at most the workspace size) through the
// network; the logits of xs[j] are ws.z3[j].
func (n *network) forward(p params, ws *workspace, xs [][]float64) {
	m := len(xs)
	for j, x := range xs {
		n.conv.forward(p.convW, p.convB, x, ws.cols[j], ws.z1[j])
		n.act1.forward(p.act1, ws.z1[j], ws.a1[j])
	}
	n.fc1.forward(p.fc1W, p.fc1B, ws.a1[:m], ws.z2[:m])
	for j := range m {
		n.act2.forward(p.act2, ws.z2[j], ws.a2[j])
	}
	n.fc2.forward(p.fc2W, p.fc2B, ws.a2[:m], ws.z3[:m])
}

// backward runs forward on xs, then adds scale × the gradient of the loss
// (softmax cross-entropy against labels, plus the bounds penalty), summed
// over the images, to g. It returns the unscaled summed loss and the number
// of right predictions.
func (n *network) backward(p, g params, ws *workspace, xs [][]float64, labels []int, scale float64, b bounds) (loss float64, correct int) {
	m := len(xs)
	n.forward(p, ws, xs)
	for j, label := range labels[:m] {
		z, dz := ws.z3[j], ws.dz3[j]
		loss += nn.Softmax(z, ws.prob) - z[label] // −log nn.Softmax(z)[label]
		if ir.ArgMax(z) == label {
			correct++
		}
		for i, q := range ws.prob {
			dz[i] = scale * q
		}
		dz[label] -= scale
		loss += nn.Penalize(z, dz, b.logits, b.weight, scale)
	}
	n.fc2.backward(p.fc2W, ws.a2[:m], ws.dz3[:m], g.fc2W, g.fc2B, ws.da2[:m])
	for j := range m {
		n.act2.backward(p.act2, ws.z2[j], ws.da2[j], g.act2, ws.dz2[j])
		loss += nn.Penalize(ws.z2[j], ws.dz2[j], b.hidden, b.weight, scale)
	}
	n.fc1.backward(p.fc1W, ws.a1[:m], ws.dz2[:m], g.fc1W, g.fc1B, ws.da1[:m])
	for j := range m {
		n.act1.backward(p.act1, ws.z1[j], ws.da1[j], g.act1, ws.dz1[j])
		loss += nn.Penalize(ws.z1[j], ws.dz1[j], b.conv, b.weight, scale)
		n.conv.backward(p.convW, ws.cols[j], ws.dz1[j], g.convW, g.convB, nil)
	}
	return loss, correct
}

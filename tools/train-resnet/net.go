package main

import (
	"math"
	"math/rand/v2"

	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/tools/internal/nn"
)

// arch fixes the shapes of the network
//
//	input [1,H,W]
//	stem:    conv 1→C1 3×3 s2 p1, BN, act
//	block 1: conv C1→C1 3×3 s1 p1, BN, act, conv C1→C1 3×3 s1 p1, BN, + block input, act
//	block 2: conv C1→C2 3×3 s2 p1, BN, act, conv C2→C2 3×3 s1 p1, BN,
//	         + (conv C1→C2 1×1 s2 p0, BN of the block input), act
//	global average pooling, dense C2→Classes (logits)
//
// where BN is batch normalization (an affine node at inference) and act a
// learned polynomial c0 + c1 x + ... + c_Degree x^Degree, one per
// activation node.
type arch struct {
	H, W    int
	C1, C2  int
	Classes int
	Degree  int
}

// mnistResNet is the network written to modelzoo/mnist-resnet.json (with
// the channel widths of the -width1 and -width2 flags, 8 and 16 by default).
var mnistResNet = arch{H: 28, W: 28, C1: 8, C2: 16, Classes: 10, Degree: 2}

// The convolutions, each followed by its batch normalization of the same
// index.
const (
	cStem = iota // stem
	cB1a         // block 1, first conv
	cB1b         // block 1, second conv
	cB2a         // block 2, first conv (stride 2)
	cB2b         // block 2, second conv
	cSkip        // block 2, 1×1 projection of the skip connection
	nConv
)

// The activations, in order. Their inputs (the pre-activations) are
// BN stem, BN b1a, BN b1b + stem act, BN b2a, BN b2b + BN skip.
const (
	aStem = iota
	aB1a
	aB1b
	aB2a
	aB2b
	nAct
)

// network is the layer geometry; its parameters live in one flat vector,
// cut into named pieces by view, and the running statistics of the batch
// normalizations in another (see stats).
type network struct {
	arch
	convs [nConv]conv
	bns   [nConv]batchNorm
	act   poly
	fc    dense
	size  int // number of trained parameters
}

// params are views into one flat parameter (or gradient) vector.
type params struct {
	convW       [nConv][]float64
	gamma, beta [nConv][]float64
	act         [nAct][]float64 // coefficients c0..c_Degree
	fcW, fcB    []float64
}

// stats are the running averages of the batch statistics, the
// normalization used at inference.
type stats struct {
	mean, variance [nConv][]float64
}

func newNetwork(a arch) *network {
	n := &network{arch: a}
	n.convs[cStem] = newConv(1, a.C1, 3, 2, 1, a.H, a.W)
	h, w := n.convs[cStem].oh, n.convs[cStem].ow
	n.convs[cB1a] = newConv(a.C1, a.C1, 3, 1, 1, h, w)
	n.convs[cB1b] = newConv(a.C1, a.C1, 3, 1, 1, h, w)
	n.convs[cB2a] = newConv(a.C1, a.C2, 3, 2, 1, h, w)
	h2, w2 := n.convs[cB2a].oh, n.convs[cB2a].ow
	n.convs[cB2b] = newConv(a.C2, a.C2, 3, 1, 1, h2, w2)
	n.convs[cSkip] = newConv(a.C1, a.C2, 1, 2, 0, h, w)
	if s := n.convs[cSkip]; s.oh != h2 || s.ow != w2 {
		panic("train-resnet: skip projection and block 2 disagree on the output size")
	}
	for i := range n.convs {
		c := &n.convs[i]
		n.bns[i] = batchNorm{c: c.out, per: c.positions()}
		n.size += c.nWeights() + 2*c.out
	}
	n.act = poly{degree: a.Degree}
	n.fc = dense{in: a.C2, out: a.Classes}
	n.size += nAct*(a.Degree+1) + n.fc.in*n.fc.out + n.fc.out
	return n
}

// view cuts flat (of length n.size) into the parameters of each layer.
func (n *network) view(flat []float64) params {
	if len(flat) != n.size {
		panic("train-resnet: parameter vector of the wrong size")
	}
	take := func(k int) []float64 {
		s := flat[:k:k]
		flat = flat[k:]
		return s
	}
	var p params
	for i := range n.convs {
		p.convW[i] = take(n.convs[i].nWeights())
	}
	for i := range n.convs {
		p.gamma[i] = take(n.convs[i].out)
		p.beta[i] = take(n.convs[i].out)
	}
	for i := range p.act {
		p.act[i] = take(n.Degree + 1)
	}
	p.fcW = take(n.fc.in * n.fc.out)
	p.fcB = take(n.fc.out)
	return p
}

// newStats returns running statistics of mean 0 and variance 1.
func (n *network) newStats() *stats {
	s := &stats{}
	for i := range n.convs {
		s.mean[i] = make([]float64, n.convs[i].out)
		s.variance[i] = make([]float64, n.convs[i].out)
		for c := range s.variance[i] {
			s.variance[i][c] = 1
		}
	}
	return s
}

// initial returns freshly initialised parameters: conv and dense weights
// drawn from N(0, 1/fan_in), BN scale 1 and shift 0, dense biases 0, and
// activations 0.5x + 0.1x² (c1 = 0.5, c2 = 0.1, other coefficients 0).
func (n *network) initial(rng *rand.Rand) []float64 {
	flat := make([]float64, n.size)
	p := n.view(flat)
	normal := func(w []float64, fanIn int) {
		std := 1 / math.Sqrt(float64(fanIn))
		for i := range w {
			w[i] = std * rng.NormFloat64()
		}
	}
	for i := range n.convs {
		normal(p.convW[i], n.convs[i].patchSize())
		for c := range p.gamma[i] {
			p.gamma[i][c] = 1
		}
	}
	normal(p.fcW, n.fc.in)
	for _, c := range p.act {
		c[1] = 0.5
		if n.Degree >= 2 {
			c[2] = 0.1
		}
	}
	return flat
}

// bounds are soft limits on the pre-activations (the inputs of the
// polynomial activations) and on the logits. Beyond them the loss grows by
// weight·(|z| − bound)² per value, averaged over the batch.
type bounds struct {
	preact, logits float64
	weight         float64
}

// workspace holds the values and gradients of a batch of up to maxB
// images, each buffer holding the images one after the other.
type workspace struct {
	maxB           int
	x              []float64        // input images
	cols           [nConv][]float64 // patches of each conv's input
	z, xhat, u     [nConv][]float64 // conv output, normalized, BN output
	mean, variance [nConv][]float64 // batch statistics (training)
	invstd         [nConv][]float64
	s2, s4         []float64       // the two residual sums
	a              [nAct][]float64 // activation outputs
	gp             []float64       // pooled [C2] per image
	logits         []float64
	dlogits, dgp   []float64
	da, dp         [nAct][]float64  // gradients of activation outputs and inputs
	dz             [nConv][]float64 // gradients of conv outputs
	wT             [nConv][]float64 // transposed conv weights
	scale, shift   [nConv][]float64 // BN as affine maps (eval mode)
	scratch        *convScratch
	prob           []float64
}

func (n *network) newWorkspace(maxB int) *workspace {
	ws := &workspace{maxB: maxB}
	m := func(k int) []float64 { return make([]float64, maxB*k) }
	ws.x = m(n.H * n.W)
	var cs []*conv
	for i := range n.convs {
		c := &n.convs[i]
		cs = append(cs, c)
		ws.cols[i] = m(c.colsSize())
		ws.z[i], ws.xhat[i], ws.u[i], ws.dz[i] = m(c.outSize()), m(c.outSize()), m(c.outSize()), m(c.outSize())
		ws.mean[i], ws.variance[i], ws.invstd[i] = make([]float64, c.out), make([]float64, c.out), make([]float64, c.out)
		ws.wT[i] = make([]float64, c.nWeights())
	}
	ws.scratch = newConvScratch(cs...)
	for k := range ws.a {
		sz := n.actSize(k)
		ws.a[k], ws.da[k], ws.dp[k] = m(sz), m(sz), m(sz)
	}
	ws.s2, ws.s4 = m(n.actSize(aB1b)), m(n.actSize(aB2b))
	ws.gp, ws.dgp = m(n.C2), m(n.C2)
	ws.logits, ws.dlogits = m(n.Classes), m(n.Classes)
	ws.prob = make([]float64, n.Classes)
	return ws
}

// actSize is the number of values of activation k per image.
func (n *network) actSize(k int) int {
	switch k {
	case aStem, aB1a, aB1b:
		return n.convs[cStem].outSize()
	}
	return n.convs[cB2b].outSize()
}

// img returns image b's part of buffer v of per values per image.
func img(v []float64, b, per int) []float64 { return v[b*per : (b+1)*per] }

// pre returns the buffer of the inputs of activation k.
func (ws *workspace) pre(k int) []float64 {
	switch k {
	case aStem:
		return ws.u[cStem]
	case aB1a:
		return ws.u[cB1a]
	case aB1b:
		return ws.s2
	case aB2a:
		return ws.u[cB2a]
	}
	return ws.s4
}

// forward runs the images xs (at most the workspace size) through the
// network; the logits of xs[j] are img(ws.logits, j, n.Classes). In
// training mode (st nil) the batch normalizations use the batch statistics
// (kept in ws.mean and ws.variance); otherwise the running statistics st.
func (n *network) forward(p params, st *stats, ws *workspace, xs [][]float64) {
	B := len(xs)
	if B > ws.maxB {
		panic("train-resnet: batch larger than the workspace")
	}
	in := n.H * n.W
	for b, x := range xs {
		copy(img(ws.x, b, in), x[:in])
	}
	if st != nil {
		for i := range n.convs {
			ws.scale[i], ws.shift[i] = n.bns[i].affine(p.gamma[i], p.beta[i], st.mean[i], st.variance[i])
		}
	}
	// convBN computes conv i of input buffer x (per values per image) and
	// its batch normalization into ws.u[i].
	convBN := func(i int, x []float64, per int) {
		c, l := &n.convs[i], &n.bns[i]
		for b := range B {
			c.forward(p.convW[i], img(x, b, per), img(ws.cols[i], b, c.colsSize()), img(ws.z[i], b, c.outSize()))
		}
		if st == nil {
			l.forwardTrain(p.gamma[i], p.beta[i], ws.z[i], ws.xhat[i], ws.u[i], ws.mean[i], ws.variance[i], ws.invstd[i], B)
		} else {
			l.forwardEval(ws.scale[i], ws.shift[i], ws.z[i], ws.u[i], B)
		}
	}
	act := func(k int) {
		sz := n.actSize(k) * B
		n.act.forward(p.act[k], ws.pre(k)[:sz], ws.a[k][:sz])
	}
	s1, s2 := n.actSize(aStem), n.actSize(aB2b)
	convBN(cStem, ws.x, in)
	act(aStem)
	convBN(cB1a, ws.a[aStem], s1)
	act(aB1a)
	convBN(cB1b, ws.a[aB1a], s1)
	add(ws.u[cB1b][:B*s1], ws.a[aStem][:B*s1], ws.s2[:B*s1])
	act(aB1b)
	convBN(cB2a, ws.a[aB1b], s1)
	act(aB2a)
	convBN(cB2b, ws.a[aB2a], s2)
	convBN(cSkip, ws.a[aB1b], s1)
	add(ws.u[cB2b][:B*s2], ws.u[cSkip][:B*s2], ws.s4[:B*s2])
	act(aB2b)
	for b := range B {
		gap(n.C2, n.bns[cB2b].per, img(ws.a[aB2b], b, s2), img(ws.gp, b, n.C2))
		n.fc.forward(p.fcW, p.fcB, img(ws.gp, b, n.C2), img(ws.logits, b, n.Classes))
	}
}

// backward runs forward on xs in training mode, then adds scale × the
// gradient of the loss (softmax cross-entropy against labels, plus the
// bounds penalty), summed over the images, to g. It returns the unscaled
// summed loss and the number of right predictions. The batch statistics
// stay in ws (for the running averages).
func (n *network) backward(p, g params, ws *workspace, xs [][]float64, labels []int, scale float64, bd bounds) (loss float64, correct int) {
	B := len(xs)
	n.forward(p, nil, ws, xs)
	K := n.Classes
	for b, label := range labels[:B] {
		z, dz := img(ws.logits, b, K), img(ws.dlogits, b, K)
		loss += nn.Softmax(z, ws.prob) - z[label] // −log nn.Softmax(z)[label]
		if ir.ArgMax(z) == label {
			correct++
		}
		for i, q := range ws.prob {
			dz[i] = scale * q
		}
		dz[label] -= scale
		loss += nn.Penalize(z, dz, bd.logits, bd.weight, scale)
	}
	s1, s2 := n.actSize(aStem), n.actSize(aB2b)
	for b := range B {
		n.fc.backward(p.fcW, img(ws.gp, b, n.C2), img(ws.dlogits, b, K), g.fcW, g.fcB, img(ws.dgp, b, n.C2))
		gapBackward(n.C2, n.bns[cB2b].per, img(ws.dgp, b, n.C2), img(ws.da[aB2b], b, s2))
	}
	// actBack turns the gradient of activation k's output into that of its
	// input, penalty included.
	actBack := func(k int) {
		sz := n.actSize(k) * B
		x := ws.pre(k)[:sz]
		n.act.backward(p.act[k], x, ws.da[k][:sz], g.act[k], ws.dp[k][:sz])
		loss += nn.Penalize(x, ws.dp[k][:sz], bd.preact, bd.weight, scale)
	}
	// bnConvBack back-propagates du, the gradient of BN i's output,
	// through BN i and conv i, whose input was x (per values per image);
	// it ADDS the input gradient to dx (if not nil).
	bnConvBack := func(i int, du, x, dx []float64, per int) {
		c, l := &n.convs[i], &n.bns[i]
		l.backward(p.gamma[i], ws.xhat[i], ws.invstd[i], du, g.gamma[i], g.beta[i], ws.dz[i], B)
		c.transposeWeights(p.convW[i], ws.wT[i])
		for b := range B {
			var dxb []float64
			if dx != nil {
				dxb = img(dx, b, per)
			}
			c.backward(ws.wT[i], img(ws.cols[i], b, c.colsSize()), img(ws.dz[i], b, c.outSize()), g.convW[i], dxb, ws.scratch)
		}
	}
	actBack(aB2b)
	clear(ws.da[aB1b][:B*s1])
	clear(ws.da[aB2a][:B*s2])
	bnConvBack(cSkip, ws.dp[aB2b], ws.a[aB1b], ws.da[aB1b], s1)
	bnConvBack(cB2b, ws.dp[aB2b], ws.a[aB2a], ws.da[aB2a], s2)
	actBack(aB2a)
	bnConvBack(cB2a, ws.dp[aB2a], ws.a[aB1b], ws.da[aB1b], s1)
	actBack(aB1b)
	clear(ws.da[aB1a][:B*s1])
	copy(ws.da[aStem][:B*s1], ws.dp[aB1b][:B*s1]) // the identity skip
	bnConvBack(cB1b, ws.dp[aB1b], ws.a[aB1a], ws.da[aB1a], s1)
	actBack(aB1a)
	bnConvBack(cB1a, ws.dp[aB1a], ws.a[aStem], ws.da[aStem], s1)
	actBack(aStem)
	bnConvBack(cStem, ws.dp[aStem], ws.x, nil, n.H*n.W)
	return loss, correct
}

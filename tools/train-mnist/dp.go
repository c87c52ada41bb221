package main

// DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", 2016),
// as accounted by package dp/rdp:
//
//   - each step samples its minibatch by Poisson sampling: every training
//     example is included independently with probability q = B/N (B the
//     -batch flag, the expected batch size), so that the batch size varies
//     from step to step; this is the sampling the RDP analysis of the
//     sampled Gaussian mechanism assumes;
//   - each example's gradient of its own loss (cross-entropy plus its share
//     of the magnitude penalty), over all the parameters at once, is clipped
//     to L2 norm at most C;
//   - the clipped gradients are summed, Gaussian noise N(0, (σC)²) is added
//     to every coordinate of the sum, and the result is divided by the
//     expected batch size B (not by the actual one, which would depend on
//     the data through the sample);
//   - the optimizer (by default SGD with heavy-ball momentum and a little
//     weight decay; Adam with -dp-optimizer adam) takes that noisy
//     gradient; what it does with it is post-processing and costs no
//     privacy.
//
// Removing or adding one training example changes the noisy sum by at most
// C in L2 norm before the noise, which with the Poisson sampling is exactly
// the sampled Gaussian mechanism with noise multiplier σ; T steps compose.
// The privacy guarantee covers every intermediate model as well as the
// final one.
//
// Randomness: the initial weights come from -seed as without DP. The
// Poisson sampling and the noise come from a separate ChaCha8 stream (a
// cryptographically strong generator). By default its 32-byte seed is
// derived from -seed, so a run is reproducible; but then anyone who knows
// the seed (it is recorded in the model file) can recompute the noise and
// the batches, and the differential-privacy guarantee no longer holds
// against them. -dp-fresh-seed draws that seed from crypto/rand instead and
// records nothing of it: use it for a model whose privacy matters. The
// noise is drawn with math/rand/v2's NormFloat64 in float64, which is fine
// for offline training but is not a hardened sampler (floating-point
// Gaussian samplers have known side channels and low-order-bit artefacts;
// see Mironov 2012 for the analogous Laplace attack).

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/tools/internal/nn"
)

// dpConfig are the DP-SGD settings of a training run (config.DP).
type dpConfig struct {
	Clip  float64  // C: each example's gradient is clipped to this L2 norm
	Noise float64  // σ, the noise multiplier: noise std σ·C on the summed gradient
	Seed  [32]byte // ChaCha8 seed of the Poisson sampling and of the noise

	SGD      bool    // plain SGD with (heavy-ball) momentum instead of Adam
	Momentum float64 // SGD momentum

	// WeightDecay adds WeightDecay·w to the noisy gradient of each conv
	// and dense weight w (not biases, not the activations' coefficients)
	// before the optimizer step: L2 regularisation, data-independent, so
	// it costs no privacy. It bounds the random walk the noise drives the
	// weights on along directions the loss barely constrains.
	WeightDecay float64
}

// dpChunk is how many examples a shard runs forward and backward at once
// under DP-SGD (Poisson batches have no fixed size, so each shard's part of
// a batch is processed in chunks of at most this many).
const dpChunk = 16

// dpSeed derives the default seed of the DP randomness from -seed.
func dpSeed(seed uint64) [32]byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	return sha256.Sum256(append([]byte("hegate train-mnist dp-sgd "), b[:]...))
}

// dpSteps is the number of DP-SGD steps for epochs passes over n examples
// at expected batch size batch: ceil(epochs·n/batch), i.e. epochs/q.
func dpSteps(epochs, batch, n int) int {
	return (epochs*n + batch - 1) / batch
}

// poissonSample appends to dst[:0] each of 0..n-1 independently with
// probability q, in increasing order.
func poissonSample(rng *rand.Rand, n int, q float64, dst []int) []int {
	dst = dst[:0]
	for i := range n {
		if rng.Float64() < q {
			dst = append(dst, i)
		}
	}
	return dst
}

// dpWorkspace extends a workspace with the per-example pieces of the
// gradient that clippedGrad keeps apart until it knows each example's
// clipping factor.
type dpWorkspace struct {
	*workspace
	convG  [][]float64 // conv weights then biases, per example
	c1, c2 [][]float64 // polynomial coefficients, per example
	factor []float64   // min(1, C/‖g_j‖)
}

func (n *network) newDPWorkspace(size int) *dpWorkspace {
	m := func(k int) [][]float64 {
		v := make([][]float64, size)
		for j := range v {
			v[j] = make([]float64, k)
		}
		return v
	}
	return &dpWorkspace{
		workspace: n.newWorkspace(size),
		convG:     m(n.conv.nWeights() + n.Channels),
		c1:        m(n.Degree + 1), c2: m(n.Degree + 1),
		factor: make([]float64, size),
	}
}

func sumSq(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return s
}

// clippedGrad runs forward on xs, then adds to g the sum over the images of
// each image's gradient (of its cross-entropy plus its penalty terms)
// scaled down to L2 norm at most clip. It returns the summed loss, the
// number of right predictions and the number of images whose gradient was
// scaled down.
//
// Each image's full gradient norm is found without forming the gradient
// of the dense layers: the weight gradient of a dense layer for one input x
// with output gradient dy is the outer product dy xᵀ, of norm ‖dy‖·‖x‖
// (and the bias gradient is dy). The small pieces (conv weights, polynomial
// coefficients) are formed per image. Since an image's gradient is linear
// in the output gradients fed into the backward pass, scaling those by the
// image's factor scales its whole gradient.
func (n *network) clippedGrad(p, g params, ws *dpWorkspace, xs [][]float64, labels []int, clip float64, b bounds) (loss float64, correct, clipped int) {
	m := len(xs)
	n.forward(p, ws.workspace, xs)
	for j, label := range labels[:m] {
		z, dz := ws.z3[j], ws.dz3[j]
		loss += nn.Softmax(z, ws.prob) - z[label]
		if ir.ArgMax(z) == label {
			correct++
		}
		copy(dz, ws.prob)
		dz[label]--
		loss += nn.Penalize(z, dz, b.logits, b.weight, 1)
	}
	norm2 := ws.factor[:m] // squared norms first, factors below
	n.fc2.backwardInput(p.fc2W, ws.dz3[:m], ws.da2[:m])
	for j := range m {
		norm2[j] = sumSq(ws.dz3[j]) * (sumSq(ws.a2[j]) + 1)
		clear(ws.c2[j])
		n.act2.backward(p.act2, ws.z2[j], ws.da2[j], ws.c2[j], ws.dz2[j])
		loss += nn.Penalize(ws.z2[j], ws.dz2[j], b.hidden, b.weight, 1)
		norm2[j] += sumSq(ws.c2[j])
	}
	n.fc1.backwardInput(p.fc1W, ws.dz2[:m], ws.da1[:m])
	nw := n.conv.nWeights()
	for j := range m {
		norm2[j] += sumSq(ws.dz2[j]) * (sumSq(ws.a1[j]) + 1)
		clear(ws.c1[j])
		n.act1.backward(p.act1, ws.z1[j], ws.da1[j], ws.c1[j], ws.dz1[j])
		loss += nn.Penalize(ws.z1[j], ws.dz1[j], b.conv, b.weight, 1)
		norm2[j] += sumSq(ws.c1[j])
		cg := ws.convG[j]
		clear(cg)
		n.conv.backward(p.convW, ws.cols[j], ws.dz1[j], cg[:nw], cg[nw:], nil)
		norm2[j] += sumSq(cg)
	}
	for j := range m {
		f := 1.0
		if norm := math.Sqrt(norm2[j]); norm > clip {
			f = clip / norm
			clipped++
		}
		ws.factor[j] = f
		for i := range ws.dz3[j] {
			ws.dz3[j][i] *= f
		}
		for i := range ws.dz2[j] {
			ws.dz2[j][i] *= f
		}
	}
	n.fc2.backwardWeights(ws.a2[:m], ws.dz3[:m], g.fc2W, g.fc2B)
	n.fc1.backwardWeights(ws.a1[:m], ws.dz2[:m], g.fc1W, g.fc1B)
	for j := range m {
		f := ws.factor[j]
		for k := range g.act2 {
			g.act2[k] += f * ws.c2[j][k]
			g.act1[k] += f * ws.c1[j][k]
		}
		cg := ws.convG[j]
		for i, v := range cg[:nw] {
			g.convW[i] += f * v
		}
		for i, v := range cg[nw:] {
			g.convB[i] += f * v
		}
	}
	return loss, correct, clipped
}

// dpShards computes the sum of the clipped per-example gradients of the
// images idx of set, cut into shards fixed parts summed in a fixed order
// (so the result does not depend on workers), into sum.
type dpShards struct {
	n       *network
	workers int
	parts   []dpPart
}

type dpPart struct {
	grad    []float64
	g       params
	ws      *dpWorkspace
	loss    float64
	correct int
	clipped int
}

func newDPShards(n *network, workers int) *dpShards {
	s := &dpShards{n: n, workers: min(workers, shards), parts: make([]dpPart, shards)}
	for i := range s.parts {
		s.parts[i].grad = make([]float64, n.size)
		s.parts[i].g = n.view(s.parts[i].grad)
		s.parts[i].ws = n.newDPWorkspace(dpChunk)
	}
	return s
}

func (s *dpShards) parallel(f func(w int)) {
	var wg sync.WaitGroup
	for w := range s.workers {
		wg.Go(func() { f(w) })
	}
	wg.Wait()
}

// sum overwrites sum with Σ_j clip(∇ loss_j) over the images idx of set
// and returns the summed loss, right predictions and clipped count.
func (s *dpShards) sum(p params, set *mnist.Set, idx []int, clip float64, b bounds, sum []float64) (loss float64, correct, clipped int) {
	s.parallel(func(w int) {
		xs := make([][]float64, 0, dpChunk)
		labels := make([]int, 0, dpChunk)
		for k := w; k < shards; k += s.workers {
			d := &s.parts[k]
			clear(d.grad)
			d.loss, d.correct, d.clipped = 0, 0, 0
			lo, hi := k*len(idx)/shards, (k+1)*len(idx)/shards
			for c := lo; c < hi; c += dpChunk {
				xs, labels = xs[:0], labels[:0]
				for _, i := range idx[c:min(c+dpChunk, hi)] {
					xs = append(xs, set.Images[i])
					labels = append(labels, set.Labels[i])
				}
				l, r, cl := s.n.clippedGrad(p, d.g, d.ws, xs, labels, clip, b)
				d.loss += l
				d.correct += r
				d.clipped += cl
			}
		}
	})
	s.parallel(func(w int) {
		lo, hi := w*len(sum)/s.workers, (w+1)*len(sum)/s.workers
		for i := lo; i < hi; i++ {
			v := s.parts[0].grad[i]
			for k := 1; k < shards; k++ {
				v += s.parts[k].grad[i]
			}
			sum[i] = v
		}
	})
	for k := range s.parts {
		loss += s.parts[k].loss
		correct += s.parts[k].correct
		clipped += s.parts[k].clipped
	}
	return loss, correct, clipped
}

// trainDP is train with DP-SGD (cfg.DP set): Poisson-sampled batches of
// expected size cfg.Batch, per-example clipping to cfg.DP.Clip, Gaussian
// noise of std cfg.DP.Noise·cfg.DP.Clip on the sum, division by cfg.Batch,
// then SGD with momentum (cfg.DP.SGD) or Adam at the scheduled learning
// rate, for dpSteps(cfg.Epochs, cfg.Batch, set.Len()) steps. Data
// augmentation (cfg.Shift) is not supported under DP. The initial weights
// are those train would start from with the same cfg.Seed.
func trainDP(n *network, set *mnist.Set, cfg config) ([]float64, []epochStats, error) {
	dp := cfg.DP
	N := set.Len()
	switch {
	case !(dp.Clip > 0) || !(dp.Noise >= 0) || math.IsInf(dp.Clip, 0) || math.IsInf(dp.Noise, 0):
		return nil, nil, fmt.Errorf("DP-SGD: clip %v must be positive and noise multiplier %v not negative", dp.Clip, dp.Noise)
	case cfg.Batch > N:
		return nil, nil, fmt.Errorf("DP-SGD: expected batch %d larger than the training set (%d)", cfg.Batch, N)
	case cfg.Shift != 0:
		return nil, nil, fmt.Errorf("DP-SGD: augmentation (shift %d) is not supported", cfg.Shift)
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6865676174650001))
	flat := n.initial(rng)
	p := n.view(flat)
	dpRNG := rand.New(rand.NewChaCha8(dp.Seed))
	m, v := make([]float64, n.size), make([]float64, n.size)
	grad := make([]float64, n.size)
	sh := newDPShards(n, cfg.Workers)
	workers := sh.workers

	q := float64(cfg.Batch) / float64(N)
	total := dpSteps(cfg.Epochs, cfg.Batch, N)
	perEpoch := (N + cfg.Batch - 1) / cfg.Batch
	std := dp.Noise * dp.Clip
	inv := 1 / float64(cfg.Batch)
	decay := make([]float64, n.size) // WeightDecay on weights, 0 elsewhere
	if dp.WeightDecay != 0 {
		d := n.view(decay)
		for _, w := range [][]float64{d.convW, d.fc1W, d.fc2W} {
			for i := range w {
				w[i] = dp.WeightDecay
			}
		}
	}
	var idx []int
	var stats []epochStats
	var loss float64
	var correct, clipped, seen int
	start := time.Now()
	for step := range total {
		idx = poissonSample(dpRNG, N, q, idx)
		l, r, c := sh.sum(p, set, idx, dp.Clip, cfg.Bounds, grad)
		loss += l
		correct += r
		clipped += c
		seen += len(idx)
		// The noise, in one fixed sequence whatever the number of workers.
		for i := range grad {
			grad[i] = (grad[i]+std*dpRNG.NormFloat64())*inv + decay[i]*flat[i]
		}
		lr := nn.LRAt(cfg.LR, step, total)
		c1 := 1 - math.Pow(nn.Beta1, float64(step+1))
		c2 := 1 - math.Pow(nn.Beta2, float64(step+1))
		sh.parallel(func(w int) {
			lo, hi := w*n.size/workers, (w+1)*n.size/workers
			if dp.SGD {
				for i := lo; i < hi; i++ {
					m[i] = dp.Momentum*m[i] + grad[i]
					flat[i] -= lr * m[i]
				}
				return
			}
			for i := lo; i < hi; i++ {
				g := grad[i]
				m[i] = nn.Beta1*m[i] + (1-nn.Beta1)*g
				v[i] = nn.Beta2*v[i] + (1-nn.Beta2)*g*g
				flat[i] -= lr * (m[i] / c1) / (math.Sqrt(v[i]/c2) + nn.AdamEps)
			}
		})
		if (step+1)%perEpoch != 0 && step+1 != total {
			continue
		}
		epoch := (step + perEpoch) / perEpoch
		for _, x := range flat {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, stats, fmt.Errorf("step %d: training diverged (non-finite weights); lower -lr", step+1)
			}
		}
		seen = max(seen, 1)
		st := epochStats{
			Loss: loss / float64(seen), TrainAcc: float64(correct) / float64(seen), EvalAcc: math.NaN(),
			Clipped: float64(clipped) / float64(seen), Took: time.Since(start),
		}
		msg := ""
		if cfg.Eval != nil {
			r := measure(n, flat, cfg.Eval, workers)
			st.EvalAcc = r.acc
			msg = fmt.Sprintf(" eval acc %.4f max|z| conv %.2f hidden %.2f logits %.2f", r.acc, r.maxAbs[0], r.maxAbs[1], r.maxAbs[2])
		}
		stats = append(stats, st)
		fmt.Fprintf(cfg.Log, "epoch %2d (step %d/%d) loss %.4f train acc %.4f clipped %.3f%s act1 %s act2 %s (%s)\n",
			epoch, step+1, total, st.Loss, st.TrainAcc, st.Clipped, msg, fmtCoeffs(p.act1), fmtCoeffs(p.act2), st.Took.Round(time.Millisecond))
		loss, correct, clipped, seen = 0, 0, 0, 0
		start = time.Now()
	}
	return flat, stats, nil
}

package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/tools/internal/nn"
)

// shards is how many parts each minibatch is cut into. Each part's gradient
// is computed into its own buffer and the buffers are summed in a fixed
// order, so the trained weights depend on the seed but not on how many
// goroutines did the work. Each part is also the batch over which the batch
// normalizations take their statistics in training ("ghost" batch
// normalization: 16 images for the default minibatch of 128).
const shards = 8

// config are the training settings.
type config struct {
	Epochs   int
	Batch    int
	LR       float64 // peak learning rate of Adam
	Seed     uint64
	Shift    int     // augmentation: random translation by up to Shift pixels
	Clip     float64 // clip the gradient to this global L2 norm (0: no clipping)
	Momentum float64 // weight of each batch in the running BN statistics
	Workers  int     // goroutines; the result does not depend on it
	Bounds   bounds  // soft magnitude limits
	MaxSteps int     // stop after this many steps (0: train all epochs); for tests
	Log      io.Writer
	Eval     *mnist.Set // if set, its accuracy is logged after each epoch (never used to choose anything)
}

// epochStats summarise one epoch.
type epochStats struct {
	Loss     float64 // mean training loss (with penalty) over the epoch
	TrainAcc float64 // accuracy on the (augmented) training batches as they were seen, in training mode
	EvalAcc  float64 // accuracy on cfg.Eval, or NaN
	Clipped  int     // steps whose gradient was clipped
	Took     time.Duration
}

// train fits a fresh network to set with minibatch Adam on softmax
// cross-entropy and returns the flat parameter vector and the running
// batch-normalization statistics.
func train(n *network, set *mnist.Set, cfg config) ([]float64, *stats, []epochStats, error) {
	if cfg.Epochs <= 0 || cfg.Batch <= 0 || cfg.LR <= 0 || cfg.Workers <= 0 || cfg.Shift < 0 || cfg.Clip < 0 ||
		cfg.Momentum <= 0 || cfg.Momentum > 1 || cfg.MaxSteps < 0 {
		return nil, nil, nil, fmt.Errorf("epochs, batch, lr, workers must be positive, shift, clip and max steps not negative, momentum in (0,1]: %+v", cfg)
	}
	if set.Len() == 0 {
		return nil, nil, nil, fmt.Errorf("empty training set")
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6865676174650002))
	flat := n.initial(rng)
	p := n.view(flat)
	st := n.newStats()
	m, v := make([]float64, n.size), make([]float64, n.size)
	grad := make([]float64, n.size)

	type shard struct {
		grad    []float64
		g       params
		ws      *workspace
		imgs    [][]float64 // augmented images
		xs      [][]float64 // the images of the current part
		labels  []int
		loss    float64
		correct int
	}
	sh := make([]shard, shards)
	size := (cfg.Batch + shards - 1) / shards
	for i := range sh {
		sh[i].grad = make([]float64, n.size)
		sh[i].g = n.view(sh[i].grad)
		sh[i].ws = n.newWorkspace(size)
		sh[i].imgs = make([][]float64, size)
		for j := range sh[i].imgs {
			sh[i].imgs[j] = make([]float64, n.H*n.W)
		}
	}
	parts := make([]shardStats, shards)
	workers := min(cfg.Workers, shards)
	parallel := func(f func(w int)) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() { f(w) })
		}
		wg.Wait()
	}

	N := set.Len()
	perBatch := (N + cfg.Batch - 1) / cfg.Batch
	total := cfg.Epochs * perBatch
	if cfg.MaxSteps > 0 {
		total = min(total, cfg.MaxSteps)
	}
	step := 0
	shifts := make([][2]int, cfg.Batch)
	var out []epochStats
	for epoch := 0; epoch < cfg.Epochs && step < total; epoch++ {
		start := time.Now()
		perm := rng.Perm(N)
		var loss float64
		var correct, seen, clipped int
		for b := 0; b < N && step < total; b += cfg.Batch {
			idx := perm[b:min(b+cfg.Batch, N)]
			for i := range idx {
				shifts[i] = [2]int{0, 0}
				if cfg.Shift > 0 {
					shifts[i] = [2]int{rng.IntN(2*cfg.Shift+1) - cfg.Shift, rng.IntN(2*cfg.Shift+1) - cfg.Shift}
				}
			}
			scale := 1 / float64(len(idx))
			parallel(func(w int) {
				for s := w; s < shards; s += workers {
					d := &sh[s]
					clear(d.grad)
					d.loss, d.correct = 0, 0
					lo, hi := s*len(idx)/shards, (s+1)*len(idx)/shards
					d.xs, d.labels = d.xs[:0], d.labels[:0]
					if lo == hi {
						continue
					}
					for j := lo; j < hi; j++ {
						x := set.Images[idx[j]]
						if shifts[j] != [2]int{0, 0} {
							translate(d.imgs[j-lo], x, n.H, n.W, shifts[j][0], shifts[j][1])
							x = d.imgs[j-lo]
						}
						d.xs = append(d.xs, x)
						d.labels = append(d.labels, set.Labels[idx[j]])
					}
					d.loss, d.correct = n.backward(p, d.g, d.ws, d.xs, d.labels, scale, cfg.Bounds)
				}
			})
			for s := range sh {
				loss += sh[s].loss
				correct += sh[s].correct
			}
			seen += len(idx)
			// Sum the shard gradients in shard order, clip, and take an
			// Adam step.
			norm := 0.0
			for i := range grad {
				g := sh[0].grad[i]
				for s := 1; s < shards; s++ {
					g += sh[s].grad[i]
				}
				grad[i] = g
				norm += g * g
			}
			gscale := 1.0
			if norm = math.Sqrt(norm); cfg.Clip > 0 && norm > cfg.Clip {
				gscale = cfg.Clip / norm
				clipped++
			}
			lr := nn.LRAt(cfg.LR, step, total)
			step++
			c1 := 1 - math.Pow(nn.Beta1, float64(step))
			c2 := 1 - math.Pow(nn.Beta2, float64(step))
			for i, g := range grad {
				g *= gscale
				m[i] = nn.Beta1*m[i] + (1-nn.Beta1)*g
				v[i] = nn.Beta2*v[i] + (1-nn.Beta2)*g*g
				flat[i] -= lr * (m[i] / c1) / (math.Sqrt(v[i]/c2) + nn.AdamEps)
			}
			for s := range sh {
				parts[s] = shardStats{ws: sh[s].ws, count: len(sh[s].xs)}
			}
			updateStats(n, st, parts, cfg.Momentum)
		}
		for _, x := range flat {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, nil, out, fmt.Errorf("epoch %d: training diverged (non-finite weights); lower -lr or set -clip", epoch+1)
			}
		}
		es := epochStats{Loss: loss / float64(seen), TrainAcc: float64(correct) / float64(seen), EvalAcc: math.NaN(), Clipped: clipped, Took: time.Since(start)}
		msg := ""
		if cfg.Eval != nil {
			r := measure(n, flat, st, cfg.Eval, workers)
			es.EvalAcc = r.acc
			msg = fmt.Sprintf(" test acc %.4f max|pre| %s logits %.2f", r.acc, fmtFloats(r.maxPre[:], "%.2f"), r.maxLogit)
		}
		out = append(out, es)
		var acts []string
		for _, c := range p.act {
			acts = append(acts, fmtFloats(c, "%.3f"))
		}
		fmt.Fprintf(cfg.Log, "epoch %2d/%d loss %.4f train acc %.4f clipped %d%s act %s (%s)\n",
			epoch+1, cfg.Epochs, es.Loss, es.TrainAcc, clipped, msg, strings.Join(acts, " "), es.Took.Round(time.Millisecond))
	}
	return flat, st, out, nil
}

// shardStats are a shard's batch statistics (in its workspace) and its
// number of images.
type shardStats struct {
	ws    *workspace
	count int // images
}

// updateStats moves the running statistics st towards the statistics of
// the whole minibatch, combined in shard order from the statistics of each
// shard: st ← (1 − momentum)·st + momentum·batch, with the unbiased
// variance.
func updateStats(n *network, st *stats, parts []shardStats, momentum float64) {
	for i := range n.convs {
		per := n.bns[i].per
		for c := range st.mean[i] {
			cnt, s, sq := 0, 0.0, 0.0
			for _, p := range parts {
				if p.count == 0 {
					continue
				}
				k := float64(p.count)
				mu, va := p.ws.mean[i][c], p.ws.variance[i][c]
				cnt += p.count
				s += k * mu
				sq += k * (va + mu*mu)
			}
			if cnt == 0 {
				continue
			}
			mu := s / float64(cnt)
			va := max(0, sq/float64(cnt)-mu*mu)
			if m := float64(cnt * per); m > 1 {
				va *= m / (m - 1)
			}
			st.mean[i][c] = (1-momentum)*st.mean[i][c] + momentum*mu
			st.variance[i][c] = (1-momentum)*st.variance[i][c] + momentum*va
		}
	}
}

func fmtFloats(c []float64, format string) string {
	s := make([]string, len(c))
	for i, v := range c {
		s[i] = fmt.Sprintf(format, v)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// translate writes src (h×w) shifted by dx columns and dy rows to dst,
// filling with zeros.
func translate(dst, src []float64, h, w, dx, dy int) {
	clear(dst)
	for y := max(0, dy); y < min(h, h+dy); y++ {
		copy(dst[y*w+max(0, dx):y*w+min(w, w+dx)], src[(y-dy)*w+max(0, -dx):(y-dy)*w+min(w, w-dx)])
	}
}

// measurement is what the trainer's own forward pass (in eval mode) sees
// on a set.
type measurement struct {
	acc      float64
	maxPre   [nAct]float64 // largest |input| of each activation
	maxLogit float64
}

// measure evaluates the network in eval mode with its own forward pass (the
// authoritative measurement is on the exported graph, with ir.Graph.Run).
func measure(n *network, flat []float64, st *stats, set *mnist.Set, workers int) measurement {
	const chunk = 32
	p := n.view(flat)
	parts := make([]measurement, workers)
	correct := make([]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ws := n.newWorkspace(chunk)
			for lo := w * chunk; lo < set.Len(); lo += workers * chunk {
				hi := min(lo+chunk, set.Len())
				B := hi - lo
				n.forward(p, st, ws, set.Images[lo:hi])
				for j := range B {
					if ir.ArgMax(img(ws.logits, j, n.Classes)) == set.Labels[lo+j] {
						correct[w]++
					}
				}
				for k := range nAct {
					for _, v := range ws.pre(k)[:B*n.actSize(k)] {
						parts[w].maxPre[k] = max(parts[w].maxPre[k], math.Abs(v))
					}
				}
				for _, v := range ws.logits[:B*n.Classes] {
					parts[w].maxLogit = max(parts[w].maxLogit, math.Abs(v))
				}
			}
		})
	}
	wg.Wait()
	var r measurement
	total := 0
	for w := range workers {
		total += correct[w]
		for k := range r.maxPre {
			r.maxPre[k] = max(r.maxPre[k], parts[w].maxPre[k])
		}
		r.maxLogit = max(r.maxLogit, parts[w].maxLogit)
	}
	r.acc = float64(total) / float64(set.Len())
	return r
}

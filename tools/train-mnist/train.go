package main

import (
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

// shards is how many parts each minibatch is cut into. Each part's gradient
// is computed into its own buffer and the buffers are summed in a fixed
// order, so the trained weights depend on the seed but not on how many
// goroutines did the work.
const shards = 8

// config are the training settings.
type config struct {
	Epochs  int
	Batch   int
	LR      float64 // peak learning rate of Adam
	Seed    uint64
	Shift   int    // augmentation: random translation by up to Shift pixels
	Workers int    // goroutines; the result does not depend on it
	Bounds  bounds // soft magnitude limits
	Log     io.Writer
	Eval    *mnist.Set // if set, its accuracy is logged after each epoch (never used to choose anything)
	DP      *dpConfig  // if set, train with DP-SGD (see dp.go)
}

// epochStats summarise one epoch.
type epochStats struct {
	Loss     float64 // mean training loss (with penalty) over the epoch
	TrainAcc float64 // accuracy on the (augmented) training batches as they were seen
	EvalAcc  float64 // accuracy on cfg.Eval, or NaN
	Clipped  float64 // DP-SGD: fraction of the per-example gradients that were clipped
	Took     time.Duration
}

// train fits a fresh network to set with minibatch Adam on softmax
// cross-entropy and returns the flat parameter vector. With cfg.DP set it
// trains with DP-SGD instead (trainDP).
func train(n *network, set *mnist.Set, cfg config) ([]float64, []epochStats, error) {
	if cfg.Epochs <= 0 || cfg.Batch <= 0 || cfg.LR <= 0 || cfg.Workers <= 0 || cfg.Shift < 0 {
		return nil, nil, fmt.Errorf("epochs, batch, lr and workers must be positive and shift not negative: %+v", cfg)
	}
	if set.Len() == 0 {
		return nil, nil, fmt.Errorf("empty training set")
	}
	if cfg.DP != nil {
		return trainDP(n, set, cfg)
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6865676174650001))
	flat := n.initial(rng)
	p := n.view(flat)
	m, v := make([]float64, n.size), make([]float64, n.size)

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
	for i := range sh {
		sh[i].grad = make([]float64, n.size)
		sh[i].g = n.view(sh[i].grad)
		size := (cfg.Batch + shards - 1) / shards
		sh[i].ws = n.newWorkspace(size)
		sh[i].imgs = make([][]float64, size)
		for j := range sh[i].imgs {
			sh[i].imgs[j] = make([]float64, n.H*n.W)
		}
	}
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
	step := 0
	shifts := make([][2]int, cfg.Batch)
	var stats []epochStats
	for epoch := range cfg.Epochs {
		start := time.Now()
		perm := rng.Perm(N)
		var loss float64
		var correct int
		for b := 0; b < N; b += cfg.Batch {
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
					if lo == hi {
						continue
					}
					d.xs, d.labels = d.xs[:0], d.labels[:0]
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
			// Sum the shard gradients in shard order and take an Adam step,
			// each worker on its own range of parameters.
			lr := nn.LRAt(cfg.LR, step, total)
			step++
			c1 := 1 - math.Pow(nn.Beta1, float64(step))
			c2 := 1 - math.Pow(nn.Beta2, float64(step))
			parallel(func(w int) {
				lo, hi := w*n.size/workers, (w+1)*n.size/workers
				for i := lo; i < hi; i++ {
					g := sh[0].grad[i]
					for s := 1; s < shards; s++ {
						g += sh[s].grad[i]
					}
					m[i] = nn.Beta1*m[i] + (1-nn.Beta1)*g
					v[i] = nn.Beta2*v[i] + (1-nn.Beta2)*g*g
					flat[i] -= lr * (m[i] / c1) / (math.Sqrt(v[i]/c2) + nn.AdamEps)
				}
			})
		}
		for _, x := range flat {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, stats, fmt.Errorf("epoch %d: training diverged (non-finite weights); lower -lr", epoch+1)
			}
		}
		st := epochStats{Loss: loss / float64(N), TrainAcc: float64(correct) / float64(N), EvalAcc: math.NaN(), Took: time.Since(start)}
		msg := ""
		if cfg.Eval != nil {
			r := measure(n, flat, cfg.Eval, workers)
			st.EvalAcc = r.acc
			msg = fmt.Sprintf(" test acc %.4f max|z| conv %.2f hidden %.2f logits %.2f", r.acc, r.maxAbs[0], r.maxAbs[1], r.maxAbs[2])
		}
		stats = append(stats, st)
		fmt.Fprintf(cfg.Log, "epoch %2d/%d loss %.4f train acc %.4f%s act1 %s act2 %s (%s)\n",
			epoch+1, cfg.Epochs, st.Loss, st.TrainAcc, msg, fmtCoeffs(p.act1), fmtCoeffs(p.act2), st.Took.Round(time.Millisecond))
	}
	return flat, stats, nil
}

func fmtCoeffs(c []float64) string {
	s := "["
	for i, v := range c {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%.3f", v)
	}
	return s + "]"
}

// translate writes src (h×w) shifted by dx columns and dy rows to dst,
// filling with zeros.
func translate(dst, src []float64, h, w, dx, dy int) {
	clear(dst)
	for y := max(0, dy); y < min(h, h+dy); y++ {
		copy(dst[y*w+max(0, dx):y*w+min(w, w+dx)], src[(y-dy)*w+max(0, -dx):(y-dy)*w+min(w, w-dx)])
	}
}

// measurement is what the trainer's own forward pass sees on a set.
type measurement struct {
	acc    float64
	maxAbs [3]float64 // conv output, hidden dense output, logits
}

// measure evaluates the network with its own forward pass (mnisteval does
// the authoritative measurement on the exported graph).
func measure(n *network, flat []float64, set *mnist.Set, workers int) measurement {
	const chunk = 16
	p := n.view(flat)
	parts := make([]measurement, workers)
	correct := make([]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ws := n.newWorkspace(chunk)
			for lo := w * chunk; lo < set.Len(); lo += workers * chunk {
				hi := min(lo+chunk, set.Len())
				n.forward(p, ws, set.Images[lo:hi])
				for j := range hi - lo {
					if ir.ArgMax(ws.z3[j]) == set.Labels[lo+j] {
						correct[w]++
					}
					for k, vs := range [][]float64{ws.z1[j], ws.z2[j], ws.z3[j]} {
						for _, v := range vs {
							parts[w].maxAbs[k] = max(parts[w].maxAbs[k], math.Abs(v))
						}
					}
				}
			}
		})
	}
	wg.Wait()
	var r measurement
	total := 0
	for w := range workers {
		total += correct[w]
		for k := range r.maxAbs {
			r.maxAbs[k] = max(r.maxAbs[k], parts[w].maxAbs[k])
		}
	}
	r.acc = float64(total) / float64(set.Len())
	return r
}

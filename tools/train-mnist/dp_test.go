package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/hegate/hegate/dp/rdp"
	"github.com/hegate/hegate/internal/mnist"
)

func norm(v []float64) float64 { return math.Sqrt(sumSq(v)) }

// perExample is each image's own gradient (cross-entropy and penalty), by
// the non-private backward pass on that image alone.
func perExample(n *network, flat []float64, xs [][]float64, labels []int, b bounds) [][]float64 {
	p := n.view(flat)
	ws := n.newWorkspace(1)
	out := make([][]float64, len(xs))
	for j := range xs {
		out[j] = make([]float64, n.size)
		n.backward(p, n.view(out[j]), ws, xs[j:j+1], labels[j:j+1], 1, b)
	}
	return out
}

// clippedGrad adds exactly Σ_j min(1, C/‖g_j‖) g_j, with g_j each image's
// own gradient, and counts the images it clipped.
func TestClippedGradMatchesPerExample(t *testing.T) {
	for _, a := range []arch{tiny, cryptoNets} {
		rng := rand.New(rand.NewPCG(3, 4))
		n := newNetwork(a)
		flat := n.initial(rng)
		for i := range flat {
			flat[i] += 0.05 * rng.NormFloat64() // make every piece non-trivial
		}
		b := bounds{conv: 0.5, hidden: 0.5, logits: 0.5, weight: 0.1}
		xs := randBatch(rng, 11, n.H*n.W)
		xs[3] = make([]float64, n.H*n.W) // an all-zero image
		for i := range xs[5] {
			xs[5][i] *= 30 // a huge one
		}
		labels := make([]int, len(xs))
		for j := range labels {
			labels[j] = rng.IntN(a.Classes)
		}
		per := perExample(n, flat, xs, labels, b)
		norms := make([]float64, len(per))
		for j, g := range per {
			norms[j] = norm(g)
		}
		sorted := slices.Clone(norms)
		sort.Float64s(sorted)
		clip := (sorted[len(sorted)/2] + sorted[len(sorted)/2+1]) / 2 // about half clipped
		want := make([]float64, n.size)
		wantClipped := 0
		for j, g := range per {
			f := 1.0
			if norms[j] > clip {
				f = clip / norms[j]
				wantClipped++
			}
			for i, v := range g {
				want[i] += f * v
			}
		}
		got := make([]float64, n.size)
		ws := n.newDPWorkspace(len(xs))
		_, _, clipped := n.clippedGrad(n.view(flat), n.view(got), ws, xs, labels, clip, b)
		if clipped != wantClipped || clipped == 0 || clipped == len(xs) {
			t.Errorf("%+v: clipped %d of %d, want %d", a, clipped, len(xs), wantClipped)
		}
		scale := norm(want)
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-10*scale {
				t.Fatalf("%+v: parameter %d: clipped sum %v, want %v", a, i, got[i], want[i])
			}
		}
	}
}

// Whatever an image is, adding it to a batch changes the sum of clipped
// gradients by at most the clip norm: the sensitivity the noise is
// calibrated to.
func TestClippingBoundsContribution(t *testing.T) {
	n := newNetwork(cryptoNets)
	rng := rand.New(rand.NewPCG(5, 6))
	flat := n.initial(rng)
	p := n.view(flat)
	set := &mnist.Set{}
	for j := range 40 {
		img := make([]float64, n.H*n.W)
		for i := range img {
			img[i] = rng.Float64()
			if j == 7 {
				img[i] *= 1e3 // an outlier with an enormous gradient
			}
		}
		set.Images = append(set.Images, img)
		set.Labels = append(set.Labels, rng.IntN(10))
	}
	b := bounds{conv: 24, hidden: 24, logits: 64, weight: 1e-3}
	const clip = 0.7
	all := make([]int, set.Len())
	for i := range all {
		all[i] = i
	}
	sh := newDPShards(n, 2)
	with := make([]float64, n.size)
	sh.sum(p, set, all, clip, b, with)
	for _, drop := range []int{0, 7, 23, 39} {
		without := make([]float64, n.size)
		_, _, _ = sh.sum(p, set, slices.Delete(slices.Clone(all), drop, drop+1), clip, b, without)
		d := 0.0
		for i := range with {
			d += (with[i] - without[i]) * (with[i] - without[i])
		}
		if d = math.Sqrt(d); d > clip*(1+1e-9) || d == 0 {
			t.Errorf("image %d changes the clipped sum by %v, clip %v", drop, d, clip)
		}
		if drop == 7 && d < clip*(1-1e-9) {
			t.Errorf("the outlier's contribution %v is not clipped to %v", d, clip)
		}
	}
	// Without clipping the outlier's contribution would be huge: the test
	// above can fail.
	if g := perExample(n, flat, set.Images[7:8], set.Labels[7:8], b)[0]; norm(g) < 100*clip {
		t.Errorf("outlier gradient norm %v: not an outlier", norm(g))
	}
}

// Poisson sampling includes each example with probability q, independently.
func TestPoissonSample(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	const n, q, trials = 2000, 0.05, 400
	count := make([]int, n)
	var sizes []float64
	var idx []int
	for range trials {
		idx = poissonSample(rng, n, q, idx)
		if !slices.IsSorted(idx) {
			t.Fatal("sample not in increasing order")
		}
		for _, i := range idx {
			count[i]++
		}
		sizes = append(sizes, float64(len(idx)))
	}
	mean, vari := 0.0, 0.0
	for _, s := range sizes {
		mean += s
	}
	mean /= trials
	for _, s := range sizes {
		vari += (s - mean) * (s - mean)
	}
	vari /= trials - 1
	// Batch size ~ Binomial(n, q): mean 100, variance 95.
	if sd := math.Sqrt(n * q * (1 - q) / trials); math.Abs(mean-n*q) > 5*sd {
		t.Errorf("mean batch size %v, want %v ± %v", mean, n*q, 5*sd)
	}
	if v := n * q * (1 - q); vari < 0.75*v || vari > 1.3*v {
		t.Errorf("batch size variance %v, want about %v (a fixed-size sampler would give 0)", vari, v)
	}
	// Every example's inclusion rate: Binomial(trials, q), mean 20.
	total := 0
	for _, c := range count {
		total += c
		if c > 50 {
			t.Fatalf("an example was included %d times in %d draws", c, trials)
		}
	}
	if r := float64(total) / (n * trials); math.Abs(r-q) > 0.002 {
		t.Errorf("inclusion rate %v, want %v", r, q)
	}
	if got := poissonSample(rng, 10, 0, idx); len(got) != 0 {
		t.Errorf("q=0: %v", got)
	}
	if got := poissonSample(rng, 10, 1, idx); len(got) != 10 {
		t.Errorf("q=1: %v", got)
	}
}

func TestDPSteps(t *testing.T) {
	if got := dpSteps(15, 1024, 60000); got != 879 {
		t.Errorf("dpSteps(15, 1024, 60000) = %d, want ceil(15*60000/1024) = 879", got)
	}
	if got := dpSteps(2, 100, 1000); got != 20 {
		t.Errorf("dpSteps(2, 100, 1000) = %d", got)
	}
}

// dpPlan derives the noise multiplier from the target epsilon and checks a
// given one against it.
func TestDPPlan(t *testing.T) {
	d := &dpOptions{epsilon: 1, delta: 1e-5, clip: 1}
	sigma, eps, _, q, steps, err := dpPlan(d, 10, 600, 60000)
	if err != nil {
		t.Fatal(err)
	}
	if q != 0.01 || steps != 1000 || eps > 1 || eps < 0.99 || sigma <= 0 {
		t.Errorf("sigma %v eps %v q %v steps %d", sigma, eps, q, steps)
	}
	want, err := rdp.NoiseMultiplier(1, 1e-5, 0.01, 1000, nil)
	if err != nil || sigma != want {
		t.Errorf("sigma %v, rdp.NoiseMultiplier %v (%v)", sigma, want, err)
	}
	// A given noise multiplier too small for the target is refused...
	if _, _, _, _, _, err := dpPlan(&dpOptions{epsilon: 1, delta: 1e-5, clip: 1, noise: sigma * 0.9}, 10, 600, 60000); err == nil {
		t.Error("noise below the target's: no error")
	}
	// ...and without a target, its epsilon is reported.
	_, eps2, _, _, _, err := dpPlan(&dpOptions{delta: 1e-5, clip: 1, noise: sigma * 0.9}, 10, 600, 60000)
	if err != nil || eps2 <= 1 {
		t.Errorf("noise 0.9 sigma: epsilon %v (%v)", eps2, err)
	}
	if _, _, _, _, _, err := dpPlan(d, 1, 70000, 60000); err == nil {
		t.Error("batch > n: no error")
	}
}

func dpConfigFor(seed byte, noise float64) *dpConfig {
	return &dpConfig{Clip: 1, Noise: noise, Seed: [32]byte{seed}}
}

// DP-SGD on a few hundred synthetic images: deterministic for its seeds
// whatever the number of workers, different for another noise seed, and
// it still learns with moderate noise.
func TestTrainDP(t *testing.T) {
	set := synthetic(600, 4)
	run := func(workers int, dp *dpConfig) ([]float64, []epochStats) {
		flat, stats, err := train(newNetwork(tiny), set, config{
			Epochs: 3, Batch: 60, LR: 2e-2, Seed: 1, Workers: workers,
			Bounds: bounds{conv: 4, hidden: 4, logits: 8, weight: 1e-3}, DP: dp,
		})
		if err != nil {
			t.Fatal(err)
		}
		return flat, stats
	}
	a, stats := run(1, dpConfigFor(1, 0.5))
	b, _ := run(3, dpConfigFor(1, 0.5))
	if !slices.Equal(a, b) {
		t.Fatal("weights differ between 1 and 3 workers")
	}
	if c, _ := run(2, dpConfigFor(2, 0.5)); slices.Equal(a, c) {
		t.Fatal("weights equal for two noise seeds")
	}
	if len(stats) != 3 {
		t.Fatalf("%d epoch stats, want 3", len(stats))
	}
	n := newNetwork(tiny)
	if acc := measure(n, a, synthetic(500, 5), 2).acc; acc < 0.9 {
		t.Errorf("accuracy %.3f after DP-SGD with noise 0.5, stats %+v", acc, stats)
	}
	// Noise does something: with an enormous noise multiplier the model
	// learns nothing.
	if acc := measure(n, func() []float64 { f, _ := run(2, dpConfigFor(1, 1e4)); return f }(), synthetic(500, 5), 2).acc; acc > 0.6 {
		t.Errorf("accuracy %.3f with noise multiplier 1e4", acc)
	}
	// SGD with momentum and weight decay, as the shipped model was trained.
	sgd := func(wd float64) []float64 {
		flat, _, err := train(newNetwork(tiny), set, config{
			Epochs: 3, Batch: 60, LR: 0.5, Seed: 1, Workers: 2,
			Bounds: bounds{conv: 4, hidden: 4, logits: 8, weight: 1e-3},
			DP:     &dpConfig{Clip: 1, Noise: 0.5, Seed: [32]byte{1}, SGD: true, Momentum: 0.9, WeightDecay: wd},
		})
		if err != nil {
			t.Fatal(err)
		}
		return flat
	}
	f := sgd(1e-3)
	if acc := measure(n, f, synthetic(500, 5), 2).acc; acc < 0.9 {
		t.Errorf("DP-SGD with momentum: accuracy %.3f", acc)
	}
	// Weight decay shrinks the weights: with a strong decay they end much
	// smaller.
	strong := n.view(sgd(1))
	if a, b := norm(strong.fc1W), norm(n.view(f).fc1W); !(a < b/2) {
		t.Errorf("weight decay 1: |fc1 weights| %v, with 1e-3 %v", a, b)
	}
}

func TestTrainDPBadConfig(t *testing.T) {
	set := synthetic(50, 1)
	for _, c := range []config{
		{Epochs: 1, Batch: 10, LR: 1, Workers: 1, DP: &dpConfig{Clip: 0, Noise: 1}},
		{Epochs: 1, Batch: 10, LR: 1, Workers: 1, DP: &dpConfig{Clip: 1, Noise: -1}},
		{Epochs: 1, Batch: 100, LR: 1, Workers: 1, DP: &dpConfig{Clip: 1, Noise: 1}},
		{Epochs: 1, Batch: 10, LR: 1, Workers: 1, Shift: 1, DP: &dpConfig{Clip: 1, Noise: 1}},
	} {
		if _, _, err := train(newNetwork(tiny), set, c); err == nil {
			t.Errorf("%+v %+v: no error", c, *c.DP)
		}
	}
}

// backwardInput and backwardWeights together do what backward does.
func TestDenseSplitBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	d := dense{in: 7, out: 5}
	w := randVec(rng, 35)
	for _, m := range []int{1, 3, 4, 9} {
		xs, dys := randBatch(rng, m, 7), randBatch(rng, m, 5)
		dw, db, dxs := make([]float64, 35), make([]float64, 5), randBatch(rng, m, 7)
		d.backward(w, xs, dys, dw, db, dxs)
		dw2, db2, dxs2 := make([]float64, 35), make([]float64, 5), randBatch(rng, m, 7)
		d.backwardInput(w, dys, dxs2)
		d.backwardWeights(xs, dys, dw2, db2)
		if !slices.Equal(dw, dw2) || !slices.Equal(db, db2) {
			t.Errorf("batch %d: weight gradients differ", m)
		}
		for j := range dxs {
			if !slices.Equal(dxs[j], dxs2[j]) {
				t.Errorf("batch %d: input gradient %d differs", m, j)
			}
		}
	}
}

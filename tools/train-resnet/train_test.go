package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/tools/internal/nn"
)

// synthetic returns n random images for the tiny architecture whose label
// is determined by which quarter of the image is brightest.
func synthetic(n int, seed uint64) *mnist.Set {
	rng := rand.New(rand.NewPCG(seed, 0))
	s := &mnist.Set{}
	for range n {
		img := make([]float64, tiny.H*tiny.W)
		for i := range img {
			img[i] = rng.Float64() * 0.5
		}
		label := rng.IntN(tiny.Classes)
		for y := range tiny.H / 2 {
			for x := range tiny.W / 2 {
				img[(y+label/2*tiny.H/2)*tiny.W+x+label%2*tiny.W/2] += 0.5
			}
		}
		s.Images = append(s.Images, img)
		s.Labels = append(s.Labels, label)
	}
	return s
}

func flatStats(st *stats) []float64 {
	var out []float64
	for i := range st.mean {
		out = append(out, st.mean[i]...)
		out = append(out, st.variance[i]...)
	}
	return out
}

// The weights and running statistics depend on the seed only, not on the
// number of goroutines.
func TestTrainDeterministic(t *testing.T) {
	set := synthetic(300, 1)
	run := func(workers int, seed uint64) []float64 {
		flat, st, es, err := train(newNetwork(tiny), set, config{
			Epochs: 2, Batch: 29, LR: 1e-2, Seed: seed, Shift: 1, Clip: 1, Momentum: 0.1, Workers: workers,
			Bounds: bounds{preact: 1, logits: 2, weight: 1e-3},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 2 {
			t.Fatalf("%d epoch stats", len(es))
		}
		return append(flat, flatStats(st)...)
	}
	a, b, c := run(1, 7), run(3, 7), run(8, 7)
	if !slices.Equal(a, b) || !slices.Equal(a, c) {
		t.Fatal("weights differ between 1, 3 and 8 workers")
	}
	if slices.Equal(a, run(2, 8)) {
		t.Fatal("weights are the same for seeds 7 and 8")
	}
}

func TestTrainLearns(t *testing.T) {
	n := newNetwork(tiny)
	flat, st, es, err := train(n, synthetic(2000, 2), config{Epochs: 3, Batch: 32, LR: 1e-2, Seed: 1, Momentum: 0.1, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := measure(n, flat, st, synthetic(500, 3), 2).acc; got < 0.95 {
		t.Fatalf("eval-mode accuracy %.3f on held-out synthetic data after %+v", got, es)
	}
}

func TestTrainBadConfig(t *testing.T) {
	ok := config{Epochs: 1, Batch: 1, LR: 1, Momentum: 0.1, Workers: 1}
	for _, change := range []func(*config){
		func(c *config) { c.Epochs = 0 },
		func(c *config) { c.Batch = 0 },
		func(c *config) { c.LR = 0 },
		func(c *config) { c.Workers = 0 },
		func(c *config) { c.Shift = -1 },
		func(c *config) { c.Clip = -1 },
		func(c *config) { c.Momentum = 0 },
		func(c *config) { c.Momentum = 1.5 },
		func(c *config) { c.MaxSteps = -1 },
	} {
		cfg := ok
		change(&cfg)
		if _, _, _, err := train(newNetwork(tiny), synthetic(10, 1), cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	if _, _, _, err := train(newNetwork(tiny), &mnist.Set{}, ok); err == nil {
		t.Error("empty set: no error")
	}
}

// A smoke test of the real network on real MNIST: 96 steps on 512
// training images lower the loss, keep everything finite, beat chance on
// other training images, and the exported graph (7 digits) agrees with the
// trainer's eval-mode forward pass.
func TestTrainMNISTSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("reads MNIST")
	}
	trainSet, err := mnist.LoadDefault(mnist.Train)
	if err != nil {
		t.Fatal(err)
	}
	small := &mnist.Set{Images: trainSet.Images[:512], Labels: trainSet.Labels[:512]}
	n := newNetwork(mnistResNet)
	flat, st, es, err := train(n, small, config{
		Epochs: 6, Batch: 32, LR: 4e-3, Seed: 1, Shift: 1, Clip: 5, Momentum: 0.2, Workers: 2,
		Bounds: bounds{preact: 12, logits: 40, weight: 1e-3},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("epochs: %+v", es)
	last := es[len(es)-1]
	if last.Loss > 0.85*es[0].Loss || last.TrainAcc < 0.35 {
		t.Fatalf("loss %.3f → %.3f, train accuracy %.3f", es[0].Loss, last.Loss, last.TrainAcc)
	}
	held := &mnist.Set{Images: trainSet.Images[512:768], Labels: trainSet.Labels[512:768]}
	r := measure(n, flat, st, held, 2)
	g := n.graph(flat, st, digits)
	res, err := evaluate(g, held, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("held-out accuracy %.3f (graph %.3f), max |pre| %v, max |logit| %.2f", r.acc, res.acc(), r.maxPre, r.maxLogit)
	if math.Abs(res.acc()-r.acc) > 0.01 || r.acc < 0.35 {
		t.Fatalf("held-out accuracy %.3f, graph %.3f", r.acc, res.acc())
	}
}

func TestMaxSteps(t *testing.T) {
	_, _, es, err := train(newNetwork(tiny), synthetic(100, 1), config{Epochs: 5, Batch: 10, LR: 1e-2, Momentum: 0.1, Workers: 1, MaxSteps: 12})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 { // 10 steps in epoch 1, 2 in epoch 2
		t.Fatalf("%d epochs for 12 steps of 10 per epoch", len(es))
	}
}

func TestUpdateStats(t *testing.T) {
	n := newNetwork(tiny)
	st := n.newStats()
	a, b := n.newWorkspace(1), n.newWorkspace(1)
	// Two shards of 1 and 3 images: means 1 and 3, variances 0 and 2.
	for i := range n.convs {
		for c := range a.mean[i] {
			a.mean[i][c], a.variance[i][c] = 1, 0
			b.mean[i][c], b.variance[i][c] = 3, 2
		}
	}
	updateStats(n, st, []shardStats{{ws: a, count: 1}, {ws: b, count: 3}, {ws: b, count: 0}}, 1)
	for i := range n.convs {
		m := float64(4 * n.bns[i].per)
		// mean 2.5; E[x²] = (1 + 3·11)/4 = 8.5; variance 8.5 − 6.25 = 2.25.
		if st.mean[i][0] != 2.5 || math.Abs(st.variance[i][0]-2.25*m/(m-1)) > 1e-12 {
			t.Fatalf("bn %d: running mean %v variance %v", i, st.mean[i][0], st.variance[i][0])
		}
	}
}

func TestTranslate(t *testing.T) {
	src := []float64{
		1, 2, 3,
		4, 5, 6,
	}
	dst := make([]float64, 6)
	for _, tt := range []struct {
		dx, dy int
		want   []float64
	}{
		{0, 0, []float64{1, 2, 3, 4, 5, 6}},
		{1, 0, []float64{0, 1, 2, 0, 4, 5}},
		{-1, 0, []float64{2, 3, 0, 5, 6, 0}},
		{0, 1, []float64{0, 0, 0, 1, 2, 3}},
		{-2, -1, []float64{6, 0, 0, 0, 0, 0}},
		{3, 0, []float64{0, 0, 0, 0, 0, 0}},
	} {
		translate(dst, src, 2, 3, tt.dx, tt.dy)
		if !slices.Equal(dst, tt.want) {
			t.Errorf("shift (%d,%d): %v, want %v", tt.dx, tt.dy, dst, tt.want)
		}
	}
}

func TestLRSchedule(t *testing.T) {
	const total = 1000
	if lr := nn.LRAt(1, 0, total); lr <= 0 || lr > 0.1 {
		t.Errorf("first step lr %v", lr)
	}
	if lr := nn.LRAt(1, total/50, total); lr != 1 {
		t.Errorf("peak lr %v", lr)
	}
	if lr := nn.LRAt(1, total-1, total); lr > 1e-4 {
		t.Errorf("last step lr %v", lr)
	}
}

// BenchmarkStep measures forward+backward of one 16-image part of a
// minibatch of the real network.
func BenchmarkStep(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := newNetwork(mnistResNet)
	flat := n.initial(rng)
	grad := make([]float64, n.size)
	xs := make([][]float64, 16)
	labels := make([]int, 16)
	for j := range xs {
		xs[j] = make([]float64, n.H*n.W)
		for i := range xs[j] {
			xs[j][i] = rng.Float64()
		}
		labels[j] = j % 10
	}
	ws := n.newWorkspace(len(xs))
	p, g := n.view(flat), n.view(grad)
	for b.Loop() {
		n.backward(p, g, ws, xs, labels, 1.0/128, bounds{preact: 12, logits: 40, weight: 1e-3})
	}
}

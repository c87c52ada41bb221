package main

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hegate/hegate/internal/mnist"
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

// The weights depend on the seed only, not on the number of goroutines.
func TestTrainDeterministic(t *testing.T) {
	set := synthetic(300, 1)
	run := func(workers int, seed uint64) []float64 {
		flat, stats, err := train(newNetwork(tiny), set, config{
			Epochs: 2, Batch: 13, LR: 1e-2, Seed: seed, Shift: 1, Workers: workers,
			Bounds: bounds{conv: 1, hidden: 1, logits: 2, weight: 1e-3},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(stats) != 2 {
			t.Fatalf("%d epoch stats", len(stats))
		}
		return flat
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
	flat, stats, err := train(n, synthetic(2000, 2), config{Epochs: 3, Batch: 32, LR: 1e-2, Seed: 1, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := measure(n, flat, synthetic(500, 3), 2).acc; got < 0.95 {
		t.Fatalf("accuracy %.3f on held-out synthetic data after %+v", got, stats)
	}
}

func TestTrainBadConfig(t *testing.T) {
	for _, cfg := range []config{
		{Epochs: 0, Batch: 1, LR: 1, Workers: 1},
		{Epochs: 1, Batch: 0, LR: 1, Workers: 1},
		{Epochs: 1, Batch: 1, LR: 0, Workers: 1},
		{Epochs: 1, Batch: 1, LR: 1, Workers: 0},
		{Epochs: 1, Batch: 1, LR: 1, Workers: 1, Shift: -1},
	} {
		if _, _, err := train(newNetwork(tiny), synthetic(10, 1), cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	if _, _, err := train(newNetwork(tiny), &mnist.Set{}, config{Epochs: 1, Batch: 1, LR: 1, Workers: 1}); err == nil {
		t.Error("empty set: no error")
	}
}

// A short run on real MNIST reaches a sane accuracy (the committed model is
// checked by the modelzoo package).
func TestTrainMNIST(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on MNIST")
	}
	dir, err := mnist.Dir()
	if err != nil {
		t.Fatal(err)
	}
	trainSet, err := mnist.Load(dir, mnist.Train)
	if err != nil {
		t.Fatal(err)
	}
	testSet, err := mnist.Load(dir, mnist.Test)
	if err != nil {
		t.Fatal(err)
	}
	small := &mnist.Set{Images: trainSet.Images[:10000], Labels: trainSet.Labels[:10000]}
	n := newNetwork(cryptoNets)
	flat, _, err := train(n, small, config{Epochs: 1, Batch: 64, LR: 2e-3, Seed: 1, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := measure(n, flat, testSet, 2)
	t.Logf("one epoch on 10000 training images: test accuracy %.4f, max |z| %v", r.acc, r.maxAbs)
	if r.acc < 0.85 {
		t.Fatalf("accuracy %.4f", r.acc)
	}
}

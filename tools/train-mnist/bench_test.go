package main

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkStep measures forward+backward of one 8-image part of a
// minibatch of the real network.
func BenchmarkStep(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := newNetwork(cryptoNets)
	flat := n.initial(rng)
	grad := make([]float64, n.size)
	xs := make([][]float64, 8)
	for j := range xs {
		xs[j] = make([]float64, n.H*n.W)
		for i := range xs[j] {
			xs[j][i] = rng.Float64()
		}
	}
	labels := []int{0, 1, 2, 3, 4, 5, 6, 7}
	ws := n.newWorkspace(len(xs))
	p, g := n.view(flat), n.view(grad)
	for b.Loop() {
		n.backward(p, g, ws, xs, labels, 1.0/64, bounds{conv: 24, hidden: 24, logits: 64, weight: 1e-3})
	}
}

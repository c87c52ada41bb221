// Package mnisteval measures a model graph on MNIST with the plaintext
// reference executor he.Graph.Reference: accuracy, and the largest magnitude
// each layer produces (what a CKKS evaluation must have room for).
package mnisteval

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/internal/mnist"
)

// Result is what Evaluate measured.
type Result struct {
	N       int     // images evaluated
	Correct int     // images whose largest output is at the label's index
	Acc     float64 // Correct / N
	// MaxAbs[i] is the largest |value| in the output of layer i of the
	// graph over all images evaluated; the last entry is the largest logit.
	MaxAbs []float64
}

// Evaluate runs g on the first n images of s (all of them if n <= 0 or
// n > s.Len()), spreading the images over GOMAXPROCS goroutines. The
// prediction of an image is the argmax of g.Reference on it (ties go to the
// lower index). Per-layer magnitudes come from running the layers one by one
// through Reference; Evaluate checks that this gives exactly the output of
// the whole graph. The result does not depend on GOMAXPROCS.
func Evaluate(g *he.Graph, s *mnist.Set, n int) (*Result, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if g.InputSize() != mnist.Pixels || g.OutputSize() != mnist.Classes {
		return nil, fmt.Errorf("mnisteval: model %s maps %d values to %d, want %d to %d",
			g.Name, g.InputSize(), g.OutputSize(), mnist.Pixels, mnist.Classes)
	}
	if n <= 0 || n > s.Len() {
		n = s.Len()
	}
	steps := layerGraphs(g)
	workers := max(1, min(runtime.GOMAXPROCS(0), n))
	type part struct {
		correct int
		maxAbs  []float64
		err     error
	}
	parts := make([]part, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			p := &parts[w]
			p.maxAbs = make([]float64, len(steps))
			for i := w; i < n; i += workers {
				out, err := g.Reference(s.Images[i])
				if err != nil {
					p.err = err
					return
				}
				cur := s.Images[i]
				for l, step := range steps {
					if cur, err = step.Reference(cur); err != nil {
						p.err = err
						return
					}
					for _, v := range cur {
						p.maxAbs[l] = max(p.maxAbs[l], math.Abs(v))
					}
				}
				if !slices.Equal(cur, out) {
					p.err = fmt.Errorf("mnisteval: image %d: layer-by-layer output %v differs from Reference %v", i, cur, out)
					return
				}
				if argmax(out) == s.Labels[i] {
					p.correct++
				}
			}
		})
	}
	wg.Wait()
	r := &Result{N: n, MaxAbs: make([]float64, len(steps))}
	for _, p := range parts {
		if p.err != nil {
			return nil, p.err
		}
		r.Correct += p.correct
		for l, v := range p.maxAbs {
			r.MaxAbs[l] = max(r.MaxAbs[l], v)
		}
	}
	r.Acc = float64(r.Correct) / float64(n)
	return r, nil
}

// layerGraphs splits g into one single-layer graph per layer, each taking
// the previous one's output shape as input.
func layerGraphs(g *he.Graph) []*he.Graph {
	shapes := g.Shapes()
	steps := make([]*he.Graph, len(g.Layers))
	in := g.Input
	for i, l := range g.Layers {
		steps[i] = &he.Graph{Name: fmt.Sprintf("%s[%d]", g.Name, i), Input: in, Layers: []he.Layer{l}}
		in = shapes[i]
	}
	return steps
}

// argmax returns the index of the largest value, the first one on ties.
func argmax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// Package mnisteval measures models on MNIST: accuracy of the plaintext
// reference executor (ir.Graph.Run) or of any other predictor, and the
// largest magnitude each node produces (what a CKKS evaluation must have
// room for).
package mnisteval

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/internal/mnist"
)

// Result is what Evaluate measured.
type Result struct {
	N       int     // images evaluated
	Correct int     // images whose largest output is at the label's index
	Acc     float64 // Correct / N
	// MaxAbs maps each node's output value to the largest |value| it took
	// over all images (Evaluate only; the graph output is the logits).
	MaxAbs map[string]float64
}

// Input is the model input for MNIST image img (784 values, pixel/255):
// the graph's preprocessing applied to the raw pixels, or img itself when
// the graph has none.
func Input(g *ir.Graph, img []float64) []float64 {
	p := g.Input.Preprocess
	if p == nil {
		return append([]float64(nil), img...)
	}
	raw := make([]float64, len(img))
	for i, v := range img {
		raw[i] = math.Round(v * 255)
	}
	return p.Apply(raw)
}

// Evaluate runs g's reference executor on the first n images of s (all of
// them if n <= 0 or n > s.Len()), spreading the images over GOMAXPROCS
// goroutines. The prediction is the argmax of the output (ties go to the
// lower index). The result does not depend on GOMAXPROCS.
func Evaluate(g *ir.Graph, s *mnist.Set, n int) (*Result, error) {
	shapes, err := g.Shapes()
	if err != nil {
		return nil, err
	}
	if g.InputSize() != mnist.Pixels || ir.Prod(shapes[g.Output]) != mnist.Classes {
		return nil, fmt.Errorf("mnisteval: model %s maps %d values to %d, want %d to %d",
			g.Name, g.InputSize(), ir.Prod(shapes[g.Output]), mnist.Pixels, mnist.Classes)
	}
	var mu sync.Mutex
	maxAbs := map[string]float64{}
	r, err := EvaluateFunc(s, n, func(img []float64) ([]float64, error) {
		local := map[string]float64{}
		out, err := g.Trace(Input(g, img), func(nd *ir.Node, t ir.Tensor) {
			m := local[nd.Output]
			for _, v := range t.Data {
				m = math.Max(m, math.Abs(v))
			}
			local[nd.Output] = m
		})
		mu.Lock()
		for k, v := range local {
			maxAbs[k] = math.Max(maxAbs[k], v)
		}
		mu.Unlock()
		return out, err
	})
	if err != nil {
		return nil, err
	}
	r.MaxAbs = maxAbs
	return r, nil
}

// EvaluateFunc measures the accuracy of predict (image → scores) on the
// first n images of s, on GOMAXPROCS goroutines. predict must be safe for
// concurrent use.
func EvaluateFunc(s *mnist.Set, n int, predict func(img []float64) ([]float64, error)) (*Result, error) {
	if n <= 0 || n > s.Len() {
		n = s.Len()
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), n))
	type part struct {
		correct int
		err     error
	}
	parts := make([]part, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			p := &parts[w]
			for i := w; i < n; i += workers {
				out, err := predict(s.Images[i])
				if err != nil {
					p.err = fmt.Errorf("mnisteval: image %d: %w", i, err)
					return
				}
				if ir.ArgMax(out) == s.Labels[i] {
					p.correct++
				}
			}
		})
	}
	wg.Wait()
	r := &Result{N: n}
	for _, p := range parts {
		if p.err != nil {
			return nil, p.err
		}
		r.Correct += p.correct
	}
	r.Acc = float64(r.Correct) / float64(n)
	return r, nil
}

package mnisteval

import (
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/internal/mnist"
)

// pixelGraph classifies an image by the pixel among the first ten that is
// brightest: a dense layer that copies pixel i to logit i, scaled by 2,
// then x → x² − 1.
func pixelGraph() *he.Graph {
	w := make([]float64, mnist.Classes*mnist.Pixels)
	for i := range mnist.Classes {
		w[i*mnist.Pixels+i] = 2
	}
	return &he.Graph{
		Name:  "pixel",
		Input: []int{1, mnist.Rows, mnist.Cols},
		Layers: []he.Layer{
			{Op: he.OpFlatten},
			{Op: he.OpDense, Dense: &he.Dense{In: mnist.Pixels, Out: mnist.Classes, Weights: w, Bias: make([]float64, mnist.Classes)}},
			{Op: he.OpPoly, Poly: &he.Poly{Coeffs: []float64{-1, 0, 1}}},
		},
	}
}

func set(labels ...int) *mnist.Set {
	s := &mnist.Set{}
	for i, l := range labels {
		img := make([]float64, mnist.Pixels)
		img[i%mnist.Classes] = 1 // predicted class i%10
		img[mnist.Pixels-1] = 0.5
		s.Images = append(s.Images, img)
		s.Labels = append(s.Labels, l)
	}
	return s
}

func TestEvaluate(t *testing.T) {
	s := set(0, 1, 9, 3, 4) // image 2 is wrong
	for _, procs := range []int{1, 3} {
		old := runtime.GOMAXPROCS(procs)
		r, err := Evaluate(pixelGraph(), s, 0)
		runtime.GOMAXPROCS(old)
		if err != nil {
			t.Fatal(err)
		}
		if r.N != 5 || r.Correct != 4 || r.Acc != 0.8 {
			t.Errorf("GOMAXPROCS %d: %+v, want 4 of 5 right", procs, r)
		}
		// flatten: max pixel 1; dense: 2; poly: 2² − 1 = 3.
		if want := []float64{1, 2, 3}; len(r.MaxAbs) != 3 || r.MaxAbs[0] != want[0] || r.MaxAbs[1] != want[1] || r.MaxAbs[2] != want[2] {
			t.Errorf("max abs %v, want %v", r.MaxAbs, want)
		}
	}
	r, err := Evaluate(pixelGraph(), s, 2)
	if err != nil || r.N != 2 || r.Correct != 2 {
		t.Errorf("first 2 images: %+v, %v", r, err)
	}
}

func TestEvaluateErrors(t *testing.T) {
	g := pixelGraph()
	g.Layers[1].Dense.Out, g.Layers[1].Dense.Weights, g.Layers[1].Dense.Bias = 3, g.Layers[1].Dense.Weights[:3*mnist.Pixels], make([]float64, 3)
	if _, err := Evaluate(g, set(1), 0); err == nil || !strings.Contains(err.Error(), "want 784 to 10") {
		t.Errorf("3 outputs: err = %v", err)
	}
	g = pixelGraph()
	g.Layers[2].Poly.Coeffs[0] = math.NaN()
	if _, err := Evaluate(g, set(1), 0); err == nil {
		t.Error("invalid graph: no error")
	}
}

func TestArgmax(t *testing.T) {
	for _, tt := range []struct {
		v    []float64
		want int
	}{
		{[]float64{1}, 0},
		{[]float64{1, 3, 2}, 1},
		{[]float64{2, 2, 1}, 0},
		{[]float64{-3, -1, -2}, 1},
	} {
		if got := argmax(tt.v); got != tt.want {
			t.Errorf("argmax(%v) = %d, want %d", tt.v, got, tt.want)
		}
	}
}

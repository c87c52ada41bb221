package mnisteval

import (
	"errors"
	"maps"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/internal/mnist"
)

// pixelGraph classifies an image by the pixel among the first ten that is
// brightest: a reshape to a vector, a dense node that copies pixel i to
// logit i scaled by 2, then x → x² − 1. It has no preprocessing, so its
// input is the image itself.
func pixelGraph() *ir.Graph {
	w := make([]float64, mnist.Classes*mnist.Pixels)
	for i := range mnist.Classes {
		w[i*mnist.Pixels+i] = 2
	}
	return ir.Chain("pixel", []int{1, mnist.Rows, mnist.Cols},
		&ir.Node{Name: "flat", Op: ir.OpReshape, Reshape: &ir.Reshape{Shape: []int{mnist.Pixels}}},
		&ir.Node{Name: "fc", Op: ir.OpDense, Dense: &ir.Dense{In: mnist.Pixels, Out: mnist.Classes, Weights: w, Bias: make([]float64, mnist.Classes)}},
		&ir.Node{Name: "sq", Op: ir.OpPoly, Poly: &ir.Poly{Coeffs: []float64{-1, 0, 1}}},
	)
}

// set returns images whose brightest pixel among the first ten is pixel
// i%10 (so pixelGraph predicts class i%10), labelled labels[i].
func set(labels ...int) *mnist.Set {
	s := &mnist.Set{}
	for i, l := range labels {
		img := make([]float64, mnist.Pixels)
		img[i%mnist.Classes] = 1
		img[(i+1)%mnist.Classes] = 0.25 // runner-up
		img[mnist.Pixels-1] = 0.5
		s.Images = append(s.Images, img)
		s.Labels = append(s.Labels, l)
	}
	return s
}

func TestEvaluate(t *testing.T) {
	s := set(0, 1, 9, 3, 4, 0, 6) // images 2 and 5 are wrong
	for _, procs := range []int{1, 3, 16} {
		old := runtime.GOMAXPROCS(procs)
		r, err := Evaluate(pixelGraph(), s, 0)
		runtime.GOMAXPROCS(old)
		if err != nil {
			t.Fatal(err)
		}
		if r.N != 7 || r.Correct != 5 || r.Acc != 5.0/7 {
			t.Errorf("GOMAXPROCS %d: %+v, want 5 of 7 right", procs, r)
		}
		// Value by value: the reshape's largest pixel is 1; the dense
		// node doubles it; the polynomial gives 2² − 1 = 3 (and −1 where
		// the dense output is 0, smaller in magnitude). The input itself
		// is not a node's output.
		if want := map[string]float64{"flat": 1, "fc": 2, "sq": 3}; !maps.Equal(r.MaxAbs, want) {
			t.Errorf("GOMAXPROCS %d: max abs %v, want %v", procs, r.MaxAbs, want)
		}
	}
	r, err := Evaluate(pixelGraph(), s, 2)
	if err != nil || r.N != 2 || r.Correct != 2 || r.Acc != 1 {
		t.Errorf("first 2 images: %+v, %v", r, err)
	}
	r, err = Evaluate(pixelGraph(), s, 3)
	if err != nil || r.N != 3 || r.Correct != 2 {
		t.Errorf("first 3 images: %+v, %v", r, err)
	}
	if r, err := Evaluate(pixelGraph(), s, 100); err != nil || r.N != 7 {
		t.Errorf("n > len: %+v, %v", r, err)
	}
}

// MaxAbs sees negative values as well as positive ones, and keeps the
// largest over all images rather than the last.
func TestEvaluateMaxAbs(t *testing.T) {
	g := pixelGraph()
	fc := g.Nodes[1].Dense
	fc.Bias[3] = -9 // logit 3 is −9 where pixel 3 is dark
	s := set(0, 1, 2, 3)
	s.Images[1][1] = 4 // image 1: the dense node's output peaks at 8
	r, err := Evaluate(g, s, 0)
	if err != nil {
		t.Fatal(err)
	}
	// flat: 4 (image 1 only); fc: max(8, |−9|) = 9; sq: max(8² − 1, (−9)² − 1) = 80.
	if want := map[string]float64{"flat": 4, "fc": 9, "sq": 80}; !maps.Equal(r.MaxAbs, want) {
		t.Errorf("max abs %v, want %v", r.MaxAbs, want)
	}
}

// Evaluate applies the graph's preprocessing: pixels are scaled back to
// 0..255 (rounded), then mapped by Preprocess.
func TestEvaluatePreprocess(t *testing.T) {
	g := pixelGraph()
	// x = (raw/255 − 0.25)/0.5: a pixel of 1 becomes 1.5, a pixel of 0
	// becomes −0.5, so the dense outputs are 3 (bright) and −1 (dark).
	g.Input.Preprocess = &ir.Preprocess{Scale: 1 / 255.0, Mean: 0.25, Std: 0.5}
	s := set(0, 1, 2)
	r, err := Evaluate(g, s, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Correct != 3 {
		t.Errorf("%d of 3 right", r.Correct)
	}
	if got := r.MaxAbs["flat"]; math.Abs(got-1.5) > 1e-12 {
		t.Errorf("max |input| after preprocessing %v, want 1.5", got)
	}
	if got := r.MaxAbs["fc"]; math.Abs(got-3) > 1e-12 {
		t.Errorf("max |dense| %v, want 3", got)
	}
}

func TestInput(t *testing.T) {
	img := []float64{0, 1.0 / 255, 0.5, 1}
	g := &ir.Graph{Input: ir.Input{Name: "input", Shape: []int{4}}}
	got := Input(g, img)
	for i := range img {
		if got[i] != img[i] {
			t.Errorf("no preprocessing: %v, want %v", got, img)
			break
		}
	}
	got[0] = 9
	if img[0] != 0 {
		t.Error("Input returns the image itself, not a copy")
	}
	g.Input.Preprocess = &ir.Preprocess{Scale: 1, Mean: 128, Std: 2}
	// Raw pixels 0, 1, round(127.5) = 128, 255.
	want := []float64{-64, -63.5, 0, 63.5}
	got = Input(g, img)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("preprocessed %v, want %v", got, want)
			break
		}
	}
}

func TestEvaluateErrors(t *testing.T) {
	g := pixelGraph()
	fc := g.Nodes[1].Dense
	fc.Out, fc.Weights, fc.Bias = 3, fc.Weights[:3*mnist.Pixels], make([]float64, 3)
	if _, err := Evaluate(g, set(1), 0); err == nil || !strings.Contains(err.Error(), "want 784 to 10") {
		t.Errorf("3 outputs: err = %v", err)
	}
	g = ir.Chain("small", []int{10}, &ir.Node{Op: ir.OpPoly, Poly: &ir.Poly{Coeffs: []float64{0, 1}}})
	if _, err := Evaluate(g, set(1), 0); err == nil || !strings.Contains(err.Error(), "maps 10 values to 10") {
		t.Errorf("10 inputs: err = %v", err)
	}
	g = pixelGraph()
	g.Nodes[2].Poly.Coeffs[0] = math.NaN()
	if _, err := Evaluate(g, set(1), 0); err == nil || !strings.Contains(err.Error(), "not finite") {
		t.Errorf("NaN coefficient: err = %v", err)
	}
	g = pixelGraph()
	g.Nodes[1].Inputs = []string{"nowhere"}
	if _, err := Evaluate(g, set(1), 0); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("dangling input: err = %v", err)
	}
	g = pixelGraph()
	g.Output = "input"
	if _, err := Evaluate(g, set(1), 0); err == nil {
		t.Error("output is the input: no error")
	}
}

func TestEvaluateFunc(t *testing.T) {
	s := set(0, 1, 2, 3, 4, 5)
	// Predicts the first pixel's class for even images, class 9 for odd.
	predict := func(img []float64) ([]float64, error) {
		out := make([]float64, mnist.Classes)
		if img[1] == 1 || img[3] == 1 || img[5] == 1 {
			out[9] = 1
			return out, nil
		}
		copy(out, img[:mnist.Classes])
		return out, nil
	}
	r, err := EvaluateFunc(s, 0, predict)
	if err != nil {
		t.Fatal(err)
	}
	if r.N != 6 || r.Correct != 3 || r.Acc != 0.5 || r.MaxAbs != nil {
		t.Errorf("%+v, want 3 of 6 right and no magnitudes", r)
	}
	// Ties go to the lower index.
	r, err = EvaluateFunc(set(0, 0), 0, func([]float64) ([]float64, error) {
		return make([]float64, mnist.Classes), nil
	})
	if err != nil || r.Correct != 2 {
		t.Errorf("all-zero scores: %+v, %v; want argmax 0", r, err)
	}
	boom := errors.New("boom")
	_, err = EvaluateFunc(s, 0, func(img []float64) ([]float64, error) {
		if img[4] == 1 {
			return nil, boom
		}
		return make([]float64, mnist.Classes), nil
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "image 4") {
		t.Errorf("failing predictor: err = %v", err)
	}
}

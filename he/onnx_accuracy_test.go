package he

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/he/onnx"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/internal/mnist/mnisteval"
)

var approxImages = flag.Int("approx-images", 200, "MNIST test images TestApproximatedAccuracy measures (10000 for the figures in the README)")

// It lives in package he, not he/onnx: linking the compiler into the
// importer's tests would slow FuzzImport's coverage-guided runs a
// thousandfold.
//
// TestApproximatedAccuracy imports each real ONNX file, calibrates its
// approximations (ReLU and max pooling through composite sign polynomials)
// on MNIST training images, and measures the accuracy of the compiled
// circuit in float64, next to the exact executor, on MNIST test images.
// None of the three fits a 128-bit leveled preset: compiling them must
// fail with the depth they need (the next step runs them with bootstraps).
//
//	go test ./he -run TestApproximatedAccuracy -approx-images 10000 -v -timeout 60m
func TestApproximatedAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	dir := sharedDir(t)
	train, err := mnist.LoadDefault(mnist.Train)
	if err != nil {
		t.Fatal(err)
	}
	test, err := mnist.LoadDefault(mnist.Test)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		file string
		pre  *ir.Preprocess
		// lost bounds the accuracy the approximations may cost on these
		// images, in points.
		lost float64
	}{
		{"pytorch-cnn-maxpool-mnist.onnx", &ir.Preprocess{Scale: 2.0 / 255, Mean: 1, Std: 1}, 0.8},
		{"keras-mnist-sm.onnx", &ir.Preprocess{Scale: 1.0 / 255, Std: 1, Layout: "NHWC"}, 1.5},
		{"keras-mnist-lg.onnx", &ir.Preprocess{Scale: 1.0 / 255, Std: 1, Layout: "NHWC"}, 1.5},
	}
	for _, tc := range cases {
		t.Run("ok/"+tc.file, func(t *testing.T) {
			g, err := onnx.ImportFile(filepath.Join(dir, tc.file), onnx.Options{Preprocess: tc.pre})
			if err != nil {
				t.Fatal(err)
			}
			var cal [][]float64
			for _, img := range train.Images[:256] {
				cal = append(cal, mnisteval.Input(g, img))
			}
			opts := CompileOptions{Calibration: cal}
			circ, err := Lower(context.Background(), g, opts)
			if err != nil {
				t.Fatal(err)
			}
			exact, err := mnisteval.EvaluateFunc(test, *approxImages, func(img []float64) ([]float64, error) { return g.Run(mnisteval.Input(g, img)) })
			if err != nil {
				t.Fatal(err)
			}
			approx, err := mnisteval.EvaluateFunc(test, *approxImages, func(img []float64) ([]float64, error) { return circ.Run(mnisteval.Input(g, img)) })
			if err != nil {
				t.Fatal(err)
			}
			_, cerr := Compile(context.Background(), g, opts)
			t.Logf("%s: exact %.2f%%, with approximations %.2f%% on %d test images; circuit %d levels deep; tail %v; compile: %v",
				tc.file, 100*exact.Acc, 100*approx.Acc, approx.N, circ.Levels(), g.Tail, firstLine(cerr))
			if lost := 100 * (exact.Acc - approx.Acc); lost > tc.lost {
				t.Errorf("the approximations cost %.2f points, more than %.1f", lost, tc.lost)
			}
			if !hegate.Is(cerr, hegate.KindInvalid) || !strings.Contains(hegate.DetailOf(cerr), "levels") {
				t.Errorf("compiling for a leveled preset: %v, want a refusal naming the levels needed", cerr)
			}
		})
	}
}

func firstLine(err error) string {
	if err == nil {
		return "ok"
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// sharedDir returns ../shared/data/onnx next to the module root. When it is
// missing the test fails in CI (CI=true) and is skipped elsewhere.
func sharedDir(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			t.Fatalf("no go.mod above %s", wd)
		}
		root = parent
	}
	dir := filepath.Join(root, "..", "shared", "data", "onnx")
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("shared ONNX test data is missing: %v", err)
		}
		t.Skipf("shared ONNX test data is missing: %v", err)
	}
	return dir
}

package onnx

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/internal/mnist"
)

// findShared returns the shared ONNX test data folder, which lives outside
// the repository next to the module root: ../shared/data/onnx.
func findShared() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
		root = parent
	}
	dir := filepath.Join(root, "..", "shared", "data", "onnx")
	if st, err := os.Stat(dir); err != nil {
		return "", err
	} else if !st.IsDir() {
		return "", fmt.Errorf("%s is not a folder", dir)
	}
	return dir, nil
}

// sharedDir returns the shared test data folder. When it is missing the
// test fails in CI (CI=true) and is skipped elsewhere.
func sharedDir(t testing.TB) string {
	t.Helper()
	dir, err := findShared()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("shared ONNX test data is missing: %v", err)
		}
		t.Skipf("shared ONNX test data is missing (set CI=true to make this fatal): %v", err)
	}
	return dir
}

// reference is what ONNX Runtime computed for a model on MNIST test images.
type reference struct {
	Model         string  `json:"model"`
	Input         string  `json:"input"`
	Output        string  `json:"output"`
	Layout        string  `json:"layout"`
	Preprocessing string  `json:"preprocessing"`
	Accuracy      float64 `json:"accuracy_on_10000"`
	Outputs       []struct {
		Index   int       `json:"index"`
		Label   int       `json:"label"`
		ArgMax  int       `json:"argmax"`
		Outputs []float64 `json:"outputs"`
	} `json:"outputs"`
}

func TestMatchesONNXRuntime(t *testing.T) {
	dir := sharedDir(t)
	refs, err := filepath.Glob(filepath.Join(dir, "reference", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 4 {
		t.Fatalf("found %d reference files in %s, want 4", len(refs), dir)
	}
	set, err := mnist.LoadDefault(mnist.Test)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range refs {
		t.Run("ok/"+strings.TrimSuffix(filepath.Base(path), ".json"), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var ref reference
			if err := json.Unmarshal(data, &ref); err != nil {
				t.Fatal(err)
			}
			if len(ref.Outputs) < 200 {
				t.Fatalf("%d reference outputs, want 200", len(ref.Outputs))
			}
			var pre func(float64) float64
			switch ref.Preprocessing {
			case "pixel / 255":
				pre = func(x float64) float64 { return x }
			case "pixel / 255 * 2 - 1":
				pre = func(x float64) float64 { return x*2 - 1 }
			default:
				t.Fatalf("unknown preprocessing %q", ref.Preprocessing)
			}
			g, err := ImportFile(filepath.Join(dir, ref.Model), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if g.Input.Name != ref.Input {
				t.Errorf("input %q, want %q", g.Input.Name, ref.Input)
			}
			if ref.Layout != "" && g.Source["layout"] != ref.Layout {
				t.Errorf("layout %v, want %s", g.Source["layout"], ref.Layout)
			}
			if g.InputSize() != mnist.Pixels {
				t.Fatalf("input shape %v, want %d values", g.Input.Shape, mnist.Pixels)
			}
			worst, worstAt := 0.0, -1
			for _, r := range ref.Outputs[:200] {
				img := set.Images[r.Index]
				if set.Labels[r.Index] != r.Label {
					t.Fatalf("image %d: label %d, the reference says %d", r.Index, set.Labels[r.Index], r.Label)
				}
				x := make([]float64, len(img))
				for k, v := range img {
					x[k] = pre(v)
				}
				y, err := g.Run(x)
				if err != nil {
					t.Fatal(err)
				}
				y = g.ApplyTail(y)
				if len(y) != len(r.Outputs) {
					t.Fatalf("image %d: %d outputs, want %d", r.Index, len(y), len(r.Outputs))
				}
				for k, want := range r.Outputs {
					d := math.Abs(y[k] - want)
					if math.Abs(want) > 1 {
						d /= math.Abs(want)
					}
					if d > worst {
						worst, worstAt = d, r.Index
					}
					if d > 1e-4 {
						t.Errorf("image %d output %d: %g, ONNX Runtime %g", r.Index, k, y[k], want)
					}
				}
				if got := ir.ArgMax(y); got != r.ArgMax {
					t.Errorf("image %d: argmax %d, ONNX Runtime %d", r.Index, got, r.ArgMax)
				}
			}
			t.Logf("%s: %d nodes, tail %v, worst difference %.3g (image %d)", ref.Model, len(g.Nodes), g.Tail, worst, worstAt)
		})
	}
}

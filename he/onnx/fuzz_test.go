package onnx

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/he/onnx/internal/onnxpb"
)

// FuzzImport checks that Import never panics and returns either a graph
// that validates or a client-safe KindInvalid/KindTooLarge error.
func FuzzImport(f *testing.F) {
	// The Keras models seed the corpus when the shared data is there (it
	// must be in CI); the hand-built seeds always do.
	if dir, err := findShared(); err == nil {
		for _, name := range []string{"keras-mnist-sm.onnx", "keras-mnist-lg.onnx"} {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	} else if os.Getenv("CI") == "true" {
		f.Fatalf("shared ONNX test data is missing: %v", err)
	}
	for _, seed := range handSeeds(f) {
		f.Add(seed)
	}
	f.Add([]byte{})
	f.Add([]byte("\x3a\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// An input that takes this long is a bug: crash so the fuzzer keeps it.
		dog := time.AfterFunc(10*time.Second, func() { panic("Import took more than 10 s") })
		defer dog.Stop()
		g, err := importBytes(data, Options{MaxBytes: 1 << 20})
		if err != nil {
			if k := hegate.KindOf(err); k != hegate.KindInvalid && k != hegate.KindTooLarge {
				t.Fatalf("kind %v: %v", k, err)
			}
			if hegate.DetailOf(err) == "" {
				t.Fatalf("no detail: %v", err)
			}
			return
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("the imported graph does not validate: %v", err)
		}
		if cheap(g) {
			y, err := g.Run(make([]float64, g.InputSize()))
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			g.ApplyTail(y)
		}
	})
}

// handSeeds are small valid models covering most converters.
func handSeeds(tb testing.TB) [][]byte {
	return [][]byte{base().bytes(tb), mdl{
		opset:  11,
		inputs: []*onnxpb.ValueInfoProto{valueInfo("x", "N", 2, 2, 2)},
		nodes: []*onnxpb.NodeProto{
			nd("Transpose", "t", in("x"), in("a"), aInts("perm", 0, 3, 1, 2)),
			nd("BatchNormalization", "bn", in("a", "s", "s", "s", "s"), in("b")),
			nd("AveragePool", "ap", in("b"), in("c"), aInts("kernel_shape", 2, 2), aStr("auto_pad", "SAME_UPPER")),
			nd("Shape", "shape", in("c"), in("sh")),
			nd("Gather", "g", in("sh", "zero"), in("n")),
			nd("Unsqueeze", "u", in("n"), in("n1"), aInts("axes", 0)),
			nd("Concat", "cat", in("n1", "m1"), in("s2"), aInt("axis", 0)),
			nd("Reshape", "r", in("c", "s2"), in("f")),
			nd("MatMul", "mm", in("f", "W"), in("t2")),
			nd("Add", "bias", in("t2", "b2"), in("y0")),
			nd("Dropout", "drop", in("y0"), in("y1")),
			nd("ArgMax", "am", in("y1"), in("y"), aInt("axis", 1)),
		},
		inits: []*onnxpb.TensorProto{
			floatT("s", dims(2), 1, 2), intT("zero", nil, 0), intT("m1", dims(1), -1),
			floatT("W", dims(8, 2), seq(16)...), floatT("b2", dims(2), 1, 2),
		},
		output: "y",
	}.bytes(tb), mdl{
		inputs: []*onnxpb.ValueInfoProto{valueInfo("x", "N", 3)},
		nodes: []*onnxpb.NodeProto{
			nd("Sub", "sub", in("x", "c"), in("a")),
			nd("Div", "div", in("a", "c"), in("b")),
			nd("Relu", "relu", in("b"), in("r")),
			nd("Add", "add", in("r", "b"), in("y")),
		},
		inits:  []*onnxpb.TensorProto{floatT("c", dims(3), 1, 2, 3)},
		output: "y",
	}.bytes(tb), gathersModel(tb, 16, 3, true)}
}

func TestFuzzSeedsImport(t *testing.T) {
	for k, seed := range handSeeds(t) {
		if _, err := importBytes(seed, Options{}); err != nil {
			t.Errorf("seed %d: %v", k, err)
		}
	}
}

// cheap reports whether running g costs little (for the fuzzer).
func cheap(g *ir.Graph) bool {
	shapes, err := g.Shapes()
	if err != nil {
		return false
	}
	cost := 0
	for _, n := range g.Nodes {
		per := 1
		switch {
		case n.Conv != nil:
			per = n.Conv.InChannels * n.Conv.Kernel[0] * n.Conv.Kernel[1]
		case n.Dense != nil:
			per = n.Dense.In
		case n.Pool != nil:
			per = n.Pool.Kernel[0] * n.Pool.Kernel[1]
		}
		if cost += ir.Prod(shapes[n.Output]) * per; cost > 1<<22 {
			return false
		}
	}
	return true
}

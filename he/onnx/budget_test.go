package onnx

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/he/onnx/internal/onnxpb"
)

// gathersModel is the constant-folding attack of the security review: a
// few KB of shared initializers, D [1,w] and zero indices I [w], from which
// every Gather(D, I) folds a [w,w] constant. With live, the k-th Gather
// feeds the output through Gather(G_k, 0) → [w] and a per-channel Mul of a
// chain over x [N,w]; without it the Gathers are dead branches beside the
// base network.
func gathersModel(t testing.TB, w, count int, live bool) []byte {
	d := make([]float32, w)
	for k := range d {
		d[k] = float32(k)
	}
	inits := []*onnxpb.TensorProto{
		floatT("D", dims(1, int64(w)), d...),
		intT("I", dims(int64(w)), make([]int64, w)...),
		intT("zero", nil, 0),
	}
	if !live {
		m := base()
		m.inits = append(m.inits, inits...)
		for k := 0; k < count; k++ {
			m.nodes = append(m.nodes, nd("Gather", fmt.Sprintf("big_%d", k), in("D", "I"), in(fmt.Sprintf("g%d", k))))
		}
		return m.bytes(t)
	}
	m := mdl{inputs: []*onnxpb.ValueInfoProto{valueInfo("x", "N", w)}, inits: inits}
	prev := "x"
	for k := 0; k < count; k++ {
		g, s, y := fmt.Sprintf("g%d", k), fmt.Sprintf("s%d", k), fmt.Sprintf("y%d", k)
		m.nodes = append(m.nodes,
			nd("Gather", fmt.Sprintf("big_%d", k), in("D", "I"), in(g)),
			nd("Gather", fmt.Sprintf("row_%d", k), in(g, "zero"), in(s)),
			nd("Mul", fmt.Sprintf("mul_%d", k), in(prev, s), in(y)))
		prev = y
	}
	m.output = prev
	return m.bytes(t)
}

// valueFloats is a Constant node with value_floats of n values.
func valueFloats(name, out string, n int) *onnxpb.NodeProto {
	return nd("Constant", name, nil, in(out), &onnxpb.AttributeProto{Name: "value_floats", Type: onnxpb.AttributeProto_FLOATS, Floats: make([]float32, n)})
}

// addChain doubles a value_floats constant of n values adds times (each
// Add of the constant with itself folds n more elements) and multiplies
// x [N,n] by the result per channel.
func addChain(t testing.TB, n, adds int) []byte {
	m := mdl{inputs: []*onnxpb.ValueInfoProto{valueInfo("x", "N", n)}}
	m.nodes = append(m.nodes, valueFloats("big", "a0", n))
	for k := 1; k <= adds; k++ {
		a, b := fmt.Sprintf("a%d", k-1), fmt.Sprintf("a%d", k)
		m.nodes = append(m.nodes, nd("Add", fmt.Sprintf("add_%d", k), in(a, a), in(b)))
	}
	m.nodes = append(m.nodes, nd("Mul", "scale", in("x", fmt.Sprintf("a%d", adds)), in("y")))
	m.output = "y"
	return m.bytes(t)
}

func TestImportBudget(t *testing.T) {
	if got, want := budgetFor(10000), 1<<20+5000; got != want {
		t.Errorf("budgetFor(10000) = %d, want %d", got, want)
	}
	if got := budgetFor(1 << 40); got != 2*ir.MaxWeights {
		t.Errorf("budgetFor(1 TB) = %d, want the cap %d", got, 2*ir.MaxWeights)
	}
	tests := []struct {
		name string
		data func(t testing.TB) []byte
		want []string
	}{
		{
			// 680 live Gathers of 2^22 elements each from 10 KB: 21 GB
			// unchecked. The first one does not fit a 10 KB file's budget.
			name: "fail/many-gathers",
			data: func(t testing.TB) []byte { return gathersModel(t, 2048, 680, true) },
			want: []string{`("big_0", Gather)`, "folding it (4194304 elements)", "more than 10", "a model must not expand far beyond its file"},
		},
		{
			// Gathers of 2^18 elements each: every one fits the budget,
			// not all together. (The sort puts the Gathers of initializers
			// first: four of them fill the floor of 2^20, the fifth is
			// refused.)
			name: "fail/gathers-add-up",
			data: func(t testing.TB) []byte { return gathersModel(t, 512, 64, true) },
			want: []string{`("big_4", Gather)`, "folding it (262144 elements)", "(1049600 are already used)"},
		},
		{
			// 2^22+1 values in value_floats (16 MB, 32 MB as float64): more
			// than any one tensor may have; refused before decoding, even
			// in a dead branch.
			name: "fail/huge-value-floats",
			data: func(t testing.TB) []byte {
				m := base()
				m.nodes = append(m.nodes, valueFloats("big", "k", ir.MaxTensorElems+1), nd("Add", "twice", in("k", "k"), in("k2")))
				return m.bytes(t)
			},
			want: []string{`("big", Constant)`, "attribute \"value_floats\" has 4194305 values, more than the limit of 4194304"},
		},
		{
			name: "fail/huge-value-ints",
			data: func(t testing.TB) []byte {
				m := base()
				m.nodes = append(m.nodes, nd("Constant", "ints", nil, in("k"), aInts("value_ints", make([]int64, ir.MaxTensorElems+1)...)))
				return m.bytes(t)
			},
			want: []string{`("ints", Constant)`, "has 4194305 values"},
		},
		{
			// A 4 MB value_floats constant (2^20 values) added to itself:
			// each Add folds 2^20 more elements; the third does not fit.
			name: "fail/value-floats-adds",
			data: func(t testing.TB) []byte { return addChain(t, 1<<20, 8) },
			want: []string{`("add_3", Add)`, "folding it (1048576 elements)"},
		},
		{
			// One 1 MB weight shared by a chain of MatMuls, each of which
			// makes its own transposed copy (2 MB).
			name: "fail/shared-weights",
			data: func(t testing.TB) []byte {
				const w = 512
				m := mdl{inputs: []*onnxpb.ValueInfoProto{valueInfo("x", "N", w)}, inits: []*onnxpb.TensorProto{floatT("W", dims(w, w), make([]float32, w*w)...)}}
				prev := "x"
				for k := 0; k < 64; k++ {
					y := fmt.Sprintf("y%d", k)
					m.nodes = append(m.nodes, nd("MatMul", fmt.Sprintf("mm_%d", k), in(prev, "W"), in(y)))
					prev = y
				}
				m.output = prev
				return m.bytes(t)
			},
			want: []string{`("mm_4", MatMul)`, "the transposed weights and the bias (262656 elements)"},
		},
		{
			name: "fail/constant-value-huge-declared",
			data: func(t testing.TB) []byte {
				m := base()
				m.nodes = append(m.nodes, nd("Constant", "c", nil, in("k"), aTensor("value", floatT("", dims(1<<20, 1<<20), 1))))
				return m.bytes(t)
			},
			want: []string{`("c", Constant)`, "more than 4194304 elements"},
		},
		{
			name: "fail/attribute-carries-tensor",
			data: with(func(m *mdl) {
				m.nodes[2].Attribute = []*onnxpb.AttributeProto{{Name: "axis", Type: onnxpb.AttributeProto_INT, I: 1, T: floatT("", dims(4), 1, 2, 3, 4)}}
			}),
			want: []string{`("flat", Flatten)`, `attribute "axis" carries a tensor`},
		},
		{
			name: "fail/constant-sparse-value",
			data: with(func(m *mdl) {
				m.nodes = append(m.nodes, nd("Constant", "sp", nil, in("k"), &onnxpb.AttributeProto{Name: "sparse_value", Type: onnxpb.AttributeProto_SPARSE_TENSOR, SparseTensor: &onnxpb.SparseTensorProto{}}))
			}),
			want: []string{`("sp", Constant)`, "sparse_value is not supported"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkRefused(t, tc.data(t), Options{}, hegate.KindInvalid, tc.want)
		})
	}
}

// TestDeadBranchesNotConverted imports the review's file as it was: the
// Gathers are dead branches, which are checked but neither converted nor
// folded, so the import succeeds in bounded memory.
func TestDeadBranchesNotConverted(t *testing.T) {
	for _, count := range []int{8, 2000} {
		t.Run(fmt.Sprintf("ok/dead-gathers-%d", count), func(t *testing.T) {
			data := gathersModel(t, 2048, count, false)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			g, err := importBytes(data, Options{})
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if len(g.Nodes) != 4 {
				t.Errorf("got %d nodes (%v), want the base network's 4", len(g.Nodes), ops(g))
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20+8*uint64(len(data)) {
				t.Errorf("allocated %d MB for a %d-byte file", alloc>>20, len(data))
			}
		})
	}
	// A dead branch is still checked: an unsupported operator there is
	// refused.
	m := base()
	m.nodes = append(m.nodes, nd("Sigmoid", "dead", in("c"), in("unused")))
	if _, err := importBytes(m.bytes(t), Options{}); !strings.Contains(hegate.DetailOf(err), `("dead", Sigmoid)`) {
		t.Errorf("dead unsupported node: %v", err)
	}
}

// TestFoldedWeightsNotShared checks that two IR nodes never hold the same
// weight slice, even when a fold (here Reshape) gives a new constant with
// the data of one already used.
func TestFoldedWeightsNotShared(t *testing.T) {
	m := mdl{
		inputs: []*onnxpb.ValueInfoProto{valueInfo("x", "N", 2)},
		nodes: []*onnxpb.NodeProto{
			nd("Gemm", "fc1", in("x", "W"), in("a"), aInt("transB", 1)),
			nd("Reshape", "rs", in("W", "shape"), in("W2")),
			nd("Gemm", "fc2", in("a", "W2"), in("y"), aInt("transB", 1)),
		},
		inits:  []*onnxpb.TensorProto{floatT("W", dims(2, 2), 1, 2, 3, 4), intT("shape", dims(2), 2, 2)},
		output: "y",
	}
	g, err := importBytes(m.bytes(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Nodes) != 2 || g.Nodes[0].Dense == nil || g.Nodes[1].Dense == nil {
		t.Fatalf("got %v, want two dense layers", ops(g))
	}
	a, b := g.Nodes[0].Dense.Weights, g.Nodes[1].Dense.Weights
	if &a[0] == &b[0] {
		t.Fatalf("the two layers share their weights")
	}
	if !near(a, b, 0) {
		t.Fatalf("weights %v and %v differ", a, b)
	}
}

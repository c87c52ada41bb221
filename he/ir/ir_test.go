package ir

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hegate/hegate"
)

func vec(r *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = r.Float64()*2 - 1
	}
	return v
}

func conv(r *rand.Rand, in, out int, k, s [2]int, p [4]int) *Node {
	return &Node{Op: OpConv, Conv: &Conv{InChannels: in, OutChannels: out, Kernel: k, Stride: s, Pads: p,
		Weights: vec(r, out*in*k[0]*k[1]), Bias: vec(r, out)}}
}

// TestConvByHand checks a rectangular, strided, asymmetrically padded
// convolution against values computed by hand.
func TestConvByHand(t *testing.T) {
	// 1 channel 3×4 input, kernel 2×3, stride (1,2), pads top 1, left 1, bottom 0, right 1.
	n := &Node{Op: OpConv, Conv: &Conv{InChannels: 1, OutChannels: 1, Kernel: [2]int{2, 3}, Stride: [2]int{1, 2}, Pads: [4]int{1, 1, 0, 1},
		Weights: []float64{1, 2, 3, 4, 5, 6}, Bias: []float64{0.5}}}
	g := Chain("c", []int{1, 3, 4}, n)
	x := []float64{
		1, 2, 3, 4,
		5, 6, 7, 8,
		9, 10, 11, 12,
	}
	got, err := g.Run(x)
	if err != nil {
		t.Fatal(err)
	}
	// Output 3×2 (rows (3+1-2)/1+1 = 3, cols (4+2-3)/2+1 = 2).
	// (0,0): window rows -1..0, cols -1..1: only row 0: 4·0 + 5·1 + 6·2 = 17.
	// (0,1): cols 1..3 on row 0: 4·2 + 5·3 + 6·4 = 47.
	// (1,0): rows 0..1, cols -1..1: 2·1 + 3·2 + 5·5 + 6·6 = 69.
	want := []float64{17.5, 47.5, 69.5}
	for i, w := range want {
		if got[i] != w {
			t.Fatalf("output %d = %v, want %v (all %v)", i, got[i], w, got)
		}
	}
	if len(got) != 6 {
		t.Fatalf("%d outputs", len(got))
	}
}

func TestPoolsByHand(t *testing.T) {
	x := []float64{
		1, -2, 3,
		-4, 5, -6,
		7, 8, -9,
	}
	cases := []struct {
		name string
		n    *Node
		want []float64
	}{
		{"ok/max-2x2-s1", &Node{Op: OpMaxPool, Pool: &Pool{Kernel: [2]int{2, 2}, Stride: [2]int{1, 1}}}, []float64{5, 5, 8, 8}},
		{"ok/max-pad-ignored", &Node{Op: OpMaxPool, Pool: &Pool{Kernel: [2]int{2, 2}, Stride: [2]int{2, 2}, Pads: [4]int{1, 1, 0, 0}}}, []float64{1, 3, 7, 8}},
		{"ok/avg-exclude-pad", &Node{Op: OpAvgPool, Pool: &Pool{Kernel: [2]int{2, 2}, Stride: [2]int{2, 2}, Pads: [4]int{1, 1, 0, 0}}}, []float64{1, 0.5, 1.5, -0.5}},
		{"ok/avg-include-pad", &Node{Op: OpAvgPool, Pool: &Pool{Kernel: [2]int{2, 2}, Stride: [2]int{2, 2}, Pads: [4]int{1, 1, 0, 0}, CountIncludePad: true}}, []float64{0.25, 0.25, 0.75, -0.5}},
		{"ok/global-average", &Node{Op: OpGlobalAvgPool}, []float64{1.0 / 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Chain("p", []int{1, 3, 3}, tc.n).Run(x)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if math.Abs(got[i]-tc.want[i]) > 1e-12 {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestTransposeAndReshape(t *testing.T) {
	// [H=2, W=3, C=2] → [C, H, W].
	x := []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11} // (h,w,c) = h*6 + w*2 + c
	g := Chain("t", []int{2, 3, 2}, &Node{Op: OpTranspose, Transpose: &Transpose{Perm: []int{2, 0, 1}}}, &Node{Op: OpReshape, Reshape: &Reshape{Shape: []int{12}}})
	got, err := g.Run(x)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

// TestLinearMatchesRun checks every linear op's matrix against its own
// float64 semantics on random inputs: the compiler lowers the matrices,
// the reference runs the loops.
func TestLinearMatchesRun(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name  string
		shape []int
		n     *Node
	}{
		{"conv", []int{2, 7, 6}, conv(r, 2, 3, [2]int{3, 2}, [2]int{2, 1}, [4]int{1, 0, 2, 1})},
		{"dense", []int{9}, &Node{Op: OpDense, Dense: &Dense{In: 9, Out: 4, Weights: vec(r, 36), Bias: vec(r, 4)}}},
		{"affine", []int{3, 2, 2}, &Node{Op: OpAffine, Affine: &Affine{Scale: vec(r, 3), Shift: vec(r, 3)}}},
		{"affine-broadcast", []int{5}, &Node{Op: OpAffine, Affine: &Affine{Scale: []float64{2}, Shift: vec(r, 5)}}},
		{"avgpool", []int{2, 5, 5}, &Node{Op: OpAvgPool, Pool: &Pool{Kernel: [2]int{3, 3}, Stride: [2]int{2, 2}, Pads: [4]int{1, 1, 1, 1}}}},
		{"gap", []int{3, 4, 4}, &Node{Op: OpGlobalAvgPool}},
		{"reshape", []int{2, 3, 4}, &Node{Op: OpReshape, Reshape: &Reshape{Shape: []int{24}}}},
		{"transpose", []int{2, 3, 4}, &Node{Op: OpTranspose, Transpose: &Transpose{Perm: []int{1, 2, 0}}}},
	}
	for _, tc := range cases {
		t.Run("ok/"+tc.name, func(t *testing.T) {
			g := Chain(tc.name, tc.shape, tc.n)
			if err := g.Validate(); err != nil {
				t.Fatal(err)
			}
			m, ok := tc.n.Linear(tc.shape)
			if !ok {
				t.Fatal("not linear")
			}
			for trial := 0; trial < 5; trial++ {
				x := vec(r, Prod(tc.shape))
				want, _ := g.Run(x)
				got := m.Apply(x)
				for i := range want {
					if math.Abs(got[i]-want[i]) > 1e-12 {
						t.Fatalf("output %d: matrix %v, run %v", i, got[i], want[i])
					}
				}
			}
		})
	}
	for _, op := range []OpType{OpRelu, OpPoly, OpMaxPool, OpAdd} {
		if IsLinear(op) {
			t.Errorf("%s claims to be linear", op)
		}
	}
}

func TestValidateRefuses(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ok := func() *Graph {
		return Chain("g", []int{1, 4, 4}, conv(r, 1, 2, [2]int{3, 3}, [2]int{1, 1}, [4]int{1, 1, 1, 1}), &Node{Op: OpRelu})
	}
	cases := []struct {
		name, want string
		edit       func(g *Graph)
	}{
		{"fail/unknown-op", "unknown op", func(g *Graph) { g.Nodes[1].Op = "lstm" }},
		{"fail/order", "topological order", func(g *Graph) { g.Nodes[0], g.Nodes[1] = g.Nodes[1], g.Nodes[0] }},
		{"fail/cycle", "topological order", func(g *Graph) { g.Nodes[0].Inputs = []string{g.Nodes[1].Output} }},
		{"fail/two-producers", "already defined", func(g *Graph) { g.Nodes[1].Output = g.Nodes[0].Output }},
		{"fail/channels", "in_channels", func(g *Graph) { g.Nodes[0].Conv.InChannels = 3 }},
		{"fail/weights", "weights", func(g *Graph) { g.Nodes[0].Conv.Weights = g.Nodes[0].Conv.Weights[1:] }},
		{"fail/nan", "not finite", func(g *Graph) { g.Nodes[0].Conv.Bias[0] = math.NaN() }},
		{"fail/mixed-attrs", "attributes", func(g *Graph) { g.Nodes[1].Poly = &Poly{Coeffs: []float64{1}} }},
		{"fail/negative-shape", "bad dimension", func(g *Graph) { g.Input.Shape = []int{1, -4, 4} }},
		{"fail/huge-shape", "elements", func(g *Graph) { g.Input.Shape = []int{1 << 20, 1 << 20, 1 << 20} }},
		{"fail/output", "output", func(g *Graph) { g.Output = "nope" }},
		{"fail/pad", "pads", func(g *Graph) { g.Nodes[0].Conv.Pads = [4]int{3, 0, 0, 0} }},
		{"fail/tail", "tail op", func(g *Graph) { g.Tail = []TailOp{"sigmoid"} }},
		{"fail/too-many-nodes", "nodes", func(g *Graph) {
			for len(g.Nodes) <= MaxNodes {
				g.Nodes = append(g.Nodes, &Node{Name: "r" + string(rune(len(g.Nodes))), Op: OpRelu})
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := ok()
			if err := g.Validate(); err != nil {
				t.Fatal(err)
			}
			tc.edit(g)
			err := g.Validate()
			if !hegate.Is(err, hegate.KindInvalid) || !strings.Contains(hegate.DetailOf(err), tc.want) {
				t.Fatalf("got %v, want invalid mentioning %q", err, tc.want)
			}
		})
	}
}

func TestReadWrite(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	g := Chain("rw", []int{1, 4, 4}, conv(r, 1, 2, [2]int{3, 3}, [2]int{1, 1}, [4]int{1, 1, 1, 1}), &Node{Op: OpPoly, Poly: &Poly{Coeffs: []float64{0, 1, 0.5}}})
	var buf bytes.Buffer
	if err := Write(&buf, g); err != nil {
		t.Fatal(err)
	}
	back, err := Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if back.Digest() != g.Digest() {
		t.Fatal("round trip changed the graph")
	}
	if _, err := Read(strings.NewReader(`{"name":"x","bogus":1}`)); !hegate.Is(err, hegate.KindInvalid) {
		t.Fatalf("unknown field: %v", err)
	}
	if _, err := Read(strings.NewReader(`{"name":`)); !hegate.Is(err, hegate.KindInvalid) {
		t.Fatalf("truncated: %v", err)
	}
}

func resnetish(r *rand.Rand) *Graph {
	g := Chain("res", []int{1, 6, 6}, conv(r, 1, 2, [2]int{3, 3}, [2]int{1, 1}, [4]int{1, 1, 1, 1}), &Node{Op: OpRelu})
	stem := g.Output
	c1 := conv(r, 2, 2, [2]int{3, 3}, [2]int{1, 1}, [4]int{1, 1, 1, 1})
	c1.Name, c1.Output, c1.Inputs = "c1", "c1", []string{stem}
	add := &Node{Name: "add", Op: OpAdd, Inputs: []string{stem, "c1"}, Output: "add"}
	act := &Node{Name: "act", Op: OpRelu, Inputs: []string{"add"}, Output: "act"}
	gap := &Node{Name: "gap", Op: OpGlobalAvgPool, Inputs: []string{"act"}, Output: "gap"}
	flat := &Node{Name: "flat", Op: OpReshape, Reshape: &Reshape{Shape: []int{2}}, Inputs: []string{"gap"}, Output: "flat"}
	g.Nodes = append(g.Nodes, c1, add, act, gap, flat)
	g.Output = "flat"
	return g
}

func TestSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	g := resnetish(r)
	cuts, err := Cuts(g)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cuts {
		names = append(names, c.After)
	}
	// Inside the block (c1, add's operands) is no cut: the skip reads the stem.
	if got := strings.Join(names, " "); got != "conv0 relu1 add act gap" {
		t.Fatalf("cuts %q", got)
	}
	for i := 1; i < len(cuts); i++ {
		if cuts[i].HeadMACs < cuts[i-1].HeadMACs {
			t.Fatalf("head MACs decrease: %+v", cuts)
		}
	}
	head, tail, err := Split(g, "act")
	if err != nil {
		t.Fatal(err)
	}
	for trial := 0; trial < 3; trial++ {
		x := vec(r, 36)
		want, _ := g.Run(x)
		feat, err := head.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tail.Run(feat)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("split %v, whole %v", got, want)
			}
		}
	}
	for _, bad := range []string{"c1", "input", "flat", "nope"} {
		if _, _, err := Split(g, bad); !hegate.Is(err, hegate.KindInvalid) {
			t.Errorf("split after %q: %v", bad, err)
		}
	}
}

func TestQuantizeInt8(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	g := resnetish(r)
	var samples [][]float64
	for i := 0; i < 32; i++ {
		samples = append(samples, vec(r, 36))
	}
	orig := append([]float64(nil), g.Nodes[0].Conv.Weights...)
	q, err := QuantizeInt8(g, samples)
	if err != nil {
		t.Fatal(err)
	}
	// Each output channel's weights are integer multiples of its scale.
	qw := q.Graph().Nodes[0].Conv.Weights
	for o := 0; o < 2; o++ {
		row := qw[o*9 : (o+1)*9]
		s := maxAbsOf(orig[o*9:(o+1)*9]) / 127
		for _, v := range row {
			if k := v / s; math.Abs(k-math.Round(k)) > 1e-9 || math.Abs(k) > 127 {
				t.Fatalf("channel %d weight %v is not an int8 step of %v", o, v, s)
			}
		}
	}
	for i, v := range g.Nodes[0].Conv.Weights {
		if v != orig[i] {
			t.Fatal("quantizing changed the original graph")
		}
	}
	worst, scale := 0.0, 0.0
	for _, x := range samples {
		want, _ := g.Run(x)
		got, err := q.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			worst = math.Max(worst, math.Abs(got[i]-want[i]))
			scale = math.Max(scale, math.Abs(want[i]))
		}
	}
	// int8 keeps about 2 significant digits: a few percent of the range.
	if worst == 0 || worst > 0.05*scale {
		t.Fatalf("int8 error %g for outputs up to %g", worst, scale)
	}
}

package he

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// cryptoNetsShape is the shape of the shipped MNIST model with random weights.
func cryptoNetsShape(r *rand.Rand) *Graph {
	return &Graph{
		Name:  "cryptonets-shape",
		Input: []int{1, 28, 28},
		Layers: []Layer{
			{Op: OpConv2D, Conv: &Conv2D{InChannels: 1, OutChannels: 5, Kernel: 5, Stride: 2, Padding: 1, Weights: randVec(r, 125, 0.3), Bias: randVec(r, 5, 0.1)}},
			{Op: OpPoly, Poly: &Poly{Coeffs: []float64{0, 0.5, 0.1}}},
			{Op: OpFlatten},
			{Op: OpDense, Dense: &Dense{In: 845, Out: 100, Weights: randVec(r, 84500, 0.05), Bias: randVec(r, 100, 0.1)}},
			{Op: OpPoly, Poly: &Poly{Coeffs: []float64{0, 0.5, 0.1}}},
			{Op: OpDense, Dense: &Dense{In: 100, Out: 10, Weights: randVec(r, 1000, 0.2), Bias: randVec(r, 10, 0.1)}},
		},
	}
}

func TestCryptoNetsShapeN14(t *testing.T) {
	if testing.Short() {
		t.Skip("logN 14")
	}
	r := rand.New(rand.NewPCG(3, 4))
	g := cryptoNetsShape(r)
	t0 := time.Now()
	m, err := Compile(g, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	man := m.Manifest()
	t.Logf("compile %v; slots 2^%d levels %d galois %d cost %+v keyset %.1f MB ct %d", time.Since(t0), man.LogSlots, man.Levels, len(man.GaloisElements), man.Cost, float64(man.KeySetBytes)/1e6, man.CiphertextBytes)
	for i, st := range m.c.steps {
		t.Logf("step %d kind %d level %d diags %d rotsum %v cost %+v", i, st.kind, st.level, st.diags, st.rotSum, st.cost)
	}
	sk, _ := m.GenerateSecretKey()
	var keys bytes.Buffer
	t0 = time.Now()
	if _, err := m.WriteKeySet(&keys, sk); err != nil {
		t.Fatal(err)
	}
	t.Logf("keygen %v", time.Since(t0))
	t0 = time.Now()
	ks, err := m.ReadKeySet(bytes.NewReader(keys.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("read keys %v", time.Since(t0))
	x := randVec(r, 784, 1)
	for i := range x {
		x[i] = math.Abs(x[i])
	}
	want, _ := g.Reference(x)
	ct, _ := m.Encrypt(sk, x)
	t0 = time.Now()
	res, _, err := m.Evaluate(context.Background(), ks, ct)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("evaluate %v", time.Since(t0))
	got, _ := m.Decrypt(sk, res)
	worst := 0.0
	for i := range want {
		worst = math.Max(worst, math.Abs(got[i]-want[i]))
	}
	t.Logf("max error %.3g; want %v", worst, want[:3])
	if worst > 0.01 {
		t.Fatalf("max error %v", worst)
	}
}

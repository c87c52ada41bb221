package he

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

func randVec(r *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = (r.Float64()*2 - 1) * scale
	}
	return v
}

// tinyDense is input [16], dense 16→8, a·x²+b·x+c, dense 8→4.
func tinyDense(r *rand.Rand) *Graph {
	return &Graph{
		Name:  "tiny-dense",
		Input: []int{16},
		Layers: []Layer{
			{Op: OpDense, Dense: &Dense{In: 16, Out: 8, Weights: randVec(r, 128, 0.5), Bias: randVec(r, 8, 0.5)}},
			{Op: OpPoly, Poly: &Poly{Coeffs: []float64{0.1, 0.5, 0.25}}},
			{Op: OpDense, Dense: &Dense{In: 8, Out: 4, Weights: randVec(r, 32, 0.5), Bias: randVec(r, 4, 0.5)}},
		},
	}
}

// tinyCNN is a CryptoNets-shaped network on a 1×8×8 input.
func tinyCNN(r *rand.Rand) *Graph {
	return &Graph{
		Name:  "tiny-cnn",
		Input: []int{1, 8, 8},
		Layers: []Layer{
			{Op: OpConv2D, Conv: &Conv2D{InChannels: 1, OutChannels: 2, Kernel: 3, Stride: 2, Padding: 1, Weights: randVec(r, 18, 0.5), Bias: randVec(r, 2, 0.2)}},
			{Op: OpPoly, Poly: &Poly{Coeffs: []float64{0, 0.5, 0.1}}},
			{Op: OpFlatten},
			{Op: OpDense, Dense: &Dense{In: 32, Out: 6, Weights: randVec(r, 192, 0.3), Bias: randVec(r, 6, 0.2)}},
			{Op: OpPoly, Poly: &Poly{Coeffs: []float64{0, 0.5, 0.1}}},
			{Op: OpDense, Dense: &Dense{In: 6, Out: 3, Weights: randVec(r, 18, 0.5), Bias: randVec(r, 3, 0.2)}},
		},
	}
}

func TestEncryptedMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, g := range []*Graph{tinyDense(r), tinyCNN(r)} {
		t.Run("ok/"+g.Name, func(t *testing.T) {
			m, err := Compile(g, CompileOptions{Params: "test-n12", AllowInsecure: true})
			if err != nil {
				t.Fatal(err)
			}
			man := m.Manifest()
			t.Logf("manifest: slots 2^%d levels %d galois %d cost %+v keyset %d bytes", man.LogSlots, man.Levels, len(man.GaloisElements), man.Cost, man.KeySetBytes)
			// The device works from the served manifest only.
			js, err := json.Marshal(man)
			if err != nil {
				t.Fatal(err)
			}
			var served Manifest
			if err := json.Unmarshal(js, &served); err != nil {
				t.Fatal(err)
			}
			dev, err := NewDevice(served, true)
			if err != nil {
				t.Fatal(err)
			}
			sk, err := dev.GenerateSecretKey()
			if err != nil {
				t.Fatal(err)
			}
			var keys bytes.Buffer
			n, err := dev.WriteKeySet(&keys, sk)
			if err != nil {
				t.Fatal(err)
			}
			if n != man.KeySetBytes || int64(keys.Len()) != n {
				t.Fatalf("key set is %d bytes (buffer %d), manifest says %d", n, keys.Len(), man.KeySetBytes)
			}
			if _, err := m.CheckKeySet(bytes.NewReader(keys.Bytes())); err != nil {
				t.Fatal(err)
			}
			ks, err := m.ReadKeySet(bytes.NewReader(keys.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			for trial := 0; trial < 3; trial++ {
				x := randVec(r, g.InputSize(), 1)
				want, err := g.Reference(x)
				if err != nil {
					t.Fatal(err)
				}
				ct, err := dev.Encrypt(sk, x)
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(ct)) != man.CiphertextBytes {
					t.Fatalf("ciphertext %d bytes, manifest %d", len(ct), man.CiphertextBytes)
				}
				if err := m.CheckCiphertext(ct); err != nil {
					t.Fatal(err)
				}
				res, _, err := m.Evaluate(context.Background(), ks, ct)
				if err != nil {
					t.Fatal(err)
				}
				got, err := dev.Decrypt(sk, res)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if math.Abs(got[i]-want[i]) > 1e-3 {
						t.Fatalf("output %d: encrypted %v, reference %v", i, got[i], want[i])
					}
				}
			}
		})
	}
}

package he

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hegate/hegate"
)

// TestLoweringMatchesReference checks the compiler's rewriting (im2col,
// activation folding, fusion) in plain float64: the lowered steps must
// compute what the graph computes, before any encryption is involved.
func TestLoweringMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, g := range []*Graph{tinyDense(r), tinyCNN(r), cryptoNetsShape(r)} {
		t.Run("ok/"+g.Name, func(t *testing.T) {
			m, err := Compile(g, CompileOptions{Params: "test-n12", AllowInsecure: true})
			if err != nil && strings.Contains(hegate.DetailOf(err), "slots") {
				m, err = Compile(g, CompileOptions{})
			}
			if err != nil {
				t.Fatal(err)
			}
			for trial := 0; trial < 5; trial++ {
				x := randVec(r, g.InputSize(), 1)
				want, _ := g.Reference(x)
				v, _ := m.Device().PackInput(x)
				for _, o := range m.c.ops {
					v = o.apply(v)
				}
				for i := range want {
					if math.Abs(v[i]-want[i]) > 1e-9*math.Max(1, math.Abs(want[i])) {
						t.Fatalf("output %d: lowered %v, reference %v", i, v[i], want[i])
					}
				}
			}
		})
	}
}

func TestCalibrate(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	g := tinyDense(r)
	m, err := Compile(g, CompileOptions{Params: "test-n12", AllowInsecure: true})
	if err != nil {
		t.Fatal(err)
	}
	samples := func(scale float64) [][]float64 {
		var s [][]float64
		for i := 0; i < 20; i++ {
			s = append(s, randVec(r, g.InputSize(), scale))
		}
		return s
	}
	t.Run("ok/unit-inputs", func(t *testing.T) {
		cal, err := m.Calibrate(samples(1))
		if err != nil {
			t.Fatal(err)
		}
		if len(cal.Steps) != 3 || cal.Samples != 20 || cal.Steps[2].Level != 0 || cal.Steps[2].MaxAbs == 0 {
			t.Fatalf("calibration %s", cal)
		}
		t.Log(cal)
	})
	t.Run("fail/huge-inputs", func(t *testing.T) {
		// Squared activations of inputs of size 1e3 exceed what level 0
		// of the test preset (55-bit q0, 40-bit scale) holds.
		_, err := m.Calibrate(samples(1e3))
		if !hegate.Is(err, hegate.KindInvalid) || !strings.Contains(hegate.DetailOf(err), "too close") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("fail/wrong-size", func(t *testing.T) {
		_, err := m.Calibrate([][]float64{{1, 2}})
		if !hegate.Is(err, hegate.KindInvalid) {
			t.Fatalf("got %v", err)
		}
	})
}

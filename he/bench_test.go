package he_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/modelzoo"
)

// BenchmarkMNIST times one encrypted MNIST inference (evaluation only, the
// server's share) with the shipped model at the default preset, and reports
// the circuit's primitive counts and, measured in the same run, the ratio
// to the same primitives executed alone in raw Lattigo.
//
//	go test ./he -run '^$' -bench MNIST -benchtime 5x
func BenchmarkMNIST(b *testing.B) {
	g, err := modelzoo.MNIST()
	if err != nil {
		b.Fatal(err)
	}
	m, err := he.Compile(g, he.CompileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	sk, _ := m.GenerateSecretKey()
	var keys bytes.Buffer
	if _, err := m.WriteKeySet(&keys, sk); err != nil {
		b.Fatal(err)
	}
	ks, err := m.ReadKeySet(&keys)
	if err != nil {
		b.Fatal(err)
	}
	x := firstTestImage(b)
	ct, err := m.Encrypt(sk, x)
	if err != nil {
		b.Fatal(err)
	}
	man := m.Manifest()
	b.ResetTimer()
	fastest := time.Duration(1<<63 - 1)
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, _, err := m.Evaluate(context.Background(), ks, ct); err != nil {
			b.Fatal(err)
		}
		fastest = min(fastest, time.Since(t0))
	}
	b.StopTimer()
	c := man.Cost
	b.ReportMetric(float64(c.Rotations), "rotations/op")
	b.ReportMetric(float64(c.PlainMults), "ptmults/op")
	b.ReportMetric(float64(c.CipherMults), "ctmults/op")
	b.ReportMetric(float64(c.Rescales), "rescales/op")
	byLevel := map[int]he.Primitives{}
	for _, st := range man.Steps {
		if _, ok := byLevel[st.Level]; !ok {
			if byLevel[st.Level], err = he.MeasurePrimitives(man.Params.Preset, false, st.Level, 5); err != nil {
				b.Fatal(err)
			}
		}
	}
	raw := he.PredictSteps(man.Steps, byLevel)
	b.ReportMetric(float64(fastest)/float64(raw), "x-raw-lattigo")
	prim := byLevel[man.Levels]
	b.Logf("%s: fastest of %d inferences %v; raw Lattigo at level %d: rotation %v, pt-mult %v, mul+relin %v, rescale %v; same primitives alone at each step's level: %v",
		man.Name, b.N, fastest, prim.Level, prim.Rotation, prim.PlainMult, prim.MulRelin, prim.Rescale, raw)
}

var (
	mnistOnce sync.Once
	mnistSet  *mnist.Set
	mnistErr  error
)

func testSet(tb testing.TB) *mnist.Set {
	tb.Helper()
	mnistOnce.Do(func() {
		mnistSet, mnistErr = mnist.LoadDefault(mnist.Test)
	})
	if mnistErr != nil {
		tb.Fatal(mnistErr)
	}
	return mnistSet
}

func firstTestImage(tb testing.TB) []float64 { return testSet(tb).Images[0] }

package modelzoo

import (
	"bytes"
	"context"
	"flag"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/internal/mnist/mnisteval"
)

var (
	resnetImages = flag.Int("resnet-images", 3, "MNIST test images TestResNetEncrypted evaluates under encryption (200 for the acceptance run)")
	resnetSplit  = flag.Int("resnet-split-images", 3, "MNIST test images TestResNetSplit evaluates under encryption (50 for the acceptance run)")
)

// encryptedRun evaluates the first n test images under encryption with m
// (whose device side runs head first, when split) and reports agreement of
// the top-1 with the plaintext reference, latency, key bytes and peak RSS.
func encryptedRun(t *testing.T, g *ir.Graph, m *he.Model, n int) {
	t.Helper()
	set := loadSet(t, mnist.Test)
	dev := m.Device()
	sk, err := dev.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	var keys bytes.Buffer
	t0 := time.Now()
	if _, err := dev.WriteKeySet(&keys, sk); err != nil {
		t.Fatal(err)
	}
	keygen := time.Since(t0)
	keyBytes := keys.Len()
	ks, err := m.ReadKeySet(&keys)
	if err != nil {
		t.Fatal(err)
	}
	keys = bytes.Buffer{}
	man := m.Manifest()
	agree, correct := 0, 0
	var total, evalTotal time.Duration
	worst := 0.0
	for i := 0; i < n; i++ {
		x := mnisteval.Input(g, set.Images[i])
		want, err := g.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		approx, err := m.Approximate(x)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		in := x
		if h := m.Head(); h != nil {
			if in, err = h.Run(x); err != nil {
				t.Fatal(err)
			}
		}
		ct, err := dev.Encrypt(sk, in)
		if err != nil {
			t.Fatal(err)
		}
		e0 := time.Now()
		res, _, err := m.Evaluate(context.Background(), ks, ct, he.Release{Sigma: 1e-4})
		if err != nil {
			t.Fatal(err)
		}
		evalTotal += time.Since(e0)
		got, err := dev.Decrypt(sk, res)
		if err != nil {
			t.Fatal(err)
		}
		total += time.Since(start)
		for k := range approx {
			worst = math.Max(worst, math.Abs(got[k]-approx[k]))
		}
		if ir.ArgMax(got) == ir.ArgMax(want) {
			agree++
		}
		if ir.ArgMax(got) == set.Labels[i] {
			correct++
		}
	}
	t.Logf("%s (%s, %d levels, %d slots): %d/%d encrypted top-1 agree with the plaintext reference, %d/%d correct; "+
		"per image %v (evaluation %v) on %d cores; key set %.1f MB (%d Galois keys, keygen %v); %.2f MB up, %.2f MB down; "+
		"largest |encrypted − compiled float64| %.2g; peak RSS %s",
		man.Name, man.Params.Preset, man.Levels, 1<<man.LogSlots, agree, n, correct, n,
		(total / time.Duration(n)).Round(time.Millisecond), (evalTotal / time.Duration(n)).Round(time.Millisecond), runtime.GOMAXPROCS(0),
		float64(keyBytes)/1e6, len(man.GaloisElements), keygen.Round(time.Millisecond),
		float64(man.CiphertextBytes)/1e6, float64(man.ResultBytes)/1e6, worst, peakRSS())
	if agree*100 < 99*n {
		t.Fatalf("only %d/%d encrypted top-1 agree with the plaintext reference", agree, n)
	}
	if worst > 1e-2 {
		t.Fatalf("encrypted logits differ from the compiled circuit by %g", worst)
	}
}

// TestResNetEncrypted runs the ResNet-style model under encryption (n15
// leveled, 128-bit). The acceptance run evaluates 200 images:
//
//	go test ./modelzoo -run TestResNetEncrypted -resnet-images 200 -v -timeout 60m
func TestResNetEncrypted(t *testing.T) {
	if testing.Short() {
		t.Skip("encrypted inference")
	}
	g, err := ResNet()
	if err != nil {
		t.Fatal(err)
	}
	m, err := he.Compile(context.Background(), g, he.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	encryptedRun(t, g, m, *resnetImages)
}

// TestResNetSplit runs the ResNet-style model split after its first block:
// the device computes the stem and block 1 in the clear, the gateway the
// rest under encryption. The acceptance run evaluates 50 images:
//
//	go test ./modelzoo -run TestResNetSplit -resnet-split-images 50 -v
func TestResNetSplit(t *testing.T) {
	if testing.Short() {
		t.Skip("encrypted inference")
	}
	g, err := ResNet()
	if err != nil {
		t.Fatal(err)
	}
	m, err := he.Compile(context.Background(), g, he.CompileOptions{SplitAfter: ResNetSplitAfter})
	if err != nil {
		t.Fatal(err)
	}
	encryptedRun(t, g, m, *resnetSplit)
}

// peakRSS is the process's peak resident set (Linux), for reports.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				if kb, err := strconv.Atoi(f[1]); err == nil {
					return strconv.FormatFloat(float64(kb)/1e6, 'f', 2, 64) + " GB"
				}
			}
		}
	}
	return "unknown"
}

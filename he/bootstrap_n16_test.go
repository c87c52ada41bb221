//go:build boot16

package he

import (
	"bufio"
	"context"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var boot16Trials = flag.Int("boot16-trials", 2, "encrypted evaluations TestBootstrappedN16 runs")

// TestBootstrappedN16 is the slow half of criterion 1 of issue 6: the same
// 33-level network as TestBootstrappedMatchesReference, deeper than every
// leveled preset, compiled on the 128-bit n16-boot profile (logN 16), with
// the bootstraps the compiler placed; the device makes the whole key set
// (streamed to a file, never held whole), the server reads it, evaluates,
// and the decrypted result is checked against the graph's reference
// executor. It needs the machine alone (several GB) and is not in the
// default run:
//
//	go test -tags boot16 ./he -run TestBootstrappedN16 -v -timeout 60m
func TestBootstrappedN16(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	g := deepNet(r, 16)
	start := time.Now()
	m, err := Compile(context.Background(), g, CompileOptions{Params: "n16-boot"})
	if err != nil {
		t.Fatal(err)
	}
	man := m.Manifest()
	if man.Params.SecurityBits != 128 || man.Params.LogN != 16 {
		t.Fatalf("params %+v", man.Params)
	}
	t.Logf("compiled in %v: %d bootstraps, input at level %d of %d, key set %d bytes (bootstrapping %d: %d Galois keys), placement cost %.1f (exact %v), RSS %s",
		time.Since(start), man.Cost.Bootstraps, man.Levels, man.Params.MaxLevel, man.KeySetBytes, man.BootstrapKeys.Bytes, len(man.BootstrapKeys.GaloisElements), m.c.placementCost, m.c.placementExact, rss())
	t.Logf("placement:%s", m.BootstrapReport())
	if man.Cost.Bootstraps < 3 {
		t.Fatalf("%d bootstraps for 33 levels on 9", man.Cost.Bootstraps)
	}
	dev, err := NewDevice(man, false)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := dev.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	bw := bufio.NewWriterSize(f, 1<<20)
	n, err := dev.WriteKeySet(bw, sk)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("key generation %v, %d bytes (manifest %d), RSS %s", time.Since(start), n, man.KeySetBytes, rss())
	if n != man.KeySetBytes {
		t.Fatalf("key set %d bytes, manifest says %d", n, man.KeySetBytes)
	}
	start = time.Now()
	f, err = os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := m.ReadKeySet(bufio.NewReaderSize(f, 1<<20))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("key set read and checked in %v, RSS %s", time.Since(start), rss())
	worst := 0.0
	for trial := 0; trial < *boot16Trials; trial++ {
		x := randVec(r, g.InputSize(), 1)
		ct, err := dev.Encrypt(sk, x)
		if err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		res, st, err := m.Evaluate(context.Background(), ks, ct, testRelease)
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		got, err := dev.Decrypt(sk, res)
		if err != nil {
			t.Fatal(err)
		}
		want, err := g.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		w := 0.0
		for i := range want {
			w = math.Max(w, math.Abs(got[i]-want[i]))
		}
		worst = math.Max(worst, w)
		t.Logf("evaluation %d: %v (%d bootstraps, %.1f s each at most), largest error %.3g, RSS %s", trial, took, st.Cost.Bootstraps, took.Seconds()/float64(st.Cost.Bootstraps), w, rss())
	}
	t.Logf("largest |encrypted − reference| %.3g (tolerance 1e-3); peak RSS %s", worst, peakRSS())
	if worst > 1e-3 {
		t.Fatalf("encrypted result differs from the reference by %g", worst)
	}
}

func rss() string     { return procStatus("VmRSS") }
func peakRSS() string { return procStatus("VmHWM") }

func procStatus(field string) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return strings.TrimSpace(v)
			}
			return strconv.FormatFloat(float64(kb)/(1<<20), 'f', 2, 64) + " GB"
		}
	}
	return "?"
}

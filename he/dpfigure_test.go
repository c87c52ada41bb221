//go:build dpfigure

package he

// The accuracy-privacy figure of docs/privacy.md: the MNIST model's
// accuracy on test images through the encrypted path, against the
// per-query epsilon of its release. Each image is encrypted and evaluated
// once; the raw result is then released (re-randomised and noised, exactly
// as Evaluate does) once per epsilon, decrypted and classified. Releasing
// one evaluation at several noise levels is the same, in distribution, as
// evaluating once per level: the evaluation error is far below the noise.
//
//	go test -tags dpfigure -run TestDPFigure -timeout 3h ./he/ -args -images 1000 -out ../docs/img/dp-accuracy.csv
//	go run ./tools/plot-dp -in docs/img/dp-accuracy.csv -out docs/img/dp-accuracy.png

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"

	"github.com/hegate/hegate/dp"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/internal/mnist/mnisteval"
	"github.com/hegate/hegate/modelzoo"
)

var (
	figImages = flag.Int("images", 1000, "MNIST test images")
	figOut    = flag.String("out", "", "CSV file to write")
)

// figEpsilons are the per-query epsilons measured (delta 1e-5).
var figEpsilons = []float64{0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}

func TestDPFigure(t *testing.T) {
	const delta = 1e-5
	g, err := modelzoo.MNIST()
	if err != nil {
		t.Fatal(err)
	}
	train, err := mnist.LoadDefault(mnist.Train)
	if err != nil {
		t.Fatal(err)
	}
	var cal [][]float64
	for i := 0; i < 512; i++ {
		cal = append(cal, mnisteval.Input(g, train.Images[i]))
	}
	m, err := Compile(context.Background(), g, CompileOptions{Calibration: cal})
	if err != nil {
		t.Fatal(err)
	}
	mech := m.Privacy()
	if mech == nil {
		t.Fatalf("no mechanism: %s", m.Manifest().PrivacyNote)
	}
	sigmas := make([]float64, len(figEpsilons))
	for i, eps := range figEpsilons {
		rho, err := dp.RhoForBudget(eps, delta)
		if err != nil {
			t.Fatal(err)
		}
		if sigmas[i], err = dp.SigmaForRho(mech.Sensitivity, rho); err != nil {
			t.Fatal(err)
		}
		if sigmas[i] > mech.MaxSigma {
			t.Fatalf("epsilon %v needs sigma %v, above the %v the parameters hold", eps, sigmas[i], mech.MaxSigma)
		}
	}
	k := withKeys(t, m)
	test, err := mnist.LoadDefault(mnist.Test)
	if err != nil {
		t.Fatal(err)
	}
	n := min(*figImages, test.Len())
	correct := make([]int, len(figEpsilons))
	plain, raw := 0, 0
	p := m.c.params.ckks
	dec := rlwe.NewDecryptor(p, k.sk.sk.sk)
	enc := ckks.NewEncoder(p)
	decode := func(ct *rlwe.Ciphertext) []float64 {
		all := make([]float64, m.c.n)
		if err := enc.Decode(dec.DecryptNew(ct), all); err != nil {
			t.Fatal(err)
		}
		return averageReplicas(all, m.c.outputSize, m.c.outputPeriod)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		x, label := mnisteval.Input(g, test.Images[i]), test.Labels[i]
		want, err := g.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		if argmax(want) == label {
			plain++
		}
		out, _ := rawResult(t, k, x)
		if argmax(decode(out)) == label {
			raw++
		}
		for j, sigma := range sigmas {
			ct := out.CopyNew()
			if err := m.c.release(ct, k.ks.k.pk, Release{Sigma: sigma}); err != nil {
				t.Fatal(err)
			}
			if argmax(decode(ct)) == label {
				correct[j]++
			}
		}
		if (i+1)%100 == 0 {
			t.Logf("%d/%d images, %s", i+1, n, time.Since(start).Round(time.Second))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# MNIST CryptoNets (%s), %d test images from 0, through the encrypted path; sensitivity %.6g, delta %g\n", m.Manifest().Params.Preset, n, mech.Sensitivity, delta)
	fmt.Fprintf(&b, "# plaintext accuracy %.4f, encrypted without noise %.4f\n", float64(plain)/float64(n), float64(raw)/float64(n))
	fmt.Fprintln(&b, "epsilon,rho,sigma,accuracy")
	for j, eps := range figEpsilons {
		rho, _ := dp.RhoForBudget(eps, delta)
		fmt.Fprintf(&b, "%g,%.6g,%.6g,%.4f\n", eps, rho, sigmas[j], float64(correct[j])/float64(n))
	}
	t.Log("\n" + b.String())
	if *figOut != "" {
		if err := os.WriteFile(*figOut, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if math.Abs(float64(raw-plain)) > float64(n)/100 {
		t.Fatalf("encrypted accuracy without noise %d/%d, plaintext %d/%d", raw, n, plain, n)
	}
}

func argmax(v []float64) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/internal/mnist/mnisteval"
)

func newBenchCmd() *cobra.Command {
	var cfg backendConfig
	var model string
	var runs, par int
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "measure encrypted inference against raw Lattigo primitives",
		Long:  "Measure one model's encrypted inference on this machine and, in the same\nrun, the raw Lattigo primitives it is made of.",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), cfg, model, runs, par, cmd.OutOrStdout())
		},
	}
	cfg.register(cmd.Flags())
	cmd.Flags().StringVar(&model, "model", "mnist-cryptonets", "model to measure")
	cmd.Flags().IntVar(&runs, "runs", 5, "encrypted inferences to time")
	cmd.Flags().IntVar(&par, "parallelism", 0, "goroutines per evaluation (0: GOMAXPROCS)")
	return cmd
}

// runBench measures one model's encrypted inference on this machine and,
// in the same run, the raw Lattigo primitives it is made of.
func runBench(ctx context.Context, cfg backendConfig, modelName string, runs, par int, stdout io.Writer) error {
	if runs < 1 {
		return errors.New("--runs must be at least 1")
	}
	graphs, err := cfg.loadGraphs()
	if err != nil {
		return err
	}
	var graph *ir.Graph
	for _, g := range graphs {
		if g.Name == modelName {
			graph = g
		}
	}
	if graph == nil {
		return fmt.Errorf("no model named %q", modelName)
	}
	t0 := time.Now()
	cal, err := calibrationFor(graph)
	if err != nil {
		return err
	}
	m, err := he.Compile(ctx, graph, he.CompileOptions{Parallelism: par, Calibration: cal})
	if err != nil {
		return err
	}
	compileTime := time.Since(t0)
	man := m.Manifest()
	sk, err := m.GenerateSecretKey()
	if err != nil {
		return err
	}
	var keys bytes.Buffer
	t0 = time.Now()
	if _, err := m.WriteKeySet(&keys, sk); err != nil {
		return err
	}
	keygenTime := time.Since(t0)
	t0 = time.Now()
	ks, err := m.ReadKeySet(bytes.NewReader(keys.Bytes()))
	if err != nil {
		return err
	}
	loadTime := time.Since(t0)
	keys = bytes.Buffer{}

	x := make([]float64, graph.InputSize())
	if set, err := mnist.LoadDefault(mnist.Test); err == nil && len(set.Images[0]) == len(x) {
		x = mnisteval.Input(graph, set.Images[0])
	}
	var lat, rels []time.Duration
	var stats he.Stats
	for i := 0; i < runs; i++ {
		ct, err := m.Encrypt(sk, x)
		if err != nil {
			return err
		}
		var res []byte
		res, stats, err = m.Evaluate(ctx, ks, ct, he.Release{Sigma: releaseSigma(m)})
		if err != nil {
			return err
		}
		if _, err := m.Decrypt(sk, res); err != nil {
			return err
		}
		lat = append(lat, stats.Duration)
		rels = append(rels, stats.Release)
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	med := lat[len(lat)/2]

	byLevel := map[int]he.Primitives{}
	for _, st := range man.Steps {
		if _, ok := byLevel[st.Level]; ok {
			continue
		}
		prim, err := he.MeasurePrimitives(man.Params.Preset, false, st.Level, 9)
		if err != nil {
			return err
		}
		byLevel[st.Level] = prim
	}
	pred := he.PredictSteps(man.Steps, byLevel)
	prim := byLevel[man.Levels]
	c := man.Cost
	fmt.Fprintf(stdout, "model        %s, preset %s (logN %d), %d levels\n", man.Name, man.Params.Preset, man.Params.LogN, man.Levels)
	fmt.Fprintf(stdout, "compile      %s   keygen %s (%.1f MB, %d Galois keys)   key load %s\n",
		compileTime.Round(time.Millisecond), keygenTime.Round(time.Millisecond), float64(man.KeySetBytes)/1e6, len(man.GaloisElements), loadTime.Round(time.Millisecond))
	fmt.Fprintf(stdout, "circuit      %d rotations, %d plaintext mults, %d ciphertext mults, %d relins, %d rescales\n",
		c.Rotations, c.PlainMults, c.CipherMults, c.Relins, c.Rescales)
	fmt.Fprintf(stdout, "evaluate     median %s over %d runs (min %s, max %s)\n", med.Round(time.Millisecond), len(lat), lat[0].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	sort.Slice(rels, func(a, b int) bool { return rels[a] < rels[b] })
	fmt.Fprintf(stdout, "  release    median %s of it: re-randomisation and %d exact discrete Gaussian draws (sigma %.4g)\n", rels[len(rels)/2].Round(time.Millisecond), 1<<man.Params.LogN, releaseSigma(m))
	for _, st := range man.Steps {
		fmt.Fprintf(stdout, "  step       %-6s level %d %-8s %3d diagonals  %+v\n", st.Kind, st.Level, st.Method, st.Diagonals, st.Cost)
	}
	fmt.Fprintf(stdout, "raw Lattigo  at level %d: rotation %s, plaintext mult %s, mul+relin %s, rescale %s\n",
		prim.Level, prim.Rotation.Round(time.Microsecond), prim.PlainMult.Round(time.Microsecond), prim.MulRelin.Round(time.Microsecond), prim.Rescale.Round(time.Microsecond))
	fmt.Fprintf(stdout, "ratio        %.2f× (fastest evaluation / the same primitives run alone in raw Lattigo at each step's level, fastest of 9: %s); below 1: hoisting and parallel parts beat one-by-one primitives\n",
		float64(lat[0])/float64(pred), pred.Round(time.Millisecond))
	return nil
}

// releaseSigma is the noise bench releases with: the model's default.
func releaseSigma(m *he.Model) float64 {
	if mech := m.Privacy(); mech != nil {
		return mech.Sigma
	}
	return 1e-3
}

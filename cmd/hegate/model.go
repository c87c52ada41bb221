package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/internal/mnist/mnisteval"
)

func runModel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("model", stderr)
	var cfg backendConfig
	cfg.register(fs)
	preset := fs.String("preset", "", "parameter preset to compile for ("+strings.Join(he.Presets(), ", ")+"); default: the smallest 128-bit preset the model fits")
	calibrate := fs.Int("calibrate", 0, "also check value ranges on this many MNIST test images (models with a 1×28×28 input)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hegate model [flags] list | inspect NAME|FILE.json")
		fs.PrintDefaults()
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		fs.Usage()
		return errors.New("model: missing subcommand")
	}
	graphs, err := cfg.loadGraphs()
	if err != nil {
		return err
	}
	switch {
	case rest[0] == "list" && len(rest) == 1:
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tINPUT\tOUTPUTS\tNODES")
		for _, g := range graphs {
			fmt.Fprintf(tw, "%s\t%v\t%d\t%d\n", g.Name, g.Input.Shape, ir.Prod(g.OutputShape()), len(g.Nodes))
		}
		return tw.Flush()
	case rest[0] == "inspect" && len(rest) == 2:
		var g *ir.Graph
		if _, err := os.Stat(rest[1]); err == nil && strings.HasSuffix(rest[1], ".json") {
			if g, err = readGraphFile(rest[1]); err != nil {
				return err
			}
		}
		for _, cand := range graphs {
			if g == nil && cand.Name == rest[1] {
				g = cand
			}
		}
		if g == nil {
			return fmt.Errorf("model %q: no such model or file", rest[1])
		}
		cal, err := calibrationFor(g)
		if err != nil {
			return err
		}
		m, err := he.Compile(ctx, g, he.CompileOptions{Params: *preset, Calibration: cal})
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if *calibrate <= 0 {
			return enc.Encode(m.Manifest())
		}
		samples, err := mnistSamples(*calibrate, g)
		if err != nil {
			return err
		}
		report, calErr := m.Calibrate(samples)
		if err := enc.Encode(struct {
			Manifest    he.Manifest    `json:"manifest"`
			Calibration he.Calibration `json:"calibration"`
		}{m.Manifest(), report}); err != nil {
			return err
		}
		return calErr
	}
	fs.Usage()
	return fmt.Errorf("model: unknown subcommand %q", rest)
}

// mnistSamples returns the first n MNIST test images as inputs of g.
func mnistSamples(n int, g *ir.Graph) ([][]float64, error) {
	if g.InputSize() != mnist.Pixels {
		return nil, fmt.Errorf("--calibrate uses MNIST images, but the model takes %d values, not %d", g.InputSize(), mnist.Pixels)
	}
	set, err := mnist.LoadDefault(mnist.Test)
	if err != nil {
		return nil, err
	}
	var out [][]float64
	for _, img := range set.Images[:min(n, set.Len())] {
		out = append(out, mnisteval.Input(g, img))
	}
	return out, nil
}

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
)

func runModel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("model", stderr)
	var cfg backendConfig
	cfg.register(fs)
	preset := fs.String("preset", he.DefaultPreset, "parameter preset to compile for ("+strings.Join(he.Presets(), ", ")+")")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hegate model [flags] list | inspect NAME|FILE.json")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
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
		fmt.Fprintln(tw, "NAME\tINPUT\tOUTPUTS\tLAYERS")
		for _, g := range graphs {
			fmt.Fprintf(tw, "%s\t%v\t%d\t%d\n", g.Name, g.Input, g.OutputSize(), len(g.Layers))
		}
		return tw.Flush()
	case rest[0] == "inspect" && len(rest) == 2:
		var g *he.Graph
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
		m, err := he.Compile(g, he.CompileOptions{Params: *preset})
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(m.Manifest())
	}
	fs.Usage()
	return fmt.Errorf("model: unknown subcommand %q", rest)
}

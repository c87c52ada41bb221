package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"
)

// TestHelpPrintsNoSecret asks every command for its help with an API key
// in the environment: no help text may print it (flag defaults are shown
// by -h, so a secret must never be one).
func TestHelpPrintsNoSecret(t *testing.T) {
	const secret = "hgk_THISISASECRETTHATMUSTNOTBEPRINTED0000000"
	t.Setenv("HEGATE_API_KEY", secret)
	t.Setenv("HEGATE_DATABASE_URL", "")
	for _, c := range commands() {
		for _, args := range [][]string{{c.name, "-h"}, {c.name, "list", "-h"}, {c.name, "upload", "-h"}, {c.name, "status", "-h"}, {c.name, "inspect", "-h"}} {
			var out, errb bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // nothing may run: only help is wanted
			_ = run(ctx, args, &out, &errb)
			if strings.Contains(out.String()+errb.String(), secret) {
				t.Errorf("hegate %s printed the API key", strings.Join(args, " "))
			}
		}
	}
}

// TestHelpExitsZero: -h and --help print the command's help on standard
// output and succeed (main exits 0 for flag.ErrHelp); version prints one.
func TestHelpExitsZero(t *testing.T) {
	for _, c := range commands() {
		for _, h := range []string{"-h", "--help"} {
			var out, errb bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err := run(ctx, []string{c.name, h}, &out, &errb)
			if err != nil && !errors.Is(err, flag.ErrHelp) {
				t.Errorf("hegate %s %s: %v", c.name, h, err)
			}
			if out.Len() == 0 || errb.Len() != 0 {
				t.Errorf("hegate %s %s: %d bytes on stdout, %d on stderr; want the help on stdout", c.name, h, out.Len(), errb.Len())
			}
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version", "--json"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	var v struct{ Version, Go string }
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Version == "" || v.Go == "" {
		t.Fatalf("version --json: %v %q", err, out.String())
	}
}

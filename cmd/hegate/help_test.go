package main

import (
	"bytes"
	"context"
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

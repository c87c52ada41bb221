package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDemo runs the embedded demo on 100 MNIST test images: an in-process
// gateway with SQLite and River, a simulated device that streams its key set,
// encrypts, infers with Prefer: wait, and decrypts. runDemo fails if any
// decrypted logit is more than 0.01 from the plaintext reference executor or
// the argmax differs; the test also reads the accuracy it prints.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("encrypted inference on 100 images")
	}
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"demo", "--images", "100"}, &out, &errb)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, errb.String())
	}
	m := regexp.MustCompile(`accuracy  (\d+)/(\d+) correct`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatal("demo printed no accuracy line")
	}
	correct, _ := strconv.Atoi(m[1])
	if total, _ := strconv.Atoi(m[2]); total != 100 || correct < 95 {
		t.Fatalf("%d/%d correct; the model reaches about 99%% in plaintext", correct, total)
	}
	if !strings.Contains(out.String(), "max |encrypted - plaintext| logit difference") {
		t.Fatal("demo printed no reference comparison")
	}
}

func TestCLIErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"fail/unknown-command", []string{"frobnicate"}, "unknown command"},
		{"fail/demo-images", []string{"demo", "--images", "0"}, "--images must be at least 1"},
		{"fail/infer-no-key", []string{"infer", "--api-key", ""}, "--api-key"},
		{"fail/worker-none", []string{"worker", "--workers", "0"}, "--workers must be at least 1"},
		{"fail/log-level", []string{"migrate", "--log-level", "loud", "--data-dir", t.TempDir()}, "--log-level"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HEGATE_API_KEY", "")
			var out, errb bytes.Buffer
			err := run(context.Background(), tc.args, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestTenantCommands(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"tenant", "--data-dir", dir, "create", "acme"}, &out, &errb); err != nil {
		t.Fatal(err, errb.String())
	}
	if !regexp.MustCompile(`api key hgk_\S+`).MatchString(out.String()) {
		t.Fatalf("no API key printed: %q", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"tenant", "--data-dir", dir, "list"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "acme") {
		t.Fatalf("tenant list: %q", out.String())
	}
	if err := run(context.Background(), []string{"tenant", "--data-dir", dir, "create", "acme"}, &out, &errb); err == nil {
		t.Fatal("creating a tenant twice succeeded")
	}
	out.Reset()
	if err := run(context.Background(), []string{"tenant", "keys", "acme", "--data-dir", dir}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^(key_\S+)\s+hgk_`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("tenant keys: %q", out.String())
	}
	if err := run(context.Background(), []string{"tenant", "revoke", "acme", m[1], "--data-dir", dir}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"tenant", "keys", "acme", "--data-dir", dir}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^` + m[1] + `\s.*\d{2}:\d{2}:\d{2}Z\s*$`).MatchString(out.String()) {
		t.Fatalf("the key is not shown revoked (a time in the last column): %q", out.String())
	}
	if err := run(context.Background(), []string{"tenant", "revoke", "acme", "key_nope", "--data-dir", dir}, &out, &errb); err == nil {
		t.Fatal("revoking an unknown key succeeded")
	}
}

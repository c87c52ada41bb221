package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// runOut runs hegate and returns its standard output, failing the test on
// an error.
func runOut(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(t.Context(), args, &out, &errb); err != nil {
		t.Fatalf("hegate %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// jsonOf runs hegate and parses its standard output as JSON into v.
func jsonOf(t *testing.T, v any, args ...string) {
	t.Helper()
	out := runOut(t, args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("hegate %s: not JSON (%v):\n%s", strings.Join(args, " "), err, out)
	}
}

// TestOutputJSON: every list and show command prints JSON that parses
// with -o json (and --json where it had that flag), and a table without.
func TestOutputJSON(t *testing.T) {
	t.Setenv("HEGATE_API_KEY", "")
	t.Setenv("HEGATE_DATABASE_URL", "")
	t.Setenv("HEGATE_SERVER", "")

	// The operator's commands, on a SQLite data directory.
	data := t.TempDir()
	db := []string{"--data-dir", data}
	runOut(t, append([]string{"tenant", "create", "acme"}, db...)...)
	runOut(t, append([]string{"budget", "set", "--tenant", "acme", "--model", "mnist-cryptonets", "--epsilon", "4", "--reason", "test"}, db...)...)
	runOut(t, append([]string{"budget", "global", "--model", "mnist-cryptonets", "--epsilon", "40", "--reason", "test"}, db...)...)
	runOut(t, append([]string{"credential", "rotate"}, db...)...)
	var tenants []struct{ ID, Name string }
	jsonOf(t, &tenants, append([]string{"tenant", "list", "-o", "json"}, db...)...)
	if len(tenants) != 1 || tenants[0].Name != "acme" || !strings.HasPrefix(tenants[0].ID, "ten_") {
		t.Fatalf("tenant list: %+v", tenants)
	}
	var keys []map[string]any
	jsonOf(t, &keys, append([]string{"tenant", "keys", "acme", "--output", "json"}, db...)...)
	if len(keys) != 1 || keys[0]["role"] != "admin" || keys[0]["prefix"] == "" {
		t.Fatalf("tenant keys: %+v", keys)
	}
	for _, args := range [][]string{
		{"budget", "show", "--tenant", "acme", "-o", "json"},
		{"budget", "show", "--tenant", "acme", "--json"},
		{"budget", "ledger", "--tenant", "acme", "-o", "json"},
		{"budget", "global", "--model", "mnist-cryptonets", "--show", "-o", "json"},
	} {
		var v []map[string]any
		jsonOf(t, &v, append(args, db...)...)
		if len(v) == 0 || v[0]["Model"] != "mnist-cryptonets" {
			t.Fatalf("%v: %+v", args, v)
		}
	}
	var signing []map[string]any
	jsonOf(t, &signing, append([]string{"credential", "keys", "-o", "json"}, db...)...)
	if len(signing) != 1 || signing[0]["state"] != "signing" || signing[0]["kid"] == "" {
		t.Fatalf("credential keys: %+v", signing)
	}
	for _, k := range signing {
		for f := range k {
			if strings.Contains(strings.ToLower(f), "private") {
				t.Fatalf("credential keys prints %s", f)
			}
		}
	}
	var models []struct {
		Name  string
		Input []int
	}
	jsonOf(t, &models, "model", "list", "-o", "json")
	if len(models) < 2 || models[0].Name == "" || len(models[0].Input) == 0 {
		t.Fatalf("model list: %+v", models)
	}
	var man struct {
		Name   string
		Levels int
	}
	jsonOf(t, &man, "model", "inspect", "mnist-cryptonets", "-o", "json")
	if man.Name != "mnist-cryptonets" || man.Levels == 0 {
		t.Fatalf("model inspect: %+v", man)
	}
	for _, args := range [][]string{{"tenant", "list"}, {"tenant", "keys", "acme"}, {"budget", "show", "--tenant", "acme"}, {"credential", "keys"}} {
		if out := runOut(t, append(args, db...)...); !regexp.MustCompile(`^[A-Z]+\s`).MatchString(out) {
			t.Errorf("%v: no table: %q", args, out)
		}
	}

	// Device and tenant commands, through the API of a gateway.
	url, key := cliGateway(t)
	api := []string{"--server", url, "--api-key", key}
	dir := t.TempDir()
	out := runOut(t, append([]string{"enroll", "--identity", dir, "--endorse"}, api...)...)
	id := regexp.MustCompile(`device (dev_\w+) enrolled`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("enroll: %s", out)
	}
	checks := []struct {
		args []string
		ok   func(v any) bool
	}{
		{[]string{"keys", "list"}, func(v any) bool { l, ok := v.([]any); return ok && len(l) == 0 }},
		{[]string{"devices", "list"}, func(v any) bool { l, ok := v.([]any); return ok && len(l) == 1 }},
		{[]string{"devices", "show", id[1]}, func(v any) bool { m, ok := v.(map[string]any); return ok && m["id"] == id[1] }},
		{[]string{"attest", "show"}, func(v any) bool { l, ok := v.([]any); return ok && len(l) == 2 }},
		{[]string{"attest", "show", "--format", "tpm"}, func(v any) bool { l, ok := v.([]any); return ok && len(l) == 0 }},
		{[]string{"policy", "show"}, func(v any) bool { m, ok := v.(map[string]any); return ok && m["formats"] != nil }},
		{[]string{"policy", "show", "mnist-cryptonets"}, func(v any) bool { _, ok := v.(map[string]any); return ok }},
		{[]string{"budget", "status"}, func(v any) bool { m, ok := v.(map[string]any); return ok && m["budgets"] != nil }},
		{[]string{"model", "versions", "mnist-cryptonets"}, func(v any) bool { l, ok := v.([]any); return ok && len(l) > 0 }},
	}
	for _, c := range checks {
		for _, o := range [][]string{{"-o", "json"}, {"--output=json"}} {
			var v any
			jsonOf(t, &v, append(append(append([]string(nil), c.args...), o...), api...)...)
			if !c.ok(v) {
				t.Errorf("%v: %v", c.args, v)
			}
		}
		out := runOut(t, append(append([]string(nil), c.args...), api...)...)
		if json.Valid([]byte(out)) && strings.TrimSpace(out) != "" {
			t.Errorf("%v: JSON without -o json: %s", c.args, out)
		}
	}
	var v any
	jsonOf(t, &v, append([]string{"devices", "list", "--json"}, api...)...)
	// The device's credential is enough for the device's own commands.
	jsonOf(t, &v, "keys", "list", "-o", "json", "--server", url, "--identity", dir)
}

// TestVersion: hegate version and --version print the version line;
// -o json and --json parse.
func TestVersion(t *testing.T) {
	line := regexp.MustCompile(`^hegate \S+ \(go\S+, \w+/\w+\)\n$`)
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		if out := runOut(t, args...); !line.MatchString(out) {
			t.Errorf("%v: %q", args, out)
		}
	}
	for _, args := range [][]string{{"version", "-o", "json"}, {"version", "--json"}} {
		var v struct{ Version, Go, Platform string }
		jsonOf(t, &v, args...)
		if v.Version != buildVersion() || v.Go == "" || v.Platform == "" {
			t.Errorf("%v: %+v", args, v)
		}
	}
	old := version
	version = "v1.2.3"
	defer func() { version = old }()
	if out := runOut(t, "version"); !strings.HasPrefix(out, "hegate v1.2.3 (") {
		t.Errorf("a stamped version: %q", out)
	}
}

// TestCompletion: hegate completion prints each shell's script, and the
// completions know the commands, the contexts and the -o values.
func TestCompletion(t *testing.T) {
	for sh, want := range map[string]string{"bash": "__start_hegate", "zsh": "#compdef hegate", "fish": "complete -c hegate", "powershell": "Register-ArgumentCompleter"} {
		if out := runOut(t, "completion", sh); !strings.Contains(out, want) {
			t.Errorf("completion %s: no %q in %d bytes", sh, want, len(out))
		}
	}
	path := filepath.Join(t.TempDir(), "config.json")
	t.Setenv("HEGATE_CONFIG", path)
	writeConfig(t, path, `{"contexts": {"prod": {}, "staging": {}}}`, 0o600)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "ten"}, []string{"tenant"}},
		{[]string{"__complete", "tenant", ""}, []string{"create", "list", "keys", "revoke"}},
		{[]string{"__complete", "config", "use-context", ""}, []string{"prod", "staging"}},
		{[]string{"__complete", "keys", "list", "--context", ""}, []string{"prod", "staging"}},
		{[]string{"__complete", "keys", "list", "-o", ""}, []string{"json", "table"}},
		{[]string{"__complete", "model", "inspect", ""}, []string{"mnist-cryptonets"}},
	} {
		out := runOut(t, tc.args...)
		for _, w := range tc.want {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(w) + `(\t|$)`).MatchString(out) {
				t.Errorf("%v: no %q in:\n%s", tc.args, w, out)
			}
		}
	}
}

// TestConfigContexts: set-context, use-context, get-contexts and
// delete-context; the file is 0600, no listing prints a key, an insecure
// file or key file is refused, and the context fills in what neither a
// flag nor the environment gives.
func TestConfigContexts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hegate", "config.json")
	t.Setenv("HEGATE_CONFIG", path)
	t.Setenv("HEGATE_API_KEY", "")
	t.Setenv("HEGATE_SERVER", "")
	t.Setenv("HEGATE_MODEL", "")
	t.Setenv("HEGATE_IDENTITY", "")
	url, key := cliGateway(t)

	keyFile := filepath.Join(dir, "prod.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := runOut(t, "config", "set-context", "prod", "--server", url, "--api-key-file", keyFile, "--model", "mnist-cryptonets"); !strings.Contains(out, "now the current context") {
		t.Fatalf("set-context: %s", out)
	}
	stdin = strings.NewReader(contextSecret + "\n")
	defer func() { stdin = os.Stdin }()
	runOut(t, "config", "set-context", "dev", "--server", "http://127.0.0.1:1", "--api-key-stdin")
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", st, err)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), contextSecret) || strings.Contains(string(b), key) {
		t.Fatalf("the file holds the stdin key inline and the file key by name:\n%s", b)
	}
	out := runOut(t, "config", "get-contexts")
	noSecret(t, "get-contexts", out)
	if !regexp.MustCompile(`(?m)^\*\s+prod\s+`+regexp.QuoteMeta(url)+`\s+file `).MatchString(out) || !regexp.MustCompile(`(?m)^\s+dev\s+\S+\s+set\s`).MatchString(out) {
		t.Fatalf("get-contexts:\n%s", out)
	}
	var views []contextView
	jsonOf(t, &views, "config", "get-contexts", "-o", "json")
	if len(views) != 2 || views[0].Name != "dev" || views[0].APIKey != "set" || !views[1].Current || views[1].APIKeyFile != keyFile {
		t.Fatalf("get-contexts -o json: %+v", views)
	}
	if out := runOut(t, "config", "current-context"); out != "prod\n" {
		t.Fatalf("current-context: %q", out)
	}

	// The current context gives the server and the key.
	runOut(t, "keys", "list")
	// HEGATE_CONTEXT and --context pick another: dev's server refuses.
	t.Setenv("HEGATE_CONTEXT", "dev")
	if _, err := runCLI(t, "keys", "list"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("HEGATE_CONTEXT=dev: %v", err)
	}
	t.Setenv("HEGATE_CONTEXT", "")
	if _, err := runCLI(t, "keys", "list", "--context", "dev"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("--context dev: %v", err)
	}
	// The environment beats the context, and a flag the environment.
	t.Setenv("HEGATE_SERVER", "http://127.0.0.1:1")
	if _, err := runCLI(t, "keys", "list"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("HEGATE_SERVER: %v", err)
	}
	runOut(t, "keys", "list", "--server", url)
	t.Setenv("HEGATE_SERVER", "")
	t.Setenv("HEGATE_API_KEY", "hgk_wrong")
	if _, err := runCLI(t, "keys", "list"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("HEGATE_API_KEY beats the context's: %v", err)
	}
	runOut(t, "keys", "list", "--api-key", key)
	t.Setenv("HEGATE_API_KEY", "")

	runOut(t, "config", "use-context", "dev")
	if out := runOut(t, "config", "current-context"); out != "dev\n" {
		t.Fatalf("use-context: %q", out)
	}
	if _, err := runCLI(t, "config", "use-context", "nope"); err == nil {
		t.Fatal("use-context of a missing context succeeded")
	}
	runOut(t, "config", "delete-context", "dev")
	if _, err := runCLI(t, "config", "current-context"); err == nil {
		t.Fatal("deleting the current context left it current")
	}
	runOut(t, "config", "use-context", "prod")

	// Files others may read are refused.
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "keys", "list"); err == nil || !strings.Contains(err.Error(), "chmod 600 "+keyFile) {
		t.Fatalf("a key file others may read: %v", err)
	}
	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	stdin = strings.NewReader(key)
	runOut(t, "config", "set-context", "inline", "--server", url, "--api-key-stdin")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "keys", "list"); err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Fatalf("a config file with a key that others may read: %v", err)
	}
	var errb bytes.Buffer
	if err := run(t.Context(), []string{"config", "get-contexts"}, new(bytes.Buffer), &errb); err != nil || !strings.Contains(errb.String(), "warning:") {
		t.Fatalf("get-contexts of an insecure file: %v %q", err, errb.String())
	}
	// Rewriting it makes it 0600 again.
	runOut(t, "config", "delete-context", "inline")
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file after a change: %v %v", st, err)
	}
	runOut(t, "keys", "list")
	// A config file without a key may be readable.
	writeConfig(t, path, `{"current-context": "p", "contexts": {"p": {"server": "`+url+`", "api_key_file": "`+keyFile+`"}}}`, 0o644)
	runOut(t, "keys", "list")
	if _, err := runCLI(t, "config", "set-context", "x", "--api-key-file", keyFile, "--api-key-stdin"); err == nil {
		t.Fatal("--api-key-file and --api-key-stdin together")
	}
}

// TestContextPrecedence: each setting comes from its flag, else its
// environment variable, else the context, else its default; a credential
// of the context never beats one given by a flag or the environment.
func TestContextPrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	t.Setenv("HEGATE_CONFIG", path)
	writeConfig(t, path, `{"current-context": "c", "contexts": {"c": {"server": "http://context", "api_key": "ctx-key-123456", "identity": "/ctx/id", "model": "ctx-model"}, "empty": {}}}`, 0o600)
	for _, k := range []string{"HEGATE_SERVER", "HEGATE_API_KEY", "HEGATE_MODEL", "HEGATE_IDENTITY", "HEGATE_DEVICE_DIR"} {
		t.Setenv(k, "")
	}
	resolve := func(env map[string]string, args ...string) deviceConfig {
		t.Helper()
		for k, v := range env {
			t.Setenv(k, v)
		}
		defer func() {
			for k := range env {
				t.Setenv(k, "")
			}
		}()
		var cfg deviceConfig
		cmd := &cobra.Command{Use: "x", RunE: func(cmd *cobra.Command, _ []string) error { return cfg.resolve(cmd) }}
		cmd.PersistentFlags().String("context", "", "")
		cfg.register(cmd.Flags())
		cmd.SetArgs(args)
		cmd.SetOut(new(bytes.Buffer))
		if err := cmd.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("%v %v: %v", env, args, err)
		}
		return cfg
	}
	c := resolve(nil)
	if c.Server != "http://context" || c.APIKey != "ctx-key-123456" || c.Model != "ctx-model" || c.Identity != "/ctx/id" {
		t.Fatalf("context: %+v", c)
	}
	if c.identityFrom < c.keyFrom {
		t.Fatal("the context's identity and key: the identity is used, as with flags")
	}
	c = resolve(map[string]string{"HEGATE_SERVER": "http://env", "HEGATE_MODEL": "env-model", "HEGATE_API_KEY": "env-key-123456"})
	if c.Server != "http://env" || c.Model != "env-model" || c.APIKey != "env-key-123456" || c.keyFrom != sourceEnv {
		t.Fatalf("environment: %+v", c)
	}
	c = resolve(map[string]string{"HEGATE_API_KEY": "env-key-123456"})
	if c.Server != "http://context" || c.Identity != "/ctx/id" || c.identityFrom >= c.keyFrom {
		t.Fatalf("an API key from the environment beats the context's identity: %+v", c)
	}
	c = resolve(map[string]string{"HEGATE_SERVER": "http://env", "HEGATE_API_KEY": "env-key-123456"}, "--server", "http://flag", "--model", "flag-model", "--api-key", "flag-key-123456", "--identity", "/flag/id")
	if c.Server != "http://flag" || c.Model != "flag-model" || c.APIKey != "flag-key-123456" || c.Identity != "/flag/id" || c.identityFrom != sourceFlag {
		t.Fatalf("flags: %+v", c)
	}
	c = resolve(nil, "--context", "empty")
	if c.Server != defaultServer || c.Model != defaultModel || c.APIKey != "" || c.Identity != "" {
		t.Fatalf("defaults: %+v", c)
	}
	t.Setenv("HEGATE_CONFIG", filepath.Join(t.TempDir(), "none.json"))
	c = resolve(nil)
	if c.Server != defaultServer || c.Model != defaultModel {
		t.Fatalf("no config file: %+v", c)
	}
}

// TestLegacyDashes: Go-flag-style single-dash long flags still work.
func TestLegacyDashes(t *testing.T) {
	data := t.TempDir()
	runOut(t, "tenant", "create", "acme", "-data-dir", data)
	if out := runOut(t, "tenant", "-data-dir="+data, "list", "-output", "json"); !strings.Contains(out, `"acme"`) {
		t.Fatalf("tenant list: %s", out)
	}
	got := legacyDashes(newRootCmd(), []string{"-addr", ":1", "-x", "-1", "--", "-addr"})
	if strings.Join(got, " ") != "--addr :1 -x -1 -- -addr" {
		t.Fatalf("legacyDashes: %q", got)
	}
}

// TestProgressNotInPipes: progress bars are drawn only on terminals, never
// into the buffers, files and pipes of tests and scripts.
func TestProgressNotInPipes(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, out := range []io.Writer{new(bytes.Buffer), w, f} {
		cmd := &cobra.Command{}
		cmd.SetOut(out)
		cmd.SetErr(out)
		if progressOut(cmd) != nil {
			t.Errorf("%T: progress bars on", out)
		}
		for _, m := range []*meter{byteMeter(cmd, 10, "x"), countMeter(cmd, 10, "x"), spinner(cmd, "x")} {
			if m != nil {
				t.Errorf("%T: a meter", out)
			}
			var b bytes.Buffer
			if _, err := m.writer(&b).Write([]byte("abc")); err != nil || b.String() != "abc" {
				t.Error("a nil meter's writer")
			}
			m.add(1)
			m.finish()
		}
	}
	// A meter on a writer draws there, and finish stops a spinner.
	var b bytes.Buffer
	m := newMeter(&b, 100, "test")
	n, _ := m.writer(new(bytes.Buffer)).Write(make([]byte, 100))
	m.finish()
	if n != 100 || b.Len() == 0 {
		t.Fatalf("meter: %d %q", n, b.String())
	}
}

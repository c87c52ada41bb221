package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestMain keeps the tests off the developer's own config file and
// context.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hegate-cli-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("HEGATE_CONFIG", filepath.Join(dir, "no-config.json"))
	os.Unsetenv("HEGATE_CONTEXT")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Secrets the help and error tests put where hegate may find them.
const (
	envSecret     = "hgk_THISISASECRETTHATMUSTNOTBEPRINTED0000000"
	contextSecret = "ctx-secret-THAT-MUST-NOT-BE-PRINTED-1234"
	dbPassword    = "dbpassword-THAT-MUST-NOT-BE-PRINTED"
)

// withSecrets sets HEGATE_API_KEY, a database URL with a password, and a
// config file whose current context holds an API key.
func withSecrets(t *testing.T) {
	t.Helper()
	t.Setenv("HEGATE_API_KEY", envSecret)
	t.Setenv("HEGATE_DATABASE_URL", "postgres://hegate:"+dbPassword+"@127.0.0.1:1/hegate")
	path := filepath.Join(t.TempDir(), "config.json")
	t.Setenv("HEGATE_CONFIG", path)
	writeConfig(t, path, `{"current-context": "c", "contexts": {"c": {"server": "http://127.0.0.1:1", "api_key": "`+contextSecret+`"}}}`, 0o600)
}

func writeConfig(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func noSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range []string{envSecret, contextSecret, dbPassword} {
		if strings.Contains(s, secret) {
			t.Errorf("%s printed a secret (%.12s…):\n%s", what, secret, s)
		}
	}
}

// commandPaths are the paths of every command and subcommand, the
// completion commands cobra adds included.
func commandPaths() [][]string {
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		out = append(out, path)
		for _, s := range c.Commands() {
			walk(s, append(append([]string(nil), path...), s.Name()))
		}
	}
	walk(newRootCmd(), nil)
	for _, sh := range []string{"", "bash", "zsh", "fish", "powershell"} {
		p := []string{"completion"}
		if sh != "" {
			p = append(p, sh)
		}
		out = append(out, p)
	}
	return append(out, []string{"help"})
}

// TestHelpExitsZero: -h, --help and -help, on every command and
// subcommand, print its help on standard output only and succeed; so do
// "hegate help PATH", a command with subcommands given none, and hegate
// alone.
func TestHelpExitsZero(t *testing.T) {
	t.Setenv("HEGATE_API_KEY", "")
	checkHelp(t)
}

// TestHelpPrintsNoSecret asks every command for its help with an API key
// in the environment and in the current context, and a password in the
// database URL: no help prints them (a flag's default is printed by -h, so
// a secret must never be one).
func TestHelpPrintsNoSecret(t *testing.T) {
	withSecrets(t)
	checkHelp(t)
}

func checkHelp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing may run: only help is wanted
	check := func(args []string, want string) {
		t.Helper()
		var out, errb bytes.Buffer
		err := run(ctx, args, &out, &errb)
		what := "hegate " + strings.Join(args, " ")
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if out.Len() == 0 || errb.Len() != 0 {
			t.Errorf("%s: %d bytes on stdout, %d on stderr (%q); want the help on stdout", what, out.Len(), errb.Len(), errb.String())
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("%s: the help lacks %q:\n%s", what, want, out.String())
		}
		noSecret(t, what, out.String()+errb.String())
	}
	paths := commandPaths()
	if len(paths) < 60 {
		t.Fatalf("only %d commands", len(paths))
	}
	for _, p := range paths {
		usage := "hegate " + strings.Join(p, " ")
		for _, h := range []string{"-h", "--help", "-help"} {
			check(append(append([]string(nil), p...), h), strings.TrimSpace(usage))
		}
		if len(p) > 0 && p[0] != "help" {
			check(append([]string{"help"}, p...), strings.TrimSpace(usage))
		}
	}
	check(nil, "hegate [command]")
	for _, g := range []string{"tenant", "budget", "model", "keys", "attest", "devices", "policy", "credential", "config"} {
		check([]string{g}, "hegate "+g+" [command]")
	}
}

// TestErrorsAreOneLine: failures are one line, without "hegate: " (main
// adds it) or a secret, and say what to do.
func TestErrorsAreOneLine(t *testing.T) {
	withSecrets(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()
	// A gateway that repeats the credential it was sent in its error.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"status": 401, "detail": "bad key ` + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + `"}`))
	}))
	defer echo.Close()
	data := t.TempDir()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"tenat"}, []string{`unknown command "tenat" for "hegate"`, `did you mean "tenant"?`}},
		{[]string{"tenant", "creat", "x"}, []string{`unknown command "creat" for "hegate tenant"`, `"create"`}},
		{[]string{"tenant", envSecret}, []string{"unknown command"}},
		{[]string{"keys", "list", "--bogus"}, []string{"unknown flag: --bogus", `"hegate keys list --help"`}},
		{[]string{"tenant", "create", "--data-dir", data}, []string{"accepts 1 arg(s), received 0", "usage: hegate tenant create NAME"}},
		{[]string{"keys", "delete", "a", contextSecret}, []string{"accepts 1 arg(s), received 2"}},
		{[]string{"budget", "show", "--output", "yaml", "--data-dir", data}, []string{`invalid argument "yaml" for "-o, --output" flag: want table or json`}},
		{[]string{"keys", "list", "--server", refused}, []string{"connection refused", "is the gateway running at " + refused + "?", "--server"}},
		{[]string{"keys", "list", "--server", refused, "--api-key", "flag-secret-0123456789"}, []string{"connection refused"}},
		{[]string{"keys", "list", "--server", echo.URL}, []string{"401", "[redacted]"}},
		{[]string{"keys", "list", "--context", "nope"}, []string{`no context "nope"`}},
		{[]string{"migrate", "--data-dir", data}, []string{"opening database"}},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), tc.args, &out, &errb)
		what := "hegate " + strings.Join(tc.args, " ")
		if err == nil {
			t.Errorf("%s: succeeded", what)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") || strings.HasPrefix(msg, "hegate:") || strings.Contains(msg, "flag-secret-0123456789") {
			t.Errorf("%s: error %q", what, msg)
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: error %q lacks %q", what, msg, w)
			}
		}
		noSecret(t, what, msg+out.String()+errb.String())
	}
	// The context's API key, echoed back, is not printed either.
	t.Setenv("HEGATE_API_KEY", "")
	err = run(context.Background(), []string{"keys", "list", "--server", echo.URL}, new(bytes.Buffer), new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "bad key [redacted]") {
		t.Errorf("the context's key against a gateway that echoes it: %v", err)
	}
	noSecret(t, "the context's key echoed", err.Error())
	// A refused connection is one clean line: the client's prefix, not
	// the URL error's repetition of the method and URL.
	err = run(context.Background(), []string{"keys", "list", "--server", refused}, new(bytes.Buffer), new(bytes.Buffer))
	if n := strings.Count(err.Error(), "/v1/keys"); n != 1 {
		t.Errorf("the path is named %d times in %q", n, err)
	}
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/gateway"
)

// startServe runs serveHTTP on a fresh local listener with h and maxConns
// until the test ends, and returns its address.
func startServe(t *testing.T, h http.Handler, maxConns int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveHTTP(ctx, ln, h, maxConns) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveHTTP: %v", err)
		}
	})
	return ln.Addr().String()
}

// gatewayHandler is a whole gateway on a fresh SQLite store.
func gatewayHandler(t *testing.T) http.Handler {
	t.Helper()
	cfg := backendConfig{DataDir: t.TempDir(), LogLevel: "warn"}
	b, err := openBackend(t.Context(), cfg, cfg.logger(io.Discard), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	srv, err := b.server()
	if err != nil {
		t.Fatal(err)
	}
	return srv.Handler()
}

// TestServeHeaderLimits: hegate serve reads heads up to
// gateway.ServerMaxHeaderBytes (not net/http's 1 MiB); the gateway answers
// those over gateway.MaxHeaderBytes with a 431 problem document, and
// net/http those over its own limit with its plain-text 431.
func TestServeHeaderLimits(t *testing.T) {
	t.Parallel()
	addr := startServe(t, gatewayHandler(t), 0)
	get := func(pad int) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/health/live", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Pad", strings.Repeat("p", pad))
		c := &http.Client{Transport: &http.Transport{MaxResponseHeaderBytes: 1 << 20}, Timeout: 10 * time.Second}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%d-byte header: %v", pad, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	if resp, body := get(gateway.MaxHeaderBytes / 2); resp.StatusCode != http.StatusOK {
		t.Fatalf("%d-byte header: status %d: %s", gateway.MaxHeaderBytes/2, resp.StatusCode, body)
	}
	for _, pad := range []int{gateway.MaxHeaderBytes + 1, gateway.ServerMaxHeaderBytes - 1024} {
		resp, body := get(pad)
		var p api.Problem
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || resp.Header.Get("Content-Type") != api.ContentTypeProblem ||
			json.Unmarshal(body, &p) != nil || p.Status != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("%d-byte header: status %d %s: %.300s; want a 431 problem", pad, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	// Before hegate set MaxHeaderBytes, net/http read heads up to 1 MiB.
	for _, pad := range []int{gateway.ServerMaxHeaderBytes + 8192, 1 << 19, 1<<20 - 8192} {
		resp, body := get(pad)
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("%d-byte header: status %d: %.300s; want net/http's 431", pad, resp.StatusCode, body)
		}
	}
	if resp, body := get(10); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the refusals: status %d: %s", resp.StatusCode, body)
	}
}

// TestServeMaxConnections: past --max-connections, a connection is not
// served until another closes, and the server goes on serving.
func TestServeMaxConnections(t *testing.T) {
	t.Parallel()
	const maxConns = 3
	addr := startServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}), maxConns)
	// Hold every slot: connections that have sent half a request line.
	var held []net.Conn
	for range maxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\n"); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// One more connection is made (the kernel queues it) but not served.
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if _, err := io.WriteString(extra, "GET /extra HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(extra)
	_ = extra.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if resp, err := http.ReadResponse(br, nil); err == nil {
		t.Fatalf("connection %d was served (status %d) while %d were open", maxConns+1, resp.StatusCode, maxConns)
	} else if ne := (net.Error)(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("connection %d: %v, want no answer yet", maxConns+1, err)
	}
	// A slot frees: the waiting connection is served.
	held[0].Close()
	_ = extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("connection %d after one closed: %v", maxConns+1, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The held connections finish their requests and are served too.
	for _, c := range held[1:] {
		if _, err := io.WriteString(c, "Host: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}

func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		set    int
		nofile uint64
		want   int
	}{
		{0, 1024, (1024 - fdReserve) / 2},
		{0, 65536, maxDerivedConnections},
		{0, 1 << 62, maxDerivedConnections},
		{0, 100, minDerivedConnections},
		{0, 0, maxDerivedConnections / 4},
		{50, 1024, 50},
		{100000, 1024, 100000},
	}
	for _, tc := range tests {
		if got := connectionLimit(tc.set, tc.nofile); got != tc.want {
			t.Errorf("connectionLimit(%d, %d) = %d, want %d", tc.set, tc.nofile, got, tc.want)
		}
	}
	if n := openFileLimit(); n == 0 {
		t.Log("no open-file limit on this platform")
	}
}

func TestMaxConnectionsFlag(t *testing.T) {
	for _, tc := range []struct {
		env  string
		args []string
		want string
	}{
		{"", []string{"--max-connections", "-1"}, "negative"},
		{"lots", nil, "HEGATE_MAX_CONNECTIONS"},
		{"lots", []string{"--max-connections", "10"}, ""},
		{"20", nil, ""},
	} {
		t.Setenv("HEGATE_MAX_CONNECTIONS", tc.env)
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var lf listenFlags
		lf.register(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		err := lf.Validate(fs)
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %q args %q: %v, want %q", tc.env, tc.args, err, tc.want)
		}
	}
}

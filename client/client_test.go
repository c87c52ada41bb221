package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hegate/hegate/api"
)

func TestNew(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		url  string
		opts []Option
		ok   bool
	}{
		"ok/http":            {"http://localhost:8080", nil, true},
		"ok/https-with-path": {"https://gw.example/prefix/", nil, true},
		"fail/no-scheme":     {"localhost:8080", nil, false},
		"fail/ftp":           {"ftp://host", nil, false},
		"fail/nil-client":    {"http://h", []Option{WithHTTPClient(nil)}, false},
		"fail/poll":          {"http://h", []Option{WithPollInterval(0, 0)}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.url, "hgk_x", tc.opts...)
			if (err == nil) != tc.ok {
				t.Fatalf("New(%q): %v", tc.url, err)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/keys/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer hgk_test" {
			t.Errorf("Authorization %q", r.Header.Get("Authorization"))
		}
		w.Header().Set("Content-Type", api.ContentTypeProblem)
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"type":"https://hegate.dev/problems/not-found","title":"Not found","status":404,"detail":"key set k not found","request_id":"r1"}`))
	})
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream exploded", http.StatusBadGateway)
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	c, err := New(ts.URL+"/", "hgk_test", WithHTTPClient(ts.Client()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.KeySet(context.Background(), "k")
	var ce *Error
	if !errors.As(err, &ce) || ce.StatusCode != 404 || ce.Problem.Type != api.ProblemNotFound || ce.Problem.RequestID != "r1" {
		t.Fatalf("KeySet: %#v", err)
	}
	if !strings.Contains(err.Error(), "key set k not found") || !strings.Contains(err.Error(), "r1") {
		t.Fatalf("message %q", err)
	}
	_, err = c.Job(context.Background(), "j")
	if StatusOf(err) != http.StatusBadGateway || !strings.Contains(err.Error(), "upstream exploded") {
		t.Fatalf("Job: %v", err)
	}
	if StatusOf(errors.New("x")) != 0 {
		t.Fatal("StatusOf of a plain error")
	}
}

func TestArgmax(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		x    []float64
		want int
	}{
		{nil, -1},
		{[]float64{1}, 0},
		{[]float64{-3, 2.5, 2.4}, 1},
		{[]float64{1, 1}, 0},
	} {
		if got := Argmax(tc.x); got != tc.want {
			t.Errorf("Argmax(%v) = %d, want %d", tc.x, got, tc.want)
		}
	}
}

func TestRequestPaths(t *testing.T) {
	t.Parallel()
	c, err := New("https://gw.example/base/", "")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/v2/models/a%2Fb":     "https://gw.example/base/v2/models/a%2Fb",
		"/v1/keys?model=m%20x": "https://gw.example/base/v1/keys?model=m%20x",
		"/v2":                  "https://gw.example/base/v2",
	} {
		req, err := c.request(context.Background(), http.MethodGet, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := req.URL.String(); got != want {
			t.Errorf("%s: URL %s, want %s", path, got, want)
		}
	}
}

// TestErrorHasNoProgramPrefix: an error answer reads as what the gateway
// said, without "hegate:" (the CLI adds that once; before, it printed
// "hegate: hegate: 401 ...").
func TestErrorHasNoProgramPrefix(t *testing.T) {
	e := &Error{StatusCode: 401, Problem: api.Problem{Detail: "unknown or revoked API key", RequestID: "r1"}}
	got := e.Error()
	if strings.HasPrefix(got, "hegate") || !strings.Contains(got, "401 Unauthorized: unknown or revoked API key") {
		t.Fatalf("Error() = %q", got)
	}
}

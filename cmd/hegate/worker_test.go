package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestWorkerHealthz: a worker's /healthz answers 200 while its database
// answers and 503 once it does not; /metrics is served beside it.
func TestWorkerHealthz(t *testing.T) {
	cfg := backendConfig{DataDir: t.TempDir(), LogLevel: "warn"}
	b, err := openBackend(t.Context(), cfg, cfg.logger(io.Discard), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(workerMux(b))
	defer ts.Close()
	get := func(path string) int {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("/healthz"); c != http.StatusOK {
		t.Fatalf("healthz with the database up: %d", c)
	}
	if c := get("/metrics"); c != http.StatusOK {
		t.Fatalf("metrics: %d", c)
	}
	b.close()
	if c := get("/healthz"); c != http.StatusServiceUnavailable {
		t.Fatalf("healthz with the database closed: %d, want 503", c)
	}
}

package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate/api"
)

// TestInferPreferences: what Infer asks of the gateway, and that it reads
// both a 200 with the outputs and a 202 with the job.
func TestInferPreferences(t *testing.T) {
	t.Parallel()
	result := []byte("result ciphertext")
	var (
		mu     sync.Mutex
		prefer []string
	)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/models/m/infer", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		prefer = append(prefer, r.Header.Get(api.HeaderPrefer))
		mu.Unlock()
		w.Header().Set("Content-Type", api.ContentTypeJSON)
		if r.Header.Get(api.HeaderPrefer) == "respond-async" {
			w.Header().Set("Location", "/v1/jobs/job_1")
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(api.Job{ID: "job_1", Status: api.JobQueued})
			return
		}
		data, _ := json.Marshal([]string{base64.StdEncoding.EncodeToString(result)})
		_ = json.NewEncoder(w).Encode(api.InferResponse{
			ModelName: "m", ModelVersion: "1",
			Parameters: api.Parameters{api.ParamJobID: "job_2"},
			Outputs:    []api.Tensor{{Name: api.OutputName, Shape: []int64{1}, Datatype: api.DatatypeBytes, Data: data}},
		})
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	c, err := New(ts.URL, "hgk_test", WithHTTPClient(ts.Client()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	got, job, err := c.Infer(ctx, "m", "ks", []byte("ct"), InferOptions{})
	if err != nil || got != nil || job != "job_1" {
		t.Fatalf("async: %q, %q, %v", got, job, err)
	}
	got, job, err = c.Infer(ctx, "m", "ks", []byte("ct"), InferOptions{Wait: true})
	if err != nil || string(got) != string(result) || job != "job_2" {
		t.Fatalf("wait: %q, %q, %v", got, job, err)
	}
	if _, _, err := c.Infer(ctx, "m", "ks", []byte("ct"), InferOptions{Wait: true, WaitFor: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	want := []string{"respond-async", "", "wait=5"}
	mu.Lock()
	defer mu.Unlock()
	if len(prefer) != len(want) {
		t.Fatalf("Prefer headers %q, want %q", prefer, want)
	}
	for i := range want {
		if prefer[i] != want[i] {
			t.Errorf("request %d: Prefer %q, want %q", i, prefer[i], want[i])
		}
	}
}

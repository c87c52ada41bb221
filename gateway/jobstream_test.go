package gateway

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
)

// TestJobEventsStream: an asynchronous inference's events stream sends
// the job as it is, then its changes, and ends with the terminal status;
// another tenant's job is 404.
func TestJobEventsStream(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	ksID := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 21)
	_, jobID, err := bd.a.client.Infer(bd.ctx, string(bd.model.ID()), ksID, ct, client.InferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp := bd.call(t, http.MethodGet, "/v1/jobs/"+jobID+"/events", bd.a.secret, nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var statuses []api.JobStatus
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if event != "job" {
				t.Fatalf("event %q", event)
			}
			var j api.Job
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &j); err != nil || j.ID != jobID {
				t.Fatalf("event data %q: %v", line, err)
			}
			statuses = append(statuses, j.Status)
		}
	}
	if len(statuses) == 0 || statuses[len(statuses)-1] != api.JobSucceeded {
		t.Fatalf("statuses %v: want the stream to end with succeeded", statuses)
	}
	for i := 1; i < len(statuses); i++ {
		if statuses[i] == statuses[i-1] {
			t.Fatalf("statuses %v repeat one without a change", statuses)
		}
	}
	other := bd.call(t, http.MethodGet, "/v1/jobs/"+jobID+"/events", bd.b.secret, nil, nil)
	wantProblem(t, other, http.StatusNotFound, "not found")
}

// TestJobEventsStreamCapped: a tenant may hold at most streamsPerTenant
// streams open (each exempt from the request deadline); the next one is
// 429 with Retry-After, and a reconnect after the job finished is 204.
func TestJobEventsStreamCapped(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	ksID := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 22)
	_, jobID, err := bd.a.client.Infer(bd.ctx, string(bd.model.ID()), ksID, ct, client.InferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range streamsPerTenant {
		resp := bd.call(t, http.MethodGet, "/v1/jobs/"+jobID+"/events", bd.a.secret, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %d", i, resp.StatusCode)
		}
	}
	resp := bd.call(t, http.MethodGet, "/v1/jobs/"+jobID+"/events", bd.a.secret, nil, nil)
	p := wantProblem(t, resp, http.StatusTooManyRequests, "event streams")
	if p.Reason != api.ReasonStreams || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("reason %q, Retry-After %q", p.Reason, resp.Header.Get("Retry-After"))
	}
	// Another tenant is not refused for A's streams (its own job: 404 is
	// what it gets for A's, which is not a refusal of the cap).
	other := bd.call(t, http.MethodGet, "/v1/jobs/"+jobID+"/events", bd.b.secret, nil, nil)
	wantProblem(t, other, http.StatusNotFound, "not found")
}

package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/storage"
)

// GET /v1/jobs/{id}/events: the job's status as Server-Sent Events (the
// HTML living standard's text/event-stream). Each change of status or
// attempt is one event "job" whose data is the job's JSON (as GET
// /v1/jobs/{id} answers it); the stream ends after the terminal status, or
// after streamMaxDuration (reconnect to go on: the first event is always
// the job as it is). A job finished by this process's workers, or with
// PostgreSQL by any process's, is sent at once; otherwise within
// streamPoll.

const (
	// streamPoll is how often the stream reads the job when no
	// notification came.
	streamPoll = 2 * time.Second
	// streamHeartbeat keeps proxies from closing a quiet stream.
	streamHeartbeat = 15 * time.Second
	// streamMaxDuration bounds one stream.
	streamMaxDuration = 10 * time.Minute
	// streamWriteWindow is the write deadline of each event.
	streamWriteWindow = 30 * time.Second
	// streamsPerTenant and streamsPerProcess cap open streams: each holds
	// a connection and a goroutine for up to streamMaxDuration, exempt
	// from the request deadline.
	streamsPerTenant  = 8
	streamsPerProcess = 256
)

// streams counts open event streams, per tenant and in all.
type streams struct {
	mu       sync.Mutex
	total    int
	byTenant map[hegate.TenantID]int
}

// acquire takes a stream slot of tenant, or says no.
func (c *streams) acquire(t hegate.TenantID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byTenant == nil {
		c.byTenant = map[hegate.TenantID]int{}
	}
	if c.total >= streamsPerProcess || c.byTenant[t] >= streamsPerTenant {
		return false
	}
	c.total++
	c.byTenant[t]++
	return true
}

func (c *streams) release(t hegate.TenantID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if c.byTenant[t]--; c.byTenant[t] <= 0 {
		delete(c.byTenant, t)
	}
}

func (s *Server) jobStream(w http.ResponseWriter, r *http.Request) {
	const op = "jobs.events"
	ctx := r.Context()
	job, err := s.tenantJob(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if job.Status.Terminal() && r.Header.Get("Last-Event-ID") != "" {
		// A reconnecting EventSource after the stream ended with the job:
		// 204 tells it to stop reconnecting.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !s.streams.acquire(job.TenantID) {
		s.refuse(w, r, http.StatusTooManyRequests, api.ProblemRateLimited, "Too many requests", api.ReasonStreams,
			fmt.Sprintf("at most %d event streams may be open per tenant (%d per gateway process): close one, or poll GET /v1/jobs/{id}", streamsPerTenant, streamsPerProcess),
			10*time.Second)
		return
	}
	defer s.streams.release(job.TenantID)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	seq := 0
	send := func(j storage.Job) bool {
		b, err := json.Marshal(jobView(j))
		if err != nil {
			return false
		}
		seq++
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteWindow))
		if _, err := fmt.Fprintf(w, "id: %d\nevent: job\ndata: %s\n\n", seq, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(job) || job.Status.Terminal() {
		return
	}
	end := time.NewTimer(streamMaxDuration)
	defer end.Stop()
	heartbeat := time.NewTicker(streamHeartbeat)
	defer heartbeat.Stop()
	poll := time.NewTicker(streamPoll)
	defer poll.Stop()
	last := job
	// Subscribed before each read, so that a finish between the read and
	// the wait is not missed.
	done, unsubscribe := s.cfg.JobEvents.subscribe(job.ID)
	defer func() { unsubscribe() }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-end.C:
			return
		case <-heartbeat.C:
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteWindow))
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
			continue
		case <-done:
		case <-poll.C:
		}
		unsubscribe()
		done, unsubscribe = s.cfg.JobEvents.subscribe(job.ID)
		cur, err := s.cfg.Store.GetJob(ctx, job.TenantID, job.ID)
		if err != nil {
			// The stream is already 200: say why in a comment and end it;
			// the client reconnects.
			_, _ = fmt.Fprint(w, ": the job could not be read; reconnect\n\n")
			_ = rc.Flush()
			return
		}
		if cur.Status != last.Status || cur.Attempts != last.Attempts {
			if !send(cur) {
				return
			}
			last = cur
		}
		if cur.Status.Terminal() {
			return
		}
	}
}

package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

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
)

func (s *Server) jobStream(w http.ResponseWriter, r *http.Request) {
	const op = "jobs.events"
	ctx := r.Context()
	job, err := s.tenantJob(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
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
	for {
		done, unsubscribe := s.cfg.JobEvents.subscribe(job.ID)
		select {
		case <-ctx.Done():
			unsubscribe()
			return
		case <-end.C:
			unsubscribe()
			return
		case <-heartbeat.C:
			unsubscribe()
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteWindow))
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
			continue
		case <-done:
		case <-poll.C:
		}
		unsubscribe()
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

package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/dp"
	"github.com/hegate/hegate/storage"
)

// Job listing bounds.
const (
	defaultJobList = 50
	maxJobList     = 1000
	maxJobIDLen    = 128
)

func jobPath(id hegate.JobID) string { return api.PathJobs + "/" + string(id) }

func jobView(j storage.Job) api.Job {
	v := api.Job{
		ID:             string(j.ID),
		Model:          string(j.Model),
		KeySetID:       string(j.KeySetID),
		Status:         api.JobStatus(j.Status),
		InputBytes:     j.InputBytes,
		ResultBytes:    j.ResultBytes,
		Error:          j.Error,
		IdempotencyKey: j.IdempotencyKey,
		Attempts:       j.Attempts,
		CreatedAt:      j.CreatedAt,
		StartedAt:      j.StartedAt,
		FinishedAt:     j.FinishedAt,
		Device:         string(j.DeviceID),
		Self:           jobPath(j.ID),
	}
	if j.Status == storage.JobSucceeded && !j.Expired() {
		v.Result = jobPath(j.ID) + "/result"
	}
	if j.NoiseSigma > 0 || j.PrivacyUnits > 0 {
		v.Privacy = &api.JobPrivacy{NoiseSigma: j.NoiseSigma, Rho: dp.Rho(j.PrivacyUnits).String(), State: j.PrivacyState}
	}
	return v
}

// jobTarget returns the caller's tenant and the {id} of a job route,
// checked for length and for what an id can hold (letters, digits, '_'
// and '-'): job ids are the store's to shape, but bytes such as NUL must
// not reach SQL (PostgreSQL refuses them with an error, not "not found").
func jobTarget(r *http.Request, op string) (hegate.TenantID, hegate.JobID, error) {
	p, err := principal(r)
	if err != nil {
		return "", "", err
	}
	id := chi.URLParam(r, "id")
	if id == "" || len(id) > maxJobIDLen || !idChars(id) {
		return "", "", hegate.E(op, hegate.KindNotFound, nil, "job %q not found", truncate(id, 80))
	}
	return p.Tenant, hegate.JobID(id), nil
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	const op = "jobs.list"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit := defaultJobList
	if v := r.URL.Query().Get(api.QueryLimit); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxJobList {
			s.fail(w, r, hegate.E(op, hegate.KindInvalid, nil, "%s %q: want 1 to %d", api.QueryLimit, truncate(v, 20), maxJobList))
			return
		}
		limit = n
	}
	jobs, err := s.cfg.Store.ListJobs(r.Context(), p.Tenant, limit)
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindInternal, fmt.Errorf("listing jobs: %w", err), ""))
		return
	}
	out := api.JobList{Jobs: make([]api.Job, 0, len(jobs))}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, jobView(j))
	}
	writeJSON(w, http.StatusOK, out)
}

// tenantJob loads the caller's job named by the route.
func (s *Server) tenantJob(r *http.Request, op string) (storage.Job, error) {
	tenant, id, err := jobTarget(r, op)
	if err != nil {
		return storage.Job{}, err
	}
	job, err := s.cfg.Store.GetJob(r.Context(), tenant, id)
	if err != nil {
		return storage.Job{}, notFound(op, err, "job %s not found", id)
	}
	return job, nil
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	job, err := s.tenantJob(r, "jobs.get")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, jobView(job))
}

// jobResult streams a succeeded job's result ciphertext.
func (s *Server) jobResult(w http.ResponseWriter, r *http.Request) {
	const op = "jobs.result"
	job, err := s.tenantJob(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if job.Status != storage.JobSucceeded {
		if !job.Status.Terminal() {
			w.Header().Set("Retry-After", "1")
		}
		s.fail(w, r, jobNotSucceeded(op, job))
		return
	}
	rc, err := s.openResult(r.Context(), op, job)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", api.ContentTypeCiphertext)
	h.Set("Content-Length", strconv.FormatInt(job.ResultBytes, 10))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if n, err := io.Copy(w, io.LimitReader(rc, job.ResultBytes)); err != nil || n != job.ResultBytes {
		s.log.WarnContext(r.Context(), "streaming job result",
			"request_id", RequestIDFromContext(r.Context()), "job_id", job.ID,
			"bytes", n, "want", job.ResultBytes, "error", fmt.Sprint(err))
	}
}

// resultExpired is the 410 answer for a succeeded job whose result the
// retention policy removed.
func (s *Server) resultExpired(op string, job storage.Job) error {
	if s.cfg.Retention > 0 {
		return hegate.E(op, hegate.KindGone, nil, "the result of job %s expired after %s", job.ID, formatRetention(s.cfg.Retention))
	}
	return hegate.E(op, hegate.KindGone, nil, "the result of job %s has expired", job.ID)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	const op = "jobs.cancel"
	tenant, id, err := jobTarget(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	job, err := s.cfg.Store.CancelJob(r.Context(), tenant, id)
	if errors.Is(err, storage.ErrConflict) {
		status := "no longer queued"
		if cur, gerr := s.cfg.Store.GetJob(r.Context(), tenant, id); gerr == nil {
			status = string(cur.Status)
		}
		s.fail(w, r, hegate.E(op, hegate.KindConflict, err, "job %s is %s and can no longer be cancelled", id, status))
		return
	}
	if err != nil {
		s.fail(w, r, notFound(op, err, "job %s not found", id))
		return
	}
	s.cfg.JobEvents.finished(job.ID)
	writeJSON(w, http.StatusOK, jobView(job))
}

// idChars reports whether s holds only the characters of hegate's ids.
func idChars(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

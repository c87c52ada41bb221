package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/dp"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
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

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	const op = "jobs.list"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit := service.DefaultJobList
	if v := r.URL.Query().Get(api.QueryLimit); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > service.MaxJobList {
			s.fail(w, r, hegate.E(op, hegate.KindInvalid, nil, "%s %q: want 1 to %d", api.QueryLimit, truncate(v, 20), service.MaxJobList))
			return
		}
		limit = n
	}
	jobs, err := s.svc.ListJobs(r.Context(), p, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.JobList{Jobs: make([]api.Job, 0, len(jobs))}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, jobView(j))
	}
	writeJSON(w, http.StatusOK, out)
}

// tenantJob loads the caller's job named by the route.
func (s *Server) tenantJob(r *http.Request) (storage.Job, error) {
	p, err := principal(r)
	if err != nil {
		return storage.Job{}, err
	}
	return s.svc.GetJob(r.Context(), p, hegate.JobID(chi.URLParam(r, "id")))
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	job, err := s.tenantJob(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, jobView(job))
}

// jobResult streams a succeeded job's result ciphertext.
func (s *Server) jobResult(w http.ResponseWriter, r *http.Request) {
	const op = "jobs.result"
	job, err := s.tenantJob(r)
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
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	job, err := s.svc.CancelJob(r.Context(), p, hegate.JobID(chi.URLParam(r, "id")))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, jobView(job))
}

package service

import (
	"context"
	"errors"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// Bounds of job listings and ids.
const (
	DefaultJobList = 50
	MaxJobList     = 1000
	maxJobIDLen    = 128
)

// checkJobID refuses, as not found, an id that no job can have: job ids
// are the store's to shape, but bytes such as NUL must not reach SQL
// (PostgreSQL refuses them with an error, not "not found").
func checkJobID(op string, id hegate.JobID) error {
	if id == "" || len(id) > maxJobIDLen || !idChars(string(id)) {
		return hegate.E(op, hegate.KindNotFound, nil, "job %q not found", truncate(string(id), 80))
	}
	return nil
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

// ListJobs lists the tenant's most recent jobs, newest first; limit 0
// means DefaultJobList.
func (s *Service) ListJobs(ctx context.Context, p Principal, limit int) ([]storage.Job, error) {
	const op = "jobs.list"
	if limit == 0 {
		limit = DefaultJobList
	}
	if limit < 1 || limit > MaxJobList {
		return nil, hegate.E(op, hegate.KindInvalid, nil, "limit %d: want 1 to %d", limit, MaxJobList)
	}
	jobs, err := s.store.ListJobs(ctx, p.Tenant, limit)
	if err != nil {
		return nil, unavailable(op, err)
	}
	return jobs, nil
}

// GetJob returns one of the tenant's jobs.
func (s *Service) GetJob(ctx context.Context, p Principal, id hegate.JobID) (storage.Job, error) {
	const op = "jobs.get"
	if err := checkJobID(op, id); err != nil {
		return storage.Job{}, err
	}
	job, err := s.store.GetJob(ctx, p.Tenant, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Job{}, notFound(op, err, "job %s not found", id)
	}
	if err != nil {
		return storage.Job{}, unavailable(op, err)
	}
	return job, nil
}

// CancelJob cancels one of the tenant's queued jobs (its reservation is
// refunded). KindConflict once it has started. A viewer may not.
func (s *Service) CancelJob(ctx context.Context, p Principal, id hegate.JobID) (storage.Job, error) {
	const op = "jobs.cancel"
	if err := checkJobID(op, id); err != nil {
		return storage.Job{}, err
	}
	if p.Role == RoleViewer {
		return storage.Job{}, s.denied(ctx, p, "job.cancel", string(id), p.requireAdmin(op))
	}
	job, err := s.store.CancelJob(ctx, p.Tenant, id)
	if errors.Is(err, storage.ErrConflict) {
		status := "no longer queued"
		if cur, gerr := s.store.GetJob(ctx, p.Tenant, id); gerr == nil {
			status = string(cur.Status)
		}
		return storage.Job{}, hegate.E(op, hegate.KindConflict, err, "job %s is %s and can no longer be cancelled", id, status)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Job{}, notFound(op, err, "job %s not found", id)
	}
	if err != nil {
		return storage.Job{}, unavailable(op, err)
	}
	s.jobFinished(job.ID)
	s.audit(ctx, p, "job.cancel", string(id), map[string]any{"model": job.Model})
	return job, nil
}

// JobsPage is one page of the tenant's jobs that f selects, newest first,
// and the cursor of the next page ("" at the end).
func (s *Service) JobsPage(ctx context.Context, p Principal, f storage.JobFilter) ([]storage.Job, hegate.JobID, error) {
	const op = "jobs.list"
	if f.Status != "" && !validJobStatus(f.Status) {
		return nil, "", &FieldError{Field: "status", Err: hegate.E(op, hegate.KindInvalid, nil, "no job status %q", truncate(string(f.Status), 20))}
	}
	if f.Model != "" {
		if err := CheckModelName(op, string(f.Model)); err != nil {
			return nil, "", &FieldError{Field: "model", Err: err}
		}
	}
	if f.Before != "" && checkJobID(op, f.Before) != nil {
		return nil, "", hegate.E(op, hegate.KindInvalid, nil, "the page cursor is not a job id")
	}
	jobs, next, err := s.store.ListJobsPage(ctx, p.Tenant, f)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, "", hegate.E(op, hegate.KindInvalid, err, "the page cursor names no job")
	}
	if err != nil {
		return nil, "", unavailable(op, err)
	}
	return jobs, next, nil
}

func validJobStatus(st storage.JobStatus) bool {
	switch st {
	case storage.JobQueued, storage.JobRunning, storage.JobSucceeded, storage.JobFailed, storage.JobCancelled:
		return true
	}
	return false
}

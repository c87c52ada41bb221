package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/internal/budgets"
	"github.com/hegate/hegate/storage/internal/ids"
	"github.com/hegate/hegate/storage/internal/jobqueue"
	"github.com/hegate/hegate/storage/internal/validate"
)

// maxListJobs caps ListJobs' limit.
const maxListJobs = 1000

const jobColumns = `id, tenant_id, model, model_version, key_set_id, status, input_blob, input_bytes,
	result_blob, result_bytes, error, idempotency_key, attempts, created_at, started_at, finished_at,
	blobs_expired_at, noise_sigma, privacy_units, privacy_state, device_id`

// scanJob scans jobColumns and then, into extra, any columns that follow.
func scanJob(row scanner, extra ...any) (storage.Job, error) {
	var (
		j                          storage.Job
		key, device                sql.NullString
		created, started, finished nullTime
		expired                    nullTime
	)
	err := row.Scan(append([]any{&j.ID, &j.TenantID, &j.Model, &j.ModelVersion, &j.KeySetID, &j.Status, &j.InputBlob, &j.InputBytes,
		&j.ResultBlob, &j.ResultBytes, &j.Error, &key, &j.Attempts, &created, &started, &finished,
		&expired, &j.NoiseSigma, &j.PrivacyUnits, &j.PrivacyState, &device}, extra...)...)
	if err != nil {
		return storage.Job{}, translate(err)
	}
	j.IdempotencyKey = key.String
	j.DeviceID = storage.DeviceID(device.String)
	j.CreatedAt = created.Time
	j.StartedAt = started.ptr()
	j.FinishedAt = finished.ptr()
	j.BlobsExpiredAt = expired.ptr()
	return j, nil
}

// CreateJob inserts a queued job and its River job in one transaction; see
// storage.Jobs and createJob.
func (s *Store) CreateJob(ctx context.Context, p storage.CreateJobParams) (job storage.Job, created bool, err error) {
	err = s.InTx(ctx, func(tx storage.Tx) error {
		job, created, err = tx.CreateJob(ctx, p)
		return err
	})
	if err != nil {
		return storage.Job{}, false, err
	}
	return job, created, nil
}

// createJob inserts a queued job and its River job in tx; see
// storage.Jobs. With an IdempotencyKey the tenant already used, the
// existing job is returned with created == false and nothing is enqueued.
// ErrNotFound if the tenant does not exist or p.ModelVersion names no
// version of the model that is not deleted, ErrConflict if that version is
// not ready. The version check and the insert are in one IMMEDIATE
// transaction, so DeleteModel cannot run between them.
func (s *Store) createJob(ctx context.Context, tx *sql.Tx, p storage.CreateJobParams) (job storage.Job, created bool, err error) {
	if err := validate.CreateJob(p); err != nil {
		return storage.Job{}, false, fmt.Errorf("creating job: %w", err)
	}
	job, created, err = s.insertJob(ctx, tx, p)
	if err != nil {
		return storage.Job{}, false, fmt.Errorf("creating job for tenant %s: %w", p.TenantID, translate(err))
	}
	return job, created, nil
}

func (s *Store) insertJob(ctx context.Context, tx *sql.Tx, p storage.CreateJobParams) (storage.Job, bool, error) {
	key := sql.NullString{String: p.IdempotencyKey, Valid: p.IdempotencyKey != ""}
	device := sql.NullString{String: string(p.DeviceID), Valid: p.DeviceID != ""} // NULL for an API key's job
	// Writers are serialised (one connection, BEGIN IMMEDIATE), so
	// nobody else writes during this transaction.
	if key.Valid {
		job, err := scanJob(tx.QueryRowContext(ctx,
			`SELECT `+jobColumns+` FROM jobs WHERE tenant_id = ?1 AND idempotency_key = ?2`,
			p.TenantID, p.IdempotencyKey))
		if !errors.Is(err, errNoRows) {
			return job, false, err // the replayed job, or a failure
		}
	}
	if p.ModelVersion > 0 {
		if err := readyVersion(ctx, tx, p.TenantID, p.Model, p.ModelVersion); err != nil {
			return storage.Job{}, false, err
		}
	}
	job, err := scanJob(tx.QueryRowContext(ctx,
		`INSERT INTO jobs (id, tenant_id, model, model_version, key_set_id, status, input_blob, input_bytes,
		                   idempotency_key, created_at, noise_sigma, device_id)
		 VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?8, ?9, ?10, ?11)
		 RETURNING `+jobColumns,
		ids.New(ids.Job), p.TenantID, p.Model, p.ModelVersion, p.KeySetID, p.InputBlob, p.InputBytes, key, dbTime(s.now()),
		p.NoiseSigma, device))
	if err != nil {
		return storage.Job{}, false, err
	}
	return job, true, s.enqueueFair(ctx, tx, job)
}

// activeJobsQuery counts tenant ?1's jobs that are queued or running,
// what TenantUsage.ActiveJobs counts for the active-jobs quota, through
// jobs_tenant_model_active_idx, an index of exactly those jobs.
const activeJobsQuery = `SELECT count(*) FROM jobs WHERE tenant_id = ?1 AND status IN ('queued', 'running')`

// reprioritizeQuery moves the waiting River jobs (?4: a JSON array of
// states) of queue ?3 (inference jobs only) whose hegate job is one of
// tenant ?1's unfinished ones to priority ?2. It reads River's rows
// through their fetch index (state, queue, ...): the waiting rows, never
// the completed ones River keeps for a day. River stores args as JSONB,
// which json_extract reads.
const reprioritizeQuery = `
UPDATE river_job SET priority = ?2
WHERE state IN (SELECT value FROM json_each(?4)) AND queue = ?3 AND priority <> ?2
  AND json_extract(args, '$.job_id') IN (
    SELECT id FROM jobs WHERE tenant_id = ?1 AND status IN ('queued', 'running'))`

// waitingStates is jobqueue.WaitingStates as a JSON array.
var waitingStates = func() string {
	b, err := json.Marshal(jobqueue.WaitingStates)
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// enqueueFair enqueues job, just inserted in tx, at the River priority of
// its tenant's backlog (jobqueue.Priority of the tenant's other queued or
// running jobs, counted in tx), and moves the tenant's other waiting River
// jobs to that priority, so that a tenant with a short backlog overtakes
// one with a long one; see the jobqueue package comment. The transaction
// is the only writer (BEGIN IMMEDIATE), so the count is exact.
func (s *Store) enqueueFair(ctx context.Context, tx *sql.Tx, job storage.Job) error {
	var active int64
	if err := tx.QueryRowContext(ctx, activeJobsQuery, job.TenantID).Scan(&active); err != nil {
		return fmt.Errorf("counting the backlog: %w", translate(err))
	}
	priority := jobqueue.Priority(active - 1) // the count includes job
	if err := s.queue.Enqueue(ctx, tx, job.ID, priority); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, reprioritizeQuery, job.TenantID, priority, jobqueue.QueueName, waitingStates); err != nil {
		return fmt.Errorf("reprioritizing the backlog: %w", translate(err))
	}
	return nil
}

// readyVersion returns nil if the tenant's model has the version, not
// deleted and ready; ErrNotFound if it has no such version, ErrConflict if
// it is not ready.
func readyVersion(ctx context.Context, tx *sql.Tx, tenant hegate.TenantID, name hegate.ModelID, version int) error {
	var status storage.ModelStatus
	err := tx.QueryRowContext(ctx,
		`SELECT status FROM model_versions
		 WHERE tenant_id = ?1 AND name = ?2 AND version = ?3 AND deleted_at IS NULL`,
		tenant, name, version).Scan(&status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: model %s has no version %d", storage.ErrNotFound, name, version)
	case err != nil:
		return translate(err)
	case status != storage.ModelReady:
		return fmt.Errorf("%w: model %s version %d is %s", storage.ErrConflict, name, version, status)
	}
	return nil
}

// GetJob returns the tenant's job or ErrNotFound.
func (s *Store) GetJob(ctx context.Context, tenant hegate.TenantID, id hegate.JobID) (storage.Job, error) {
	j, err := scanJob(s.db.QueryRowContext(ctx,
		`SELECT `+jobColumns+` FROM jobs WHERE tenant_id = ?1 AND id = ?2`, tenant, id))
	if err != nil {
		return storage.Job{}, fmt.Errorf("getting job %s: %w", id, err)
	}
	return j, nil
}

// ListJobs returns the tenant's most recent jobs, newest first: at most
// limit, and never more than 1000. A limit <= 0 returns no jobs.
func (s *Store) ListJobs(ctx context.Context, tenant hegate.TenantID, limit int) ([]storage.Job, error) {
	if limit <= 0 {
		return []storage.Job{}, nil
	}
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+jobColumns+` FROM jobs WHERE tenant_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2`,
		tenant, min(limit, maxListJobs))
	if err != nil {
		return nil, fmt.Errorf("listing jobs of tenant %s: %w", tenant, translate(err))
	}
	out, err := collect(rows, func(row scanner) (storage.Job, error) { return scanJob(row) })
	if err != nil {
		return nil, fmt.Errorf("listing jobs of tenant %s: %w", tenant, err)
	}
	return out, nil
}

// StartJob moves a queued or running job to running and counts the attempt;
// StartedAt keeps the first attempt's time. ErrConflict if the job is
// terminal, ErrNotFound if there is none.
func (s *Store) StartJob(ctx context.Context, id hegate.JobID) (storage.Job, error) {
	var j storage.Job
	err := s.inTx(ctx, func(tx *sql.Tx) (err error) {
		j, err = transition(ctx, tx, false, "", id,
			`UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = COALESCE(started_at, ?2)
			 WHERE id = ?1 AND status IN ('queued', 'running') RETURNING `+jobColumns,
			[]any{id, dbTime(s.now())})
		return err
	})
	if err != nil {
		return storage.Job{}, fmt.Errorf("starting job %s: %w", id, err)
	}
	return j, nil
}

// CompleteJob marks a running job succeeded with its result and settles
// its reservation in the same transaction; ErrConflict if it is not
// running, ErrNotFound if there is none.
func (s *Store) CompleteJob(ctx context.Context, id hegate.JobID, resultBlob string, resultBytes int64) (storage.Job, error) {
	j, err := s.finishJob(ctx, false, "", id, storage.PrivacySettled, storage.ActorWorker, budgets.ReasonComplete,
		`UPDATE jobs SET status = 'succeeded', result_blob = ?2, result_bytes = ?3, finished_at = ?4, `+moveReservation(storage.PrivacySettled)+`
		 WHERE id = ?1 AND status = 'running'`,
		id, resultBlob, resultBytes, dbTime(s.now()))
	if err != nil {
		return storage.Job{}, fmt.Errorf("completing job %s: %w", id, err)
	}
	return j, nil
}

// FailJob marks a queued or running job failed with a client-safe reason
// and refunds its reservation in the same transaction; ErrConflict if it
// is terminal, ErrNotFound if there is none.
func (s *Store) FailJob(ctx context.Context, id hegate.JobID, reason string) (storage.Job, error) {
	j, err := s.finishJob(ctx, false, "", id, storage.PrivacyRefunded, storage.ActorWorker, budgets.ReasonFail,
		`UPDATE jobs SET status = 'failed', error = ?2, finished_at = ?3, `+moveReservation(storage.PrivacyRefunded)+`
		 WHERE id = ?1 AND status IN ('queued', 'running')`,
		id, reason, dbTime(s.now()))
	if err != nil {
		return storage.Job{}, fmt.Errorf("failing job %s: %w", id, err)
	}
	return j, nil
}

// CancelJob cancels the tenant's queued job and refunds its reservation
// in the same transaction; ErrNotFound if the tenant has no such job,
// ErrConflict if it is no longer queued. The River job stays queued and
// completes without calling the handler.
func (s *Store) CancelJob(ctx context.Context, tenant hegate.TenantID, id hegate.JobID) (storage.Job, error) {
	j, err := s.finishJob(ctx, true, tenant, id, storage.PrivacyRefunded, storage.ActorTenant, budgets.ReasonCancel,
		`UPDATE jobs SET status = 'cancelled', finished_at = ?3, `+moveReservation(storage.PrivacyRefunded)+`
		 WHERE tenant_id = ?1 AND id = ?2 AND status = 'queued'`,
		tenant, id, dbTime(s.now()))
	if err != nil {
		return storage.Job{}, fmt.Errorf("cancelling job %s: %w", id, err)
	}
	return j, nil
}

// ExpireJobs clears the blob references of at most p.Limit terminal jobs
// that finished before p.FinishedBefore, oldest first, and returns them
// with the blobs nothing references any more; see storage.Jobs.
//
// The transaction begins IMMEDIATE, so it is the only writer of the
// database (in this process and in any other sharing the file) from its
// first statement to its commit: the reference check sees every committed
// row, and no other ExpireJobs or DeleteKeySet can interleave.
func (s *Store) ExpireJobs(ctx context.Context, p storage.ExpireJobsParams) (storage.ExpiredJobs, error) {
	if err := validate.ExpireJobs(p); err != nil {
		return storage.ExpiredJobs{}, fmt.Errorf("expiring jobs: %w", err)
	}
	out := storage.ExpiredJobs{Jobs: []hegate.JobID{}, Blobs: []string{}}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx,
			`SELECT id, input_blob, result_blob FROM jobs
			 WHERE blobs_expired_at IS NULL AND finished_at IS NOT NULL AND finished_at < ?1
			   AND status IN ('succeeded', 'failed', 'cancelled')
			 ORDER BY finished_at, id LIMIT ?2`,
			dbTime(p.FinishedBefore), p.Limit)
		if err != nil {
			return translate(err)
		}
		var held []string
		picked, err := collect(rows, func(row scanner) (hegate.JobID, error) {
			var (
				id         hegate.JobID
				input, res string
			)
			if err := row.Scan(&id, &input, &res); err != nil {
				return "", translate(err)
			}
			held = append(held, input, res)
			return id, nil
		})
		if err != nil || len(picked) == 0 {
			return err
		}
		ids, err := json.Marshal(picked)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE jobs SET input_blob = '', result_blob = '', blobs_expired_at = ?2
			 WHERE id IN (SELECT value FROM json_each(?1))`,
			string(ids), dbTime(s.now())); err != nil {
			return translate(err)
		}
		free, err := unreferencedBlobs(ctx, tx, held)
		if err != nil {
			return err
		}
		out = storage.ExpiredJobs{Jobs: picked, Blobs: free}
		return nil
	})
	if err != nil {
		return storage.ExpiredJobs{}, fmt.Errorf("expiring jobs finished before %s: %w", p.FinishedBefore.UTC().Format(timeLayout), err)
	}
	return out, nil
}

// UnreferencedBlobs returns the keys among keys that no job, key set or
// model version names; see storage.BlobReferences.
func (s *Store) UnreferencedBlobs(ctx context.Context, keys []string) ([]string, error) {
	free, err := unreferencedBlobs(ctx, s.db, keys)
	if err != nil {
		return nil, fmt.Errorf("checking blob references: %w", err)
	}
	return free, nil
}

// unreferencedBlobs returns the keys among candidates, sorted and without
// duplicates or "", that no job, no key set and no model version that is
// not deleted (deleted ones hold empty keys) references. Run it in the
// transaction that removed the references, after removing them.
func unreferencedBlobs(ctx context.Context, q querier, candidates []string) ([]string, error) {
	keys := slices.DeleteFunc(slices.Clone(candidates), func(k string) bool { return k == "" })
	slices.Sort(keys)
	keys = slices.Compact(keys)
	if len(keys) == 0 {
		return []string{}, nil
	}
	list, err := json.Marshal(keys)
	if err != nil {
		return nil, err
	}
	// The "<> ''" terms let SQLite use the partial indexes on the blob columns.
	rows, err := q.QueryContext(ctx,
		`SELECT c.value FROM json_each(?1) AS c
		 WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE input_blob = c.value AND input_blob <> '')
		   AND NOT EXISTS (SELECT 1 FROM jobs WHERE result_blob = c.value AND result_blob <> '')
		   AND NOT EXISTS (SELECT 1 FROM key_sets WHERE blob_key = c.value)
		   AND NOT EXISTS (SELECT 1 FROM model_versions WHERE source_blob = c.value AND source_blob <> '')
		   AND NOT EXISTS (SELECT 1 FROM model_versions WHERE graph_blob = c.value AND graph_blob <> '')
		 ORDER BY c.value`, string(list))
	if err != nil {
		return nil, translate(err)
	}
	return collect(rows, func(row scanner) (string, error) {
		var k string
		if err := row.Scan(&k); err != nil {
			return "", translate(err)
		}
		return k, nil
	})
}

// querier is a *sql.Tx or the *sql.DB.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// transition runs in tx a conditional UPDATE ... RETURNING jobColumns on
// one job, and any further columns into extra. When it changes no row it
// tells why: ErrNotFound if the job does not exist (or belongs to another
// tenant than tenant when scoped), else ErrConflict naming its status.
func transition(ctx context.Context, tx *sql.Tx, scoped bool, tenant hegate.TenantID, id hegate.JobID, query string, args []any, extra ...any) (storage.Job, error) {
	j, err := scanJob(tx.QueryRowContext(ctx, query, args...), extra...)
	if !errors.Is(err, errNoRows) {
		return j, err
	}
	var (
		owner  hegate.TenantID
		status storage.JobStatus
	)
	if err := tx.QueryRowContext(ctx, `SELECT tenant_id, status FROM jobs WHERE id = ?1`, id).Scan(&owner, &status); err != nil {
		return storage.Job{}, translate(err)
	}
	if scoped && owner != tenant {
		return storage.Job{}, storage.ErrNotFound
	}
	return storage.Job{}, fmt.Errorf("%w: job is %s", storage.ErrConflict, status)
}

// moveReservation is the SET term of a job's final transition that moves
// its reservation, if it has one, to state to (settled or refunded).
func moveReservation(to string) string {
	return `privacy_state = CASE privacy_state WHEN 'reserved' THEN '` + to + `' ELSE privacy_state END`
}

// finishJob ends a job with query, a conditional UPDATE (without
// RETURNING) whose SET includes moveReservation(to), and in the same
// transaction settles (to == PrivacySettled) or refunds the job's
// reservation in the periods it was made in, as actor for reason; see
// transition for the errors. A job that reaches a final state is never
// touched again, so finding it in state to after the UPDATE means this
// call moved it there: it settles or refunds once.
func (s *Store) finishJob(ctx context.Context, scoped bool, tenant hegate.TenantID, id hegate.JobID,
	to, actor, reason, query string, args ...any,
) (j storage.Job, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var tenantStart, globalStart nullTime
		j, err = transition(ctx, tx, scoped, tenant, id,
			query+` RETURNING `+jobColumns+`, privacy_period_start, global_period_start`, args,
			&tenantStart, &globalStart)
		if err != nil || j.PrivacyState != to {
			return err
		}
		return s.release(ctx, tx, j, tenantStart.ptr(), globalStart.ptr(), actor, reason)
	})
	if err != nil {
		return storage.Job{}, err
	}
	return j, nil
}

// jobStatus returns a job's status, whoever owns it, or ErrNotFound: the
// status lookup of the workers' jobqueue.StoreHooks.
func (s *Store) jobStatus(ctx context.Context, id hegate.JobID) (storage.JobStatus, error) {
	var status storage.JobStatus
	if err := s.db.QueryRowContext(ctx, `SELECT status FROM jobs WHERE id = ?1`, id).Scan(&status); err != nil {
		return "", translate(err)
	}
	return status, nil
}

// inTx runs fn in an IMMEDIATE transaction, committing if it returns nil
// and rolling back if it returns an error or panics (the panic goes on
// after the rollback, and the connection is free again). fn must use only
// tx: the Store has one connection, which tx holds. fn's error is returned
// as it is.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", translate(err))
	}
	// Runs on an error and on a panic; after Commit it is a no-op
	// (sql.ErrTxDone).
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", translate(err))
	}
	return nil
}

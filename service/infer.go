package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/dp"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/storage"
)

// Inference: the policy that admits it, the key set it names, its cost,
// and the job that is created with its reservation in one transaction.

// ReasonUnrecorded is the DeleteBlobs reason of a blob written for a row
// that was never recorded.
const ReasonUnrecorded = "unrecorded"

// dropTimeout bounds dropUnrecorded: the store it asks may be the very
// thing that failed, and the orphan sweeper deletes what it leaves.
const dropTimeout = 5 * time.Second

// AdmitInference refuses an inference of m that the tenant's policy does
// not admit, before its body is read: an API key where the policy
// requires an attested device, or a device whose format or attestation
// status it does not accept.
func (s *Service) AdmitInference(ctx context.Context, p Principal, m catalog.Model) error {
	return s.checkInferPolicy(ctx, "oip.infer", p, m.Name)
}

// InferParams are the inputs of Infer.
type InferParams struct {
	Model          catalog.Model
	KeySetID       hegate.KeySetID
	Ciphertext     []byte // checked against the model before anything is stored
	IdempotencyKey string
}

// Infer creates the job of an inference and reserves its privacy cost in
// one transaction. created is false for a replay of an idempotency key,
// which returns the existing job and charges nothing. A refused
// reservation is KindBudgetExhausted, as a *RetryAfterError when the
// budget renews.
func (s *Service) Infer(ctx context.Context, p Principal, in InferParams) (storage.Job, bool, error) {
	const op = "oip.infer"
	m := in.Model
	if err := s.checkInferPolicy(ctx, op, p, m.Name); err != nil {
		return storage.Job{}, false, err
	}
	if _, err := s.keySetFor(ctx, op, p.Tenant, m, in.KeySetID); err != nil {
		return storage.Job{}, false, err
	}
	if err := m.CheckCiphertext(in.Ciphertext); err != nil {
		return storage.Job{}, false, wrap(err, "checking ciphertext for model %s", m.ID())
	}
	cost, err := s.ChargeFor(ctx, op, p.Tenant, m)
	if err != nil {
		return storage.Job{}, false, err
	}
	blob, err := s.blobs.Put(ctx, bytes.NewReader(in.Ciphertext), int64(len(in.Ciphertext)))
	if err != nil {
		return storage.Job{}, false, hegate.E(op, hegate.KindInternal, fmt.Errorf("storing input ciphertext: %w", err), "")
	}
	job, created, err := s.createPaidJob(ctx, p, m, storage.CreateJobParams{
		TenantID:       p.Tenant,
		Model:          m.Name,
		ModelVersion:   m.Version,
		KeySetID:       in.KeySetID,
		InputBlob:      blob.Key,
		InputBytes:     blob.Size,
		IdempotencyKey: in.IdempotencyKey,
		DeviceID:       p.Device,
	}, cost)
	if err != nil {
		s.dropUnrecorded(ctx, blob.Key)
		if be := budgetProblem(op, m.Name, err); be != nil {
			return storage.Job{}, false, be
		}
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return storage.Job{}, false, hegate.E(op, hegate.KindNotFound, err, "model %s version %d was deleted", m.Name, m.Version)
		case errors.Is(err, storage.ErrConflict) && m.Version > 0:
			return storage.Job{}, false, hegate.E(op, hegate.KindConflict, err, "model %s version %d is not ready", m.Name, m.Version)
		case errors.Is(err, storage.ErrUnavailable):
			return storage.Job{}, false, unavailable(op, fmt.Errorf("creating job: %w", err))
		}
		return storage.Job{}, false, hegate.E(op, hegate.KindInternal, fmt.Errorf("creating job: %w", err), "")
	}
	if !created && job.InputBlob != blob.Key {
		// The ciphertext just stored is no row's: the job this key names
		// holds another one, or held it until it expired.
		s.dropUnrecorded(ctx, blob.Key)
	}
	// An expired job's input can no longer be compared: its model and key
	// set must match, and the replay then learns that the result expired.
	if !created && (job.Model != m.Name || job.ModelVersion != m.Version || job.KeySetID != in.KeySetID || (!job.Expired() && job.InputBlob != blob.Key)) {
		return storage.Job{}, false, hegate.E(op, hegate.KindConflict, nil, "%s %q was already used for a different request (job %s)", api.HeaderIdempotencyKey, in.IdempotencyKey, job.ID)
	}
	return job, created, nil
}

// createPaidJob creates the job and reserves its cost in one transaction:
// either both commit or neither. A replay of an idempotency key returns
// the existing job and charges nothing.
func (s *Service) createPaidJob(ctx context.Context, p Principal, m catalog.Model, params storage.CreateJobParams, c Charge) (storage.Job, bool, error) {
	params.NoiseSigma = c.Sigma
	var (
		job     storage.Job
		created bool
	)
	err := s.store.InTx(ctx, func(tx storage.Tx) error {
		var err error
		job, created, err = tx.CreateJob(ctx, params)
		if err != nil || !created {
			return err
		}
		_, err = tx.ReserveBudget(ctx, storage.ReserveBudgetParams{
			JobID:   job.ID,
			Cost:    c.Units,
			Default: s.defBudget,
			Global:  m.Builtin(),
			Actor:   p.Actor(),
		})
		return err
	})
	return job, created, err
}

// keySetFor returns the tenant's key set id if it was validated for m.
// Another tenant's key set, or one for another model or version, is not
// found.
func (s *Service) keySetFor(ctx context.Context, op string, tenant hegate.TenantID, m catalog.Model, id hegate.KeySetID) (storage.KeySet, error) {
	ks, err := s.store.GetKeySet(ctx, tenant, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.KeySet{}, hegate.E(op, hegate.KindNotFound, err, "key set %s not found", id)
	}
	if err != nil {
		return storage.KeySet{}, unavailable(op, fmt.Errorf("loading key set %s: %w", id, err))
	}
	if ks.Model != m.KeyID() {
		return storage.KeySet{}, hegate.E(op, hegate.KindNotFound, nil, "key set %s was not uploaded for model %s", id, m.KeyID())
	}
	if fp := m.Manifest().Params.Fingerprint; ks.ParamsID != "" && fp != "" && ks.ParamsID != fp {
		return storage.KeySet{}, hegate.E(op, hegate.KindNotFound, nil, "key set %s was made for other parameters than model %s now uses; upload a new one", id, m.ID())
	}
	// A key set stored by an older version (no public key) cannot release
	// results: refuse it now rather than charge for a job that must fail.
	rc, err := s.blobs.Open(ctx, ks.BlobKey)
	if err != nil {
		return storage.KeySet{}, hegate.E(op, hegate.KindInternal, fmt.Errorf("opening key set %s: %w", id, err), "")
	}
	head := make([]byte, he.KeySetHeaderBytes)
	_, err = io.ReadFull(rc, head)
	rc.Close()
	if err != nil {
		return storage.KeySet{}, hegate.E(op, hegate.KindInternal, fmt.Errorf("reading key set %s: %w", id, err), "")
	}
	if err := he.CheckKeySetVersion(head); err != nil {
		return storage.KeySet{}, hegate.E(op, hegate.KindInvalid, err, "key set %s: %s", id, hegate.DetailOf(err))
	}
	return ks, nil
}

// RetryAfterError carries the time a client may try again (Retry-After).
type RetryAfterError struct {
	Err error
	At  time.Time
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// budgetProblem turns a refused reservation into the client's error: 429,
// with the renewal as the time to retry when there is one.
func budgetProblem(op string, m hegate.ModelID, err error) error {
	var be *storage.BudgetExhaustedError
	if !errors.As(err, &be) {
		return nil
	}
	e := hegate.E(op, hegate.KindBudgetExhausted, err, "the privacy budget of model %s has rho %s left this period; one query costs %s",
		m, dp.Rho(be.Left), dp.Rho(be.Cost))
	if be.Scope == storage.ScopeGlobal {
		// What is left of a global budget tells of other tenants' use.
		e = hegate.E(op, hegate.KindBudgetExhausted, err, "the global privacy budget of model %s, shared by all tenants, cannot pay for another query this period", m)
	}
	if be.RenewsAt.IsZero() {
		return e
	}
	return &RetryAfterError{Err: hegate.E(op, hegate.KindBudgetExhausted, err, "%s; it renews at %s", hegate.DetailOf(e), be.RenewsAt.UTC().Format(time.RFC3339)), At: be.RenewsAt}
}

// dropUnrecorded deletes a blob that the caller wrote but recorded no row
// for (the row already existed, another attempt recorded its own, or the
// store failed), if nothing else names it. It is best effort and outlives
// ctx's cancellation, for at most dropTimeout: failures are logged, not
// returned, and the blob is left to the orphan sweeper.
func (s *Service) dropUnrecorded(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dropTimeout)
	defer cancel()
	free, err := s.store.UnreferencedBlobs(ctx, []string{key})
	if err != nil {
		s.log.WarnContext(ctx, "checking an unrecorded blob failed; it stays on disk until the orphan sweep", "blob_key", key, "error", err.Error())
		return
	}
	if len(free) > 0 {
		s.deleteBlobs(ctx, ReasonUnrecorded, free)
	}
}

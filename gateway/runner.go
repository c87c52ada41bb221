package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/dp"
	"github.com/hegate/hegate/gateway/internal/keycache"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/storage"
)

// DefaultKeySetCacheBytes bounds the memory of parsed key sets a Runner keeps.
const DefaultKeySetCacheBytes int64 = 4 << 30

// RunnerConfig is what a Runner needs.
type RunnerConfig struct {
	// Store holds jobs and key-set records. Required.
	Store storage.Store
	// Blobs holds key sets, inputs and results. Required.
	Blobs storage.Blobs
	// Models are the built-in compiled models this worker can evaluate. At
	// least one unless Catalog is set.
	Models []*he.Model
	// Catalog resolves the jobs' models, built-in and uploaded; nil makes
	// one over Models.
	Catalog *catalog.Catalog
	// KeySetCacheBytes bounds the memory (he.KeySet.MemoryBytes) of parsed
	// key sets kept between jobs; 0 means DefaultKeySetCacheBytes.
	KeySetCacheBytes int64
	// MemoryLimit, when set, bounds the memory of the jobs this Runner
	// runs at once and the key sets it keeps between them: a job is
	// admitted only when its estimated peak (the model's EvaluationBytes
	// and EncodedBytes) fits next to the running jobs' and the idle cached
	// key sets, which are evicted first to make room; otherwise it waits
	// for running jobs to finish. A job larger than the whole limit fails
	// with a reason naming both figures. 0 means no limit.
	MemoryLimit int64
	// MaxAttempts, when set, must equal the storage.WorkerConfig.MaxAttempts
	// that Handle runs under: on the last attempt an infrastructure error
	// then fails the job with the Runner's own reason. 0 leaves the last
	// attempt to the store's workers, which fail the job when it runs out
	// of attempts.
	MaxAttempts int
	// Logger receives one line per job; nil discards. It never receives
	// key, ciphertext or result content.
	Logger *slog.Logger
	// Metrics collects job and cache metrics; nil makes a private set.
	Metrics *Metrics
	// Clock tells the time for durations; nil means time.Now.
	Clock func() time.Time
	// JobEvents, shared with the Server of the same process, is told of
	// every job this Runner finishes; nil means nobody is told.
	JobEvents *JobEvents
}

// Validate reports the first problem with the configuration, naming the field.
func (c RunnerConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return hegate.E("gateway.RunnerConfig.Validate", hegate.KindInvalid, nil, "gateway: RunnerConfig."+format, args...)
	}
	switch {
	case c.Store == nil:
		return bad("Store is nil")
	case c.Blobs == nil:
		return bad("Blobs is nil")
	case c.KeySetCacheBytes < 0:
		return bad("KeySetCacheBytes is negative (%d)", c.KeySetCacheBytes)
	case c.MaxAttempts < 0:
		return bad("MaxAttempts is negative (%d)", c.MaxAttempts)
	case c.MemoryLimit < 0:
		return bad("MemoryLimit is negative (%d)", c.MemoryLimit)
	}
	if err := validateModels(c.Models, "Models", c.Catalog != nil); err != nil {
		return bad("%v", err)
	}
	return nil
}

// Runner evaluates queued jobs: Handle is a storage.JobHandler. It is safe
// for concurrent use; parsed key sets are shared through a cache bounded by
// memory, and two jobs that need the same key set parse it once.
type Runner struct {
	store       storage.Store
	blobs       storage.Blobs
	catalog     *catalog.Catalog
	maxAttempts int
	log         *slog.Logger
	metrics     *Metrics
	now         func() time.Time
	cache       *keycache.Cache[*he.KeySet]
	memory      *memoryBudget // nil without RunnerConfig.MemoryLimit
	events      *JobEvents
}

// NewRunner validates cfg and builds a Runner.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.KeySetCacheBytes == 0 {
		cfg.KeySetCacheBytes = DefaultKeySetCacheBytes
	}
	r := &Runner{
		store:       cfg.Store,
		blobs:       cfg.Blobs,
		catalog:     cfg.Catalog,
		maxAttempts: cfg.MaxAttempts,
		log:         cfg.Logger,
		metrics:     cfg.Metrics,
		now:         cfg.Clock,
		events:      cfg.JobEvents,
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.metrics == nil {
		r.metrics = NewMetrics()
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.catalog == nil {
		cat, err := catalog.New(catalog.Config{Store: cfg.Store, Blobs: cfg.Blobs, Builtin: cfg.Models, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		r.catalog = cat
	}
	m := r.metrics
	r.cache = keycache.New(cfg.KeySetCacheBytes, (*he.KeySet).MemoryBytes, keycache.Hooks{
		Hit:   m.cacheHits.Inc,
		Miss:  m.cacheMisses.Inc,
		Evict: m.cacheEvictions.Inc,
		Bytes: func(n int64) { m.cacheBytes.Set(float64(n)) },
	})
	if cfg.MemoryLimit > 0 {
		r.memory = newMemoryBudget(cfg.MemoryLimit, r.cache.IdleBytes, r.cache.EvictIdle)
	}
	return r, nil
}

// Handle runs one job: it starts it, evaluates the model on the input
// ciphertext with the tenant's key set, stores the result and completes the
// job.
//
// A client-fault error (a key set or ciphertext the model rejects, a key
// set deleted since) fails the job with its client-safe detail and returns
// nil: retrying cannot help. An infrastructure error is returned so that the
// queue retries; on the last attempt (RunnerConfig.MaxAttempts) the job is
// failed.
func (r *Runner) Handle(ctx context.Context, id hegate.JobID) (err error) {
	ctx, span := tracer.Start(ctx, "hegate.job", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("hegate.job_id", string(id))))
	defer func() { endSpan(span, err) }()
	return r.handle(ctx, id)
}

func (r *Runner) handle(ctx context.Context, id hegate.JobID) error {
	start := r.now()
	job, err := r.store.StartJob(ctx, id)
	switch {
	case errors.Is(err, storage.ErrConflict):
		// Cancelled while queued, or finished by an earlier attempt.
		r.log.InfoContext(ctx, "job skipped: already finished", "job_id", id)
		r.metrics.jobOutcome("", "skipped")
		return nil
	case errors.Is(err, storage.ErrNotFound):
		r.log.WarnContext(ctx, "job skipped: no such job", "job_id", id)
		r.metrics.jobOutcome("", "skipped")
		return nil
	case err != nil:
		return fmt.Errorf("starting job %s: %w", id, err)
	}
	log := r.log.With(
		slog.String("job_id", string(job.ID)),
		slog.String("model", string(job.Model)),
		slog.String("tenant", string(job.TenantID)),
		slog.Int("attempt", job.Attempts),
	)

	trace.SpanFromContext(ctx).SetAttributes(attribute.String("hegate.model", string(job.Model)), attribute.Int("hegate.attempt", job.Attempts))
	ectx, espan := tracer.Start(ctx, "hegate.evaluate", trace.WithAttributes(attribute.String("hegate.model", string(job.Model))))
	out, stats, cacheHit, err := r.evaluate(ectx, job)
	espan.SetAttributes(attribute.Bool("hegate.key_set_cached", cacheHit), attribute.Int("hegate.rotations", stats.Cost.Rotations),
		attribute.Int("hegate.rescales", stats.Cost.Rescales), attribute.Int64("hegate.evaluation_ms", stats.Duration.Milliseconds()))
	endSpan(espan, err)
	if err != nil {
		return r.fail(ctx, log, job, start, err)
	}
	blob, err := r.blobs.Put(ctx, bytes.NewReader(out), int64(len(out)))
	if err != nil {
		return r.fail(ctx, log, job, start, fmt.Errorf("storing result: %w", err))
	}
	err = record(ctx, func(ctx context.Context) error {
		_, err := r.store.CompleteJob(ctx, job.ID, blob.Key, blob.Size)
		return err
	})
	if err != nil {
		if errors.Is(err, storage.ErrConflict) {
			log.InfoContext(ctx, "job finished elsewhere; result dropped")
			dropUnrecorded(ctx, r.store, r.blobs, r.metrics, r.log, blob.Key)
			return nil
		}
		return r.fail(ctx, log, job, start, fmt.Errorf("completing job: %w", err))
	}
	r.events.finished(job.ID)
	r.metrics.jobOutcome(modelLabel(job), "succeeded")
	r.metrics.evaluation(modelLabel(job), stats.Duration)
	log.InfoContext(ctx, "job succeeded",
		millis("duration_ms", r.now().Sub(start)),
		millis("evaluation_ms", stats.Duration),
		slog.Bool("key_set_cached", cacheHit),
		slog.Int64("input_bytes", job.InputBytes),
		slog.Int64("result_bytes", blob.Size),
		slog.Int("rotations", stats.Cost.Rotations),
		slog.Int("plain_mults", stats.Cost.PlainMults),
		slog.Int("cipher_mults", stats.Cost.CipherMults),
		slog.Int("relins", stats.Cost.Relins),
		slog.Int("rescales", stats.Cost.Rescales),
	)
	return nil
}

// recordTimeout bounds writing a job's outcome, which happens even after
// the attempt's own context ended.
const recordTimeout = 30 * time.Second

// record runs f with ctx's values but not its cancellation, so a job's
// outcome is written even when its attempt timed out.
func record(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	return f(ctx)
}

// failJob records a job's failure; a job that is already terminal is left as is.
func (r *Runner) failJob(ctx context.Context, id hegate.JobID, reason string) error {
	defer r.events.finished(id)
	return record(ctx, func(ctx context.Context) error {
		_, err := r.store.FailJob(ctx, id, reason)
		if errors.Is(err, storage.ErrConflict) {
			return nil
		}
		return err
	})
}

// millis logs a duration in milliseconds.
func millis(key string, d time.Duration) slog.Attr {
	return slog.Float64(key, float64(d.Microseconds())/1000)
}

// clientFault reports whether err is the job's own fault, so a retry
// cannot help.
func clientFault(err error) bool {
	switch hegate.KindOf(err) {
	case hegate.KindInvalid, hegate.KindNotFound, hegate.KindTooLarge,
		hegate.KindRejected, hegate.KindForbidden, hegate.KindBudgetExhausted:
		return true
	}
	return false
}

// failedInternally is the reason recorded for a job that failed for the
// server's own reasons; the cause is only logged.
const failedInternally = "the job could not be evaluated because of a server error"

func (r *Runner) fail(ctx context.Context, log *slog.Logger, job storage.Job, start time.Time, err error) error {
	elapsed := millis("duration_ms", r.now().Sub(start))
	if clientFault(err) {
		reason := hegate.DetailOf(err)
		if reason == "" {
			reason = "the job was rejected"
		}
		if ferr := r.failJob(ctx, job.ID, reason); ferr != nil {
			return fmt.Errorf("failing job %s (%v): %w", job.ID, err, ferr)
		}
		r.metrics.jobOutcome(modelLabel(job), "failed")
		log.InfoContext(ctx, "job failed: rejected", elapsed, slog.String("error", err.Error()))
		return nil
	}
	if r.maxAttempts == 0 || job.Attempts < r.maxAttempts {
		r.metrics.jobOutcome(modelLabel(job), "retry")
		log.WarnContext(ctx, "job attempt failed; will retry", elapsed, slog.String("error", err.Error()))
		return fmt.Errorf("job %s attempt %d: %w", job.ID, job.Attempts, err)
	}
	if ferr := r.failJob(ctx, job.ID, failedInternally); ferr != nil {
		return fmt.Errorf("failing job %s (%v): %w", job.ID, err, ferr)
	}
	r.metrics.jobOutcome(modelLabel(job), "failed")
	log.ErrorContext(ctx, "job failed on its last attempt", elapsed, slog.String("error", err.Error()))
	return nil
}

// evaluate loads what the job needs and runs the model.
func (r *Runner) evaluate(ctx context.Context, job storage.Job) ([]byte, he.Stats, bool, error) {
	const op = "runner.evaluate"
	cm, err := r.catalog.Lookup(ctx, job.TenantID, job.Model, job.ModelVersion)
	if err != nil {
		// Deleted since the job was accepted, or another worker's built-in
		// model: not the client's fault.
		return nil, he.Stats{}, false, hegate.E(op, hegate.KindInternal, err, "")
	}
	m := cm.Model
	rec, cacheKey, err := r.keySetRecord(ctx, cm.KeyID(), job)
	if err != nil {
		return nil, he.Stats{}, false, err
	}
	if r.memory != nil {
		// A cached key set is this job's from now on, not idle memory to
		// evict for it.
		early, pinned, _ := r.cache.Pin(cacheKey)
		need := jobMemory(m)
		release, waited, err := r.memory.acquire(ctx, need, pinned)
		if err != nil {
			early()
			return nil, he.Stats{}, false, err
		}
		defer release()
		r.metrics.memoryWait(waited)
		if waited > 0 {
			r.log.InfoContext(ctx, "job admitted after waiting for memory", "job_id", job.ID, millis("waited_ms", waited), slog.Int64("reserved_bytes", need))
		}
		defer early()
	}
	ks, hit, unpin, err := r.keySet(ctx, m, rec, cacheKey)
	if err != nil {
		return nil, he.Stats{}, false, err
	}
	defer unpin()
	input, err := r.readInput(ctx, m, job)
	if err != nil {
		return nil, he.Stats{}, hit, err
	}
	if err := checkPaid(m, job); err != nil {
		return nil, he.Stats{}, hit, err
	}
	out, stats, err := m.Evaluate(ctx, ks, input, he.Release{Sigma: job.NoiseSigma})
	if hegate.Is(err, hegate.KindInvalid) {
		// The gateway checked this input in full when it accepted it, so
		// a stored input that fails now is a fault of ours (a damaged
		// blob), not the client's: retry, and keep the detail internal.
		err = hegate.E("runner.evaluate", hegate.KindInternal, err, "")
	}
	if err != nil {
		return nil, he.Stats{}, hit, fmt.Errorf("evaluating model %s: %w", m.ID(), err)
	}
	return out, stats, hit, nil
}

// keySetRecord reads the job's key-set record, scoped by the job's tenant
// (a key set deleted since the job was accepted fails the job), and returns
// it with its cache key.
func (r *Runner) keySetRecord(ctx context.Context, keyModel hegate.ModelID, job storage.Job) (storage.KeySet, string, error) {
	const op = "runner.keySet"
	rec, err := r.store.GetKeySet(ctx, job.TenantID, job.KeySetID)
	if errors.Is(err, storage.ErrNotFound) {
		return rec, "", hegate.E(op, hegate.KindNotFound, err, "key set %s was deleted", job.KeySetID)
	}
	if err != nil {
		return rec, "", fmt.Errorf("loading key set record %s: %w", job.KeySetID, err)
	}
	if rec.Model != keyModel {
		return rec, "", hegate.E(op, hegate.KindNotFound, nil, "key set %s was uploaded for model %s, not %s", rec.ID, rec.Model, keyModel)
	}
	// Parsed key sets depend on the bytes (the id is their hash) and on the
	// model version they were validated for (its key requirements); the
	// tenant is part of the key because uploaded models are per tenant.
	return rec, string(job.TenantID) + "/" + string(rec.Model) + "/" + string(rec.ID), nil
}

// keySet returns the parsed key set of rec through the cache, pinned there
// until unpin is called.
func (r *Runner) keySet(ctx context.Context, m *he.Model, rec storage.KeySet, key string) (_ *he.KeySet, hit bool, unpin func(), _ error) {
	const op = "runner.keySet"
	return r.cache.Acquire(ctx, key, func(ctx context.Context) (*he.KeySet, error) {
		rc, err := r.blobs.Open(ctx, rec.BlobKey)
		if err != nil {
			return nil, fmt.Errorf("opening key set %s: %w", rec.ID, err)
		}
		defer rc.Close()
		ks, err := m.ReadKeySet(io.LimitReader(rc, rec.SizeBytes))
		if err != nil {
			// It passed the check at upload: a failure now is ours.
			return nil, hegate.E(op, hegate.KindInternal, err, "")
		}
		return ks, nil
	})
}

// readInput reads the job's input ciphertext, bounded by the model's size.
func (r *Runner) readInput(ctx context.Context, m *he.Model, job storage.Job) ([]byte, error) {
	limit := m.Manifest().CiphertextBytes
	if limit <= 0 || job.InputBytes < limit {
		limit = job.InputBytes
	}
	rc, err := r.blobs.Open(ctx, job.InputBlob)
	if err != nil {
		return nil, fmt.Errorf("opening input of job %s: %w", job.ID, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading input of job %s: %w", job.ID, err)
	}
	if int64(len(b)) > limit {
		return nil, hegate.E("runner.readInput", hegate.KindInternal, nil, "stored input ciphertext exceeds the %d bytes it had when accepted", limit)
	}
	return b, nil
}

// checkPaid fails closed: a job is released only if its cost was reserved,
// and only if this worker's model prices its noise at no more than what
// was reserved (the gateway and the worker may have compiled the model
// differently, during an upgrade). Either failure is the client's to see,
// and refunds the reservation.
func checkPaid(m *he.Model, job storage.Job) error {
	const op = "runner.checkPaid"
	if job.PrivacyState != storage.PrivacyReserved || job.NoiseSigma <= 0 {
		return hegate.E(op, hegate.KindInvalid, nil, "the job was not charged to a privacy budget (accepted by an older version?): submit it again")
	}
	mech := m.Privacy()
	if mech == nil {
		return hegate.E(op, hegate.KindInvalid, nil, "model %s has no privacy mechanism here: its results cannot be released", m.ID())
	}
	rho, err := mech.RhoAt(job.NoiseSigma)
	if err != nil {
		return hegate.E(op, hegate.KindInvalid, err, "the job's noise cannot be priced: %v", err)
	}
	units, err := dp.RhoUnitsCeil(rho)
	if err != nil || int64(units) > job.PrivacyUnits {
		return hegate.E(op, hegate.KindInvalid, err, "model %s prices this answer above what was reserved for it (the model changed since the job was accepted): submit it again", m.ID())
	}
	return nil
}

// modelLabel is a job's model as a metric label: a built-in model's name
// (the operator's, a bounded set), or "uploaded" for any tenant's own
// model, whose name a tenant chose: as a label it would let tenants add
// series at will and show every scraper of /metrics what other tenants
// run.
func modelLabel(job storage.Job) string {
	if job.ModelVersion > 0 {
		return "uploaded"
	}
	return string(job.Model)
}

// Package jobqueue is the River glue that storage/postgres and storage/sqlite
// share: the job args of each kind, the worker that calls a storage handler,
// the insert-only client that enqueues inside a store transaction, the worker
// client's life cycle, and River's own migrations.
//
// It is generic over the River driver's transaction type (pgx.Tx for
// riverpgxv5, *sql.Tx for riversqlite), so both engines use the same code.
//
// There are two kinds of River job, each in its own queue so that a process
// fetches only the kinds it has a handler for:
//
//   - an inference job, kind Kind in queue QueueName, whose args carry only
//     the hegate job id;
//   - a compile job, kind CompileKind in queue CompileQueueName, whose args
//     carry only the tenant, model name and version.
//
// The store's rows (jobs, model_versions) are the source of truth for the
// work's state; River only decides who works it and when.
//
// # Fair dispatch
//
// River fetches the available jobs of a queue by priority (1 first, 4
// last), then by scheduled time, then by id. Inference jobs use the
// priority to share the workers between tenants: each is inserted with
// Priority(backlog), where backlog is the number of its tenant's inference
// jobs that are queued or running before it (counted in the inserting
// transaction, as the active-jobs quota counts them), and the same
// transaction moves the tenant's other waiting River jobs (available,
// retryable or scheduled: WaitingStates) to that priority too (CreateJob
// in storage/postgres and storage/sqlite). So all of a tenant's waiting
// jobs carry the band of its backlog at its latest submission:
//
//	backlog  < FairShareBacklog (3)  priority 1
//	backlog  < 6                     priority 2
//	backlog  < 12                    priority 3
//	backlog >= 12                    priority 4
//
// A tenant with a short backlog is served before one with a long backlog,
// and a tenant's own jobs stay first in, first out (one priority, then
// River's order). Priorities only order the waiting jobs: a flooding
// tenant's jobs run whenever no job of a higher priority waits, so a
// tenant alone gets all the workers, and tenants that both have a backlog
// of 12 or more share the last band, first in, first out: one cannot
// starve the other.
//
// What it is not: a tenant that keeps a backlog below 12 while keeping
// every worker busy can delay a flooding tenant indefinitely (River has no
// ageing); a band is set at submission, so a tenant whose backlog drained
// keeps its lower priority until it submits again; and a tenant whose
// burst reaches 12 shares the last band with a flooder, first in, first
// out, which it leaves only if its share of the workers there (about its
// part of the waiting jobs) exceeds its demand. A rule that kept a tenant
// one band ahead of any tenant with a larger backlog was tried and
// dropped: of two tenants that both want more than the workers give, the
// one that fell behind has the larger backlog (its requests stop waiting
// and it submits more) and never got a worker again (docs/benchmarks.md).
// Compile jobs are not affected (their own queue, priority 1).
package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

const (
	// Kind is the River job kind of an inference job.
	Kind = "hegate_inference"
	// QueueName is the River queue that inference jobs go to.
	QueueName = "hegate"
	// CompileKind is the River job kind of a model compile job.
	CompileKind = "hegate_compile_model"
	// CompileQueueName is the River queue that compile jobs go to.
	CompileQueueName = "hegate_compile"
	// MaxAttemptsLimit is the River max_attempts stored with every job and
	// so the largest WorkerConfig.MaxAttempts a worker may use. The worker
	// enforces its own, smaller, MaxAttempts (see worker.Work); this limit
	// only matters when a worker process dies mid-job again and again.
	MaxAttemptsLimit = 100
	// maxConcurrency bounds WorkerConfig.Concurrency and CompileConcurrency.
	maxConcurrency = 10_000

	// retryBase and retryMax bound the exponential retry backoff:
	// 1s, 2s, 4s, ... at most 5 minutes.
	retryBase = time.Second
	retryMax  = 5 * time.Minute

	// giveUpTimeout bounds the store update that records a job's final failure.
	giveUpTimeout = 10 * time.Second

	// maxRescueMargin bounds how much longer than its timeout an attempt
	// may run before River's rescuer hands its job to another worker (see
	// RescueAfter). It covers an attempt that is returning after its
	// timeout and recording its outcome (the Runner's record takes at most
	// 30 s, GiveUp at most giveUpTimeout).
	maxRescueMargin = time.Minute
	// minRescueMargin is the least margin: what an attempt past its
	// timeout may still take to record its outcome (the Runner's record,
	// 30 s, then GiveUp, giveUpTimeout), so that a short timeout does not
	// hand a live attempt's job to a second worker.
	minRescueMargin = 30*time.Second + giveUpTimeout
	// NoLimitRescueAfter is how long a job of a kind without a timeout
	// runs before River's rescuer hands it to another worker: without a
	// limit, a live attempt cannot be told from the attempt of a worker
	// that died, so it is a guess, River's own default.
	NoLimitRescueAfter = time.Hour
)

// RescueAfter is how long an attempt with the given timeout (0: none) may
// have been running before River's rescuer takes it for the attempt of a
// dead worker (kill -9, a lost machine) and schedules the job again, for
// another worker: twice the timeout, at least the timeout plus
// minRescueMargin and at most the timeout plus a minute;
// NoLimitRescueAfter without a timeout. Once the attempt's own timeout
// has passed, a live worker has stopped the attempt and is recording
// its outcome, which the margin leaves time for; a rescue that comes
// anyway only makes a second attempt that finds the work finished (the
// store's rows settle a job once, whoever finishes it).
func RescueAfter(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return NoLimitRescueAfter
	}
	return timeout + max(minRescueMargin, min(timeout, maxRescueMargin))
}

// The backlog bands of Priority: a tenant whose inference backlog (its
// jobs queued or running, the job being inserted not counted) is below
// FairShareBacklog gets priority 1, and one step lower each time the
// backlog doubles: below 2×FairShareBacklog priority 2, below
// 4×FairShareBacklog priority 3, else priority 4 (River's lowest).
//
// The last band starts below the gateway's default admission cap: a
// flooding tenant's backlog is about that cap, 16 inferences in flight (up
// to the active-jobs quota, 64, when its requests stop waiting), so it
// sits in the last band, and a modest tenant's burst has to reach 12 to
// join it there. Bands of 4, 16 and 64 were tried: a flooder at its cap
// of 16 was then in band 3 with any tenant whose backlog was 4 to 15,
// first in, first out (docs/benchmarks.md).
const (
	FairShareBacklog = 3
	backlogBand2     = 2 * FairShareBacklog
	backlogBand3     = 4 * FairShareBacklog

	// HighestPriority and LowestPriority are River's bounds.
	HighestPriority = 1
	LowestPriority  = 4
)

// Priority returns the River priority of an inference job whose tenant
// has backlog inference jobs queued or running besides it; see the package
// comment.
func Priority(backlog int64) int {
	switch {
	case backlog < FairShareBacklog:
		return HighestPriority
	case backlog < backlogBand2:
		return 2
	case backlog < backlogBand3:
		return 3
	}
	return LowestPriority
}

// WaitingStates are the River states of an inference job that has not
// started its next attempt: the jobs whose priority a tenant's new
// submission moves to its current band.
var WaitingStates = []string{"available", "retryable", "scheduled"}

// InferenceArgs are the args of an inference job: an id, never a blob.
type InferenceArgs struct {
	JobID hegate.JobID `json:"job_id"`
}

// Kind returns the River job kind.
func (InferenceArgs) Kind() string { return Kind }

// InsertOpts puts inference jobs in QueueName with MaxAttemptsLimit.
func (InferenceArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueName, MaxAttempts: MaxAttemptsLimit}
}

// CompileArgs are the args of a compile job: the model version's key,
// never a blob.
type CompileArgs struct {
	TenantID hegate.TenantID `json:"tenant_id"`
	Model    hegate.ModelID  `json:"model"`
	Version  int             `json:"version"`
}

// Kind returns the River job kind.
func (CompileArgs) Kind() string { return CompileKind }

// InsertOpts puts compile jobs in CompileQueueName with MaxAttemptsLimit.
func (CompileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: CompileQueueName, MaxAttempts: MaxAttemptsLimit}
}

// String names the version in errors and logs.
func (a CompileArgs) String() string {
	return fmt.Sprintf("model %s/%s version %d", a.TenantID, a.Model, a.Version)
}

// Config configures a Queue.
type Config struct {
	// Schema is the PostgreSQL schema of River's tables; empty for the
	// search_path (and always empty on SQLite).
	Schema string
	// Logger receives River's logs. Required.
	Logger *slog.Logger
	// Now is the clock used for retry times. Required.
	Now func() time.Time
}

func (c Config) validate() error {
	switch {
	case c.Logger == nil:
		return errors.New("jobqueue: Config.Logger is required")
	case c.Now == nil:
		return errors.New("jobqueue: Config.Now is required")
	}
	return nil
}

// Hooks are what the worker of jobs with args A needs from the store
// around the handler.
type Hooks[A any] struct {
	// Runnable reports whether the work is still wanted: false when it is
	// terminal (for example a job cancelled while queued) or gone. The
	// handler is not called then and the River job completes.
	Runnable func(ctx context.Context, args A) (bool, error)
	// GiveUp records the final failure of work whose last attempt failed,
	// with a client-safe reason. Work already terminal is not an error.
	GiveUp func(ctx context.Context, args A, reason string) error
}

// StoreHooks returns the Hooks of inference jobs from two of a store's
// operations: status, which returns a job's status whoever owns it or
// ErrNotFound, and fail, the store's Jobs.FailJob. A job is runnable unless
// it is terminal or gone; giving up fails it unless it is already terminal
// or gone.
func StoreHooks(
	status func(ctx context.Context, id hegate.JobID) (storage.JobStatus, error),
	fail func(ctx context.Context, id hegate.JobID, reason string) (storage.Job, error),
) Hooks[InferenceArgs] {
	return Hooks[InferenceArgs]{
		Runnable: func(ctx context.Context, a InferenceArgs) (bool, error) {
			s, err := status(ctx, a.JobID)
			switch {
			case errors.Is(err, storage.ErrNotFound):
				return false, nil
			case err != nil:
				return false, fmt.Errorf("checking job %s: %w", a.JobID, err)
			}
			return !s.Terminal(), nil
		},
		GiveUp: func(ctx context.Context, a InferenceArgs, reason string) error {
			_, err := fail(ctx, a.JobID, reason)
			if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			return err
		},
	}
}

// ModelHooks returns the Hooks of compile jobs from two of a store's
// operations: status, which returns the status of a version that is not
// deleted or ErrNotFound, and fail, the store's Models.MarkModelFailed. A
// version is runnable while it is compiling; giving up fails it unless it
// is no longer compiling or gone.
func ModelHooks(
	status func(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int) (storage.ModelStatus, error),
	fail func(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int, reason string) (storage.ModelVersion, error),
) Hooks[CompileArgs] {
	return Hooks[CompileArgs]{
		Runnable: func(ctx context.Context, a CompileArgs) (bool, error) {
			s, err := status(ctx, a.TenantID, a.Model, a.Version)
			switch {
			case errors.Is(err, storage.ErrNotFound):
				return false, nil
			case err != nil:
				return false, fmt.Errorf("checking %s: %w", a, err)
			}
			return s == storage.ModelCompiling, nil
		},
		GiveUp: func(ctx context.Context, a CompileArgs, reason string) error {
			_, err := fail(ctx, a.TenantID, a.Model, a.Version, reason)
			if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			return err
		},
	}
}

func (h Hooks[A]) validate() error {
	if h.Runnable == nil || h.GiveUp == nil {
		return errors.New("jobqueue: Hooks.Runnable and Hooks.GiveUp are required")
	}
	return nil
}

// Queue enqueues jobs of both kinds and runs workers for them.
type Queue[TTx any] struct {
	driver   riverdriver.Driver[TTx]
	cfg      Config
	inserter *river.Client[TTx] // insert-only: no queues, never started

	mu      sync.Mutex
	workers *river.Client[TTx] // non-nil between Start and Stop
	works   map[string]bool    // the kinds workers has a worker for
}

// New returns a Queue over driver. It does not touch the database; inserts
// work at once, without Start.
func New[TTx any](driver riverdriver.Driver[TTx], cfg Config) (*Queue[TTx], error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	inserter, err := river.NewClient(driver, &river.Config{
		Logger: cfg.Logger,
		Schema: cfg.Schema,
	})
	if err != nil {
		return nil, fmt.Errorf("jobqueue: creating insert client: %w", err)
	}
	return &Queue[TTx]{driver: driver, cfg: cfg, inserter: inserter}, nil
}

// fetchCooldown is the least time between two fetches of new jobs.
const fetchCooldown = 5 * time.Millisecond

// Enqueue inserts the inference job for id inside tx, the transaction that
// inserts the job row, so both commit or neither does, with the River
// priority priority (Priority of the tenant's backlog; out of range is
// clamped to 1..4). A retry or a rescue keeps the priority: River reuses
// the row.
func (q *Queue[TTx]) Enqueue(ctx context.Context, tx TTx, id hegate.JobID, priority int) error {
	priority = min(max(priority, HighestPriority), LowestPriority)
	if err := q.insert(ctx, tx, InferenceArgs{JobID: id}, &river.InsertOpts{Priority: priority}); err != nil {
		return fmt.Errorf("enqueueing job %s: %w", id, err)
	}
	return nil
}

// EnqueueCompile inserts the compile job of a model version inside tx, the
// transaction that inserts the version's row, so both commit or neither
// does.
func (q *Queue[TTx]) EnqueueCompile(ctx context.Context, tx TTx, args CompileArgs) error {
	if err := q.insert(ctx, tx, args, nil); err != nil {
		return fmt.Errorf("enqueueing compilation of %s: %w", args, err)
	}
	return nil
}

func (q *Queue[TTx]) insert(ctx context.Context, tx TTx, args river.JobArgs, opts *river.InsertOpts) error {
	client := q.inserter
	q.mu.Lock()
	if q.workers != nil && q.works[args.Kind()] {
		// Inserting through the working client wakes its producer at once
		// instead of at its next poll. (A client that has no worker for
		// the kind refuses to insert it.)
		client = q.workers
	}
	q.mu.Unlock()
	_, err := client.InsertTx(ctx, tx, args, opts)
	return err
}

// ValidateWorkerConfig checks cfg and names the offending field.
func ValidateWorkerConfig(cfg storage.WorkerConfig) error {
	switch {
	case cfg.Handler == nil && cfg.CompileHandler == nil:
		return errors.New("WorkerConfig.Handler or WorkerConfig.CompileHandler is required")
	case cfg.Concurrency < 0 || (cfg.Handler != nil && cfg.Concurrency < 1):
		return fmt.Errorf("WorkerConfig.Concurrency is %d, must be >= 1", cfg.Concurrency)
	case cfg.Concurrency > maxConcurrency:
		return fmt.Errorf("WorkerConfig.Concurrency is %d, must be <= %d", cfg.Concurrency, maxConcurrency)
	case cfg.MaxAttempts < 1 || cfg.MaxAttempts > MaxAttemptsLimit:
		return fmt.Errorf("WorkerConfig.MaxAttempts is %d, must be between 1 and %d", cfg.MaxAttempts, MaxAttemptsLimit)
	case cfg.JobTimeout < 0:
		return fmt.Errorf("WorkerConfig.JobTimeout is %v, must be >= 0", cfg.JobTimeout)
	case cfg.CompileConcurrency < 0 || cfg.CompileConcurrency > maxConcurrency:
		return fmt.Errorf("WorkerConfig.CompileConcurrency is %d, must be between 0 (one) and %d", cfg.CompileConcurrency, maxConcurrency)
	case cfg.CompileTimeout < 0:
		return fmt.Errorf("WorkerConfig.CompileTimeout is %v, must be >= 0", cfg.CompileTimeout)
	}
	return nil
}

// Start starts a River client that works, until Stop or ctx ends,
// QueueName with cfg.Concurrency workers if cfg.Handler is set and
// CompileQueueName with cfg.CompileConcurrency workers if
// cfg.CompileHandler is set; a queue without a handler is not fetched from.
// The hooks of a kind without a handler may be zero. It fails if workers
// are already running.
func (q *Queue[TTx]) Start(ctx context.Context, cfg storage.WorkerConfig, inference Hooks[InferenceArgs], compile Hooks[CompileArgs]) error {
	if err := ValidateWorkerConfig(cfg); err != nil {
		return fmt.Errorf("starting workers: %w", err)
	}
	if cfg.Handler != nil {
		if err := inference.validate(); err != nil {
			return fmt.Errorf("starting workers: inference %w", err)
		}
	}
	if cfg.CompileHandler != nil {
		if err := compile.validate(); err != nil {
			return fmt.Errorf("starting workers: compile %w", err)
		}
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.workers != nil {
		select {
		case <-q.workers.Stopped(): // stopped because its Start context ended
			q.workers = nil
		default:
			return errors.New("starting workers: already started")
		}
	}

	// Both kinds get a worker even when this process works only one of
	// them (a queue without a handler is not fetched from): whichever
	// process leads River's maintenance rescues the stuck jobs of every
	// kind, and it discards those of a kind it has no worker for, and
	// reads a kind's rescue horizon from its worker (worker.Timeout).
	workers := river.NewWorkers()
	queues := map[string]river.QueueConfig{}
	works := map[string]bool{}
	inferenceHandle := func(ctx context.Context, a InferenceArgs) error { return cfg.Handler(ctx, a.JobID) }
	if cfg.Handler == nil {
		inferenceHandle = func(context.Context, InferenceArgs) error { return errNoHandler }
	}
	if err := river.AddWorkerSafely(workers, &worker[InferenceArgs]{
		what:     func(a InferenceArgs) string { return "job " + string(a.JobID) },
		failure:  "the job",
		handle:   inferenceHandle,
		hooks:    inference,
		attempts: cfg.MaxAttempts,
		timeout:  cfg.JobTimeout,
		now:      q.cfg.Now,
		logger:   q.cfg.Logger,
	}); err != nil {
		return fmt.Errorf("starting workers: registering inference worker: %w", err)
	}
	if cfg.Handler != nil {
		queues[QueueName] = river.QueueConfig{MaxWorkers: cfg.Concurrency}
		works[Kind] = true
	}
	compileHandle := func(ctx context.Context, a CompileArgs) error {
		return cfg.CompileHandler(ctx, a.TenantID, a.Model, a.Version)
	}
	if cfg.CompileHandler == nil {
		compileHandle = func(context.Context, CompileArgs) error { return errNoHandler }
	}
	if err := river.AddWorkerSafely(workers, &worker[CompileArgs]{
		what:     CompileArgs.String,
		failure:  "compilation",
		handle:   compileHandle,
		hooks:    compile,
		attempts: cfg.MaxAttempts,
		timeout:  cfg.CompileTimeout,
		now:      q.cfg.Now,
		logger:   q.cfg.Logger,
	}); err != nil {
		return fmt.Errorf("starting workers: registering compile worker: %w", err)
	}
	if cfg.CompileHandler != nil {
		queues[CompileQueueName] = river.QueueConfig{MaxWorkers: max(cfg.CompileConcurrency, 1)}
		works[CompileKind] = true
	}
	client, err := river.NewClient(q.driver, &river.Config{
		// An inference takes hundreds of milliseconds; River's default
		// 100 ms between fetches would add up to that much to each one's
		// latency when jobs arrive one after another.
		FetchCooldown: fetchCooldown,
		// Each worker gives River its kind's rescue horizon
		// (worker.Timeout) and times its attempts itself. The rescuer
		// looks at jobs running longer than RescueStuckJobsAfter and
		// takes those past their kind's horizon, so this is the smaller
		// horizon: a killed worker's inference jobs run again soon after
		// their timeout, not after the compile timeout, nor an hour.
		JobTimeout:           -1,
		RescueStuckJobsAfter: min(RescueAfter(cfg.JobTimeout), RescueAfter(cfg.CompileTimeout)),
		Logger:               q.cfg.Logger,
		MaxAttempts:          MaxAttemptsLimit,
		Queues:               queues,
		Schema:               q.cfg.Schema,
		Workers:              workers,
	})
	if err != nil {
		return fmt.Errorf("starting workers: creating client: %w", err)
	}
	if err := client.Start(ctx); err != nil {
		return fmt.Errorf("starting workers: %w", err)
	}
	q.workers, q.works = client, works
	return nil
}

// Stop waits for running jobs to finish and stops the workers. Without
// running workers it does nothing, so calling it twice is safe. If ctx ends
// first, Stop returns ctx's error and may be called again.
func (q *Queue[TTx]) Stop(ctx context.Context) error {
	q.mu.Lock()
	client := q.workers
	q.mu.Unlock()
	if client == nil {
		return nil
	}
	if err := client.Stop(ctx); err != nil {
		return fmt.Errorf("stopping workers: %w", err)
	}
	q.mu.Lock()
	if q.workers == client {
		q.workers, q.works = nil, nil
	}
	q.mu.Unlock()
	return nil
}

// Migrate applies River's pending migrations for driver in cfg.Schema.
func Migrate[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: cfg.Logger, Schema: cfg.Schema})
	if err != nil {
		return fmt.Errorf("creating job queue migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrating job queue: %w", err)
	}
	return nil
}

// worker works the jobs with args A by calling their handler.
type worker[A river.JobArgs] struct {
	river.WorkerDefaults[A]

	what     func(A) string // names the work in errors and logs: "job job_x"
	failure  string         // what failed, in the client-safe reason: "the job"
	handle   func(ctx context.Context, args A) error
	hooks    Hooks[A]
	attempts int           // WorkerConfig.MaxAttempts
	timeout  time.Duration // per attempt; 0 means none
	now      func() time.Time
	logger   *slog.Logger
}

// Work skips work that is no longer runnable, calls the handler, and turns
// a failure of the last allowed attempt (WorkerConfig.MaxAttempts) into a
// failed row and a cancelled River job, so River does not retry it further.
//
// An attempt past the last one only comes from River's rescuer, after the
// workers of the earlier attempts died (kill -9, out of memory): work that
// took down its worker that many times is given up without a further try.
func (w *worker[A]) Work(ctx context.Context, job *river.Job[A]) error {
	if job.Attempt > w.attempts {
		w.logger.ErrorContext(ctx, "jobqueue: giving up work whose workers died", "work", w.what(job.Args), "attempt", job.Attempt)
		return w.giveUp(ctx, job, job.Attempt-1, errors.New("the workers of all its attempts died"))
	}
	err := w.work(ctx, job.Args)
	if err == nil || errors.Is(err, errNotRunnable) {
		return nil
	}
	if job.Attempt < w.attempts {
		return err // River retries after NextRetry
	}
	return w.giveUp(ctx, job, job.Attempt, err)
}

// giveUp records the final failure of the work after attempts attempts
// and cancels its River job.
func (w *worker[A]) giveUp(ctx context.Context, job *river.Job[A], attempts int, err error) error {
	// The attempt's context may be spent (timeout), so record the failure
	// on a context of its own.
	giveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveUpTimeout)
	defer cancel()
	reason := fmt.Sprintf("%s failed after %d attempts", w.failure, attempts)
	if w.hooks.GiveUp == nil {
		return river.JobCancel(fmt.Errorf("%s: %w", w.what(job.Args), errNoHandler))
	}
	if gerr := w.hooks.GiveUp(giveCtx, job.Args, reason); gerr != nil {
		w.logger.ErrorContext(ctx, "jobqueue: recording failure", "work", w.what(job.Args), "error", gerr)
	}
	return river.JobCancel(fmt.Errorf("%s: giving up after attempt %d: %w", w.what(job.Args), attempts, err))
}

var (
	errNotRunnable = errors.New("work is not runnable")
	// errNoHandler fails work of a kind this process has no handler for;
	// it fetches none, so only a misconfiguration gets here.
	errNoHandler = errors.New("this process has no handler for this kind of work")
)

func (w *worker[A]) work(ctx context.Context, args A) (err error) {
	// River's context ends at the rescue horizon (Timeout); the attempt
	// ends at its own timeout, or never without one. Either way it ends
	// when River cancels the job or stops hard.
	ctx, cancel := w.attemptContext(ctx)
	defer cancel()
	if w.hooks.Runnable == nil {
		return errNoHandler // a kind this process registered for the rescuer only
	}
	runnable, err := w.hooks.Runnable(ctx, args)
	if err != nil {
		return fmt.Errorf("%s: checking state: %w", w.what(args), err)
	}
	if !runnable {
		return errNotRunnable
	}
	defer func() {
		if r := recover(); r != nil {
			w.logger.ErrorContext(ctx, "jobqueue: handler panicked", "work", w.what(args), "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%s: handler panicked: %v", w.what(args), r)
		}
	}()
	if err := w.handle(ctx, args); err != nil {
		return fmt.Errorf("%s: %w", w.what(args), err)
	}
	return nil
}

// Timeout tells River the kind's rescue horizon, RescueAfter(timeout):
// River's rescuer leaves a running job alone until then, and River's
// context of the attempt ends then. The attempt's own timeout is shorter
// and set by attemptContext.
func (w *worker[A]) Timeout(*river.Job[A]) time.Duration {
	return RescueAfter(w.timeout)
}

// attemptContext is the context of one attempt: River's, with the kind's
// timeout, or, for a kind without one, without River's deadline (the
// rescue horizon) but with River's cancellation.
func (w *worker[A]) attemptContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if w.timeout > 0 {
		return context.WithTimeout(ctx, w.timeout)
	}
	attempt, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			cancel()
		}
	})
	return attempt, func() { stop(); cancel() }
}

// NextRetry backs off exponentially: 1s after the first attempt, then 2s,
// 4s, ... at most 5 minutes.
func (w *worker[A]) NextRetry(job *river.Job[A]) time.Time {
	return w.now().Add(backoff(job.Attempt))
}

func backoff(attempt int) time.Duration {
	d := retryBase
	for i := 1; i < attempt && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

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

	// rescueMargin is how much longer than its timeout a job may run
	// before River's rescuer considers it stuck (River's default).
	rescueMargin = time.Hour
)

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
// inserts the job row, so both commit or neither does.
func (q *Queue[TTx]) Enqueue(ctx context.Context, tx TTx, id hegate.JobID) error {
	if err := q.insert(ctx, tx, InferenceArgs{JobID: id}); err != nil {
		return fmt.Errorf("enqueueing job %s: %w", id, err)
	}
	return nil
}

// EnqueueCompile inserts the compile job of a model version inside tx, the
// transaction that inserts the version's row, so both commit or neither
// does.
func (q *Queue[TTx]) EnqueueCompile(ctx context.Context, tx TTx, args CompileArgs) error {
	if err := q.insert(ctx, tx, args); err != nil {
		return fmt.Errorf("enqueueing compilation of %s: %w", args, err)
	}
	return nil
}

func (q *Queue[TTx]) insert(ctx context.Context, tx TTx, args river.JobArgs) error {
	client := q.inserter
	q.mu.Lock()
	if q.workers != nil && q.works[args.Kind()] {
		// Inserting through the working client wakes its producer at once
		// instead of at its next poll. (A client that has no worker for
		// the kind refuses to insert it.)
		client = q.workers
	}
	q.mu.Unlock()
	_, err := client.InsertTx(ctx, tx, args, nil)
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

	workers := river.NewWorkers()
	queues := map[string]river.QueueConfig{}
	works := map[string]bool{}
	if cfg.Handler != nil {
		w := &worker[InferenceArgs]{
			what:     func(a InferenceArgs) string { return "job " + string(a.JobID) },
			failure:  "the job",
			handle:   func(ctx context.Context, a InferenceArgs) error { return cfg.Handler(ctx, a.JobID) },
			hooks:    inference,
			attempts: cfg.MaxAttempts,
			timeout:  cfg.JobTimeout,
			now:      q.cfg.Now,
			logger:   q.cfg.Logger,
		}
		if err := river.AddWorkerSafely(workers, w); err != nil {
			return fmt.Errorf("starting workers: registering inference worker: %w", err)
		}
		queues[QueueName] = river.QueueConfig{MaxWorkers: cfg.Concurrency}
		works[Kind] = true
	}
	if cfg.CompileHandler != nil {
		w := &worker[CompileArgs]{
			what:    CompileArgs.String,
			failure: "compilation",
			handle: func(ctx context.Context, a CompileArgs) error {
				return cfg.CompileHandler(ctx, a.TenantID, a.Model, a.Version)
			},
			hooks:    compile,
			attempts: cfg.MaxAttempts,
			timeout:  cfg.CompileTimeout,
			now:      q.cfg.Now,
			logger:   q.cfg.Logger,
		}
		if err := river.AddWorkerSafely(workers, w); err != nil {
			return fmt.Errorf("starting workers: registering compile worker: %w", err)
		}
		queues[CompileQueueName] = river.QueueConfig{MaxWorkers: max(cfg.CompileConcurrency, 1)}
		works[CompileKind] = true
	}
	client, err := river.NewClient(q.driver, &river.Config{
		// An inference takes hundreds of milliseconds; River's default
		// 100 ms between fetches would add up to that much to each one's
		// latency when jobs arrive one after another.
		FetchCooldown: fetchCooldown,
		// Each worker sets its kind's timeout (worker.Timeout); the
		// rescuer must not take a job that is still within it.
		JobTimeout:           -1,
		RescueStuckJobsAfter: rescueMargin + max(cfg.JobTimeout, cfg.CompileTimeout),
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
func (w *worker[A]) Work(ctx context.Context, job *river.Job[A]) error {
	err := w.work(ctx, job.Args)
	if err == nil || errors.Is(err, errNotRunnable) {
		return nil
	}
	if job.Attempt < w.attempts {
		return err // River retries after NextRetry
	}

	// Last attempt: the work is given up. The attempt's context may be
	// spent (timeout), so record the failure on a context of its own.
	giveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveUpTimeout)
	defer cancel()
	reason := fmt.Sprintf("%s failed after %d attempts", w.failure, job.Attempt)
	if gerr := w.hooks.GiveUp(giveCtx, job.Args, reason); gerr != nil {
		w.logger.ErrorContext(ctx, "jobqueue: recording failure", "work", w.what(job.Args), "error", gerr)
	}
	return river.JobCancel(fmt.Errorf("%s: giving up after attempt %d: %w", w.what(job.Args), job.Attempt, err))
}

var errNotRunnable = errors.New("work is not runnable")

func (w *worker[A]) work(ctx context.Context, args A) (err error) {
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

// Timeout is the kind's timeout per attempt; -1 (River: never) for none.
func (w *worker[A]) Timeout(*river.Job[A]) time.Duration {
	if w.timeout == 0 {
		return -1
	}
	return w.timeout
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

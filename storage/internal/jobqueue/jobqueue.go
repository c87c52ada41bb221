// Package jobqueue is the River glue that storage/postgres and storage/sqlite
// share: the job args, the worker that calls a storage.JobHandler, the
// insert-only client that enqueues inside a store transaction, the worker
// client's life cycle, and River's own migrations.
//
// It is generic over the River driver's transaction type (pgx.Tx for
// riverpgxv5, *sql.Tx for riversqlite), so both engines use the same code.
//
// Every hegate job is one River job of kind Kind in queue QueueName whose
// args carry only the hegate job id; the jobs table is the source of truth
// for the job's state and River only decides who works it and when.
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
	// MaxAttemptsLimit is the River max_attempts stored with every job and
	// so the largest WorkerConfig.MaxAttempts a worker may use. The worker
	// enforces its own, smaller, MaxAttempts (see Worker.Work); this limit
	// only matters when a worker process dies mid-job again and again.
	MaxAttemptsLimit = 100

	// retryBase and retryMax bound the exponential retry backoff:
	// 1s, 2s, 4s, ... at most 5 minutes.
	retryBase = time.Second
	retryMax  = 5 * time.Minute

	// giveUpTimeout bounds the store update that records a job's final failure.
	giveUpTimeout = 10 * time.Second
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

// Hooks are what the worker needs from the store around the handler.
type Hooks struct {
	// Runnable reports whether the job still wants work: false when it is
	// terminal (for example cancelled while queued) or gone. The handler
	// is not called then and the River job completes.
	Runnable func(ctx context.Context, id hegate.JobID) (bool, error)
	// GiveUp records the final failure of a job whose last attempt failed,
	// with a client-safe reason. An already terminal job is not an error.
	GiveUp func(ctx context.Context, id hegate.JobID, reason string) error
}

// StoreHooks returns the Hooks of a store from two of its operations:
// status, which returns a job's status whoever owns it or ErrNotFound, and
// fail, the store's Jobs.FailJob. A job is runnable unless it is terminal or
// gone; giving up fails it unless it is already terminal or gone.
func StoreHooks(
	status func(ctx context.Context, id hegate.JobID) (storage.JobStatus, error),
	fail func(ctx context.Context, id hegate.JobID, reason string) (storage.Job, error),
) Hooks {
	return Hooks{
		Runnable: func(ctx context.Context, id hegate.JobID) (bool, error) {
			s, err := status(ctx, id)
			switch {
			case errors.Is(err, storage.ErrNotFound):
				return false, nil
			case err != nil:
				return false, fmt.Errorf("checking job %s: %w", id, err)
			}
			return !s.Terminal(), nil
		},
		GiveUp: func(ctx context.Context, id hegate.JobID, reason string) error {
			_, err := fail(ctx, id, reason)
			if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			return err
		},
	}
}

func (h Hooks) validate() error {
	if h.Runnable == nil || h.GiveUp == nil {
		return errors.New("jobqueue: Hooks.Runnable and Hooks.GiveUp are required")
	}
	return nil
}

// Queue enqueues inference jobs and runs workers for them.
type Queue[TTx any] struct {
	driver   riverdriver.Driver[TTx]
	cfg      Config
	inserter *river.Client[TTx] // insert-only: no queues, never started

	mu      sync.Mutex
	workers *river.Client[TTx] // non-nil between Start and Stop
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

// Enqueue inserts the River job for id inside tx, the transaction that
// inserts the job row, so both commit or neither does.
func (q *Queue[TTx]) Enqueue(ctx context.Context, tx TTx, id hegate.JobID) error {
	client := q.inserter
	q.mu.Lock()
	if q.workers != nil {
		// Inserting through the working client wakes its producer at once
		// instead of at its next poll.
		client = q.workers
	}
	q.mu.Unlock()
	if _, err := client.InsertTx(ctx, tx, InferenceArgs{JobID: id}, nil); err != nil {
		return fmt.Errorf("enqueueing job %s: %w", id, err)
	}
	return nil
}

// ValidateWorkerConfig checks cfg and names the offending field.
func ValidateWorkerConfig(cfg storage.WorkerConfig) error {
	switch {
	case cfg.Concurrency < 1:
		return fmt.Errorf("WorkerConfig.Concurrency is %d, must be >= 1", cfg.Concurrency)
	case cfg.Concurrency > 10_000:
		return fmt.Errorf("WorkerConfig.Concurrency is %d, must be <= 10000", cfg.Concurrency)
	case cfg.MaxAttempts < 1 || cfg.MaxAttempts > MaxAttemptsLimit:
		return fmt.Errorf("WorkerConfig.MaxAttempts is %d, must be between 1 and %d", cfg.MaxAttempts, MaxAttemptsLimit)
	case cfg.JobTimeout < 0:
		return fmt.Errorf("WorkerConfig.JobTimeout is %v, must be >= 0", cfg.JobTimeout)
	case cfg.Handler == nil:
		return errors.New("WorkerConfig.Handler is required")
	}
	return nil
}

// Start starts a River client that works QueueName with cfg.Concurrency
// workers until Stop or ctx ends. It fails if workers are already running.
func (q *Queue[TTx]) Start(ctx context.Context, cfg storage.WorkerConfig, hooks Hooks) error {
	if err := ValidateWorkerConfig(cfg); err != nil {
		return fmt.Errorf("starting workers: %w", err)
	}
	if err := hooks.validate(); err != nil {
		return fmt.Errorf("starting workers: %w", err)
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
	w := &Worker{cfg: cfg, hooks: hooks, now: q.cfg.Now, logger: q.cfg.Logger}
	if err := river.AddWorkerSafely(workers, w); err != nil {
		return fmt.Errorf("starting workers: registering worker: %w", err)
	}
	timeout := cfg.JobTimeout
	if timeout == 0 {
		timeout = -1 // River: never cancel the job's context
	}
	client, err := river.NewClient(q.driver, &river.Config{
		// An inference takes hundreds of milliseconds; River's default
		// 100 ms between fetches would add up to that much to each one's
		// latency when jobs arrive one after another.
		FetchCooldown: fetchCooldown,
		JobTimeout:    timeout,
		Logger:        q.cfg.Logger,
		MaxAttempts:   MaxAttemptsLimit,
		Queues:        map[string]river.QueueConfig{QueueName: {MaxWorkers: cfg.Concurrency}},
		Schema:        q.cfg.Schema,
		Workers:       workers,
	})
	if err != nil {
		return fmt.Errorf("starting workers: creating client: %w", err)
	}
	if err := client.Start(ctx); err != nil {
		return fmt.Errorf("starting workers: %w", err)
	}
	q.workers = client
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
		q.workers = nil
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

// Worker works InferenceArgs jobs by calling the configured handler.
type Worker struct {
	river.WorkerDefaults[InferenceArgs]

	cfg    storage.WorkerConfig
	hooks  Hooks
	now    func() time.Time
	logger *slog.Logger
}

// Work skips jobs that are no longer runnable, calls the handler, and turns
// a failure of the last allowed attempt (cfg.MaxAttempts) into a failed job
// row and a cancelled River job, so River does not retry it further.
func (w *Worker) Work(ctx context.Context, job *river.Job[InferenceArgs]) error {
	id := job.Args.JobID
	err := w.work(ctx, id)
	if err == nil || errors.Is(err, errNotRunnable) {
		return nil
	}
	if job.Attempt < w.cfg.MaxAttempts {
		return err // River retries after NextRetry
	}

	// Last attempt: the job is given up. The attempt's context may be spent
	// (timeout), so record the failure on a context of its own.
	giveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveUpTimeout)
	defer cancel()
	reason := fmt.Sprintf("the job failed after %d attempts", job.Attempt)
	if gerr := w.hooks.GiveUp(giveCtx, id, reason); gerr != nil {
		w.logger.ErrorContext(ctx, "jobqueue: recording failed job", "job_id", id, "error", gerr)
	}
	return river.JobCancel(fmt.Errorf("job %s: giving up after attempt %d: %w", id, job.Attempt, err))
}

var errNotRunnable = errors.New("job is not runnable")

func (w *Worker) work(ctx context.Context, id hegate.JobID) (err error) {
	runnable, err := w.hooks.Runnable(ctx, id)
	if err != nil {
		return fmt.Errorf("job %s: checking state: %w", id, err)
	}
	if !runnable {
		return errNotRunnable
	}
	defer func() {
		if r := recover(); r != nil {
			w.logger.ErrorContext(ctx, "jobqueue: handler panicked", "job_id", id, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("job %s: handler panicked: %v", id, r)
		}
	}()
	if err := w.cfg.Handler(ctx, id); err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	return nil
}

// NextRetry backs off exponentially: 1s after the first attempt, then 2s,
// 4s, ... at most 5 minutes.
func (w *Worker) NextRetry(job *river.Job[InferenceArgs]) time.Time {
	return w.now().Add(backoff(job.Attempt))
}

func backoff(attempt int) time.Duration {
	d := retryBase
	for i := 1; i < attempt && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

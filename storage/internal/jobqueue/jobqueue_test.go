package jobqueue

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	for attempt, want := range map[int]time.Duration{
		0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second,
		9: 256 * time.Second, 10: 5 * time.Minute, 1000: 5 * time.Minute,
	} {
		if got := backoff(attempt); got != want {
			t.Errorf("backoff(%d) = %v, want %v", attempt, got, want)
		}
	}
}

func TestValidateWorkerConfig(t *testing.T) {
	t.Parallel()
	h := func(_ context.Context, _ hegate.JobID) error { return nil }
	c := func(context.Context, hegate.TenantID, hegate.ModelID, int) error { return nil }
	for name, cfg := range map[string]storage.WorkerConfig{
		"ok/inference":    {Concurrency: 1, MaxAttempts: 1, Handler: h},
		"ok/compile-only": {MaxAttempts: 1, CompileHandler: c},
		"ok/both":         {Concurrency: 2, MaxAttempts: 3, Handler: h, CompileConcurrency: 1, CompileTimeout: time.Hour, CompileHandler: c},
	} {
		if err := ValidateWorkerConfig(cfg); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, cfg := range map[string]storage.WorkerConfig{
		"fail/concurrency":          {Concurrency: 0, MaxAttempts: 1, Handler: h},
		"fail/max-attempts":         {Concurrency: 1, MaxAttempts: MaxAttemptsLimit + 1, Handler: h},
		"fail/negative-timout":      {Concurrency: 1, MaxAttempts: 1, JobTimeout: -1, Handler: h},
		"fail/no-handler":           {Concurrency: 1, MaxAttempts: 1},
		"fail/compile-concurrency":  {MaxAttempts: 1, CompileHandler: c, CompileConcurrency: -1},
		"fail/compile-timeout":      {MaxAttempts: 1, CompileHandler: c, CompileTimeout: -1},
		"fail/compile-attempts":     {CompileHandler: c},
		"fail/negative-concurrency": {Concurrency: -1, MaxAttempts: 1, CompileHandler: c},
	} {
		if err := ValidateWorkerConfig(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestStoreHooks(t *testing.T) {
	t.Parallel()
	errDB := errors.New("database is down")
	for name, tc := range map[string]struct {
		status       storage.JobStatus
		statusErr    error
		failErr      error
		wantRunnable bool
		wantErr      error // of Runnable
		wantGiveUp   error
	}{
		"ok/queued":         {status: storage.JobQueued, wantRunnable: true},
		"ok/running":        {status: storage.JobRunning, wantRunnable: true},
		"ok/cancelled":      {status: storage.JobCancelled, failErr: storage.ErrConflict},
		"ok/gone":           {statusErr: storage.ErrNotFound, failErr: storage.ErrNotFound},
		"fail/status-error": {statusErr: errDB, wantErr: errDB, failErr: errDB, wantGiveUp: errDB},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			hooks := StoreHooks(
				func(context.Context, hegate.JobID) (storage.JobStatus, error) { return tc.status, tc.statusErr },
				func(context.Context, hegate.JobID, string) (storage.Job, error) { return storage.Job{}, tc.failErr },
			)
			args := InferenceArgs{JobID: "job_x"}
			runnable, err := hooks.Runnable(t.Context(), args)
			if runnable != tc.wantRunnable || !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Errorf("Runnable = %v, %v; want %v, %v", runnable, err, tc.wantRunnable, tc.wantErr)
			}
			if err := hooks.GiveUp(t.Context(), args, "reason"); err != tc.wantGiveUp {
				t.Errorf("GiveUp = %v, want %v", err, tc.wantGiveUp)
			}
		})
	}
}

func TestModelHooks(t *testing.T) {
	t.Parallel()
	errDB := errors.New("database is down")
	for name, tc := range map[string]struct {
		status       storage.ModelStatus
		statusErr    error
		failErr      error
		wantRunnable bool
		wantErr      error // of Runnable
		wantGiveUp   error
	}{
		"ok/compiling":      {status: storage.ModelCompiling, wantRunnable: true},
		"ok/ready":          {status: storage.ModelReady, failErr: storage.ErrConflict},
		"ok/failed":         {status: storage.ModelFailed, failErr: storage.ErrConflict},
		"ok/gone":           {statusErr: storage.ErrNotFound, failErr: storage.ErrNotFound},
		"fail/status-error": {statusErr: errDB, wantErr: errDB, failErr: errDB, wantGiveUp: errDB},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want := CompileArgs{TenantID: "ten_x", Model: "m", Version: 3}
			check := func(tenant hegate.TenantID, name hegate.ModelID, version int) {
				if got := (CompileArgs{tenant, name, version}); got != want {
					t.Errorf("hook called for %v, want %v", got, want)
				}
			}
			hooks := ModelHooks(
				func(_ context.Context, tn hegate.TenantID, n hegate.ModelID, v int) (storage.ModelStatus, error) {
					check(tn, n, v)
					return tc.status, tc.statusErr
				},
				func(_ context.Context, tn hegate.TenantID, n hegate.ModelID, v int, _ string) (storage.ModelVersion, error) {
					check(tn, n, v)
					return storage.ModelVersion{}, tc.failErr
				},
			)
			runnable, err := hooks.Runnable(t.Context(), want)
			if runnable != tc.wantRunnable || !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Errorf("Runnable = %v, %v; want %v, %v", runnable, err, tc.wantRunnable, tc.wantErr)
			}
			if err := hooks.GiveUp(t.Context(), want, "reason"); err != tc.wantGiveUp {
				t.Errorf("GiveUp = %v, want %v", err, tc.wantGiveUp)
			}
		})
	}
}

func TestRescueAfter(t *testing.T) {
	t.Parallel()
	for timeout, want := range map[time.Duration]time.Duration{
		0:                NoLimitRescueAfter,
		5 * time.Second:  45 * time.Second, // the least margin: an outcome being recorded
		20 * time.Second: 60 * time.Second,
		time.Minute:      2 * time.Minute,
		10 * time.Minute: 11 * time.Minute,
		30 * time.Minute: 31 * time.Minute,
	} {
		if got := RescueAfter(timeout); got != want {
			t.Errorf("RescueAfter(%v) = %v, want %v", timeout, got, want)
		}
		w := &worker[InferenceArgs]{timeout: timeout}
		if got := w.Timeout(nil); got != want {
			t.Errorf("worker with timeout %v tells River %v, want %v", timeout, got, want)
		}
	}
}

// TestAttemptContext: an attempt ends at its kind's timeout, before
// River's context (which ends at the rescue horizon); without a timeout it
// has no deadline at all, but still ends when River cancels it.
func TestAttemptContext(t *testing.T) {
	t.Parallel()
	river, cancelRiver := context.WithTimeout(t.Context(), time.Hour)
	defer cancelRiver()

	limited := &worker[InferenceArgs]{timeout: 50 * time.Millisecond}
	ctx, cancel := limited.attemptContext(river)
	defer cancel()
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > time.Second {
		t.Errorf("attempt with a timeout: deadline %v, %v", d, ok)
	}
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) || river.Err() != nil {
		t.Errorf("attempt ended with %v, River's context with %v", ctx.Err(), river.Err())
	}

	unlimited := &worker[InferenceArgs]{}
	short, cancelShort := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancelShort()
	ctx, cancel = unlimited.attemptContext(short)
	defer cancel()
	if _, ok := ctx.Deadline(); ok {
		t.Error("attempt without a timeout has a deadline")
	}
	<-short.Done()
	time.Sleep(20 * time.Millisecond)
	if ctx.Err() != nil {
		t.Errorf("attempt without a timeout ended at River's rescue horizon: %v", ctx.Err())
	}
	stopped, stop := context.WithCancel(t.Context())
	ctx, cancel = unlimited.attemptContext(stopped)
	defer cancel()
	stop()
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
		t.Error("attempt without a timeout did not end when River cancelled it")
	}
}

// TestWorkGivesUpAfterDeadWorkers: an attempt past MaxAttempts comes only
// from River's rescuer, after every earlier attempt's worker died; the
// work is failed without running the handler again.
func TestWorkGivesUpAfterDeadWorkers(t *testing.T) {
	t.Parallel()
	var handled, gaveUp int
	var reason string
	w := &worker[InferenceArgs]{
		what:    func(a InferenceArgs) string { return "job " + string(a.JobID) },
		failure: "the job",
		handle:  func(context.Context, InferenceArgs) error { handled++; return nil },
		hooks: Hooks[InferenceArgs]{
			Runnable: func(context.Context, InferenceArgs) (bool, error) { return true, nil },
			GiveUp: func(_ context.Context, _ InferenceArgs, r string) error {
				gaveUp++
				reason = r
				return nil
			},
		},
		attempts: 3,
		now:      time.Now,
		logger:   slog.New(slog.DiscardHandler),
	}
	job := func(attempt int) *river.Job[InferenceArgs] {
		return &river.Job[InferenceArgs]{JobRow: &rivertype.JobRow{Attempt: attempt}, Args: InferenceArgs{JobID: "job_x"}}
	}
	if err := w.Work(t.Context(), job(3)); err != nil || handled != 1 || gaveUp != 0 {
		t.Fatalf("last allowed attempt: %v, handled %d, gave up %d", err, handled, gaveUp)
	}
	err := w.Work(t.Context(), job(4))
	var cancel *river.JobCancelError
	if !errors.As(err, &cancel) || handled != 1 || gaveUp != 1 || reason != "the job failed after 3 attempts" {
		t.Fatalf("attempt past the last: %v, handled %d, gave up %d (%q)", err, handled, gaveUp, reason)
	}
}

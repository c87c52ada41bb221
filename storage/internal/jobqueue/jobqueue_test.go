package jobqueue

import (
	"context"
	"errors"
	"testing"
	"time"

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

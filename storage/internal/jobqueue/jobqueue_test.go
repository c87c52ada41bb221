package jobqueue

import (
	"context"
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
	ok := storage.WorkerConfig{Concurrency: 1, MaxAttempts: 1, Handler: h}
	if err := ValidateWorkerConfig(ok); err != nil {
		t.Fatalf("ok config: %v", err)
	}
	for name, cfg := range map[string]storage.WorkerConfig{
		"fail/concurrency":     {Concurrency: 0, MaxAttempts: 1, Handler: h},
		"fail/max-attempts":    {Concurrency: 1, MaxAttempts: MaxAttemptsLimit + 1, Handler: h},
		"fail/negative-timout": {Concurrency: 1, MaxAttempts: 1, JobTimeout: -1, Handler: h},
		"fail/no-handler":      {Concurrency: 1, MaxAttempts: 1},
	} {
		if err := ValidateWorkerConfig(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// errTransient is what failing test handlers return.
var errTransient = errors.New("transient failure")

// status returns the job's status, or "" if reading it failed.
func status(b bundle, tenant hegate.TenantID, id hegate.JobID) storage.JobStatus {
	j, err := b.store.GetJob(b.ctx, tenant, id)
	if err != nil {
		return ""
	}
	return j.Status
}

// succeedHandler counts each call, starts the job and completes it.
func succeedHandler(s storage.Store, c *counter) storage.JobHandler {
	return func(ctx context.Context, id hegate.JobID) error {
		c.add(id)
		if _, err := s.StartJob(ctx, id); err != nil {
			return err
		}
		_, err := s.CompleteJob(ctx, id, "result-"+string(id), 7)
		return err
	}
}

var workerTests = []test{
	{"ok/workers/run-jobs", func(t *testing.T, b bundle) {
		c := newCounter()
		// Enqueued before any worker exists: the insert-only path.
		jobs := []storage.Job{mustJob(t, b, b.a.ID), mustJob(t, b, b.b.ID)}
		idem, _, err := b.store.CreateJob(b.ctx, jobParams(b.a.ID, "once"))
		noErr(t, "CreateJob", err)
		if _, created, err := b.store.CreateJob(b.ctx, jobParams(b.a.ID, "once")); err != nil || created {
			t.Fatalf("repeated CreateJob: created %v, err %v", created, err)
		}
		jobs = append(jobs, idem)
		cancelled := mustJob(t, b, b.a.ID)
		_, err = b.store.CancelJob(b.ctx, b.a.ID, cancelled.ID)
		noErr(t, "CancelJob", err)

		noErr(t, "StartWorkers", b.store.StartWorkers(b.ctx, storage.WorkerConfig{
			Concurrency: 2, MaxAttempts: 1, Handler: succeedHandler(b.store, c),
		}))
		jobs = append(jobs, mustJob(t, b, b.a.ID)) // enqueued while workers run

		for _, j := range jobs {
			eventually(t, "job "+string(j.ID)+" to succeed", func() bool {
				return status(b, j.TenantID, j.ID) == storage.JobSucceeded
			})
		}
		noErr(t, "StopWorkers", b.store.StopWorkers(b.ctx))
		noErr(t, "second StopWorkers", b.store.StopWorkers(b.ctx))
		for _, j := range jobs {
			if n := c.get(j.ID); n != 1 {
				t.Errorf("handler saw job %s %d times, want 1", j.ID, n)
			}
			got, err := b.store.GetJob(b.ctx, j.TenantID, j.ID)
			noErr(t, "GetJob", err)
			if got.ResultBlob != "result-"+string(j.ID) || got.Attempts != 1 {
				t.Errorf("job after work: %+v", got)
			}
		}
		if n := c.get(cancelled.ID); n != 0 {
			t.Errorf("handler saw the cancelled job %d times", n)
		}
		if s := status(b, b.a.ID, cancelled.ID); s != storage.JobCancelled {
			t.Errorf("cancelled job is %s", s)
		}
	}},
	{"ok/workers/retry-until-success", func(t *testing.T, b bundle) {
		c := newCounter()
		s := b.store
		noErr(t, "StartWorkers", s.StartWorkers(b.ctx, storage.WorkerConfig{
			Concurrency: 1, MaxAttempts: 3,
			Handler: func(ctx context.Context, id hegate.JobID) error {
				n := c.add(id)
				if _, err := s.StartJob(ctx, id); err != nil {
					return err
				}
				switch n {
				case 1:
					panic("handler panics on the first attempt")
				case 2:
					return errTransient
				}
				_, err := s.CompleteJob(ctx, id, "r", 1)
				return err
			},
		}))
		j := mustJob(t, b, b.a.ID)
		eventually(t, "the job to succeed on its third attempt", func() bool {
			return status(b, b.a.ID, j.ID) == storage.JobSucceeded
		})
		got, err := s.GetJob(b.ctx, b.a.ID, j.ID)
		noErr(t, "GetJob", err)
		if n := c.get(j.ID); n != 3 || got.Attempts != 3 {
			t.Fatalf("handler calls %d, attempts %d; want 3, 3", n, got.Attempts)
		}
	}},
	{"fail/workers/give-up-after-max-attempts", func(t *testing.T, b bundle) {
		c := newCounter()
		s := b.store
		noErr(t, "StartWorkers", s.StartWorkers(b.ctx, storage.WorkerConfig{
			Concurrency: 1, MaxAttempts: 2,
			Handler: func(ctx context.Context, id hegate.JobID) error {
				c.add(id)
				if _, err := s.StartJob(ctx, id); err != nil {
					return err
				}
				return errTransient
			},
		}))
		j := mustJob(t, b, b.a.ID)
		eventually(t, "the job to fail", func() bool {
			return status(b, b.a.ID, j.ID) == storage.JobFailed
		})
		got, err := s.GetJob(b.ctx, b.a.ID, j.ID)
		noErr(t, "GetJob", err)
		if got.Error == "" || got.FinishedAt == nil || got.Attempts != 2 {
			t.Fatalf("given-up job: %+v", got)
		}
		// A third attempt would come 2s after the second.
		time.Sleep(3 * time.Second)
		if n := c.get(j.ID); n != 2 {
			t.Fatalf("handler saw the job %d times, want 2", n)
		}
	}},
	{"fail/workers/job-timeout", func(t *testing.T, b bundle) {
		c := newCounter()
		s := b.store
		deadlines := make(chan bool, 1)
		noErr(t, "StartWorkers", s.StartWorkers(b.ctx, storage.WorkerConfig{
			Concurrency: 1, MaxAttempts: 1, JobTimeout: 300 * time.Millisecond,
			Handler: func(ctx context.Context, id hegate.JobID) error {
				c.add(id)
				_, hasDeadline := ctx.Deadline()
				select {
				case deadlines <- hasDeadline:
				default:
				}
				if _, err := s.StartJob(ctx, id); err != nil {
					return err
				}
				<-ctx.Done()
				return ctx.Err()
			},
		}))
		j := mustJob(t, b, b.a.ID)
		eventually(t, "the timed-out job to fail", func() bool {
			return status(b, b.a.ID, j.ID) == storage.JobFailed
		})
		if !<-deadlines {
			t.Error("the handler's context had no deadline")
		}
		if n := c.get(j.ID); n != 1 {
			t.Fatalf("handler saw the job %d times, want 1", n)
		}
	}},
	{"ok/workers/stop-start-stop", func(t *testing.T, b bundle) {
		noErr(t, "StopWorkers before StartWorkers", b.store.StopWorkers(b.ctx))
		noErr(t, "StopWorkers again", b.store.StopWorkers(b.ctx))
		c := newCounter()
		cfg := storage.WorkerConfig{Concurrency: 1, MaxAttempts: 1, Handler: succeedHandler(b.store, c)}
		noErr(t, "StartWorkers", b.store.StartWorkers(b.ctx, cfg))
		noErr(t, "StopWorkers", b.store.StopWorkers(b.ctx))
		j := mustJob(t, b, b.a.ID) // enqueued while no worker runs
		noErr(t, "StartWorkers after StopWorkers", b.store.StartWorkers(b.ctx, cfg))
		eventually(t, "the job to succeed", func() bool {
			return status(b, b.a.ID, j.ID) == storage.JobSucceeded
		})
		noErr(t, "StopWorkers", b.store.StopWorkers(b.ctx))
		noErr(t, "StopWorkers again", b.store.StopWorkers(b.ctx))
	}},
	{"fail/workers/bad-config", func(t *testing.T, b bundle) {
		h := func(context.Context, hegate.JobID) error { return nil }
		for name, cfg := range map[string]storage.WorkerConfig{
			"zero concurrency":             {Concurrency: 0, MaxAttempts: 1, Handler: h},
			"zero max attempts":            {Concurrency: 1, MaxAttempts: 0, Handler: h},
			"negative job timeout":         {Concurrency: 1, MaxAttempts: 1, JobTimeout: -time.Second, Handler: h},
			"no handler":                   {Concurrency: 1, MaxAttempts: 1},
			"negative compile timeout":     {MaxAttempts: 1, CompileTimeout: -time.Second, CompileHandler: func(context.Context, hegate.TenantID, hegate.ModelID, int) error { return nil }},
			"negative compile concurrency": {MaxAttempts: 1, CompileConcurrency: -1, CompileHandler: func(context.Context, hegate.TenantID, hegate.ModelID, int) error { return nil }},
		} {
			if err := b.store.StartWorkers(b.ctx, cfg); err == nil {
				t.Errorf("StartWorkers with %s succeeded", name)
				_ = b.store.StopWorkers(b.ctx)
			}
		}
	}},
	{"fail/workers/start-twice", func(t *testing.T, b bundle) {
		cfg := storage.WorkerConfig{Concurrency: 1, MaxAttempts: 1, Handler: succeedHandler(b.store, newCounter())}
		noErr(t, "StartWorkers", b.store.StartWorkers(b.ctx, cfg))
		if err := b.store.StartWorkers(b.ctx, cfg); err == nil {
			t.Fatal("second StartWorkers succeeded")
		}
	}},
}

// compileCall is one call of a CompileHandler.
type compileCall struct {
	tenant      hegate.TenantID
	name        hegate.ModelID
	version     int
	hasDeadline bool
}

// compileLog records a CompileHandler's calls.
type compileLog struct {
	mu    sync.Mutex
	calls []compileCall
}

func (l *compileLog) add(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, hasDeadline := ctx.Deadline()
	l.calls = append(l.calls, compileCall{tenant, name, version, hasDeadline})
	n := 0
	for _, c := range l.calls {
		if c.tenant == tenant && c.name == name && c.version == version {
			n++
		}
	}
	return n
}

func (l *compileLog) get() []compileCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// readyHandler records each call and makes the version ready.
func readyHandler(s storage.Store, l *compileLog) storage.CompileHandler {
	return func(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int) error {
		l.add(ctx, tenant, name, version)
		_, err := s.MarkModelReady(ctx, tenant, name, version, fmt.Sprintf("graph-%s-%d", name, version), []byte(`{}`))
		return err
	}
}

// modelStatus returns the version's status, or "" if reading it failed.
func modelStatus(b bundle, v storage.ModelVersion) storage.ModelStatus {
	got, err := b.store.GetModelVersion(b.ctx, v.TenantID, v.Name, v.Version)
	if err != nil {
		return ""
	}
	return got.Status
}

var compileWorkerTests = []test{
	{"ok/workers/compile", func(t *testing.T, b bundle) {
		l := &compileLog{}
		// A process that compiles and does not infer.
		noErr(t, "StartWorkers", b.store.StartWorkers(b.ctx, storage.WorkerConfig{
			MaxAttempts: 1, CompileTimeout: time.Minute, CompileHandler: readyHandler(b.store, l),
		}))
		j := mustJob(t, b, b.a.ID)
		v := mustModel(t, b, b.a.ID, "m")
		eventually(t, "the version to be ready", func() bool { return modelStatus(b, v) == storage.ModelReady })
		equal(t, "compile calls", l.get(), []compileCall{{b.a.ID, "m", 1, true}})
		got, err := b.store.GetModelVersion(b.ctx, b.a.ID, "m", 0)
		noErr(t, "GetModelVersion(0)", err)
		if got.Version != 1 || got.GraphBlob != "graph-m-1" {
			t.Fatalf("compiled version: %+v", got)
		}
		if s := status(b, b.a.ID, j.ID); s != storage.JobQueued {
			t.Fatalf("inference job in a compile-only process is %s, want queued", s)
		}
	}},
	{"ok/workers/compile-queue-separate", func(t *testing.T, b bundle) {
		s := b.store
		l := &compileLog{}
		// Inference only: the compile job waits.
		noErr(t, "StartWorkers", s.StartWorkers(b.ctx, storage.WorkerConfig{
			Concurrency: 1, MaxAttempts: 1, Handler: succeedHandler(s, newCounter()),
		}))
		skipped := mustModel(t, b, b.a.ID, "skipped")
		v := mustModel(t, b, b.b.ID, "m")
		j := mustJob(t, b, b.a.ID)
		eventually(t, "the inference job to succeed", func() bool { return status(b, b.a.ID, j.ID) == storage.JobSucceeded })
		if st := modelStatus(b, v); st != storage.ModelCompiling {
			t.Fatalf("version in an inference-only process is %s, want compiling", st)
		}
		noErr(t, "StopWorkers", s.StopWorkers(b.ctx))

		// A version that failed meanwhile is not compiled.
		_, err := s.MarkModelFailed(b.ctx, b.a.ID, "skipped", skipped.Version, "cancelled")
		noErr(t, "MarkModelFailed", err)
		noErr(t, "StartWorkers with both", s.StartWorkers(b.ctx, storage.WorkerConfig{
			Concurrency: 1, MaxAttempts: 1, Handler: succeedHandler(s, newCounter()),
			CompileHandler: readyHandler(s, l),
		}))
		eventually(t, "the version to be ready", func() bool { return modelStatus(b, v) == storage.ModelReady })
		equal(t, "compile calls", l.get(), []compileCall{{b.b.ID, "m", 1, false}})
		if st := modelStatus(b, skipped); st != storage.ModelFailed {
			t.Fatalf("skipped version is %s", st)
		}
	}},
	{"fail/workers/compile-give-up", func(t *testing.T, b bundle) {
		s := b.store
		l := &compileLog{}
		noErr(t, "StartWorkers", s.StartWorkers(b.ctx, storage.WorkerConfig{
			MaxAttempts: 2, CompileConcurrency: 2,
			CompileHandler: func(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int) error {
				l.add(ctx, tenant, name, version)
				if name == "bad" {
					// The client's fault: recorded, not retried.
					_, err := s.MarkModelFailed(ctx, tenant, name, version, "op Foo is not supported")
					return err
				}
				return errTransient
			},
		}))
		flaky := mustModel(t, b, b.a.ID, "flaky")
		bad := mustModel(t, b, b.a.ID, "bad")
		eventually(t, "the versions to fail", func() bool {
			return modelStatus(b, flaky) == storage.ModelFailed && modelStatus(b, bad) == storage.ModelFailed
		})
		got, err := s.GetModelVersion(b.ctx, b.a.ID, "flaky", 1)
		noErr(t, "GetModelVersion", err)
		if got.Error != "compilation failed after 2 attempts" {
			t.Fatalf("given-up version: %+v", got)
		}
		got, err = s.GetModelVersion(b.ctx, b.a.ID, "bad", 1)
		noErr(t, "GetModelVersion", err)
		if got.Error != "op Foo is not supported" {
			t.Fatalf("rejected version: %+v", got)
		}
		noErr(t, "StopWorkers", s.StopWorkers(b.ctx))
		var flakyCalls, badCalls int
		for _, c := range l.get() {
			switch c.name {
			case "flaky":
				flakyCalls++
			case "bad":
				badCalls++
			}
			if c.hasDeadline {
				t.Errorf("compile attempt without a CompileTimeout had a deadline")
			}
		}
		if flakyCalls != 2 || badCalls != 1 {
			t.Fatalf("handler calls: flaky %d, bad %d; want 2, 1", flakyCalls, badCalls)
		}
	}},
}

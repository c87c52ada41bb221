package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/storage"
)

// testClock is a Sweeper clock that the test sets.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d.
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// sweeper makes a Sweeper over bd's store, blobs and metrics.
func (bd *bundle) sweeper(t *testing.T, clock func() time.Time, blobs storage.Blobs) *Sweeper {
	t.Helper()
	if blobs == nil {
		blobs = bd.blobs
	}
	sw, err := NewSweeper(SweeperConfig{
		Store: bd.store, Blobs: blobs, Retention: 24 * time.Hour, Interval: 10 * time.Millisecond,
		BatchSize: 2, Metrics: bd.srv.Metrics(), Clock: clock,
		Logger: bd.srv.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return sw
}

// blobExists reports whether key is in bd's blob store.
func (bd *bundle) blobExists(t *testing.T, key string) bool {
	t.Helper()
	_, err := bd.blobs.Stat(bd.ctx, key)
	switch {
	case err == nil:
		return true
	case errors.Is(err, storage.ErrNotFound):
		return false
	}
	t.Fatalf("Stat(%s): %v", key, err)
	return false
}

// storedJob reads a job of d's tenant straight from the store.
func (bd *bundle) storedJob(t *testing.T, d device, id string) storage.Job {
	t.Helper()
	jobs, err := bd.store.ListJobs(bd.ctx, bd.tenantOf(t, d), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if string(j.ID) == id {
			return j
		}
	}
	t.Fatalf("no job %s", id)
	return storage.Job{}
}

func (bd *bundle) tenantOf(t *testing.T, d device) hegate.TenantID {
	t.Helper()
	k, err := bd.store.LookupAPIKey(bd.ctx, hashAPIKey(d.secret))
	if err != nil {
		t.Fatal(err)
	}
	return k.TenantID
}

func TestRetention(t *testing.T) {
	t.Parallel()
	bd := setup(t, withConfig(func(c *Config) { c.Retention = 24 * time.Hour }))
	ksID := bd.upload(t, bd.a)
	model := string(bd.model.ID())
	infer := func(ct []byte, opts client.InferOptions) string {
		t.Helper()
		opts.Wait = true
		_, id, err := bd.a.client.Infer(bd.ctx, model, ksID, ct, opts)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}

	// The same ciphertext twice, straddling the cutoff, and two others.
	x, ct := bd.input(t, bd.a, 1)
	_, ct2 := bd.input(t, bd.a, 2)
	_, ct3 := bd.input(t, bd.a, 3)
	id1 := infer(ct, client.InferOptions{})
	time.Sleep(5 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(5 * time.Millisecond)
	id2 := infer(ct, client.InferOptions{})
	id3 := infer(ct2, client.InferOptions{})
	id4 := infer(ct3, client.InferOptions{IdempotencyKey: "once"})
	j1, j2, j3, j4 := bd.storedJob(t, bd.a, id1), bd.storedJob(t, bd.a, id2), bd.storedJob(t, bd.a, id3), bd.storedJob(t, bd.a, id4)
	if j1.InputBlob != j2.InputBlob {
		t.Fatalf("one ciphertext, two input blobs: %s and %s", j1.InputBlob, j2.InputBlob)
	}
	clock := &testClock{now: cutoff.Add(24 * time.Hour)}
	sw := bd.sweeper(t, clock.Now, nil)

	t.Run("ok/only-older-than-retention", func(t *testing.T) {
		stats, err := sw.Sweep(bd.ctx)
		if err != nil || stats.Jobs != 1 {
			t.Fatalf("Sweep = %+v, %v; want job %s only", stats, err, id1)
		}
		if !bd.storedJob(t, bd.a, id1).Expired() || bd.storedJob(t, bd.a, id2).Expired() {
			t.Fatal("the wrong job expired")
		}
	})
	t.Run("ok/shared-blobs-survive", func(t *testing.T) {
		if !bd.blobExists(t, j1.InputBlob) {
			t.Fatal("the input that job 2 shares was deleted")
		}
		// Evaluation is deterministic, so job 2's result may be the same bytes.
		if shared := j1.ResultBlob == j2.ResultBlob; bd.blobExists(t, j1.ResultBlob) != shared {
			t.Fatalf("job 1's result exists: %v, shared with job 2: %v", !shared, shared)
		}
		result, err := bd.a.client.Result(bd.ctx, id2)
		if err != nil {
			t.Fatalf("job 2's result: %v", err)
		}
		bd.checkResult(t, bd.a, x, result)
	})
	t.Run("fail/expired-result-is-410", func(t *testing.T) {
		resp := bd.call(t, http.MethodGet, "/v1/jobs/"+id1+"/result", bd.a.secret, nil, nil)
		p := wantProblem(t, resp, http.StatusGone, "the result of job "+id1+" expired after 24h")
		if p.Type != api.ProblemGone {
			t.Fatalf("problem type %q", p.Type)
		}
		job, err := bd.a.client.Job(bd.ctx, id1)
		if err != nil || job.Status != api.JobSucceeded || job.Result != "" || job.ResultBytes == 0 {
			t.Fatalf("expired job %+v, %v: want succeeded, sizes kept, no result link", job, err)
		}
		// Another tenant still learns nothing: 404, not 410.
		resp = bd.call(t, http.MethodGet, "/v1/jobs/"+id1+"/result", bd.b.secret, nil, nil)
		wantProblem(t, resp, http.StatusNotFound, "not found")
	})
	t.Run("ok/everything-after-retention", func(t *testing.T) {
		// A blob already gone does not stop the sweep.
		if err := bd.blobs.Delete(bd.ctx, j3.InputBlob); err != nil {
			t.Fatal(err)
		}
		clock.set(time.Now().Add(25 * time.Hour))
		stats, err := sw.Sweep(bd.ctx)
		if err != nil || stats.Jobs != 3 {
			t.Fatalf("Sweep = %+v, %v; want 3 jobs (in batches of 2)", stats, err)
		}
		for _, j := range []storage.Job{j1, j2, j3, j4} {
			for _, key := range []string{j.InputBlob, j.ResultBlob} {
				if bd.blobExists(t, key) {
					t.Errorf("job %s: blob %s is still on disk", j.ID, key)
				}
			}
		}
		if n := bd.blobFiles(t); n != 1 {
			t.Fatalf("%d blob files left, want the key set only", n)
		}
		stats, err = sw.Sweep(bd.ctx)
		if err != nil || stats != (SweepStats{}) {
			t.Fatalf("second Sweep = %+v, %v; want nothing to do", stats, err)
		}
	})
	t.Run("fail/replay-of-an-expired-job", func(t *testing.T) {
		_, _, err := bd.a.client.Infer(bd.ctx, model, ksID, ct3, client.InferOptions{Wait: true, IdempotencyKey: "once"})
		if client.StatusOf(err) != http.StatusGone {
			t.Fatalf("replay with wait: %v, want 410", err)
		}
		_, id, err := bd.a.client.Infer(bd.ctx, model, ksID, ct3, client.InferOptions{IdempotencyKey: "once"})
		if err != nil || id != id4 {
			t.Fatalf("replay: job %s, %v; want %s", id, err, id4)
		}
		// The replayed ciphertext was stored again, then dropped.
		if n := bd.blobFiles(t); n != 1 {
			t.Fatalf("%d blob files after the replays, want the key set only", n)
		}
	})
	t.Run("ok/key-set-blob-deleted-with-its-last-record", func(t *testing.T) {
		// Tenant b uploads the very same key set: one blob, two records.
		ks, err := bd.b.client.UploadKeySet(bd.ctx, model, bytes.NewReader(bd.a.keys), int64(len(bd.a.keys)))
		if err != nil || ks.ID != ksID {
			t.Fatalf("tenant b's upload: %+v, %v", ks, err)
		}
		if err := bd.a.client.DeleteKeySet(bd.ctx, ksID); err != nil {
			t.Fatal(err)
		}
		if !bd.blobExists(t, ksID) {
			t.Fatal("tenant b's key set blob was deleted with tenant a's record")
		}
		if err := bd.b.client.DeleteKeySet(bd.ctx, ksID); err != nil {
			t.Fatal(err)
		}
		if n := bd.blobFiles(t); n != 0 {
			t.Fatalf("%d blob files left after deleting every record", n)
		}
	})
	t.Run("ok/metrics", func(t *testing.T) {
		resp := bd.call(t, http.MethodGet, "/metrics", "", nil, nil)
		b, _ := io.ReadAll(resp.Body)
		for _, want := range []string{
			"hegate_jobs_expired_total 4",
			`hegate_blobs_deleted_total{reason="key_set_deleted"} 1`,
			`hegate_blobs_deleted_total{reason="unrecorded"} 2`,
			`hegate_blobs_deleted_total{reason="retention"}`,
			"hegate_blob_delete_failures_total 0",
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

// failingDeletes is a blob store whose Delete fails.
type failingDeletes struct{ storage.Blobs }

func (failingDeletes) Delete(context.Context, string) error { return errors.New("disk is read-only") }

func TestSweepDeleteFailure(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	ksID := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 1)
	_, id, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, ct, client.InferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bd.a.client.CancelJob(bd.ctx, id); err != nil {
		t.Fatal(err)
	}
	sw := bd.sweeper(t, func() time.Time { return time.Now().Add(48 * time.Hour) }, failingDeletes{bd.blobs})
	stats, err := sw.Sweep(bd.ctx)
	if err == nil || !strings.Contains(err.Error(), "not deleted") || stats.Jobs != 1 || stats.Blobs != 0 {
		t.Fatalf("Sweep = %+v, %v; want the job expired and an error for its blob", stats, err)
	}
	resp := bd.call(t, http.MethodGet, "/metrics", "", nil, nil)
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), "hegate_blob_delete_failures_total 1") {
		t.Error("/metrics does not count the failed delete")
	}
}

// sweeperRunning reports whether any goroutine runs a Sweeper's loop.
func sweeperRunning() bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Contains(string(buf[:n]), "gateway.(*Sweeper).run")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitSweeperRunning waits up to a second for sweeperRunning to be want: a
// goroutine just started may not be listed yet, and one whose Stop
// returned may still be unwinding its deferred calls.
func waitSweeperRunning(want bool) bool {
	for range 100 {
		if sweeperRunning() == want {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// TestSweeperStartStop is not parallel: it looks for Sweeper goroutines
// in the whole process, and no other test starts one.
func TestSweeperStartStop(t *testing.T) {
	bd := setup(t, withoutWorkers())
	ksID := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 1)
	_, id, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, ct, client.InferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bd.runner.Handle(bd.ctx, hegate.JobID(id)); err != nil {
		t.Fatal(err)
	}
	job := bd.storedJob(t, bd.a, id)

	clock := &testClock{now: time.Now()}
	sw := bd.sweeper(t, clock.Now, nil)
	sw.Stop() // before Start: nothing to do
	if err := sw.Start(bd.ctx); err != nil {
		t.Fatal(err)
	}
	if err := sw.Start(bd.ctx); err == nil {
		t.Fatal("second Start succeeded")
	}
	if !waitSweeperRunning(true) {
		t.Fatal("no Sweeper goroutine after Start: the leak check below could not see one")
	}
	// Sweeps keep coming: the job expires once the clock passes retention.
	time.Sleep(30 * time.Millisecond)
	if bd.storedJob(t, bd.a, id).Expired() {
		t.Fatal("expired before the retention passed")
	}
	clock.set(time.Now().Add(25 * time.Hour))
	deadline := time.Now().Add(10 * time.Second)
	for !bd.storedJob(t, bd.a, id).Expired() || bd.blobExists(t, job.ResultBlob) {
		if time.Now().After(deadline) {
			t.Fatal("the running Sweeper did not expire the job within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sw.Stop()
	sw.Stop()
	if !waitSweeperRunning(false) {
		t.Fatal("a Sweeper goroutine is left after Stop")
	}

	// A Sweeper whose context ends stops by itself; Stop still returns.
	ctx, cancel := context.WithCancel(bd.ctx)
	other := bd.sweeper(t, clock.Now, nil)
	if err := other.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	other.Stop()
	if !waitSweeperRunning(false) {
		t.Fatal("a Sweeper goroutine is left after its context ended")
	}
}

func TestSweeperConfigValidate(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	ok := SweeperConfig{Store: bd.store, Blobs: bd.blobs, Retention: time.Hour, Interval: time.Minute}
	tests := map[string]struct {
		edit  func(*SweeperConfig)
		field string
	}{
		"ok/defaults":        {func(*SweeperConfig) {}, ""},
		"ok/max-batch":       {func(c *SweeperConfig) { c.BatchSize = storage.MaxExpireJobs }, ""},
		"fail/store":         {func(c *SweeperConfig) { c.Store = nil }, "SweeperConfig.Store"},
		"fail/blobs":         {func(c *SweeperConfig) { c.Blobs = nil }, "SweeperConfig.Blobs"},
		"fail/retention-0":   {func(c *SweeperConfig) { c.Retention = 0 }, "SweeperConfig.Retention"},
		"fail/retention-neg": {func(c *SweeperConfig) { c.Retention = -time.Hour }, "SweeperConfig.Retention"},
		"fail/interval":      {func(c *SweeperConfig) { c.Interval = 0 }, "SweeperConfig.Interval"},
		"fail/batch-neg":     {func(c *SweeperConfig) { c.BatchSize = -1 }, "SweeperConfig.BatchSize"},
		"fail/batch-big":     {func(c *SweeperConfig) { c.BatchSize = storage.MaxExpireJobs + 1 }, "SweeperConfig.BatchSize"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			_, err := NewSweeper(cfg)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("NewSweeper: %v, want an error naming %s", err, tc.field)
			}
		})
	}
	cfg := Config{Store: bd.store, Blobs: bd.blobs, Models: bd.srv.cfg.Models, Retention: -1}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "Config.Retention") {
		t.Fatalf("Config.Validate with a negative Retention: %v", err)
	}
}

func TestFormatRetention(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		24 * time.Hour:                       "24h",
		90 * time.Minute:                     "1h30m",
		time.Hour + time.Second:              "1h0m1s",
		45 * time.Second:                     "45s",
		2*time.Minute + 500*time.Millisecond: "2m0.5s",
		10 * time.Minute:                     "10m",
	} {
		if got := formatRetention(d); got != want {
			t.Errorf("formatRetention(%s) = %q, want %q", d, got, want)
		}
	}
}

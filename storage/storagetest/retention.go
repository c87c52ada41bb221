package storagetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// fakeClock is a store clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// clocked replaces b's store with a fresh one on a fake clock holding
// tenants "a" and "b".
func clocked(t *testing.T, b bundle) (bundle, *fakeClock) {
	t.Helper()
	clk := &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	b.store = b.open(t, clk.Now)
	b.a = mustTenant(t, b, "tenant-a")
	b.b = mustTenant(t, b, "tenant-b")
	return b, clk
}

// outcome is how finishedJob ends a job.
type outcome int

const (
	succeed outcome = iota
	fail
	cancel
	leaveQueued
	leaveRunning
)

// finishedJob makes a job of tenant with the given input blob and ends it
// as told: a succeeded job gets result as its result blob.
func finishedJob(t *testing.T, b bundle, tenant hegate.TenantID, input, result string, how outcome) storage.Job {
	t.Helper()
	p := jobParams(tenant, "")
	p.InputBlob = input
	j, _, err := b.store.CreateJob(b.ctx, p)
	noErr(t, "CreateJob", err)
	switch how {
	case succeed:
		_, err = b.store.StartJob(b.ctx, j.ID)
		noErr(t, "StartJob", err)
		j, err = b.store.CompleteJob(b.ctx, j.ID, result, 42)
	case fail:
		j, err = b.store.FailJob(b.ctx, j.ID, "bad input")
	case cancel:
		j, err = b.store.CancelJob(b.ctx, tenant, j.ID)
	case leaveRunning:
		j, err = b.store.StartJob(b.ctx, j.ID)
	}
	noErr(t, "finishing job", err)
	return j
}

func expire(t *testing.T, b bundle, before time.Time, limit int) storage.ExpiredJobs {
	t.Helper()
	got, err := b.store.ExpireJobs(b.ctx, storage.ExpireJobsParams{FinishedBefore: before, Limit: limit})
	noErr(t, "ExpireJobs", err)
	if got.Jobs == nil || got.Blobs == nil {
		t.Fatalf("ExpireJobs = %+v: want empty lists, not nil", got)
	}
	return got
}

// wantExpired checks that j is now expired at `at`, with everything but its
// blob keys as before.
func wantExpired(t *testing.T, b bundle, j storage.Job, at time.Time) {
	t.Helper()
	got, err := b.store.GetJob(b.ctx, j.TenantID, j.ID)
	noErr(t, "GetJob", err)
	want := j
	want.InputBlob, want.ResultBlob, want.BlobsExpiredAt = "", "", &at
	equal(t, "expired job "+string(j.ID), got, want)
	if !got.Expired() {
		t.Fatalf("job %s: Expired() is false", j.ID)
	}
}

// wantUnchanged checks that j is as it was.
func wantUnchanged(t *testing.T, b bundle, j storage.Job) {
	t.Helper()
	got, err := b.store.GetJob(b.ctx, j.TenantID, j.ID)
	noErr(t, "GetJob", err)
	equal(t, "job "+string(j.ID), got, j)
	if got.Expired() {
		t.Fatalf("job %s: Expired() is true", j.ID)
	}
}

func ids(jobs ...storage.Job) []hegate.JobID {
	out := make([]hegate.JobID, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

var retentionTests = []test{
	{"ok/expire/cutoff-limit-order", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		t0 := clk.Now()
		j1 := finishedJob(t, b, b.a.ID, "in-1", "res-1", succeed) // t0
		clk.advance(time.Minute)
		j2 := finishedJob(t, b, b.b.ID, "in-2", "", fail) // t0+1m
		clk.advance(time.Minute)
		j3 := finishedJob(t, b, b.a.ID, "in-3", "", cancel) // t0+2m
		clk.advance(time.Minute)
		j4 := finishedJob(t, b, b.a.ID, "in-4", "res-4", succeed) // t0+3m
		at := clk.advance(time.Hour)

		// The limit: only the oldest.
		got := expire(t, b, t0.Add(2*time.Minute), 1)
		equal(t, "first batch", got, storage.ExpiredJobs{Jobs: ids(j1), Blobs: []string{"in-1", "res-1"}})
		wantExpired(t, b, j1, at)
		wantUnchanged(t, b, j2)

		// The cutoff is strict: j3 finished exactly at it.
		got = expire(t, b, t0.Add(2*time.Minute), 10)
		equal(t, "second batch", got, storage.ExpiredJobs{Jobs: ids(j2), Blobs: []string{"in-2"}})
		wantExpired(t, b, j2, at)
		wantUnchanged(t, b, j3)
		wantUnchanged(t, b, j4)

		// A later cutoff takes the rest, oldest first.
		at = clk.advance(time.Minute)
		got = expire(t, b, t0.Add(time.Hour), 10)
		equal(t, "third batch", got, storage.ExpiredJobs{Jobs: ids(j3, j4), Blobs: []string{"in-3", "in-4", "res-4"}})
		wantExpired(t, b, j3, at)
		wantExpired(t, b, j4, at)
	}},
	{"ok/expire/idempotent", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		j := finishedJob(t, b, b.a.ID, "in", "res", succeed)
		at := clk.advance(time.Hour)
		got := expire(t, b, at, 10)
		equal(t, "first call", got, storage.ExpiredJobs{Jobs: ids(j), Blobs: []string{"in", "res"}})
		clk.advance(time.Hour)
		for i := range 2 {
			got = expire(t, b, clk.Now(), 10)
			if len(got.Jobs) != 0 || len(got.Blobs) != 0 {
				t.Fatalf("call %d after everything expired: %+v", i+2, got)
			}
		}
		// The first expiry's time stays.
		wantExpired(t, b, j, at)
	}},
	{"ok/expire/nothing", func(t *testing.T, b bundle) {
		got := expire(t, b, time.Now().Add(time.Hour), storage.MaxExpireJobs)
		if len(got.Jobs) != 0 || len(got.Blobs) != 0 {
			t.Fatalf("ExpireJobs on an empty store: %+v", got)
		}
	}},
	{"ok/expire/never-non-terminal", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		queued := finishedJob(t, b, b.a.ID, "in-queued", "", leaveQueued)
		running := finishedJob(t, b, b.b.ID, "in-running", "", leaveRunning)
		clk.advance(24 * time.Hour)
		// A cutoff a day after they were created, and one in their future.
		for _, before := range []time.Time{clk.Now(), clk.Now().Add(24 * time.Hour)} {
			got := expire(t, b, before, 10)
			if len(got.Jobs) != 0 || len(got.Blobs) != 0 {
				t.Fatalf("ExpireJobs with only queued and running jobs: %+v", got)
			}
		}
		wantUnchanged(t, b, queued)
		wantUnchanged(t, b, running)

		// They still run and finish normally, and expire later.
		_, err := b.store.StartJob(b.ctx, queued.ID)
		noErr(t, "StartJob", err)
		_, err = b.store.CompleteJob(b.ctx, queued.ID, "res-queued", 1)
		noErr(t, "CompleteJob", err)
		clk.advance(time.Second)
		_, err = b.store.FailJob(b.ctx, running.ID, "x")
		noErr(t, "FailJob", err)
		got := expire(t, b, clk.advance(time.Second), 10)
		equal(t, "after they finished", got, storage.ExpiredJobs{
			Jobs: ids(queued, running), Blobs: []string{"in-queued", "in-running", "res-queued"},
		})
	}},
	{"ok/expire/shared-blobs-survive", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		// The same ciphertext submitted twice, by two tenants, finishing
		// an hour apart; their results are the same bytes too.
		old := finishedJob(t, b, b.a.ID, "shared-in", "shared-res", succeed)
		clk.advance(time.Hour)
		recent := finishedJob(t, b, b.b.ID, "shared-in", "shared-res", succeed)
		clk.advance(time.Second)
		// An input that a queued job and a finished one share.
		finishedJob(t, b, b.a.ID, "in-pending", "", leaveQueued)
		done := finishedJob(t, b, b.a.ID, "in-pending", "res-done", succeed)
		clk.advance(time.Second)
		// A blob that a key set also names (content addressing does not
		// care what the bytes are).
		ks := mustKeySet(t, b, b.b.ID, "keys")
		named := finishedJob(t, b, b.b.ID, "in-named", ks.BlobKey, succeed)

		got := expire(t, b, clk.Now().Add(-10*time.Minute), 10)
		equal(t, "old job only", got, storage.ExpiredJobs{Jobs: ids(old), Blobs: []string{}})
		got = expire(t, b, clk.advance(time.Minute), 10)
		equal(t, "the rest", got, storage.ExpiredJobs{
			Jobs:  ids(recent, done, named),
			Blobs: []string{"in-named", "res-done", "shared-in", "shared-res"},
		})

		// Deleting the key set now frees its blob.
		free, err := b.store.DeleteKeySet(b.ctx, b.b.ID, ks.ID)
		noErr(t, "DeleteKeySet", err)
		equal(t, "key set blob", free, ks.BlobKey)
	}},
	{"ok/expire/key-set-blob-held-by-job", func(t *testing.T, b bundle) {
		ks := mustKeySet(t, b, b.a.ID, "keys")
		finishedJob(t, b, b.a.ID, ks.BlobKey, "", leaveQueued)
		free, err := b.store.DeleteKeySet(b.ctx, b.a.ID, ks.ID)
		noErr(t, "DeleteKeySet", err)
		equal(t, "blob a queued job names", free, "")
	}},
	{"ok/expire/duplicates-in-one-batch", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		var jobs []storage.Job
		for range 3 {
			jobs = append(jobs, finishedJob(t, b, b.a.ID, "same-in", "same-res", succeed))
			clk.advance(time.Second)
		}
		got := expire(t, b, clk.Now(), 10)
		equal(t, "one batch", got, storage.ExpiredJobs{Jobs: ids(jobs...), Blobs: []string{"same-in", "same-res"}})
	}},
	{"ok/expire/concurrent", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		const n, shared, callers = 30, 4, 4
		want := map[hegate.JobID]bool{}
		for i := range n {
			tenant := b.a.ID
			if i%2 == 1 {
				tenant = b.b.ID
			}
			j := finishedJob(t, b, tenant, fmt.Sprintf("in-%d", i%shared), fmt.Sprintf("res-%d", i), succeed)
			want[j.ID] = true
			clk.advance(time.Second)
		}
		var (
			mu    sync.Mutex
			jobs  = map[hegate.JobID]int{}
			blobs = map[string]int{}
			errs  []error
			wg    sync.WaitGroup
		)
		for range callers {
			wg.Go(func() {
				for {
					got, err := b.store.ExpireJobs(b.ctx, storage.ExpireJobsParams{FinishedBefore: clk.Now(), Limit: 3})
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					}
					for _, id := range got.Jobs {
						jobs[id]++
					}
					for _, k := range got.Blobs {
						blobs[k]++
					}
					mu.Unlock()
					if err != nil || len(got.Jobs) == 0 {
						return
					}
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("concurrent ExpireJobs: %v", errs)
		}
		for id := range want {
			if jobs[id] != 1 {
				t.Errorf("job %s expired %d times, want once", id, jobs[id])
			}
		}
		if len(jobs) != n {
			t.Errorf("%d jobs expired, want %d", len(jobs), n)
		}
		// Every blob is returned exactly once: never twice, never leaked.
		var keys []string
		for k, c := range blobs {
			keys = append(keys, k)
			if c != 1 {
				t.Errorf("blob %s returned %d times, want once", k, c)
			}
		}
		if len(keys) != n+shared {
			slices.Sort(keys)
			t.Errorf("%d blobs returned, want %d: %v", len(keys), n+shared, keys)
		}
	}},
	{"fail/expire/params", func(t *testing.T, b bundle) {
		j := finishedJob(t, b, b.a.ID, "in", "res", succeed)
		later := time.Now().Add(time.Hour)
		for name, p := range map[string]storage.ExpireJobsParams{
			"no cutoff":     {Limit: 10},
			"limit 0":       {FinishedBefore: later},
			"limit -1":      {FinishedBefore: later, Limit: -1},
			"limit too big": {FinishedBefore: later, Limit: storage.MaxExpireJobs + 1},
		} {
			if got, err := b.store.ExpireJobs(b.ctx, p); err == nil {
				t.Errorf("ExpireJobs with %s: %+v, want an error", name, got)
			}
		}
		wantUnchanged(t, b, j)
	}},
}

var blobReferenceTests = []test{
	{"ok/blobrefs/unreferenced", func(t *testing.T, b bundle) {
		ks := mustKeySet(t, b, b.a.ID, "keys")
		finishedJob(t, b, b.b.ID, "in-queued", "", leaveQueued)
		finishedJob(t, b, b.a.ID, "in-done", "res-done", succeed)
		got, err := b.store.UnreferencedBlobs(b.ctx, []string{
			"zz-free", "res-done", "", ks.BlobKey, "in-queued", "free", "in-done", "free",
		})
		noErr(t, "UnreferencedBlobs", err)
		equal(t, "UnreferencedBlobs", got, []string{"free", "zz-free"})
		got, err = b.store.UnreferencedBlobs(b.ctx, nil)
		noErr(t, "UnreferencedBlobs(nil)", err)
		equal(t, "UnreferencedBlobs(nil)", got, []string{})
	}},
	{"ok/blobrefs/after-expiry", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		finishedJob(t, b, b.a.ID, "in", "res", succeed)
		got, err := b.store.UnreferencedBlobs(b.ctx, []string{"in", "res"})
		noErr(t, "UnreferencedBlobs", err)
		equal(t, "before expiry", got, []string{})
		expire(t, b, clk.advance(time.Hour), 10)
		got, err = b.store.UnreferencedBlobs(b.ctx, []string{"in", "res"})
		noErr(t, "UnreferencedBlobs", err)
		equal(t, "after expiry", got, []string{"in", "res"})
	}},
}

package storagetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

var jobTests = []test{
	{"ok/job/create-get", func(t *testing.T, b bundle) {
		p := jobParams(b.a.ID, "")
		j, created, err := b.store.CreateJob(b.ctx, p)
		noErr(t, "CreateJob", err)
		if !created {
			t.Fatal("CreateJob: created false")
		}
		if j.ID == "" || j.TenantID != p.TenantID || j.Model != p.Model || j.KeySetID != p.KeySetID ||
			j.InputBlob != p.InputBlob || j.InputBytes != p.InputBytes || j.Status != storage.JobQueued ||
			j.Attempts != 0 || j.ResultBlob != "" || j.ResultBytes != 0 || j.Error != "" ||
			j.IdempotencyKey != "" || j.StartedAt != nil || j.FinishedAt != nil {
			t.Fatalf("CreateJob(%+v) = %+v", p, j)
		}
		recent(t, "CreatedAt", j.CreatedAt)
		got, err := b.store.GetJob(b.ctx, b.a.ID, j.ID)
		noErr(t, "GetJob", err)
		equal(t, "GetJob", got, j)
	}},
	{"ok/job/idempotency-key", func(t *testing.T, b bundle) {
		first, created, err := b.store.CreateJob(b.ctx, jobParams(b.a.ID, "req-1"))
		noErr(t, "CreateJob", err)
		if !created || first.IdempotencyKey != "req-1" {
			t.Fatalf("CreateJob = %+v, created %v", first, created)
		}
		again, created, err := b.store.CreateJob(b.ctx, jobParams(b.a.ID, "req-1"))
		noErr(t, "CreateJob again", err)
		if created {
			t.Fatal("CreateJob with a used key: created true")
		}
		equal(t, "CreateJob with a used key", again, first)

		other, created, err := b.store.CreateJob(b.ctx, jobParams(b.b.ID, "req-1"))
		noErr(t, "CreateJob by tenant b", err)
		if !created || other.ID == first.ID {
			t.Fatalf("tenant b's job with the same key: created %v, id %s", created, other.ID)
		}
		next, created, err := b.store.CreateJob(b.ctx, jobParams(b.a.ID, "req-2"))
		noErr(t, "CreateJob with another key", err)
		if !created || next.ID == first.ID {
			t.Fatalf("another key: created %v, id %s", created, next.ID)
		}
		list, err := b.store.ListJobs(b.ctx, b.a.ID, 10)
		noErr(t, "ListJobs", err)
		if len(list) != 2 {
			t.Fatalf("tenant a has %d jobs, want 2", len(list))
		}
	}},
	{"ok/job/no-idempotency-key", func(t *testing.T, b bundle) {
		j1 := mustJob(t, b, b.a.ID)
		j2 := mustJob(t, b, b.a.ID)
		if j1.ID == j2.ID {
			t.Fatalf("two jobs without a key share id %s", j1.ID)
		}
	}},
	{"ok/job/concurrent-idempotency-key", func(t *testing.T, b bundle) {
		const n = 8
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			ids     = map[hegate.JobID]bool{}
			created int
			errs    []error
		)
		for range n {
			wg.Go(func() {
				j, c, err := b.store.CreateJob(b.ctx, jobParams(b.a.ID, "same"))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				ids[j.ID] = true
				if c {
					created++
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 || created != 1 || len(ids) != 1 {
			t.Fatalf("%d concurrent CreateJob: errors %v, created %d, ids %v", n, errs, created, ids)
		}
	}},
	{"ok/job/concurrent-writers", func(t *testing.T, b bundle) {
		const writers, each = 4, 5
		var wg sync.WaitGroup
		errs := make(chan error, writers*each*3)
		for w := range writers {
			wg.Go(func() {
				tn, err := b.store.CreateTenant(b.ctx, storage.CreateTenantParams{Name: fmt.Sprintf("writer-%d", w)})
				if err != nil {
					errs <- err
					return
				}
				for i := range each {
					j, _, err := b.store.CreateJob(b.ctx, jobParams(tn.ID, fmt.Sprintf("k%d", i)))
					if err != nil {
						errs <- err
						continue
					}
					if _, err := b.store.StartJob(b.ctx, j.ID); err != nil {
						errs <- err
					}
					if _, err := b.store.CompleteJob(b.ctx, j.ID, "res", 1); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent writer: %v", err)
		}
	}},
	{"ok/job/list-newest-first", func(t *testing.T, b bundle) {
		var jobs []storage.Job
		for range 3 {
			jobs = append(jobs, mustJob(t, b, b.a.ID))
			time.Sleep(5 * time.Millisecond)
		}
		mustJob(t, b, b.b.ID)
		got, err := b.store.ListJobs(b.ctx, b.a.ID, 10)
		noErr(t, "ListJobs", err)
		equal(t, "ListJobs(10)", got, []storage.Job{jobs[2], jobs[1], jobs[0]})
		got, err = b.store.ListJobs(b.ctx, b.a.ID, 2)
		noErr(t, "ListJobs(2)", err)
		equal(t, "ListJobs(2)", got, []storage.Job{jobs[2], jobs[1]})
		got, err = b.store.ListJobs(b.ctx, b.a.ID, 0)
		noErr(t, "ListJobs(0)", err)
		if len(got) != 0 {
			t.Fatalf("ListJobs(0) = %d jobs", len(got))
		}
	}},
	{"ok/job/start-complete", func(t *testing.T, b bundle) {
		j := mustJob(t, b, b.a.ID)
		started, err := b.store.StartJob(b.ctx, j.ID)
		noErr(t, "StartJob", err)
		if started.Status != storage.JobRunning || started.Attempts != 1 || started.StartedAt == nil {
			t.Fatalf("StartJob = %+v", started)
		}
		recent(t, "StartedAt", *started.StartedAt)
		retried, err := b.store.StartJob(b.ctx, j.ID)
		noErr(t, "StartJob on retry", err)
		if retried.Status != storage.JobRunning || retried.Attempts != 2 || !retried.StartedAt.Equal(*started.StartedAt) {
			t.Fatalf("StartJob on retry = %+v", retried)
		}
		done, err := b.store.CompleteJob(b.ctx, j.ID, "result-key", 99)
		noErr(t, "CompleteJob", err)
		if done.Status != storage.JobSucceeded || done.ResultBlob != "result-key" || done.ResultBytes != 99 ||
			done.FinishedAt == nil || done.Attempts != 2 || !done.Status.Terminal() {
			t.Fatalf("CompleteJob = %+v", done)
		}
		recent(t, "FinishedAt", *done.FinishedAt)
		got, err := b.store.GetJob(b.ctx, b.a.ID, j.ID)
		noErr(t, "GetJob", err)
		equal(t, "GetJob after CompleteJob", got, done)
	}},
	{"ok/job/fail-queued", func(t *testing.T, b bundle) {
		j := mustJob(t, b, b.a.ID)
		failed, err := b.store.FailJob(b.ctx, j.ID, "bad input")
		noErr(t, "FailJob", err)
		if failed.Status != storage.JobFailed || failed.Error != "bad input" || failed.FinishedAt == nil {
			t.Fatalf("FailJob = %+v", failed)
		}
	}},
	{"ok/job/fail-running", func(t *testing.T, b bundle) {
		j := mustJob(t, b, b.a.ID)
		_, err := b.store.StartJob(b.ctx, j.ID)
		noErr(t, "StartJob", err)
		failed, err := b.store.FailJob(b.ctx, j.ID, "evaluation failed")
		noErr(t, "FailJob", err)
		if failed.Status != storage.JobFailed || failed.Error != "evaluation failed" || failed.Attempts != 1 {
			t.Fatalf("FailJob = %+v", failed)
		}
	}},
	{"ok/job/cancel-queued", func(t *testing.T, b bundle) {
		j := mustJob(t, b, b.a.ID)
		c, err := b.store.CancelJob(b.ctx, b.a.ID, j.ID)
		noErr(t, "CancelJob", err)
		if c.Status != storage.JobCancelled || c.FinishedAt == nil {
			t.Fatalf("CancelJob = %+v", c)
		}
	}},
	{"fail/job/illegal-transitions", func(t *testing.T, b bundle) {
		queued := mustJob(t, b, b.a.ID)
		_, err := b.store.CompleteJob(b.ctx, queued.ID, "r", 1)
		wantErr(t, "CompleteJob of a queued job", err, storage.ErrConflict)

		running := mustJob(t, b, b.a.ID)
		_, err = b.store.StartJob(b.ctx, running.ID)
		noErr(t, "StartJob", err)
		_, err = b.store.CancelJob(b.ctx, b.a.ID, running.ID)
		wantErr(t, "CancelJob of a running job", err, storage.ErrConflict)

		succeeded := running
		_, err = b.store.CompleteJob(b.ctx, succeeded.ID, "r", 1)
		noErr(t, "CompleteJob", err)
		cancelled := mustJob(t, b, b.a.ID)
		_, err = b.store.CancelJob(b.ctx, b.a.ID, cancelled.ID)
		noErr(t, "CancelJob", err)
		failed := mustJob(t, b, b.a.ID)
		_, err = b.store.FailJob(b.ctx, failed.ID, "x")
		noErr(t, "FailJob", err)

		for _, j := range []storage.Job{succeeded, cancelled, failed} {
			_, err = b.store.StartJob(b.ctx, j.ID)
			wantErr(t, "StartJob of a terminal job", err, storage.ErrConflict)
			_, err = b.store.CompleteJob(b.ctx, j.ID, "r", 1)
			wantErr(t, "CompleteJob of a terminal job", err, storage.ErrConflict)
			_, err = b.store.FailJob(b.ctx, j.ID, "y")
			wantErr(t, "FailJob of a terminal job", err, storage.ErrConflict)
			_, err = b.store.CancelJob(b.ctx, b.a.ID, j.ID)
			wantErr(t, "CancelJob of a terminal job", err, storage.ErrConflict)
		}
		got, err := b.store.GetJob(b.ctx, b.a.ID, succeeded.ID)
		noErr(t, "GetJob", err)
		if got.Status != storage.JobSucceeded || got.ResultBlob != "r" {
			t.Fatalf("succeeded job changed: %+v", got)
		}
	}},
	{"fail/job/other-tenant", func(t *testing.T, b bundle) {
		j := mustJob(t, b, b.a.ID)
		_, err := b.store.GetJob(b.ctx, b.b.ID, j.ID)
		wantErr(t, "GetJob by another tenant", err, storage.ErrNotFound)
		_, err = b.store.CancelJob(b.ctx, b.b.ID, j.ID)
		wantErr(t, "CancelJob by another tenant", err, storage.ErrNotFound)
		_, err = b.store.CancelJob(b.ctx, "", j.ID)
		wantErr(t, "CancelJob with no tenant", err, storage.ErrNotFound)
		list, err := b.store.ListJobs(b.ctx, b.b.ID, 10)
		noErr(t, "ListJobs", err)
		if len(list) != 0 {
			t.Fatalf("tenant b lists %+v", list)
		}
		got, err := b.store.GetJob(b.ctx, b.a.ID, j.ID)
		noErr(t, "GetJob", err)
		if got.Status != storage.JobQueued {
			t.Fatalf("job after a foreign cancel: %+v", got)
		}
		// Tenant b's running job is not cancelled through tenant a either.
		jb := mustJob(t, b, b.b.ID)
		_, err = b.store.StartJob(b.ctx, jb.ID)
		noErr(t, "StartJob", err)
		_, err = b.store.CancelJob(b.ctx, b.a.ID, jb.ID)
		wantErr(t, "CancelJob of another tenant's running job", err, storage.ErrNotFound)
	}},
	{"fail/job/missing", func(t *testing.T, b bundle) {
		const id = hegate.JobID("job_missing")
		_, err := b.store.GetJob(b.ctx, b.a.ID, id)
		wantErr(t, "GetJob", err, storage.ErrNotFound)
		_, err = b.store.StartJob(b.ctx, id)
		wantErr(t, "StartJob", err, storage.ErrNotFound)
		_, err = b.store.CompleteJob(b.ctx, id, "r", 1)
		wantErr(t, "CompleteJob", err, storage.ErrNotFound)
		_, err = b.store.FailJob(b.ctx, id, "x")
		wantErr(t, "FailJob", err, storage.ErrNotFound)
		_, err = b.store.CancelJob(b.ctx, b.a.ID, id)
		wantErr(t, "CancelJob", err, storage.ErrNotFound)
	}},
	{"fail/job/missing-tenant", func(t *testing.T, b bundle) {
		_, _, err := b.store.CreateJob(b.ctx, jobParams("ten_missing", ""))
		wantErr(t, "CreateJob for a missing tenant", err, storage.ErrNotFound)
		_, _, err = b.store.CreateJob(b.ctx, jobParams("ten_missing", "key"))
		wantErr(t, "CreateJob with a key for a missing tenant", err, storage.ErrNotFound)
	}},
}

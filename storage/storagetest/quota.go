package storagetest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// usage reads tenant's usage and fails t on an error.
func usage(t *testing.T, b bundle, tenant hegate.TenantID) storage.TenantUsage {
	t.Helper()
	u, err := b.store.TenantUsage(b.ctx, tenant)
	noErr(t, "TenantUsage", err)
	return u
}

var quotaTests = []test{
	{"ok/quota/empty-tenant", func(t *testing.T, b bundle) {
		u := usage(t, b, b.a.ID)
		equal(t, "usage of a new tenant", u, storage.TenantUsage{})
		if u.Blobs() != 0 || u.BlobBytes() != 0 {
			t.Fatalf("Blobs %d, BlobBytes %d: want 0", u.Blobs(), u.BlobBytes())
		}
	}},
	{"fail/quota/unknown-tenant", func(t *testing.T, b bundle) {
		_, err := b.store.TenantUsage(b.ctx, "tnt_doesnotexist")
		wantErr(t, "TenantUsage of an unknown tenant", err, storage.ErrNotFound)
	}},
	{"ok/quota/key-sets", func(t *testing.T, b bundle) {
		mustKeySet(t, b, b.a.ID, "keys-one")
		// A key set with one byte changed is another key set, of the
		// same size: it counts in full.
		mustKeySet(t, b, b.a.ID, "keys-onf")
		mustKeySet(t, b, b.b.ID, "keys-of-b")
		// A replayed upload (same id) stores nothing new.
		_, created, err := b.store.PutKeySet(b.ctx, newKeySet(b.a.ID, "keys-one"))
		noErr(t, "PutKeySet again", err)
		if created {
			t.Fatal("PutKeySet again: created")
		}
		want := storage.TenantUsage{KeySets: 2, KeySetBytes: int64(2 * len("keys-one"))}
		equal(t, "usage of a", usage(t, b, b.a.ID), want)
		equal(t, "usage of b", usage(t, b, b.b.ID), storage.TenantUsage{KeySets: 1, KeySetBytes: int64(len("keys-of-b"))})

		_, err = b.store.DeleteKeySet(b.ctx, b.a.ID, keySetID("keys-one"))
		noErr(t, "DeleteKeySet", err)
		want = storage.TenantUsage{KeySets: 1, KeySetBytes: int64(len("keys-onf"))}
		got := usage(t, b, b.a.ID)
		equal(t, "usage of a after a delete", got, want)
		if got.Blobs() != 1 || got.BlobBytes() != want.KeySetBytes {
			t.Fatalf("Blobs %d, BlobBytes %d: want 1, %d", got.Blobs(), got.BlobBytes(), want.KeySetBytes)
		}
	}},
	{"ok/quota/jobs", func(t *testing.T, b bundle) {
		const in, out = 1234, 42 // jobParams' InputBytes, finishedJob's result size
		finishedJob(t, b, b.a.ID, strings.Repeat("01", 32), "", leaveQueued)
		finishedJob(t, b, b.a.ID, strings.Repeat("02", 32), "", leaveRunning)
		finishedJob(t, b, b.a.ID, strings.Repeat("03", 32), strings.Repeat("13", 32), succeed)
		finishedJob(t, b, b.a.ID, strings.Repeat("04", 32), "", fail)
		finishedJob(t, b, b.a.ID, strings.Repeat("05", 32), "", cancel)
		finishedJob(t, b, b.b.ID, strings.Repeat("06", 32), "", leaveQueued)
		want := storage.TenantUsage{JobBlobs: 6, JobBlobBytes: 5*in + out, ActiveJobs: 2}
		got := usage(t, b, b.a.ID)
		equal(t, "usage of a", got, want)
		if got.Blobs() != 6 || got.BlobBytes() != 5*in+out {
			t.Fatalf("Blobs %d, BlobBytes %d", got.Blobs(), got.BlobBytes())
		}
		equal(t, "usage of b", usage(t, b, b.b.ID), storage.TenantUsage{JobBlobs: 1, JobBlobBytes: in, ActiveJobs: 1})
	}},
	{"ok/quota/expired-jobs", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		const in, out = 1234, 42
		finishedJob(t, b, b.a.ID, strings.Repeat("01", 32), strings.Repeat("11", 32), succeed)
		finishedJob(t, b, b.a.ID, strings.Repeat("02", 32), "", fail)
		clk.advance(time.Hour)
		queued := finishedJob(t, b, b.a.ID, strings.Repeat("03", 32), "", leaveQueued)
		equal(t, "usage before retention", usage(t, b, b.a.ID),
			storage.TenantUsage{JobBlobs: 4, JobBlobBytes: 3*in + out, ActiveJobs: 1})
		got := expire(t, b, clk.Now(), storage.MaxExpireJobs)
		if len(got.Jobs) != 2 {
			t.Fatalf("ExpireJobs expired %v, want the 2 finished jobs", got.Jobs)
		}
		// Expired jobs hold nothing; the queued one still does.
		equal(t, "usage after retention", usage(t, b, b.a.ID),
			storage.TenantUsage{JobBlobs: 1, JobBlobBytes: in, ActiveJobs: 1})
		_, err := b.store.CancelJob(b.ctx, b.a.ID, queued.ID)
		noErr(t, "CancelJob", err)
		equal(t, "usage after cancelling", usage(t, b, b.a.ID),
			storage.TenantUsage{JobBlobs: 1, JobBlobBytes: in})
	}},
	{"ok/quota/models", func(t *testing.T, b bundle) {
		const src = 4321 // modelParams' SourceBytes
		mustReadyModel(t, b, b.a.ID, "ready")
		mustModel(t, b, b.a.ID, "compiling")
		gone := mustReadyModel(t, b, b.a.ID, "gone")
		mustModel(t, b, b.b.ID, "of-b")
		equal(t, "usage of a", usage(t, b, b.a.ID), storage.TenantUsage{ModelBlobs: 5, ModelBytes: 3 * src})
		_, err := b.store.DeleteModel(b.ctx, b.a.ID, gone.Name)
		noErr(t, "DeleteModel", err)
		got := usage(t, b, b.a.ID)
		equal(t, "usage of a after a delete", got, storage.TenantUsage{ModelBlobs: 3, ModelBytes: 2 * src})
		if got.Blobs() != 3 || got.BlobBytes() != 2*src {
			t.Fatalf("Blobs %d, BlobBytes %d", got.Blobs(), got.BlobBytes())
		}
		equal(t, "usage of b", usage(t, b, b.b.ID), storage.TenantUsage{ModelBlobs: 1, ModelBytes: src})
	}},
	{"ok/quota/concurrent-reads", func(t *testing.T, b bundle) {
		// Usage is read while key sets and jobs are written: every read
		// succeeds and sees a count that only grows.
		const n = 20
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := range n {
				if _, _, err := b.store.PutKeySet(b.ctx, newKeySet(b.a.ID, "keys-"+strings.Repeat("x", i+1))); err != nil {
					t.Errorf("PutKeySet: %v", err)
					return
				}
				if _, _, err := b.store.CreateJob(b.ctx, jobParams(b.a.ID, "")); err != nil {
					t.Errorf("CreateJob: %v", err)
					return
				}
			}
		})
		last := storage.TenantUsage{}
		for range n {
			u := usage(t, b, b.a.ID)
			if u.KeySets < last.KeySets || u.ActiveJobs < last.ActiveJobs {
				t.Fatalf("usage went back from %+v to %+v", last, u)
			}
			last = u
		}
		wg.Wait()
		if u := usage(t, b, b.a.ID); u.KeySets != n || u.ActiveJobs != n {
			t.Fatalf("usage %+v: want %d key sets and active jobs", u, n)
		}
	}},
}

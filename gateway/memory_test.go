package gateway

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/gateway/internal/keycache"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/storage"
)

// TestMemoryBudget: reservations never exceed the limit, a job that does
// not fit waits for a release, idle cached values are evicted to make
// room, and a job larger than the limit is refused naming both figures.
func TestMemoryBudget(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cache := keycache.New(1000, func(n int64) int64 { return n }, keycache.Hooks{})
	b := newMemoryBudget(100, cache.IdleBytes, cache.EvictIdle)
	if _, _, err := cache.Get(ctx, "idle", func(context.Context) (int64, error) { return 30, nil }); err != nil {
		t.Fatal(err)
	}
	rel1, _, err := b.acquire(ctx, 60, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 60 reserved + 30 idle: 10 free. Evicting the idle 30 makes 40.
	rel2, _, err := b.acquire(ctx, 40, 0)
	if err != nil || cache.Len() != 0 || b.reservedBytes() != 100 {
		t.Fatalf("second job: %v; cache holds %d values, %d reserved", err, cache.Len(), b.reservedBytes())
	}
	admitted := make(chan time.Duration, 1)
	go func() {
		rel3, waited, err := b.acquire(ctx, 50, 0)
		if err != nil {
			t.Error(err)
			close(admitted)
			return
		}
		admitted <- waited
		rel3()
	}()
	select {
	case <-admitted:
		t.Fatal("a third job was admitted past the limit")
	case <-time.After(50 * time.Millisecond):
	}
	rel2()
	rel2() // twice is harmless
	select {
	case <-admitted:
		t.Fatal("admitted with 40 free of the 50 it needs")
	case <-time.After(50 * time.Millisecond):
	}
	rel1()
	select {
	case waited := <-admitted:
		if waited <= 0 {
			t.Fatalf("waited %v", waited)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not admitted after every release")
	}
	if _, _, err := b.acquire(ctx, 101, 0); !hegate.Is(err, hegate.KindTooLarge) || !strings.Contains(hegate.DetailOf(err), "101 bytes") || !strings.Contains(hegate.DetailOf(err), "100 bytes") {
		t.Fatalf("a job above the limit: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	hold, _, _ := b.acquire(ctx, 100, 0)
	if _, _, err := b.acquire(short, 1, 0); err == nil {
		t.Fatal("admitted while the limit is held")
	}
	hold()

	// A waiting job's pinned key set is neither idle nor reserved: the
	// other admissions count it.
	hold, _, _ = b.acquire(ctx, 50, 0)
	waiting := make(chan func(), 1)
	go func() {
		rel, _, err := b.acquire(ctx, 60, 30) // 30 of its 60 pinned in the cache
		if err != nil {
			t.Error(err)
		}
		waiting <- rel
	}()
	time.Sleep(50 * time.Millisecond)
	small := make(chan func(), 1)
	go func() {
		rel, _, err := b.acquire(ctx, 25, 0)
		if err != nil {
			t.Error(err)
		}
		small <- rel
	}()
	select {
	case <-small:
		t.Fatal("admitted 25 bytes next to 50 reserved and 30 pinned by a waiting job")
	case <-time.After(50 * time.Millisecond):
	}
	hold()
	relW, relS := <-waiting, <-small
	if got := b.reservedBytes(); got != 85 {
		t.Fatalf("%d bytes reserved after both admissions, want 85", got)
	}
	relW()
	relS()
}

// TestRunnerMemoryLimit runs jobs of two tenants (two key sets) on a
// Runner whose memory limit holds one job at a time: every job succeeds,
// what is reserved plus the idle cached key sets never exceeds the limit
// (sampled while they run), jobs wait for each other, and on a Runner whose
// limit is below one job's estimate the job fails with a reason naming it.
func TestRunnerMemoryLimit(t *testing.T) {
	bd := setup(t, withoutWorkers())
	need := jobMemory(bd.model)
	limit := need + need/2
	r, err := NewRunner(RunnerConfig{Store: bd.store, Blobs: bd.blobs, Models: []*he.Model{bd.model}, MemoryLimit: limit, KeySetCacheBytes: 8 * need})
	if err != nil {
		t.Fatal(err)
	}
	var jobs []hegate.JobID
	tenantOfJob := map[hegate.JobID]hegate.TenantID{}
	for _, d := range []device{bd.a, bd.b} {
		ks := bd.upload(t, d)
		for seed := range uint64(3) {
			_, ct := bd.input(t, d, seed)
			_, id, err := d.client.Infer(bd.ctx, "tiny", ks, ct, client.InferOptions{})
			if err != nil {
				t.Fatal(err)
			}
			jobs = append(jobs, hegate.JobID(id))
			tenantOfJob[hegate.JobID(id)] = bd.tenantOf(t, d)
		}
	}
	var worst atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			worst.Store(max(worst.Load(), r.memory.reservedBytes()+r.cache.IdleBytes()))
			select {
			case <-stop:
				return
			default:
				time.Sleep(time.Millisecond)
			}
		}
	}()
	var wg sync.WaitGroup
	for _, id := range jobs {
		wg.Go(func() {
			if err := r.Handle(bd.ctx, id); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampled
	if worst.Load() > limit {
		t.Fatalf("%d bytes held at once, over the limit of %d", worst.Load(), limit)
	}
	for _, id := range jobs {
		j, err := bd.store.GetJob(bd.ctx, tenantOfJob[id], id)
		if err != nil || j.Status != storage.JobSucceeded {
			t.Fatalf("job %s: %s %q, %v", id, j.Status, j.Error, err)
		}
	}
	if got := histogramCount(t, r.metrics, "hegate_job_memory_wait_seconds"); got != uint64(len(jobs)) {
		t.Fatalf("%d memory admissions observed, want %d", got, len(jobs))
	}
	t.Logf("%d jobs of %d bytes each under a limit of %d: at most %d held at once", len(jobs), need, limit, worst.Load())

	small, err := NewRunner(RunnerConfig{Store: bd.store, Blobs: bd.blobs, Models: []*he.Model{bd.model}, MemoryLimit: need - 1})
	if err != nil {
		t.Fatal(err)
	}
	_, ct := bd.input(t, bd.a, 9)
	ks := bd.upload(t, bd.a)
	_, id, err := bd.a.client.Infer(bd.ctx, "tiny", ks, ct, client.InferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := small.Handle(bd.ctx, hegate.JobID(id)); err != nil {
		t.Fatal(err)
	}
	j, err := bd.store.GetJob(bd.ctx, bd.tenantOf(t, bd.a), hegate.JobID(id))
	if err != nil || j.Status != storage.JobFailed || !strings.Contains(j.Error, "more than this worker's limit") {
		t.Fatalf("job above the limit: %s %q, %v", j.Status, j.Error, err)
	}
}

// histogramCount returns the number of observations of a histogram.
func histogramCount(t *testing.T, m *Metrics, name string) uint64 {
	t.Helper()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			var n uint64
			for _, s := range f.GetMetric() {
				n += s.GetHistogram().GetSampleCount()
			}
			return n
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

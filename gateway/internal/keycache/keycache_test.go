package keycache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type blob struct{ n int64 }

func newCache(capacity int64) (*Cache[blob], *atomic.Int64, *atomic.Int64) {
	var hits, misses atomic.Int64
	c := New(capacity, func(b blob) int64 { return b.n }, Hooks{
		Hit:  func() { hits.Add(1) },
		Miss: func() { misses.Add(1) },
	})
	return c, &hits, &misses
}

func loader(n int64, loads *atomic.Int64) func(context.Context) (blob, error) {
	return func(context.Context) (blob, error) {
		loads.Add(1)
		return blob{n}, nil
	}
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	c, _, _ := newCache(10)
	ctx := context.Background()
	var loads atomic.Int64
	for _, k := range []string{"a", "b"} {
		if _, _, err := c.Get(ctx, k, loader(4, &loads)); err != nil {
			t.Fatal(err)
		}
	}
	// Touch a so b is the least recently used, then add c (4 bytes: 12 > 10).
	if _, hit, _ := c.Get(ctx, "a", loader(4, &loads)); !hit {
		t.Fatal("a: want a hit")
	}
	if _, _, err := c.Get(ctx, "c", loader(4, &loads)); err != nil {
		t.Fatal(err)
	}
	if got := c.Bytes(); got != 8 {
		t.Fatalf("Bytes = %d, want 8", got)
	}
	if _, hit, _ := c.Get(ctx, "b", loader(4, &loads)); hit {
		t.Fatal("b: want a miss after eviction")
	}
	if _, hit, _ := c.Get(ctx, "c", loader(4, &loads)); !hit {
		t.Fatal("c: want a hit")
	}
	if got := loads.Load(); got != 4 {
		t.Fatalf("loads = %d, want 4", got)
	}
}

func TestOversizedValueIsNotKept(t *testing.T) {
	t.Parallel()
	c, _, _ := newCache(10)
	var loads atomic.Int64
	for range 2 {
		v, hit, err := c.Get(context.Background(), "big", loader(11, &loads))
		if err != nil || hit || v.n != 11 {
			t.Fatalf("Get = %v, %v, %v", v, hit, err)
		}
	}
	if c.Len() != 0 || loads.Load() != 2 {
		t.Fatalf("Len = %d, loads = %d", c.Len(), loads.Load())
	}
}

func TestConcurrentGetsLoadOnce(t *testing.T) {
	t.Parallel()
	c, _, misses := newCache(100)
	release := make(chan struct{})
	var loads atomic.Int64
	load := func(context.Context) (blob, error) {
		loads.Add(1)
		<-release
		return blob{1}, nil
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, _, err := c.Get(context.Background(), "k", load); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if loads.Load() != 1 || misses.Load() != 1 {
		t.Fatalf("loads = %d, misses = %d, want 1, 1", loads.Load(), misses.Load())
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	t.Parallel()
	c, _, _ := newCache(100)
	boom := errors.New("boom")
	if _, _, err := c.Get(context.Background(), "k", func(context.Context) (blob, error) { return blob{}, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	var loads atomic.Int64
	if _, hit, err := c.Get(context.Background(), "k", loader(1, &loads)); err != nil || hit {
		t.Fatalf("second Get: hit %v err %v", hit, err)
	}
}

func TestWaiterRetriesWhenLeaderIsCancelled(t *testing.T) {
	t.Parallel()
	c, _, _ := newCache(100)
	leaderCtx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() {
		_, _, _ = c.Get(leaderCtx, "k", func(ctx context.Context) (blob, error) {
			close(started)
			<-ctx.Done()
			return blob{}, ctx.Err()
		})
	}()
	<-started
	done := make(chan error, 1)
	var loads atomic.Int64
	go func() {
		_, _, err := c.Get(context.Background(), "k", loader(1, &loads))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	if loads.Load() != 1 {
		t.Fatalf("waiter loads = %d, want 1", loads.Load())
	}
}

// TestPinnedValuesAreNotIdle: a value held through Acquire or Pin is not
// idle and EvictIdle leaves it; released, it is idle again and evicted
// least recently used first.
func TestPinnedValuesAreNotIdle(t *testing.T) {
	t.Parallel()
	c, _, _ := newCache(100)
	ctx := context.Background()
	var loads atomic.Int64
	_, _, relA, err := c.Acquire(ctx, "a", loader(10, &loads))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(ctx, "b", loader(20, &loads)); err != nil {
		t.Fatal(err)
	}
	if got := c.IdleBytes(); got != 20 {
		t.Fatalf("idle %d bytes with a pinned, want 20", got)
	}
	relB, size, ok := c.Pin("b")
	if !ok || size != 20 {
		t.Fatal("b is cached but Pin found nothing")
	}
	if _, _, ok := c.Pin("zz"); ok {
		t.Fatal("pinned a key that is not cached")
	}
	if freed := c.EvictIdle(1000); freed != 0 || c.Len() != 2 {
		t.Fatalf("evicted %d bytes of pinned values (%d left)", freed, c.Len())
	}
	relA()
	relA() // twice is harmless
	if got := c.IdleBytes(); got != 10 {
		t.Fatalf("idle %d bytes after releasing a, want 10", got)
	}
	relB()
	// Both idle now: a is least recently used (b was pinned after), and
	// asking for 5 bytes evicts it alone.
	if freed := c.EvictIdle(5); freed != 10 || c.Len() != 1 || c.Bytes() != 20 {
		t.Fatalf("EvictIdle(5) freed %d, %d left holding %d", freed, c.Len(), c.Bytes())
	}
	// A value larger than the capacity is returned unpinned and not kept.
	v, _, rel, err := c.Acquire(ctx, "huge", loader(500, &loads))
	if err != nil || v.n != 500 || c.Len() != 1 {
		t.Fatalf("huge: %v %v, %d cached", v, err, c.Len())
	}
	rel()
}

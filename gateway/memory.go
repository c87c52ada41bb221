package gateway

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he"
)

// memoryBudget admits jobs by their estimated peak memory: the sum of the
// running jobs' reservations and the key sets cached but used by no job
// stays within limit. A job that does not fit waits until running jobs
// release enough; idle cached key sets are evicted first to make room.
type memoryBudget struct {
	limit int64
	idle  func() int64           // bytes of cached key sets no job holds
	evict func(want int64) int64 // evicts idle key sets, returns bytes freed

	mu       sync.Mutex
	reserved int64
	// pinned is the memory of cached key sets that waiting jobs hold
	// pinned (so not idle, not evictable) before they are admitted.
	pinned  int64
	changed chan struct{} // closed and replaced whenever reserved falls
}

func newMemoryBudget(limit int64, idle func() int64, evict func(int64) int64) *memoryBudget {
	return &memoryBudget{limit: limit, idle: idle, evict: evict, changed: make(chan struct{})}
}

// jobMemory estimates the peak memory one evaluation of m holds: its
// expanded key set, the bootstrapper's matrices and the live ciphertexts
// (Manifest.EvaluationBytes), and, counted per job though shared, the
// model's pre-encoded weights.
func jobMemory(m *he.Model) int64 {
	man := m.Manifest()
	return man.EvaluationBytes + man.EncodedBytes
}

// acquire reserves n bytes, waiting while they do not fit. pinned is the
// size of the job's own key set when it is cached and pinned by the job
// (its n counts it): while the job waits, that memory is neither idle nor
// reserved, so the other jobs' admissions count it. It returns the release
// and how long the job waited. A job that needs more than the whole limit
// can never run here: it is refused at once.
func (b *memoryBudget) acquire(ctx context.Context, n, pinned int64) (release func(), waited time.Duration, err error) {
	if n > b.limit {
		return nil, 0, hegate.E("runner.memory", hegate.KindTooLarge, nil,
			"the job needs about %s of memory, more than this worker's limit of %s", formatBytes(n), formatBytes(b.limit))
	}
	start := time.Now()
	b.mu.Lock()
	b.pinned += pinned
	b.mu.Unlock()
	for {
		b.mu.Lock()
		free := b.limit - b.reserved - b.idle() - (b.pinned - pinned)
		if n > free {
			free += b.evict(n - free)
		}
		if n <= free {
			b.reserved += n
			b.pinned -= pinned
			b.mu.Unlock()
			var once sync.Once
			return func() { once.Do(func() { b.release(n) }) }, time.Since(start), nil
		}
		wait := b.changed
		b.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			b.mu.Lock()
			b.pinned -= pinned
			b.mu.Unlock()
			return nil, time.Since(start), fmt.Errorf("waiting for %s of memory: %w", formatBytes(n), ctx.Err())
		}
	}
}

func (b *memoryBudget) release(n int64) {
	b.mu.Lock()
	b.reserved -= n
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// reservedBytes reports the bytes reserved by running jobs.
func (b *memoryBudget) reservedBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reserved
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// JobEvents tells requests waiting in this process ("Prefer: wait", the
// events stream) that a job finished, so they answer at once instead of at
// their next poll of the store. A Server and a Runner in the same process
// share one. With Share, jobs that other processes finish wake them too
// (PostgreSQL LISTEN/NOTIFY); without it they are seen by polling. Safe
// for concurrent use.
type JobEvents struct {
	mu       sync.Mutex
	waiters  map[hegate.JobID]map[chan struct{}]struct{}
	notifier storage.JobNotifier
}

// notifyTimeout bounds telling other processes that a job finished.
const notifyTimeout = 5 * time.Second

// Share makes this process's job finishes known to every other process of
// the store through n, and theirs known here, until ctx ends (it returns
// ctx's error then). Run it in its own goroutine.
func (e *JobEvents) Share(ctx context.Context, n storage.JobNotifier) error {
	e.mu.Lock()
	e.notifier = n
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.notifier = nil
		e.mu.Unlock()
	}()
	return n.ListenJobs(ctx, e.wake)
}

// NewJobEvents returns an empty JobEvents.
func NewJobEvents() *JobEvents {
	return &JobEvents{waiters: map[hegate.JobID]map[chan struct{}]struct{}{}}
}

// subscribe returns a channel that is closed when job id finishes, and a
// function that stops waiting (call it in every case). On a nil JobEvents
// the channel never closes.
func (e *JobEvents) subscribe(id hegate.JobID) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	if e == nil {
		return ch, func() {}
	}
	e.mu.Lock()
	if e.waiters[id] == nil {
		e.waiters[id] = map[chan struct{}]struct{}{}
	}
	e.waiters[id][ch] = struct{}{}
	e.mu.Unlock()
	return ch, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if set, ok := e.waiters[id]; ok {
			delete(set, ch)
			if len(set) == 0 {
				delete(e.waiters, id)
			}
		}
	}
}

// finished wakes every request waiting for job id, here and, when
// shared, in every other process. A nil JobEvents does nothing.
func (e *JobEvents) finished(id hegate.JobID) {
	if e == nil {
		return
	}
	e.wake(id)
	e.mu.Lock()
	n := e.notifier
	e.mu.Unlock()
	if n != nil {
		// A lost notification only costs a waiter its next poll.
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		_ = n.NotifyJob(ctx, id)
		cancel()
	}
}

// wake wakes the requests of this process waiting for job id.
func (e *JobEvents) wake(id hegate.JobID) {
	e.mu.Lock()
	set := e.waiters[id]
	delete(e.waiters, id)
	e.mu.Unlock()
	for ch := range set {
		close(ch)
	}
}

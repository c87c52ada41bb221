package gateway

import (
	"sync"

	"github.com/hegate/hegate"
)

// JobEvents tells requests waiting in this process ("Prefer: wait") that a
// job finished, so they answer at once instead of at their next poll of the
// store. A Server and a Runner in the same process share one. Jobs that
// another process finishes are still seen by polling. Safe for concurrent
// use.
type JobEvents struct {
	mu      sync.Mutex
	waiters map[hegate.JobID]map[chan struct{}]struct{}
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

// finished wakes every request waiting for job id. A nil JobEvents does
// nothing.
func (e *JobEvents) finished(id hegate.JobID) {
	if e == nil {
		return
	}
	e.mu.Lock()
	set := e.waiters[id]
	delete(e.waiters, id)
	e.mu.Unlock()
	for ch := range set {
		close(ch)
	}
}

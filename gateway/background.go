package gateway

import (
	"context"
	"errors"
	"sync"
)

// background is the life cycle of a loop that runs in its own goroutine
// (the retention and orphan sweepers): started at most once, stopped by
// cancelling its context and waiting for it to return.
type background struct {
	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// start runs loop(ctx) in a goroutine until stop or until ctx ends; name
// says what refused a second start.
func (b *background) start(ctx context.Context, name string, loop func(context.Context)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return errors.New("gateway: " + name + " already started")
	}
	b.started = true
	ctx, b.cancel = context.WithCancel(ctx)
	b.done = make(chan struct{})
	go func() {
		defer close(b.done)
		loop(ctx)
	}()
	return nil
}

// stop cancels the loop and waits for it to return. Safe to call twice,
// or without start.
func (b *background) stop() {
	b.mu.Lock()
	cancel, done := b.cancel, b.done
	b.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

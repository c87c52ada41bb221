package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
)

// DefaultRequestTimeout is Config.RequestTimeout's default: longer than
// the store's own limits on one statement (a PostgreSQL store's defaults
// are 10 s per statement, 5 s per lock and 5 s for a connection), so that
// a locked table fails with its lock timeout first, and short enough that
// a store that stopped answering altogether answers 503 long before
// clients and proxies give up.
const DefaultRequestTimeout = 15 * time.Second

// streamingRoutes are the routes whose answer is a stream that lasts
// longer than any request deadline, with limits of their own: the
// deadline does not apply to them.
var streamingRoutes = map[string]bool{
	"/v1/jobs/{id}/events": true,
}

// requestDeadline gives each request a deadline of Config.RequestTimeout
// of the server's own time: the clock stops while the handler reads the
// request body, which has its own limits (BodyIdleTimeout per read, the
// body size), so a large upload is not cut off, and it runs again for
// what the handler does with the body. An inference gets WaitTimeout on
// top, the longest it waits for its job. When the deadline passes,
// the request's context ends with context.DeadlineExceeded: the store
// call in progress fails, and the request answers 503 with Retry-After.
// Streaming routes (streamingRoutes) have none.
func (s *Server) requestDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := s.router.Find(chi.NewRouteContext(), r.Method, r.URL.Path)
		if s.cfg.RequestTimeout < 0 || streamingRoutes[route] {
			next.ServeHTTP(w, r)
			return
		}
		budget := s.cfg.RequestTimeout
		if strings.HasSuffix(route, "/infer") {
			budget += s.cfg.WaitTimeout // the longest an inference waits for its job
		}
		ctx, cancel := newPausableDeadline(r.Context(), budget)
		defer cancel()
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &pausingBody{ReadCloser: r.Body, ctx: ctx, length: r.ContentLength}
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// pausingBody stops its request's deadline from the first read of the
// body until the body ends: all of it read (its Content-Length, or EOF),
// a read error, or Close.
type pausingBody struct {
	io.ReadCloser
	ctx    *pausableDeadline
	length int64 // -1: unknown
	read   int64
	ended  bool
}

func (b *pausingBody) Read(p []byte) (int, error) {
	if b.ended {
		return b.ReadCloser.Read(p)
	}
	b.ctx.pause()
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	if err != nil || (b.length >= 0 && b.read >= b.length) {
		b.end()
	}
	return n, err
}

func (b *pausingBody) Close() error {
	if !b.ended {
		b.end()
	}
	return b.ReadCloser.Close()
}

func (b *pausingBody) end() {
	b.ended = true
	b.ctx.resume()
}

// pausableDeadline is a context that ends with context.DeadlineExceeded
// once it has run, not counting its pauses, for its budget, or with its
// parent. It reports no deadline of its own (Deadline is its parent's),
// since a pause moves it.
type pausableDeadline struct {
	context.Context // the parent: values, Deadline

	done       chan struct{}
	stopParent func() bool

	mu      sync.Mutex
	err     error
	left    time.Duration // of the budget, as of since
	since   time.Time     // when the clock last started
	running bool
	timer   *time.Timer
}

func newPausableDeadline(parent context.Context, budget time.Duration) (*pausableDeadline, context.CancelFunc) {
	c := &pausableDeadline{Context: parent, done: make(chan struct{}), left: budget}
	c.stopParent = context.AfterFunc(parent, func() { c.end(parent.Err()) })
	c.resume()
	return c, func() { c.end(context.Canceled) }
}

func (c *pausableDeadline) Done() <-chan struct{} { return c.done }

func (c *pausableDeadline) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// pause stops the clock.
func (c *pausableDeadline) pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running || c.err != nil {
		return
	}
	c.timer.Stop()
	c.left -= time.Since(c.since)
	c.running = false
}

// resume starts the clock again with what is left of the budget.
func (c *pausableDeadline) resume() {
	c.mu.Lock()
	if c.running || c.err != nil {
		c.mu.Unlock()
		return
	}
	if c.left <= 0 {
		c.mu.Unlock()
		c.end(context.DeadlineExceeded)
		return
	}
	c.running, c.since = true, time.Now()
	c.timer = time.AfterFunc(c.left, func() { c.end(context.DeadlineExceeded) })
	c.mu.Unlock()
}

func (c *pausableDeadline) end(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	if c.timer != nil {
		c.timer.Stop()
	}
	close(c.done)
	c.mu.Unlock()
	c.stopParent()
}

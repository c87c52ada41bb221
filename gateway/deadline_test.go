package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hegate/hegate/internal/pgtest"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/postgres"
)

// pgFaults is a PostgreSQL store in a fresh schema that a test can break
// from the outside: lock its tables from another connection, rename them,
// or freeze the network between the store and the server.
type pgFaults struct {
	url, schema string // the direct connection, for the other connection
	proxy       *freezeProxy
}

// newPGFaults makes the schema and the proxy, or skips t without PostgreSQL.
func newPGFaults(t *testing.T) *pgFaults {
	t.Helper()
	u, schema := pgtest.Schema(t, "hegate_flt_")
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	p := newFreezeProxy(t, pu.Host)
	return &pgFaults{url: u, schema: schema, proxy: p}
}

// open is a setup store: migrated, connected through the proxy.
func (f *pgFaults) open(t *testing.T) storage.Store {
	t.Helper()
	pu, _ := url.Parse(f.url)
	pu.Host = f.proxy.addr()
	s, err := postgres.Open(t.Context(), postgres.Config{URL: pu.String(), Schema: f.schema, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// exec runs statements on a connection of its own.
func (f *pgFaults) exec(t *testing.T, sql ...string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), f.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range sql {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// lock takes LOCK TABLE table IN ACCESS EXCLUSIVE MODE in a transaction of
// another connection and holds it for hold or until release is called.
func (f *pgFaults) lock(t *testing.T, table string, hold time.Duration) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, f.url)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+f.schema+"."+table+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-stop:
		case <-time.After(hold):
		}
		_ = tx.Rollback(ctx)
		_ = conn.Close(ctx)
	}()
	var once sync.Once
	release = func() { once.Do(func() { close(stop) }); <-done }
	t.Cleanup(release)
	return release
}

// freezeProxy forwards TCP connections to target until frozen: then it
// holds every byte in both directions, as a network that stopped
// answering would, until thawed.
type freezeProxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() {
		p.frozen.Store(false)
		_ = ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			_ = c.Close()
		}
	})
	return p
}

func (p *freezeProxy) addr() string { return p.ln.Addr().String() }

func (p *freezeProxy) serve(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, u)
	p.mu.Unlock()
	go p.pipe(u, c)
	p.pipe(c, u)
}

func (p *freezeProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for p.frozen.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// timedGet sends GET path with key (none if "") and returns the answer and
// how long it took; a client timeout of limit stands in for a gateway that
// never answers.
func timedGet(t *testing.T, bd *bundle, path, key string, limit time.Duration) (*http.Response, []byte, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bd.ctx, limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, bd.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	start := time.Now()
	resp, err := bd.ts.Client().Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("GET %s: no answer in %s", path, limit)
		}
		t.Fatalf("GET %s: %v", path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s: reading the answer: %v", path, err)
	}
	return resp, body, time.Since(start)
}

// want503 checks that an answer is a 503 problem with a Retry-After,
// given within limit.
func want503(t *testing.T, what string, resp *http.Response, body []byte, took, limit time.Duration) {
	t.Helper()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("%s: status %d after %s, want 503; body %s", what, resp.StatusCode, took.Round(time.Millisecond), body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: Content-Type %q, want application/problem+json", what, ct)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("%s: 503 without Retry-After", what)
	}
	if took > limit {
		t.Errorf("%s: answered after %s, want within %s", what, took.Round(time.Millisecond), limit)
	}
	t.Logf("%s: 503 after %s", what, took.Round(time.Millisecond))
}

// TestLockedAPIKeysAnswers503: another connection holds LOCK TABLE
// api_keys IN ACCESS EXCLUSIVE MODE for 20 s. An authenticated request
// answers 503 with Retry-After long before the lock goes (the lock_timeout
// of the store's sessions), and 200 again once it is released.
func TestLockedAPIKeysAnswers503(t *testing.T) {
	t.Parallel()
	f := newPGFaults(t)
	bd := setup(t, withStore(f.open), withoutWorkers())
	if resp, body, _ := timedGet(t, bd, "/v1/keys", bd.a.secret, 30*time.Second); resp.StatusCode != http.StatusOK {
		t.Fatalf("before the lock: %d %s", resp.StatusCode, body)
	}
	release := f.lock(t, "api_keys", 20*time.Second)
	resp, body, took := timedGet(t, bd, "/v1/keys", bd.a.secret, 30*time.Second)
	want503(t, "GET /v1/keys while api_keys is locked", resp, body, took, 12*time.Second)
	release()
	if resp, body, _ := timedGet(t, bd, "/v1/keys", bd.a.secret, 30*time.Second); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the lock: %d %s", resp.StatusCode, body)
	}
}

// TestStoreFailureAfterAuthAnswers503: the store fails after the request
// was authenticated, because the table the handler reads is locked or gone
// (renamed away, as a dropped schema would be): 503 with Retry-After, not
// 500; and 200 again once the table is back.
func TestStoreFailureAfterAuthAnswers503(t *testing.T) {
	t.Parallel()
	f := newPGFaults(t)
	bd := setup(t, withStore(f.open), withoutWorkers())
	if resp, body, _ := timedGet(t, bd, "/v1/keys", bd.a.secret, 30*time.Second); resp.StatusCode != http.StatusOK {
		t.Fatalf("before: %d %s", resp.StatusCode, body)
	}

	f.exec(t, "ALTER TABLE "+f.schema+".key_sets RENAME TO key_sets_away")
	resp, body, took := timedGet(t, bd, "/v1/keys", bd.a.secret, 30*time.Second)
	want503(t, "GET /v1/keys without the key_sets table", resp, body, took, 12*time.Second)
	f.exec(t, "ALTER TABLE "+f.schema+".key_sets_away RENAME TO key_sets")

	release := f.lock(t, "key_sets", 20*time.Second)
	resp, body, took = timedGet(t, bd, "/v1/keys", bd.a.secret, 30*time.Second)
	want503(t, "GET /v1/keys while key_sets is locked", resp, body, took, 12*time.Second)
	release()

	if resp, body, _ := timedGet(t, bd, "/v1/keys", bd.a.secret, 30*time.Second); resp.StatusCode != http.StatusOK {
		t.Fatalf("after: %d %s", resp.StatusCode, body)
	}
}

// TestUnresponsiveStore: the network between the gateway and PostgreSQL
// stops answering (every byte held, no error). Readiness answers 503
// within its probe timeout, and an authenticated request answers 503 with
// Retry-After within the request deadline instead of hanging; once the
// network is back, both answer 200 again.
func TestUnresponsiveStore(t *testing.T) {
	t.Parallel()
	f := newPGFaults(t)
	bd := setup(t, withStore(f.open), withoutWorkers(), withConfig(func(c *Config) {
		c.RequestTimeout = 5 * time.Second
	}))
	t.Cleanup(func() { f.proxy.frozen.Store(false) }) // before the server's cleanup waits for its requests
	for _, path := range []string{"/v2/health/ready", "/v1/keys"} {
		if resp, body, _ := timedGet(t, bd, path, bd.a.secret, 30*time.Second); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s before: %d %s", path, resp.StatusCode, body)
		}
	}

	f.proxy.frozen.Store(true)
	resp, body, took := timedGet(t, bd, "/v2/health/ready", "", 30*time.Second)
	if resp.StatusCode != http.StatusServiceUnavailable || took > 5*time.Second {
		t.Errorf("readiness with the store not answering: %d after %s, want 503 within 5s; body %s", resp.StatusCode, took, body)
	}
	resp, body, took = timedGet(t, bd, "/v1/keys", bd.a.secret, 60*time.Second)
	want503(t, "GET /v1/keys with the store not answering", resp, body, took, 8*time.Second)
	f.proxy.frozen.Store(false)

	deadline := time.Now().Add(30 * time.Second)
	for _, path := range []string{"/v2/health/ready", "/v1/keys"} {
		for {
			resp, body, _ := timedGet(t, bd, path, bd.a.secret, 30*time.Second)
			if resp.StatusCode == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s after the network is back: %d %s", path, resp.StatusCode, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// TestPausableDeadline: the clock runs only while not paused; the context
// ends with DeadlineExceeded when it runs out, or with its parent.
func TestPausableDeadline(t *testing.T) {
	t.Parallel()
	ctx, cancel := newPausableDeadline(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, ok := ctx.Deadline(); ok {
		t.Error("a pausable deadline reports a fixed deadline")
	}
	ctx.pause()
	time.Sleep(200 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatalf("ended while paused: %v", ctx.Err())
	}
	start := time.Now()
	ctx.resume()
	<-ctx.Done()
	if took := time.Since(start); !errors.Is(ctx.Err(), context.DeadlineExceeded) || took > time.Second {
		t.Fatalf("ended with %v after %s, want DeadlineExceeded after about 100ms", ctx.Err(), took)
	}
	child, stopChild := context.WithCancel(ctx)
	defer stopChild()
	if child.Err() == nil {
		t.Error("a child of an ended deadline is not done")
	}

	parent, stopParent := context.WithCancel(t.Context())
	ctx, cancel = newPausableDeadline(parent, time.Hour)
	defer cancel()
	stopParent()
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
		t.Fatal("did not end with its parent")
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("ended with %v, want the parent's Canceled", ctx.Err())
	}
}

// slowReader yields its data in pieces, pausing before each.
type slowReader struct {
	data   []byte
	pieces int
	pause  time.Duration
	off    int
	next   int // where the next pause is
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	if r.off >= r.next {
		time.Sleep(r.pause)
		r.next += len(r.data)/r.pieces + 1
	}
	n := copy(p, r.data[r.off:min(r.next, len(r.data))])
	r.off += n
	return n, nil
}

// TestRequestDeadlineSparesUploads: the request deadline does not count
// the time a body takes to arrive, so an upload slower than it succeeds.
func TestRequestDeadlineSparesUploads(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) { c.RequestTimeout = 300 * time.Millisecond }))
	body := &slowReader{data: bd.a.keys, pieces: 8, pause: 100 * time.Millisecond}
	req, err := http.NewRequestWithContext(bd.ctx, http.MethodPost, bd.ts.URL+"/v1/keys?model="+string(bd.model.ID()), body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(bd.a.keys))
	req.Header.Set("Authorization", "Bearer "+bd.a.secret)
	start := time.Now()
	resp, err := bd.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("slow upload: %d after %s: %s", resp.StatusCode, time.Since(start), b)
	}
	if took := time.Since(start); took < 600*time.Millisecond {
		t.Fatalf("the upload took %s, not longer than the deadline: the test proves nothing", took)
	}
}

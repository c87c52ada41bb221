package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/hegate/hegate/internal/pgtest"
	"github.com/hegate/hegate/storage/postgres"
)

func TestJobEvents(t *testing.T) {
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		case <-time.After(10 * time.Millisecond):
			return false
		}
	}
	t.Run("ok/finished-wakes-every-waiter-of-that-job", func(t *testing.T) {
		e := NewJobEvents()
		a1, stop1 := e.subscribe("job_a")
		a2, stop2 := e.subscribe("job_a")
		b, stop3 := e.subscribe("job_b")
		defer stop1()
		defer stop2()
		defer stop3()
		e.finished("job_a")
		if !closed(a1) || !closed(a2) {
			t.Fatal("a waiter of job_a was not woken")
		}
		if closed(b) {
			t.Fatal("a waiter of job_b was woken")
		}
		e.finished("job_a") // twice is harmless
	})
	t.Run("ok/unsubscribe-forgets", func(t *testing.T) {
		e := NewJobEvents()
		_, stop := e.subscribe("job_a")
		stop()
		stop()
		if len(e.waiters) != 0 {
			t.Fatalf("waiters left: %v", e.waiters)
		}
	})
	t.Run("ok/nil-is-silent", func(t *testing.T) {
		var e *JobEvents
		ch, stop := e.subscribe("job_a")
		e.finished("job_a")
		stop()
		if closed(ch) {
			t.Fatal("a nil JobEvents woke a waiter")
		}
	})
}

// TestJobEventsAcrossProcesses: two JobEvents on two PostgreSQL stores of
// one schema (two processes): a job one finishes wakes a waiter of the
// other through LISTEN/NOTIFY, long before any poll.
func TestJobEventsAcrossProcesses(t *testing.T) {
	t.Parallel()
	url, schema := pgtest.Schema(t, "hegate_ev_")
	open := func() *postgres.Store {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: url, Schema: schema, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	s1, s2 := open(), open()
	if err := s1.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	e1, e2 := NewJobEvents(), NewJobEvents()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = e1.Share(ctx, s1) }()
	go func() { _ = e2.Share(ctx, s2) }()
	ch, stop := e1.subscribe("job_x")
	defer stop()
	// The listeners take a moment to LISTEN: notify until one is heard.
	deadline := time.After(20 * time.Second)
	for {
		e2.finished("job_x")
		select {
		case <-ch:
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("a job finished in one process never woke the other's waiter")
		}
	}
}

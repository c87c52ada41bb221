package gateway

import (
	"testing"
	"time"
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

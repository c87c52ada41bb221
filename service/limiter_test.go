package service

import (
	"strconv"
	"testing"
	"time"
)

// TestLoginLimiterForgetsTheOldest: a flood of new keys fills the limiter,
// which then forgets the least recently used buckets instead of refusing
// a key it has not seen (the lockout the flood was after).
func TestLoginLimiterForgetsTheOldest(t *testing.T) {
	var l loginLimiter
	now := time.Unix(1e9, 0)
	// A victim's bucket, in use, and an attacker's spent one.
	for range loginBurst {
		l.take(now, "victim")
	}
	if l.take(now, "victim") == 0 {
		t.Fatal("the victim's bucket is not spent after its burst")
	}
	for i := range maxLimiters * 2 {
		l.take(now, "ghost"+strconv.Itoa(i))
	}
	if l.lru.Len() != maxLimiters || len(l.seen) != maxLimiters {
		t.Fatalf("the limiter holds %d/%d buckets, want at most %d", l.lru.Len(), len(l.seen), maxLimiters)
	}
	if d := l.take(now, "fresh"); d != 0 {
		t.Errorf("a fresh key waits %s after the flood", d)
	}
	// Reading a key without a bucket makes none.
	if d := l.wait(now, "never-failed"); d != 0 || l.seen["never-failed"] != nil {
		t.Errorf("wait on an unknown key: %s, bucket made: %v", d, l.seen["never-failed"] != nil)
	}
	// A spent bucket says how long to wait, without spending.
	for range loginBurst {
		l.take(now, "acct")
	}
	d1, d2 := l.wait(now, "acct"), l.wait(now, "acct")
	if d1 <= 0 || d1 != d2 {
		t.Errorf("wait on a spent bucket: %s then %s", d1, d2)
	}
	if d := l.wait(now.Add(loginEvery), "acct"); d != 0 {
		t.Errorf("a try is back after %s: wait %s", loginEvery, d)
	}
}

package credential

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrReplay is what a ReplayCache returns (wrapped or not) for an id it has
// seen and not yet forgotten.
var ErrReplay = errors.New("credential: proof already used")

// ReplayCache remembers the DPoP proofs a Verifier accepted, so that each
// is accepted once (RFC 9449 section 11.1). With more than one gateway
// replica it must be shared (the gateway's store); MemoryReplay serves a
// single process and tests.
type ReplayCache interface {
	// Use records id until expiresAt. If id was recorded and expiresAt of
	// that record has not passed, it records nothing and returns an error
	// wrapping ErrReplay. Any other error means the cache failed; the
	// Verifier then refuses the request as an internal failure, never
	// accepting a proof it could not record.
	Use(ctx context.Context, id []byte, expiresAt time.Time) error
}

// ReplayFunc adapts a function to ReplayCache, for example a store whose
// conflict error the caller translates into ErrReplay.
type ReplayFunc func(ctx context.Context, id []byte, expiresAt time.Time) error

// Use calls f.
func (f ReplayFunc) Use(ctx context.Context, id []byte, expiresAt time.Time) error {
	return f(ctx, id, expiresAt)
}

// DefaultMaxReplayEntries bounds a MemoryReplay whose Max is zero: about
// 100 MB at worst, and at 60-second proofs more than 17,000 requests a
// second.
const DefaultMaxReplayEntries = 1 << 20

// MemoryReplay is an in-memory ReplayCache for one process and for tests.
// The zero value is ready to use; it must not be copied after first use.
//
// Expired ids are swept whenever the map has doubled since the last sweep,
// which keeps the cost per Use constant. When it is full of ids that have
// not expired, Use fails (not ErrReplay): refusing requests for a while is
// safe, forgetting an id early would let its proof be replayed.
type MemoryReplay struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Max bounds the number of ids held; DefaultMaxReplayEntries when zero.
	Max int

	mu      sync.Mutex
	seen    map[string]time.Time
	sweepAt int
}

// errReplayFull is MemoryReplay's refusal when full.
var errReplayFull = errors.New("credential: replay cache full")

// Use implements ReplayCache.
func (m *MemoryReplay) Use(_ context.Context, id []byte, expiresAt time.Time) error {
	now := clock(m.Now)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = make(map[string]time.Time)
	}
	k := string(id)
	if exp, ok := m.seen[k]; ok && now.Before(exp) {
		return ErrReplay
	}
	if len(m.seen) >= max(m.sweepAt, 1024) {
		m.sweep(now)
		m.sweepAt = 2 * len(m.seen)
	}
	limit := m.Max
	if limit <= 0 {
		limit = DefaultMaxReplayEntries
	}
	if _, ok := m.seen[k]; !ok && len(m.seen) >= limit {
		m.sweep(now)
		if len(m.seen) >= limit {
			return errReplayFull
		}
	}
	m.seen[k] = expiresAt
	return nil
}

// Len returns the number of ids held, expired or not.
func (m *MemoryReplay) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}

// sweep forgets the ids that expired at or before now.
func (m *MemoryReplay) sweep(now time.Time) {
	for k, exp := range m.seen {
		if !now.Before(exp) {
			delete(m.seen, k)
		}
	}
}

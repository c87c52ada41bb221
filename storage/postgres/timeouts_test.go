package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/postgres"
)

// lockTable holds LOCK TABLE schema.table IN ACCESS EXCLUSIVE MODE on a
// connection of its own until t ends.
func lockTable(t *testing.T, schema, table string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, databaseURL())
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+schema+"."+table+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx); _ = conn.Close(ctx) })
}

// withParams is databaseURL with extra query parameters.
func withParams(t *testing.T, params url.Values) string {
	t.Helper()
	u, err := url.Parse(databaseURL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// TestSessionTimeouts: the lock timeout, statement timeout and pool
// acquire timeout bound a call on a locked table or an exhausted pool, as
// the URL or the Config sets them (the Config wins), and the failure wraps
// storage.ErrUnavailable.
func TestSessionTimeouts(t *testing.T) {
	t.Parallel()
	schema := freshSchema(t)
	ctx := t.Context()
	open := func(cfg postgres.Config) *postgres.Store {
		t.Helper()
		cfg.Schema = schema
		if cfg.URL == "" {
			cfg.URL = databaseURL()
		}
		s, err := postgres.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	if err := open(postgres.Config{}).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	lockTable(t, schema, "api_keys")
	lookup := func(s *postgres.Store) (time.Duration, error) {
		start := time.Now()
		_, err := s.LookupAPIKey(ctx, make([]byte, 32))
		return time.Since(start), err
	}
	for name, tc := range map[string]struct {
		cfg      postgres.Config
		min, max time.Duration
	}{
		"lock_timeout in the URL":       {cfg: postgres.Config{URL: withParams(t, url.Values{"lock_timeout": {"300"}})}, min: 250 * time.Millisecond, max: 3 * time.Second},
		"Config.LockTimeout wins":       {cfg: postgres.Config{URL: withParams(t, url.Values{"lock_timeout": {"60000"}}), LockTimeout: 700 * time.Millisecond}, min: 650 * time.Millisecond, max: 3 * time.Second},
		"statement_timeout without one": {cfg: postgres.Config{LockTimeout: -1, StatementTimeout: 400 * time.Millisecond}, min: 350 * time.Millisecond, max: 3 * time.Second},
		"the default lock timeout":      {min: postgres.DefaultLockTimeout - 100*time.Millisecond, max: postgres.DefaultLockTimeout + 3*time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			took, err := lookup(open(tc.cfg))
			if !errors.Is(err, storage.ErrUnavailable) || errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("LookupAPIKey on a locked table: %v, want ErrUnavailable", err)
			}
			if took < tc.min || took > tc.max {
				t.Errorf("failed after %s, want %s to %s", took, tc.min, tc.max)
			}
		})
	}

	t.Run("pool acquire timeout", func(t *testing.T) {
		t.Parallel()
		s := open(postgres.Config{
			URL:              withParams(t, url.Values{postgresAcquireParam: {"250ms"}}),
			MaxConns:         2,
			LockTimeout:      -1,
			StatementTimeout: 4 * time.Second,
		})
		// Both connections wait on the lock...
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() { defer wg.Done(); _, _ = s.LookupAPIKey(ctx, make([]byte, 32)) }()
		}
		time.Sleep(500 * time.Millisecond)
		// ... so a third call finds none free.
		start := time.Now()
		err := s.Ping(ctx)
		took := time.Since(start)
		if !errors.Is(err, storage.ErrUnavailable) || took > 2*time.Second {
			t.Errorf("Ping with the pool exhausted: %v after %s, want ErrUnavailable after about 250ms", err, took)
		}
		wg.Wait()
	})
	t.Run("closed store", func(t *testing.T) {
		t.Parallel()
		s := open(postgres.Config{})
		_ = s.Close()
		if _, err := s.GetTenant(ctx, "ten_x"); !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("GetTenant on a closed store: %v, want ErrUnavailable", err)
		}
	})
	t.Run("bad acquire timeout in the URL", func(t *testing.T) {
		t.Parallel()
		if _, err := postgres.Open(ctx, postgres.Config{URL: withParams(t, url.Values{postgresAcquireParam: {"soon"}})}); err == nil {
			t.Error("Open accepted pool_acquire_timeout=soon")
		}
	})
}

// postgresAcquireParam is the URL parameter of Config.AcquireTimeout.
const postgresAcquireParam = "pool_acquire_timeout"

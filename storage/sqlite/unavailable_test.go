package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/sqlite"
)

// TestUnavailable: a database file that another process holds locked past
// the busy timeout, a missing table, a deadline and a closed store are
// failures of the database: the errors wrap storage.ErrUnavailable.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hegate.db")
	s, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	// Another process writes and does not commit: the store's write waits
	// out the busy timeout (10 s), or the caller's deadline.
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err = s.CreateTenant(dctx, storage.CreateTenantParams{Name: "late"})
	cancel()
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("CreateTenant past its deadline on a locked file: %v, want ErrUnavailable", err)
	}
	start := time.Now()
	_, err = s.CreateTenant(ctx, storage.CreateTenantParams{Name: "busy"})
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("CreateTenant on a file locked past the busy timeout (%s): %v, want ErrUnavailable", time.Since(start), err)
	}
	_, _ = conn.ExecContext(ctx, "ROLLBACK")
	conn.Close()
	if _, err := s.CreateTenant(ctx, storage.CreateTenantParams{Name: "free"}); err != nil {
		t.Fatalf("CreateTenant once the lock is gone: %v", err)
	}

	if _, err := other.ExecContext(ctx, "ALTER TABLE key_sets RENAME TO key_sets_away"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListKeySets(ctx, "ten_x"); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("ListKeySets without the table: %v, want ErrUnavailable", err)
	}
	if _, err := other.ExecContext(ctx, "ALTER TABLE key_sets_away RENAME TO key_sets"); err != nil {
		t.Fatal(err)
	}

	_ = s.Close()
	if _, err := s.GetTenantByName(ctx, "free"); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("GetTenantByName on a closed store: %v, want ErrUnavailable", err)
	}
}

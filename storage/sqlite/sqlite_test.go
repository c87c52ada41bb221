package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/internal/jobqueue"
	"github.com/hegate/hegate/storage/sqlite"
	"github.com/hegate/hegate/storage/storagetest"
)

// open returns a migrated store on a fresh database file in t's temp dir,
// on the clock now.
func open(t *testing.T, now func() time.Time) storage.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hegate.db")
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Now: now})
	storagetest.Ready(t, s, err)
	return testStore{Store: s, path: path}
}

// testStore is a Store that the suite can look behind.
type testStore struct {
	*sqlite.Store
	path string
}

var _ storagetest.QueueInspector = testStore{}

// QueuedInference reads River's table through a connection of its own
// (the file is in WAL mode: it reads what is committed, beside the
// Store's connection).
func (s testStore) QueuedInference(ctx context.Context) ([]hegate.JobID, error) {
	db, err := sql.Open("sqlite", s.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx,
		`SELECT json_extract(args, '$.job_id') FROM river_job WHERE kind = ?1`, jobqueue.Kind)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []hegate.JobID
	for rows.Next() {
		var id hegate.JobID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func TestStore(t *testing.T) {
	t.Parallel()
	storagetest.Exercise(t, open)
}

func TestInMemory(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: ":memory:"})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if _, err := s.CreateTenant(ctx, storage.CreateTenantParams{Name: "a"}); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	if _, err := s.GetTenantByName(ctx, "a"); err != nil {
		t.Fatalf("GetTenantByName: %v", err)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]sqlite.Config{
		"fail/no-path":       {},
		"fail/question-mark": {Path: "a?b"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := sqlite.Open(context.Background(), cfg); err == nil {
				t.Fatal("Open succeeded")
			}
		})
	}
}

func TestForeignKeysOn(t *testing.T) {
	t.Parallel()
	s := open(t, nil)
	_, err := s.CreateAPIKey(t.Context(), storage.CreateAPIKeyParams{
		TenantID: "ten_nobody", Name: "k", Prefix: "p", Hash: make([]byte, 32),
	})
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("CreateAPIKey for a missing tenant: %v, want ErrNotFound", err)
	}
}

package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/sqlite"
	"github.com/hegate/hegate/storage/storagetest"
)

// open returns a migrated store on a fresh database file in t's temp dir,
// on the clock now.
func open(t *testing.T, now func() time.Time) storage.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "hegate.db"), Now: now})
	return storagetest.Ready(t, s, err)
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

package migrations_test

import (
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite"

	"github.com/hegate/hegate/migrations"
)

// TestDialectsMatch checks that both dialects have the same migrations.
func TestDialectsMatch(t *testing.T) {
	t.Parallel()
	pg, err := fs.Glob(migrations.Postgres(), "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	lite, err := fs.Glob(migrations.SQLite(), "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(pg) == 0 || len(pg) != len(lite) {
		t.Fatalf("postgres has %v, sqlite has %v", pg, lite)
	}
	for i := range pg {
		if pg[i] != lite[i] {
			t.Errorf("migration %d: postgres %s, sqlite %s", i, pg[i], lite[i])
		}
	}
}

// TestSQLiteUpDownUp applies every SQLite migration, rolls all back, and
// applies them again.
func TestSQLiteUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "m.db")+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectSQLite3, db, migrations.SQLite(), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatalf("NewProvider: %v", err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("DownTo(0): %v", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('tenants', 'api_keys', 'key_sets', 'jobs')`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d tables left after DownTo(0), err %v", n, err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("second Up: %v", err)
	}
}

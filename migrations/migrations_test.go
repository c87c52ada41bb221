package migrations_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
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
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('tenants', 'api_keys', 'key_sets', 'jobs', 'models', 'model_versions', 'budgets', 'budget_usage', 'global_budgets', 'global_budget_usage', 'budget_ledger', 'enroll_challenges', 'attestation_docs', 'attestation_policies', 'devices', 'credential_signing_keys', 'dpop_proofs', 'console_users', 'console_sessions', 'audit_log')`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d tables left after DownTo(0), err %v", n, err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("second Up: %v", err)
	}
}

// TestPostgresUpDownUp applies every PostgreSQL migration in a throwaway
// schema, rolls all back, and applies them again. It skips when the
// database (HEGATE_TEST_DATABASE_URL, as for storage/postgres) is
// unreachable, unless CI is set.
func TestPostgresUpDownUp(t *testing.T) {
	t.Parallel()
	url := os.Getenv("HEGATE_TEST_DATABASE_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx := t.Context()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatalf("HEGATE_TEST_DATABASE_URL: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "hegate_migrate_" + hex.EncodeToString(b[:])
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL is unreachable and CI is set: %v", err)
		}
		t.Skipf("PostgreSQL is unreachable: %v", err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) }) // after the drop below
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})

	cfg.RuntimeParams["search_path"] = schema
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.Postgres(), goose.WithDisableGlobalRegistry(true))
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
	if err := db.QueryRowContext(ctx,
		`SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename IN ('tenants', 'api_keys', 'key_sets', 'jobs', 'models', 'model_versions', 'budgets', 'budget_usage', 'global_budgets', 'global_budget_usage', 'budget_ledger', 'enroll_challenges', 'attestation_docs', 'attestation_policies', 'devices', 'credential_signing_keys', 'dpop_proofs', 'console_users', 'console_sessions', 'audit_log')`,
		schema).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d tables left after DownTo(0), err %v", n, err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("second Up: %v", err)
	}
}

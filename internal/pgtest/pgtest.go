// Package pgtest gives tests outside storage/postgres a PostgreSQL
// database and a throwaway schema name in it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Schema returns the test database URL (HEGATE_TEST_DATABASE_URL, or the
// local default) and a fresh schema name starting with prefix, dropped
// with everything in it when t ends. It skips t when PostgreSQL is not
// reachable, and fails it instead under CI.
func Schema(t *testing.T, prefix string) (url, schema string) {
	t.Helper()
	url = os.Getenv("HEGATE_TEST_DATABASE_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		t.Skipf("PostgreSQL not reachable: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema = prefix + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return url, schema
}

// Package migrations holds hegate's SQL schema, one folder per dialect, in
// goose format (-- +goose Up / -- +goose Down), embedded in the binary.
//
// UpPostgres and UpSQLite apply them with goose. The job queue's own tables
// (River) are not here: storage/postgres and storage/sqlite apply River's
// migrations next to these ones.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Postgres returns the PostgreSQL migrations, named NNNNN_description.sql at
// the root of the returned file system.
func Postgres() fs.FS { return sub("postgres") }

// SQLite returns the SQLite migrations, named NNNNN_description.sql at the
// root of the returned file system.
func SQLite() fs.FS { return sub("sqlite") }

// UpPostgres applies the pending PostgreSQL migrations to db, logging to
// logger. It takes no lock: the caller serialises concurrent migrators.
func UpPostgres(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	return up(ctx, goose.DialectPostgres, db, Postgres(), logger)
}

// UpSQLite applies the pending SQLite migrations to db, logging to logger.
func UpSQLite(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	return up(ctx, goose.DialectSQLite3, db, SQLite(), logger)
}

// up applies fsys's pending migrations with goose's provider, never its
// global registry. goose's own errors name the migration that failed.
func up(ctx context.Context, dialect goose.Dialect, db *sql.DB, fsys fs.FS, logger *slog.Logger) error {
	provider, err := goose.NewProvider(dialect, db, fsys,
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(logger),
	)
	if err != nil {
		return fmt.Errorf("loading migrations: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return err
	}
	return nil
}

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		// Only reachable if the embed directive above and dir disagree.
		panic(fmt.Sprintf("migrations: no embedded directory %q: %v", dir, err))
	}
	return f
}

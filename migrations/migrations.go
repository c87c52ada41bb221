// Package migrations holds hegate's SQL schema, one folder per dialect, in
// goose format (-- +goose Up / -- +goose Down), embedded in the binary.
//
// The job queue's own tables (River) are not here: storage/postgres and
// storage/sqlite apply River's migrations next to these ones.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Postgres returns the PostgreSQL migrations, named NNNNN_description.sql at
// the root of the returned file system.
func Postgres() fs.FS { return sub("postgres") }

// SQLite returns the SQLite migrations, named NNNNN_description.sql at the
// root of the returned file system.
func SQLite() fs.FS { return sub("sqlite") }

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		// Only reachable if the embed directive above and dir disagree.
		panic(fmt.Sprintf("migrations: no embedded directory %q: %v", dir, err))
	}
	return f
}

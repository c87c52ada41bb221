// Package sqlite implements storage.Store on SQLite through modernc.org/sqlite
// (pure Go, no cgo), with River (riversqlite) as the job queue. It is the
// embedded default: `hegate serve` and `hegate demo` run on a fresh machine
// with nothing installed.
//
// The database runs in WAL mode with foreign keys on and a busy timeout.
// SQLite serialises writers, and River's SQLite driver asks for a single
// connection, so the Store uses exactly one: concurrent goroutines queue for
// it in database/sql instead of failing with "database is locked". Each
// connection's transactions begin IMMEDIATE, so another process sharing the
// file (a separate `hegate worker`) waits on the busy timeout rather than
// deadlocking on a lock upgrade.
//
// Timestamps are stored as TEXT in the fixed-width UTC form
// 2006-01-02T15:04:05.000000Z (microseconds), which sorts as text.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/riverqueue/river/riverdriver/riversqlite"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hegate/hegate/migrations"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/internal/jobqueue"
)

// Engine is what Store.Engine returns.
const Engine = "sqlite"

// busyTimeout is how long a connection waits for another process's lock.
const busyTimeout = 10 * time.Second

// Config configures a Store.
type Config struct {
	// Path is the database file, created if missing; ":memory:" for a
	// throwaway in-memory database. Required; must not contain '?'.
	Path string
	// Logger receives the job queue's and migrations' logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for stored timestamps; nil means time.Now.
	Now func() time.Time
}

// Validate checks the configuration and names the offending field.
func (c Config) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("sqlite: Config.Path is required")
	case strings.ContainsRune(c.Path, '?'):
		return fmt.Errorf("sqlite: Config.Path %q must not contain '?'", c.Path)
	}
	return nil
}

// Store is a storage.Store on SQLite.
type Store struct {
	db     *sql.DB
	logger *slog.Logger
	clock  func() time.Time
	driver *riversqlite.Driver
	queue  *jobqueue.Queue[*sql.Tx]
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating if needed) the database file and checks that it
// answers. It does not migrate: call Migrate.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", cfg.Path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: opening %s: %w", cfg.Path, err)
	}
	// One connection: SQLite has one writer at a time anyway, River's
	// SQLite driver needs it, and ":memory:" lives exactly as long as it.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlite: opening %s: %w", cfg.Path, err)
	}

	s := &Store{
		db:     db,
		logger: cfg.Logger,
		clock:  cfg.Now,
		driver: riversqlite.New(db),
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	s.queue, err = jobqueue.New(s.driver, s.queueConfig())
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return s, nil
}

func (s *Store) queueConfig() jobqueue.Config {
	return jobqueue.Config{Logger: s.logger, Now: s.clock}
}

// now is the store's clock in UTC at the stored precision (microseconds),
// so a value read back equals the value written.
func (s *Store) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

// Engine returns "sqlite".
func (s *Store) Engine() string { return Engine }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("pinging sqlite: %w", err)
	}
	return nil
}

// Close closes the database. Call StopWorkers first.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing sqlite: %w", err)
	}
	return nil
}

// Migrate applies hegate's goose migrations and River's migrations.
func (s *Store) Migrate(ctx context.Context) error {
	if err := migrations.UpSQLite(ctx, s.db, s.logger); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	if err := jobqueue.Migrate(ctx, s.driver, s.queueConfig()); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	return nil
}

// StartWorkers starts River workers in this process; see storage.Workers.
func (s *Store) StartWorkers(ctx context.Context, cfg storage.WorkerConfig) error {
	return s.queue.Start(ctx, cfg,
		jobqueue.StoreHooks(s.jobStatus, s.FailJob),
		jobqueue.ModelHooks(s.modelStatus, s.MarkModelFailed))
}

// StopWorkers stops the workers started by StartWorkers; see storage.Workers.
func (s *Store) StopWorkers(ctx context.Context) error {
	return s.queue.Stop(ctx)
}

// errNoRows is the ErrNotFound that translate returns for "no rows", so
// callers can tell it from a foreign-key violation.
var errNoRows = fmt.Errorf("%w: no rows", storage.ErrNotFound)

// translate turns database/sql and SQLite errors into storage's domain
// errors. It is the only place that looks inside driver errors. A unique or
// primary-key violation is ErrConflict; a foreign-key violation (the
// referenced tenant does not exist) and "no rows" are ErrNotFound; a
// failure of the database itself wraps ErrUnavailable: the file is locked
// by another process beyond the busy timeout (SQLITE_BUSY, SQLITE_LOCKED),
// cannot be read or written (I/O, full disk, read-only, out of memory), a
// table is missing, the store is closed, or the caller's deadline passed.
// Other errors are returned as they are.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return errNoRows
	}
	if errors.Is(err, storage.ErrUnavailable) {
		return err
	}
	var sErr *sqlite.Error
	if errors.As(err, &sErr) {
		switch sErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %s", storage.ErrConflict, sErr.Error())
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %s", storage.ErrNotFound, sErr.Error())
		}
		switch sErr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_READONLY, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL,
			sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return unavailable(err)
		case sqlite3.SQLITE_ERROR:
			if strings.Contains(sErr.Error(), "no such table") {
				return unavailable(err)
			}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, sql.ErrConnDone) ||
		strings.Contains(err.Error(), "sql: database is closed") {
		return unavailable(err)
	}
	return err
}

// unavailable wraps err, a failure of the database, with
// storage.ErrUnavailable, keeping err in the chain.
func unavailable(err error) error {
	return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
}

// timeLayout is how timestamps are stored: fixed width, UTC, microseconds.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// dbTime is a time.Time stored in timeLayout.
type dbTime time.Time

// Value implements driver.Valuer.
func (t dbTime) Value() (driver.Value, error) {
	return time.Time(t).UTC().Format(timeLayout), nil
}

// nullTime scans a nullable timestamp column.
type nullTime struct {
	Time  time.Time
	Valid bool
}

// Scan implements sql.Scanner.
func (n *nullTime) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case nil:
		*n = nullTime{}
		return nil
	case time.Time:
		*n = nullTime{Time: v.UTC(), Valid: true}
		return nil
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return fmt.Errorf("scanning timestamp: unexpected %T", src)
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return fmt.Errorf("scanning timestamp: %w", err)
	}
	*n = nullTime{Time: t.UTC(), Valid: true}
	return nil
}

// ptr returns the time or nil.
func (n nullTime) ptr() *time.Time {
	if !n.Valid {
		return nil
	}
	t := n.Time
	return &t
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// collect scans every row with scan and closes rows.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	return out, nil
}

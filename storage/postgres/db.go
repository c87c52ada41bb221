package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hegate/hegate/storage"
)

// db is the connection pool as the Store uses it: pgxpool with a bound on
// waiting for a connection (pgxpool waits as long as the context lets it),
// and every error of the database itself marked storage.ErrUnavailable
// (see unavailable), whether or not the code that ran the query
// translates it.
type db struct {
	pool           *pgxpool.Pool
	acquireTimeout time.Duration // 0: as long as the context allows
	closed         atomic.Bool
}

// errPoolClosed is what a Store answers once closed.
var errPoolClosed = errors.New("postgres: the store is closed")

// acquire takes a connection, waiting at most acquireTimeout.
func (d *db) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	if d.closed.Load() {
		return nil, unavailable(errPoolClosed)
	}
	actx, cancel := ctx, context.CancelFunc(func() {})
	if d.acquireTimeout > 0 {
		actx, cancel = context.WithTimeout(ctx, d.acquireTimeout)
	}
	defer cancel()
	c, err := d.pool.Acquire(actx)
	if err != nil {
		if ctx.Err() == nil && actx.Err() != nil {
			return nil, unavailable(fmt.Errorf("postgres: no connection free within %s (pool of %d, all busy)", d.acquireTimeout, d.pool.Config().MaxConns))
		}
		if d.closed.Load() {
			return nil, unavailable(errPoolClosed)
		}
		return nil, mark(fmt.Errorf("postgres: acquiring a connection: %w", err))
	}
	return c, nil
}

// Acquire takes a connection for the caller to release.
func (d *db) Acquire(ctx context.Context) (*pgxpool.Conn, error) { return d.acquire(ctx) }

// Exec runs sql on a connection of the pool.
func (d *db) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c, err := d.acquire(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer c.Release()
	tag, err := c.Exec(ctx, sql, args...)
	return tag, mark(err)
}

// Query runs sql on a connection of the pool, which the rows release.
func (d *db) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c, err := d.acquire(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		c.Release()
		return nil, mark(err)
	}
	return &rowsOf{Rows: rows, release: c.Release}, nil
}

// QueryRow runs sql on a connection of the pool, released by Scan.
func (d *db) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := d.Query(ctx, sql, args...)
	if err != nil {
		return errRow{err}
	}
	return rowOf{rows}
}

// Begin starts a transaction on a connection of the pool, released when
// it commits or rolls back.
func (d *db) Begin(ctx context.Context) (pgx.Tx, error) {
	return d.BeginTx(ctx, pgx.TxOptions{})
}

// BeginTx is Begin with options.
func (d *db) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	c, err := d.acquire(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := c.BeginTx(ctx, opts)
	if err != nil {
		c.Release()
		return nil, mark(err)
	}
	return &txOf{Tx: tx, release: sync.OnceFunc(c.Release)}, nil
}

// Ping checks that a connection answers.
func (d *db) Ping(ctx context.Context) error {
	c, err := d.acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return mark(c.Ping(ctx))
}

// Close closes the pool; later calls fail with ErrUnavailable.
func (d *db) Close() {
	d.closed.Store(true)
	d.pool.Close()
}

// rowsOf marks the errors of pgx.Rows and releases their connection.
type rowsOf struct {
	pgx.Rows
	release func()
	done    bool
}

func (r *rowsOf) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.end()
	return false
}

func (r *rowsOf) Close() {
	r.Rows.Close()
	r.end()
}

func (r *rowsOf) end() {
	if !r.done {
		r.done = true
		r.release()
	}
}

func (r *rowsOf) Err() error { return mark(r.Rows.Err()) }

func (r *rowsOf) Scan(dest ...any) error { return mark(r.Rows.Scan(dest...)) }

// rowOf is pgx.Rows as a pgx.Row, like pgx's own: Scan reads the first
// row, fails with pgx.ErrNoRows without one, and closes the rows.
type rowOf struct{ rows pgx.Rows }

func (r rowOf) Scan(dest ...any) error {
	defer r.rows.Close()
	if err := r.rows.Err(); err != nil {
		return err
	}
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// errRow is a pgx.Row whose query failed.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// txOf marks the errors of a transaction and releases its connection when
// it ends.
type txOf struct {
	pgx.Tx
	release func()
}

func (t *txOf) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := t.Tx.Exec(ctx, sql, args...)
	return tag, mark(err)
}

func (t *txOf) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := t.Tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, mark(err)
	}
	return &rowsOf{Rows: rows, release: func() {}}, nil
}

func (t *txOf) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	if err != nil {
		return errRow{err}
	}
	return rowOf{rows}
}

func (t *txOf) Commit(ctx context.Context) error {
	defer t.release()
	return mark(t.Tx.Commit(ctx))
}

func (t *txOf) Rollback(ctx context.Context) error {
	defer t.release()
	return mark(t.Tx.Rollback(ctx))
}

// mark wraps err with storage.ErrUnavailable when it is a failure of the
// database rather than of the statement (see unavailable), and returns
// any other error as it is.
func mark(err error) error {
	if err == nil || errors.Is(err, storage.ErrUnavailable) || !isUnavailable(err) {
		return err
	}
	return unavailable(err)
}

// SQLSTATE classes and codes of the database's own failures: it cannot be
// reached or is going away (08, 57P0x), ran out of something (53, 58), a
// statement, lock or idle-in-transaction timeout fired (57014, 55P03,
// 25P03), a conflict with another session's transaction (40: serialisation
// failure, deadlock), or the schema the store expects is not there (a
// dropped or renamed schema, table or column, a revoked privilege, a
// dropped database: 3D000, 3F000, 42P01, 42703, 42501) or the login was
// refused (28). Others (data and integrity errors, syntax) are the
// statement's, so a bug, and stay as they are.
var (
	unavailableClasses = map[string]bool{"08": true, "28": true, "40": true, "53": true, "58": true, "XX": true}
	unavailableCodes   = map[string]bool{
		"57014": true, // query_canceled: statement_timeout
		"57P01": true, // admin_shutdown
		"57P02": true, // crash_shutdown
		"57P03": true, // cannot_connect_now
		"57P04": true, // database_dropped
		"55P03": true, // lock_not_available: lock_timeout
		"55006": true, // object_in_use
		"25P03": true, // idle_in_transaction_session_timeout
		"3D000": true, // invalid_catalog_name
		"3F000": true, // invalid_schema_name
		"42P01": true, // undefined_table
		"42703": true, // undefined_column
		"42501": true, // insufficient_privilege
	}
)

// isUnavailable reports whether err is a failure of the database rather
// than of the statement: one of the SQLSTATEs above, a timeout (the
// context's deadline included, not its cancellation by the caller), or a
// broken or refused connection.
func isUnavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return unavailableCodes[pgErr.Code] || len(pgErr.Code) == 5 && unavailableClasses[pgErr.Code[:2]]
	}
	if errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return false // the caller gave up: not the database's fault
	}
	var (
		netErr     net.Error
		connectErr *pgconn.ConnectError
	)
	return errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) ||
		errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || pgconn.SafeToRetry(err)
}

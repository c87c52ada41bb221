// Package postgres implements storage.Store on PostgreSQL through pgx, with
// River (riverpgxv5) as the job queue. It is the production store: any number
// of gateway and worker processes on any number of machines may share one
// database.
//
// With Config.Schema set, every connection's search_path is that schema
// alone, hegate's tables and goose's version table live there, and River is
// configured with the same schema (its tables, and its LISTEN/NOTIFY topics,
// are qualified by it). Several deployments, or parallel test runs, can thus
// share one database.
//
// Every session runs with a statement_timeout and a lock_timeout, and
// waiting for a free connection of the pool is bounded too (see Config),
// so that a locked table or a database that stopped answering fails a
// call with an error wrapping storage.ErrUnavailable instead of holding it
// forever. Migrate runs without those limits.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/hegate/hegate/migrations"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/internal/jobqueue"
)

// Engine is what Store.Engine returns.
const Engine = "postgres"

// schemaRE is what Config.Schema must match: an unquoted, lowercase
// PostgreSQL identifier, so it needs no quoting and does not change case.
var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

// Config configures a Store.
type Config struct {
	// URL is the pgx connection string, e.g.
	// "postgres://user@host:5432/db?sslmode=verify-full". Required.
	URL string
	// Schema, if set, is the schema that holds hegate's and River's tables:
	// lowercase letters, digits and underscores, at most 40 characters,
	// not starting with a digit. Migrate creates it if it does not exist.
	// Empty means the connection's default search_path.
	Schema string
	// MaxConns caps the connection pool; 0 means pgxpool's default
	// (the larger of 4 and the number of CPUs). River keeps one connection
	// for LISTEN and Migrate holds one for its lock while using others, so
	// at least 2 are needed.
	MaxConns int
	// StatementTimeout is the statement_timeout of every session: a
	// statement running longer is cancelled by the server. 0 means the
	// URL's statement_timeout parameter if it has one, else
	// DefaultStatementTimeout; negative means none.
	StatementTimeout time.Duration
	// LockTimeout is the lock_timeout of every session: a statement
	// waiting longer for a lock (a table locked by another session) fails.
	// 0 means the URL's lock_timeout parameter if it has one, else
	// DefaultLockTimeout; negative means none.
	LockTimeout time.Duration
	// AcquireTimeout bounds the wait for a free connection of the pool
	// when all are busy. 0 means the URL's pool_acquire_timeout parameter
	// (a Go duration such as 5s) if it has one, else DefaultAcquireTimeout;
	// negative means as long as the caller's context allows.
	AcquireTimeout time.Duration
	// Logger receives the job queue's and migrations' logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for stored timestamps; nil means time.Now.
	Now func() time.Time
}

// Defaults of Config's timeouts. A request to the gateway makes a few
// statements, each well under a second on a healthy database; these fail
// a call on a locked or stuck database long before a client gives up, and
// within the gateway's own request deadline.
const (
	DefaultStatementTimeout = 10 * time.Second
	DefaultLockTimeout      = 5 * time.Second
	DefaultAcquireTimeout   = 5 * time.Second
)

// acquireTimeoutParam is the URL parameter of Config.AcquireTimeout.
const acquireTimeoutParam = "pool_acquire_timeout"

// Validate checks the configuration and names the offending field.
func (c Config) Validate() error {
	switch {
	case c.URL == "":
		return errors.New("postgres: Config.URL is required")
	case c.Schema != "" && !schemaRE.MatchString(c.Schema):
		return fmt.Errorf("postgres: Config.Schema %q must match %s", c.Schema, schemaRE)
	case c.MaxConns < 0 || c.MaxConns == 1:
		return fmt.Errorf("postgres: Config.MaxConns is %d, must be 0 (default) or >= 2", c.MaxConns)
	}
	return nil
}

// sessionTimeouts sets statement_timeout and lock_timeout in the runtime
// parameters of pcfg as cfg asks (see Config) and returns the pool's
// acquire timeout (0: none).
func sessionTimeouts(cfg Config, pcfg *pgxpool.Config) (time.Duration, error) {
	params := pcfg.ConnConfig.RuntimeParams
	for _, p := range []struct {
		name string
		v    time.Duration
		def  time.Duration
	}{
		{"statement_timeout", cfg.StatementTimeout, DefaultStatementTimeout},
		{"lock_timeout", cfg.LockTimeout, DefaultLockTimeout},
	} {
		switch {
		case p.v < 0:
			params[p.name] = "0"
		case p.v > 0:
			params[p.name] = strconv.FormatInt(max(p.v.Milliseconds(), 1), 10)
		case params[p.name] != "" || strings.Contains(params["options"], p.name):
			// The URL sets it.
		default:
			params[p.name] = strconv.FormatInt(p.def.Milliseconds(), 10)
		}
	}
	acquire := DefaultAcquireTimeout
	if v, ok := params[acquireTimeoutParam]; ok {
		// pgx would send it to the server, which knows no such setting.
		delete(params, acquireTimeoutParam)
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("postgres: Config.URL: %s=%q is not a duration such as 5s", acquireTimeoutParam, v)
		}
		acquire = d
	}
	switch {
	case cfg.AcquireTimeout < 0:
		acquire = 0
	case cfg.AcquireTimeout > 0:
		acquire = cfg.AcquireTimeout
	}
	return acquire, nil
}

// Store is a storage.Store on PostgreSQL.
type Store struct {
	pool   *db
	pcfg   *pgxpool.Config // what the pool was made of, for Migrate's own
	schema string
	logger *slog.Logger
	clock  func() time.Time
	driver *riverpgxv5.Driver
	queue  *jobqueue.Queue[pgx.Tx]
}

var _ storage.Store = (*Store)(nil)

// Open connects to PostgreSQL and checks that it answers. It does not
// migrate: call Migrate (as `hegate migrate` and start-up do).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, errors.New("postgres: Config.URL is not a valid connection string")
	}
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = int32(cfg.MaxConns)
	}
	if cfg.Schema != "" {
		pcfg.ConnConfig.RuntimeParams["search_path"] = cfg.Schema
	}
	acquire, err := sessionTimeouts(cfg, pcfg)
	if err != nil {
		return nil, err
	}
	migrateCfg := pcfg.Copy()
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: creating pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connecting: %w", err)
	}

	s := &Store{
		pool:   &db{pool: pool, acquireTimeout: acquire},
		pcfg:   migrateCfg,
		schema: cfg.Schema,
		logger: cfg.Logger,
		clock:  cfg.Now,
		driver: riverpgxv5.New(pool),
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	s.queue, err = jobqueue.New(s.driver, s.queueConfig())
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return s, nil
}

func (s *Store) queueConfig() jobqueue.Config {
	return jobqueue.Config{Schema: s.schema, Logger: s.logger, Now: s.clock}
}

// now is the store's clock in UTC at PostgreSQL's precision (microseconds),
// so a value read back equals the value written.
func (s *Store) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

// Engine returns "postgres".
func (s *Store) Engine() string { return Engine }

// Ping reports whether the database answers: a connection of the pool
// (within the acquire timeout) runs a statement.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pinging postgres: %w", err)
	}
	return nil
}

// Close closes the connection pool. Call StopWorkers first.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Migrate creates the schema if needed and applies hegate's goose
// migrations and River's migrations, under a PostgreSQL advisory lock (one
// per schema) so that processes starting together migrate one at a time.
// It uses a pool of its own whose sessions have no statement or lock
// timeout: a migration may rewrite a large table, and waits for the
// locks of running transactions.
func (s *Store) Migrate(ctx context.Context) (err error) {
	mcfg := s.pcfg.Copy()
	mcfg.ConnConfig.RuntimeParams["statement_timeout"] = "0"
	mcfg.ConnConfig.RuntimeParams["lock_timeout"] = "0"
	mcfg.MinConns, mcfg.MaxConns = 0, 3 // the lock's, and goose's or River's
	pool, err := pgxpool.NewWithConfig(ctx, mcfg)
	if err != nil {
		return fmt.Errorf("migrating: creating pool: %w", err)
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrating: acquiring connection: %w", err)
	}
	defer conn.Release()

	lockID := s.advisoryLockID("migrate")
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
		return fmt.Errorf("migrating: taking lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", lockID); uerr != nil {
			// Never give a connection that may still hold the lock back to the pool.
			_ = conn.Conn().Close(uctx)
			err = errors.Join(err, fmt.Errorf("migrating: releasing lock: %w", uerr))
		}
	}()

	if s.schema != "" {
		// schemaRE makes the name safe to splice.
		if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+s.schema); err != nil {
			return fmt.Errorf("migrating: creating schema %s: %w", s.schema, err)
		}
	}

	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close()
	if err := migrations.UpPostgres(ctx, sqlDB, s.logger); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	if err := jobqueue.Migrate(ctx, riverpgxv5.New(pool), s.queueConfig()); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	return nil
}

// advisoryLockID names a PostgreSQL advisory lock for purpose, one per
// schema, so that deployments sharing a database do not wait on each other.
func (s *Store) advisoryLockID(purpose string) int64 {
	h := fnv.New64a()
	h.Write([]byte("hegate " + purpose + " " + s.schema))
	return int64(h.Sum64())
}

// lockBlobReferences takes the transaction-scoped advisory lock that
// serialises, across processes, the transactions that may remove a blob's
// last reference and then decide whether the blob is unreferenced
// (ExpireJobs, DeleteKeySet). Row locks are not enough: under READ
// COMMITTED two such transactions that each remove one of two references
// to a blob would each still see the other's, and neither would report the
// blob, which would then stay on disk forever. Holding this lock, the
// second one starts after the first committed and sees its change.
func (s *Store) lockBlobReferences(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.advisoryLockID("blob references")); err != nil {
		return fmt.Errorf("taking the blob-references lock: %w", err)
	}
	return nil
}

// lockModelChanges takes the transaction-scoped advisory lock that
// serialises, across processes, every transaction that changes a model
// version (CreateModelVersion, MarkModelReady, MarkModelFailed,
// DeleteModel). Holding it, a change reads the last UpdatedAt and stamps
// itself strictly later (modelStamp), so UpdatedAt order is commit order,
// which is what makes ModelsChangedSince safe to poll. Model changes are
// rare (uploads, compilations, deletes); inference jobs never take it.
// Take it first, before any row lock.
func (s *Store) lockModelChanges(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.advisoryLockID("model changes")); err != nil {
		return fmt.Errorf("taking the model-changes lock: %w", err)
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

// SQLSTATE codes translate handles.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

// errNoRows is the ErrNotFound that translate returns for "no rows", so
// callers can tell it from a foreign-key violation.
var errNoRows = fmt.Errorf("%w: no rows", storage.ErrNotFound)

// translate turns pgx errors into storage's domain errors. It is the only
// place, with mark (db.go), that looks inside pgx errors. A unique
// violation is ErrConflict; a foreign-key violation (the referenced tenant
// does not exist) and "no rows" are ErrNotFound; a failure of the database
// itself (see isUnavailable) wraps ErrUnavailable. Other errors are
// returned as they are.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return errNoRows
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case codeUniqueViolation:
			return fmt.Errorf("%w: %s", storage.ErrConflict, pgErr.ConstraintName)
		case codeForeignKeyViolation:
			return fmt.Errorf("%w: %s", storage.ErrNotFound, pgErr.ConstraintName)
		}
	}
	return mark(err)
}

// unavailable wraps err, a failure of the database, with
// storage.ErrUnavailable, keeping err in the chain.
func unavailable(err error) error {
	if errors.Is(err, storage.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
}

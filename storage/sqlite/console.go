package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/internal/ids"
	"github.com/hegate/hegate/storage/internal/validate"
)

// The web console; see storage.Users, storage.Sessions, storage.Audit and
// migrations/sqlite/00008. Writers are serialised (one connection), so
// every conditional statement here sees no concurrent change.

const userColumns = `id, tenant_id, name, role, password_hash, created_at, last_login_at, disabled`

// scanUser scans userColumns.
func scanUser(row scanner) (storage.User, error) {
	u, err := scanUserFrom(row)
	if err != nil {
		return storage.User{}, translate(err)
	}
	return u, nil
}

// scanUserFrom scans userColumns from row, after the dests in before.
func scanUserFrom(row scanner, before ...any) (storage.User, error) {
	var (
		u              storage.User
		tenant         sql.NullString
		created, login nullTime
	)
	err := row.Scan(append(before, &u.ID, &tenant, &u.Name, &u.Role, &u.PasswordHash, &created, &login, &u.Disabled)...)
	if err != nil {
		return storage.User{}, err
	}
	u.TenantID = hegate.TenantID(tenant.String)
	u.CreatedAt = created.Time
	u.LastLoginAt = login.ptr()
	return u, nil
}

// userTenant is the tenant_id column of a user of tenant: NULL for an
// operator.
func userTenant(tenant hegate.TenantID) sql.NullString {
	return sql.NullString{String: string(tenant), Valid: tenant != ""}
}

// micro is t as stored: UTC, microseconds.
func micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// CreateUser stores a new user; see storage.Users. ErrConflict if the name
// is taken in the tenant (or among operators), ErrNotFound if the tenant
// does not exist, an error if p is invalid.
func (s *Store) CreateUser(ctx context.Context, p storage.CreateUserParams) (storage.User, error) {
	if err := validate.CreateUser(p); err != nil {
		return storage.User{}, fmt.Errorf("creating console user: %w", err)
	}
	u, err := scanUser(s.db.QueryRowContext(ctx,
		`INSERT INTO console_users (id, tenant_id, name, role, password_hash, created_at)
		 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING `+userColumns,
		ids.New(ids.User), userTenant(p.TenantID), p.Name, p.Role, p.PasswordHash, dbTime(s.now())))
	if err != nil {
		return storage.User{}, fmt.Errorf("creating console user %q of tenant %q: %w", p.Name, p.TenantID, err)
	}
	return u, nil
}

// GetUser returns a user of any tenant, or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id hegate.UserID) (storage.User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM console_users WHERE id = ?1`, id))
	if err != nil {
		return storage.User{}, fmt.Errorf("getting console user %s: %w", id, err)
	}
	return u, nil
}

// FindUser returns the tenant's user (tenant "": the operator) of that
// name, or ErrNotFound. It filters on the unique index's expression.
func (s *Store) FindUser(ctx context.Context, tenant hegate.TenantID, name string) (storage.User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx,
		`SELECT `+userColumns+` FROM console_users WHERE coalesce(tenant_id, '') = ?1 AND name = ?2`,
		tenant, name))
	if err != nil {
		return storage.User{}, fmt.Errorf("finding console user %q of tenant %q: %w", name, tenant, err)
	}
	return u, nil
}

// ListUsers returns the tenant's users (tenant "": the operators) by name,
// bytewise.
func (s *Store) ListUsers(ctx context.Context, tenant hegate.TenantID) ([]storage.User, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+userColumns+` FROM console_users WHERE coalesce(tenant_id, '') = ?1 ORDER BY name, id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("listing console users of tenant %q: %w", tenant, translate(err))
	}
	out, err := collect(rows, scanUser)
	if err != nil {
		return nil, fmt.Errorf("listing console users of tenant %q: %w", tenant, err)
	}
	return out, nil
}

// exec runs a statement on the database and returns how many rows it
// changed.
func (s *Store) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, translate(err)
	}
	return n, nil
}

// updateUser runs an UPDATE of one user and reports ErrNotFound if it
// changed no row.
func (s *Store) updateUser(ctx context.Context, what string, id hegate.UserID, query string, args ...any) error {
	n, err := s.exec(ctx, query, args...)
	switch {
	case err != nil:
		return fmt.Errorf("%s of console user %s: %w", what, id, err)
	case n == 0:
		return fmt.Errorf("%s of console user %s: %w", what, id, storage.ErrNotFound)
	}
	return nil
}

// SetUserPassword replaces the user's password hash; ErrNotFound if there
// is no such user, an error if hash is invalid. Sessions stay.
func (s *Store) SetUserPassword(ctx context.Context, id hegate.UserID, hash string) error {
	if err := validate.PasswordHash(hash); err != nil {
		return fmt.Errorf("setting the password of console user %s: %w", id, err)
	}
	return s.updateUser(ctx, "setting the password", id,
		`UPDATE console_users SET password_hash = ?2 WHERE id = ?1`, id, hash)
}

// SetUserDisabled disables or enables the user; ErrNotFound if there is
// no such user.
func (s *Store) SetUserDisabled(ctx context.Context, id hegate.UserID, disabled bool) error {
	flag := 0
	if disabled {
		flag = 1
	}
	return s.updateUser(ctx, "disabling", id,
		`UPDATE console_users SET disabled = ?2 WHERE id = ?1`, id, flag)
}

// RecordLogin sets the user's LastLoginAt; ErrNotFound if there is no such
// user, an error if at is zero.
func (s *Store) RecordLogin(ctx context.Context, id hegate.UserID, at time.Time) error {
	if err := validate.RecordLogin(at); err != nil {
		return fmt.Errorf("recording login of console user %s: %w", id, err)
	}
	return s.updateUser(ctx, "recording the login", id,
		`UPDATE console_users SET last_login_at = ?2 WHERE id = ?1`, id, dbTime(at))
}

const sessionColumns = `s.id, s.user_id, s.created_at, s.expires_at, s.last_seen_at, s.client_addr`

// CreateSession stores a session of an enabled user; see storage.Sessions.
// The INSERT ... SELECT reads the user in the same statement.
func (s *Store) CreateSession(ctx context.Context, p storage.CreateSessionParams) (storage.Session, error) {
	if err := validate.CreateSession(p); err != nil {
		return storage.Session{}, fmt.Errorf("creating console session: %w", err)
	}
	now := s.now()
	out := storage.Session{
		ID: p.ID, UserID: p.UserID, CreatedAt: now, ExpiresAt: micro(p.ExpiresAt), LastSeenAt: now, From: p.From,
	}
	n, err := s.exec(ctx,
		`INSERT INTO console_sessions (id, user_id, created_at, expires_at, last_seen_at, client_addr)
		 SELECT ?1, id, ?3, ?4, ?3, ?5 FROM console_users WHERE id = ?2 AND disabled = 0`,
		p.ID, p.UserID, dbTime(now), dbTime(out.ExpiresAt), p.From)
	switch {
	case err != nil:
		return storage.Session{}, fmt.Errorf("creating console session of user %s: %w", p.UserID, err)
	case n == 0:
		return storage.Session{}, fmt.Errorf("creating console session of user %s: %w: no such enabled user", p.UserID, storage.ErrNotFound)
	}
	return out, nil
}

// GetSession returns the live session of an enabled user and the user;
// see storage.Sessions.
func (s *Store) GetSession(ctx context.Context, hash []byte, now time.Time) (storage.Session, storage.User, error) {
	if err := validate.SessionHash(hash); err != nil {
		return storage.Session{}, storage.User{}, fmt.Errorf("getting console session: %w", err)
	}
	var (
		ss                     storage.Session
		created, expires, seen nullTime
	)
	u, err := scanUserFrom(s.db.QueryRowContext(ctx,
		`SELECT `+sessionColumns+`, u.id, u.tenant_id, u.name, u.role, u.password_hash, u.created_at, u.last_login_at, u.disabled
		 FROM console_sessions s JOIN console_users u ON u.id = s.user_id
		 WHERE s.id = ?1 AND s.expires_at > ?2 AND u.disabled = 0`,
		hash, dbTime(now)),
		&ss.ID, &ss.UserID, &created, &expires, &seen, &ss.From)
	if err != nil {
		return storage.Session{}, storage.User{}, fmt.Errorf("getting console session: %w", translate(err))
	}
	ss.CreatedAt, ss.ExpiresAt, ss.LastSeenAt = created.Time, expires.Time, seen.Time
	return ss, u, nil
}

// TouchSession slides a live session; ErrNotFound if there is none or it
// expired at now.
func (s *Store) TouchSession(ctx context.Context, hash []byte, now, newExpiry time.Time) error {
	if err := validate.SessionHash(hash); err != nil {
		return fmt.Errorf("touching console session: %w", err)
	}
	if err := validate.TouchSession(now, newExpiry); err != nil {
		return fmt.Errorf("touching console session: %w", err)
	}
	n, err := s.exec(ctx,
		`UPDATE console_sessions SET last_seen_at = ?2, expires_at = ?3 WHERE id = ?1 AND expires_at > ?2`,
		hash, dbTime(now), dbTime(newExpiry))
	switch {
	case err != nil:
		return fmt.Errorf("touching console session: %w", err)
	case n == 0:
		return fmt.Errorf("touching console session: %w", storage.ErrNotFound)
	}
	return nil
}

// DeleteSession removes the session; a missing one is not an error.
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	if _, err := s.exec(ctx, `DELETE FROM console_sessions WHERE id = ?1`, hash); err != nil {
		return fmt.Errorf("deleting console session: %w", err)
	}
	return nil
}

// DeleteUserSessions removes every session of the user.
func (s *Store) DeleteUserSessions(ctx context.Context, id hegate.UserID) error {
	if _, err := s.exec(ctx, `DELETE FROM console_sessions WHERE user_id = ?1`, id); err != nil {
		return fmt.Errorf("deleting the console sessions of user %s: %w", id, err)
	}
	return nil
}

// DeleteExpiredSessions removes the sessions expired at now and returns
// how many.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	n, err := s.exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= ?1`, dbTime(now))
	if err != nil {
		return 0, fmt.Errorf("deleting expired console sessions: %w", err)
	}
	return n, nil
}

const auditColumns = `id, tenant_id, occurred_at, actor, action, object, client_addr, request_id, detail, outcome`

func scanAudit(row scanner) (storage.AuditEvent, error) {
	var (
		e      storage.AuditEvent
		at     nullTime
		detail []byte
	)
	if err := row.Scan(&e.ID, &e.TenantID, &at, &e.Actor, &e.Action, &e.Object, &e.From, &e.RequestID, &detail, &e.Outcome); err != nil {
		return storage.AuditEvent{}, translate(err)
	}
	e.At = at.Time
	if len(detail) > 0 {
		e.Detail = detail
	}
	return e, nil
}

// RecordAudit appends an event; see storage.Audit.
func (s *Store) RecordAudit(ctx context.Context, e storage.AuditEvent) (storage.AuditEvent, error) {
	return s.recordAudit(ctx, s.db, e)
}

// recordAudit appends a validated event through q (the DB or a tx).
func (s *Store) recordAudit(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, e storage.AuditEvent) (storage.AuditEvent, error) {
	if err := validate.AuditEvent(e); err != nil {
		return storage.AuditEvent{}, fmt.Errorf("recording audit event: %w", err)
	}
	var detail any // NULL when absent
	if len(e.Detail) > 0 {
		detail = []byte(e.Detail)
	}
	got, err := scanAudit(q.QueryRowContext(ctx,
		`INSERT INTO audit_log (tenant_id, occurred_at, actor, action, object, client_addr, request_id, detail, outcome)
		 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING `+auditColumns,
		e.TenantID, dbTime(s.now()), e.Actor, e.Action, e.Object, e.From, e.RequestID, detail, e.Outcome))
	if err != nil {
		return storage.AuditEvent{}, fmt.Errorf("recording audit event %s by %s: %w", e.Action, e.Actor, err)
	}
	return got, nil
}

// ListAudit returns one page of audit events, newest first; see
// storage.Audit. It reads one row more than the page to tell whether
// another page follows.
func (s *Store) ListAudit(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEvent, int64, error) {
	limit, err := validate.AuditFilter(f)
	if err != nil {
		return nil, 0, fmt.Errorf("listing audit events: %w", err)
	}
	query := `SELECT ` + auditColumns + ` FROM audit_log WHERE 1`
	var args []any
	// arg appends v to args and returns its placeholder.
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("?%d", len(args))
	}
	if !f.AllTenants {
		query += ` AND tenant_id = ` + arg(f.Tenant)
	}
	if f.Actor != "" {
		query += ` AND actor = ` + arg(f.Actor)
	}
	if f.ActionPrefix != "" {
		// In characters, on both engines; LIKE would need escaping, and
		// is case-insensitive here.
		query += ` AND substr(action, 1, ` + arg(utf8.RuneCountInString(f.ActionPrefix)) + `) = ` + arg(f.ActionPrefix)
	}
	if !f.Since.IsZero() {
		query += ` AND occurred_at >= ` + arg(dbTime(f.Since))
	}
	if !f.Until.IsZero() {
		query += ` AND occurred_at < ` + arg(dbTime(f.Until))
	}
	if f.Before > 0 {
		query += ` AND id < ` + arg(f.Before)
	}
	query += ` ORDER BY id DESC LIMIT ` + arg(limit+1)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("listing audit events: %w", translate(err))
	}
	out, err := collect(rows, scanAudit)
	if err != nil {
		return nil, 0, fmt.Errorf("listing audit events: %w", err)
	}
	var next int64
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

// DeleteAuditBefore removes the events recorded before t and returns how
// many.
func (s *Store) DeleteAuditBefore(ctx context.Context, t time.Time) (int64, error) {
	if err := validate.DeleteAuditBefore(t); err != nil {
		return 0, fmt.Errorf("deleting audit events: %w", err)
	}
	n, err := s.exec(ctx, `DELETE FROM audit_log WHERE occurred_at < ?1`, dbTime(t))
	if err != nil {
		return 0, fmt.Errorf("deleting audit events before %s: %w", t.UTC().Format(time.RFC3339Nano), err)
	}
	return n, nil
}

// ListJobsPage returns one page of the tenant's jobs; see storage.Jobs.
// The cursor is a job id: its (created_at, id) is where the next page
// starts, in ListJobs' order.
func (s *Store) ListJobsPage(ctx context.Context, tenant hegate.TenantID, f storage.JobFilter) ([]storage.Job, hegate.JobID, error) {
	limit, err := validate.JobFilter(f)
	if err != nil {
		return nil, "", fmt.Errorf("listing jobs: %w", err)
	}
	query := `SELECT ` + jobColumns + ` FROM jobs WHERE tenant_id = ?1`
	args := []any{tenant}
	if f.Status != "" {
		args = append(args, f.Status)
		query += fmt.Sprintf(` AND status = ?%d`, len(args))
	}
	if f.Model != "" {
		args = append(args, f.Model)
		query += fmt.Sprintf(` AND model = ?%d`, len(args))
	}
	if f.Before != "" {
		// The stored text, as it is: timestamps sort as text.
		var created string
		err := s.db.QueryRowContext(ctx, `SELECT created_at FROM jobs WHERE tenant_id = ?1 AND id = ?2`, tenant, f.Before).Scan(&created)
		if err != nil {
			return nil, "", fmt.Errorf("listing jobs of tenant %s before job %s: %w", tenant, f.Before, translate(err))
		}
		args = append(args, created, f.Before)
		query += fmt.Sprintf(` AND (created_at < ?%d OR (created_at = ?%d AND id < ?%d))`, len(args)-1, len(args)-1, len(args))
	}
	args = append(args, limit+1)
	query += fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT ?%d`, len(args))
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("listing jobs of tenant %s: %w", tenant, translate(err))
	}
	out, err := collect(rows, func(row scanner) (storage.Job, error) { return scanJob(row) })
	if err != nil {
		return nil, "", fmt.Errorf("listing jobs of tenant %s: %w", tenant, err)
	}
	var next hegate.JobID
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

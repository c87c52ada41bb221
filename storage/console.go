package storage

import (
	"context"
	"encoding/json"
	"time"

	"github.com/hegate/hegate"
)

// The web console: its users, their sessions, and the audit log.
//
// A console user either belongs to a tenant, as UserAdmin or UserViewer,
// or is an operator (UserOperator, no tenant) who acts across tenants.
// Storage keeps the password hash as an opaque string (internal/password
// makes and checks it) and a session only as the SHA-256 of its token, so
// that a copy of the database logs nobody in.
//
// Users, unlike every other tenant-owned object, are read by id without a
// TenantID: GetUser, SetUserPassword, SetUserDisabled and RecordLogin
// serve the session (which knows only the user id) and the operators
// (who act across tenants). A caller acting for a tenant admin must check
// that User.TenantID is the admin's own tenant before it shows or changes
// the user, and answer as if the user did not exist otherwise.
//
// The audit log is append-only: rows are recorded (RecordAudit, or
// Tx.RecordAudit in the transaction of the change they describe), listed,
// and removed only by the retention sweep DeleteAuditBefore.

// Console user roles (User.Role).
const (
	UserAdmin    = "admin"    // manages its tenant: keys, devices, budgets, users
	UserViewer   = "viewer"   // reads its tenant's console, changes nothing
	UserOperator = "operator" // no tenant: operates the gateway across tenants
)

// Limits on the console's text fields; longer ones are an error.
const (
	MaxUserNameBytes     = 100 // User.Name
	MaxPasswordHashBytes = 512 // User.PasswordHash
	// MaxFromBytes bounds a client address: Session.From, AuditEvent.From.
	MaxFromBytes = 128
	// MaxAuditActionBytes bounds AuditEvent.Action; Actor is bounded by
	// MaxActorBytes.
	MaxAuditActionBytes    = 100
	MaxAuditObjectBytes    = 200 // AuditEvent.Object
	MaxAuditRequestIDBytes = 128 // AuditEvent.RequestID
	// MaxAuditDetailBytes bounds AuditEvent.Detail; a larger one is
	// ErrTooLarge.
	MaxAuditDetailBytes = 8 << 10
)

// Page sizes of the console's listings (AuditFilter.Limit,
// JobFilter.Limit): 0 means DefaultPageLimit, more than MaxPageLimit means
// MaxPageLimit.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 500
)

// User is one web-console login.
type User struct {
	ID hegate.UserID
	// TenantID is the user's tenant, or "" for an operator.
	TenantID hegate.TenantID
	// Name is the login name, unique among the tenant's users (or among
	// the operators), compared byte for byte: the caller normalises it
	// (say, to lower case) before CreateUser and FindUser.
	Name string
	// Role is UserAdmin or UserViewer for a tenant's user, UserOperator
	// for an operator.
	Role string
	// PasswordHash is the password's hash in PHC string format
	// (internal/password), opaque to storage.
	PasswordHash string
	CreatedAt    time.Time
	LastLoginAt  *time.Time // nil: never logged in
	// Disabled users cannot log in, and their sessions are not found.
	Disabled bool
}

// IsOperator reports whether u is an operator of the whole gateway.
func (u User) IsOperator() bool { return u.TenantID == "" && u.Role == UserOperator }

// CreateUserParams are the inputs of Users.CreateUser.
type CreateUserParams struct {
	// TenantID is the user's tenant, "" for an operator.
	TenantID hegate.TenantID
	// Name is required: valid UTF-8 without control characters, at most
	// MaxUserNameBytes.
	Name string
	// Role is UserAdmin or UserViewer with a TenantID, UserOperator
	// without.
	Role string
	// PasswordHash is required, at most MaxPasswordHashBytes.
	PasswordHash string
}

// Users stores the web console's users.
type Users interface {
	// CreateUser stores a new, enabled user with a fresh id. ErrConflict
	// if the tenant (or, for an operator, the operators) already has a
	// user of that name, ErrNotFound if the tenant does not exist, an
	// error if p is invalid (the role must fit: an operator has no
	// tenant, a tenant's user is admin or viewer).
	CreateUser(ctx context.Context, p CreateUserParams) (User, error)
	// GetUser returns a user, of any tenant, disabled or not, or
	// ErrNotFound. It is not tenant-scoped: see the package comment.
	GetUser(ctx context.Context, id hegate.UserID) (User, error)
	// FindUser returns the tenant's user (tenant "": the operator) of
	// that name, disabled or not, or ErrNotFound. A login that finds no
	// user still checks the password against password.Dummy, so that an
	// unknown name takes as long as a wrong password.
	FindUser(ctx context.Context, tenant hegate.TenantID, name string) (User, error)
	// ListUsers returns the tenant's users (tenant "": the operators),
	// disabled ones included, by name (bytewise); an empty list if there
	// are none.
	ListUsers(ctx context.Context, tenant hegate.TenantID) ([]User, error)
	// SetUserPassword replaces the user's password hash. ErrNotFound if
	// there is no such user, an error if hash is empty or longer than
	// MaxPasswordHashBytes. The user's sessions stay: the caller deletes
	// them (DeleteUserSessions) if the change should log the user out.
	SetUserPassword(ctx context.Context, id hegate.UserID, hash string) error
	// SetUserDisabled disables or enables the user (idempotent).
	// ErrNotFound if there is no such user. A disabled user's sessions
	// are not found by GetSession; they stay in the table until they
	// expire or DeleteUserSessions removes them.
	SetUserDisabled(ctx context.Context, id hegate.UserID, disabled bool) error
	// RecordLogin sets the user's LastLoginAt to at (microseconds, UTC).
	// ErrNotFound if there is no such user, an error if at is zero.
	RecordLogin(ctx context.Context, id hegate.UserID, at time.Time) error
}

// Session is one logged-in console session. The token itself is never
// stored: ID is its SHA-256, which is what GetSession searches by.
type Session struct {
	ID         []byte // SHA-256 of the session token, 32 bytes
	UserID     hegate.UserID
	CreatedAt  time.Time
	ExpiresAt  time.Time // the session is live while now < ExpiresAt
	LastSeenAt time.Time
	From       string // the client address it was created from, at most MaxFromBytes
}

// CreateSessionParams are the inputs of Sessions.CreateSession.
type CreateSessionParams struct {
	ID        []byte // SHA-256 of the session token, 32 bytes
	UserID    hegate.UserID
	ExpiresAt time.Time // required
	From      string    // at most MaxFromBytes
}

// Sessions stores the console's sessions. Times given to its methods are
// stored at microsecond precision, in UTC.
type Sessions interface {
	// CreateSession stores a session of an enabled user, created and
	// last seen now (the store's clock), and returns it. ErrNotFound if
	// the user does not exist or is disabled, ErrConflict if the hash is
	// already stored, an error if p is invalid (ID not 32 bytes, no
	// ExpiresAt, From too long).
	CreateSession(ctx context.Context, p CreateSessionParams) (Session, error)
	// GetSession returns the session with this token hash and its user.
	// ErrNotFound if there is none, it expired (ExpiresAt <= now), or its
	// user is disabled. A hash that is not 32 bytes is ErrNotFound too.
	GetSession(ctx context.Context, hash []byte, now time.Time) (Session, User, error)
	// TouchSession slides a live session: LastSeenAt becomes now and
	// ExpiresAt newExpiry, which the caller bounds by the session's
	// absolute maximum lifetime (storage does not). ErrNotFound if there
	// is no such session or it expired at now (a dead session is never
	// revived); an error if now or newExpiry is zero.
	TouchSession(ctx context.Context, hash []byte, now, newExpiry time.Time) error
	// DeleteSession removes the session (logout). Deleting a session
	// that does not exist is not an error.
	DeleteSession(ctx context.Context, hash []byte) error
	// DeleteUserSessions removes every session of the user (logout
	// everywhere; after a password change). A user without sessions, or
	// no such user, is not an error.
	DeleteUserSessions(ctx context.Context, id hegate.UserID) error
	// DeleteExpiredSessions removes the sessions that expired at now
	// (ExpiresAt <= now) and returns how many.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error)
}

// Audit outcomes (AuditEvent.Outcome).
const (
	AuditOK     = "ok"     // the action was done
	AuditDenied = "denied" // the actor was not allowed to
	AuditFailed = "failed" // it was allowed but did not succeed
)

// AuditEvent is one entry of the audit log: who did what to which object,
// from where, and how it ended.
type AuditEvent struct {
	// ID is assigned by the store, increasing in the order the events
	// were recorded (on PostgreSQL, concurrent transactions may commit
	// in another order than their IDs).
	ID int64
	// TenantID is the tenant the action concerns, or "" for an
	// operator-wide action. It is not checked against the tenants: the
	// log records what happened, even to a tenant that does not exist.
	TenantID hegate.TenantID
	// At is when it was recorded, set by the store (what the caller sets
	// is ignored).
	At time.Time
	// Actor is who: "user:usr_...", "api-key:key_...", "device:dev_...",
	// "cli", ... Required, at most MaxActorBytes.
	Actor string
	// Action is what, dotted: "device.revoke", "budget.set",
	// "apikey.create", "console.login", ... Required, at most
	// MaxAuditActionBytes.
	Action string
	// Object is what it was done to, such as a device id; may be "". At
	// most MaxAuditObjectBytes.
	Object string
	// From is the client address, at most MaxFromBytes.
	From string
	// RequestID ties the event to the request's logs and traces; at most
	// MaxAuditRequestIDBytes.
	RequestID string
	// Detail is optional JSON, stored byte for byte: valid JSON, at most
	// MaxAuditDetailBytes (ErrTooLarge otherwise); nil when absent. Never
	// put secrets in it.
	Detail json.RawMessage
	// Outcome is AuditOK, AuditDenied or AuditFailed.
	Outcome string
}

// AuditFilter selects audit events, newest (highest ID) first.
type AuditFilter struct {
	// Tenant is whose events to list; "" lists the operator-wide events
	// (those of no tenant), unless AllTenants.
	Tenant hegate.TenantID
	// AllTenants lists every tenant's events and the operator-wide ones:
	// for operators only. Tenant must be "" then.
	AllTenants bool
	// Actor, if set, keeps the events of exactly that actor.
	Actor string
	// ActionPrefix, if set, keeps the events whose Action starts with it
	// ("device." keeps "device.revoke" and "device.enroll").
	ActionPrefix string
	// Since and Until, if not zero, keep the events with Since <= At and
	// At < Until.
	Since, Until time.Time
	// Before, if > 0, keeps the events with ID < Before: pass the next
	// cursor of the previous page.
	Before int64
	// Limit is the page size: 0 means DefaultPageLimit, more than
	// MaxPageLimit means MaxPageLimit; negative is an error.
	Limit int
}

// Audit stores the audit log. It is append-only: there is no way to
// change an event, and the only way to remove events is the retention
// sweep DeleteAuditBefore.
type Audit interface {
	// RecordAudit appends e, stamped with the store's clock and a fresh
	// ID, and returns it as stored. An error if e is invalid (the message
	// names the field); ErrTooLarge (wrapped) if e.Detail is larger than
	// MaxAuditDetailBytes. Tx.RecordAudit records it in the transaction
	// of the change it describes.
	RecordAudit(ctx context.Context, e AuditEvent) (AuditEvent, error)
	// ListAudit returns one page of the events f selects, newest first,
	// and the cursor of the next page (f.Before for the next call), or 0
	// when this page is the last. A tenant's listing never includes
	// another tenant's events, nor the operator-wide ones. An error if f
	// is invalid (negative Limit or Before, Tenant with AllTenants).
	ListAudit(ctx context.Context, f AuditFilter) (events []AuditEvent, next int64, err error)
	// DeleteAuditBefore removes, across all tenants, the events recorded
	// before t (At < t) and returns how many: the retention sweep. An
	// error if t is zero.
	DeleteAuditBefore(ctx context.Context, t time.Time) (int64, error)
}

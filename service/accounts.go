package service

import (
	"container/list"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/internal/password"
	"github.com/hegate/hegate/storage"
)

// Console accounts: users, logins and sessions. An API key is never a
// console login, and a session is never an API credential.

// Session lifetimes: a session ends after SessionIdle without a request,
// and SessionMax after it began whatever happens.
const (
	SessionIdle = 2 * time.Hour
	SessionMax  = 12 * time.Hour
	// sessionTouchEvery is how stale LastSeenAt may be, so that most
	// requests only read.
	sessionTouchEvery = time.Minute
	sessionTokenBytes = 32
	sessionPrefix     = "hgs_"
	// MinPasswordBytes is the shortest password a user may have (NIST SP
	// 800-63B 5.1.1.1 asks for at least 8 characters; we ask for more).
	MinPasswordBytes = 12
	maxPasswordBytes = 1024
)

// Login attempt limits: per account and per client address, each a token
// bucket (golang.org/x/time/rate) of loginBurst tries refilled at one
// per loginEvery.
const (
	loginBurst   = 5
	loginEvery   = 20 * time.Second
	maxLimiters  = 10000
	loginRefused = "wrong tenant, user name or password"
)

// TooManyAttemptsError refuses a login that came too soon after failed
// ones; the client may try again after RetryAfter.
type TooManyAttemptsError struct{ RetryAfter time.Duration }

func (e *TooManyAttemptsError) Error() string {
	return fmt.Sprintf("too many login attempts: try again in %s", e.RetryAfter.Round(time.Second))
}

// loginLimiter keeps one token bucket per key, at most maxLimiters of
// them, forgetting the least recently used: a flood of new keys evicts
// old buckets rather than refusing everyone.
type loginLimiter struct {
	mu   sync.Mutex
	lru  list.List // of *limiterEntry, most recently used first
	seen map[string]*list.Element
}

type limiterEntry struct {
	key string
	lim *rate.Limiter
}

// bucket is key's bucket, made if create and missing (nil otherwise).
func (l *loginLimiter) bucket(key string, create bool) *rate.Limiter {
	if l.seen == nil {
		l.seen = map[string]*list.Element{}
	}
	if el, ok := l.seen[key]; ok {
		l.lru.MoveToFront(el)
		return el.Value.(*limiterEntry).lim
	}
	if !create {
		return nil
	}
	if l.lru.Len() >= maxLimiters {
		old := l.lru.Back()
		l.lru.Remove(old)
		delete(l.seen, old.Value.(*limiterEntry).key)
	}
	e := &limiterEntry{key: key, lim: rate.NewLimiter(rate.Every(loginEvery), loginBurst)}
	l.seen[key] = l.lru.PushFront(e)
	return e.lim
}

// take spends a try of key; the wait until it allows one, or 0.
func (l *loginLimiter) take(now time.Time, key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.bucket(key, true).ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// wait is how long until key's bucket allows a try, without spending
// one; 0 for a key that has no bucket (no failure yet).
func (l *loginLimiter) wait(now time.Time, key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.bucket(key, false)
	if lim == nil || lim.TokensAt(now) >= 1 {
		return 0
	}
	r := lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return d
}

// NormalizeUserName is the form user names are stored and compared in:
// trimmed, lower case.
func NormalizeUserName(name string) string { return strings.ToLower(strings.TrimSpace(name)) }

// CreateUserParams are the inputs of CreateUser.
type CreateUserParams struct {
	// Tenant is the user's tenant; "" makes an operator (operators only).
	Tenant   hegate.TenantID
	Name     string
	Role     string // RoleAdmin or RoleViewer; RoleOperator without a tenant
	Password string
}

// CreateUser adds a console user: an operator may add any user, a
// tenant's admin a user of its own tenant.
func (s *Service) CreateUser(ctx context.Context, p Principal, params CreateUserParams) (storage.User, error) {
	const op = "user.create"
	name := NormalizeUserName(params.Name)
	switch {
	case p.Role == RoleOperator:
	case p.Role == RoleAdmin && params.Tenant == p.Tenant && params.Tenant != "":
	default:
		return storage.User{}, s.denied(ctx, p, op, name, hegate.E(op, hegate.KindForbidden, nil, "only an operator, or an administrator of the tenant, adds console users"))
	}
	if name == "" || len(name) > storage.MaxUserNameBytes || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return storage.User{}, &FieldError{Field: "name", Err: hegate.E(op, hegate.KindInvalid, nil, "a user name is 1 to %d printable characters without spaces", storage.MaxUserNameBytes)}
	}
	role := params.Role
	switch {
	case params.Tenant == "" && role != RoleOperator:
		return storage.User{}, &FieldError{Field: "role", Err: hegate.E(op, hegate.KindInvalid, nil, "a user without a tenant is an operator")}
	case params.Tenant != "" && role != RoleAdmin && role != RoleViewer:
		return storage.User{}, &FieldError{Field: "role", Err: hegate.E(op, hegate.KindInvalid, nil, "role %q: want admin or viewer", truncate(role, 20))}
	}
	if err := checkPassword(params.Password); err != nil {
		return storage.User{}, &FieldError{Field: "password", Err: hegate.E(op, hegate.KindInvalid, nil, "%v", err)}
	}
	hash, err := password.Hash(params.Password)
	if err != nil {
		return storage.User{}, hegate.E(op, hegate.KindInternal, err, "")
	}
	u, err := s.store.CreateUser(ctx, storage.CreateUserParams{TenantID: params.Tenant, Name: name, Role: role, PasswordHash: hash})
	switch {
	case errors.Is(err, storage.ErrConflict):
		return storage.User{}, &FieldError{Field: "name", Err: hegate.E(op, hegate.KindConflict, err, "there is already a user %q", name)}
	case errors.Is(err, storage.ErrNotFound):
		return storage.User{}, notFound(op, err, "no tenant %s", params.Tenant)
	case err != nil:
		return storage.User{}, unavailable(op, err)
	}
	p.Tenant = params.Tenant
	s.audit(ctx, p, op, string(u.ID), map[string]any{"name": name, "role": role})
	return u, nil
}

func checkPassword(pw string) error {
	switch {
	case len(pw) < MinPasswordBytes:
		return fmt.Errorf("a password is at least %d characters", MinPasswordBytes)
	case len(pw) > maxPasswordBytes:
		return fmt.Errorf("a password is at most %d bytes", maxPasswordBytes)
	case !utf8.ValidString(pw):
		return errors.New("a password is UTF-8 text")
	}
	return nil
}

// LoginParams are the inputs of Login.
type LoginParams struct {
	// Tenant is the tenant's name; "" logs an operator in.
	Tenant   string
	Name     string
	Password string
	// From is the client's address, for the limits and the audit log.
	From      string
	RequestID string
}

// Session is a console login: the token goes in a cookie and is never
// stored (the store keeps its SHA-256).
type Session struct {
	Token     string
	ExpiresAt time.Time
	Principal Principal
	User      storage.User
}

// Login checks a console user's password and opens a session. Every
// failure says the same (KindUnauthenticated) and takes as long; too many
// tries from one address or at one account are a *TooManyAttemptsError.
func (s *Service) Login(ctx context.Context, in LoginParams) (Session, error) {
	const op = "user.login"
	now := s.now()
	name := NormalizeUserName(in.Name)
	// A failed attempt spends a try of its address and of its account,
	// both checked before the password: people behind one address who
	// type their passwords right are not limited. Refusals for the rate
	// are not audited one by one (they would let anyone flood the log);
	// they are logged.
	addr, acct := "from:"+in.From, "user:"+in.Tenant+"/"+name
	if wait := max(s.logins.wait(now, addr), s.logins.wait(now, acct)); wait > 0 {
		s.log.WarnContext(ctx, "console login refused for its rate", "from", in.From, "request_id", in.RequestID)
		return Session{}, &TooManyAttemptsError{RetryAfter: wait}
	}
	refuse := func(tenant hegate.TenantID, why string) (Session, error) {
		s.logins.take(now, addr)
		s.logins.take(now, acct)
		s.record(ctx, Principal{Tenant: tenant, From: in.From, RequestID: in.RequestID, User: hegate.UserID("?" + truncate(name, 40))}, op, truncate(name, storage.MaxAuditObjectBytes-3), OutcomeDenied, map[string]any{"why": why})
		return Session{}, hegate.E(op, hegate.KindUnauthenticated, nil, loginRefused)
	}
	var tenant storage.Tenant
	if in.Tenant != "" {
		t, err := s.store.GetTenantByName(ctx, in.Tenant)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			password.Verify(password.Dummy(), in.Password) // as long as a wrong password
			return refuse("", "tenant")
		case err != nil:
			return Session{}, unavailable(op, err)
		}
		tenant = t
	}
	u, err := s.store.FindUser(ctx, tenant.ID, name)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		password.Verify(password.Dummy(), in.Password)
		return refuse(tenant.ID, "user")
	case err != nil:
		return Session{}, unavailable(op, err)
	}
	ok, err := password.Verify(u.PasswordHash, in.Password)
	if err != nil {
		return Session{}, hegate.E(op, hegate.KindInternal, fmt.Errorf("user %s: stored password hash: %w", u.ID, err), "")
	}
	if !ok || u.Disabled {
		return refuse(tenant.ID, "password")
	}
	if password.NeedsRehash(u.PasswordHash) {
		if h, err := password.Hash(in.Password); err == nil {
			_ = s.store.SetUserPassword(ctx, u.ID, h)
		}
	}
	var raw [sessionTokenBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Session{}, hegate.E(op, hegate.KindInternal, err, "")
	}
	token := sessionPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	exp := now.Add(SessionIdle)
	if _, err := s.store.CreateSession(ctx, storage.CreateSessionParams{ID: hashToken(token), UserID: u.ID, ExpiresAt: exp, From: truncate(in.From, storage.MaxFromBytes-3)}); err != nil {
		return Session{}, unavailable(op, err)
	}
	// Each login clears the sessions that expired, as each challenge
	// clears the expired challenges: the table holds live ones only.
	if _, err := s.store.DeleteExpiredSessions(ctx, now); err != nil {
		s.log.WarnContext(ctx, "deleting expired sessions", "error", err.Error())
	}
	if err := s.store.RecordLogin(ctx, u.ID, now); err != nil {
		s.log.WarnContext(ctx, "recording a login", "user", string(u.ID), "error", err.Error())
	}
	p := userPrincipal(u, in.From, in.RequestID)
	s.audit(ctx, p, op, string(u.ID), nil)
	return Session{Token: token, ExpiresAt: exp, Principal: p, User: u}, nil
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func userPrincipal(u storage.User, from, requestID string) Principal {
	role := RoleViewer
	switch u.Role {
	case storage.UserAdmin:
		role = RoleAdmin
	case storage.UserOperator:
		role = RoleOperator
	}
	return Principal{Tenant: u.TenantID, User: u.ID, Role: role, From: from, RequestID: requestID}
}

// SessionPrincipal is the principal of a session token, sliding its
// expiry. KindUnauthenticated for a token that is malformed, unknown,
// expired or whose user is disabled.
func (s *Service) SessionPrincipal(ctx context.Context, token, from, requestID string) (Principal, storage.User, error) {
	const op = "user.session"
	if !strings.HasPrefix(token, sessionPrefix) || len(token) != len(sessionPrefix)+43 {
		return Principal{}, storage.User{}, hegate.E(op, hegate.KindUnauthenticated, nil, "not logged in")
	}
	now := s.now()
	hash := hashToken(token)
	sess, u, err := s.store.GetSession(ctx, hash, now)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return Principal{}, storage.User{}, hegate.E(op, hegate.KindUnauthenticated, nil, "the session ended: log in again")
	case err != nil:
		return Principal{}, storage.User{}, unavailable(op, err)
	}
	if now.Sub(sess.LastSeenAt) >= sessionTouchEvery {
		exp := now.Add(SessionIdle)
		if hardEnd := sess.CreatedAt.Add(SessionMax); exp.After(hardEnd) {
			exp = hardEnd
		}
		if err := s.store.TouchSession(ctx, hash, now, exp); err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.log.WarnContext(ctx, "sliding a session", "user", string(u.ID), "error", err.Error())
		}
	}
	return userPrincipal(u, from, requestID), u, nil
}

// Logout ends the session of a token; an unknown token is no error.
func (s *Service) Logout(ctx context.Context, p Principal, token string) error {
	if err := s.store.DeleteSession(ctx, hashToken(token)); err != nil {
		return unavailable("user.logout", err)
	}
	s.audit(ctx, p, "user.logout", string(p.User), nil)
	return nil
}

// ListUsers lists the tenant's console users (admins and viewers).
func (s *Service) ListUsers(ctx context.Context, p Principal) ([]storage.User, error) {
	const op = "user.list"
	if err := p.requireReader(op); err != nil {
		return nil, err
	}
	us, err := s.store.ListUsers(ctx, p.Tenant)
	if err != nil {
		return nil, unavailable(op, err)
	}
	for i := range us {
		us[i].PasswordHash = ""
	}
	return us, nil
}

// AuditQuery selects audit events of the principal's tenant.
type AuditQuery struct {
	Actor  string
	Action string // a prefix
	Before int64  // cursor: events with smaller ids
	Limit  int
}

// ListAudit reads the tenant's audit log, newest first (admins and
// viewers), and the cursor of the next page (0 at the end).
func (s *Service) ListAudit(ctx context.Context, p Principal, q AuditQuery) ([]storage.AuditEvent, int64, error) {
	const op = "audit.list"
	// An operator that picked no tenant reads the operator-wide events.
	if !(p.Role == RoleOperator && p.Tenant == "") {
		if err := p.requireReader(op); err != nil {
			return nil, 0, err
		}
	}
	for field, v := range map[string]string{"actor": q.Actor, "action": q.Action} {
		if len(v) > storage.MaxActorBytes || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
			return nil, 0, &FieldError{Field: field, Err: hegate.E(op, hegate.KindInvalid, nil, "%s: at most %d bytes of printable text", field, storage.MaxActorBytes)}
		}
	}
	if q.Limit < 0 || q.Before < 0 {
		return nil, 0, hegate.E(op, hegate.KindInvalid, nil, "the page cursor and size are positive")
	}
	evs, next, err := s.store.ListAudit(ctx, storage.AuditFilter{Tenant: p.Tenant, Actor: q.Actor, ActionPrefix: q.Action, Before: q.Before, Limit: q.Limit})
	if err != nil {
		return nil, 0, unavailable(op, err)
	}
	return evs, next, nil
}

// ActAs is an operator's principal acting on the tenant named name: the
// console's operators pick the tenant whose pages they see. Only an
// operator may; the choice is recorded.
func (s *Service) ActAs(ctx context.Context, p Principal, name string) (Principal, storage.Tenant, error) {
	const op = "operator.act-as"
	if p.Role != RoleOperator {
		return Principal{}, storage.Tenant{}, s.denied(ctx, p, op, truncate(name, 80), hegate.E(op, hegate.KindForbidden, nil, "only an operator acts on other tenants"))
	}
	t, err := s.store.GetTenantByName(ctx, strings.TrimSpace(name))
	if errors.Is(err, storage.ErrNotFound) {
		return Principal{}, storage.Tenant{}, &FieldError{Field: "tenant", Err: notFound(op, err, "no tenant %q", truncate(name, 80))}
	}
	if err != nil {
		return Principal{}, storage.Tenant{}, unavailable(op, err)
	}
	p.Tenant = t.ID
	s.audit(ctx, p, op, string(t.ID), map[string]any{"name": t.Name})
	return p, t, nil
}

// OperatorOn is an operator's principal on the tenant id it picked
// before (ActAs), without recording anything: for each later request.
// KindNotFound if the tenant is gone; KindForbidden for a non-operator.
func (s *Service) OperatorOn(ctx context.Context, p Principal, id hegate.TenantID) (Principal, storage.Tenant, error) {
	const op = "operator.act-as"
	if p.Role != RoleOperator {
		return Principal{}, storage.Tenant{}, hegate.E(op, hegate.KindForbidden, nil, "only an operator acts on other tenants")
	}
	t, err := s.store.GetTenant(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return Principal{}, storage.Tenant{}, notFound(op, err, "no tenant %s", truncate(string(id), 40))
	}
	if err != nil {
		return Principal{}, storage.Tenant{}, unavailable(op, err)
	}
	p.Tenant = t.ID
	return p, t, nil
}

// managedUser is the user id names if p may manage it: an operator any
// user, a tenant's admin its own tenant's, the user itself when self is
// allowed. Another tenant's user is not found.
func (s *Service) managedUser(ctx context.Context, op string, p Principal, id hegate.UserID, self bool) (storage.User, error) {
	if p.Role != RoleOperator && !(self && p.User == id) {
		if err := p.requireAdmin(op); err != nil {
			return storage.User{}, s.denied(ctx, p, op, string(id), err)
		}
	}
	u, err := s.store.GetUser(ctx, id)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && p.Role != RoleOperator && u.TenantID != p.Tenant) {
		return storage.User{}, notFound(op, storage.ErrNotFound, "no user %s", truncate(string(id), 40))
	}
	if err != nil {
		return storage.User{}, unavailable(op, err)
	}
	return u, nil
}

// SetUserDisabled disables (or enables again) a console user and ends
// its sessions: an operator any user, a tenant's admin its own tenant's.
func (s *Service) SetUserDisabled(ctx context.Context, p Principal, id hegate.UserID, disabled bool) error {
	op := "user.disable"
	if !disabled {
		op = "user.enable"
	}
	u, err := s.managedUser(ctx, op, p, id, false)
	if err != nil {
		return err
	}
	if err := s.store.SetUserDisabled(ctx, u.ID, disabled); err != nil {
		return unavailable(op, err)
	}
	if err := s.store.DeleteUserSessions(ctx, u.ID); err != nil {
		return unavailable(op, err)
	}
	p.Tenant = u.TenantID
	s.audit(ctx, p, op, string(u.ID), map[string]any{"name": u.Name})
	return nil
}

// SetUserPassword replaces a console user's password and ends its
// sessions: an operator any user's, a tenant's admin its own tenant's,
// a user its own.
func (s *Service) SetUserPassword(ctx context.Context, p Principal, id hegate.UserID, pw string) error {
	const op = "user.password"
	u, err := s.managedUser(ctx, op, p, id, true)
	if err != nil {
		return err
	}
	if err := checkPassword(pw); err != nil {
		return &FieldError{Field: "password", Err: hegate.E(op, hegate.KindInvalid, nil, "%v", err)}
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return hegate.E(op, hegate.KindInternal, err, "")
	}
	if err := s.store.SetUserPassword(ctx, u.ID, hash); err != nil {
		return unavailable(op, err)
	}
	if err := s.store.DeleteUserSessions(ctx, u.ID); err != nil {
		return unavailable(op, err)
	}
	p.Tenant = u.TenantID
	s.audit(ctx, p, op, string(u.ID), map[string]any{"name": u.Name})
	return nil
}

// EndUserSessions logs a console user out everywhere.
func (s *Service) EndUserSessions(ctx context.Context, p Principal, id hegate.UserID) error {
	const op = "user.logout-everywhere"
	u, err := s.managedUser(ctx, op, p, id, true)
	if err != nil {
		return err
	}
	if err := s.store.DeleteUserSessions(ctx, u.ID); err != nil {
		return unavailable(op, err)
	}
	p.Tenant = u.TenantID
	s.audit(ctx, p, op, string(u.ID), map[string]any{"name": u.Name})
	return nil
}

package storagetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// userIDRE is the documented shape of a hegate.UserID.
var userIDRE = regexp.MustCompile(`^usr_[a-z2-7]{26}$`)

// fakeHash is a password hash as storage sees it: an opaque string.
func fakeHash(s string) string { return "$argon2id$v=19$m=65536,t=3,p=4$" + s }

func mustUser(t *testing.T, b bundle, tenant hegate.TenantID, name, role string) storage.User {
	t.Helper()
	u, err := b.store.CreateUser(b.ctx, storage.CreateUserParams{
		TenantID: tenant, Name: name, Role: role, PasswordHash: fakeHash(name),
	})
	noErr(t, "CreateUser", err)
	return u
}

// sessionParams are the params of a session of user with the token
// secret, expiring at expires.
func sessionParams(user hegate.UserID, secret string, expires time.Time) storage.CreateSessionParams {
	return storage.CreateSessionParams{ID: hashOf("session " + secret), UserID: user, ExpiresAt: expires, From: "192.0.2.7"}
}

func mustSession(t *testing.T, b bundle, p storage.CreateSessionParams) storage.Session {
	t.Helper()
	s, err := b.store.CreateSession(b.ctx, p)
	noErr(t, "CreateSession", err)
	return s
}

// event is an audit event of tenant by actor, of action.
func event(tenant hegate.TenantID, actor, action string) storage.AuditEvent {
	return storage.AuditEvent{
		TenantID: tenant, Actor: actor, Action: action, Object: "dev_x", From: "198.51.100.1",
		RequestID: "req-" + action, Outcome: storage.AuditOK,
	}
}

func mustAudit(t *testing.T, b bundle, e storage.AuditEvent) storage.AuditEvent {
	t.Helper()
	got, err := b.store.RecordAudit(b.ctx, e)
	noErr(t, "RecordAudit", err)
	return got
}

func mustListAudit(t *testing.T, b bundle, f storage.AuditFilter) ([]storage.AuditEvent, int64) {
	t.Helper()
	evs, next, err := b.store.ListAudit(b.ctx, f)
	noErr(t, "ListAudit", err)
	return evs, next
}

// auditIDs returns the ids of evs.
func auditIDs(evs []storage.AuditEvent) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// allAudit pages through every event f selects with pages of size, and
// returns them in order.
func allAudit(t *testing.T, b bundle, f storage.AuditFilter, size int) []storage.AuditEvent {
	t.Helper()
	out := []storage.AuditEvent{}
	f.Limit = size
	for range 1000 {
		evs, next := mustListAudit(t, b, f)
		if len(evs) > size {
			t.Fatalf("ListAudit returned %d events, the limit is %d", len(evs), size)
		}
		out = append(out, evs...)
		if next == 0 {
			return out
		}
		if len(evs) != size || next != evs[len(evs)-1].ID {
			t.Fatalf("ListAudit: %d events and next %d; want a full page whose last id is next", len(evs), next)
		}
		f.Before = next
	}
	t.Fatal("ListAudit never ended")
	return nil
}

// jobIDs returns the ids of jobs.
func jobIDs(jobs []storage.Job) []hegate.JobID {
	out := make([]hegate.JobID, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

// allJobs pages through the tenant's jobs that f selects with pages of
// size, and returns them in order.
func allJobs(t *testing.T, b bundle, tenant hegate.TenantID, f storage.JobFilter, size int) []storage.Job {
	t.Helper()
	out := []storage.Job{}
	f.Limit = size
	for range 1000 {
		jobs, next, err := b.store.ListJobsPage(b.ctx, tenant, f)
		noErr(t, "ListJobsPage", err)
		if len(jobs) > size {
			t.Fatalf("ListJobsPage returned %d jobs, the limit is %d", len(jobs), size)
		}
		out = append(out, jobs...)
		if next == "" {
			return out
		}
		if len(jobs) != size || next != jobs[len(jobs)-1].ID {
			t.Fatalf("ListJobsPage: %d jobs and next %s; want a full page whose last id is next", len(jobs), next)
		}
		f.Before = next
	}
	t.Fatal("ListJobsPage never ended")
	return nil
}

var consoleTests = []test{
	{"ok/user/create-get-find", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		u, err := b.store.CreateUser(b.ctx, storage.CreateUserParams{
			TenantID: b.a.ID, Name: "alice", Role: storage.UserAdmin, PasswordHash: fakeHash("alice"),
		})
		noErr(t, "CreateUser", err)
		if !userIDRE.MatchString(string(u.ID)) {
			t.Fatalf("user id %q does not match %s", u.ID, userIDRE)
		}
		want := storage.User{
			ID: u.ID, TenantID: b.a.ID, Name: "alice", Role: storage.UserAdmin, PasswordHash: fakeHash("alice"),
			CreatedAt: clk.Now(),
		}
		equal(t, "CreateUser", u, want)
		if u.IsOperator() {
			t.Fatal("a tenant's admin IsOperator")
		}
		got, err := b.store.GetUser(b.ctx, u.ID)
		noErr(t, "GetUser", err)
		equal(t, "GetUser", got, want)
		got, err = b.store.FindUser(b.ctx, b.a.ID, "alice")
		noErr(t, "FindUser", err)
		equal(t, "FindUser", got, want)

		// Not another tenant's, not an operator, and names are bytes.
		for what, find := range map[string]struct {
			tenant hegate.TenantID
			name   string
		}{
			"in another tenant":   {b.b.ID, "alice"},
			"among the operators": {"", "alice"},
			"in upper case":       {b.a.ID, "Alice"},
			"of another name":     {b.a.ID, "bob"},
		} {
			_, err := b.store.FindUser(b.ctx, find.tenant, find.name)
			wantErr(t, "FindUser "+what, err, storage.ErrNotFound)
		}
		_, err = b.store.GetUser(b.ctx, "usr_missing")
		wantErr(t, "GetUser of a missing user", err, storage.ErrNotFound)
	}},
	{"ok/user/operator", func(t *testing.T, b bundle) {
		op := mustUser(t, b, "", "root", storage.UserOperator)
		if op.TenantID != "" || op.Role != storage.UserOperator || !op.IsOperator() {
			t.Fatalf("operator %+v", op)
		}
		got, err := b.store.FindUser(b.ctx, "", "root")
		noErr(t, "FindUser of the operator", err)
		equal(t, "FindUser of the operator", got, op)
		got, err = b.store.GetUser(b.ctx, op.ID)
		noErr(t, "GetUser of the operator", err)
		equal(t, "GetUser of the operator", got, op)
		// A tenant's user of the same name is another user.
		ta := mustUser(t, b, b.a.ID, "root", storage.UserViewer)
		if ta.ID == op.ID {
			t.Fatal("the tenant's user and the operator share an id")
		}
		ops, err := b.store.ListUsers(b.ctx, "")
		noErr(t, "ListUsers of the operators", err)
		equal(t, "ListUsers of the operators", ops, []storage.User{op})
		users, err := b.store.ListUsers(b.ctx, b.a.ID)
		noErr(t, "ListUsers of tenant a", err)
		equal(t, "ListUsers of tenant a", users, []storage.User{ta})
		_, err = b.store.CreateUser(b.ctx, storage.CreateUserParams{Name: "root", Role: storage.UserOperator, PasswordHash: "h"})
		wantErr(t, "CreateUser of a second operator root", err, storage.ErrConflict)
	}},
	{"fail/user/duplicate-name", func(t *testing.T, b bundle) {
		first := mustUser(t, b, b.a.ID, "alice", storage.UserAdmin)
		_, err := b.store.CreateUser(b.ctx, storage.CreateUserParams{
			TenantID: b.a.ID, Name: "alice", Role: storage.UserViewer, PasswordHash: "other",
		})
		wantErr(t, "CreateUser with a taken name", err, storage.ErrConflict)
		got, err := b.store.FindUser(b.ctx, b.a.ID, "alice")
		noErr(t, "FindUser", err)
		equal(t, "the first user after the refused one", got, first)
		// The same name in another tenant, or in another case, is free.
		mustUser(t, b, b.b.ID, "alice", storage.UserAdmin)
		mustUser(t, b, b.a.ID, "Alice", storage.UserViewer)
	}},
	{"fail/user/params", func(t *testing.T, b bundle) {
		for name, p := range map[string]storage.CreateUserParams{
			"no name":              {TenantID: b.a.ID, Role: storage.UserAdmin, PasswordHash: "h"},
			"long name":            {TenantID: b.a.ID, Name: strings.Repeat("n", storage.MaxUserNameBytes+1), Role: storage.UserAdmin, PasswordHash: "h"},
			"control in name":      {TenantID: b.a.ID, Name: "al\nice", Role: storage.UserAdmin, PasswordHash: "h"},
			"invalid UTF-8 name":   {TenantID: b.a.ID, Name: "al\xffice", Role: storage.UserAdmin, PasswordHash: "h"},
			"no hash":              {TenantID: b.a.ID, Name: "alice", Role: storage.UserAdmin},
			"long hash":            {TenantID: b.a.ID, Name: "alice", Role: storage.UserAdmin, PasswordHash: strings.Repeat("h", storage.MaxPasswordHashBytes+1)},
			"no role":              {TenantID: b.a.ID, Name: "alice", PasswordHash: "h"},
			"unknown role":         {TenantID: b.a.ID, Name: "alice", Role: "owner", PasswordHash: "h"},
			"tenant operator":      {TenantID: b.a.ID, Name: "alice", Role: storage.UserOperator, PasswordHash: "h"},
			"admin without tenant": {Name: "alice", Role: storage.UserAdmin, PasswordHash: "h"},
			"viewer w/o tenant":    {Name: "alice", Role: storage.UserViewer, PasswordHash: "h"},
		} {
			if _, err := b.store.CreateUser(b.ctx, p); err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) {
				t.Errorf("CreateUser with %s: %v, want a validation error", name, err)
			}
		}
		mustUser(t, b, b.a.ID, strings.Repeat("é", storage.MaxUserNameBytes/2), storage.UserViewer) // the longest name
		_, err := b.store.CreateUser(b.ctx, storage.CreateUserParams{TenantID: "ten_missing", Name: "alice", Role: storage.UserAdmin, PasswordHash: "h"})
		wantErr(t, "CreateUser in a missing tenant", err, storage.ErrNotFound)
		users, err := b.store.ListUsers(b.ctx, b.a.ID)
		noErr(t, "ListUsers", err)
		if len(users) != 1 {
			t.Fatalf("tenant a has %d users after the refused ones, want 1", len(users))
		}
	}},
	{"ok/user/list-by-name-isolated", func(t *testing.T, b bundle) {
		empty, err := b.store.ListUsers(b.ctx, b.a.ID)
		noErr(t, "ListUsers of a tenant without users", err)
		if empty == nil || len(empty) != 0 {
			t.Fatalf("ListUsers without users = %#v, want an empty list", empty)
		}
		carol := mustUser(t, b, b.a.ID, "carol", storage.UserViewer)
		alice := mustUser(t, b, b.a.ID, "alice", storage.UserAdmin)
		upper := mustUser(t, b, b.a.ID, "Zed", storage.UserViewer) // bytewise: upper case first
		bob := mustUser(t, b, b.a.ID, "bob", storage.UserViewer)
		mustUser(t, b, b.b.ID, "eve", storage.UserAdmin)
		mustUser(t, b, "", "root", storage.UserOperator)
		got, err := b.store.ListUsers(b.ctx, b.a.ID)
		noErr(t, "ListUsers", err)
		equal(t, "ListUsers of tenant a", got, []storage.User{upper, alice, bob, carol})
		got, err = b.store.ListUsers(b.ctx, b.b.ID)
		noErr(t, "ListUsers of tenant b", err)
		if len(got) != 1 || got[0].Name != "eve" {
			t.Fatalf("ListUsers of tenant b = %+v, want only eve", got)
		}
	}},
	{"ok/user/password-disable-login", func(t *testing.T, b bundle) {
		u := mustUser(t, b, b.a.ID, "alice", storage.UserAdmin)
		noErr(t, "SetUserPassword", b.store.SetUserPassword(b.ctx, u.ID, fakeHash("new")))
		at := time.Date(2030, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 7200))
		noErr(t, "RecordLogin", b.store.RecordLogin(b.ctx, u.ID, at))
		noErr(t, "SetUserDisabled", b.store.SetUserDisabled(b.ctx, u.ID, true))
		noErr(t, "SetUserDisabled again", b.store.SetUserDisabled(b.ctx, u.ID, true))
		want := u
		want.PasswordHash = fakeHash("new")
		want.LastLoginAt = ptrTo(at.UTC().Truncate(time.Microsecond))
		want.Disabled = true
		got, err := b.store.GetUser(b.ctx, u.ID)
		noErr(t, "GetUser", err)
		equal(t, "GetUser after the changes", got, want)
		// A disabled user is found: the caller refuses the login.
		got, err = b.store.FindUser(b.ctx, b.a.ID, "alice")
		noErr(t, "FindUser of a disabled user", err)
		equal(t, "FindUser of a disabled user", got, want)
		noErr(t, "SetUserDisabled(false)", b.store.SetUserDisabled(b.ctx, u.ID, false))
		got, err = b.store.GetUser(b.ctx, u.ID)
		noErr(t, "GetUser", err)
		if got.Disabled {
			t.Fatal("the user is still disabled")
		}

		const missing = hegate.UserID("usr_missing")
		wantErr(t, "SetUserPassword of a missing user", b.store.SetUserPassword(b.ctx, missing, "h"), storage.ErrNotFound)
		wantErr(t, "SetUserDisabled of a missing user", b.store.SetUserDisabled(b.ctx, missing, true), storage.ErrNotFound)
		wantErr(t, "RecordLogin of a missing user", b.store.RecordLogin(b.ctx, missing, at), storage.ErrNotFound)
		for what, err := range map[string]error{
			"SetUserPassword with no hash":   b.store.SetUserPassword(b.ctx, u.ID, ""),
			"SetUserPassword with long hash": b.store.SetUserPassword(b.ctx, u.ID, strings.Repeat("h", storage.MaxPasswordHashBytes+1)),
			"RecordLogin at the zero time":   b.store.RecordLogin(b.ctx, u.ID, time.Time{}),
		} {
			if err == nil || errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s: %v, want a validation error", what, err)
			}
		}
		got, err = b.store.GetUser(b.ctx, u.ID)
		noErr(t, "GetUser", err)
		if got.PasswordHash != fakeHash("new") {
			t.Fatalf("a refused SetUserPassword changed the hash to %q", got.PasswordHash)
		}
	}},

	{"ok/session/create-get", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		u := mustUser(t, b, b.a.ID, "alice", storage.UserAdmin)
		created := clk.Now()
		expires := created.Add(2 * time.Hour).Add(789 * time.Nanosecond) // stored to the microsecond
		p := sessionParams(u.ID, "one", expires)
		s, err := b.store.CreateSession(b.ctx, p)
		noErr(t, "CreateSession", err)
		want := storage.Session{
			ID: p.ID, UserID: u.ID, CreatedAt: created, ExpiresAt: expires.Truncate(time.Microsecond),
			LastSeenAt: created, From: "192.0.2.7",
		}
		equal(t, "CreateSession", s, want)
		clk.advance(time.Minute)
		gs, gu, err := b.store.GetSession(b.ctx, p.ID, clk.Now())
		noErr(t, "GetSession", err)
		equal(t, "GetSession's session", gs, want)
		equal(t, "GetSession's user", gu, u)

		// An operator's session too.
		op := mustUser(t, b, "", "root", storage.UserOperator)
		mustSession(t, b, sessionParams(op.ID, "op", expires))
		_, gu, err = b.store.GetSession(b.ctx, hashOf("session op"), clk.Now())
		noErr(t, "GetSession of an operator", err)
		equal(t, "GetSession's operator", gu, op)
	}},
	{"fail/session/params", func(t *testing.T, b bundle) {
		u := mustUser(t, b, b.a.ID, "alice", storage.UserAdmin)
		later := time.Now().Add(time.Hour)
		for name, p := range map[string]storage.CreateSessionParams{
			"short id":  {ID: hashOf("x")[:31], UserID: u.ID, ExpiresAt: later},
			"no id":     {UserID: u.ID, ExpiresAt: later},
			"no user":   {ID: hashOf("x"), ExpiresAt: later},
			"no expiry": {ID: hashOf("x"), UserID: u.ID},
			"long from": {ID: hashOf("x"), UserID: u.ID, ExpiresAt: later, From: strings.Repeat("f", storage.MaxFromBytes+1)},
		} {
			if _, err := b.store.CreateSession(b.ctx, p); err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) {
				t.Errorf("CreateSession with %s: %v, want a validation error", name, err)
			}
		}
		mustSession(t, b, storage.CreateSessionParams{ID: hashOf("longest"), UserID: u.ID, ExpiresAt: later, From: strings.Repeat("f", storage.MaxFromBytes)})
		_, err := b.store.CreateSession(b.ctx, sessionParams("usr_missing", "x", later))
		wantErr(t, "CreateSession of a missing user", err, storage.ErrNotFound)
		mustSession(t, b, sessionParams(u.ID, "taken", later))
		_, err = b.store.CreateSession(b.ctx, sessionParams(u.ID, "taken", later))
		wantErr(t, "CreateSession with a taken hash", err, storage.ErrConflict)
		for _, h := range [][]byte{nil, hashOf("x")[:31], append(hashOf("session taken"), 0)} {
			_, _, err := b.store.GetSession(b.ctx, h, time.Now())
			wantErr(t, fmt.Sprintf("GetSession with a %d-byte hash", len(h)), err, storage.ErrNotFound)
			wantErr(t, fmt.Sprintf("TouchSession with a %d-byte hash", len(h)), b.store.TouchSession(b.ctx, h, time.Now(), later), storage.ErrNotFound)
		}
		_, _, err = b.store.GetSession(b.ctx, hashOf("never created"), time.Now())
		wantErr(t, "GetSession of a hash never stored", err, storage.ErrNotFound)
		for what, err := range map[string]error{
			"no now":    b.store.TouchSession(b.ctx, hashOf("session taken"), time.Time{}, later),
			"no expiry": b.store.TouchSession(b.ctx, hashOf("session taken"), time.Now(), time.Time{}),
		} {
			if err == nil || errors.Is(err, storage.ErrNotFound) {
				t.Errorf("TouchSession with %s: %v, want a validation error", what, err)
			}
		}
	}},
	{"ok/session/expiry", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		u := mustUser(t, b, b.a.ID, "alice", storage.UserAdmin)
		expires := clk.Now().Add(time.Hour)
		p := sessionParams(u.ID, "one", expires)
		mustSession(t, b, p)
		_, _, err := b.store.GetSession(b.ctx, p.ID, expires.Add(-time.Microsecond))
		noErr(t, "GetSession just before it expires", err)
		for what, now := range map[string]time.Time{"when it expires": expires, "after it expired": expires.Add(time.Hour)} {
			_, _, err := b.store.GetSession(b.ctx, p.ID, now)
			wantErr(t, "GetSession "+what, err, storage.ErrNotFound)
		}
	}},
	{"ok/session/touch-slides", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		u := mustUser(t, b, b.a.ID, "alice", storage.UserAdmin)
		created := clk.Now()
		p := sessionParams(u.ID, "one", created.Add(time.Hour))
		s := mustSession(t, b, p)
		seen := created.Add(50 * time.Minute)
		slid := seen.Add(time.Hour)
		noErr(t, "TouchSession", b.store.TouchSession(b.ctx, p.ID, seen, slid))
		// Past the first expiry, before the new one.
		gs, _, err := b.store.GetSession(b.ctx, p.ID, created.Add(90*time.Minute))
		noErr(t, "GetSession after the touch", err)
		s.LastSeenAt, s.ExpiresAt = seen, slid
		equal(t, "GetSession after the touch", gs, s)
		// A dead session is never revived.
		err = b.store.TouchSession(b.ctx, p.ID, slid, slid.Add(time.Hour))
		wantErr(t, "TouchSession when it expires", err, storage.ErrNotFound)
		err = b.store.TouchSession(b.ctx, p.ID, slid.Add(time.Minute), slid.Add(time.Hour))
		wantErr(t, "TouchSession after it expired", err, storage.ErrNotFound)
		_, _, err = b.store.GetSession(b.ctx, p.ID, slid)
		wantErr(t, "GetSession after the refused touches", err, storage.ErrNotFound)
		err = b.store.TouchSession(b.ctx, hashOf("missing"), seen, slid)
		wantErr(t, "TouchSession of a missing session", err, storage.ErrNotFound)
	}},
	{"ok/session/disabled-user", func(t *testing.T, b bundle) {
		u := mustUser(t, b, b.a.ID, "alice", storage.UserAdmin)
		later := time.Now().Add(time.Hour)
		p := sessionParams(u.ID, "one", later)
		mustSession(t, b, p)
		noErr(t, "SetUserDisabled", b.store.SetUserDisabled(b.ctx, u.ID, true))
		_, _, err := b.store.GetSession(b.ctx, p.ID, time.Now())
		wantErr(t, "GetSession of a disabled user", err, storage.ErrNotFound)
		_, err = b.store.CreateSession(b.ctx, sessionParams(u.ID, "two", later))
		wantErr(t, "CreateSession of a disabled user", err, storage.ErrNotFound)
		noErr(t, "SetUserDisabled(false)", b.store.SetUserDisabled(b.ctx, u.ID, false))
		_, _, err = b.store.GetSession(b.ctx, p.ID, time.Now())
		noErr(t, "GetSession after enabling the user again", err)
	}},
	{"ok/session/delete", func(t *testing.T, b bundle) {
		alice := mustUser(t, b, b.a.ID, "alice", storage.UserAdmin)
		bob := mustUser(t, b, b.a.ID, "bob", storage.UserViewer)
		later := time.Now().Add(time.Hour)
		for _, s := range []string{"a1", "a2", "a3"} {
			mustSession(t, b, sessionParams(alice.ID, s, later))
		}
		mustSession(t, b, sessionParams(bob.ID, "b1", later))
		noErr(t, "DeleteSession", b.store.DeleteSession(b.ctx, hashOf("session a1")))
		_, _, err := b.store.GetSession(b.ctx, hashOf("session a1"), time.Now())
		wantErr(t, "GetSession of a deleted session", err, storage.ErrNotFound)
		noErr(t, "DeleteSession again", b.store.DeleteSession(b.ctx, hashOf("session a1")))
		noErr(t, "DeleteSession of a short hash", b.store.DeleteSession(b.ctx, []byte{1}))
		_, _, err = b.store.GetSession(b.ctx, hashOf("session a2"), time.Now())
		noErr(t, "GetSession of another session", err)

		noErr(t, "DeleteUserSessions", b.store.DeleteUserSessions(b.ctx, alice.ID))
		for _, s := range []string{"a2", "a3"} {
			_, _, err := b.store.GetSession(b.ctx, hashOf("session "+s), time.Now())
			wantErr(t, "GetSession after DeleteUserSessions", err, storage.ErrNotFound)
		}
		_, gu, err := b.store.GetSession(b.ctx, hashOf("session b1"), time.Now())
		noErr(t, "GetSession of another user's session", err)
		equal(t, "the other session's user", gu, bob)
		noErr(t, "DeleteUserSessions without sessions", b.store.DeleteUserSessions(b.ctx, alice.ID))
		noErr(t, "DeleteUserSessions of a missing user", b.store.DeleteUserSessions(b.ctx, "usr_missing"))
	}},
	{"ok/session/delete-expired", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		u := mustUser(t, b, b.a.ID, "alice", storage.UserAdmin)
		now := clk.Now()
		mustSession(t, b, sessionParams(u.ID, "expired", now.Add(time.Minute)))
		mustSession(t, b, sessionParams(u.ID, "at the cutoff", now.Add(time.Hour)))
		mustSession(t, b, sessionParams(u.ID, "live", now.Add(time.Hour+time.Microsecond)))
		n, err := b.store.DeleteExpiredSessions(b.ctx, now.Add(time.Hour))
		noErr(t, "DeleteExpiredSessions", err)
		if n != 2 {
			t.Fatalf("DeleteExpiredSessions deleted %d, want 2", n)
		}
		_, _, err = b.store.GetSession(b.ctx, hashOf("session live"), now)
		noErr(t, "GetSession of the live session", err)
		// The expired ones are gone, not merely expired: a touch (which
		// only checks expiry against its own now) finds nothing.
		for _, s := range []string{"expired", "at the cutoff"} {
			err := b.store.TouchSession(b.ctx, hashOf("session "+s), now, now.Add(time.Hour))
			wantErr(t, "TouchSession of a deleted session", err, storage.ErrNotFound)
		}
		n, err = b.store.DeleteExpiredSessions(b.ctx, now.Add(time.Hour))
		noErr(t, "DeleteExpiredSessions again", err)
		if n != 0 {
			t.Fatalf("DeleteExpiredSessions again deleted %d, want 0", n)
		}
	}},

	{"ok/audit/record-list-newest-first", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		first := event(b.a.ID, "user:usr_a", "device.revoke")
		first.Detail = json.RawMessage("{ \"reason\" : \"lost\",\n \"a\": [1, 2] }") // byte for byte
		first.At = clk.Now().Add(-24 * time.Hour)                                    // ignored
		e1 := mustAudit(t, b, first)
		want := first
		want.ID, want.At = e1.ID, clk.Now()
		equal(t, "RecordAudit", e1, want)
		clk.advance(time.Second)
		second := event(b.a.ID, "api-key:key_a", "budget.set")
		second.Outcome = storage.AuditDenied
		e2 := mustAudit(t, b, second)
		clk.advance(time.Second)
		third := storage.AuditEvent{TenantID: b.a.ID, Actor: "cli", Action: "apikey.create", Outcome: storage.AuditFailed}
		e3 := mustAudit(t, b, third)
		if !(e1.ID < e2.ID && e2.ID < e3.ID) {
			t.Fatalf("ids %d, %d, %d do not increase", e1.ID, e2.ID, e3.ID)
		}
		if e3.Detail != nil || e3.Object != "" || e3.From != "" || e3.RequestID != "" {
			t.Fatalf("an event without the optional fields: %+v", e3)
		}
		got, next := mustListAudit(t, b, storage.AuditFilter{Tenant: b.a.ID})
		equal(t, "ListAudit", got, []storage.AuditEvent{e3, e2, e1})
		if next != 0 {
			t.Fatalf("ListAudit of the only page: next %d, want 0", next)
		}
		// Empty JSON is no detail.
		empty := event(b.a.ID, "cli", "x.y")
		empty.Detail = json.RawMessage{}
		if e := mustAudit(t, b, empty); e.Detail != nil {
			t.Fatalf("RecordAudit with an empty Detail: %q, want nil", e.Detail)
		}
	}},
	{"ok/audit/pagination", func(t *testing.T, b bundle) {
		var want []int64
		for i := range 7 {
			want = append(want, mustAudit(t, b, event(b.a.ID, "cli", fmt.Sprintf("thing.%d", i))).ID)
			mustAudit(t, b, event(b.b.ID, "cli", "other.tenant"))
		}
		slices.Reverse(want)
		for _, size := range []int{1, 3, 7, 8, 100} {
			got := allAudit(t, b, storage.AuditFilter{Tenant: b.a.ID}, size)
			equal(t, fmt.Sprintf("pages of %d", size), auditIDs(got), want)
		}
		// A full last page says there is none after it.
		page, next := mustListAudit(t, b, storage.AuditFilter{Tenant: b.a.ID, Limit: 7})
		if len(page) != 7 || next != 0 {
			t.Fatalf("ListAudit of exactly the limit: %d events, next %d; want 7, 0", len(page), next)
		}
		page, next = mustListAudit(t, b, storage.AuditFilter{Tenant: b.a.ID, Limit: 3})
		if next != page[2].ID {
			t.Fatalf("next %d, want the last id %d", next, page[2].ID)
		}
		// A cursor is an id: past the oldest, nothing.
		page, next = mustListAudit(t, b, storage.AuditFilter{Tenant: b.a.ID, Before: want[len(want)-1]})
		if len(page) != 0 || next != 0 {
			t.Fatalf("ListAudit before the oldest event: %d events, next %d", len(page), next)
		}
	}},
	{"ok/audit/default-and-max-limit", func(t *testing.T, b bundle) {
		noErr(t, "InTx", b.store.InTx(b.ctx, func(tx storage.Tx) error {
			for i := range storage.MaxPageLimit + 1 {
				if _, err := tx.RecordAudit(b.ctx, event(b.a.ID, "cli", fmt.Sprintf("bulk.%d", i))); err != nil {
					return err
				}
			}
			return nil
		}))
		page, next := mustListAudit(t, b, storage.AuditFilter{Tenant: b.a.ID})
		if len(page) != storage.DefaultPageLimit || next != page[len(page)-1].ID {
			t.Fatalf("ListAudit with Limit 0: %d events, next %d; want %d", len(page), next, storage.DefaultPageLimit)
		}
		page, next = mustListAudit(t, b, storage.AuditFilter{Tenant: b.a.ID, Limit: 10 * storage.MaxPageLimit})
		if len(page) != storage.MaxPageLimit || next != page[len(page)-1].ID {
			t.Fatalf("ListAudit with a large Limit: %d events, next %d; want %d", len(page), next, storage.MaxPageLimit)
		}
		page, next = mustListAudit(t, b, storage.AuditFilter{Tenant: b.a.ID, Limit: storage.MaxPageLimit, Before: next})
		if len(page) != 1 || next != 0 {
			t.Fatalf("the last page: %d events, next %d; want 1, 0", len(page), next)
		}
	}},
	{"ok/audit/filters", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		t0 := clk.Now()
		revoke := mustAudit(t, b, event(b.a.ID, "user:usr_a", "device.revoke"))
		clk.advance(time.Minute)
		enroll := mustAudit(t, b, event(b.a.ID, "device:dev_a", "device.enroll"))
		clk.advance(time.Minute)
		budget := mustAudit(t, b, event(b.a.ID, "user:usr_a", "budget.set"))
		clk.advance(time.Minute)
		odd := mustAudit(t, b, event(b.a.ID, "user:usr_b", "de%ice_x"))
		mustAudit(t, b, event(b.b.ID, "user:usr_a", "device.revoke")) // another tenant's
		for name, tc := range map[string]struct {
			f    storage.AuditFilter
			want []storage.AuditEvent
		}{
			"actor":             {storage.AuditFilter{Actor: "user:usr_a"}, []storage.AuditEvent{budget, revoke}},
			"actor prefix only": {storage.AuditFilter{Actor: "user:"}, nil},
			"action prefix":     {storage.AuditFilter{ActionPrefix: "device."}, []storage.AuditEvent{enroll, revoke}},
			"whole action":      {storage.AuditFilter{ActionPrefix: "device.revoke"}, []storage.AuditEvent{revoke}},
			"longer prefix":     {storage.AuditFilter{ActionPrefix: "device.revoke.x"}, nil},
			"prefix is no LIKE": {storage.AuditFilter{ActionPrefix: "de%"}, []storage.AuditEvent{odd}},
			"prefix _ literal":  {storage.AuditFilter{ActionPrefix: "de_"}, nil},
			"prefix has case":   {storage.AuditFilter{ActionPrefix: "Device."}, nil},
			"actor and action":  {storage.AuditFilter{Actor: "user:usr_a", ActionPrefix: "device."}, []storage.AuditEvent{revoke}},
			"since":             {storage.AuditFilter{Since: t0.Add(time.Minute)}, []storage.AuditEvent{odd, budget, enroll}},
			"until":             {storage.AuditFilter{Until: t0.Add(time.Minute)}, []storage.AuditEvent{revoke}},
			"since and until":   {storage.AuditFilter{Since: t0.Add(time.Minute), Until: t0.Add(2 * time.Minute)}, []storage.AuditEvent{enroll}},
			"empty range":       {storage.AuditFilter{Since: t0.Add(time.Hour)}, nil},
		} {
			tc.f.Tenant = b.a.ID
			got, next := mustListAudit(t, b, tc.f)
			if next != 0 {
				t.Errorf("%s: next %d, want 0", name, next)
			}
			if tc.want == nil {
				tc.want = []storage.AuditEvent{}
			}
			equal(t, name, got, tc.want)
		}
		// Filters and cursors combine.
		got := allAudit(t, b, storage.AuditFilter{Tenant: b.a.ID, ActionPrefix: "device."}, 1)
		equal(t, "pages of one device event", got, []storage.AuditEvent{enroll, revoke})
	}},
	{"ok/audit/tenant-isolation", func(t *testing.T, b bundle) {
		a1 := mustAudit(t, b, event(b.a.ID, "user:usr_a", "device.revoke"))
		b1 := mustAudit(t, b, event(b.b.ID, "user:usr_b", "device.revoke"))
		op := mustAudit(t, b, event("", "user:usr_root", "tenant.create"))
		a2 := mustAudit(t, b, event(b.a.ID, "user:usr_b", "budget.set")) // b's actor id in a's log: still a's
		for name, tc := range map[string]struct {
			f    storage.AuditFilter
			want []storage.AuditEvent
		}{
			"tenant a":           {storage.AuditFilter{Tenant: b.a.ID}, []storage.AuditEvent{a2, a1}},
			"tenant b":           {storage.AuditFilter{Tenant: b.b.ID}, []storage.AuditEvent{b1}},
			"operator-wide":      {storage.AuditFilter{}, []storage.AuditEvent{op}},
			"all tenants":        {storage.AuditFilter{AllTenants: true}, []storage.AuditEvent{a2, op, b1, a1}},
			"tenant a, b's user": {storage.AuditFilter{Tenant: b.a.ID, Actor: "user:usr_b"}, []storage.AuditEvent{a2}},
			"tenant b, a's user": {storage.AuditFilter{Tenant: b.b.ID, Actor: "user:usr_a"}, []storage.AuditEvent{}},
			"missing tenant":     {storage.AuditFilter{Tenant: "ten_missing"}, []storage.AuditEvent{}},
			// A cursor taken from another tenant's page shows nothing of
			// that tenant.
			"tenant b before a2": {storage.AuditFilter{Tenant: b.b.ID, Before: a2.ID}, []storage.AuditEvent{b1}},
		} {
			got, _ := mustListAudit(t, b, tc.f)
			equal(t, name, got, tc.want)
		}
	}},
	{"fail/audit/params", func(t *testing.T, b bundle) {
		ok := event(b.a.ID, "cli", "thing.do")
		with := func(f func(e *storage.AuditEvent)) storage.AuditEvent {
			e := ok
			f(&e)
			return e
		}
		// The largest detail is valid JSON of exactly the limit.
		maxDetail := json.RawMessage(`"` + strings.Repeat("d", storage.MaxAuditDetailBytes-2) + `"`)
		mustAudit(t, b, with(func(e *storage.AuditEvent) { e.Detail = maxDetail }))
		tooLarge := json.RawMessage(`"` + strings.Repeat("d", storage.MaxAuditDetailBytes-1) + `"`)
		_, err := b.store.RecordAudit(b.ctx, with(func(e *storage.AuditEvent) { e.Detail = tooLarge }))
		wantErr(t, fmt.Sprintf("RecordAudit with a %d-byte Detail", len(tooLarge)), err, storage.ErrTooLarge)
		for name, e := range map[string]storage.AuditEvent{
			"no actor":          with(func(e *storage.AuditEvent) { e.Actor = "" }),
			"long actor":        with(func(e *storage.AuditEvent) { e.Actor = strings.Repeat("a", storage.MaxActorBytes+1) }),
			"no action":         with(func(e *storage.AuditEvent) { e.Action = "" }),
			"long action":       with(func(e *storage.AuditEvent) { e.Action = strings.Repeat("a", storage.MaxAuditActionBytes+1) }),
			"long object":       with(func(e *storage.AuditEvent) { e.Object = strings.Repeat("o", storage.MaxAuditObjectBytes+1) }),
			"long from":         with(func(e *storage.AuditEvent) { e.From = strings.Repeat("f", storage.MaxFromBytes+1) }),
			"long request id":   with(func(e *storage.AuditEvent) { e.RequestID = strings.Repeat("r", storage.MaxAuditRequestIDBytes+1) }),
			"no outcome":        with(func(e *storage.AuditEvent) { e.Outcome = "" }),
			"unknown outcome":   with(func(e *storage.AuditEvent) { e.Outcome = "maybe" }),
			"detail not JSON":   with(func(e *storage.AuditEvent) { e.Detail = json.RawMessage(`{"a":`) }),
			"detail two values": with(func(e *storage.AuditEvent) { e.Detail = json.RawMessage(`{} {}`) }),
		} {
			if _, err := b.store.RecordAudit(b.ctx, e); err == nil || errors.Is(err, storage.ErrTooLarge) {
				t.Errorf("RecordAudit with %s: %v, want a validation error", name, err)
			}
		}
		got, _ := mustListAudit(t, b, storage.AuditFilter{Tenant: b.a.ID})
		if len(got) != 1 || !slices.Equal(got[0].Detail, maxDetail) {
			t.Fatalf("the log holds %d events after the refused ones, want only the one with the largest detail", len(got))
		}
		for name, f := range map[string]storage.AuditFilter{
			"negative limit":         {Tenant: b.a.ID, Limit: -1},
			"negative cursor":        {Tenant: b.a.ID, Before: -1},
			"tenant with AllTenants": {Tenant: b.a.ID, AllTenants: true},
		} {
			if _, _, err := b.store.ListAudit(b.ctx, f); err == nil {
				t.Errorf("ListAudit with %s succeeded", name)
			}
		}
	}},
	{"ok/audit/in-transaction", func(t *testing.T, b bundle) {
		// Committed: the change and its event together.
		var (
			job storage.Job
			ev  storage.AuditEvent
		)
		noErr(t, "InTx", b.store.InTx(b.ctx, func(tx storage.Tx) error {
			var err error
			if job, _, err = tx.CreateJob(b.ctx, jobParams(b.a.ID, "")); err != nil {
				return err
			}
			e := event(b.a.ID, "api-key:key_a", "job.create")
			e.Object = string(job.ID)
			ev, err = tx.RecordAudit(b.ctx, e)
			return err
		}))
		if ev.ID == 0 || ev.Object != string(job.ID) {
			t.Fatalf("Tx.RecordAudit = %+v", ev)
		}
		got, _ := mustListAudit(t, b, storage.AuditFilter{Tenant: b.a.ID})
		equal(t, "ListAudit after the commit", got, []storage.AuditEvent{ev})

		// Rolled back: neither.
		var lost storage.Job
		err := b.store.InTx(b.ctx, func(tx storage.Tx) error {
			var err error
			if lost, _, err = tx.CreateJob(b.ctx, jobParams(b.a.ID, "")); err != nil {
				return err
			}
			if _, err := tx.RecordAudit(b.ctx, event(b.a.ID, "api-key:key_a", "job.create")); err != nil {
				return err
			}
			return errBoom
		})
		if err != errBoom {
			t.Fatalf("InTx = %v, want fn's error", err)
		}
		_, err = b.store.GetJob(b.ctx, b.a.ID, lost.ID)
		wantErr(t, "GetJob of the rolled-back job", err, storage.ErrNotFound)
		got, _ = mustListAudit(t, b, storage.AuditFilter{AllTenants: true})
		equal(t, "ListAudit after the rollback", got, []storage.AuditEvent{ev})

		// An invalid event fails the transaction it is in.
		err = b.store.InTx(b.ctx, func(tx storage.Tx) error {
			_, err := tx.RecordAudit(b.ctx, storage.AuditEvent{TenantID: b.a.ID})
			return err
		})
		if err == nil {
			t.Fatal("Tx.RecordAudit of an invalid event succeeded")
		}
	}},
	{"ok/audit/delete-before", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		old := mustAudit(t, b, event(b.a.ID, "cli", "old.a"))
		mustAudit(t, b, event(b.b.ID, "cli", "old.b"))
		cutoff := clk.advance(time.Hour)
		atCutoff := mustAudit(t, b, event(b.a.ID, "cli", "at.cutoff"))
		clk.advance(time.Hour)
		recent := mustAudit(t, b, event(b.a.ID, "cli", "recent"))
		n, err := b.store.DeleteAuditBefore(b.ctx, cutoff)
		noErr(t, "DeleteAuditBefore", err)
		if n != 2 {
			t.Fatalf("DeleteAuditBefore deleted %d, want 2", n)
		}
		got, _ := mustListAudit(t, b, storage.AuditFilter{AllTenants: true})
		equal(t, "ListAudit after the sweep", got, []storage.AuditEvent{recent, atCutoff})
		if _, err := b.store.DeleteAuditBefore(b.ctx, time.Time{}); err == nil {
			t.Fatal("DeleteAuditBefore(zero time) succeeded")
		}
		// Ids are never reused after a sweep.
		next := mustAudit(t, b, event(b.a.ID, "cli", "next"))
		if next.ID <= recent.ID || next.ID == old.ID {
			t.Fatalf("the next id %d is not after %d", next.ID, recent.ID)
		}
	}},

	{"ok/job/page", func(t *testing.T, b bundle) {
		var want []storage.Job
		for range 7 {
			want = append(want, mustJob(t, b, b.a.ID))
			mustJob(t, b, b.b.ID)
		}
		slices.Reverse(want)
		list, err := b.store.ListJobs(b.ctx, b.a.ID, 100)
		noErr(t, "ListJobs", err)
		equal(t, "ListJobs", jobIDs(list), jobIDs(want))
		for _, size := range []int{1, 2, 7, 50} {
			got := allJobs(t, b, b.a.ID, storage.JobFilter{}, size)
			equal(t, fmt.Sprintf("pages of %d", size), got, want)
		}
		jobs, next, err := b.store.ListJobsPage(b.ctx, b.a.ID, storage.JobFilter{})
		noErr(t, "ListJobsPage with Limit 0", err)
		if len(jobs) != 7 || next != "" {
			t.Fatalf("ListJobsPage with the default limit: %d jobs, next %q", len(jobs), next)
		}
		empty, next, err := b.store.ListJobsPage(b.ctx, "ten_missing", storage.JobFilter{})
		noErr(t, "ListJobsPage of a missing tenant", err)
		if empty == nil || len(empty) != 0 || next != "" {
			t.Fatalf("ListJobsPage of a missing tenant: %#v, %q", empty, next)
		}
	}},
	{"ok/job/page-same-time", func(t *testing.T, b bundle) {
		// A clock that stands still: every job has the same CreatedAt,
		// and the id alone orders them.
		b, _ = clocked(t, b)
		for range 9 {
			mustJob(t, b, b.a.ID)
		}
		list, err := b.store.ListJobs(b.ctx, b.a.ID, 100)
		noErr(t, "ListJobs", err)
		for _, size := range []int{1, 2, 4} {
			got := allJobs(t, b, b.a.ID, storage.JobFilter{}, size)
			equal(t, fmt.Sprintf("pages of %d", size), jobIDs(got), jobIDs(list))
		}
	}},
	{"ok/job/page-filters", func(t *testing.T, b bundle) {
		var queued, cancelled, other []storage.Job
		for i := range 6 {
			j := mustJob(t, b, b.a.ID)
			if i%2 == 0 {
				var err error
				j, err = b.store.CancelJob(b.ctx, b.a.ID, j.ID)
				noErr(t, "CancelJob", err)
				cancelled = append(cancelled, j)
			} else {
				queued = append(queued, j)
			}
			p := jobParams(b.a.ID, "")
			p.Model = "other-model"
			o, _, err := b.store.CreateJob(b.ctx, p)
			noErr(t, "CreateJob", err)
			other = append(other, o)
		}
		mustJob(t, b, b.b.ID)
		for _, l := range [][]storage.Job{queued, cancelled, other} {
			slices.Reverse(l)
		}
		for name, tc := range map[string]struct {
			f    storage.JobFilter
			want []storage.Job
		}{
			"queued":          {storage.JobFilter{Status: storage.JobQueued, Model: testModel}, queued},
			"cancelled":       {storage.JobFilter{Status: storage.JobCancelled}, cancelled},
			"other model":     {storage.JobFilter{Model: "other-model"}, other},
			"none succeeded":  {storage.JobFilter{Status: storage.JobSucceeded}, []storage.Job{}},
			"no such model":   {storage.JobFilter{Model: "nope"}, []storage.Job{}},
			"other cancelled": {storage.JobFilter{Status: storage.JobCancelled, Model: "other-model"}, []storage.Job{}},
		} {
			equal(t, name, allJobs(t, b, b.a.ID, tc.f, 2), tc.want)
			jobs, _, err := b.store.ListJobsPage(b.ctx, b.a.ID, tc.f)
			noErr(t, "ListJobsPage", err)
			equal(t, name+" in one page", jobs, tc.want)
		}
	}},
	{"fail/job/page", func(t *testing.T, b bundle) {
		a := mustJob(t, b, b.a.ID)
		bj := mustJob(t, b, b.b.ID)
		_, _, err := b.store.ListJobsPage(b.ctx, b.a.ID, storage.JobFilter{Before: bj.ID})
		wantErr(t, "ListJobsPage with another tenant's job as the cursor", err, storage.ErrNotFound)
		_, _, err = b.store.ListJobsPage(b.ctx, b.a.ID, storage.JobFilter{Before: "job_missing"})
		wantErr(t, "ListJobsPage with a missing job as the cursor", err, storage.ErrNotFound)
		for name, f := range map[string]storage.JobFilter{
			"unknown status": {Status: "done"},
			"negative limit": {Limit: -1},
		} {
			if _, _, err := b.store.ListJobsPage(b.ctx, b.a.ID, f); err == nil || errors.Is(err, storage.ErrNotFound) {
				t.Errorf("ListJobsPage with %s: %v, want a validation error", name, err)
			}
		}
		jobs, next, err := b.store.ListJobsPage(b.ctx, b.a.ID, storage.JobFilter{Before: a.ID})
		noErr(t, "ListJobsPage before the only job", err)
		if len(jobs) != 0 || next != "" {
			t.Fatalf("ListJobsPage before the only job: %d jobs, next %q", len(jobs), next)
		}
	}},
}

func ptrTo[T any](v T) *T { return &v }

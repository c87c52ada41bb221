package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hegate/hegate/storage"
)

func TestValidateConsole(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	user := storage.CreateUserParams{TenantID: "ten_a", Name: "alice", Role: storage.UserAdmin, PasswordHash: "h"}
	withUser := func(f func(p *storage.CreateUserParams)) storage.CreateUserParams {
		p := user
		f(&p)
		return p
	}
	session := storage.CreateSessionParams{ID: bytes.Repeat([]byte{1}, 32), UserID: "usr_a", ExpiresAt: now}
	withSession := func(f func(p *storage.CreateSessionParams)) storage.CreateSessionParams {
		p := session
		f(&p)
		return p
	}
	ev := storage.AuditEvent{Actor: "cli", Action: "a.b", Outcome: storage.AuditOK}
	withEvent := func(f func(e *storage.AuditEvent)) storage.AuditEvent {
		e := ev
		f(&e)
		return e
	}
	for name, tc := range map[string]struct {
		err     error
		wantErr bool
	}{
		"ok/user":                 {err: CreateUser(user)},
		"ok/user-viewer":          {err: CreateUser(withUser(func(p *storage.CreateUserParams) { p.Role = storage.UserViewer }))},
		"ok/user-operator":        {err: CreateUser(withUser(func(p *storage.CreateUserParams) { p.TenantID, p.Role = "", storage.UserOperator }))},
		"ok/user-unicode":         {err: CreateUser(withUser(func(p *storage.CreateUserParams) { p.Name = "zoë" }))},
		"fail/user-no-name":       {err: CreateUser(withUser(func(p *storage.CreateUserParams) { p.Name = "" })), wantErr: true},
		"fail/user-long-name":     {err: CreateUser(withUser(func(p *storage.CreateUserParams) { p.Name = strings.Repeat("n", storage.MaxUserNameBytes+1) })), wantErr: true},
		"fail/user-control":       {err: CreateUser(withUser(func(p *storage.CreateUserParams) { p.Name = "a\x00b" })), wantErr: true},
		"fail/user-c1-control":    {err: CreateUser(withUser(func(p *storage.CreateUserParams) { p.Name = "a\u0085b" })), wantErr: true},
		"fail/user-bad-utf8":      {err: CreateUser(withUser(func(p *storage.CreateUserParams) { p.Name = "a\xc3" })), wantErr: true},
		"fail/user-operator-role": {err: CreateUser(withUser(func(p *storage.CreateUserParams) { p.Role = storage.UserOperator })), wantErr: true},
		"fail/user-no-tenant":     {err: CreateUser(withUser(func(p *storage.CreateUserParams) { p.TenantID = "" })), wantErr: true},
		"fail/user-role":          {err: CreateUser(withUser(func(p *storage.CreateUserParams) { p.Role = "client" })), wantErr: true},
		"fail/user-no-hash":       {err: CreateUser(withUser(func(p *storage.CreateUserParams) { p.PasswordHash = "" })), wantErr: true},
		"ok/hash-max":             {err: PasswordHash(strings.Repeat("h", storage.MaxPasswordHashBytes))},
		"fail/hash-long":          {err: PasswordHash(strings.Repeat("h", storage.MaxPasswordHashBytes+1)), wantErr: true},
		"ok/login":                {err: RecordLogin(now)},
		"fail/login-zero":         {err: RecordLogin(time.Time{}), wantErr: true},
		"ok/session":              {err: CreateSession(session)},
		"ok/session-from-max":     {err: CreateSession(withSession(func(p *storage.CreateSessionParams) { p.From = strings.Repeat("f", storage.MaxFromBytes) }))},
		"fail/session-id":         {err: CreateSession(withSession(func(p *storage.CreateSessionParams) { p.ID = p.ID[:31] })), wantErr: true},
		"fail/session-user":       {err: CreateSession(withSession(func(p *storage.CreateSessionParams) { p.UserID = "" })), wantErr: true},
		"fail/session-expiry":     {err: CreateSession(withSession(func(p *storage.CreateSessionParams) { p.ExpiresAt = time.Time{} })), wantErr: true},
		"fail/session-from":       {err: CreateSession(withSession(func(p *storage.CreateSessionParams) { p.From = strings.Repeat("f", storage.MaxFromBytes+1) })), wantErr: true},
		"ok/touch":                {err: TouchSession(now, now)},
		"fail/touch-now":          {err: TouchSession(time.Time{}, now), wantErr: true},
		"fail/touch-expiry":       {err: TouchSession(now, time.Time{}), wantErr: true},
		"ok/event":                {err: AuditEvent(ev)},
		"ok/event-detail":         {err: AuditEvent(withEvent(func(e *storage.AuditEvent) { e.Detail = json.RawMessage(`{"a":1}`) }))},
		"fail/event-actor":        {err: AuditEvent(withEvent(func(e *storage.AuditEvent) { e.Actor = "" })), wantErr: true},
		"fail/event-action":       {err: AuditEvent(withEvent(func(e *storage.AuditEvent) { e.Action = "" })), wantErr: true},
		"fail/event-outcome":      {err: AuditEvent(withEvent(func(e *storage.AuditEvent) { e.Outcome = "OK" })), wantErr: true},
		"fail/event-detail-json":  {err: AuditEvent(withEvent(func(e *storage.AuditEvent) { e.Detail = json.RawMessage(`nope`) })), wantErr: true},
		"ok/cutoff":               {err: DeleteAuditBefore(now)},
		"fail/cutoff-zero":        {err: DeleteAuditBefore(time.Time{}), wantErr: true},
	} {
		if (tc.err != nil) != tc.wantErr {
			t.Errorf("%s: error %v, want error %v", name, tc.err, tc.wantErr)
		}
	}
	big := json.RawMessage(`"` + strings.Repeat("x", storage.MaxAuditDetailBytes) + `"`)
	if err := AuditEvent(withEvent(func(e *storage.AuditEvent) { e.Detail = big })); !errors.Is(err, storage.ErrTooLarge) {
		t.Errorf("a %d-byte Detail: %v, want ErrTooLarge", len(big), err)
	}
	for _, h := range [][]byte{nil, make([]byte, 31), make([]byte, 33)} {
		if err := SessionHash(h); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SessionHash of %d bytes: %v, want ErrNotFound", len(h), err)
		}
	}
	for limit, want := range map[int]int{0: storage.DefaultPageLimit, 1: 1, storage.MaxPageLimit: storage.MaxPageLimit, storage.MaxPageLimit + 1: storage.MaxPageLimit} {
		if got, err := PageLimit(limit); err != nil || got != want {
			t.Errorf("PageLimit(%d) = %d, %v; want %d", limit, got, err, want)
		}
	}
	if _, err := PageLimit(-1); err == nil {
		t.Error("PageLimit(-1) succeeded")
	}
	if _, err := AuditFilter(storage.AuditFilter{Tenant: "ten_a", AllTenants: true}); err == nil {
		t.Error("AuditFilter with Tenant and AllTenants succeeded")
	}
	if _, err := AuditFilter(storage.AuditFilter{Before: -1}); err == nil {
		t.Error("AuditFilter with Before -1 succeeded")
	}
	if _, err := JobFilter(storage.JobFilter{Status: "done"}); err == nil {
		t.Error("JobFilter with an unknown status succeeded")
	}
	if n, err := JobFilter(storage.JobFilter{Status: storage.JobFailed, Limit: 7}); err != nil || n != 7 {
		t.Errorf("JobFilter = %d, %v", n, err)
	}
}

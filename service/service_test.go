package service_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/service/servicetest"
	"github.com/hegate/hegate/storage"
)

// rig is the service of servicetest.Rig with a clock of its own and, for
// each of the two tenants, an admin, a viewer and a client principal.
type rig struct {
	*servicetest.Rig
	ctx   context.Context
	clock *clock
	a, b  tenant
	op    service.Principal
}

type tenant struct {
	id                    hegate.TenantID
	admin, viewer, client service.Principal
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newRig(t *testing.T) *rig {
	t.Helper()
	clk := &clock{t: time.Now()}
	r := &rig{
		Rig: servicetest.New(t, servicetest.Config{Clock: clk.now}),
		ctx: t.Context(), clock: clk,
		op: service.Principal{Role: service.RoleOperator, Operator: "test", From: "cli"},
	}
	r.a, r.b = principals(r.Acme.ID), principals(r.Globex.ID)
	return r
}

// principals are the tenant's admin, viewer and client principals.
func principals(id hegate.TenantID) tenant {
	return tenant{
		id:     id,
		admin:  service.Principal{Tenant: id, Role: service.RoleAdmin, APIKey: "key_admin", From: "192.0.2.1"},
		viewer: service.Principal{Tenant: id, Role: service.RoleViewer, User: "usr_viewer", From: "192.0.2.2"},
		client: service.Principal{Tenant: id, Role: service.RoleClient, APIKey: "key_client", From: "192.0.2.3"},
	}
}

// enrolled records a device of the tenant straight in the store.
func (r *rig) enrolled(t *testing.T, tn tenant, instance string) storage.Device {
	t.Helper()
	d, err := r.Store.EnrollDevice(r.ctx, storage.EnrollDeviceParams{
		TenantID: tn.id, Format: string(attest.FormatNative), InstanceID: instance, KeyThumbprint: strings.Repeat("ab", 32),
		AttestationStatus: string(attest.StatusAffirming), Result: []byte(`{}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (r *rig) audit(t *testing.T, p service.Principal) []storage.AuditEvent {
	t.Helper()
	evs, _, err := r.Store.ListAudit(r.ctx, storage.AuditFilter{Tenant: p.Tenant, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func kind(err error) hegate.Kind { return hegate.KindOf(err) }

func TestRolesAndTenants(t *testing.T) {
	r := newRig(t)
	dev := r.enrolled(t, r.b, "b-1")

	// Another tenant's device is not found, for reads and changes alike.
	if _, err := r.Service.GetDevice(r.ctx, r.a.admin, dev.ID); kind(err) != hegate.KindNotFound {
		t.Errorf("A's admin reading B's device: %v, want not found", err)
	}
	if _, err := r.Service.RevokeDevice(r.ctx, r.a.admin, dev.ID); kind(err) != hegate.KindNotFound {
		t.Errorf("A's admin revoking B's device: %v, want not found", err)
	}
	if d, err := r.Store.GetDevice(r.ctx, r.b.id, dev.ID); err != nil || d.Status == storage.DeviceRevoked {
		t.Fatalf("B's device after A's attempt: %+v, %v", d, err)
	}
	// A viewer reads but changes nothing; a client key does neither.
	if _, err := r.Service.ListDevices(r.ctx, r.b.viewer); err != nil {
		t.Errorf("viewer listing devices: %v", err)
	}
	if _, err := r.Service.ListDevices(r.ctx, r.b.client); kind(err) != hegate.KindForbidden {
		t.Errorf("client key listing devices: %v, want forbidden", err)
	}
	for name, change := range map[string]func(service.Principal) error{
		"revoke device": func(p service.Principal) error { _, err := r.Service.RevokeDevice(r.ctx, p, dev.ID); return err },
		"set policy": func(p service.Principal) error {
			_, err := r.Service.SetPolicy(r.ctx, p, "", []byte(`{"allow_api_key":true}`))
			return err
		},
		"create key": func(p service.Principal) error {
			_, _, err := r.Service.CreateAPIKey(r.ctx, p, service.CreateAPIKeyParams{Name: "x", Role: service.RoleClient})
			return err
		},
		"set budget": func(p service.Principal) error {
			_, err := r.Service.SetBudget(r.ctx, p, service.SetBudgetParams{Model: "m", Epsilon: 1, Delta: 1e-6, Period: "day"})
			return err
		},
		"set endorsements": func(p service.Principal) error {
			_, err := r.Service.SetAttestationDoc(r.ctx, p, service.TrustAnchorDoc{Format: attest.FormatNative, Kind: storage.DocEndorsements}, []byte(`{}`))
			return err
		},
		"cancel job": func(p service.Principal) error { _, err := r.Service.CancelJob(r.ctx, p, "job_x"); return err },
	} {
		for _, p := range []service.Principal{r.b.viewer} {
			if err := change(p); kind(err) != hegate.KindForbidden {
				t.Errorf("%s as %s: %v, want forbidden", name, p.Role, err)
			}
		}
	}
	// Every refusal is in the audit log as denied, naming the viewer.
	denied := map[string]bool{}
	for _, ev := range r.audit(t, r.b.viewer) {
		if ev.Outcome == storage.AuditDenied && ev.Actor == r.b.viewer.Actor() && ev.From == r.b.viewer.From {
			denied[ev.Action] = true
		}
	}
	for _, action := range []string{"device.revoke", "policy.set", "apikey.create", "budget.set", "attestation.set", "job.cancel"} {
		if !denied[action] {
			t.Errorf("no denied %s event for the viewer (denied: %v)", action, denied)
		}
	}
	// The admin's change is recorded once, as ok, with its object.
	if _, err := r.Service.RevokeDevice(r.ctx, r.b.admin, dev.ID); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, ev := range r.audit(t, r.b.admin) {
		if ev.Action == "device.revoke" && ev.Outcome == storage.AuditOK && ev.Object == string(dev.ID) && ev.Actor == r.b.admin.Actor() {
			found = true
		}
	}
	if !found {
		t.Error("the revocation is not in B's audit log")
	}
	for _, ev := range r.audit(t, r.a.admin) {
		if ev.Object == string(dev.ID) && ev.Outcome == storage.AuditOK {
			t.Errorf("A's audit log holds B's change: %+v", ev)
		}
	}
}

func TestAPIKeys(t *testing.T) {
	r := newRig(t)
	k, secret, err := r.Service.CreateAPIKey(r.ctx, r.a.admin, service.CreateAPIKeyParams{Name: "fleet", Role: service.RoleClient})
	if err != nil {
		t.Fatal(err)
	}
	if !service.WellFormedAPIKey(secret) || !strings.HasPrefix(secret, k.Prefix) {
		t.Errorf("secret %q does not fit key %+v", secret[:8], k)
	}
	got, err := r.Store.LookupAPIKey(r.ctx, service.HashAPIKey(secret))
	if err != nil || got.ID != k.ID || got.TenantID != r.a.id || got.Role != storage.RoleClient {
		t.Fatalf("lookup: %+v, %v", got, err)
	}
	var fe *service.FieldError
	if _, _, err := r.Service.CreateAPIKey(r.ctx, r.a.admin, service.CreateAPIKeyParams{Name: "", Role: service.RoleClient}); !errors.As(err, &fe) || fe.Field != "name" {
		t.Errorf("empty name: %v, want a field error on name", err)
	}
	if _, _, err := r.Service.CreateAPIKey(r.ctx, r.a.admin, service.CreateAPIKeyParams{Name: "x", Role: service.RoleOperator}); !errors.As(err, &fe) || fe.Field != "role" {
		t.Errorf("operator role: %v, want a field error on role", err)
	}
	if err := r.Service.RevokeAPIKey(r.ctx, r.b.admin, k.ID); kind(err) != hegate.KindNotFound {
		t.Errorf("B revoking A's key: %v, want not found", err)
	}
	if err := r.Service.RevokeAPIKey(r.ctx, r.a.admin, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Store.LookupAPIKey(r.ctx, service.HashAPIKey(secret)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("revoked key still found: %v", err)
	}
	for _, ev := range r.audit(t, r.a.admin) {
		if strings.Contains(string(ev.Detail), secret) || strings.Contains(ev.Object, secret) {
			t.Fatalf("the audit log holds the secret: %+v", ev)
		}
	}
}

func TestLoginAndSessions(t *testing.T) {
	r := newRig(t)
	const pw = "correct horse battery"
	// A user of its own, besides the rig's.
	u, err := r.Service.CreateUser(r.ctx, r.op, service.CreateUserParams{Tenant: r.a.id, Name: " Carol ", Role: service.RoleAdmin, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "carol" || strings.Contains(u.PasswordHash, pw) {
		t.Errorf("user %+v", u)
	}
	// A tenant's admin may add users to its own tenant only; a viewer none.
	if _, err := r.Service.CreateUser(r.ctx, r.b.admin, service.CreateUserParams{Tenant: r.a.id, Name: "mallory", Role: service.RoleAdmin, Password: pw}); kind(err) != hegate.KindForbidden {
		t.Errorf("B's admin adding a user to A: %v", err)
	}
	if _, err := r.Service.CreateUser(r.ctx, r.a.viewer, service.CreateUserParams{Tenant: r.a.id, Name: "v2", Role: service.RoleViewer, Password: pw}); kind(err) != hegate.KindForbidden {
		t.Errorf("viewer adding a user: %v", err)
	}
	var fe *service.FieldError
	if _, err := r.Service.CreateUser(r.ctx, r.op, service.CreateUserParams{Tenant: r.a.id, Name: "bob", Role: service.RoleAdmin, Password: "short"}); !errors.As(err, &fe) || fe.Field != "password" {
		t.Errorf("short password: %v", err)
	}

	login := func(tenant, name, password, from string) (service.Session, error) {
		return r.Service.Login(r.ctx, service.LoginParams{Tenant: tenant, Name: name, Password: password, From: from})
	}
	// Wrong password, unknown user and unknown tenant say the same.
	var msgs []string
	for _, c := range [][3]string{{"acme", "carol", "wrong password!"}, {"acme", "nobody", pw}, {"nope", "carol", pw}} {
		_, err := login(c[0], c[1], c[2], "198.51.100.1")
		if kind(err) != hegate.KindUnauthenticated {
			t.Fatalf("login %v: %v, want unauthenticated", c, err)
		}
		msgs = append(msgs, hegate.DetailOf(err))
	}
	if msgs[0] != msgs[1] || msgs[1] != msgs[2] {
		t.Errorf("refusals differ: %q", msgs)
	}
	// The same user in another tenant is another account.
	if _, err := login("globex", "carol", pw, "198.51.100.9"); kind(err) != hegate.KindUnauthenticated {
		t.Errorf("carol of acme logged in to globex: %v", err)
	}
	s, err := login("acme", "CAROL", pw, "198.51.100.2")
	if err != nil {
		t.Fatal(err)
	}
	if s.Principal.Tenant != r.a.id || s.Principal.Role != service.RoleAdmin || s.Principal.User != u.ID {
		t.Errorf("principal %+v", s.Principal)
	}
	p, _, err := r.Service.SessionPrincipal(r.ctx, s.Token, "198.51.100.2", "")
	if err != nil || p.User != u.ID || p.Tenant != r.a.id {
		t.Fatalf("session: %+v, %v", p, err)
	}
	// An API key is no session, and a session no API key.
	if _, _, err := r.Service.SessionPrincipal(r.ctx, "hgk_"+strings.Repeat("A", 43), "", ""); kind(err) != hegate.KindUnauthenticated {
		t.Errorf("API-key-shaped session: %v", err)
	}
	if service.WellFormedAPIKey(s.Token) {
		t.Error("a session token passes for an API key")
	}
	// Sliding expiry, and the absolute end.
	for range 5 {
		r.clock.add(service.SessionIdle - time.Minute)
		if _, _, err := r.Service.SessionPrincipal(r.ctx, s.Token, "", ""); err != nil {
			t.Fatalf("session ended while used: %v", err)
		}
	}
	r.clock.add(service.SessionMax)
	if _, _, err := r.Service.SessionPrincipal(r.ctx, s.Token, "", ""); kind(err) != hegate.KindUnauthenticated {
		t.Errorf("session past its maximum: %v", err)
	}
	// Logout ends it; a disabled user's sessions end too.
	s2, err := login("acme", "carol", pw, "198.51.100.3")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Service.Logout(r.ctx, s2.Principal, s2.Token); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Service.SessionPrincipal(r.ctx, s2.Token, "", ""); kind(err) != hegate.KindUnauthenticated {
		t.Errorf("session after logout: %v", err)
	}
	s3, err := login("acme", "carol", pw, "198.51.100.4")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Store.SetUserDisabled(r.ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Service.SessionPrincipal(r.ctx, s3.Token, "", ""); kind(err) != hegate.KindUnauthenticated {
		t.Errorf("disabled user's session: %v", err)
	}
	if _, err := login("acme", "carol", pw, "198.51.100.5"); kind(err) != hegate.KindUnauthenticated {
		t.Errorf("disabled user logged in: %v", err)
	}
}

func TestLoginRateLimit(t *testing.T) {
	r := newRig(t)
	const pw = servicetest.Password
	var tooMany *service.TooManyAttemptsError
	limited := 0
	for i := range 20 {
		_, err := r.Service.Login(r.ctx, service.LoginParams{Tenant: "acme", Name: "alice", Password: "wrong password!", From: "203.0.113.7"})
		if errors.As(err, &tooMany) {
			limited++
			if tooMany.RetryAfter <= 0 {
				t.Errorf("attempt %d: retry after %s", i, tooMany.RetryAfter)
			}
		}
	}
	if limited < 10 {
		t.Errorf("%d of 20 rapid wrong attempts limited, want most", limited)
	}
	// Even the right password waits, from that address and for that account.
	if _, err := r.Service.Login(r.ctx, service.LoginParams{Tenant: "acme", Name: "alice", Password: pw, From: "203.0.113.7"}); !errors.As(err, &tooMany) {
		t.Errorf("right password during the lockout: %v", err)
	}
	// Time refills the buckets.
	r.clock.add(10 * time.Minute)
	if _, err := r.Service.Login(r.ctx, service.LoginParams{Tenant: "acme", Name: "alice", Password: pw, From: "203.0.113.7"}); err != nil {
		t.Errorf("after the wait: %v", err)
	}
}

// TestUserAdministration: disabling a user or changing its password ends
// its sessions; a tenant's admin manages its own tenant's users only; a
// user may change its own password, a viewer no one else's.
func TestUserAdministration(t *testing.T) {
	r := newRig(t)
	const pw = servicetest.Password
	alice, victor, gina := r.Alice, r.Victor, r.Gina
	login := func(tn, name, password string) (service.Session, error) {
		return r.Service.Login(r.ctx, service.LoginParams{Tenant: tn, Name: name, Password: password, From: "192.0.2." + name})
	}
	sv, err := login("acme", "victor", pw)
	if err != nil {
		t.Fatal(err)
	}
	aliceP, victorP, ginaP := servicetest.Principal(alice), servicetest.Principal(victor), servicetest.Principal(gina)
	if err := r.Service.SetUserDisabled(r.ctx, ginaP, victor.ID, true); kind(err) != hegate.KindNotFound {
		t.Errorf("globex's admin disabling acme's user: %v, want not found", err)
	}
	if err := r.Service.SetUserDisabled(r.ctx, victorP, alice.ID, true); kind(err) != hegate.KindForbidden {
		t.Errorf("a viewer disabling its admin: %v, want forbidden", err)
	}
	if err := r.Service.SetUserDisabled(r.ctx, aliceP, victor.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Service.SessionPrincipal(r.ctx, sv.Token, "", ""); kind(err) != hegate.KindUnauthenticated {
		t.Errorf("a disabled user's session: %v", err)
	}
	if err := r.Service.SetUserDisabled(r.ctx, aliceP, victor.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := login("acme", "victor", pw); err != nil {
		t.Errorf("victor enabled again: %v", err)
	}
	// A user's own password; the old one and the old sessions stop.
	sa, err := login("acme", "alice", pw)
	if err != nil {
		t.Fatal(err)
	}
	const pw2 = "another long passphrase"
	if err := r.Service.SetUserPassword(r.ctx, victorP, alice.ID, pw2); kind(err) != hegate.KindForbidden {
		t.Errorf("a viewer setting its admin's password: %v", err)
	}
	if err := r.Service.SetUserPassword(r.ctx, aliceP, alice.ID, pw2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Service.SessionPrincipal(r.ctx, sa.Token, "", ""); kind(err) != hegate.KindUnauthenticated {
		t.Errorf("a session after the password changed: %v", err)
	}
	if _, err := login("acme", "alice", pw); kind(err) != hegate.KindUnauthenticated {
		t.Errorf("the old password: %v", err)
	}
	if _, err := login("acme", "alice", pw2); err != nil {
		t.Errorf("the new password: %v", err)
	}
}

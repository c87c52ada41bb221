package storagetest

import (
	"testing"
	"time"

	"github.com/hegate/hegate/storage"
)

var storeTests = []test{
	{"ok/store/ping-engine-migrate-again", func(t *testing.T, b bundle) {
		noErr(t, "Ping", b.store.Ping(b.ctx))
		if e := b.store.Engine(); e != "postgres" && e != "sqlite" {
			t.Errorf("Engine() = %q, want postgres or sqlite", e)
		}
		noErr(t, "second Migrate", b.store.Migrate(b.ctx))
		got, err := b.store.GetTenant(b.ctx, b.a.ID)
		noErr(t, "GetTenant after Migrate", err)
		equal(t, "tenant after Migrate", got, b.a)
	}},
	{"ok/store/timestamps-utc-microseconds", func(t *testing.T, b bundle) {
		// A clock in another zone, with nanoseconds: the store keeps
		// microseconds and answers in UTC.
		at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600))
		s := b.open(t, func() time.Time { return at })
		_, err := s.CreateTenant(b.ctx, storage.CreateTenantParams{Name: "a"})
		noErr(t, "CreateTenant", err)
		got, err := s.GetTenantByName(b.ctx, "a")
		noErr(t, "GetTenantByName", err)
		want := time.Date(2026, 1, 2, 2, 4, 5, 123456000, time.UTC)
		if got.CreatedAt != want {
			t.Fatalf("CreatedAt = %v, want %v", got.CreatedAt, want)
		}
	}},
}

var tenantTests = []test{
	{"ok/tenant/create-get", func(t *testing.T, b bundle) {
		tn, err := b.store.CreateTenant(b.ctx, storage.CreateTenantParams{Name: "acme"})
		noErr(t, "CreateTenant", err)
		if tn.ID == "" || tn.Name != "acme" {
			t.Fatalf("CreateTenant = %+v", tn)
		}
		recent(t, "CreatedAt", tn.CreatedAt)
		got, err := b.store.GetTenant(b.ctx, tn.ID)
		noErr(t, "GetTenant", err)
		equal(t, "GetTenant", got, tn)
		got, err = b.store.GetTenantByName(b.ctx, "acme")
		noErr(t, "GetTenantByName", err)
		equal(t, "GetTenantByName", got, tn)
	}},
	{"ok/tenant/ids-unique", func(t *testing.T, b bundle) {
		if b.a.ID == b.b.ID {
			t.Fatalf("two tenants share id %s", b.a.ID)
		}
	}},
	{"ok/tenant/list-oldest-first", func(t *testing.T, b bundle) {
		c := mustTenant(t, b, "tenant-c")
		got, err := b.store.ListTenants(b.ctx)
		noErr(t, "ListTenants", err)
		equal(t, "ListTenants", got, []storage.Tenant{b.a, b.b, c})
	}},
	{"fail/tenant/duplicate-name", func(t *testing.T, b bundle) {
		_, err := b.store.CreateTenant(b.ctx, storage.CreateTenantParams{Name: b.a.Name})
		wantErr(t, "CreateTenant with a taken name", err, storage.ErrConflict)
	}},
	{"fail/tenant/empty-name", func(t *testing.T, b bundle) {
		if _, err := b.store.CreateTenant(b.ctx, storage.CreateTenantParams{}); err == nil {
			t.Fatal("CreateTenant with no name succeeded")
		}
	}},
	{"fail/tenant/get-missing", func(t *testing.T, b bundle) {
		_, err := b.store.GetTenant(b.ctx, "ten_missing")
		wantErr(t, "GetTenant", err, storage.ErrNotFound)
		_, err = b.store.GetTenantByName(b.ctx, "missing")
		wantErr(t, "GetTenantByName", err, storage.ErrNotFound)
	}},
}

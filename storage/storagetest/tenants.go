package storagetest

import (
	"crypto/sha256"
	"errors"
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
	{"ok/tenant/with-first-key", func(t *testing.T, b bundle) {
		h := sha256.Sum256([]byte("first key"))
		tn, err := b.store.CreateTenant(b.ctx, storage.CreateTenantParams{Name: "acme",
			FirstKey: &storage.CreateAPIKeyParams{Name: "default", Prefix: "hgk_first", Hash: h[:], Role: storage.RoleAdmin}})
		noErr(t, "CreateTenant with a first key", err)
		k, err := b.store.LookupAPIKey(b.ctx, h[:])
		noErr(t, "LookupAPIKey", err)
		if k.TenantID != tn.ID || k.Role != storage.RoleAdmin || k.Name != "default" {
			t.Fatalf("first key %+v of tenant %s", k, tn.ID)
		}
	}},
	{"fail/tenant/first-key-conflict-leaves-no-tenant", func(t *testing.T, b bundle) {
		// The first key's hash is taken: neither the tenant nor the key is
		// stored, and a retry with another key takes the name.
		h := sha256.Sum256([]byte("taken"))
		_, err := b.store.CreateAPIKey(b.ctx, storage.CreateAPIKeyParams{TenantID: b.a.ID, Name: "k", Prefix: "hgk_taken", Hash: h[:]})
		noErr(t, "CreateAPIKey", err)
		_, err = b.store.CreateTenant(b.ctx, storage.CreateTenantParams{Name: "acme",
			FirstKey: &storage.CreateAPIKeyParams{Name: "default", Prefix: "hgk_taken", Hash: h[:]}})
		if !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("CreateTenant with a taken key hash: %v, want ErrConflict", err)
		}
		if _, err := b.store.GetTenantByName(b.ctx, "acme"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("the tenant exists after its key failed: %v", err)
		}
		h2 := sha256.Sum256([]byte("fresh"))
		_, err = b.store.CreateTenant(b.ctx, storage.CreateTenantParams{Name: "acme",
			FirstKey: &storage.CreateAPIKeyParams{Name: "default", Prefix: "hgk_fresh", Hash: h2[:]}})
		noErr(t, "retry", err)
	}},
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

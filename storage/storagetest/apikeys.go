package storagetest

import (
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate/storage"
)

var apiKeyTests = []test{
	{"ok/apikey/roles", func(t *testing.T, b bundle) {
		for _, tc := range []struct{ give, want string }{{"", storage.RoleClient}, {storage.RoleClient, storage.RoleClient}, {storage.RoleAdmin, storage.RoleAdmin}} {
			secret := "role-" + tc.give
			k, err := b.store.CreateAPIKey(b.ctx, storage.CreateAPIKeyParams{TenantID: b.a.ID, Name: "k", Prefix: "k", Hash: hashOf(secret), Role: tc.give})
			noErr(t, "CreateAPIKey", err)
			got, err := b.store.LookupAPIKey(b.ctx, hashOf(secret))
			noErr(t, "LookupAPIKey", err)
			if k.Role != tc.want || got.Role != tc.want {
				t.Fatalf("role %q stored as %q, looked up as %q; want %q", tc.give, k.Role, got.Role, tc.want)
			}
		}
	}},
	{"fail/apikey/unknown-role", func(t *testing.T, b bundle) {
		_, err := b.store.CreateAPIKey(b.ctx, storage.CreateAPIKeyParams{TenantID: b.a.ID, Name: "k", Prefix: "k", Hash: hashOf("bad-role"), Role: "root"})
		if err == nil {
			t.Fatal("CreateAPIKey accepted role \"root\"")
		}
	}},
	{"ok/apikey/last-used-at-most-once-per-resolution", func(t *testing.T, b bundle) {
		var mu sync.Mutex
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
		s := b.open(t, clock)
		tn, err := s.CreateTenant(b.ctx, storage.CreateTenantParams{Name: "clocked"})
		noErr(t, "CreateTenant", err)
		_, err = s.CreateAPIKey(b.ctx, storage.CreateAPIKeyParams{TenantID: tn.ID, Name: "k", Prefix: "k", Hash: hashOf("clocked")})
		noErr(t, "CreateAPIKey", err)
		used := func() time.Time {
			t.Helper()
			k, err := s.LookupAPIKey(b.ctx, hashOf("clocked"))
			noErr(t, "LookupAPIKey", err)
			list, err := s.ListAPIKeys(b.ctx, tn.ID)
			noErr(t, "ListAPIKeys", err)
			if k.LastUsedAt == nil || list[0].LastUsedAt == nil || !k.LastUsedAt.Equal(*list[0].LastUsedAt) {
				t.Fatalf("LookupAPIKey says %v, stored %v", k.LastUsedAt, list[0].LastUsedAt)
			}
			return *k.LastUsedAt
		}
		first := used()
		if !first.Equal(clock()) {
			t.Fatalf("first use %v, want %v", first, clock())
		}
		advance(storage.APIKeyUseResolution / 2)
		if got := used(); !got.Equal(first) {
			t.Fatalf("use within the resolution moved LastUsedAt to %v", got)
		}
		advance(storage.APIKeyUseResolution)
		if got := used(); !got.Equal(clock()) {
			t.Fatalf("use after the resolution: LastUsedAt %v, want %v", got, clock())
		}
	}},
	{"ok/apikey/create-lookup", func(t *testing.T, b bundle) {
		k := mustAPIKey(t, b, b.a.ID, "secret-one")
		if k.ID == "" || k.TenantID != b.a.ID || k.Name != "key secret-one" || k.Prefix != "secr" {
			t.Fatalf("CreateAPIKey = %+v", k)
		}
		recent(t, "CreatedAt", k.CreatedAt)
		if k.RevokedAt != nil || k.LastUsedAt != nil {
			t.Fatalf("new key has RevokedAt %v, LastUsedAt %v", k.RevokedAt, k.LastUsedAt)
		}
		got, err := b.store.LookupAPIKey(b.ctx, hashOf("secret-one"))
		noErr(t, "LookupAPIKey", err)
		if got.ID != k.ID || got.TenantID != b.a.ID || !got.CreatedAt.Equal(k.CreatedAt) {
			t.Fatalf("LookupAPIKey = %+v, want %+v", got, k)
		}
		if got.LastUsedAt == nil {
			t.Fatal("LookupAPIKey did not record LastUsedAt")
		}
		recent(t, "LastUsedAt", *got.LastUsedAt)
		list, err := b.store.ListAPIKeys(b.ctx, b.a.ID)
		noErr(t, "ListAPIKeys", err)
		equal(t, "ListAPIKeys", list, []storage.APIKey{got})
	}},
	{"ok/apikey/list-oldest-first-with-revoked", func(t *testing.T, b bundle) {
		k1 := mustAPIKey(t, b, b.a.ID, "secret-one")
		k2 := mustAPIKey(t, b, b.a.ID, "secret-two")
		mustAPIKey(t, b, b.b.ID, "secret-bbb")
		noErr(t, "RevokeAPIKey", b.store.RevokeAPIKey(b.ctx, b.a.ID, k1.ID))
		list, err := b.store.ListAPIKeys(b.ctx, b.a.ID)
		noErr(t, "ListAPIKeys", err)
		if len(list) != 2 || list[0].ID != k1.ID || list[1].ID != k2.ID {
			t.Fatalf("ListAPIKeys = %+v, want [%s %s]", list, k1.ID, k2.ID)
		}
		if list[0].RevokedAt == nil || list[1].RevokedAt != nil {
			t.Fatalf("RevokedAt: %v, %v; want set, nil", list[0].RevokedAt, list[1].RevokedAt)
		}
	}},
	{"ok/apikey/list-empty", func(t *testing.T, b bundle) {
		mustAPIKey(t, b, b.a.ID, "secret-one")
		list, err := b.store.ListAPIKeys(b.ctx, b.b.ID)
		noErr(t, "ListAPIKeys", err)
		if len(list) != 0 {
			t.Fatalf("tenant b sees %+v", list)
		}
	}},
	{"ok/apikey/revoke-twice", func(t *testing.T, b bundle) {
		k := mustAPIKey(t, b, b.a.ID, "secret-one")
		noErr(t, "RevokeAPIKey", b.store.RevokeAPIKey(b.ctx, b.a.ID, k.ID))
		first, err := b.store.ListAPIKeys(b.ctx, b.a.ID)
		noErr(t, "ListAPIKeys", err)
		noErr(t, "second RevokeAPIKey", b.store.RevokeAPIKey(b.ctx, b.a.ID, k.ID))
		second, err := b.store.ListAPIKeys(b.ctx, b.a.ID)
		noErr(t, "ListAPIKeys", err)
		if first[0].RevokedAt == nil {
			t.Fatal("RevokedAt not set")
		}
		recent(t, "RevokedAt", *first[0].RevokedAt)
		equal(t, "keys after second revoke", second, first)
	}},
	{"fail/apikey/revoked-not-found", func(t *testing.T, b bundle) {
		k := mustAPIKey(t, b, b.a.ID, "secret-one")
		noErr(t, "RevokeAPIKey", b.store.RevokeAPIKey(b.ctx, b.a.ID, k.ID))
		_, err := b.store.LookupAPIKey(b.ctx, hashOf("secret-one"))
		wantErr(t, "LookupAPIKey of a revoked key", err, storage.ErrNotFound)
	}},
	{"fail/apikey/lookup-unknown", func(t *testing.T, b bundle) {
		mustAPIKey(t, b, b.a.ID, "secret-one")
		_, err := b.store.LookupAPIKey(b.ctx, hashOf("secret-two"))
		wantErr(t, "LookupAPIKey", err, storage.ErrNotFound)
		_, err = b.store.LookupAPIKey(b.ctx, []byte("short"))
		wantErr(t, "LookupAPIKey with a short hash", err, storage.ErrNotFound)
		_, err = b.store.LookupAPIKey(b.ctx, nil)
		wantErr(t, "LookupAPIKey with no hash", err, storage.ErrNotFound)
	}},
	{"fail/apikey/duplicate-hash", func(t *testing.T, b bundle) {
		mustAPIKey(t, b, b.a.ID, "secret-one")
		_, err := b.store.CreateAPIKey(b.ctx, storage.CreateAPIKeyParams{
			TenantID: b.b.ID, Name: "copy", Prefix: "secr", Hash: hashOf("secret-one"),
		})
		wantErr(t, "CreateAPIKey with a stored hash", err, storage.ErrConflict)
	}},
	{"fail/apikey/missing-tenant", func(t *testing.T, b bundle) {
		_, err := b.store.CreateAPIKey(b.ctx, storage.CreateAPIKeyParams{
			TenantID: "ten_missing", Name: "k", Prefix: "secr", Hash: hashOf("secret-one"),
		})
		wantErr(t, "CreateAPIKey for a missing tenant", err, storage.ErrNotFound)
	}},
	{"fail/apikey/bad-hash", func(t *testing.T, b bundle) {
		_, err := b.store.CreateAPIKey(b.ctx, storage.CreateAPIKeyParams{
			TenantID: b.a.ID, Name: "k", Prefix: "secr", Hash: []byte("not a sha-256"),
		})
		if err == nil {
			t.Fatal("CreateAPIKey with a 13-byte hash succeeded")
		}
	}},
	{"fail/apikey/revoke-other-tenant", func(t *testing.T, b bundle) {
		k := mustAPIKey(t, b, b.a.ID, "secret-one")
		err := b.store.RevokeAPIKey(b.ctx, b.b.ID, k.ID)
		wantErr(t, "RevokeAPIKey by another tenant", err, storage.ErrNotFound)
		_, err = b.store.LookupAPIKey(b.ctx, hashOf("secret-one"))
		noErr(t, "LookupAPIKey after a foreign revoke", err)
	}},
	{"fail/apikey/revoke-missing", func(t *testing.T, b bundle) {
		err := b.store.RevokeAPIKey(b.ctx, b.a.ID, "key_missing")
		wantErr(t, "RevokeAPIKey", err, storage.ErrNotFound)
	}},
}

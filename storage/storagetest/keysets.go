package storagetest

import (
	"testing"
	"time"

	"github.com/hegate/hegate/storage"
)

var keySetTests = []test{
	{"ok/keyset/put-get", func(t *testing.T, b bundle) {
		want := newKeySet(b.a.ID, "keys")
		ks, created, err := b.store.PutKeySet(b.ctx, want)
		noErr(t, "PutKeySet", err)
		if !created {
			t.Fatal("PutKeySet: created false for a new key set")
		}
		recent(t, "CreatedAt", ks.CreatedAt)
		want.CreatedAt = ks.CreatedAt
		equal(t, "PutKeySet", ks, want)
		got, err := b.store.GetKeySet(b.ctx, b.a.ID, want.ID)
		noErr(t, "GetKeySet", err)
		equal(t, "GetKeySet", got, ks)
	}},
	{"ok/keyset/put-idempotent", func(t *testing.T, b bundle) {
		first := mustKeySet(t, b, b.a.ID, "keys")
		again := newKeySet(b.a.ID, "keys")
		again.ParamsID, again.SizeBytes, again.Model = "other", 1, "other-model"
		got, created, err := b.store.PutKeySet(b.ctx, again)
		noErr(t, "second PutKeySet", err)
		if created {
			t.Fatal("second PutKeySet: created true")
		}
		equal(t, "second PutKeySet", got, first)
		stored, err := b.store.GetKeySet(b.ctx, b.a.ID, first.ID)
		noErr(t, "GetKeySet", err)
		equal(t, "GetKeySet after second put", stored, first)
	}},
	{"ok/keyset/same-id-two-tenants", func(t *testing.T, b bundle) {
		ka := mustKeySet(t, b, b.a.ID, "keys")
		kb := mustKeySet(t, b, b.b.ID, "keys")
		if ka.ID != kb.ID || ka.TenantID == kb.TenantID {
			t.Fatalf("key sets %+v and %+v", ka, kb)
		}
		free, err := b.store.DeleteKeySet(b.ctx, b.a.ID, ka.ID)
		noErr(t, "DeleteKeySet", err)
		equal(t, "unreferenced blob while tenant b holds it", free, "")
		got, err := b.store.GetKeySet(b.ctx, b.b.ID, kb.ID)
		noErr(t, "GetKeySet of the other tenant's copy", err)
		equal(t, "other tenant's copy", got, kb)
		free, err = b.store.DeleteKeySet(b.ctx, b.b.ID, kb.ID)
		noErr(t, "DeleteKeySet of the last copy", err)
		equal(t, "unreferenced blob after the last copy", free, kb.BlobKey)
	}},
	{"ok/keyset/list-newest-first", func(t *testing.T, b bundle) {
		k1 := mustKeySet(t, b, b.a.ID, "keys-1")
		time.Sleep(5 * time.Millisecond)
		k2 := mustKeySet(t, b, b.a.ID, "keys-2")
		mustKeySet(t, b, b.b.ID, "keys-b")
		got, err := b.store.ListKeySets(b.ctx, b.a.ID)
		noErr(t, "ListKeySets", err)
		equal(t, "ListKeySets", got, []storage.KeySet{k2, k1})
	}},
	{"ok/keyset/delete", func(t *testing.T, b bundle) {
		ks := mustKeySet(t, b, b.a.ID, "keys")
		free, err := b.store.DeleteKeySet(b.ctx, b.a.ID, ks.ID)
		noErr(t, "DeleteKeySet", err)
		equal(t, "unreferenced blob", free, ks.BlobKey)
		_, err = b.store.GetKeySet(b.ctx, b.a.ID, ks.ID)
		wantErr(t, "GetKeySet after delete", err, storage.ErrNotFound)
		free, err = b.store.DeleteKeySet(b.ctx, b.a.ID, ks.ID)
		wantErr(t, "second DeleteKeySet", err, storage.ErrNotFound)
		equal(t, "unreferenced blob of a failed delete", free, "")
		list, err := b.store.ListKeySets(b.ctx, b.a.ID)
		noErr(t, "ListKeySets", err)
		if len(list) != 0 {
			t.Fatalf("ListKeySets after delete = %+v", list)
		}
	}},
	{"fail/keyset/get-other-tenant", func(t *testing.T, b bundle) {
		ks := mustKeySet(t, b, b.a.ID, "keys")
		_, err := b.store.GetKeySet(b.ctx, b.b.ID, ks.ID)
		wantErr(t, "GetKeySet by another tenant", err, storage.ErrNotFound)
		list, err := b.store.ListKeySets(b.ctx, b.b.ID)
		noErr(t, "ListKeySets", err)
		if len(list) != 0 {
			t.Fatalf("tenant b lists %+v", list)
		}
	}},
	{"fail/keyset/delete-other-tenant", func(t *testing.T, b bundle) {
		ks := mustKeySet(t, b, b.a.ID, "keys")
		free, err := b.store.DeleteKeySet(b.ctx, b.b.ID, ks.ID)
		wantErr(t, "DeleteKeySet by another tenant", err, storage.ErrNotFound)
		equal(t, "unreferenced blob of a foreign delete", free, "")
		_, err = b.store.GetKeySet(b.ctx, b.a.ID, ks.ID)
		noErr(t, "GetKeySet after a foreign delete", err)
	}},
	{"fail/keyset/get-missing", func(t *testing.T, b bundle) {
		_, err := b.store.GetKeySet(b.ctx, b.a.ID, keySetID("nothing"))
		wantErr(t, "GetKeySet", err, storage.ErrNotFound)
	}},
	{"fail/keyset/missing-tenant", func(t *testing.T, b bundle) {
		_, _, err := b.store.PutKeySet(b.ctx, newKeySet("ten_missing", "keys"))
		wantErr(t, "PutKeySet for a missing tenant", err, storage.ErrNotFound)
	}},
}

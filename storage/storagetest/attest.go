package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// maxDocBytes is the documented limit of AttestationDoc.Document and
// Policy.Document: 1 MiB.
const maxDocBytes = 1 << 20

// deviceIDRE is the documented shape of a storage.DeviceID.
var deviceIDRE = regexp.MustCompile(`^dev_[a-z2-7]{26}$`)

// nonce returns a distinct 32-byte challenge nonce (or proof id) for s.
func nonce(s string) []byte {
	return hashOf("nonce " + s)
}

func mustChallenge(t *testing.T, b bundle, tenant hegate.TenantID, n []byte, expires time.Time) {
	t.Helper()
	noErr(t, "CreateChallenge", b.store.CreateChallenge(b.ctx, storage.Challenge{TenantID: tenant, Nonce: n, ExpiresAt: expires}))
}

// enrollParams are the params of a device of tenant with instance id
// instance, bound to the key thumbprint key.
func enrollParams(tenant hegate.TenantID, instance, key string) storage.EnrollDeviceParams {
	return storage.EnrollDeviceParams{
		TenantID: tenant, Format: "native", InstanceID: instance, KeyThumbprint: key,
		AttestationStatus: "affirming",
		Result:            []byte(`{"status":"affirming","instance":"` + instance + `"}`),
		Clock:             []byte(`{"clock":1}`),
	}
}

func mustEnroll(t *testing.T, b bundle, p storage.EnrollDeviceParams) storage.Device {
	t.Helper()
	d, err := b.store.EnrollDevice(b.ctx, p)
	noErr(t, "EnrollDevice", err)
	return d
}

// signingKey is a signing key named id, with key bytes derived from it.
func signingKey(id string) storage.SigningKey {
	return storage.SigningKey{
		ID: id, Algorithm: "EdDSA", PrivateKey: hashOf("private " + id), PublicKey: hashOf("public " + id),
	}
}

// stored is k as ListSigningKeys returns it, created at created, retired
// at retired until until (nil: not retired).
func stored(k storage.SigningKey, created time.Time, retired, until *time.Time) storage.SigningKey {
	k.CreatedAt, k.RetiredAt, k.VerifyUntil = created, retired, until
	return k
}

func mustSigningKeys(t *testing.T, b bundle, now time.Time) []storage.SigningKey {
	t.Helper()
	keys, err := b.store.ListSigningKeys(b.ctx, now)
	noErr(t, "ListSigningKeys", err)
	return keys
}

// race runs f from n goroutines released together and returns their
// errors.
func race(n int, f func() error) []error {
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f()
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// wantOneWinner fails unless exactly one of errs is nil and every other
// one is ErrConflict.
func wantOneWinner(t *testing.T, what string, errs []error) {
	t.Helper()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, storage.ErrConflict):
			t.Fatalf("%s: error %v, want nil or ErrConflict", what, err)
		}
	}
	if won != 1 {
		t.Fatalf("%s: %d of %d calls succeeded, want exactly 1", what, won, len(errs))
	}
}

func at(t time.Time) *time.Time { return &t }

var attestTests = []test{
	{"ok/challenge/create-redeem-once", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		created := clk.Now()
		n := nonce("one")
		// The caller's CreatedAt is ignored: the store stamps it.
		noErr(t, "CreateChallenge", b.store.CreateChallenge(b.ctx, storage.Challenge{
			TenantID: b.a.ID, Nonce: n, CreatedAt: created.Add(-time.Hour), ExpiresAt: created.Add(5 * time.Minute),
		}))
		clk.advance(time.Minute)
		c, err := b.store.RedeemChallenge(b.ctx, b.a.ID, n)
		noErr(t, "RedeemChallenge", err)
		equal(t, "RedeemChallenge", c, storage.Challenge{
			Nonce: n, TenantID: b.a.ID, CreatedAt: created, ExpiresAt: created.Add(5 * time.Minute),
		})
		_, err = b.store.RedeemChallenge(b.ctx, b.a.ID, n)
		wantErr(t, "RedeemChallenge again", err, storage.ErrConflict)
		err = b.store.CreateChallenge(b.ctx, storage.Challenge{TenantID: b.a.ID, Nonce: n, ExpiresAt: created.Add(time.Hour)})
		wantErr(t, "CreateChallenge of a redeemed nonce", err, storage.ErrConflict)
		_, err = b.store.RedeemChallenge(b.ctx, b.a.ID, n)
		wantErr(t, "RedeemChallenge after the refused CreateChallenge", err, storage.ErrConflict)
		_, err = b.store.RedeemChallenge(b.ctx, b.a.ID, nonce("never issued"))
		wantErr(t, "RedeemChallenge of a nonce never issued", err, storage.ErrNotFound)
	}},
	{"ok/challenge/expired-is-redeemed", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		n := nonce("late")
		expires := clk.Now().Add(time.Minute)
		mustChallenge(t, b, b.a.ID, n, expires)
		clk.advance(time.Hour)
		c, err := b.store.RedeemChallenge(b.ctx, b.a.ID, n)
		noErr(t, "RedeemChallenge of an expired challenge", err)
		if !c.ExpiresAt.Equal(expires) || !bytes.Equal(c.Nonce, n) {
			t.Fatalf("RedeemChallenge of an expired challenge: %+v, want it with ExpiresAt %v", c, expires)
		}
		_, err = b.store.RedeemChallenge(b.ctx, b.a.ID, n)
		wantErr(t, "RedeemChallenge of an expired challenge again", err, storage.ErrConflict)
	}},
	{"fail/challenge/other-tenant", func(t *testing.T, b bundle) {
		n := nonce("a's")
		mustChallenge(t, b, b.a.ID, n, time.Now().Add(time.Hour))
		_, err := b.store.RedeemChallenge(b.ctx, b.b.ID, n)
		wantErr(t, "RedeemChallenge by another tenant", err, storage.ErrNotFound)
		// Tenant b's attempt spent nothing.
		c, err := b.store.RedeemChallenge(b.ctx, b.a.ID, n)
		noErr(t, "RedeemChallenge by its tenant", err)
		if c.TenantID != b.a.ID {
			t.Fatalf("RedeemChallenge: tenant %s, want %s", c.TenantID, b.a.ID)
		}
		_, err = b.store.RedeemChallenge(b.ctx, b.b.ID, n)
		wantErr(t, "RedeemChallenge of a redeemed challenge by another tenant", err, storage.ErrNotFound)
		// Nonces are unique across tenants.
		err = b.store.CreateChallenge(b.ctx, storage.Challenge{TenantID: b.b.ID, Nonce: n, ExpiresAt: time.Now().Add(time.Hour)})
		wantErr(t, "CreateChallenge of another tenant's nonce", err, storage.ErrConflict)
	}},
	{"fail/challenge/params", func(t *testing.T, b bundle) {
		later := time.Now().Add(time.Hour)
		for name, c := range map[string]storage.Challenge{
			"no tenant": {Nonce: nonce("x"), ExpiresAt: later},
			"no nonce":  {TenantID: b.a.ID, ExpiresAt: later},
			"no expiry": {TenantID: b.a.ID, Nonce: nonce("x")},
		} {
			if err := b.store.CreateChallenge(b.ctx, c); err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) {
				t.Errorf("CreateChallenge with %s: %v, want a validation error", name, err)
			}
		}
		err := b.store.CreateChallenge(b.ctx, storage.Challenge{TenantID: "ten_missing", Nonce: nonce("x"), ExpiresAt: later})
		wantErr(t, "CreateChallenge for a missing tenant", err, storage.ErrNotFound)
		_, err = b.store.RedeemChallenge(b.ctx, b.a.ID, nonce("x"))
		wantErr(t, "RedeemChallenge after refused CreateChallenges", err, storage.ErrNotFound)
	}},
	{"ok/challenge/concurrent-redeem", func(t *testing.T, b bundle) {
		n := nonce("contested")
		mustChallenge(t, b, b.a.ID, n, time.Now().Add(time.Hour))
		var (
			mu  sync.Mutex
			got []storage.Challenge
		)
		errs := race(16, func() error {
			c, err := b.store.RedeemChallenge(b.ctx, b.a.ID, n)
			if err == nil {
				mu.Lock()
				got = append(got, c)
				mu.Unlock()
			}
			return err
		})
		wantOneWinner(t, "concurrent RedeemChallenge", errs)
		if !bytes.Equal(got[0].Nonce, n) || got[0].TenantID != b.a.ID {
			t.Fatalf("the winner redeemed %+v", got[0])
		}
	}},
	{"ok/challenge/delete-expired", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		now := clk.Now()
		cutoff := now.Add(time.Minute)
		mustChallenge(t, b, b.a.ID, nonce("expired"), now)
		mustChallenge(t, b, b.b.ID, nonce("expired, redeemed"), now.Add(time.Second))
		if _, err := b.store.RedeemChallenge(b.ctx, b.b.ID, nonce("expired, redeemed")); err != nil {
			t.Fatalf("RedeemChallenge: %v", err)
		}
		mustChallenge(t, b, b.a.ID, nonce("at the cutoff"), cutoff)
		mustChallenge(t, b, b.a.ID, nonce("valid"), now.Add(time.Hour))
		n, err := b.store.DeleteExpiredChallenges(b.ctx, cutoff)
		noErr(t, "DeleteExpiredChallenges", err)
		if n != 2 {
			t.Fatalf("DeleteExpiredChallenges deleted %d, want 2", n)
		}
		_, err = b.store.RedeemChallenge(b.ctx, b.a.ID, nonce("expired"))
		wantErr(t, "RedeemChallenge of a deleted challenge", err, storage.ErrNotFound)
		_, err = b.store.RedeemChallenge(b.ctx, b.b.ID, nonce("expired, redeemed"))
		wantErr(t, "RedeemChallenge of a deleted, redeemed challenge", err, storage.ErrNotFound)
		for _, s := range []string{"at the cutoff", "valid"} {
			_, err = b.store.RedeemChallenge(b.ctx, b.a.ID, nonce(s))
			noErr(t, "RedeemChallenge of the "+s+" challenge", err)
		}
		n, err = b.store.DeleteExpiredChallenges(b.ctx, cutoff)
		noErr(t, "DeleteExpiredChallenges again", err)
		if n != 0 {
			t.Fatalf("DeleteExpiredChallenges again deleted %d, want 0", n)
		}
	}},

	{"ok/attest-doc/put-get-list-delete", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		first := clk.Now()
		// Stored exactly as given: whitespace, key order and all.
		raw := []byte("{ \"roots\" : [\"b\", \"a\"] }\n")
		put := func(format, kind string, doc []byte, by string) storage.AttestationDoc {
			t.Helper()
			d, err := b.store.PutAttestationDoc(b.ctx, storage.AttestationDoc{
				TenantID: b.a.ID, Format: format, Kind: kind, Document: doc, UpdatedBy: by,
				UpdatedAt: first.Add(-time.Hour), // ignored
			})
			noErr(t, "PutAttestationDoc", err)
			return d
		}
		tpmEnd := put("tpm", storage.DocEndorsements, raw, "cli")
		want := storage.AttestationDoc{
			TenantID: b.a.ID, Format: "tpm", Kind: storage.DocEndorsements, Document: raw, UpdatedAt: first, UpdatedBy: "cli",
		}
		equal(t, "PutAttestationDoc", tpmEnd, want)
		got, err := b.store.GetAttestationDoc(b.ctx, b.a.ID, "tpm", storage.DocEndorsements)
		noErr(t, "GetAttestationDoc", err)
		equal(t, "GetAttestationDoc", got, want)
		_, err = b.store.GetAttestationDoc(b.ctx, b.a.ID, "tpm", storage.DocReferenceValues)
		wantErr(t, "GetAttestationDoc of the other kind", err, storage.ErrNotFound)

		tpmRef := put("tpm", storage.DocReferenceValues, []byte(`{"pcrs":{}}`), "key:key_a")
		nativeEnd := put("native", storage.DocEndorsements, []byte(`{"keys":[]}`), "key:key_a")

		// Replace one.
		later := clk.advance(time.Hour)
		tpmEnd = put("tpm", storage.DocEndorsements, []byte(`{"roots":[]}`), "key:key_b")
		equal(t, "PutAttestationDoc again", tpmEnd, storage.AttestationDoc{
			TenantID: b.a.ID, Format: "tpm", Kind: storage.DocEndorsements, Document: []byte(`{"roots":[]}`),
			UpdatedAt: later, UpdatedBy: "key:key_b",
		})
		got, err = b.store.GetAttestationDoc(b.ctx, b.a.ID, "tpm", storage.DocEndorsements)
		noErr(t, "GetAttestationDoc after the replace", err)
		equal(t, "GetAttestationDoc after the replace", got, tpmEnd)

		list, err := b.store.ListAttestationDocs(b.ctx, b.a.ID)
		noErr(t, "ListAttestationDocs", err)
		equal(t, "ListAttestationDocs (by format, then kind)", list, []storage.AttestationDoc{nativeEnd, tpmEnd, tpmRef})

		noErr(t, "DeleteAttestationDoc", b.store.DeleteAttestationDoc(b.ctx, b.a.ID, "tpm", storage.DocEndorsements))
		_, err = b.store.GetAttestationDoc(b.ctx, b.a.ID, "tpm", storage.DocEndorsements)
		wantErr(t, "GetAttestationDoc after DeleteAttestationDoc", err, storage.ErrNotFound)
		err = b.store.DeleteAttestationDoc(b.ctx, b.a.ID, "tpm", storage.DocEndorsements)
		wantErr(t, "DeleteAttestationDoc again", err, storage.ErrNotFound)
		list, err = b.store.ListAttestationDocs(b.ctx, b.a.ID)
		noErr(t, "ListAttestationDocs", err)
		equal(t, "ListAttestationDocs after DeleteAttestationDoc", list, []storage.AttestationDoc{nativeEnd, tpmRef})
	}},
	{"fail/attest-doc/params", func(t *testing.T, b bundle) {
		good := storage.AttestationDoc{
			TenantID: b.a.ID, Format: "psa", Kind: storage.DocReferenceValues, Document: []byte(`{}`), UpdatedBy: "cli",
		}
		with := func(f func(d *storage.AttestationDoc)) storage.AttestationDoc {
			d := good
			f(&d)
			return d
		}
		for name, d := range map[string]storage.AttestationDoc{
			"no tenant":      with(func(d *storage.AttestationDoc) { d.TenantID = "" }),
			"no format":      with(func(d *storage.AttestationDoc) { d.Format = "" }),
			"no kind":        with(func(d *storage.AttestationDoc) { d.Kind = "" }),
			"unknown kind":   with(func(d *storage.AttestationDoc) { d.Kind = "policy" }),
			"empty document": with(func(d *storage.AttestationDoc) { d.Document = nil }),
			"no actor":       with(func(d *storage.AttestationDoc) { d.UpdatedBy = "" }),
		} {
			if got, err := b.store.PutAttestationDoc(b.ctx, d); err == nil || errors.Is(err, storage.ErrNotFound) {
				t.Errorf("PutAttestationDoc with %s: %+v, %v; want a validation error", name, got, err)
			}
		}
		_, err := b.store.PutAttestationDoc(b.ctx, with(func(d *storage.AttestationDoc) { d.Document = make([]byte, maxDocBytes+1) }))
		wantErr(t, "PutAttestationDoc of 1 MiB + 1", err, storage.ErrTooLarge)
		_, err = b.store.PutAttestationDoc(b.ctx, with(func(d *storage.AttestationDoc) { d.TenantID = "ten_missing" }))
		wantErr(t, "PutAttestationDoc for a missing tenant", err, storage.ErrNotFound)
		list, err := b.store.ListAttestationDocs(b.ctx, b.a.ID)
		noErr(t, "ListAttestationDocs", err)
		equal(t, "ListAttestationDocs after refused puts", list, []storage.AttestationDoc{})

		big := bytes.Repeat([]byte("x"), maxDocBytes)
		d, err := b.store.PutAttestationDoc(b.ctx, with(func(d *storage.AttestationDoc) { d.Document = big }))
		noErr(t, "PutAttestationDoc of 1 MiB", err)
		got, err := b.store.GetAttestationDoc(b.ctx, b.a.ID, "psa", storage.DocReferenceValues)
		noErr(t, "GetAttestationDoc of 1 MiB", err)
		if !bytes.Equal(got.Document, big) || !bytes.Equal(d.Document, big) {
			t.Fatalf("the 1 MiB document came back as %d and %d bytes", len(got.Document), len(d.Document))
		}
	}},
	{"fail/attest-doc/other-tenant", func(t *testing.T, b bundle) {
		mine, err := b.store.PutAttestationDoc(b.ctx, storage.AttestationDoc{
			TenantID: b.a.ID, Format: "tpm", Kind: storage.DocEndorsements, Document: []byte(`{"a":1}`), UpdatedBy: "cli",
		})
		noErr(t, "PutAttestationDoc", err)
		_, err = b.store.GetAttestationDoc(b.ctx, b.b.ID, "tpm", storage.DocEndorsements)
		wantErr(t, "GetAttestationDoc by another tenant", err, storage.ErrNotFound)
		err = b.store.DeleteAttestationDoc(b.ctx, b.b.ID, "tpm", storage.DocEndorsements)
		wantErr(t, "DeleteAttestationDoc by another tenant", err, storage.ErrNotFound)
		list, err := b.store.ListAttestationDocs(b.ctx, b.b.ID)
		noErr(t, "ListAttestationDocs", err)
		equal(t, "tenant b's documents", list, []storage.AttestationDoc{})
		// Tenant b's own document of the same format and kind is another row.
		theirs, err := b.store.PutAttestationDoc(b.ctx, storage.AttestationDoc{
			TenantID: b.b.ID, Format: "tpm", Kind: storage.DocEndorsements, Document: []byte(`{"b":2}`), UpdatedBy: "cli",
		})
		noErr(t, "PutAttestationDoc by tenant b", err)
		got, err := b.store.GetAttestationDoc(b.ctx, b.a.ID, "tpm", storage.DocEndorsements)
		noErr(t, "GetAttestationDoc", err)
		equal(t, "tenant a's document", got, mine)
		got, err = b.store.GetAttestationDoc(b.ctx, b.b.ID, "tpm", storage.DocEndorsements)
		noErr(t, "GetAttestationDoc by tenant b", err)
		equal(t, "tenant b's document", got, theirs)
	}},

	{"ok/policy/put-get-list-delete", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		first := clk.Now()
		put := func(model hegate.ModelID, doc string) storage.Policy {
			t.Helper()
			p, err := b.store.PutPolicy(b.ctx, storage.Policy{
				TenantID: b.a.ID, Model: model, Document: []byte(doc), UpdatedBy: "cli", UpdatedAt: first.Add(-time.Hour),
			})
			noErr(t, "PutPolicy", err)
			return p
		}
		m2 := put("m2", `{"allow":["tpm"]}`)
		def := put("", " {\"allow\": [\"native\"]} ")
		equal(t, "PutPolicy of the default", def, storage.Policy{
			TenantID: b.a.ID, Model: "", Document: []byte(" {\"allow\": [\"native\"]} "), UpdatedAt: first, UpdatedBy: "cli",
		})
		m1 := put("m1", `{}`)
		got, err := b.store.GetPolicy(b.ctx, b.a.ID, "")
		noErr(t, "GetPolicy of the default", err)
		equal(t, "GetPolicy of the default", got, def)
		_, err = b.store.GetPolicy(b.ctx, b.a.ID, "m3")
		wantErr(t, "GetPolicy of a model without one", err, storage.ErrNotFound)

		later := clk.advance(time.Minute)
		m1 = put("m1", `{"allow":[]}`)
		equal(t, "PutPolicy again", m1, storage.Policy{
			TenantID: b.a.ID, Model: "m1", Document: []byte(`{"allow":[]}`), UpdatedAt: later, UpdatedBy: "cli",
		})
		list, err := b.store.ListPolicies(b.ctx, b.a.ID)
		noErr(t, "ListPolicies", err)
		equal(t, "ListPolicies (default first, then by model)", list, []storage.Policy{def, m1, m2})

		noErr(t, "DeletePolicy of the default", b.store.DeletePolicy(b.ctx, b.a.ID, ""))
		_, err = b.store.GetPolicy(b.ctx, b.a.ID, "")
		wantErr(t, "GetPolicy after DeletePolicy", err, storage.ErrNotFound)
		wantErr(t, "DeletePolicy again", b.store.DeletePolicy(b.ctx, b.a.ID, ""), storage.ErrNotFound)
		list, err = b.store.ListPolicies(b.ctx, b.a.ID)
		noErr(t, "ListPolicies", err)
		equal(t, "ListPolicies after DeletePolicy", list, []storage.Policy{m1, m2})
	}},
	{"fail/policy/params", func(t *testing.T, b bundle) {
		good := storage.Policy{TenantID: b.a.ID, Model: "m", Document: []byte(`{}`), UpdatedBy: "cli"}
		with := func(f func(p *storage.Policy)) storage.Policy {
			p := good
			f(&p)
			return p
		}
		for name, p := range map[string]storage.Policy{
			"no tenant":      with(func(p *storage.Policy) { p.TenantID = "" }),
			"empty document": with(func(p *storage.Policy) { p.Document = []byte{} }),
			"no actor":       with(func(p *storage.Policy) { p.UpdatedBy = "" }),
			"long actor":     with(func(p *storage.Policy) { p.UpdatedBy = strings.Repeat("a", storage.MaxActorBytes+1) }),
		} {
			if got, err := b.store.PutPolicy(b.ctx, p); err == nil || errors.Is(err, storage.ErrNotFound) {
				t.Errorf("PutPolicy with %s: %+v, %v; want a validation error", name, got, err)
			}
		}
		_, err := b.store.PutPolicy(b.ctx, with(func(p *storage.Policy) { p.Document = make([]byte, maxDocBytes+1) }))
		wantErr(t, "PutPolicy of 1 MiB + 1", err, storage.ErrTooLarge)
		_, err = b.store.PutPolicy(b.ctx, with(func(p *storage.Policy) { p.TenantID = "ten_missing" }))
		wantErr(t, "PutPolicy for a missing tenant", err, storage.ErrNotFound)
		list, err := b.store.ListPolicies(b.ctx, b.a.ID)
		noErr(t, "ListPolicies", err)
		equal(t, "ListPolicies after refused puts", list, []storage.Policy{})
		_, err = b.store.PutPolicy(b.ctx, with(func(p *storage.Policy) { p.Document = make([]byte, maxDocBytes) }))
		noErr(t, "PutPolicy of 1 MiB", err)
	}},
	{"fail/policy/other-tenant", func(t *testing.T, b bundle) {
		mine, err := b.store.PutPolicy(b.ctx, storage.Policy{TenantID: b.a.ID, Document: []byte(`{"a":1}`), UpdatedBy: "cli"})
		noErr(t, "PutPolicy", err)
		_, err = b.store.GetPolicy(b.ctx, b.b.ID, "")
		wantErr(t, "GetPolicy by another tenant", err, storage.ErrNotFound)
		wantErr(t, "DeletePolicy by another tenant", b.store.DeletePolicy(b.ctx, b.b.ID, ""), storage.ErrNotFound)
		list, err := b.store.ListPolicies(b.ctx, b.b.ID)
		noErr(t, "ListPolicies", err)
		equal(t, "tenant b's policies", list, []storage.Policy{})
		got, err := b.store.GetPolicy(b.ctx, b.a.ID, "")
		noErr(t, "GetPolicy", err)
		equal(t, "tenant a's policy", got, mine)
	}},

	{"ok/device/enroll-and-again", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		first := clk.Now()
		p := enrollParams(b.a.ID, "instance-1", "aa11")
		d := mustEnroll(t, b, p)
		if !deviceIDRE.MatchString(string(d.ID)) {
			t.Fatalf("EnrollDevice: id %q, want match %s", d.ID, deviceIDRE)
		}
		want := storage.Device{
			ID: d.ID, TenantID: b.a.ID, Format: "native", InstanceID: "instance-1", KeyThumbprint: "aa11",
			Status: storage.DeviceActive, AttestationStatus: "affirming", Result: p.Result, Clock: p.Clock,
			EnrolledAt: first, AttestedAt: first,
		}
		equal(t, "EnrollDevice", d, want)
		got, err := b.store.GetDevice(b.ctx, b.a.ID, d.ID)
		noErr(t, "GetDevice", err)
		equal(t, "GetDevice", got, want)
		got, err = b.store.FindDevice(b.ctx, b.a.ID, "native", "instance-1")
		noErr(t, "FindDevice", err)
		equal(t, "FindDevice", got, want)

		// Seen, then enrolled again with a new key and no clock.
		seen := clk.advance(time.Minute)
		noErr(t, "TouchDevice", b.store.TouchDevice(b.ctx, b.a.ID, d.ID, seen))
		again := clk.advance(time.Hour)
		p2 := p
		p2.KeyThumbprint, p2.AttestationStatus, p2.Result, p2.Clock = "bb22", "warning", []byte(`{"status":"warning"}`), nil
		d2 := mustEnroll(t, b, p2)
		want = storage.Device{
			ID: d.ID, TenantID: b.a.ID, Format: "native", InstanceID: "instance-1", KeyThumbprint: "bb22",
			Status: storage.DeviceActive, AttestationStatus: "warning", Result: p2.Result,
			EnrolledAt: first, AttestedAt: again, LastSeenAt: at(seen),
		}
		equal(t, "EnrollDevice again", d2, want)
		got, err = b.store.GetDevice(b.ctx, b.a.ID, d.ID)
		noErr(t, "GetDevice after enrolling again", err)
		equal(t, "GetDevice after enrolling again", got, want)

		// Another instance, or the same instance in another format, is
		// another device.
		other := mustEnroll(t, b, enrollParams(b.a.ID, "instance-2", "cc33"))
		pf := enrollParams(b.a.ID, "instance-1", "dd44")
		pf.Format = "tpm"
		otherFormat := mustEnroll(t, b, pf)
		if other.ID == d.ID || otherFormat.ID == d.ID || other.ID == otherFormat.ID {
			t.Fatalf("three devices, ids %s, %s, %s", d.ID, other.ID, otherFormat.ID)
		}
		if otherFormat.EnrolledAt != again || otherFormat.Format != "tpm" {
			t.Fatalf("the tpm device: %+v", otherFormat)
		}
	}},
	{"ok/device/list-newest-first", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		var want []storage.Device
		for i := range 3 {
			clk.advance(time.Second)
			want = append([]storage.Device{mustEnroll(t, b, enrollParams(b.a.ID, fmt.Sprintf("i%d", i), "k"))}, want...)
		}
		// Enrolling the oldest again does not move it: the order is by
		// first enrollment.
		clk.advance(time.Second)
		want[2] = mustEnroll(t, b, enrollParams(b.a.ID, "i0", "k2"))
		revoked, err := b.store.RevokeDevice(b.ctx, b.a.ID, want[1].ID)
		noErr(t, "RevokeDevice", err)
		want[1] = revoked
		list, err := b.store.ListDevices(b.ctx, b.a.ID)
		noErr(t, "ListDevices", err)
		equal(t, "ListDevices", list, want)
		list, err = b.store.ListDevices(b.ctx, b.b.ID)
		noErr(t, "ListDevices of tenant b", err)
		equal(t, "tenant b's devices", list, []storage.Device{})
	}},
	{"ok/device/revoke", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		p := enrollParams(b.a.ID, "instance-1", "aa11")
		d := mustEnroll(t, b, p)
		revokedAt := clk.advance(time.Minute)
		r, err := b.store.RevokeDevice(b.ctx, b.a.ID, d.ID)
		noErr(t, "RevokeDevice", err)
		want := d
		want.Status, want.RevokedAt = storage.DeviceRevoked, at(revokedAt)
		equal(t, "RevokeDevice", r, want)

		clk.advance(time.Minute)
		r, err = b.store.RevokeDevice(b.ctx, b.a.ID, d.ID)
		noErr(t, "RevokeDevice again", err)
		equal(t, "RevokeDevice again (unchanged)", r, want)

		// Enrolling again does not undo the revocation, and changes nothing.
		clk.advance(time.Minute)
		p.KeyThumbprint = "ee55"
		_, err = b.store.EnrollDevice(b.ctx, p)
		wantErr(t, "EnrollDevice of a revoked device", err, storage.ErrConflict)
		got, err := b.store.GetDevice(b.ctx, b.a.ID, d.ID)
		noErr(t, "GetDevice", err)
		equal(t, "GetDevice after the refused EnrollDevice", got, want)
		got, err = b.store.FindDevice(b.ctx, b.a.ID, p.Format, p.InstanceID)
		noErr(t, "FindDevice", err)
		equal(t, "FindDevice of a revoked device", got, want)
	}},
	{"ok/device/touch", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		d := mustEnroll(t, b, enrollParams(b.a.ID, "instance-1", "aa11"))
		// The time is the caller's, not the store's clock.
		seen := clk.Now().Add(90 * time.Second)
		noErr(t, "TouchDevice", b.store.TouchDevice(b.ctx, b.a.ID, d.ID, seen))
		got, err := b.store.GetDevice(b.ctx, b.a.ID, d.ID)
		noErr(t, "GetDevice", err)
		want := d
		want.LastSeenAt = at(seen)
		equal(t, "GetDevice after TouchDevice", got, want)
		seen = seen.Add(time.Minute)
		noErr(t, "TouchDevice again", b.store.TouchDevice(b.ctx, b.a.ID, d.ID, seen))
		got, err = b.store.GetDevice(b.ctx, b.a.ID, d.ID)
		noErr(t, "GetDevice", err)
		want.LastSeenAt = at(seen)
		equal(t, "GetDevice after TouchDevice again", got, want)
	}},
	{"fail/device/other-tenant", func(t *testing.T, b bundle) {
		d := mustEnroll(t, b, enrollParams(b.a.ID, "instance-1", "aa11"))
		_, err := b.store.GetDevice(b.ctx, b.b.ID, d.ID)
		wantErr(t, "GetDevice by another tenant", err, storage.ErrNotFound)
		_, err = b.store.FindDevice(b.ctx, b.b.ID, d.Format, d.InstanceID)
		wantErr(t, "FindDevice by another tenant", err, storage.ErrNotFound)
		_, err = b.store.RevokeDevice(b.ctx, b.b.ID, d.ID)
		wantErr(t, "RevokeDevice by another tenant", err, storage.ErrNotFound)
		err = b.store.TouchDevice(b.ctx, b.b.ID, d.ID, time.Now())
		wantErr(t, "TouchDevice by another tenant", err, storage.ErrNotFound)
		got, err := b.store.GetDevice(b.ctx, b.a.ID, d.ID)
		noErr(t, "GetDevice", err)
		equal(t, "tenant a's device after tenant b's attempts", got, d)

		// The same instance enrolled by tenant b is tenant b's own device.
		theirs := mustEnroll(t, b, enrollParams(b.b.ID, "instance-1", "aa11"))
		if theirs.ID == d.ID || theirs.TenantID != b.b.ID {
			t.Fatalf("tenant b's enrollment of the same instance: %+v", theirs)
		}

		for what, err := range map[string]error{
			"GetDevice":  func() error { _, err := b.store.GetDevice(b.ctx, b.a.ID, "dev_missing"); return err }(),
			"FindDevice": func() error { _, err := b.store.FindDevice(b.ctx, b.a.ID, "native", "nobody"); return err }(),
			"RevokeDevice": func() error {
				_, err := b.store.RevokeDevice(b.ctx, b.a.ID, "dev_missing")
				return err
			}(),
			"TouchDevice": b.store.TouchDevice(b.ctx, b.a.ID, "dev_missing", time.Now()),
		} {
			wantErr(t, what+" of a missing device", err, storage.ErrNotFound)
		}
	}},
	{"fail/device/params", func(t *testing.T, b bundle) {
		good := enrollParams(b.a.ID, "instance-1", "aa11")
		with := func(f func(p *storage.EnrollDeviceParams)) storage.EnrollDeviceParams {
			p := good
			f(&p)
			return p
		}
		for name, p := range map[string]storage.EnrollDeviceParams{
			"no tenant":             with(func(p *storage.EnrollDeviceParams) { p.TenantID = "" }),
			"no format":             with(func(p *storage.EnrollDeviceParams) { p.Format = "" }),
			"no instance":           with(func(p *storage.EnrollDeviceParams) { p.InstanceID = "" }),
			"no key thumbprint":     with(func(p *storage.EnrollDeviceParams) { p.KeyThumbprint = "" }),
			"no attestation status": with(func(p *storage.EnrollDeviceParams) { p.AttestationStatus = "" }),
		} {
			if got, err := b.store.EnrollDevice(b.ctx, p); err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) {
				t.Errorf("EnrollDevice with %s: %+v, %v; want a validation error", name, got, err)
			}
		}
		_, err := b.store.EnrollDevice(b.ctx, with(func(p *storage.EnrollDeviceParams) { p.TenantID = "ten_missing" }))
		wantErr(t, "EnrollDevice for a missing tenant", err, storage.ErrNotFound)
		list, err := b.store.ListDevices(b.ctx, b.a.ID)
		noErr(t, "ListDevices", err)
		equal(t, "devices after refused enrollments", list, []storage.Device{})
	}},
	{"ok/device/concurrent-enroll", func(t *testing.T, b bundle) {
		var (
			mu  sync.Mutex
			ids = map[storage.DeviceID]bool{}
		)
		errs := race(8, func() error {
			d, err := b.store.EnrollDevice(b.ctx, enrollParams(b.a.ID, "instance-1", "aa11"))
			if err == nil {
				mu.Lock()
				ids[d.ID] = true
				mu.Unlock()
			}
			return err
		})
		for _, err := range errs {
			noErr(t, "concurrent EnrollDevice", err)
		}
		if len(ids) != 1 {
			t.Fatalf("concurrent EnrollDevice of one instance made devices %v, want one", ids)
		}
	}},

	{"ok/signing-key/create-list-retire", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		t1 := clk.Now()
		k1 := signingKey("k1")
		k1.CreatedAt = t1.Add(-time.Hour) // ignored, as are the retirement fields
		k1.RetiredAt, k1.VerifyUntil = at(t1), at(t1)
		noErr(t, "CreateSigningKey k1", b.store.CreateSigningKey(b.ctx, k1))
		t2 := clk.advance(time.Minute)
		noErr(t, "CreateSigningKey k2", b.store.CreateSigningKey(b.ctx, signingKey("k2")))
		wantErr(t, "CreateSigningKey of an existing kid", b.store.CreateSigningKey(b.ctx, signingKey("k1")), storage.ErrConflict)
		equal(t, "ListSigningKeys (newest first)", mustSigningKeys(t, b, t2), []storage.SigningKey{
			stored(signingKey("k2"), t2, nil, nil), stored(signingKey("k1"), t1, nil, nil),
		})

		// Rotate: k3 signs, k1 and k2 verify for an hour more.
		t3 := clk.advance(time.Minute)
		noErr(t, "CreateSigningKey k3", b.store.CreateSigningKey(b.ctx, signingKey("k3")))
		until := t3.Add(time.Hour)
		noErr(t, "RetireSigningKeys", b.store.RetireSigningKeys(b.ctx, "k3", t3, until))
		retired := []storage.SigningKey{
			stored(signingKey("k3"), t3, nil, nil),
			stored(signingKey("k2"), t2, at(t3), at(until)),
			stored(signingKey("k1"), t1, at(t3), at(until)),
		}
		equal(t, "ListSigningKeys after RetireSigningKeys", mustSigningKeys(t, b, t3), retired)
		equal(t, "ListSigningKeys just before VerifyUntil", mustSigningKeys(t, b, until.Add(-time.Microsecond)), retired)
		equal(t, "ListSigningKeys at VerifyUntil", mustSigningKeys(t, b, until), retired[:1])

		// Rotating again retires only k3: k1 and k2 keep their times.
		t4 := clk.advance(time.Minute)
		noErr(t, "CreateSigningKey k4", b.store.CreateSigningKey(b.ctx, signingKey("k4")))
		until4 := t4.Add(2 * time.Hour)
		noErr(t, "RetireSigningKeys again", b.store.RetireSigningKeys(b.ctx, "k4", t4, until4))
		equal(t, "ListSigningKeys after rotating again", mustSigningKeys(t, b, t4), []storage.SigningKey{
			stored(signingKey("k4"), t4, nil, nil),
			stored(signingKey("k3"), t3, at(t4), at(until4)),
			stored(signingKey("k2"), t2, at(t3), at(until)),
			stored(signingKey("k1"), t1, at(t3), at(until)),
		})
		equal(t, "ListSigningKeys after the first grace", mustSigningKeys(t, b, until.Add(time.Second)), []storage.SigningKey{
			stored(signingKey("k4"), t4, nil, nil),
			stored(signingKey("k3"), t3, at(t4), at(until4)),
		})
		// Retiring with keep the current key again changes nothing.
		noErr(t, "RetireSigningKeys with nothing to retire", b.store.RetireSigningKeys(b.ctx, "k4", t4.Add(time.Minute), until4.Add(time.Hour)))
		equal(t, "ListSigningKeys after retiring nothing", mustSigningKeys(t, b, until4.Add(time.Second)), []storage.SigningKey{
			stored(signingKey("k4"), t4, nil, nil),
		})
	}},
	{"fail/signing-key/params", func(t *testing.T, b bundle) {
		good := signingKey("k")
		with := func(f func(k *storage.SigningKey)) storage.SigningKey {
			k := good
			f(&k)
			return k
		}
		for name, k := range map[string]storage.SigningKey{
			"no kid":         with(func(k *storage.SigningKey) { k.ID = "" }),
			"no algorithm":   with(func(k *storage.SigningKey) { k.Algorithm = "" }),
			"no private key": with(func(k *storage.SigningKey) { k.PrivateKey = nil }),
			"no public key":  with(func(k *storage.SigningKey) { k.PublicKey = nil }),
		} {
			if err := b.store.CreateSigningKey(b.ctx, k); err == nil || errors.Is(err, storage.ErrConflict) {
				t.Errorf("CreateSigningKey with %s: %v, want a validation error", name, err)
			}
		}
		now := time.Now()
		equal(t, "ListSigningKeys after refused creates", mustSigningKeys(t, b, now), []storage.SigningKey{})
		noErr(t, "CreateSigningKey", b.store.CreateSigningKey(b.ctx, good))
		for name, err := range map[string]error{
			"no now":                 b.store.RetireSigningKeys(b.ctx, "other", time.Time{}, now),
			"no verifyUntil":         b.store.RetireSigningKeys(b.ctx, "other", now, time.Time{}),
			"verifyUntil before now": b.store.RetireSigningKeys(b.ctx, "other", now, now.Add(-time.Second)),
		} {
			if err == nil {
				t.Errorf("RetireSigningKeys with %s: no error", name)
			}
		}
		if keys := mustSigningKeys(t, b, now); len(keys) != 1 || keys[0].RetiredAt != nil {
			t.Fatalf("keys after refused RetireSigningKeys: %+v", keys)
		}
	}},

	{"ok/proof/replay-and-reuse", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		now := clk.Now()
		id := nonce("proof")
		noErr(t, "UseProof", b.store.UseProof(b.ctx, id, now.Add(time.Minute)))
		wantErr(t, "UseProof again: a replay", b.store.UseProof(b.ctx, id, now.Add(time.Hour)), storage.ErrConflict)
		noErr(t, "UseProof of another id", b.store.UseProof(b.ctx, nonce("other proof"), now.Add(time.Minute)))
		clk.advance(time.Minute - time.Microsecond)
		wantErr(t, "UseProof just before it expires", b.store.UseProof(b.ctx, id, now.Add(time.Hour)), storage.ErrConflict)
		// At its expiry it is expired: the id may be used again, for as long
		// as the new use says.
		clk.advance(time.Microsecond)
		noErr(t, "UseProof once expired", b.store.UseProof(b.ctx, id, now.Add(2*time.Minute)))
		wantErr(t, "UseProof of the reused id", b.store.UseProof(b.ctx, id, now.Add(time.Hour)), storage.ErrConflict)
		clk.advance(30 * time.Second)
		wantErr(t, "UseProof before the new expiry", b.store.UseProof(b.ctx, id, now.Add(time.Hour)), storage.ErrConflict)
	}},
	{"ok/proof/concurrent", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		id := nonce("contested proof")
		errs := race(16, func() error { return b.store.UseProof(b.ctx, id, clk.Now().Add(time.Minute)) })
		wantOneWinner(t, "concurrent UseProof of a new id", errs)
		// And concurrent reuse of the id once it expired.
		clk.advance(time.Hour)
		errs = race(16, func() error { return b.store.UseProof(b.ctx, id, clk.Now().Add(time.Minute)) })
		wantOneWinner(t, "concurrent UseProof of an expired id", errs)
	}},
	{"ok/proof/delete-expired", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		now := clk.Now()
		noErr(t, "UseProof", b.store.UseProof(b.ctx, nonce("1"), now.Add(time.Second)))
		noErr(t, "UseProof", b.store.UseProof(b.ctx, nonce("2"), now.Add(2*time.Second)))
		noErr(t, "UseProof", b.store.UseProof(b.ctx, nonce("3"), now.Add(3*time.Second)))
		n, err := b.store.DeleteExpiredProofs(b.ctx, now.Add(2*time.Second))
		noErr(t, "DeleteExpiredProofs", err)
		if n != 1 {
			t.Fatalf("DeleteExpiredProofs deleted %d, want 1 (expiry strictly before)", n)
		}
		// The deleted id is unknown again; the others are still recorded
		// (the store's clock has not moved, so none has expired for it).
		noErr(t, "UseProof of the deleted id", b.store.UseProof(b.ctx, nonce("1"), now.Add(time.Minute)))
		wantErr(t, "UseProof of a kept id", b.store.UseProof(b.ctx, nonce("2"), now.Add(time.Minute)), storage.ErrConflict)
		n, err = b.store.DeleteExpiredProofs(b.ctx, now.Add(time.Hour))
		noErr(t, "DeleteExpiredProofs", err)
		if n != 3 {
			t.Fatalf("DeleteExpiredProofs deleted %d, want 3", n)
		}
	}},
	{"fail/proof/params", func(t *testing.T, b bundle) {
		for name, err := range map[string]error{
			"no id":     b.store.UseProof(b.ctx, nil, time.Now().Add(time.Minute)),
			"no expiry": b.store.UseProof(b.ctx, nonce("p"), time.Time{}),
		} {
			if err == nil || errors.Is(err, storage.ErrConflict) {
				t.Errorf("UseProof with %s: %v, want a validation error", name, err)
			}
		}
		noErr(t, "UseProof after refused ones", b.store.UseProof(b.ctx, nonce("p"), time.Now().Add(time.Minute)))
	}},

	{"ok/job/device-id", func(t *testing.T, b bundle) {
		d := mustEnroll(t, b, enrollParams(b.a.ID, "instance-1", "aa11"))
		p := jobParams(b.a.ID, "by-device")
		p.DeviceID = d.ID
		j, created, err := b.store.CreateJob(b.ctx, p)
		noErr(t, "CreateJob", err)
		if !created || j.DeviceID != d.ID {
			t.Fatalf("CreateJob by a device: created %v, DeviceID %q, want %q", created, j.DeviceID, d.ID)
		}
		got, err := b.store.GetJob(b.ctx, b.a.ID, j.ID)
		noErr(t, "GetJob", err)
		equal(t, "GetJob", got, j)
		// A replay returns the stored job, whatever device asks.
		p.DeviceID = ""
		again, created, err := b.store.CreateJob(b.ctx, p)
		noErr(t, "CreateJob replayed", err)
		if created {
			t.Fatal("CreateJob replayed: created true")
		}
		equal(t, "CreateJob replayed", again, j)

		keyJob := mustJob(t, b, b.a.ID)
		if keyJob.DeviceID != "" {
			t.Fatalf("CreateJob by an API key: DeviceID %q, want \"\"", keyJob.DeviceID)
		}
		var inTx storage.Job
		noErr(t, "InTx", b.store.InTx(b.ctx, func(tx storage.Tx) error {
			p := jobParams(b.a.ID, "")
			p.DeviceID = d.ID
			var err error
			inTx, _, err = tx.CreateJob(b.ctx, p)
			return err
		}))
		if inTx.DeviceID != d.ID {
			t.Fatalf("tx.CreateJob by a device: DeviceID %q, want %q", inTx.DeviceID, d.ID)
		}
		got, err = b.store.GetJob(b.ctx, b.a.ID, inTx.ID)
		noErr(t, "GetJob of the job created in a transaction", err)
		equal(t, "GetJob of the job created in a transaction", got, inTx)

		list, err := b.store.ListJobs(b.ctx, b.a.ID, 10)
		noErr(t, "ListJobs", err)
		byID := map[hegate.JobID]storage.DeviceID{}
		for _, j := range list {
			byID[j.ID] = j.DeviceID
		}
		equal(t, "ListJobs' device ids", byID, map[hegate.JobID]storage.DeviceID{j.ID: d.ID, keyJob.ID: "", inTx.ID: d.ID})
	}},
}

package gateway

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/native"
	"github.com/hegate/hegate/storage"
)

// nativeDeviceWithUEID is nativeDevice with a ueid of the test's choosing.
func nativeDeviceWithUEID(key crypto.Signer, measurement, ueid []byte) testEvidence {
	ev := nativeDevice(key, measurement)
	pemKey, _ := attest.MarshalPublicKeyPEM(key.Public())
	kid := sha256.Sum256(pemKey)
	ev.make = func(nonce, jkt []byte) ([]byte, error) {
		return native.Sign(native.Claims{Nonce: nonce, UEID: ueid, KeyThumbprint: jkt,
			Measurements: map[string][]byte{"app": measurement}}, key, kid[:8])
	}
	return ev
}

// TestEnrollInstanceIsTheEndorsedKey: the ueid of native evidence is what
// the device says about itself, so it must not decide which registry row
// the evidence updates. A second endorsed device claiming the first one's
// ueid gets a device of its own (and does not re-key the first one's), and
// a revoked device cannot come back by claiming a new ueid.
func TestEnrollInstanceIsTheEndorsedKey(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	m := bytes.Repeat([]byte{9}, 32)
	ueid := bytes.Repeat([]byte{0xab}, 16)
	_, k1, _ := ed25519.GenerateKey(rand.Reader)
	_, k2, _ := ed25519.GenerateKey(rand.Reader)
	a := nativeDeviceWithUEID(k1, m, ueid)
	b := nativeDeviceWithUEID(k2, m, ueid)
	e1, r := a.trust()
	e2, _ := b.trust()
	eb, _ := json.Marshal(e1.Merge(e2))
	rb, _ := json.Marshal(r)
	if _, err := bd.a.client.SetAttestationDoc(bd.ctx, attest.FormatNative, storage.DocEndorsements, eb); err != nil {
		t.Fatal(err)
	}
	if _, err := bd.a.client.SetAttestationDoc(bd.ctx, attest.FormatNative, storage.DocReferenceValues, rb); err != nil {
		t.Fatal(err)
	}

	_, devA, _ := ed25519.GenerateKey(rand.Reader)
	_, devB, _ := ed25519.GenerateKey(rand.Reader)
	da, credA, err := bd.a.client.Enroll(bd.ctx, a, devA)
	if err != nil {
		t.Fatal(err)
	}
	db, _, err := bd.a.client.Enroll(bd.ctx, b, devB)
	if err != nil {
		t.Fatal(err)
	}
	if db.ID == da.ID {
		t.Fatalf("a device signing with another endorsed key took over device %s by claiming its ueid", da.ID)
	}
	if _, err := bd.deviceClient(t, credA).Jobs(bd.ctx, 1); err != nil {
		t.Fatalf("device A's credential after device B enrolled: %v", err)
	}

	if _, err := bd.a.client.RevokeDevice(bd.ctx, da.ID); err != nil {
		t.Fatal(err)
	}
	again := nativeDeviceWithUEID(k1, m, bytes.Repeat([]byte{0xcd}, 16))
	d, _, err := bd.a.client.Enroll(bd.ctx, again, devA)
	if err == nil {
		t.Fatalf("revoked device %s enrolled again as %s by claiming a new ueid", da.ID, d.ID)
	}
	wantReason(t, err, http.StatusForbidden, string(attest.ReasonDeviceRevoked))
}

// TestAttestationBodyTooLarge: a body past the limit is 413 whether or not
// it announced its length (a chunked one is cut by the body limit while
// being read, and must not turn into a 400).
func TestAttestationBodyTooLarge(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	for path, limit := range map[string]int{"/v1/attestation/native/endorsements": attest.MaxDocumentBytes, "/v1/policy": maxSmallBody, "/v1/enroll": maxEnrollBody} {
		big := bytes.Repeat([]byte{' '}, limit+1)
		// An io.Reader that is not a *bytes.Reader: no Content-Length, chunked.
		method := http.MethodPut
		if path == "/v1/enroll" {
			method = http.MethodPost
		}
		resp := bd.call(t, method, path, bd.a.secret, struct{ io.Reader }{bytes.NewReader(big)}, nil)
		wantProblem(t, resp, http.StatusRequestEntityTooLarge, "")
	}
}

// TestDPoPChallenge: a refused device credential is answered with the DPoP
// challenge of RFC 9449 section 7.1, telling a bad proof from a bad token.
func TestDPoPChallenge(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	_, attKey, _ := ed25519.GenerateKey(rand.Reader)
	ev := nativeDevice(attKey, bytes.Repeat([]byte{4}, 32))
	endorse(t, bd.ctx, bd.a.client, ev)
	_, devKey, _ := ed25519.GenerateKey(rand.Reader)
	_, cred, err := bd.a.client.Enroll(bd.ctx, ev, devKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, auth, proof, want string
	}{
		{"no proof", "DPoP " + cred.Token, "", `error="invalid_dpop_proof"`},
		{"malformed token", "DPoP not-a-token", "x", `error="invalid_token"`},
	} {
		resp := bd.call(t, http.MethodGet, "/v1/jobs", "", nil, http.Header{"Authorization": {c.auth}, "Dpop": {c.proof}})
		got := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(got, "DPoP ") || !strings.Contains(got, c.want) || !strings.Contains(got, `algs="EdDSA ES256"`) {
			t.Errorf("%s: status %d, WWW-Authenticate %q; want a DPoP challenge with %s", c.name, resp.StatusCode, got, c.want)
		}
	}
	resp := bd.call(t, http.MethodGet, "/v1/jobs", "hgk_wrong", nil, nil)
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
		t.Errorf("API key refused with WWW-Authenticate %q; want Bearer", got)
	}
}

// TestVerificationKeysArePublic: the keys that verify credentials carry no
// private part.
func TestVerificationKeysArePublic(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	if _, err := bd.srv.credKeys.Rotate(bd.ctx); err != nil {
		t.Fatal(err)
	}
	keys, err := bd.srv.credKeys.VerificationKeys(bd.ctx)
	if err != nil || len(keys) == 0 {
		t.Fatalf("%d keys, %v", len(keys), err)
	}
	for _, k := range keys {
		if k.Private != nil || len(k.Public) != ed25519.PublicKeySize {
			t.Fatalf("verification key %s has a private part", k.ID)
		}
	}
}

// TestSigningKeysSealed: with a key-encryption key the stored private seed
// is sealed (not the seed), credentials still issue and verify, another
// KEK cannot open it, and a seed stored in clear before a KEK was set
// still signs.
func TestSigningKeysSealed(t *testing.T) {
	t.Parallel()
	kek := bytes.Repeat([]byte{9}, KEKBytes)
	bd := setup(t, withConfig(func(c *Config) { c.CredentialKEK = kek }))
	key, err := bd.srv.credKeys.SigningKey(bd.ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := bd.store.ListSigningKeys(bd.ctx, time.Now())
	if err != nil || len(stored) != 1 {
		t.Fatalf("%d keys, %v", len(stored), err)
	}
	if bytes.Contains(stored[0].PrivateKey, key.Private.Seed()) || len(stored[0].PrivateKey) == ed25519.SeedSize {
		t.Fatal("the stored private key is the seed in clear")
	}
	other, err := NewSigningKeys(bd.store, nil, bytes.Repeat([]byte{8}, KEKBytes))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.SigningKey(bd.ctx); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Fatalf("another KEK opened the key: %v", err)
	}
	none, _ := NewSigningKeys(bd.store, nil, nil)
	if _, err := none.SigningKey(bd.ctx); err == nil || !strings.Contains(err.Error(), "HEGATE_CREDENTIAL_KEK") {
		t.Fatalf("no KEK opened a sealed key: %v", err)
	}
	// Enrollment issues and the credential verifies under the sealed key.
	_, attKey, _ := ed25519.GenerateKey(rand.Reader)
	ev := nativeDevice(attKey, bytes.Repeat([]byte{4}, 32))
	endorse(t, bd.ctx, bd.a.client, ev)
	_, devKey, _ := ed25519.GenerateKey(rand.Reader)
	_, cred, err := bd.a.client.Enroll(bd.ctx, ev, devKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bd.deviceClient(t, cred).Jobs(bd.ctx, 1); err != nil {
		t.Fatalf("a credential signed with the sealed key: %v", err)
	}
	if _, err := ParseKEK("abc"); err == nil {
		t.Fatal("ParseKEK took 3 hex digits")
	}
}

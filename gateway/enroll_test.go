package gateway

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/credential"
	"github.com/hegate/hegate/attest/native"
	"github.com/hegate/hegate/attest/psa"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/storage"
)

// testEvidence is one format's device side in a test: it makes evidence
// and says what a tenant must trust for it.
type testEvidence struct {
	format attest.Format
	make   func(nonce, jkt []byte) ([]byte, error)
	trust  func() (attest.Endorsements, attest.ReferenceValues)
}

func (e testEvidence) Format() attest.Format { return e.format }
func (e testEvidence) Evidence(_ context.Context, nonce, jkt []byte) ([]byte, error) {
	return e.make(nonce, jkt)
}

// nativeDevice is native evidence signed by key, measuring "app".
func nativeDevice(key crypto.Signer, measurement []byte) testEvidence {
	pemKey, _ := attest.MarshalPublicKeyPEM(key.Public())
	kid := sha256.Sum256(pemKey)
	ueid := make([]byte, 16)
	_, _ = rand.Read(ueid)
	return testEvidence{
		format: attest.FormatNative,
		make: func(nonce, jkt []byte) ([]byte, error) {
			return native.Sign(native.Claims{Nonce: nonce, UEID: ueid, KeyThumbprint: jkt,
				Measurements: map[string][]byte{"app": measurement}}, key, kid[:8])
		},
		trust: func() (attest.Endorsements, attest.ReferenceValues) {
			return attest.Endorsements{Keys: []attest.TrustedKey{{ID: kid[:8], Public: key.Public()}}},
				attest.ReferenceValues{Measurements: map[string][][]byte{"app": {measurement}}}
		},
	}
}

func psaDevice(t *testing.T) testEvidence {
	d, err := psa.NewSimulatedDevice()
	if err != nil {
		t.Fatal(err)
	}
	return testEvidence{
		format: attest.FormatPSA,
		make:   func(nonce, _ []byte) ([]byte, error) { return d.Token(nonce) },
		trust: func() (attest.Endorsements, attest.ReferenceValues) {
			return attest.Endorsements{Keys: []attest.TrustedKey{d.Endorsement()}}, d.ReferenceValues()
		},
	}
}

// endorse installs ev's trust anchors for the tenant of the admin client.
func endorse(t *testing.T, ctx context.Context, admin *client.Client, ev testEvidence) {
	t.Helper()
	e, r := ev.trust()
	eb, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SetAttestationDoc(ctx, ev.format, storage.DocEndorsements, eb); err != nil {
		t.Fatalf("setting endorsements: %v", err)
	}
	if _, err := admin.SetAttestationDoc(ctx, ev.format, storage.DocReferenceValues, rb); err != nil {
		t.Fatalf("setting reference values: %v", err)
	}
}

// deviceClient is a client that authenticates with cred.
func (bd *bundle) deviceClient(t *testing.T, cred *client.DeviceCredential) *client.Client {
	t.Helper()
	c, err := client.New(bd.ts.URL, "", client.WithHTTPClient(bd.ts.Client()), client.WithDeviceCredential(cred),
		client.WithPollInterval(10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// requireAttestation sets the tenant's default policy: attested devices
// of every format, affirming, and no API key alone.
func requireAttestation(t *testing.T, ctx context.Context, admin *client.Client) {
	t.Helper()
	if _, err := admin.SetPolicy(ctx, "", api.Policy{AllowAPIKey: false, Formats: []string{"tpm", "psa", "native"}, Statuses: []string{"affirming"}}); err != nil {
		t.Fatalf("setting policy: %v", err)
	}
}

// wantReason checks err is a gateway answer with status and reason.
func wantReason(t *testing.T, err error, status int, reason string) {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a %d answer with reason %s", err, status, reason)
	}
	if ce.StatusCode != status || ce.Problem.Reason != reason {
		t.Fatalf("got %d reason %q (%s), want %d reason %q", ce.StatusCode, ce.Problem.Reason, ce.Problem.Detail, status, reason)
	}
}

// enrollAndInfer enrolls ev's device with the bundle's tenant A, then
// runs an encrypted inference with the device's credential and checks it
// against the plaintext reference. It returns the device and its client.
func enrollAndInfer(t *testing.T, bd *bundle, ksID string, ev client.Evidence) (api.Device, *client.Client) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dev, cred, err := bd.a.client.Enroll(bd.ctx, ev, key)
	if err != nil {
		t.Fatalf("enrolling %s: %v", ev.Format(), err)
	}
	if dev.Status != storage.DeviceActive || dev.AttestationStatus != string(attest.StatusAffirming) || dev.Format != string(ev.Format()) {
		t.Fatalf("enrolled device %+v", dev)
	}
	var res attest.Result
	if err := json.Unmarshal(dev.Result, &res); err != nil || res.Status() != attest.StatusAffirming || res.Profile != attest.EARProfile {
		t.Fatalf("attestation result %s: %v", dev.Result, err)
	}
	dc := bd.deviceClient(t, cred)
	x, ct := bd.input(t, bd.a, 11)
	result, jobID, err := dc.Infer(bd.ctx, string(bd.model.ID()), ksID, ct, client.InferOptions{Wait: true})
	if err != nil {
		t.Fatalf("inference with the %s device's credential: %v", ev.Format(), err)
	}
	bd.checkResult(t, bd.a, x, result)
	job, err := dc.Job(bd.ctx, jobID)
	if err != nil {
		t.Fatal(err)
	}
	if job.Device != dev.ID {
		t.Fatalf("job %s records device %q, want %s", jobID, job.Device, dev.ID)
	}
	return dev, dc
}

// TestEnrollEndToEnd: each evidence format enrolls a device whose
// credential then runs an encrypted inference, while an API key alone is
// refused by the policy; revoking the device stops its next request.
func TestEnrollEndToEnd(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	ksID := bd.upload(t, bd.a)
	requireAttestation(t, bd.ctx, bd.a.client)

	_, ct := bd.input(t, bd.a, 1)
	_, _, err := bd.a.client.Infer(bd.ctx, string(bd.model.ID()), ksID, ct, client.InferOptions{Wait: true})
	wantReason(t, err, http.StatusForbidden, string(attest.ReasonPolicyAPIKey))

	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	_, mlKey, err := mldsa65.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	devices := map[string]testEvidence{
		"native-ed25519":   nativeDevice(edKey, bytes.Repeat([]byte{1}, 32)),
		"native-ml-dsa-65": nativeDevice(mlKey, bytes.Repeat([]byte{2}, 32)),
		"psa":              psaDevice(t),
	}
	for _, name := range []string{"native-ed25519", "native-ml-dsa-65", "psa"} {
		t.Run("ok/"+name, func(t *testing.T) {
			ev := devices[name]
			endorse(t, bd.ctx, bd.a.client, ev)
			dev, dc := enrollAndInfer(t, bd, ksID, ev)

			got, err := bd.a.client.EnrolledDevice(bd.ctx, dev.ID)
			if err != nil || got.LastSeenAt == nil {
				t.Fatalf("device %+v, %v: want it seen", got, err)
			}
			if _, err := bd.a.client.RevokeDevice(bd.ctx, dev.ID); err != nil {
				t.Fatal(err)
			}
			_, _, err = dc.Infer(bd.ctx, string(bd.model.ID()), ksID, ct, client.InferOptions{Wait: true})
			wantReason(t, err, http.StatusUnauthorized, string(attest.ReasonDeviceRevoked))
		})
	}
	t.Run("ok/jwks", func(t *testing.T) {
		resp := bd.call(t, http.MethodGet, "/.well-known/jwks.json", "", nil, nil)
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) == 0 {
			t.Fatalf("JWKS: %v %+v", err, set)
		}
		for _, k := range set.Keys {
			if _, private := k["d"]; private || k["alg"] != "EdDSA" {
				t.Fatalf("JWKS key %v", k)
			}
		}
	})
}

// enrollRaw posts an enroll request as given.
func enrollRaw(bd *bundle, c *client.Client, format attest.Format, nonce, evidence []byte, key crypto.Signer) error {
	jwk, err := credential.PublicJWK(key.Public())
	if err != nil {
		return err
	}
	jb, _ := json.Marshal(jwk)
	body, _ := json.Marshal(api.EnrollRequest{
		Format: string(format), Nonce: base64.RawURLEncoding.EncodeToString(nonce),
		Evidence: base64.RawURLEncoding.EncodeToString(evidence), DeviceKey: jb,
	})
	req, _ := http.NewRequestWithContext(bd.ctx, http.MethodPost, bd.ts.URL+"/v1/enroll", bytes.NewReader(body))
	return doRaw(bd, req, c)
}

// doRaw sends req with the API key of tenant A (or B) and turns an error
// answer into a *client.Error.
func doRaw(bd *bundle, req *http.Request, c *client.Client) error {
	key := bd.a.secret
	if c == bd.b.client {
		key = bd.b.secret
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", api.ContentTypeJSON)
	resp, err := bd.ts.Client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 300 {
		return nil
	}
	var p api.Problem
	_ = json.NewDecoder(resp.Body).Decode(&p)
	return &client.Error{StatusCode: resp.StatusCode, Problem: p}
}

// TestEnrollRefused: each way enrollment and credentials are refused
// answers its own reason, through the HTTP API.
func TestEnrollRefused(t *testing.T) {
	t.Parallel()
	clk := &testClock{now: time.Now()}
	bd := setup(t, withConfig(func(c *Config) { c.Clock = clk.Now }))
	ksID := bd.upload(t, bd.a)
	_, attKey, _ := ed25519.GenerateKey(rand.Reader)
	good := bytes.Repeat([]byte{7}, 32)
	ev := nativeDevice(attKey, good)
	endorse(t, bd.ctx, bd.a.client, ev)
	_, devKey, _ := ed25519.GenerateKey(rand.Reader)
	jkt, _ := credential.ThumbprintBytes(devKey.Public())
	challenge := func(t *testing.T, c *client.Client) []byte {
		t.Helper()
		n, _, err := c.Challenge(bd.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	evidenceFor := func(t *testing.T, e testEvidence, nonce []byte) []byte {
		t.Helper()
		b, err := e.make(attest.ExpectedNonce(e.format, nonce, jkt), jkt)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	cases := []struct {
		name   string
		status int
		reason attest.Reason
		run    func(t *testing.T) error
	}{
		{"wrong nonce", 403, attest.ReasonNonceMismatch, func(t *testing.T) error {
			n := challenge(t, bd.a.client)
			return enrollRaw(bd, bd.a.client, ev.format, n, evidenceFor(t, ev, challenge(t, bd.a.client)), devKey)
		}},
		{"missing nonce", 400, attest.ReasonNonceMissing, func(t *testing.T) error {
			return enrollRaw(bd, bd.a.client, ev.format, nil, evidenceFor(t, ev, challenge(t, bd.a.client)), devKey)
		}},
		{"short nonce", 400, attest.ReasonNonceLength, func(t *testing.T) error {
			n := challenge(t, bd.a.client)
			return enrollRaw(bd, bd.a.client, ev.format, n[:16], evidenceFor(t, ev, n), devKey)
		}},
		{"reused nonce", 403, attest.ReasonNonceReused, func(t *testing.T) error {
			n := challenge(t, bd.a.client)
			if err := enrollRaw(bd, bd.a.client, ev.format, n, evidenceFor(t, ev, n), devKey); err != nil {
				t.Fatalf("first use: %v", err)
			}
			return enrollRaw(bd, bd.a.client, ev.format, n, evidenceFor(t, ev, n), devKey)
		}},
		{"nonce of another tenant", 403, attest.ReasonNonceUnknown, func(t *testing.T) error {
			n := challenge(t, bd.b.client)
			return enrollRaw(bd, bd.a.client, ev.format, n, evidenceFor(t, ev, n), devKey)
		}},
		{"nonce never issued", 403, attest.ReasonNonceUnknown, func(t *testing.T) error {
			n := make([]byte, 32)
			_, _ = rand.Read(n)
			return enrollRaw(bd, bd.a.client, ev.format, n, evidenceFor(t, ev, n), devKey)
		}},
		{"measurement not in the reference values", 403, attest.ReasonMeasurementUnknown, func(t *testing.T) error {
			other := nativeDevice(attKey, bytes.Repeat([]byte{8}, 32))
			n := challenge(t, bd.a.client)
			return enrollRaw(bd, bd.a.client, ev.format, n, evidenceFor(t, other, n), devKey)
		}},
		{"signed by another key under the endorsed kid", 403, attest.ReasonBadSignature, func(t *testing.T) error {
			_, stranger, _ := ed25519.GenerateKey(rand.Reader)
			forger := nativeDevice(stranger, good)
			inner := forger.make
			forger.make = func(nonce, jkt []byte) ([]byte, error) {
				// The stranger's evidence, relabelled with the endorsed kid.
				b, err := inner(nonce, jkt)
				if err != nil {
					return nil, err
				}
				mine, _ := attest.MarshalPublicKeyPEM(attKey.Public())
				theirs, _ := attest.MarshalPublicKeyPEM(stranger.Public())
				k1, k2 := sha256.Sum256(mine), sha256.Sum256(theirs)
				return bytes.Replace(b, k2[:8], k1[:8], 1), nil
			}
			n := challenge(t, bd.a.client)
			return enrollRaw(bd, bd.a.client, ev.format, n, evidenceFor(t, forger, n), devKey)
		}},
		{"key not endorsed", 403, attest.ReasonUnknownKey, func(t *testing.T) error {
			_, stranger, _ := ed25519.GenerateKey(rand.Reader)
			n := challenge(t, bd.a.client)
			return enrollRaw(bd, bd.a.client, ev.format, n, evidenceFor(t, nativeDevice(stranger, good), n), devKey)
		}},
		{"empty reference values (tenant B endorsed the key, allowed nothing)", 403, attest.ReasonEmptyReferenceValues, func(t *testing.T) error {
			e, _ := ev.trust()
			eb, _ := json.Marshal(e)
			if _, err := bd.b.client.SetAttestationDoc(bd.ctx, attest.FormatNative, storage.DocEndorsements, eb); err != nil {
				t.Fatal(err)
			}
			n := challenge(t, bd.b.client)
			return enrollRaw(bd, bd.b.client, ev.format, n, evidenceFor(t, ev, n), devKey)
		}},
		{"tampered evidence", 403, attest.ReasonBadSignature, func(t *testing.T) error {
			n := challenge(t, bd.a.client)
			b := evidenceFor(t, ev, n)
			i := bytes.Index(b, good)
			b[i] ^= 1
			return enrollRaw(bd, bd.a.client, ev.format, n, b, devKey)
		}},
		{"evidence bound to another device key", 403, attest.ReasonKeyMismatch, func(t *testing.T) error {
			n := challenge(t, bd.a.client)
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			return enrollRaw(bd, bd.a.client, ev.format, n, evidenceFor(t, ev, n), other)
		}},
		{"expired nonce", 403, attest.ReasonNonceExpired, func(t *testing.T) error {
			n := challenge(t, bd.a.client)
			clk.Advance(DefaultChallengeTTL + time.Second)
			defer clk.Advance(-DefaultChallengeTTL - time.Second)
			return enrollRaw(bd, bd.a.client, ev.format, n, evidenceFor(t, ev, n), devKey)
		}},
	}
	for _, c := range cases {
		t.Run("fail/"+c.name, func(t *testing.T) {
			wantReason(t, c.run(t), c.status, string(c.reason))
		})
	}

	// The credential side.
	dev, cred, err := bd.a.client.Enroll(bd.ctx, ev, devKey)
	if err != nil {
		t.Fatal(err)
	}
	cred.Now = clk.Now
	jobsPath := bd.ts.URL + "/v1/jobs"
	send := func(t *testing.T, auth, proof string, extraProof string) error {
		t.Helper()
		req, _ := http.NewRequestWithContext(bd.ctx, http.MethodGet, jobsPath, nil)
		req.Header.Set("Authorization", auth)
		if proof != "" {
			req.Header.Add("DPoP", proof)
		}
		if extraProof != "" {
			req.Header.Add("DPoP", extraProof)
		}
		resp, err := bd.ts.Client().Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		var p api.Problem
		_ = json.NewDecoder(resp.Body).Decode(&p)
		return &client.Error{StatusCode: resp.StatusCode, Problem: p}
	}
	proof := func(t *testing.T, key crypto.Signer, method, url, token string) string {
		t.Helper()
		p, err := credential.NewProof(key, method, url, token, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := send(t, "DPoP "+cred.Token, proof(t, devKey, http.MethodGet, jobsPath, cred.Token), ""); err != nil {
		t.Fatalf("a good credential and proof: %v", err)
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	credCases := []struct {
		name   string
		reason credential.Reason
		run    func(t *testing.T) error
	}{
		{"credential without a proof", credential.ReasonProofMissing, func(t *testing.T) error {
			return send(t, "DPoP "+cred.Token, "", "")
		}},
		{"proof by another key", credential.ReasonProofKeyMismatch, func(t *testing.T) error {
			return send(t, "DPoP "+cred.Token, proof(t, otherKey, http.MethodGet, jobsPath, cred.Token), "")
		}},
		{"replayed proof", credential.ReasonProofReplayed, func(t *testing.T) error {
			p := proof(t, devKey, http.MethodGet, jobsPath, cred.Token)
			if err := send(t, "DPoP "+cred.Token, p, ""); err != nil {
				t.Fatalf("first use: %v", err)
			}
			return send(t, "DPoP "+cred.Token, p, "")
		}},
		{"two proofs", credential.ReasonProofMalformed, func(t *testing.T) error {
			return send(t, "DPoP "+cred.Token, proof(t, devKey, http.MethodGet, jobsPath, cred.Token), proof(t, devKey, http.MethodGet, jobsPath, cred.Token))
		}},
		{"proof for another URL", credential.ReasonProofURL, func(t *testing.T) error {
			return send(t, "DPoP "+cred.Token, proof(t, devKey, http.MethodGet, bd.ts.URL+"/v1/keys", cred.Token), "")
		}},
		{"credential for another audience", credential.ReasonTokenAudience, func(t *testing.T) error {
			is := &credential.Issuer{Issuer: "hegate", Audience: "someone-else", Keys: bd.srv.credKeys, Now: clk.Now}
			tok, _, err := is.Issue(bd.ctx, credential.Claims{Tenant: string(mustTenant(t, bd)), Device: dev.ID, Format: "native", Status: "affirming", JKT: base64.RawURLEncoding.EncodeToString(jkt)})
			if err != nil {
				t.Fatal(err)
			}
			return send(t, "DPoP "+tok, proof(t, devKey, http.MethodGet, jobsPath, tok), "")
		}},
		{"expired credential", credential.ReasonTokenExpired, func(t *testing.T) error {
			clk.Advance(DefaultCredentialTTL + time.Minute)
			defer clk.Advance(-DefaultCredentialTTL - time.Minute)
			return send(t, "DPoP "+cred.Token, proof(t, devKey, http.MethodGet, jobsPath, cred.Token), "")
		}},
		{"signed by a retired key after its grace period", credential.ReasonTokenUnknownKey, func(t *testing.T) error {
			if _, err := bd.srv.credKeys.Rotate(bd.ctx); err != nil {
				t.Fatal(err)
			}
			// Within the grace period the old key still verifies ...
			if err := send(t, "DPoP "+cred.Token, proof(t, devKey, http.MethodGet, jobsPath, cred.Token), ""); err != nil {
				t.Fatalf("within the grace period: %v", err)
			}
			// ... and past it, nothing it signed does (the token's own
			// expiry is moved out of the way by issuing one that would
			// still be valid).
			is := &credential.Issuer{Issuer: "hegate", Audience: "hegate", TTL: time.Hour, Keys: credential.StaticKeys{mustOldKey(t, bd, clk)}, Now: clk.Now}
			tok, _, err := is.Issue(bd.ctx, credential.Claims{Tenant: string(mustTenant(t, bd)), Device: dev.ID, Format: "native", Status: "affirming", JKT: base64.RawURLEncoding.EncodeToString(jkt)})
			if err != nil {
				t.Fatal(err)
			}
			clk.Advance(credentialGrace + time.Second)
			defer clk.Advance(-credentialGrace - time.Second)
			return send(t, "DPoP "+tok, proof(t, devKey, http.MethodGet, jobsPath, tok), "")
		}},
	}
	for _, c := range credCases {
		t.Run("fail/"+c.name, func(t *testing.T) {
			wantReason(t, c.run(t), http.StatusUnauthorized, string(c.reason))
		})
	}
	t.Run("fail/device revoked, then enrolling again", func(t *testing.T) {
		if _, err := bd.a.client.RevokeDevice(bd.ctx, dev.ID); err != nil {
			t.Fatal(err)
		}
		err := send(t, "DPoP "+cred.Token, proof(t, devKey, http.MethodGet, jobsPath, cred.Token), "")
		wantReason(t, err, http.StatusUnauthorized, string(attest.ReasonDeviceRevoked))
		_, _, err = bd.a.client.Enroll(bd.ctx, ev, devKey)
		wantReason(t, err, http.StatusForbidden, string(attest.ReasonDeviceRevoked))
	})
	t.Run("fail/other tenant's device is not found", func(t *testing.T) {
		_, err := bd.b.client.EnrolledDevice(bd.ctx, dev.ID)
		if client.StatusOf(err) != http.StatusNotFound {
			t.Fatalf("tenant B reading A's device: %v", err)
		}
		_, err = bd.b.client.RevokeDevice(bd.ctx, dev.ID)
		if client.StatusOf(err) != http.StatusNotFound {
			t.Fatalf("tenant B revoking A's device: %v", err)
		}
	})
	_ = ksID
}

func newEd25519(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func thumbprint(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	b, err := credential.ThumbprintBytes(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustOldKey returns the retired signing key (with its private part, as
// only the gateway has it), to sign with it after its grace period.
func mustOldKey(t *testing.T, bd *bundle, clk *testClock) credential.Key {
	t.Helper()
	keys, err := bd.store.ListSigningKeys(bd.ctx, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.RetiredAt != nil {
			ck, err := bd.srv.credKeys.privateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			ck.NotAfter = time.Time{}
			return ck
		}
	}
	t.Fatal("no retired key")
	return credential.Key{}
}

// TestPolicyRefusesDevices: a model's policy that does not admit a
// device's format refuses it, and the default policy lets API keys in.
func TestPolicyRefusesDevices(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	ksID := bd.upload(t, bd.a)
	_, attKey, _ := ed25519.GenerateKey(rand.Reader)
	ev := nativeDevice(attKey, bytes.Repeat([]byte{3}, 32))
	endorse(t, bd.ctx, bd.a.client, ev)
	_, devKey, _ := ed25519.GenerateKey(rand.Reader)
	_, cred, err := bd.a.client.Enroll(bd.ctx, ev, devKey)
	if err != nil {
		t.Fatal(err)
	}
	model := string(bd.model.ID())
	if _, err := bd.a.client.SetPolicy(bd.ctx, model, api.Policy{AllowAPIKey: true, Formats: []string{"tpm"}, Statuses: []string{"affirming"}}); err != nil {
		t.Fatal(err)
	}
	_, ct := bd.input(t, bd.a, 5)
	_, _, err = bd.deviceClient(t, cred).Infer(bd.ctx, model, ksID, ct, client.InferOptions{Wait: true})
	wantReason(t, err, http.StatusForbidden, string(attest.ReasonPolicyDevice))
	if _, _, err := bd.a.client.Infer(bd.ctx, model, ksID, ct, client.InferOptions{Wait: true}); err != nil {
		t.Fatalf("API key under a policy that allows it: %v", err)
	}
	p, err := bd.a.client.Policy(bd.ctx, model)
	if err != nil || p.Default || p.Model != model || len(p.Formats) != 1 {
		t.Fatalf("policy %+v, %v", p, err)
	}
	// Policies are an admin's: a client key may not set one.
	secret, err := CreateAPIKey(bd.ctx, bd.store, mustTenant(t, bd), "client", storage.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	cc, _ := client.New(bd.ts.URL, secret, client.WithHTTPClient(bd.ts.Client()))
	_, err = cc.SetPolicy(bd.ctx, model, api.Policy{AllowAPIKey: true, Formats: []string{}, Statuses: []string{}})
	if client.StatusOf(err) != http.StatusForbidden {
		t.Fatalf("client key setting a policy: %v", err)
	}
	for _, bad := range []string{`{"allow_api_key":true}`, `{"allow_api_key":true,"formats":["tpm"],"statuses":["contraindicated"]}`, `{"allow_api_key":true,"formats":["sgx"],"statuses":[]}`} {
		req, _ := http.NewRequestWithContext(bd.ctx, http.MethodPut, bd.ts.URL+"/v1/policy", strings.NewReader(bad))
		if err := doRaw(bd, req, bd.a.client); client.StatusOf(err) != http.StatusBadRequest {
			t.Fatalf("policy %s: %v", bad, err)
		}
	}
}

package credential

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testIss    = "https://gw.hegate.example"
	testAud    = "https://api.hegate.example"
	testURL    = "https://api.hegate.example/v1/models/m1/infer"
	testMethod = "POST"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var b64 = base64.RawURLEncoding

// fixture is a gateway (one signing key, an issuer, a verifier with its
// own replay cache) and a device key, all on a fixed clock.
type fixture struct {
	now      time.Time
	key      Key
	keys     StaticKeys
	issuer   *Issuer
	replay   *MemoryReplay
	verifier *Verifier
	device   crypto.Signer
	jkt      string
}

func newFixture(t testing.TB, device crypto.Signer) *fixture {
	t.Helper()
	key, err := NewKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{now: testNow, key: key, keys: StaticKeys{key}, device: device, replay: &MemoryReplay{}}
	f.replay.Now = func() time.Time { return f.now }
	f.issuer = &Issuer{Issuer: testIss, Audience: testAud, Keys: f.keys, Now: func() time.Time { return f.now }}
	f.verifier = &Verifier{Issuer: testIss, Audience: testAud, Keys: f.keys, Replay: f.replay, Now: func() time.Time { return f.now }}
	if f.jkt, err = Thumbprint(device.Public()); err != nil {
		t.Fatal(err)
	}
	return f
}

func edKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func (f *fixture) claims() Claims {
	return Claims{Tenant: "ten_1", Device: "dev_1", Format: "native", Status: "affirming", JKT: f.jkt}
}

// issue returns a token for the fixture's device.
func (f *fixture) issue(t testing.TB) string {
	t.Helper()
	tok, _, err := f.issuer.Issue(context.Background(), f.claims())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// proof returns a fresh proof by the fixture's device for testMethod,
// testURL and token.
func (f *fixture) proof(t testing.TB, token string) string {
	t.Helper()
	p, err := NewProof(f.device, testMethod, testURL, token, f.now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) verify(token, proof string) (Claims, error) {
	return f.verifier.Verify(context.Background(), Request{Token: token, Proof: proof, Method: testMethod, URL: testURL})
}

// tokenParts is what craftToken signs: the header and claims Issue would
// make, for a test to change.
func (f *fixture) tokenParts() (map[string]any, jwt.MapClaims) {
	h := map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": f.key.ID}
	c := jwt.MapClaims{
		"iss":           testIss,
		"aud":           []any{testAud},
		"sub":           "dev_1",
		"client_id":     "dev_1",
		"iat":           f.now.Unix(),
		"nbf":           f.now.Unix(),
		"exp":           f.now.Add(15 * time.Minute).Unix(),
		"jti":           "tok-1",
		"cnf":           map[string]any{"jkt": f.jkt},
		"hegate_tenant": "ten_1",
		"hegate_format": "native",
		"hegate_status": "affirming",
	}
	return h, c
}

// sign makes a JWS of header and claims, signed by method with key, with
// the header exactly as given (alg included, or not).
func sign(t testing.TB, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header = header
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// craftToken signs the Issue-like token, changed by edit, with the
// gateway's key.
func (f *fixture) craftToken(t testing.TB, edit func(h map[string]any, c jwt.MapClaims)) string {
	t.Helper()
	h, c := f.tokenParts()
	if edit != nil {
		edit(h, c)
	}
	return sign(t, jwt.SigningMethodEdDSA, f.key.Private, h, c)
}

// proofParts is what craftProof signs: the header and claims NewProof
// would make for key and token.
func (f *fixture) proofParts(t testing.TB, key crypto.Signer, token string) (map[string]any, jwt.MapClaims) {
	t.Helper()
	jwk, err := PublicJWK(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]any{"typ": "dpop+jwt", "alg": keyAlg(key.Public()), "jwk": jwk}
	c := jwt.MapClaims{"jti": "proof-" + rand.Text(), "htm": testMethod, "htu": testURL, "iat": f.now.Unix()}
	if token != "" {
		c["ath"] = tokenHash(token)
	}
	return h, c
}

// craftProof signs the NewProof-like proof, changed by edit, with key.
func (f *fixture) craftProof(t testing.TB, key crypto.Signer, token string, edit func(h map[string]any, c jwt.MapClaims)) string {
	t.Helper()
	h, c := f.proofParts(t, key, token)
	if edit != nil {
		edit(h, c)
	}
	var m jwt.SigningMethod = jwt.SigningMethodEdDSA
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		m = jwt.SigningMethodES256
	}
	return sign(t, m, key, h, c)
}

// segments splits a compact JWS.
func segments(t testing.TB, s string) []string {
	t.Helper()
	p := strings.Split(s, ".")
	if len(p) != 3 {
		t.Fatalf("not a compact JWS: %d segments", len(p))
	}
	return p
}

// tamperPayload replaces the claims of a JWS, keeping its signature.
func tamperPayload(t testing.TB, s string, edit func(c map[string]any)) string {
	t.Helper()
	p := segments(t, s)
	raw, err := b64.DecodeString(p[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	edit(c)
	raw, _ = json.Marshal(c)
	return p[0] + "." + b64.EncodeToString(raw) + "." + p[2]
}

// tamperSignature flips one bit of a JWS's signature.
func tamperSignature(t testing.TB, s string) string {
	t.Helper()
	p := segments(t, s)
	sig, err := b64.DecodeString(p[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)/2] ^= 0x01
	return p[0] + "." + p[1] + "." + b64.EncodeToString(sig)
}

// nonCanonical rewrites the last character of a JWS's signature so that
// the unused bits of its base64 are no longer zero: a lax decoder reads the
// same signature from it.
func nonCanonical(t testing.TB, s string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, s[len(s)-1])
	if i < 0 || i&1 != 0 {
		t.Fatalf("signature ends in %q", s[len(s)-1])
	}
	return s[:len(s)-1] + alphabet[i+1:i+2]
}

// checkReason asserts that err is the refusal want ("" for success), and
// that its message carries no token, proof or key material.
func checkReason(t testing.TB, err error, want Reason, secrets ...string) {
	t.Helper()
	if got := ReasonOf(err); got != want {
		t.Fatalf("reason %q, want %q (err: %v)", got, want, err)
	}
	if want != "" {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("err is %T, not *Error", err)
		}
	}
	if err == nil {
		return
	}
	msg := err.Error()
	for _, s := range secrets {
		for _, part := range strings.Split(s, ".") {
			if len(part) >= 12 && strings.Contains(msg, part) {
				t.Fatalf("error %q contains input material %q", msg, part)
			}
		}
	}
}

func TestVerifyGood(t *testing.T) {
	for _, tc := range []struct {
		name   string
		device crypto.Signer
	}{
		{"Ed25519", edKey(t)},
		{"ES256", ecKey(t, elliptic.P256())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.device)
			tok, exp, err := f.issuer.Issue(context.Background(), f.claims())
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.verify(tok, f.proof(t, tok))
			checkReason(t, err, "")
			want := f.claims()
			want.ID = got.ID
			want.IssuedAt = testNow
			want.ExpiresAt = testNow.Add(DefaultTTL)
			if got.ID == "" || !got.IssuedAt.Equal(want.IssuedAt) || !got.ExpiresAt.Equal(exp) || !exp.Equal(want.ExpiresAt) {
				t.Fatalf("claims %+v, exp %v", got, exp)
			}
			got.IssuedAt, got.ExpiresAt = want.IssuedAt, want.ExpiresAt
			if got != want {
				t.Fatalf("claims %+v, want %+v", got, want)
			}
		})
	}
}

func TestVerifyToken(t *testing.T) {
	otherEd := edKey(t)
	p256 := ecKey(t, elliptic.P256())
	tests := []struct {
		name  string
		token func(t *testing.T, f *fixture) string
		want  Reason
	}{
		{"good", func(t *testing.T, f *fixture) string { return f.issue(t) }, ""},
		{"crafted good", func(t *testing.T, f *fixture) string { return f.craftToken(t, nil) }, ""},
		{"missing", func(*testing.T, *fixture) string { return "" }, ReasonTokenMissing},
		{"oversized", func(*testing.T, *fixture) string { return strings.Repeat("a", MaxTokenBytes+1) }, ReasonTokenTooLarge},
		{"oversized good-looking", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { c["pad"] = strings.Repeat("x", MaxTokenBytes) })
		}, ReasonTokenTooLarge},
		{"max size garbage", func(*testing.T, *fixture) string { return strings.Repeat("a", MaxTokenBytes) }, ReasonTokenMalformed},
		{"not a JWS", func(*testing.T, *fixture) string { return "not a token" }, ReasonTokenMalformed},
		{"two segments", func(*testing.T, *fixture) string { return "eyJhbGciOiJFZERTQSJ9.e30" }, ReasonTokenMalformed},
		{"four segments", func(t *testing.T, f *fixture) string { return f.issue(t) + ".x" }, ReasonTokenMalformed},
		{"header not JSON", func(*testing.T, *fixture) string { return b64.EncodeToString([]byte("{")) + ".e30.AAAA" }, ReasonTokenMalformed},
		{"line break in signature", func(t *testing.T, f *fixture) string {
			tok := f.issue(t)
			return tok[:len(tok)-10] + "\n" + tok[len(tok)-10:]
		}, ReasonTokenMalformed},
		{"non-canonical base64 signature", func(t *testing.T, f *fixture) string { return nonCanonical(t, f.issue(t)) }, ReasonTokenMalformed},
		{"padded signature", func(t *testing.T, f *fixture) string { return f.issue(t) + "==" }, ReasonTokenMalformed},
		{"exp not a number", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { c["exp"] = "tomorrow" })
		}, ReasonTokenMalformed},
		{"crit header", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(h map[string]any, _ jwt.MapClaims) { h["crit"] = []any{"exp"} })
		}, ReasonTokenMalformed},
		{"alg none", func(t *testing.T, f *fixture) string {
			h, c := f.tokenParts()
			h["alg"] = "none"
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, h, c)
		}, ReasonTokenAlg},
		{"alg absent", func(t *testing.T, f *fixture) string {
			h, c := f.tokenParts()
			delete(h, "alg")
			return sign(t, jwt.SigningMethodEdDSA, f.key.Private, h, c)
		}, ReasonTokenAlg},
		{"alg unknown", func(t *testing.T, f *fixture) string {
			h, c := f.tokenParts()
			h["alg"] = "Ed448"
			return sign(t, jwt.SigningMethodEdDSA, f.key.Private, h, c)
		}, ReasonTokenAlg},
		{"HS256 keyed with the public key", func(t *testing.T, f *fixture) string {
			h, c := f.tokenParts()
			h["alg"] = "HS256"
			return sign(t, jwt.SigningMethodHS256, []byte(f.key.Public), h, c)
		}, ReasonTokenAlg},
		{"RS256", func(t *testing.T, f *fixture) string {
			h, c := f.tokenParts()
			h["alg"] = "RS256"
			return sign(t, jwt.SigningMethodRS256, rsaKey(), h, c)
		}, ReasonTokenAlg},
		{"ES256", func(t *testing.T, f *fixture) string {
			h, c := f.tokenParts()
			h["alg"] = "ES256"
			return sign(t, jwt.SigningMethodES256, p256, h, c)
		}, ReasonTokenAlg},
		{"typ JWT", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(h map[string]any, _ jwt.MapClaims) { h["typ"] = "JWT" })
		}, ReasonTokenType},
		{"typ absent", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(h map[string]any, _ jwt.MapClaims) { delete(h, "typ") })
		}, ReasonTokenType},
		{"typ dpop+jwt", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(h map[string]any, _ jwt.MapClaims) { h["typ"] = "dpop+jwt" })
		}, ReasonTokenType},
		{"typ application/at+jwt", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(h map[string]any, _ jwt.MapClaims) { h["typ"] = "application/AT+JWT" })
		}, ""},
		{"a proof as token", func(t *testing.T, f *fixture) string { return f.proof(t, "") }, ReasonTokenType},
		{"tampered payload", func(t *testing.T, f *fixture) string {
			return tamperPayload(t, f.issue(t), func(c map[string]any) { c["hegate_tenant"] = "ten_2" })
		}, ReasonTokenSignature},
		{"tampered signature", func(t *testing.T, f *fixture) string { return tamperSignature(t, f.issue(t)) }, ReasonTokenSignature},
		{"other key under our kid", func(t *testing.T, f *fixture) string {
			h, c := f.tokenParts()
			return sign(t, jwt.SigningMethodEdDSA, otherEd, h, c)
		}, ReasonTokenSignature},
		{"expired", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { c["exp"] = f.now.Add(-time.Minute).Unix() })
		}, ReasonTokenExpired},
		{"expired within leeway", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { c["exp"] = f.now.Add(-3 * time.Second).Unix() })
		}, ""},
		{"expired just past leeway", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { c["exp"] = f.now.Add(-5 * time.Second).Unix() })
		}, ReasonTokenExpired},
		{"nbf in the future", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { c["nbf"] = f.now.Add(time.Minute).Unix() })
		}, ReasonTokenNotYetValid},
		{"iat in the future", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { c["iat"] = f.now.Add(time.Minute).Unix() })
		}, ReasonTokenNotYetValid},
		{"wrong issuer", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { c["iss"] = "https://evil.example" })
		}, ReasonTokenIssuer},
		{"other audience", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { c["aud"] = []any{"https://other.example"} })
		}, ReasonTokenAudience},
		{"audience as a string", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { c["aud"] = testAud })
		}, ""},
		{"audience among others", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { c["aud"] = []any{"https://other.example", testAud} })
		}, ""},
		{"unknown kid", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(h map[string]any, _ jwt.MapClaims) { h["kid"] = "nope" })
		}, ReasonTokenUnknownKey},
		{"kid absent", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(h map[string]any, _ jwt.MapClaims) { delete(h, "kid") })
		}, ReasonTokenUnknownKey},
		{"kid not a string", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(h map[string]any, _ jwt.MapClaims) { h["kid"] = 7 })
		}, ReasonTokenUnknownKey},
		{"no iss", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { delete(c, "iss") })
		}, ReasonTokenClaims},
		{"no aud", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { delete(c, "aud") })
		}, ReasonTokenClaims},
		{"no exp", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { delete(c, "exp") })
		}, ReasonTokenClaims},
		{"no cnf", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { delete(c, "cnf") })
		}, ReasonTokenClaims},
		{"cnf without jkt", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { c["cnf"] = map[string]any{"jwk": "x"} })
		}, ReasonTokenClaims},
		{"cnf.jkt not a thumbprint", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { c["cnf"] = map[string]any{"jkt": "abc"} })
		}, ReasonTokenClaims},
		{"no sub", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { delete(c, "sub") })
		}, ReasonTokenClaims},
		{"no tenant", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { delete(c, "hegate_tenant") })
		}, ReasonTokenClaims},
		{"no jti", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { delete(c, "jti") })
		}, ReasonTokenClaims},
		{"no iat", func(t *testing.T, f *fixture) string {
			return f.craftToken(t, func(_ map[string]any, c jwt.MapClaims) { delete(c, "iat") })
		}, ReasonTokenClaims},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, edKey(t))
			tok := tc.token(t, f)
			// A proof that is right for this token, so that only the
			// token's defect can be refused.
			proof := f.proof(t, tok)
			_, err := f.verify(tok, proof)
			checkReason(t, err, tc.want, tok, proof, b64.EncodeToString(f.key.Public))
		})
	}
}

func TestVerifyProof(t *testing.T) {
	otherEd := edKey(t)
	otherEC := ecKey(t, elliptic.P256())
	p384 := ecKey(t, elliptic.P384())
	type proofFunc func(t *testing.T, f *fixture, token string) string
	// edit crafts a proof by the fixture's device, changed by e.
	edit := func(e func(h map[string]any, c jwt.MapClaims)) proofFunc {
		return func(t *testing.T, f *fixture, token string) string { return f.craftProof(t, f.device, token, e) }
	}
	claim := func(name string, v any) proofFunc {
		return edit(func(_ map[string]any, c jwt.MapClaims) {
			if v == nil {
				delete(c, name)
			} else {
				c[name] = v
			}
		})
	}
	header := func(name string, v any) proofFunc {
		return edit(func(h map[string]any, _ jwt.MapClaims) {
			if v == nil {
				delete(h, name)
			} else {
				h[name] = v
			}
		})
	}
	jwkMember := func(name string, v any) proofFunc {
		return edit(func(h map[string]any, _ jwt.MapClaims) {
			jwk := h["jwk"].(map[string]any)
			if v == nil {
				delete(jwk, name)
			} else {
				jwk[name] = v
			}
		})
	}
	tests := []struct {
		name  string
		ec    bool // the device key is P-256 rather than Ed25519
		url   string
		proof proofFunc
		want  Reason
	}{
		{name: "good", proof: func(t *testing.T, f *fixture, tok string) string { return f.proof(t, tok) }},
		{name: "good ES256", ec: true, proof: func(t *testing.T, f *fixture, tok string) string { return f.proof(t, tok) }},
		{name: "crafted good", proof: edit(nil)},
		{name: "crafted good ES256", ec: true, proof: edit(nil)},
		{name: "missing", proof: func(*testing.T, *fixture, string) string { return "" }, want: ReasonProofMissing},
		{name: "oversized", proof: func(*testing.T, *fixture, string) string { return strings.Repeat("a", MaxProofBytes+1) }, want: ReasonProofTooLarge},
		{name: "oversized good-looking", proof: claim("pad", strings.Repeat("x", MaxProofBytes)), want: ReasonProofTooLarge},
		{name: "not a JWS", proof: func(*testing.T, *fixture, string) string { return "a, b" }, want: ReasonProofMalformed},
		{name: "two proofs joined", proof: func(t *testing.T, f *fixture, tok string) string { return f.proof(t, tok) + "," + f.proof(t, tok) }, want: ReasonProofMalformed},
		{name: "line break", proof: func(t *testing.T, f *fixture, tok string) string {
			p := f.proof(t, tok)
			return p[:len(p)-4] + "\r\n" + p[len(p)-4:]
		}, want: ReasonProofMalformed},
		{name: "crit header", proof: header("crit", []any{"htm"}), want: ReasonProofMalformed},
		{name: "non-canonical base64 signature", proof: func(t *testing.T, f *fixture, tok string) string { return nonCanonical(t, f.proof(t, tok)) }, want: ReasonProofMalformed},
		{name: "jti not a string", proof: claim("jti", 42), want: ReasonProofMalformed},
		{name: "iat not a number", proof: claim("iat", "now"), want: ReasonProofMalformed},

		{name: "by another key", proof: func(t *testing.T, f *fixture, tok string) string { return f.craftProof(t, otherEd, tok, nil) }, want: ReasonProofKeyMismatch},
		{name: "by another ES256 key", proof: func(t *testing.T, f *fixture, tok string) string { return f.craftProof(t, otherEC, tok, nil) }, want: ReasonProofKeyMismatch},
		{name: "ES256 device, proof by Ed25519 key", ec: true, proof: func(t *testing.T, f *fixture, tok string) string { return f.craftProof(t, otherEd, tok, nil) }, want: ReasonProofKeyMismatch},

		{name: "alg none", proof: func(t *testing.T, f *fixture, tok string) string {
			h, c := f.proofParts(t, f.device, tok)
			h["alg"] = "none"
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, h, c)
		}, want: ReasonProofAlg},
		{name: "alg absent", proof: func(t *testing.T, f *fixture, tok string) string {
			h, c := f.proofParts(t, f.device, tok)
			delete(h, "alg")
			return sign(t, jwt.SigningMethodEdDSA, f.device, h, c)
		}, want: ReasonProofAlg},
		{name: "HS256 keyed with the jwk", proof: func(t *testing.T, f *fixture, tok string) string {
			h, c := f.proofParts(t, f.device, tok)
			h["alg"] = "HS256"
			return sign(t, jwt.SigningMethodHS256, []byte(f.device.Public().(ed25519.PublicKey)), h, c)
		}, want: ReasonProofAlg},
		{name: "RS256", proof: func(t *testing.T, f *fixture, tok string) string {
			h, c := f.proofParts(t, f.device, tok)
			h["alg"] = "RS256"
			return sign(t, jwt.SigningMethodRS256, rsaKey(), h, c)
		}, want: ReasonProofAlg},
		{name: "ES384", proof: func(t *testing.T, f *fixture, tok string) string {
			h, c := f.proofParts(t, f.device, tok)
			h["alg"] = "ES384"
			return sign(t, jwt.SigningMethodES384, p384, h, c)
		}, want: ReasonProofAlg},
		{name: "ES256 alg with an OKP jwk", proof: func(t *testing.T, f *fixture, tok string) string {
			h, c := f.proofParts(t, f.device, tok)
			h["alg"] = "ES256"
			return sign(t, jwt.SigningMethodES256, otherEC, h, c)
		}, want: ReasonProofAlg},
		{name: "EdDSA alg with an EC jwk", ec: true, proof: func(t *testing.T, f *fixture, tok string) string {
			h, c := f.proofParts(t, f.device, tok)
			h["alg"] = "EdDSA"
			return sign(t, jwt.SigningMethodEdDSA, otherEd, h, c)
		}, want: ReasonProofAlg},

		{name: "private jwk", proof: func(t *testing.T, f *fixture, tok string) string {
			seed := f.device.(ed25519.PrivateKey).Seed()
			return f.craftProof(t, f.device, tok, func(h map[string]any, _ jwt.MapClaims) {
				h["jwk"].(map[string]any)["d"] = b64.EncodeToString(seed)
			})
		}, want: ReasonProofKey},
		{name: "private EC jwk", ec: true, proof: jwkMember("d", "AAAA"), want: ReasonProofKey},
		{name: "no jwk", proof: header("jwk", nil), want: ReasonProofKey},
		{name: "jwk not an object", proof: header("jwk", "key"), want: ReasonProofKey},
		{name: "jwk RSA", proof: header("jwk", map[string]any{"kty": "RSA", "n": "AQAB", "e": "AQAB"}), want: ReasonProofKey},
		{name: "jwk X25519", proof: jwkMember("crv", "X25519"), want: ReasonProofKey},
		{name: "jwk x short", proof: jwkMember("x", "AAAA"), want: ReasonProofKey},
		{name: "jwk x padded", proof: edit(func(h map[string]any, _ jwt.MapClaims) {
			jwk := h["jwk"].(map[string]any)
			jwk["x"] = jwk["x"].(string) + "="
		}), want: ReasonProofKey},
		{name: "jwk x with a line break", proof: edit(func(h map[string]any, _ jwt.MapClaims) {
			jwk := h["jwk"].(map[string]any)
			x := jwk["x"].(string)
			jwk["x"] = x[:20] + "\n" + x[20:]
		}), want: ReasonProofKey},
		{name: "jwk x not a string", proof: jwkMember("x", 5), want: ReasonProofKey},
		{name: "jwk EC point off the curve", ec: true, proof: edit(func(h map[string]any, _ jwt.MapClaims) {
			jwk := h["jwk"].(map[string]any)
			jwk["y"] = jwk["x"]
		}), want: ReasonProofKey},
		{name: "jwk EC without y", ec: true, proof: jwkMember("y", nil), want: ReasonProofKey},
		{name: "jwk P-384", ec: true, proof: jwkMember("crv", "P-384"), want: ReasonProofKey},

		{name: "typ JWT", proof: header("typ", "JWT"), want: ReasonProofType},
		{name: "typ absent", proof: header("typ", nil), want: ReasonProofType},
		{name: "the token as proof", proof: func(_ *testing.T, _ *fixture, tok string) string { return tok }, want: ReasonProofType},
		{name: "typ application/dpop+jwt", proof: header("typ", "application/dpop+jwt"), want: ""},

		{name: "signature tampered", proof: func(t *testing.T, f *fixture, tok string) string { return tamperSignature(t, f.proof(t, tok)) }, want: ReasonProofSignature},
		{name: "signature tampered ES256", ec: true, proof: func(t *testing.T, f *fixture, tok string) string { return tamperSignature(t, f.proof(t, tok)) }, want: ReasonProofSignature},
		{name: "payload tampered", proof: func(t *testing.T, f *fixture, tok string) string {
			return tamperPayload(t, f.proof(t, tok), func(c map[string]any) { c["htu"] = "https://api.hegate.example/v1/other" })
		}, want: ReasonProofSignature},
		{name: "signed by another key than its jwk", proof: func(t *testing.T, f *fixture, tok string) string {
			h, c := f.proofParts(t, f.device, tok)
			return sign(t, jwt.SigningMethodEdDSA, otherEd, h, c)
		}, want: ReasonProofSignature},

		{name: "no jti", proof: claim("jti", nil), want: ReasonProofJTI},
		{name: "empty jti", proof: claim("jti", ""), want: ReasonProofJTI},
		{name: "jti of 129 bytes", proof: claim("jti", strings.Repeat("j", 129)), want: ReasonProofJTI},
		{name: "jti of 128 bytes", proof: claim("jti", strings.Repeat("j", 128)), want: ""},

		{name: "wrong htm", proof: claim("htm", "GET"), want: ReasonProofMethod},
		{name: "htm lowercase", proof: claim("htm", "post"), want: ReasonProofMethod},
		{name: "no htm", proof: claim("htm", nil), want: ReasonProofMethod},

		{name: "htu other host", proof: claim("htu", "https://evil.example/v1/models/m1/infer"), want: ReasonProofURL},
		{name: "htu other path", proof: claim("htu", "https://api.hegate.example/v1/models/m2/infer"), want: ReasonProofURL},
		{name: "htu other scheme", proof: claim("htu", "http://api.hegate.example/v1/models/m1/infer"), want: ReasonProofURL},
		{name: "htu other port", proof: claim("htu", "https://api.hegate.example:8443/v1/models/m1/infer"), want: ReasonProofURL},
		{name: "htu trailing slash", proof: claim("htu", testURL+"/"), want: ReasonProofURL},
		{name: "htu relative", proof: claim("htu", "/v1/models/m1/infer"), want: ReasonProofURL},
		{name: "htu with user info", proof: claim("htu", "https://u@api.hegate.example/v1/models/m1/infer"), want: ReasonProofURL},
		{name: "no htu", proof: claim("htu", nil), want: ReasonProofURL},
		{name: "htu with query and fragment", proof: claim("htu", testURL+"?a=1#frag"), want: ""},
		{name: "request with query", url: testURL + "?stream=true", proof: edit(nil), want: ""},
		{name: "htu case, default port, dot segment, encoding", proof: claim("htu", "HTTPS://API.Hegate.Example:443/v1/./models/x/../%6D1/infer"), want: ""},
		{name: "request URL not absolute", url: "/v1/models/m1/infer", proof: edit(nil), want: ReasonProofURL},

		{name: "iat too old", proof: claim("iat", testNow.Add(-66*time.Second).Unix()), want: ReasonProofIAT},
		{name: "iat too far in the future", proof: claim("iat", testNow.Add(66*time.Second).Unix()), want: ReasonProofIAT},
		{name: "iat old within window and leeway", proof: claim("iat", testNow.Add(-65*time.Second).Unix()), want: ""},
		{name: "iat ahead within window and leeway", proof: claim("iat", testNow.Add(65*time.Second).Unix()), want: ""},
		{name: "iat an hour old", proof: claim("iat", testNow.Add(-time.Hour).Unix()), want: ReasonProofIAT},
		{name: "no iat", proof: claim("iat", nil), want: ReasonProofIAT},

		{name: "no ath", proof: claim("ath", nil), want: ReasonProofATH},
		{name: "ath of another token", proof: claim("ath", tokenHash("another token")), want: ReasonProofATH},
		{name: "ath padded", proof: edit(func(_ map[string]any, c jwt.MapClaims) { c["ath"] = c["ath"].(string) + "=" }), want: ReasonProofATH},
		{name: "ath hex", proof: edit(func(_ map[string]any, c jwt.MapClaims) {
			raw, _ := b64.DecodeString(c["ath"].(string))
			c["ath"] = hex.EncodeToString(raw)
		}), want: ReasonProofATH},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var device crypto.Signer = edKey(t)
			if tc.ec {
				device = ecKey(t, elliptic.P256())
			}
			f := newFixture(t, device)
			tok := f.issue(t)
			proof := tc.proof(t, f, tok)
			u := testURL
			if tc.url != "" {
				u = tc.url
			}
			_, err := f.verifier.Verify(context.Background(), Request{Token: tok, Proof: proof, Method: testMethod, URL: u})
			checkReason(t, err, tc.want, tok, proof, f.jkt)
			// Only a proof that verified is remembered.
			if n, want := f.replay.Len(), map[bool]int{true: 1, false: 0}[tc.want == ""]; n != want {
				t.Fatalf("replay cache holds %d ids, want %d", n, want)
			}
		})
	}
}

func TestVerifyReplay(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, edKey(t))
	tok := f.issue(t)

	t.Run("same proof twice", func(t *testing.T) {
		p := f.proof(t, tok)
		_, err := f.verify(tok, p)
		checkReason(t, err, "")
		_, err = f.verify(tok, p)
		checkReason(t, err, ReasonProofReplayed, tok, p)
	})
	t.Run("same jti in another proof", func(t *testing.T) {
		p1 := f.craftProof(t, f.device, tok, func(_ map[string]any, c jwt.MapClaims) { c["jti"] = "j-same" })
		p2 := f.craftProof(t, f.device, tok, func(_ map[string]any, c jwt.MapClaims) {
			c["jti"] = "j-same"
			c["iat"] = f.now.Add(-time.Second).Unix()
		})
		_, err := f.verify(tok, p1)
		checkReason(t, err, "")
		_, err = f.verify(tok, p2)
		checkReason(t, err, ReasonProofReplayed)
	})
	t.Run("same jti by another device", func(t *testing.T) {
		g := newFixture(t, edKey(t))
		g.keys, g.issuer.Keys, g.verifier.Keys, g.verifier.Replay = f.keys, f.keys, f.keys, f.replay
		tok2 := g.issue(t)
		p := g.craftProof(t, g.device, tok2, func(_ map[string]any, c jwt.MapClaims) { c["jti"] = "j-same" })
		_, err := g.verify(tok2, p)
		checkReason(t, err, "")
	})
	t.Run("refused proof is not remembered", func(t *testing.T) {
		bad := f.craftProof(t, f.device, tok, func(_ map[string]any, c jwt.MapClaims) {
			c["jti"] = "j-later"
			c["htm"] = "GET"
		})
		_, err := f.verify(tok, bad)
		checkReason(t, err, ReasonProofMethod)
		good := f.craftProof(t, f.device, tok, func(_ map[string]any, c jwt.MapClaims) { c["jti"] = "j-later" })
		_, err = f.verify(tok, good)
		checkReason(t, err, "")
	})
	t.Run("proof of another key is not remembered", func(t *testing.T) {
		other := edKey(t)
		p := f.craftProof(t, other, tok, func(_ map[string]any, c jwt.MapClaims) { c["jti"] = "j-other" })
		n := f.replay.Len()
		_, err := f.verify(tok, p)
		checkReason(t, err, ReasonProofKeyMismatch)
		if f.replay.Len() != n {
			t.Fatal("a refused proof was recorded")
		}
	})
	t.Run("replayed within the leeway after the window", func(t *testing.T) {
		// Accepted until iat + window + leeway, so remembered that long.
		p := f.proof(t, tok)
		_, err := f.verify(tok, p)
		checkReason(t, err, "")
		defer func(now time.Time) { f.now = now }(f.now)
		f.now = f.now.Add(DefaultProofWindow + DefaultLeeway - time.Second)
		_, err = f.verify(tok, p)
		checkReason(t, err, ReasonProofReplayed)
	})
	t.Run("replayed after the window", func(t *testing.T) {
		p := f.proof(t, tok)
		_, err := f.verify(tok, p)
		checkReason(t, err, "")
		defer func(now time.Time) { f.now = now }(f.now)
		f.now = f.now.Add(DefaultProofWindow + DefaultLeeway + time.Second)
		_, err = f.verifier.Verify(ctx, Request{Token: tok, Proof: p, Method: testMethod, URL: testURL})
		checkReason(t, err, ReasonProofIAT)
	})
}

func TestVerifyProofWithoutToken(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, ecKey(t, elliptic.P256()))
	req := func(proof, token string) Request {
		return Request{Proof: proof, Token: token, Method: testMethod, URL: testURL}
	}
	p := f.proof(t, "")
	got, err := f.verifier.VerifyProof(ctx, req(p, ""))
	checkReason(t, err, "")
	if got.JKT != f.jkt || got.ID == "" || !got.IssuedAt.Equal(testNow) {
		t.Fatalf("proof %+v, want jkt %s", got, f.jkt)
	}
	_, err = f.verifier.VerifyProof(ctx, req(p, ""))
	checkReason(t, err, ReasonProofReplayed)

	_, err = f.verifier.VerifyProof(ctx, req(f.proof(t, "some token"), ""))
	checkReason(t, err, ReasonProofATH)
	_, err = f.verifier.VerifyProof(ctx, req(f.proof(t, "some token"), "some token"))
	checkReason(t, err, "")
	_, err = f.verifier.VerifyProof(ctx, req(f.proof(t, ""), "some token"))
	checkReason(t, err, ReasonProofATH)
	_, err = f.verifier.VerifyProof(ctx, req("", ""))
	checkReason(t, err, ReasonProofMissing)
	_, err = f.verifier.VerifyProof(ctx, req(f.proof(t, ""), strings.Repeat("t", MaxTokenBytes+1)))
	checkReason(t, err, ReasonTokenTooLarge)
}

// TestRotation: a new key signs new tokens while tokens of the retired key
// verify until its NotAfter, and not after.
func TestRotation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, edKey(t))
	f.issuer.TTL = time.Hour
	oldTok := f.issue(t)

	newKey, err := NewKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	old := f.key
	old.NotAfter = f.now.Add(30 * time.Minute)
	rotated := StaticKeys{newKey, old}
	f.issuer.Keys, f.verifier.Keys = rotated, rotated

	newTok := f.issue(t)
	if kidOf(t, newTok) != newKey.ID || kidOf(t, oldTok) != old.ID || newKey.ID == old.ID {
		t.Fatalf("kids: new token %s, old token %s", kidOf(t, newTok), kidOf(t, oldTok))
	}
	for _, tok := range []string{oldTok, newTok} {
		_, err := f.verify(tok, f.proof(t, tok))
		checkReason(t, err, "")
	}

	// Past the old key's grace period the old token, though unexpired, is
	// refused; the new one still verifies.
	f.now = f.now.Add(31 * time.Minute)
	_, err = f.verify(oldTok, f.proof(t, oldTok))
	checkReason(t, err, ReasonTokenKeyRetired)
	_, err = f.verify(newTok, f.proof(t, newTok))
	checkReason(t, err, "")

	// Dropping the old key makes its tokens unknown.
	f.verifier.Keys = StaticKeys{newKey}
	_, err = f.verify(oldTok, f.proof(t, oldTok))
	checkReason(t, err, ReasonTokenUnknownKey)

	// An issuer whose only key is past NotAfter does not sign.
	if _, _, err := (&Issuer{Issuer: testIss, Audience: testAud, Keys: StaticKeys{old}, Now: func() time.Time { return f.now }}).Issue(ctx, f.claims()); err == nil {
		t.Fatal("signed with a key past its NotAfter")
	}
}

func kidOf(t testing.TB, tok string) string {
	t.Helper()
	raw, err := b64.DecodeString(segments(t, tok)[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	kid, _ := h["kid"].(string)
	return kid
}

// failingKeys is a KeySource that is down.
type failingKeys struct{}

func (failingKeys) SigningKey(context.Context) (Key, error)         { return Key{}, errors.New("down") }
func (failingKeys) VerificationKeys(context.Context) ([]Key, error) { return nil, errors.New("down") }

// TestVerifyInternalFailures: misconfiguration and failing dependencies
// are errors, not refusals.
func TestVerifyInternalFailures(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, edKey(t))
	tok := f.issue(t)
	for _, tc := range []struct {
		name string
		edit func(v *Verifier)
	}{
		{"no issuer", func(v *Verifier) { v.Issuer = "" }},
		{"no audience", func(v *Verifier) { v.Audience = "" }},
		{"no keys", func(v *Verifier) { v.Keys = nil }},
		{"no replay cache", func(v *Verifier) { v.Replay = nil }},
		{"keys down", func(v *Verifier) { v.Keys = failingKeys{} }},
		{"replay cache down", func(v *Verifier) {
			v.Replay = ReplayFunc(func(context.Context, []byte, time.Time) error { return errors.New("down") })
		}},
		{"replay cache full", func(v *Verifier) {
			r := &MemoryReplay{Max: 1, Now: func() time.Time { return testNow }}
			_ = r.Use(ctx, []byte("x"), testNow.Add(time.Hour))
			v.Replay = r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := *f.verifier
			tc.edit(&v)
			_, err := v.Verify(ctx, Request{Token: tok, Proof: f.proof(t, tok), Method: testMethod, URL: testURL})
			if err == nil || ReasonOf(err) != "" {
				t.Fatalf("err %v (reason %q), want an internal error", err, ReasonOf(err))
			}
		})
	}
	t.Run("replay func translating a conflict", func(t *testing.T) {
		errConflict := errors.New("conflict")
		v := *f.verifier
		v.Replay = ReplayFunc(func(context.Context, []byte, time.Time) error { return errors.Join(errConflict, ErrReplay) })
		_, err := v.Verify(ctx, Request{Token: tok, Proof: f.proof(t, tok), Method: testMethod, URL: testURL})
		checkReason(t, err, ReasonProofReplayed)
	})
}

func TestIssue(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, edKey(t))
	tok, exp, err := f.issuer.Issue(ctx, f.claims())
	if err != nil {
		t.Fatal(err)
	}
	p := segments(t, tok)
	var h, c map[string]any
	for i, v := range []*map[string]any{&h, &c} {
		raw, err := b64.DecodeString(p[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatal(err)
		}
	}
	if len(h) != 3 || h["alg"] != "EdDSA" || h["typ"] != "at+jwt" || h["kid"] != f.key.ID {
		t.Fatalf("header %v", h)
	}
	wantKeys := []string{"aud", "client_id", "cnf", "exp", "hegate_format", "hegate_status", "hegate_tenant", "iat", "iss", "jti", "nbf", "sub"}
	if len(c) != len(wantKeys) {
		t.Fatalf("claims %v, want keys %v", c, wantKeys)
	}
	for _, k := range wantKeys {
		if _, ok := c[k]; !ok {
			t.Fatalf("claims %v lack %q", c, k)
		}
	}
	iat := float64(testNow.Unix())
	if c["iss"] != testIss || c["sub"] != "dev_1" || c["client_id"] != "dev_1" || c["hegate_tenant"] != "ten_1" ||
		c["hegate_format"] != "native" || c["hegate_status"] != "affirming" ||
		c["iat"] != iat || c["nbf"] != iat || c["exp"] != iat+DefaultTTL.Seconds() ||
		c["cnf"].(map[string]any)["jkt"] != f.jkt || len(c["jti"].(string)) < 22 {
		t.Fatalf("claims %v", c)
	}
	if aud, _ := c["aud"].([]any); len(aud) != 1 || aud[0] != testAud {
		t.Fatalf("aud %v", c["aud"])
	}
	if !exp.Equal(testNow.Add(DefaultTTL)) {
		t.Fatalf("expiresAt %v", exp)
	}
	tok2, _, _ := f.issuer.Issue(ctx, f.claims())
	if c2 := mustClaims(t, tok2); c2["jti"] == c["jti"] {
		t.Fatal("two tokens with the same jti")
	}

	t.Run("TTL", func(t *testing.T) {
		for _, tc := range []struct {
			ttl, want time.Duration
			notAfter  time.Time
		}{
			{0, DefaultTTL, time.Time{}},
			{-time.Minute, DefaultTTL, time.Time{}},
			{5 * time.Minute, 5 * time.Minute, time.Time{}},
			{2 * time.Hour, MaxTTL, time.Time{}},
			{time.Hour, 10 * time.Minute, testNow.Add(10 * time.Minute)}, // no token outlives its key
		} {
			k := f.key
			k.NotAfter = tc.notAfter
			is := *f.issuer
			is.TTL, is.Keys = tc.ttl, StaticKeys{k}
			tok, exp, err := is.Issue(ctx, f.claims())
			if err != nil {
				t.Fatal(err)
			}
			if !exp.Equal(testNow.Add(tc.want)) || mustClaims(t, tok)["exp"] != float64(exp.Unix()) {
				t.Errorf("TTL %v: exp %v, want %v", tc.ttl, exp, testNow.Add(tc.want))
			}
		}
	})
	t.Run("sub-second clock", func(t *testing.T) {
		is := *f.issuer
		is.Now = func() time.Time { return testNow.Add(700 * time.Millisecond) }
		tok, exp, err := is.Issue(ctx, f.claims())
		if err != nil {
			t.Fatal(err)
		}
		if mustClaims(t, tok)["exp"] != float64(exp.Unix()) || exp.Nanosecond() != 0 {
			t.Fatalf("exp %v vs token %v", exp, mustClaims(t, tok)["exp"])
		}
	})
	t.Run("refusals", func(t *testing.T) {
		verifyOnly := f.key
		verifyOnly.Private = nil
		for _, tc := range []struct {
			name string
			is   Issuer
			c    func(c *Claims)
		}{
			{"no device", *f.issuer, func(c *Claims) { c.Device = "" }},
			{"no tenant", *f.issuer, func(c *Claims) { c.Tenant = "" }},
			{"no jkt", *f.issuer, func(c *Claims) { c.JKT = "" }},
			{"hex jkt", *f.issuer, func(c *Claims) { c.JKT = strings.Repeat("ab", 32) }},
			{"no issuer", Issuer{Audience: testAud, Keys: f.keys}, nil},
			{"no audience", Issuer{Issuer: testIss, Keys: f.keys}, nil},
			{"no keys", Issuer{Issuer: testIss, Audience: testAud}, nil},
			{"keys down", Issuer{Issuer: testIss, Audience: testAud, Keys: failingKeys{}}, nil},
			{"verify-only key", Issuer{Issuer: testIss, Audience: testAud, Keys: StaticKeys{verifyOnly}}, nil},
		} {
			c := f.claims()
			if tc.c != nil {
				tc.c(&c)
			}
			if _, _, err := tc.is.Issue(ctx, c); err == nil {
				t.Errorf("%s: issued", tc.name)
			}
		}
	})
}

func mustClaims(t testing.TB, tok string) map[string]any {
	t.Helper()
	raw, err := b64.DecodeString(segments(t, tok)[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestJWKS(t *testing.T) {
	k1, _ := NewKey(nil)
	k2, _ := NewKey(nil)
	k2.NotAfter = testNow.Add(time.Hour)
	keys := StaticKeys{k1, k2}
	vk, err := keys.VerificationKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range vk {
		if k.Private != nil {
			t.Fatal("VerificationKeys returned a private key")
		}
	}
	for _, in := range [][]Key{keys, vk} { // private parts given or not
		raw, err := JWKS(in)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if bytes.Contains(raw, []byte(b64.EncodeToString(k.Private.Seed()))) || bytes.Contains(raw, []byte(b64.EncodeToString(k.Private))) {
				t.Fatal("JWKS contains private key material")
			}
		}
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal(raw, &set); err != nil {
			t.Fatal(err)
		}
		if len(set.Keys) != len(keys) {
			t.Fatalf("%d keys, want %d", len(set.Keys), len(keys))
		}
		for i, j := range set.Keys {
			if _, ok := j["d"]; ok {
				t.Fatalf("key %d has d", i)
			}
			if len(j) != 6 || j["kty"] != "OKP" || j["crv"] != "Ed25519" || j["alg"] != "EdDSA" || j["use"] != "sig" || j["kid"] != keys[i].ID || j["x"] != b64.EncodeToString(keys[i].Public) {
				t.Fatalf("key %d: %v", i, j)
			}
			// The kid is the RFC 7638 thumbprint of this very JWK.
			if tp, _ := Thumbprint(keys[i].Public); tp != j["kid"] {
				t.Fatalf("kid %v, thumbprint %s", j["kid"], tp)
			}
		}
	}
	if raw, err := JWKS(nil); err != nil || string(raw) != `{"keys":[]}` {
		t.Fatalf("empty JWKS %s, %v", raw, err)
	}
	if _, err := JWKS([]Key{{ID: "x", Public: []byte{1, 2}}}); err == nil {
		t.Fatal("JWKS of a short key")
	}
}

func TestThumbprint(t *testing.T) {
	// RFC 8037 appendix A.3.
	x, _ := b64.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	tp, err := Thumbprint(ed25519.PublicKey(x))
	if err != nil || tp != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Fatalf("Ed25519 thumbprint %s, %v", tp, err)
	}
	// RFC 9449's example proof key (section 4.1) and the jkt section 6.1
	// gives for it.
	ex, _ := b64.DecodeString("l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs")
	ey, _ := b64.DecodeString("9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA")
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, ex...), ey...))
	if err != nil {
		t.Fatal(err)
	}
	tp, err = Thumbprint(pub)
	if err != nil || tp != "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" {
		t.Fatalf("P-256 thumbprint %s, %v", tp, err)
	}
	raw, err := ThumbprintBytes(pub)
	if err != nil || b64.EncodeToString(raw) != tp || len(raw) != sha256.Size {
		t.Fatalf("ThumbprintBytes %x, %v", raw, err)
	}
	jwk, err := PublicJWK(pub)
	if err != nil || len(jwk) != 4 || jwk["kty"] != "EC" || jwk["crv"] != "P-256" || jwk["x"] != b64.EncodeToString(ex) || jwk["y"] != b64.EncodeToString(ey) {
		t.Fatalf("PublicJWK %v, %v", jwk, err)
	}
	for _, k := range []crypto.PublicKey{ecKey(t, elliptic.P384()).Public(), &rsaKey().PublicKey, ed25519.PublicKey{1}, nil, (*ecdsa.PublicKey)(nil)} {
		if _, err := Thumbprint(k); err == nil {
			t.Errorf("thumbprint of %T", k)
		}
	}
}

// opaqueSigner hides an ECDSA key behind crypto.Signer, like a TPM key.
type opaqueSigner struct{ k *ecdsa.PrivateKey }

func (s opaqueSigner) Public() crypto.PublicKey { return s.k.Public() }
func (s opaqueSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return s.k.Sign(r, d, o)
}

func TestNewProof(t *testing.T) {
	ec := ecKey(t, elliptic.P256())
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		alg  string
	}{
		{"Ed25519", edKey(t), "EdDSA"},
		{"ECDSA", ec, "ES256"},
		{"opaque signer", opaqueSigner{ec}, "ES256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewProof(tc.key, "PUT", "HTTPS://API.hegate.example:443/v1/x?q=secret#f", "tok", testNow)
			if err != nil {
				t.Fatal(err)
			}
			h := map[string]any{}
			raw, _ := b64.DecodeString(segments(t, p)[0])
			if err := json.Unmarshal(raw, &h); err != nil {
				t.Fatal(err)
			}
			jwk, _ := h["jwk"].(map[string]any)
			if len(h) != 3 || h["typ"] != "dpop+jwt" || h["alg"] != tc.alg || jwk == nil || jwk["d"] != nil {
				t.Fatalf("header %v", h)
			}
			c := mustClaims(t, p)
			if len(c) != 5 || c["htm"] != "PUT" || c["htu"] != "https://api.hegate.example/v1/x" || c["iat"] != float64(testNow.Unix()) ||
				c["ath"] != tokenHash("tok") || len(c["jti"].(string)) < 16 {
				t.Fatalf("claims %v", c)
			}
			v := Verifier{Issuer: testIss, Audience: testAud, Keys: StaticKeys{}, Replay: &MemoryReplay{}, Now: func() time.Time { return testNow }}
			got, err := v.VerifyProof(context.Background(), Request{Proof: p, Token: "tok", Method: "PUT", URL: "https://api.hegate.example/v1/x"})
			checkReason(t, err, "")
			if want, _ := Thumbprint(tc.key.Public()); got.JKT != want {
				t.Fatalf("jkt %s, want %s", got.JKT, want)
			}
			p2, _ := NewProof(tc.key, "PUT", "https://api.hegate.example/v1/x", "", testNow)
			if c2 := mustClaims(t, p2); c2["jti"] == c["jti"] || c2["ath"] != nil {
				t.Fatalf("second proof claims %v", c2)
			}
		})
	}
	for _, tc := range []struct {
		name        string
		key         crypto.Signer
		method, url string
	}{
		{"P-384 key", ecKey(t, elliptic.P384()), "POST", testURL},
		{"RSA key", rsaKey(), "POST", testURL},
		{"nil key", nil, "POST", testURL},
		{"no method", edKey(t), "", testURL},
		{"relative URL", edKey(t), "POST", "/v1/x"},
		{"ftp URL", edKey(t), "POST", "ftp://h/x"},
	} {
		if _, err := NewProof(tc.key, tc.method, tc.url, "", testNow); err == nil {
			t.Errorf("%s: made a proof", tc.name)
		}
	}
}

func TestNormalizeHTU(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://api.example/v1/x", "https://api.example/v1/x"},
		{"HTTPS://API.Example/v1/X", "https://api.example/v1/X"},
		{"https://api.example:443/a", "https://api.example/a"},
		{"http://api.example:80/a", "http://api.example/a"},
		{"http://api.example:443/a", "http://api.example:443/a"},
		{"https://api.example:8443/a", "https://api.example:8443/a"},
		{"https://api.example:08443/a", "https://api.example:8443/a"},
		{"https://api.example:/a", "https://api.example/a"},
		{"https://api.example", "https://api.example/"},
		{"https://api.example?x", "https://api.example/"},
		{"https://api.example/a?b=c#d", "https://api.example/a"},
		{"https://api.example/a/./b/../c", "https://api.example/a/c"},
		{"https://api.example/../../a", "https://api.example/a"},
		{"https://api.example/a/..", "https://api.example/"},
		{"https://api.example/%7euser/%2fx%2F", "https://api.example/~user/%2Fx%2F"},
		{"https://api.example/a%2E%2E/b", "https://api.example/a../b"},
		{"https://api.example/%2e%2e/b", "https://api.example/b"},
		{"https://api.example/a b", "https://api.example/a%20b"},
		{"https://[::1]:443/a", "https://[::1]/a"},
		{"https://[2001:DB8::1]:8443/a", "https://[2001:db8::1]:8443/a"},
		{"https://10.0.0.1/a", "https://10.0.0.1/a"},
	} {
		got, err := normalizeHTU(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("normalizeHTU(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		"", "/a", "api.example/a", "ftp://api.example/a", "https:///a", "https://u:p@api.example/a",
		"https://api.example:99999/a", "https://api.example:x/a", "mailto:a@b", "https://[fe80::1%25eth0]/a",
		"https://a%2Fb/", "https://exa mple/", "https://" + strings.Repeat("a", MaxURLBytes),
		"http://h/" + strings.Repeat("\x87", MaxURLBytes/2), // short enough raw, too long escaped (found by FuzzNormalizeHTU)
	} {
		if got, err := normalizeHTU(in); err == nil {
			t.Errorf("normalizeHTU(%q) = %q, want an error", in, got)
		}
	}
}

func TestMemoryReplay(t *testing.T) {
	ctx := context.Background()
	now := testNow
	m := &MemoryReplay{Now: func() time.Time { return now }, Max: 3}
	if err := m.Use(ctx, []byte("a"), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := m.Use(ctx, []byte("a"), now.Add(time.Minute)); !errors.Is(err, ErrReplay) {
		t.Fatalf("second use: %v", err)
	}
	_ = m.Use(ctx, []byte("b"), now.Add(2*time.Minute))
	_ = m.Use(ctx, []byte("c"), now.Add(2*time.Minute))
	if err := m.Use(ctx, []byte("d"), now.Add(time.Minute)); err == nil || errors.Is(err, ErrReplay) {
		t.Fatalf("full cache: %v", err)
	}
	now = now.Add(time.Minute) // "a" expires, making room
	if err := m.Use(ctx, []byte("a"), now.Add(time.Minute)); err != nil {
		t.Fatalf("use after expiry: %v", err)
	}
	if err := m.Use(ctx, []byte("d"), now.Add(time.Minute)); err == nil {
		t.Fatal("full cache accepted another id")
	}
	if m.Len() != 3 {
		t.Fatalf("len %d", m.Len())
	}

	// Sweeping keeps an unbounded cache small when ids expire.
	var u MemoryReplay
	u.Now = func() time.Time { return now }
	for i := range 10000 {
		now = now.Add(time.Millisecond)
		if err := u.Use(ctx, []byte{byte(i), byte(i >> 8)}, now.Add(100*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	if u.Len() > 2048 {
		t.Fatalf("len %d after sweeps", u.Len())
	}

	// Concurrent use: each id is accepted exactly once.
	var c MemoryReplay
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for range 8 {
		wg.Go(func() {
			for i := range 100 {
				if c.Use(ctx, []byte{byte(i)}, time.Now().Add(time.Hour)) == nil {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if accepted != 100 {
		t.Fatalf("accepted %d, want 100", accepted)
	}
}

func TestReasonOf(t *testing.T) {
	e := errorf(ReasonProofIAT, "x")
	if ReasonOf(nil) != "" || ReasonOf(errors.New("x")) != "" || ReasonOf(e) != ReasonProofIAT ||
		ReasonOf(errors.Join(errors.New("y"), e)) != ReasonProofIAT {
		t.Fatal("ReasonOf")
	}
	if e.Error() != "credential: proof-iat: x" || (&Error{Reason: ReasonTokenMissing}).Error() != "credential: token-missing" {
		t.Fatalf("Error() %q", e.Error())
	}
}

package credential

import (
	"context"
	"crypto/ed25519"
	"crypto/elliptic"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds arbitrary token and proof strings to Verify. It must
// never panic, every failure must be a refusal (*Error: the key source and
// replay cache here cannot fail), and the only pair that verifies is the
// one the gateway issued and the device signed: Ed25519 signatures are not
// malleable and the compact serialisation is checked strictly, so no other
// string may pass.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f, ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	token := fx.issue(f)
	proof := fx.proof(f, token)
	f.Add(token, proof)
	f.Add(token, "")
	f.Add("", proof)
	f.Add(token, token)
	f.Add(proof, proof)
	f.Add(fx.craftToken(f, func(h map[string]any, _ jwt.MapClaims) { h["alg"] = "none" }), proof)
	f.Add(token, fx.craftProof(f, fx.device, token, func(h map[string]any, _ jwt.MapClaims) {
		h["jwk"] = map[string]any{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}
	}))
	f.Add(token, fx.craftProof(f, ecKey(f, elliptic.P256()), token, nil))
	f.Add("a.b.c", "a.b.c")
	f.Add("eyJhbGciOiJFZERTQSJ9.e30.", "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.")

	f.Fuzz(func(t *testing.T, tok, prf string) {
		v := *fx.verifier
		v.Replay = &MemoryReplay{Now: v.Now} // each input alone
		claims, err := v.Verify(context.Background(), Request{Token: tok, Proof: prf, Method: testMethod, URL: testURL})
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("not a refusal: %v", err)
			}
			if len(tok) >= 16 && strings.Contains(err.Error(), tok) || len(prf) >= 16 && strings.Contains(err.Error(), prf) {
				t.Fatalf("error %q echoes its input", err)
			}
			return
		}
		if tok != token || prf != proof {
			t.Fatalf("verified another pair: token %q proof %q", tok, prf)
		}
		if claims.JKT != fx.jkt || claims.Device != "dev_1" {
			t.Fatalf("claims %+v", claims)
		}
	})
}

// FuzzNormalizeHTU checks the URL normalisation proofs are compared in:
// no panic, the result is again an http(s) URL without query or fragment,
// and normalising is idempotent, so that a device that sends the
// normalised form (as NewProof does) is never refused for its htu.
func FuzzNormalizeHTU(f *testing.F) {
	for _, s := range []string{
		testURL, "HTTPS://API.Example:443/a/./b/../%7e?x#y", "http://[::1]:80/", "https://h:0/%2e%2E/", "https://h/a%zz",
		"https://h/%25%32%65", "https://h/..%2F..", "http://h:65535", "https://h/;p=1/a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := normalizeHTU(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(out, "http://") && !strings.HasPrefix(out, "https://") || strings.ContainsAny(out, "?#") {
			t.Fatalf("normalizeHTU(%q) = %q", in, out)
		}
		again, err := normalizeHTU(out)
		if err != nil || again != out {
			t.Fatalf("normalizeHTU(%q) = %q, then %q, %v", in, out, again, err)
		}
	})
}

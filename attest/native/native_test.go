package native

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"runtime"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	cose "github.com/veraison/go-cose"

	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/internal/cosesig"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func seed(label string) [32]byte { return sha256.Sum256([]byte("hegate attest/native test: " + label)) }

// edKey and mlKey are keys derived from label, the same in every run.
func edKey(label string) ed25519.PrivateKey {
	s := seed(label)
	return ed25519.NewKeyFromSeed(s[:])
}

func mlKey(label string) *mldsa65.PrivateKey {
	s := seed(label)
	_, sk := mldsa65.NewKeyFromSeed(&s)
	return sk
}

// device is a signing key, the kid it is endorsed under and the claims it
// makes.
type device struct {
	key    crypto.Signer
	kid    []byte
	claims Claims
}

func newDevice(key crypto.Signer, label string) *device {
	n, u, j := seed("nonce "+label), seed("ueid "+label), seed("jkt "+label)
	return &device{
		key: key,
		kid: []byte("kid-" + label),
		claims: Claims{
			Nonce:         n[:],
			UEID:          u[:16],
			KeyThumbprint: j[:],
			Measurements:  map[string][]byte{"os": bytes.Repeat([]byte{1}, 32), "app": bytes.Repeat([]byte{2}, 48)},
			IssuedAt:      testNow.Add(-time.Minute),
		},
	}
}

func (d *device) sign(t testing.TB) []byte {
	t.Helper()
	ev, err := Sign(d.claims, d.key, d.kid)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func (d *device) input(ev []byte) attest.Input {
	ref := attest.ReferenceValues{Measurements: map[string][][]byte{}}
	for n, v := range d.claims.Measurements {
		ref.Measurements[n] = [][]byte{bytes.Repeat([]byte{0xee}, 32), v}
	}
	return attest.Input{
		Evidence:        ev,
		Nonce:           d.claims.Nonce,
		KeyThumbprint:   d.claims.KeyThumbprint,
		Endorsements:    attest.Endorsements{Keys: []attest.TrustedKey{{ID: d.kid, Public: d.key.Public()}}},
		ReferenceValues: ref,
	}
}

func verify(in attest.Input) (attest.Result, error) {
	return Verifier{Now: func() time.Time { return testNow }}.Verify(context.Background(), in)
}

func wantReason(t *testing.T, err error, want attest.Reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("verified; want refusal %q", want)
	}
	if got := attest.ReasonOf(err); got != want {
		t.Fatalf("reason %q (%v); want %q", got, err, want)
	}
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := cosesig.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signRaw signs payload with key under the serialized protected header
// given, whatever it says.
func signRaw(t testing.TB, key crypto.Signer, protected, payload []byte) []byte {
	t.Helper()
	s, err := cosesig.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(rand.Reader, cosesig.ToBeSigned(protected, payload))
	if err != nil {
		t.Fatal(err)
	}
	return cosesig.Assemble(protected, nil, payload, sig, true)
}

// rawClaims are d's claims as a map a test can edit.
func (d *device) rawClaims() map[string]any {
	c := map[string]any{
		"eat_profile":  Profile,
		"eat_nonce":    d.claims.Nonce,
		"ueid":         d.claims.UEID,
		"cnf":          map[string]any{"jkt": d.claims.KeyThumbprint},
		"measurements": d.claims.Measurements,
		"iat":          d.claims.IssuedAt.Unix(),
	}
	return c
}

func (d *device) signClaims(t testing.TB, claims any) []byte {
	t.Helper()
	return signRaw(t, d.key, cosesig.ProtectedHeader(mustAlg(t, d.key), d.kid), encode(t, claims))
}

func mustAlg(t testing.TB, key crypto.Signer) cose.Algorithm {
	t.Helper()
	a, err := cosesig.AlgorithmFor(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestGoodEvidence(t *testing.T) {
	for name, key := range map[string]crypto.Signer{"Ed25519": edKey("good"), "ML-DSA-65": mlKey("good")} {
		t.Run(name, func(t *testing.T) {
			d := newDevice(key, "good-"+name)
			ev := d.sign(t)
			for _, tagged := range []bool{true, false} {
				b := ev
				if !tagged {
					b = ev[1:]
				}
				res, err := verify(d.input(b))
				if err != nil {
					t.Fatalf("tagged %v: %v", tagged, err)
				}
				if res.Status() != attest.StatusAffirming || len(res.Reasons()) != 0 {
					t.Fatalf("status %s reasons %v", res.Status(), res.Reasons())
				}
				a := res.Submods[string(attest.FormatNative)]
				want := attest.TrustVector{InstanceIdentity: attest.InstanceTrusted, Executables: attest.ExecutablesApproved}
				if a.TrustVector != want || a.TrustVector.Hardware != attest.TierNone {
					t.Errorf("vector %+v; want %+v", a.TrustVector, want)
				}
				instance, _ := attest.KeyDigest(key.Public())
				if res.Format != attest.FormatNative || res.InstanceID != hex.EncodeToString(instance) || res.UEID != hex.EncodeToString(d.claims.UEID) ||
					res.KeyThumbprint != hex.EncodeToString(d.claims.KeyThumbprint) {
					t.Errorf("result %+v", res)
				}
				if res.Measurements["os"] != hex.EncodeToString(d.claims.Measurements["os"]) || len(res.Measurements) != 2 {
					t.Errorf("measurements %v", res.Measurements)
				}
			}
			msg, err := cosesig.Decode(ev)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(msg.KID, d.kid) || msg.Alg != mustAlg(t, key) {
				t.Errorf("kid %q alg %v", msg.KID, msg.Alg)
			}
			c, err := ParseClaims(msg.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if !c.IssuedAt.Equal(d.claims.IssuedAt.Truncate(time.Second)) || !bytes.Equal(c.UEID, d.claims.UEID) {
				t.Errorf("claims %+v", c)
			}
		})
	}
}

// TestNoKeyThumbprintExpected: without Input.KeyThumbprint any jkt goes.
func TestNoKeyThumbprintExpected(t *testing.T) {
	d := newDevice(edKey("nojkt"), "nojkt")
	in := d.input(d.sign(t))
	in.KeyThumbprint = nil
	if _, err := verify(in); err != nil {
		t.Fatal(err)
	}
}

func TestSignRefuses(t *testing.T) {
	d := newDevice(edKey("sign"), "sign")
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, f := range map[string]func() error{
		"ECDSA key":   func() error { _, err := Sign(d.claims, p256, d.kid); return err },
		"nil key":     func() error { _, err := Sign(d.claims, nil, d.kid); return err },
		"no kid":      func() error { _, err := Sign(d.claims, d.key, nil); return err },
		"short nonce": func() error { c := d.claims; c.Nonce = c.Nonce[:16]; _, err := Sign(c, d.key, d.kid); return err },
		"no ueid":     func() error { c := d.claims; c.UEID = nil; _, err := Sign(c, d.key, d.kid); return err },
		"bad jkt": func() error {
			c := d.claims
			c.KeyThumbprint = c.KeyThumbprint[:8]
			_, err := Sign(c, d.key, d.kid)
			return err
		},
		"empty digest": func() error {
			c := d.claims
			c.Measurements = map[string][]byte{"x": nil}
			_, err := Sign(c, d.key, d.kid)
			return err
		},
	} {
		if f() == nil {
			t.Errorf("%s: signed", name)
		}
	}
}

func TestNegative(t *testing.T) {
	ed := newDevice(edKey("neg-ed"), "neg-ed")
	ml := newDevice(mlKey("neg-ml"), "neg-ml")
	edEv := ed.sign(t)
	mlEv := ml.sign(t)
	payload := func(d *device) []byte { return encode(t, d.rawClaims()) }
	withClaims := func(d *device, edit func(map[string]any)) []byte {
		c := d.rawClaims()
		edit(c)
		return d.signClaims(t, c)
	}
	header := func(h map[int64]any) []byte { return encode(t, h) }
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	cases := []struct {
		name  string
		dev   *device
		ev    []byte
		input func(*attest.Input)
		want  attest.Reason
	}{
		{name: "tampered payload", dev: ed, ev: func() []byte {
			b := bytes.Clone(edEv)
			b[bytes.Index(b, ed.claims.UEID)] ^= 1
			return b
		}(), want: attest.ReasonBadSignature},
		{name: "tampered payload (ML-DSA)", dev: ml, ev: func() []byte {
			b := bytes.Clone(mlEv)
			b[bytes.Index(b, ml.claims.UEID)] ^= 1
			return b
		}(), want: attest.ReasonBadSignature},
		{name: "tampered signature", dev: ed, ev: func() []byte {
			b := bytes.Clone(edEv)
			b[len(b)-1] ^= 1
			return b
		}(), want: attest.ReasonBadSignature},
		{name: "tampered signature (ML-DSA)", dev: ml, ev: func() []byte {
			b := bytes.Clone(mlEv)
			b[len(b)-10] ^= 1
			return b
		}(), want: attest.ReasonBadSignature},
		{name: "truncated ML-DSA signature", dev: ml, ev: func() []byte {
			msg, _ := cosesig.Decode(mlEv)
			return cosesig.Assemble(msg.Protected, nil, msg.Payload, msg.Signature[:100], true)
		}(), want: attest.ReasonBadSignature},
		{name: "tampered protected header", dev: ed, ev: func() []byte {
			msg, _ := cosesig.Decode(edEv)
			p := header(map[int64]any{1: -8, 4: ed.kid, 3: "application/eat+cwt"})
			return cosesig.Assemble(p, nil, msg.Payload, msg.Signature, true)
		}(), want: attest.ReasonBadSignature},
		{name: "wrong key", dev: ed, ev: edEv, input: func(in *attest.Input) {
			in.Endorsements.Keys[0].Public = edKey("other").Public()
		}, want: attest.ReasonBadSignature},
		{name: "wrong key (ML-DSA)", dev: ml, ev: mlEv, input: func(in *attest.Input) {
			in.Endorsements.Keys[0].Public = mlKey("other").Public()
		}, want: attest.ReasonBadSignature},
		{name: "unknown kid", dev: ed, ev: edEv, input: func(in *attest.Input) {
			in.Endorsements.Keys[0].ID = []byte("someone else")
		}, want: attest.ReasonUnknownKey},
		{name: "no endorsements", dev: ed, ev: edEv, input: func(in *attest.Input) {
			in.Endorsements = attest.Endorsements{}
		}, want: attest.ReasonUnknownKey},
		{name: "no kid", dev: ed, ev: signRaw(t, ed.key, header(map[int64]any{1: -8}), payload(ed)), want: attest.ReasonBadProtectedHeader},
		{name: "kid unprotected", dev: ed, ev: func() []byte {
			p := header(map[int64]any{1: -8})
			s, _ := cosesig.NewSigner(ed.key)
			sig, _ := s.Sign(rand.Reader, cosesig.ToBeSigned(p, payload(ed)))
			return cosesig.Assemble(p, header(map[int64]any{4: ed.kid}), payload(ed), sig, true)
		}(), want: attest.ReasonBadProtectedHeader},
		{name: "kid not bytes", dev: ed, ev: signRaw(t, ed.key, header(map[int64]any{1: -8, 4: "kid"}), payload(ed)), want: attest.ReasonBadProtectedHeader},
		{name: "no alg", dev: ed, ev: signRaw(t, ed.key, header(map[int64]any{4: ed.kid}), payload(ed)), want: attest.ReasonAlgNone},
		{name: "alg 0", dev: ed, ev: signRaw(t, ed.key, header(map[int64]any{1: 0, 4: ed.kid}), payload(ed)), want: attest.ReasonAlgNone},
		{name: "alg none", dev: ed, ev: signRaw(t, ed.key, header(map[int64]any{1: "none", 4: ed.kid}), payload(ed)), want: attest.ReasonAlgNone},
		{name: "empty protected header", dev: ed, ev: signRaw(t, ed.key, nil, payload(ed)), want: attest.ReasonAlgNone},
		{name: "alg unsupported", dev: ed, ev: signRaw(t, ed.key, header(map[int64]any{1: -48, 4: ed.kid}), payload(ed)), want: attest.ReasonAlgUnsupported},
		{name: "alg mismatch (ES256 header, Ed25519 key)", dev: ed, ev: signRaw(t, ed.key, header(map[int64]any{1: -7, 4: ed.kid}), payload(ed)), want: attest.ReasonAlgMismatch},
		{name: "alg mismatch (EdDSA header, ML-DSA key)", dev: ml, ev: signRaw(t, ml.key, header(map[int64]any{1: -8, 4: ml.kid}), payload(ml)), want: attest.ReasonAlgMismatch},
		{name: "alg mismatch (ML-DSA header, Ed25519 key)", dev: ed, ev: signRaw(t, ed.key, header(map[int64]any{1: -49, 4: ed.kid}), payload(ed)), want: attest.ReasonAlgMismatch},
		{name: "ECDSA key endorsed", dev: ed, ev: edEv, input: func(in *attest.Input) {
			in.Endorsements.Keys[0].Public = &p256.PublicKey
		}, want: attest.ReasonAlgUnsupported},
		{name: "unknown critical header", dev: ed, ev: signRaw(t, ed.key, encode(t, map[any]any{int64(1): -8, int64(4): ed.kid, int64(2): []any{"x"}, "x": 1}), payload(ed)), want: attest.ReasonBadProtectedHeader},
		{name: "critical kid", dev: ed, ev: signRaw(t, ed.key, header(map[int64]any{1: -8, 4: ed.kid, 2: []int64{4}}), payload(ed))},
		{name: "duplicate label", dev: ed, ev: signRaw(t, ed.key, append([]byte{0xa3, 0x01, 0x27, 0x01, 0x27, 0x04}, encode(t, ed.kid)...), payload(ed)), want: attest.ReasonBadProtectedHeader},
		{name: "wrong nonce", dev: ed, ev: edEv, input: func(in *attest.Input) { in.Nonce = bytes.Repeat([]byte{9}, 32) }, want: attest.ReasonNonceMismatch},
		{name: "missing nonce", dev: ed, ev: withClaims(ed, func(c map[string]any) { delete(c, "eat_nonce") }), want: attest.ReasonNonceMissing},
		{name: "short nonce", dev: ed, ev: withClaims(ed, func(c map[string]any) { c["eat_nonce"] = ed.claims.Nonce[:31] }), want: attest.ReasonNonceLength},
		{name: "long nonce", dev: ed, ev: withClaims(ed, func(c map[string]any) { c["eat_nonce"] = make([]byte, 65) }), want: attest.ReasonNonceLength},
		{name: "nonce not bytes", dev: ed, ev: withClaims(ed, func(c map[string]any) { c["eat_nonce"] = 7 }), want: attest.ReasonMalformed},
		{name: "key mismatch", dev: ed, ev: edEv, input: func(in *attest.Input) { in.KeyThumbprint = bytes.Repeat([]byte{3}, 32) }, want: attest.ReasonKeyMismatch},
		{name: "key mismatch (ML-DSA)", dev: ml, ev: mlEv, input: func(in *attest.Input) { in.KeyThumbprint = bytes.Repeat([]byte{3}, 32) }, want: attest.ReasonKeyMismatch},
		{name: "unknown profile", dev: ed, ev: withClaims(ed, func(c map[string]any) { c["eat_profile"] = "tag:github.com/hegate/hegate,2026:native/v2" }), want: attest.ReasonBadProfile},
		{name: "missing profile", dev: ed, ev: withClaims(ed, func(c map[string]any) { delete(c, "eat_profile") }), want: attest.ReasonBadProfile},
		{name: "missing ueid", dev: ed, ev: withClaims(ed, func(c map[string]any) { delete(c, "ueid") }), want: attest.ReasonMissingClaim},
		{name: "empty ueid", dev: ed, ev: withClaims(ed, func(c map[string]any) { c["ueid"] = []byte{} }), want: attest.ReasonMalformed},
		{name: "long ueid", dev: ed, ev: withClaims(ed, func(c map[string]any) { c["ueid"] = make([]byte, 34) }), want: attest.ReasonMalformed},
		{name: "missing cnf", dev: ed, ev: withClaims(ed, func(c map[string]any) { delete(c, "cnf") }), want: attest.ReasonMissingClaim},
		{name: "cnf without jkt", dev: ed, ev: withClaims(ed, func(c map[string]any) { c["cnf"] = map[string]any{} }), want: attest.ReasonMissingClaim},
		{name: "cnf with another key", dev: ed, ev: withClaims(ed, func(c map[string]any) {
			c["cnf"] = map[string]any{"jkt": ed.claims.KeyThumbprint, "jwk": map[string]any{}}
		}), want: attest.ReasonMalformed},
		{name: "short jkt", dev: ed, ev: withClaims(ed, func(c map[string]any) { c["cnf"] = map[string]any{"jkt": make([]byte, 20)} }), want: attest.ReasonMalformed},
		{name: "missing measurements", dev: ed, ev: withClaims(ed, func(c map[string]any) { delete(c, "measurements") }), want: attest.ReasonMissingClaim},
		{name: "measurement not bytes", dev: ed, ev: withClaims(ed, func(c map[string]any) { c["measurements"] = map[string]any{"os": "x"} }), want: attest.ReasonMalformed},
		{name: "measurement with empty digest", dev: ed, ev: withClaims(ed, func(c map[string]any) { c["measurements"] = map[string]any{"os": []byte{}} }), want: attest.ReasonMalformed},
		{name: "measurements with integer names", dev: ed, ev: withClaims(ed, func(c map[string]any) { c["measurements"] = map[int]any{1: []byte{1}} }), want: attest.ReasonMalformed},
		{name: "iat not an integer", dev: ed, ev: withClaims(ed, func(c map[string]any) { c["iat"] = "now" }), want: attest.ReasonMalformed},
		{name: "unknown claim", dev: ed, ev: withClaims(ed, func(c map[string]any) { c["exp"] = 1 }), want: attest.ReasonMalformed},
		{name: "integer claim key", dev: ed, ev: ed.signClaims(t, map[any]any{"eat_profile": Profile, 10: ed.claims.Nonce}), want: attest.ReasonMalformed},
		{name: "payload not a map", dev: ed, ev: ed.signClaims(t, []int{1}), want: attest.ReasonMalformed},
		{name: "empty evidence", dev: ed, ev: nil, want: attest.ReasonMalformed},
		{name: "trailing bytes", dev: ed, ev: append(bytes.Clone(edEv), 0), want: attest.ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.dev.input(tc.ev)
			if tc.input != nil {
				tc.input(&in)
			}
			res, err := verify(in)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if res.Status() != attest.StatusAffirming {
					t.Fatalf("status %s", res.Status())
				}
				return
			}
			wantReason(t, err, tc.want)
		})
	}
}

func TestAppraisal(t *testing.T) {
	d := newDevice(edKey("appraisal"), "appraisal")
	ev := d.sign(t)
	cases := []struct {
		name string
		ref  func(*attest.ReferenceValues)
		want attest.Reason
	}{
		{name: "affirming"},
		{name: "digest not allowed", ref: func(r *attest.ReferenceValues) { r.Measurements["os"] = [][]byte{bytes.Repeat([]byte{7}, 32)} }, want: attest.ReasonMeasurementUnknown},
		{name: "name not allowed", ref: func(r *attest.ReferenceValues) { delete(r.Measurements, "app") }, want: attest.ReasonMeasurementUnknown},
		{name: "listed name not measured", ref: func(r *attest.ReferenceValues) { r.Measurements["kernel"] = [][]byte{{1}} }, want: attest.ReasonMeasurementUnknown},
		{name: "empty reference values", ref: func(r *attest.ReferenceValues) { r.Measurements = nil }, want: attest.ReasonEmptyReferenceValues},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := d.input(ev)
			if tc.ref != nil {
				tc.ref(&in.ReferenceValues)
			}
			res, err := verify(in)
			if err != nil {
				t.Fatal(err)
			}
			a := res.Submods[string(attest.FormatNative)]
			if tc.want == "" {
				if res.Status() != attest.StatusAffirming || len(res.Reasons()) != 0 {
					t.Fatalf("status %s reasons %v", res.Status(), res.Reasons())
				}
				return
			}
			if res.Status() != attest.StatusContraindicated || len(res.Reasons()) != 1 || res.Reasons()[0] != tc.want {
				t.Fatalf("status %s reasons %v; want contraindicated, %s", res.Status(), res.Reasons(), tc.want)
			}
			if a.TrustVector.Executables != attest.ExecutablesContraindicated || a.TrustVector.Hardware != attest.TierNone {
				t.Errorf("vector %+v", a.TrustVector)
			}
		})
	}

	// Evidence with no measurements against a tenant that lists some.
	d.claims.Measurements = nil
	in := d.input(d.sign(t))
	in.ReferenceValues.Measurements = map[string][][]byte{"os": {{1}}}
	res, err := verify(in)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status() != attest.StatusContraindicated || res.Reasons()[0] != attest.ReasonMeasurementUnknown {
		t.Fatalf("no measurements: status %s reasons %v", res.Status(), res.Reasons())
	}
}

func TestTruncated(t *testing.T) {
	for _, d := range []*device{newDevice(edKey("trunc"), "trunc"), newDevice(mlKey("trunc"), "trunc-ml")} {
		ev := d.sign(t)
		for n := 0; n < len(ev); n++ {
			_, err := verify(d.input(ev[:n]))
			if err == nil || attest.ReasonOf(err) == "" {
				t.Fatalf("prefix of %d of %d bytes: %v", n, len(ev), err)
			}
		}
	}
}

func TestLimits(t *testing.T) {
	d := newDevice(edKey("limits"), "limits")
	protected := cosesig.ProtectedHeader(cose.AlgorithmEdDSA, d.kid)
	sig := make([]byte, 64)
	deep := func(depth int) []byte { return append(bytes.Repeat([]byte{0x81}, depth), 0) }
	many := make(map[string][]byte, attest.MaxItems+1)
	for i := 0; i <= attest.MaxItems; i++ {
		many[hex.EncodeToString([]byte{byte(i), byte(i >> 8)})] = []byte{1}
	}
	c := d.rawClaims()
	c["measurements"] = many
	cases := []struct {
		name string
		ev   []byte
		want attest.Reason
	}{
		{"oversized", make([]byte, attest.MaxEvidenceBytes+1), attest.ReasonTooLarge},
		{"deep claims", cosesig.Assemble(protected, nil, append([]byte{0xa1, 0x63, 'i', 'a', 't'}, deep(attest.MaxNestingDepth)...), sig, true), attest.ReasonTooLarge},
		{"deep unprotected header", cosesig.Assemble(protected, append([]byte{0xa1, 0x05}, deep(200)...), encode(t, 1), sig, true), attest.ReasonTooLarge},
		{"huge array", []byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, attest.ReasonTooLarge},
		{"huge map in claims", cosesig.Assemble(protected, nil, []byte{0xbb, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, sig, true), attest.ReasonTooLarge},
		{"too many measurements", cosesig.Assemble(protected, nil, encode(t, c), sig, true), attest.ReasonTooLarge},
		{"huge text", cosesig.Assemble(protected, nil, []byte{0xa1, 0x7b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, sig, true), attest.ReasonMalformed},
		{"indefinite-length map", cosesig.Assemble(protected, nil, []byte{0xbf, 0xff}, sig, true), attest.ReasonMalformed},
		{"tag in claims", cosesig.Assemble(protected, nil, []byte{0xa1, 0x63, 'i', 'a', 't', 0xc1, 0x00}, sig, true), attest.ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := verify(d.input(tc.ev))
			runtime.ReadMemStats(&after)
			wantReason(t, err, tc.want)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 4*attest.MaxEvidenceBytes+(1<<20) {
				t.Errorf("allocated %d bytes for %d bytes of evidence", grew, len(tc.ev))
			}
		})
	}
}

func TestFormat(t *testing.T) {
	if (Verifier{}).Format() != attest.FormatNative {
		t.Fatal("format")
	}
}

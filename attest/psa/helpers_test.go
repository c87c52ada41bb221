package psa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/internal/cosesig"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testKey is a P-256 key derived from label, the same in every run (so
// fuzz corpus entries signed with it stay valid).
func testKey(t testing.TB, label string) *ecdsa.PrivateKey {
	t.Helper()
	d := sha256.Sum256([]byte("hegate attest/psa test key: " + label))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testDevice is a SimulatedDevice with the key testKey(label).
func testDevice(t testing.TB, label string) *SimulatedDevice {
	t.Helper()
	d, err := SimulatedDeviceFromKey(testKey(t, label))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// testNonce is a 32-byte nonce, different for each label.
func testNonce(label string) []byte {
	n := sha256.Sum256([]byte("nonce " + label))
	return n[:]
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readPublicKey(t testing.TB, name string) crypto.PublicKey {
	t.Helper()
	k, err := attest.ParsePublicKeyPEM(readTestdata(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// deviceInput is the input a gateway would pass for a token of d
// answering nonce.
func deviceInput(d *SimulatedDevice, token, nonce []byte) attest.Input {
	return attest.Input{
		Evidence:        token,
		Nonce:           nonce,
		Endorsements:    attest.Endorsements{Keys: []attest.TrustedKey{d.Endorsement()}},
		ReferenceValues: d.ReferenceValues(),
	}
}

func verify(in attest.Input) (attest.Result, error) {
	return Verifier{Now: func() time.Time { return testNow }}.Verify(context.Background(), in)
}

// p2Claims are the claims d's Token would make, as a map a test can edit.
func p2Claims(d *SimulatedDevice, nonce []byte) map[int64]any {
	return map[int64]any{
		keyEATProfile:      Profile2,
		keyEATNonce:        nonce,
		keyEATUEID:         d.InstanceID(),
		keyPSAClientID:     d.ClientID,
		keyPSALifecycle:    d.Lifecycle,
		keyPSAImplID:       d.ImplementationID,
		keyPSABootSeed:     bytes.Repeat([]byte{0xb5}, 32),
		keyPSASwComponents: components2map(d.Components),
	}
}

// p1Claims are the same claims in PSA_IOT_PROFILE_1.
func p1Claims(d *SimulatedDevice, nonce []byte) map[int64]any {
	return map[int64]any{
		keyP1Profile:      ProfileIoT1,
		keyP1Nonce:        nonce,
		keyP1InstanceID:   d.InstanceID(),
		keyP1ClientID:     d.ClientID,
		keyP1Lifecycle:    d.Lifecycle,
		keyP1ImplID:       d.ImplementationID,
		keyP1BootSeed:     bytes.Repeat([]byte{0xb5}, 32),
		keyP1SwComponents: components2map(d.Components),
		keyP1HWVersion:    "0604565272829",
		keyP1Origination:  "https://verifier.example",
	}
}

// rfc9783Claims are the same claims in the RFC 9783 profile.
func rfc9783Claims(d *SimulatedDevice, nonce []byte) map[int64]any {
	c := p2Claims(d, nonce)
	c[keyEATProfile] = ProfileRFC9783
	c[keyEATBootSeed] = c[keyPSABootSeed]
	delete(c, keyPSABootSeed)
	return c
}

func components2map(cs []Component) []map[int64]any {
	out := make([]map[int64]any, len(cs))
	for i, c := range cs {
		m := map[int64]any{keyCompMeasurement: c.Measurement}
		if c.Type != "" {
			m[keyCompType] = c.Type
		}
		if c.Version != "" {
			m[keyCompVersion] = c.Version
		}
		if len(c.SignerID) > 0 {
			m[keyCompSignerID] = c.SignerID
		}
		out[i] = m
	}
	return out
}

func encodeCBOR(t testing.TB, v any) []byte {
	t.Helper()
	b, err := cosesig.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signClaims makes a tagged ES256 COSE_Sign1 of claims with d's key.
func signClaims(t testing.TB, d *SimulatedDevice, claims any) []byte {
	t.Helper()
	tok, err := cosesig.Sign(rand.Reader, d.Key(), nil, encodeCBOR(t, claims))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signWith makes a COSE_Sign1 with the serialized protected header given,
// signed by key over it (a header the signer's algorithm need not match).
func signWith(t testing.TB, key crypto.Signer, protected, payload []byte) []byte {
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

func wantReason(t *testing.T, err error, want attest.Reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("verified; want refusal %q", want)
	}
	if got := attest.ReasonOf(err); got != want {
		t.Fatalf("reason %q (%v); want %q", got, err, want)
	}
}

func hasReason(rs []attest.Reason, r attest.Reason) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

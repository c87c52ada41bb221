package native

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/fxamacker/cbor/v2"

	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/internal/cosesig"
)

// Profile is the eat_profile of native evidence.
const Profile = "tag:github.com/hegate/hegate,2026:native/v1"

// Limits on the claims.
const (
	// MaxUEIDBytes bounds the ueid (EAT allows 7 to 33 bytes; hegate
	// accepts 1 to 33).
	MaxUEIDBytes = 33
	// MaxMeasurementName bounds a measurement's name, as reference-values
	// documents do.
	MaxMeasurementName = 128
	// MaxDigestBytes bounds a measurement's digest.
	MaxDigestBytes = 64
	// ThumbprintBytes is the size of cnf.jkt, an RFC 7638 SHA-256
	// thumbprint.
	ThumbprintBytes = 32
)

// The claim names.
const (
	claimProfile      = "eat_profile"
	claimNonce        = "eat_nonce"
	claimUEID         = "ueid"
	claimCnf          = "cnf"
	claimJKT          = "jkt"
	claimMeasurements = "measurements"
	claimIAT          = "iat"
)

// Claims are what native evidence asserts.
type Claims struct {
	// Nonce is the challenge, attest.MinNonceBytes to MaxNonceBytes.
	Nonce []byte
	// UEID identifies the device instance: 1 to MaxUEIDBytes bytes that stay
	// the same across enrollments.
	UEID []byte
	// KeyThumbprint is the RFC 7638 SHA-256 thumbprint of the key the
	// device's credential will be bound to (cnf.jkt).
	KeyThumbprint []byte
	// Measurements are what the device measured, name to digest. Names are
	// 1 to MaxMeasurementName bytes, digests 1 to MaxDigestBytes, at most
	// attest.MaxItems of them.
	Measurements map[string][]byte
	// IssuedAt is when the evidence was made; the zero time leaves iat
	// out.
	IssuedAt time.Time
}

// encoded is the payload as it is written (in the core deterministic
// encoding, so map keys come out sorted).
type encoded struct {
	Profile      string            `cbor:"eat_profile"`
	Nonce        []byte            `cbor:"eat_nonce"`
	UEID         []byte            `cbor:"ueid"`
	Cnf          cnf               `cbor:"cnf"`
	Measurements map[string][]byte `cbor:"measurements"`
	IAT          *int64            `cbor:"iat,omitempty"`
}

type cnf struct {
	JKT []byte `cbor:"jkt"`
}

// check refuses claims the verifier would refuse for their shape.
func (c *Claims) check() error {
	switch {
	case len(c.Nonce) < attest.MinNonceBytes || len(c.Nonce) > attest.MaxNonceBytes:
		return fmt.Errorf("native: a nonce of %d bytes; %d to %d are allowed", len(c.Nonce), attest.MinNonceBytes, attest.MaxNonceBytes)
	case len(c.UEID) == 0 || len(c.UEID) > MaxUEIDBytes:
		return fmt.Errorf("native: a ueid of %d bytes; 1 to %d are allowed", len(c.UEID), MaxUEIDBytes)
	case len(c.KeyThumbprint) != ThumbprintBytes:
		return fmt.Errorf("native: a key thumbprint of %d bytes, not %d", len(c.KeyThumbprint), ThumbprintBytes)
	case len(c.Measurements) > attest.MaxItems:
		return fmt.Errorf("native: %d measurements; at most %d", len(c.Measurements), attest.MaxItems)
	}
	for name, d := range c.Measurements {
		if err := checkMeasurement(name, d); err != nil {
			return fmt.Errorf("native: %v", err)
		}
	}
	return nil
}

func checkMeasurement(name string, digest []byte) error {
	if name == "" || len(name) > MaxMeasurementName {
		return fmt.Errorf("measurement names are 1 to %d bytes", MaxMeasurementName)
	}
	if len(digest) == 0 || len(digest) > MaxDigestBytes {
		return fmt.Errorf("measurement %q: a digest of %d bytes; 1 to %d are allowed", name, len(digest), MaxDigestBytes)
	}
	return nil
}

// MarshalCBOR encodes the claims as the evidence payload.
func (c *Claims) MarshalCBOR() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	e := encoded{Profile: Profile, Nonce: c.Nonce, UEID: c.UEID, Cnf: cnf{JKT: c.KeyThumbprint},
		Measurements: c.Measurements}
	if e.Measurements == nil {
		e.Measurements = map[string][]byte{}
	}
	if !c.IssuedAt.IsZero() {
		t := c.IssuedAt.Unix()
		e.IAT = &t
	}
	return cosesig.Marshal(e)
}

// Sign makes native evidence: a tagged COSE_Sign1 whose payload is claims
// and whose protected header names the algorithm of key and kid, the key
// identifier the tenant endorsed key under (attest.TrustedKey.ID). key is
// an ed25519.PrivateKey (EdDSA) or an *mldsa65.PrivateKey (ML-DSA-65,
// signed hedged with an empty context), or another crypto.Signer with one
// of those public keys.
func Sign(claims Claims, key crypto.Signer, kid []byte) ([]byte, error) {
	if key == nil {
		return nil, errors.New("native: no signing key")
	}
	switch key.Public().(type) {
	case ed25519.PublicKey, *mldsa65.PublicKey:
	default:
		return nil, fmt.Errorf("native: evidence is signed with Ed25519 or ML-DSA-65, not %T", key.Public())
	}
	if len(kid) == 0 || len(kid) > cosesig.MaxKIDBytes {
		return nil, fmt.Errorf("native: a kid of %d bytes; 1 to %d are allowed", len(kid), cosesig.MaxKIDBytes)
	}
	payload, err := claims.MarshalCBOR()
	if err != nil {
		return nil, err
	}
	return cosesig.Sign(rand.Reader, key, kid, payload)
}

// ParseClaims decodes and checks an evidence payload. Every refusal is an
// *attest.Error: CBOR that is not one map with text keys, over the limits,
// with a claim not defined here or of the wrong type or size (malformed,
// too-large); eat_profile missing or another value (bad-profile);
// eat_nonce missing (nonce-missing) or of a length outside
// attest.MinNonceBytes to MaxNonceBytes (nonce-length); ueid, cnf, cnf.jkt
// or measurements missing (missing-claim).
func ParseClaims(payload []byte) (*Claims, error) {
	m, err := cosesig.RawTextMap(payload, "claims")
	if err != nil {
		return nil, err
	}
	for k := range m {
		switch k {
		case claimProfile, claimNonce, claimUEID, claimCnf, claimMeasurements, claimIAT:
		default:
			return nil, attest.Errorf(attest.ReasonMalformed, "unknown claim %q", k)
		}
	}
	raw, ok := m[claimProfile]
	if !ok {
		return nil, attest.Errorf(attest.ReasonBadProfile, "no eat_profile claim")
	}
	if p, err := cosesig.RawText(raw, claimProfile); err != nil || p != Profile {
		return nil, attest.Errorf(attest.ReasonBadProfile, "eat_profile is not %q", Profile)
	}
	c := &Claims{}

	if raw, ok = m[claimNonce]; !ok {
		return nil, attest.Errorf(attest.ReasonNonceMissing, "no eat_nonce claim")
	}
	if c.Nonce, err = cosesig.RawBytes(raw, claimNonce); err != nil {
		return nil, err
	}
	if n := len(c.Nonce); n < attest.MinNonceBytes || n > attest.MaxNonceBytes {
		return nil, attest.Errorf(attest.ReasonNonceLength, "eat_nonce of %d bytes; %d to %d are allowed", n, attest.MinNonceBytes, attest.MaxNonceBytes)
	}

	if raw, ok = m[claimUEID]; !ok {
		return nil, attest.Errorf(attest.ReasonMissingClaim, "no ueid claim")
	}
	if c.UEID, err = cosesig.RawBytes(raw, claimUEID); err != nil {
		return nil, err
	}
	if len(c.UEID) == 0 || len(c.UEID) > MaxUEIDBytes {
		return nil, attest.Errorf(attest.ReasonMalformed, "ueid of %d bytes; 1 to %d are allowed", len(c.UEID), MaxUEIDBytes)
	}

	if raw, ok = m[claimCnf]; !ok {
		return nil, attest.Errorf(attest.ReasonMissingClaim, "no cnf claim")
	}
	if c.KeyThumbprint, err = parseCnf(raw); err != nil {
		return nil, err
	}

	if raw, ok = m[claimMeasurements]; !ok {
		return nil, attest.Errorf(attest.ReasonMissingClaim, "no measurements claim")
	}
	if c.Measurements, err = parseMeasurements(raw); err != nil {
		return nil, err
	}

	if raw, ok = m[claimIAT]; ok {
		iat, err := cosesig.RawInt(raw, claimIAT)
		if err != nil {
			return nil, err
		}
		c.IssuedAt = time.Unix(iat, 0)
	}
	return c, nil
}

func parseCnf(raw cbor.RawMessage) ([]byte, error) {
	m, err := cosesig.RawTextMap(raw, claimCnf)
	if err != nil {
		return nil, err
	}
	for k := range m {
		if k != claimJKT {
			return nil, attest.Errorf(attest.ReasonMalformed, "cnf has %q; only jkt is accepted", k)
		}
	}
	jkt, ok := m[claimJKT]
	if !ok {
		return nil, attest.Errorf(attest.ReasonMissingClaim, "cnf has no jkt")
	}
	b, err := cosesig.RawBytes(jkt, "cnf.jkt")
	if err != nil {
		return nil, err
	}
	if len(b) != ThumbprintBytes {
		return nil, attest.Errorf(attest.ReasonMalformed, "cnf.jkt of %d bytes, not %d", len(b), ThumbprintBytes)
	}
	return b, nil
}

func parseMeasurements(raw cbor.RawMessage) (map[string][]byte, error) {
	m, err := cosesig.RawTextMap(raw, claimMeasurements)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(m))
	for name, v := range m {
		d, err := cosesig.RawBytes(v, fmt.Sprintf("measurement %q", name))
		if err != nil {
			return nil, err
		}
		if err := checkMeasurement(name, d); err != nil {
			return nil, attest.Errorf(attest.ReasonMalformed, "%v", err)
		}
		out[name] = d
	}
	return out, nil
}

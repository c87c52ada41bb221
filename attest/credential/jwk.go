package credential

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// The device key types a proof may use, with their JWS algorithms: Ed25519
// (RFC 8037) for software keys, and P-256 (RFC 7518 section 3.4) because
// that is what TPMs, secure elements and platform keystores offer.
const (
	algEdDSA = "EdDSA"
	algES256 = "ES256"
)

// publicParams returns the JWK's required public members (RFC 7638 section
// 3.2) for pub, with the algorithm it signs with. Only Ed25519 and P-256
// keys are supported.
func publicParams(pub crypto.PublicKey) (kty, crv, x, y, alg string, err error) {
	enc := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", "", "", "", "", fmt.Errorf("credential: Ed25519 public key is %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		return "OKP", "Ed25519", enc(k), "", algEdDSA, nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve != elliptic.P256() {
			return "", "", "", "", "", errors.New("credential: ECDSA key is not on P-256")
		}
		b, err := k.Bytes() // 0x04 || X || Y, validated
		if err != nil {
			return "", "", "", "", "", fmt.Errorf("credential: ECDSA key: %w", err)
		}
		return "EC", "P-256", enc(b[1:33]), enc(b[33:]), algES256, nil
	default:
		return "", "", "", "", "", fmt.Errorf("credential: unsupported key type %T (want ed25519.PublicKey or a P-256 *ecdsa.PublicKey)", pub)
	}
}

// ThumbprintBytes returns the RFC 7638 SHA-256 thumbprint of pub's JWK,
// unencoded: the form attest.Input.KeyThumbprint and attest.ExpectedNonce
// take. pub is an ed25519.PublicKey or a P-256 *ecdsa.PublicKey.
func ThumbprintBytes(pub crypto.PublicKey) ([]byte, error) {
	kty, crv, x, y, _, err := publicParams(pub)
	if err != nil {
		return nil, err
	}
	// RFC 7638 section 3.2: the required members only, in lexicographic
	// order, no whitespace. The values are base64url, so they need no JSON
	// escaping and can be written directly.
	var canon string
	switch kty {
	case "OKP":
		canon = `{"crv":"` + crv + `","kty":"OKP","x":"` + x + `"}`
	case "EC":
		canon = `{"crv":"` + crv + `","kty":"EC","x":"` + x + `","y":"` + y + `"}`
	}
	sum := sha256.Sum256([]byte(canon))
	return sum[:], nil
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of pub's JWK,
// base64url without padding: the value of the token's cnf.jkt (RFC 9449
// section 6.1) and of NewKey's kid.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	b, err := ThumbprintBytes(pub)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// PublicJWK returns pub as a JWK with its public members only (kty, crv, x
// and, for EC, y), ready to be the jwk header of a DPoP proof (RFC 9449
// section 4.2). pub is an ed25519.PublicKey or a P-256 *ecdsa.PublicKey.
func PublicJWK(pub crypto.PublicKey) (map[string]any, error) {
	kty, crv, x, y, _, err := publicParams(pub)
	if err != nil {
		return nil, err
	}
	jwk := map[string]any{"kty": kty, "crv": crv, "x": x}
	if y != "" {
		jwk["y"] = y
	}
	return jwk, nil
}

// privateMembers are the JWK members that carry private key material (RFC
// 7518 sections 6.2.2, 6.3.2 and 6.4.1; RFC 8037 section 2). A proof's jwk
// with any of them is refused: a device that would publish its private key
// in every request has no key worth binding to.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// parseProofJWK reads the jwk header of a DPoP proof into a public key.
// It accepts exactly the two key types a proof may use and checks their
// shape strictly: base64url without padding, the exact coordinate lengths,
// and for P-256 a point on the curve.
func parseProofJWK(v any) (crypto.PublicKey, error) {
	m, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return nil, errorf(ReasonProofKey, "no jwk header")
		}
		return nil, errorf(ReasonProofKey, "jwk header is %s, not an object", short(v))
	}
	for _, p := range privateMembers {
		if _, ok := m[p]; ok {
			return nil, errorf(ReasonProofKey, "jwk has the private member %q", p)
		}
	}
	kty, _ := m["kty"].(string)
	crv, _ := m["crv"].(string)
	switch {
	case kty == "OKP" && crv == "Ed25519":
		x, err := coordinate(m, "x", ed25519.PublicKeySize)
		if err != nil {
			return nil, err
		}
		return ed25519.PublicKey(x), nil
	case kty == "EC" && crv == "P-256":
		x, err := coordinate(m, "x", 32)
		if err != nil {
			return nil, err
		}
		y, err := coordinate(m, "y", 32)
		if err != nil {
			return nil, err
		}
		point := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
		if err != nil {
			return nil, errorf(ReasonProofKey, "jwk is not a point on P-256")
		}
		return pub, nil
	default:
		return nil, errorf(ReasonProofKey, "jwk kty %s crv %s: want OKP Ed25519 or EC P-256", short(m["kty"]), short(m["crv"]))
	}
}

// coordinate decodes the JWK member name, which must be the unpadded
// base64url of exactly n bytes.
func coordinate(m map[string]any, name string, n int) ([]byte, error) {
	s, ok := m[name].(string)
	if !ok {
		return nil, errorf(ReasonProofKey, "jwk member %q missing or not a string", name)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != n || len(s) != base64.RawURLEncoding.EncodedLen(n) {
		return nil, errorf(ReasonProofKey, "jwk member %q is not %d bytes of base64url", name, n)
	}
	return b, nil
}

// MaxJWKBytes bounds a JWK document ParseJWK reads.
const MaxJWKBytes = 4 << 10

// ParseJWK reads a device's public JWK (OKP Ed25519 or EC P-256), as an
// enrollment request carries it, with the checks a proof's jwk header
// gets: no private member, exact coordinate lengths, a point on the curve.
func ParseJWK(b []byte) (crypto.PublicKey, error) {
	if len(b) == 0 {
		return nil, errors.New("no JWK")
	}
	if len(b) > MaxJWKBytes {
		return nil, fmt.Errorf("a JWK of %d bytes exceeds %d", len(b), MaxJWKBytes)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, errors.New("the JWK is not JSON")
	}
	pub, err := parseProofJWK(v)
	var e *Error
	if errors.As(err, &e) {
		return nil, errors.New(e.Detail)
	}
	return pub, err
}

// Package credential issues and verifies the device credential: the
// short-lived access token the gateway gives a device once its attestation
// evidence was accepted (package attest), and the DPoP proofs (RFC 9449)
// that bind every request made with that token to the device's own key.
//
// The access token is a JWT in the RFC 9068 profile (header typ "at+jwt"),
// signed by one of the gateway's Ed25519 keys (alg "EdDSA", RFC 8037) named
// by kid. Its cnf.jkt claim (RFC 9449 section 6.1) is the RFC 7638
// thumbprint of the device's public key, the same value the device's
// evidence was bound to (attest.ExpectedNonce). A stolen token alone is
// therefore useless: each request must also carry a fresh proof, a JWT of
// typ "dpop+jwt" signed by that key over the request's method and URL and
// over a hash of the token (ath), and each proof is accepted once.
//
// The parts:
//
//   - Key, KeySource, StaticKeys, NewKey and JWKS: the gateway's signing
//     keys, with rotation (a retired key verifies until its NotAfter);
//   - Issuer: makes access tokens;
//   - Verifier: checks a token and its proof for one request, and a
//     ReplayCache (MemoryReplay, or the gateway's shared store through
//     ReplayFunc) that refuses a proof seen before;
//   - Thumbprint, ThumbprintBytes, PublicJWK and NewProof: the device side.
//
// Nothing here knows HTTP or SQL. Every refusal is an *Error with a Reason,
// so callers (and tests) can tell exactly why a request was refused; any
// other error (a key source or replay store that failed, a misconfigured
// Verifier) is an internal failure, not the device's fault.
package credential

import (
	"errors"
	"fmt"
)

// Limits on the untrusted strings a verifier reads, checked before any
// decoding. A DPoP-bound token with a few claims is well under 1 KiB and a
// proof with an embedded P-256 JWK under 1 KiB; 8 KiB leaves room for
// growth while keeping the cost of a garbage request small.
const (
	// MaxTokenBytes bounds an access token.
	MaxTokenBytes = 8 << 10
	// MaxProofBytes bounds a DPoP proof.
	MaxProofBytes = 8 << 10
	// MaxJTIBytes bounds a proof's jti. RFC 9449 section 4.2 asks for at
	// least 96 bits of randomness, which any sane encoding fits in far less;
	// the bound keeps replay-cache keys and logs small.
	MaxJTIBytes = 128
	// MaxURLBytes bounds a request URL and a proof's htu.
	MaxURLBytes = 4 << 10
)

// Reason says why a request's credential was refused. Its values are
// stable: they appear in API errors (the gateway maps them to
// WWW-Authenticate error descriptions) and in logs.
type Reason string

// The reasons, one per cause. Each negative test asserts one.
const (
	ReasonTokenMissing     Reason = "token-missing"       // no access token
	ReasonTokenTooLarge    Reason = "token-too-large"     // over MaxTokenBytes
	ReasonTokenMalformed   Reason = "token-malformed"     // not a compact JWS with JSON header and claims, or a crit header
	ReasonTokenAlg         Reason = "token-alg"           // alg is not EdDSA (none, HS256, RS256, ES256, ...)
	ReasonTokenType        Reason = "token-type"          // header typ is not at+jwt
	ReasonTokenSignature   Reason = "token-signature"     // the signature does not verify under the kid's key
	ReasonTokenExpired     Reason = "token-expired"       // exp has passed (beyond the leeway)
	ReasonTokenNotYetValid Reason = "token-not-yet-valid" // nbf or iat in the future (beyond the leeway)
	ReasonTokenIssuer      Reason = "token-issuer"        // iss is not the gateway's
	ReasonTokenAudience    Reason = "token-audience"      // aud does not name the gateway
	ReasonTokenUnknownKey  Reason = "token-unknown-key"   // no kid, or no verification key has it
	ReasonTokenKeyRetired  Reason = "token-key-retired"   // the kid's key is past its NotAfter
	ReasonTokenClaims      Reason = "token-claims"        // a required claim (exp, iss, aud, sub, iat, jti, cnf.jkt, hegate_tenant) absent or malformed

	ReasonProofMissing     Reason = "proof-missing"      // no DPoP proof
	ReasonProofTooLarge    Reason = "proof-too-large"    // over MaxProofBytes
	ReasonProofMalformed   Reason = "proof-malformed"    // not a compact JWS with JSON header and claims, or a crit header
	ReasonProofAlg         Reason = "proof-alg"          // alg not EdDSA or ES256, or not the one for the jwk's key type
	ReasonProofType        Reason = "proof-type"         // header typ is not dpop+jwt
	ReasonProofKey         Reason = "proof-key"          // header jwk absent, private, or not an OKP Ed25519 or EC P-256 public key
	ReasonProofSignature   Reason = "proof-signature"    // the signature does not verify under the header jwk
	ReasonProofJTI         Reason = "proof-jti"          // jti absent, empty or over MaxJTIBytes (one that is not a string does not decode: proof-malformed)
	ReasonProofMethod      Reason = "proof-method"       // htm is not the request's method
	ReasonProofURL         Reason = "proof-url"          // htu is not the request's URL (after normalisation)
	ReasonProofIAT         Reason = "proof-iat"          // iat absent, or further than the proof window from now
	ReasonProofATH         Reason = "proof-ath"          // ath absent or not the hash of the presented token (or present with no token)
	ReasonProofKeyMismatch Reason = "proof-key-mismatch" // the proof's key is not the one the token is bound to
	ReasonProofReplayed    Reason = "proof-replayed"     // this key already used this jti
)

// Error is a refusal with its reason. Detail is safe to show to the device
// owner and to log: it names fields and expectations, never token, proof
// or key material, and never echoes more than a short quoted fragment of
// what the device sent.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return "credential: " + string(e.Reason)
	}
	return "credential: " + string(e.Reason) + ": " + e.Detail
}

// errorf makes an *Error with a formatted detail.
func errorf(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reason of the first *Error in err's chain, or "" when
// err is nil or not a refusal (an internal failure).
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// short quotes an untrusted header value for a Detail: at most 16 bytes,
// so that a detail never carries more than a recognisable fragment.
func short(v any) string {
	s, ok := v.(string)
	if !ok {
		if v == nil {
			return "absent"
		}
		return fmt.Sprintf("a %T", v)
	}
	if len(s) > 16 {
		s = s[:16] + "..."
	}
	return fmt.Sprintf("%q", s)
}

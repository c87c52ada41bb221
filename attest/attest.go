// Package attest verifies what devices prove about themselves before they
// may send data: the RATS passport model (RFC 9334). A device gets a nonce,
// answers with evidence in one of the formats below, and a Verifier
// appraises it against the tenant's endorsements (keys or CA roots it
// trusts) and reference values (the measurements it allows), giving a
// Result in the shape of EAR (draft-ietf-rats-ear). The gateway then issues
// a short-lived credential bound to the device's key (package
// attest/credential).
//
// The formats live in sub-packages, each a Verifier:
//
//   - attest/tpm: a TPM 2.0 quote over selected PCRs, signed by an
//     attestation key that is pre-registered or certified by a CA root;
//   - attest/psa: a PSA attestation token (RFC 9783; also the older
//     PSA_IOT_PROFILE_1 and http://arm.com/psa/2.0.0 profiles that Trusted
//     Firmware-M makes), COSE_Sign1 over CBOR claims;
//   - attest/native: hegate's own COSE_Sign1 evidence signed with Ed25519 or
//     ML-DSA-65, for software devices and development.
//
// Nothing here knows HTTP or SQL. Every refusal is an *Error with a Reason,
// so callers (and tests) can tell exactly why evidence did not pass.
package attest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Format names an evidence format.
type Format string

// The evidence formats.
const (
	FormatTPM    Format = "tpm"
	FormatPSA    Format = "psa"
	FormatNative Format = "native"
)

// Formats lists every format, in the order the docs present them.
var Formats = []Format{FormatTPM, FormatPSA, FormatNative}

// Valid reports whether f is a known format.
func (f Format) Valid() bool {
	for _, g := range Formats {
		if f == g {
			return true
		}
	}
	return false
}

// Limits on the untrusted bytes a verifier reads. Every decoder checks
// them before allocating.
const (
	// MaxEvidenceBytes bounds one piece of evidence of any format.
	MaxEvidenceBytes = 64 << 10
	// MaxNestingDepth bounds the nesting of CBOR arrays and maps.
	MaxNestingDepth = 16
	// MaxItems bounds the elements of any one CBOR array or map, and the
	// number of PCRs, software components or measurements.
	MaxItems = 256
	// MinNonceBytes and MaxNonceBytes bound a challenge nonce.
	MinNonceBytes = 32
	MaxNonceBytes = 64
)

// Input is what a verifier checks evidence against.
type Input struct {
	// Evidence is the device's evidence, at most MaxEvidenceBytes.
	Evidence []byte
	// Nonce is the value the evidence must carry: see ExpectedNonce.
	Nonce []byte
	// KeyThumbprint, when set, is the RFC 7638 SHA-256 thumbprint of the
	// key the credential will be bound to; formats whose claims name a key
	// (native) must name this one.
	KeyThumbprint []byte
	// Endorsements are the keys and CA roots the tenant trusts.
	Endorsements Endorsements
	// ReferenceValues are the measurements the tenant allows. An empty set
	// never matches.
	ReferenceValues ReferenceValues
	// Previous is the clock this device's last accepted evidence showed,
	// when the format has one (TPM); evidence whose clock went back from it
	// is refused.
	Previous *Clock
}

// Verifier appraises evidence of one format.
type Verifier interface {
	// Format names the format this verifier reads.
	Format() Format
	// Verify checks the evidence in in. A nil error means the evidence is
	// authentic and fresh (signature by an endorsed key, expected nonce);
	// the Result's status then says how its claims compare with the
	// reference values (affirming only when every measurement is allowed).
	// Evidence that is malformed, not authentic or not fresh is an *Error
	// with its Reason and no Result.
	Verify(ctx context.Context, in Input) (Result, error)
}

// ExpectedNonce is the value evidence of format f must carry for the
// challenge nonce challenge and a credential key with RFC 7638 thumbprint
// jkt. Native evidence names the key in its claims, so it carries the
// challenge itself; TPM quotes and PSA tokens have one nonce field and carry
// SHA-256(challenge || jkt), which binds the credential's key into the
// evidence so that no one can relay a device's answer with a key of their
// own.
func ExpectedNonce(f Format, challenge, jkt []byte) []byte {
	if f == FormatNative {
		return append([]byte(nil), challenge...)
	}
	h := sha256.New()
	h.Write(challenge)
	h.Write(jkt)
	return h.Sum(nil)
}

// Clock is a TPM's clock as one quote shows it (TPMS_CLOCK_INFO).
type Clock struct {
	Clock        uint64 `json:"clock"`
	ResetCount   uint32 `json:"reset_count"`
	RestartCount uint32 `json:"restart_count"`
	Safe         bool   `json:"safe"`
}

// WentBackFrom reports whether c is earlier than prev: a lower reset or
// restart count, or the same counts and a clock that did not advance.
func (c Clock) WentBackFrom(prev Clock) bool {
	switch {
	case c.ResetCount != prev.ResetCount:
		return c.ResetCount < prev.ResetCount
	case c.RestartCount != prev.RestartCount:
		return c.RestartCount < prev.RestartCount
	default:
		return c.Clock <= prev.Clock
	}
}

// Reason says why evidence was refused or why its status is not
// affirming. Its values are stable: they appear in API errors and in
// stored results.
type Reason string

// The reasons. Each negative test asserts one.
const (
	ReasonMalformed            Reason = "malformed"              // the bytes do not decode as the format says
	ReasonTooLarge             Reason = "too-large"              // over a size, count or nesting limit
	ReasonUnsupportedFormat    Reason = "unsupported-format"     // no verifier for this format
	ReasonBadProfile           Reason = "bad-profile"            // a profile or type field this verifier does not accept
	ReasonAlgNone              Reason = "alg-none"               // the evidence names no algorithm, or "none"
	ReasonAlgMismatch          Reason = "alg-mismatch"           // the algorithm is not the one pinned for the key
	ReasonAlgUnsupported       Reason = "alg-unsupported"        // an algorithm we do not accept at all
	ReasonBadSignature         Reason = "bad-signature"          // the signature does not verify under the key
	ReasonSignatureRange       Reason = "signature-out-of-range" // an ECDSA r or s that is zero or not below the group order
	ReasonBadProtectedHeader   Reason = "bad-protected-header"   // COSE protected header missing, duplicated or critical fields unknown
	ReasonUnknownKey           Reason = "unknown-key"            // no endorsed key matches (kid, instance id or AK)
	ReasonUnknownInstance      Reason = "unknown-instance"       // a PSA instance id with no endorsed key
	ReasonNonceMissing         Reason = "nonce-missing"          // the evidence carries no nonce
	ReasonNonceMismatch        Reason = "nonce-mismatch"         // the nonce is not the expected one
	ReasonNonceLength          Reason = "nonce-length"           // a nonce shorter or longer than allowed
	ReasonKeyMismatch          Reason = "key-mismatch"           // the key named in the claims is not the credential key
	ReasonMissingClaim         Reason = "missing-claim"          // a claim the profile requires is absent
	ReasonBadMagic             Reason = "tpm-bad-magic"          // TPMS_ATTEST magic is not TPM_GENERATED_VALUE
	ReasonBadType              Reason = "tpm-bad-type"           // TPMS_ATTEST is not a quote
	ReasonPCRDigestMismatch    Reason = "tpm-pcr-digest"         // the PCR values given do not hash to the quoted digest
	ReasonClockWentBack        Reason = "tpm-clock-went-back"    // the TPM clock is earlier than the last accepted quote's
	ReasonPCRSelection         Reason = "tpm-pcr-selection"      // the PCRs given are not the ones quoted, or a bank other than SHA-256
	ReasonAKAttributes         Reason = "tpm-ak-attributes"      // the key is not a restricted, fixed signing key made in the TPM
	ReasonCertUntrusted        Reason = "cert-untrusted"         // no chain to an endorsed root
	ReasonCertExpired          Reason = "cert-expired"           // a certificate outside its validity
	ReasonCertCAAsLeaf         Reason = "cert-ca-as-leaf"        // a CA certificate used as the attestation key's
	ReasonCertBadUsage         Reason = "cert-bad-usage"         // the leaf may not sign attestations
	ReasonEmptyReferenceValues Reason = "empty-reference-values" // the tenant allows no measurement for this format
	ReasonMeasurementUnknown   Reason = "measurement-unknown"    // a measurement not in the reference values
	ReasonImplementationID     Reason = "implementation-unknown" // a PSA implementation id not endorsed
	ReasonDebugLifecycle       Reason = "debug-lifecycle"        // a PSA lifecycle other than secured

	// Reasons of the enrollment flow around the verifiers.
	ReasonNonceUnknown  Reason = "nonce-unknown"  // never issued to this tenant (or to another tenant)
	ReasonNonceReused   Reason = "nonce-reused"   // redeemed before: each challenge enrolls once
	ReasonNonceExpired  Reason = "nonce-expired"  // the challenge's time to live passed
	ReasonStatus        Reason = "status-refused" // the appraisal's status may not enroll or run inference
	ReasonDeviceRevoked Reason = "device-revoked" // the device was revoked
	ReasonDeviceUnknown Reason = "device-unknown" // the credential names no enrolled device
	ReasonDeviceRekeyed Reason = "device-rekeyed" // the device enrolled again with another key
	ReasonPolicyAPIKey  Reason = "policy-api-key" // the model's policy requires an attested device
	ReasonPolicyDevice  Reason = "policy-device"  // the model's policy does not admit this device
	ReasonDeviceKey     Reason = "device-key"     // the device key JWK is missing or not Ed25519/P-256
)

// Error is a refusal with its reason. Detail is safe to show to the device
// owner: it names fields and expectations, never key material.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return "attestation: " + string(e.Reason)
	}
	return "attestation: " + string(e.Reason) + ": " + e.Detail
}

// Errorf makes an *Error with a formatted detail.
func Errorf(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reason of the first *Error in err's chain, or "".
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// Package native verifies hegate's own evidence (attest.FormatNative), for
// software devices and development, and makes it on the device.
//
// Native evidence proves that the holder of an endorsed signing key
// answered the gateway's challenge, for a credential key it names, with
// the measurements it reports. It proves nothing about hardware: the key
// is a software key, and the measurements are what the device's own
// software says. Its appraisal therefore makes no hardware claim
// (attest.TrustVector.Hardware is attest.TierNone).
//
// # Evidence format
//
// The evidence is a COSE_Sign1 (RFC 9052), tagged with CBOR tag 18 or
// not, at most attest.MaxEvidenceBytes, with the CBOR limits of attest (no
// indefinite lengths, no tags inside, no duplicate map keys, nesting at
// most attest.MaxNestingDepth, at most attest.MaxItems elements in any
// array or map):
//
//	COSE_Sign1 = [
//	  protected:   bstr .cbor {
//	                 1 => -8 / -49,        ; alg: EdDSA (Ed25519) or ML-DSA-65
//	                 4 => bstr .size (1..64), ; kid: selects the endorsed key
//	                 ? 2 => [+ 1 / 4],     ; crit: only alg and kid
//	                 ? 3 => tstr / uint,   ; content type, not interpreted
//	                 * label => any        ; other headers, ignored
//	               },
//	  unprotected: { * label => any },     ; no alg, crit or kid here
//	  payload:     bstr .cbor claims,
//	  signature:   bstr                    ; Ed25519: 64 bytes; ML-DSA-65: 3309
//	]
//
//	claims = {
//	  "eat_profile"  => "tag:github.com/hegate/hegate,2026:native/v1",
//	  "eat_nonce"    => bstr .size (32..64),  ; the challenge
//	  "ueid"         => bstr .size (1..33),   ; the device instance
//	  "cnf"          => { "jkt" => bstr .size 32 }, ; RFC 7638 SHA-256 thumbprint
//	                                          ; of the credential key
//	  "measurements" => { * tstr .size (1..128) => bstr .size (1..64) },
//	  ? "iat"        => int,                  ; seconds since 1970, informative
//	}
//
// The signature is over the COSE Sig_structure ["Signature1", protected,
// empty external data, payload]: Ed25519 (RFC 8032, pure) for EdDSA, ML-DSA-65 (FIPS 204)
// with an empty context string for -49. Claim names are matched exactly; a
// claim not listed above, or a key other than "jkt" in "cnf", is refused,
// so that nothing the device sends is silently ignored. Sign writes the
// protected header and the claims in the core deterministic encoding; the
// verifier does not require it.
//
// # Verification
//
// Verifier.Verify checks, in this order, each failure an *attest.Error
// with the reason named:
//
//  1. the COSE_Sign1 (see attest/internal/cosesig): size (too-large), CBOR
//     shape and limits (malformed, too-large), protected header: a
//     duplicate label, a label in both buckets, an unknown critical header,
//     no kid or a kid outside the protected header (bad-protected-header),
//     no algorithm or algorithm 0 or "none" (alg-none), an algorithm other
//     than ES256, ES384, ES512, EdDSA and ML-DSA-65 (alg-unsupported);
//  2. the claims: eat_profile (bad-profile), eat_nonce's presence
//     (nonce-missing) and length (nonce-length), ueid, cnf, cnf.jkt and
//     measurements present (missing-claim), every claim's type and size
//     and no unknown claim (malformed);
//  3. the kid selects the endorsed key whose attest.TrustedKey.ID it equals
//     (unknown-key), which must be Ed25519 or ML-DSA-65 (alg-unsupported);
//  4. the signature: the header's algorithm must be the key's, EdDSA for
//     Ed25519 and -49 for ML-DSA-65 (alg-mismatch), then the signature
//     itself (bad-signature);
//  5. eat_nonce equals Input.Nonce (nonce-mismatch): native evidence
//     carries the challenge itself (attest.ExpectedNonce), since cnf names
//     the key;
//  6. when Input.KeyThumbprint is set, cnf.jkt equals it (key-mismatch).
//
// Evidence that passes is authentic and fresh. Its Result's appraisal has
// instance identity trusted (2), no hardware claim (0), and executables
// approved (2) when every measurement's name and digest are in
// ReferenceValues.Measurements and every name listed there is measured;
// otherwise executables are contraindicated (96) with reason
// measurement-unknown, or empty-reference-values when the tenant allows no
// native measurement at all. The Result's InstanceID is the hex SHA-256 of
// the endorsed key's SubjectPublicKeyInfo (attest.KeyDigest), not the
// ueid: the ueid is the device's own say, and may not choose which
// registry row its evidence updates. The ueid is reported in the Result's
// UEID, the hex cnf.jkt in its KeyThumbprint and each measurement's hex
// digest in its Measurements.
//
// # Device side
//
// Sign makes the evidence from Claims with an Ed25519 or ML-DSA-65 private
// key and the kid the tenant endorsed its public key under.
package native

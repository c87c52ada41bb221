// Package psa verifies Arm PSA attestation tokens (attest.FormatPSA), the
// evidence Trusted Firmware-M (TF-M) and other PSA Root-of-Trust
// implementations make, and makes simulated ones for development.
//
// # Evidence format
//
// A token is a COSE_Sign1 (RFC 9052), tagged with CBOR tag 18 or not, at
// most attest.MaxEvidenceBytes, whose payload is a CBOR map of claims with
// integer keys. Three profiles are accepted, named by the token's profile
// claim:
//
//   - PSA_IOT_PROFILE_1 (draft-tschofenig-rats-psa-token up to -07, what
//     TF-M 1.x made by default), claim -75000 "PSA_IOT_PROFILE_1";
//   - http://arm.com/psa/2.0.0 (draft-tschofenig-rats-psa-token-08 and
//     later, made by current TF-M), eat_profile (265) "http://arm.com/psa/2.0.0";
//   - RFC 9783's tag:psacertified.org,2023:psa#tfm, eat_profile (265) with
//     that value; its claims are those of http://arm.com/psa/2.0.0 but for
//     the boot seed, which is EAT's bootseed claim (268, RFC 9711), key
//     2397 being reserved.
//
// The claim keys, as RFC 9783, the drafts and Veraison's psatoken define
// them, and as TF-M emits them:
//
//	claim                           PSA_IOT_PROFILE_1   2.0.0 / RFC 9783   type
//	profile                         -75000              265 (eat_profile)   tstr
//	client id                       -75001              2394                int, non-zero, 32-bit
//	security lifecycle              -75002              2395                uint .le 0xffff
//	implementation id               -75003              2396                bstr .size 32
//	boot seed                       -75004 (required)   2397 / 268 (1)      bstr .size 32 / 8..32
//	hardware version / cert. ref.   -75005 (optional)   2398 (optional)     tstr
//	software components             -75006              2399                [+ component]
//	no software measurements        -75007              -                   refused (see below)
//	nonce                           -75008              10 (eat_nonce)      bstr .size (32 / 48 / 64)
//	instance id                     -75009              256 (ueid)          bstr .size 33, first byte 0x01
//	verification service indicator  -75010 (optional)   2400 (optional)     tstr
//
// (1) optional; 2397 in http://arm.com/psa/2.0.0, 268 (EAT bootseed) in
// RFC 9783.
//
// A software component is a map with keys 1 (measurement type, tstr), 2
// (measurement value, bstr of 32, 48 or 64 bytes, required), 4 (version,
// tstr), 5 (signer id, bstr of 32, 48 or 64 bytes) and 6 (measurement
// description, tstr); PSA_IOT_PROFILE_1 components may also carry the
// obsolete key 3 (security epoch, uint). In the EAT profiles the nonce may
// also be an array of exactly one byte string.
//
// A claim key the token's profile does not define is refused, and so is a
// token with both profile keys: nothing is silently ignored and no claim
// is read under another profile's meaning. A PSA_IOT_PROFILE_1 token that
// asserts "no software measurements" (-75007) is refused with
// missing-claim: hegate appraises software components, and such a token
// has none.
//
// # Verification
//
// Verifier.Verify checks, in this order, each failure an *attest.Error
// with the reason named:
//
//  1. the COSE_Sign1 (see attest/internal/cosesig): size (too-large), CBOR
//     shape and limits (malformed, too-large), protected header: a
//     duplicate label, a label in both buckets or an unknown critical
//     header (bad-protected-header), no algorithm or algorithm 0 or "none"
//     (alg-none), an algorithm other than ES256, ES384, ES512, EdDSA and
//     ML-DSA-65 (alg-unsupported);
//  2. the claims: the profile claim (bad-profile), the nonce's presence
//     (nonce-missing) and length (nonce-length), every other claim's
//     presence (missing-claim) and type and size (malformed), as above;
//  3. the instance id selects the endorsed key whose attest.TrustedKey.ID
//     it equals (unknown-instance);
//  4. the signature: the algorithm pinned to that key's type, ES256 for a
//     P-256 IAK (alg-mismatch), ECDSA r and s in [1, n-1]
//     (signature-out-of-range), then the signature itself (bad-signature);
//  5. the nonce equals Input.Nonce (nonce-mismatch); the gateway passes
//     attest.ExpectedNonce(attest.FormatPSA, challenge, jkt).
//
// A token that passes is authentic and fresh. Its Result's appraisal then
// has instance identity trusted (2) and, unless said otherwise below,
// hardware genuine (2), configuration approved (2) and executables
// approved (2):
//
//   - implementation id: when the endorsed key has an ImplementationID the
//     token must report that one; otherwise it must be one of
//     ReferenceValues.ImplementationIDs. Else hardware and configuration
//     are contraindicated (96), reason implementation-unknown;
//   - security lifecycle: SECURED (0x3000 to 0x30FF, the same encoding in
//     every profile) is approved; every other state (unknown, assembly and
//     test, provisioning, either debug state, decommissioned) makes
//     configuration contraindicated, reason debug-lifecycle;
//   - software components: with no ReferenceValues.Components at all,
//     executables are contraindicated, reason empty-reference-values;
//     otherwise every component's measurement value must be listed (and,
//     for a listed entry with a signer id, the component's signer id
//     equal it), else executables are contraindicated, reason
//     measurement-unknown.
//
// The Result's InstanceID is the hex instance id and its Measurements map
// each component's measurement type (or, for a component without one or
// with a type an earlier component took, its index in the list) to its hex
// measurement value.
//
// # Device side
//
// SimulatedDevice makes tokens in the http://arm.com/psa/2.0.0 profile
// signed with ES256 by a P-256 key in memory, for "hegate enroll --format
// psa-test". It is a software stand-in with no hardware root of trust.
package psa

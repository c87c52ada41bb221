// Package tpm verifies TPM 2.0 quotes (attest.FormatTPM) and makes them on
// the device.
//
// A TPM proves what booted by signing a quote (TPM2_Quote) over the digest
// of selected PCRs with an attestation key (AK) that never leaves it. The
// verifier checks that the quote is well formed, that the AK is a
// restricted signing key made inside a TPM (so it cannot sign a forged
// TPMS_ATTEST), that the tenant endorses the AK, that the quote carries the
// expected nonce and that the PCR values the device sent are the ones
// quoted; it then compares those values with the tenant's reference values.
//
// # Evidence format
//
// The evidence is one CBOR data item (RFC 8949), at most
// attest.MaxEvidenceBytes bytes: a map with text-string keys, no tags, no
// indefinite-length items, no duplicate keys, nesting at most
// attest.MaxNestingDepth and at most attest.MaxItems elements in any array
// or map. Keys are matched case-sensitively and unknown keys are refused.
//
//	{
//	  "quote":      bstr,            ; TPM2B_ATTEST contents: the marshalled TPMS_ATTEST
//	  "signature":  bstr,            ; the marshalled TPMT_SIGNATURE over "quote"
//	  "ak":         bstr,            ; the marshalled TPMT_PUBLIC of the attestation key
//	  ? "ak_certs": [+ bstr],        ; DER X.509 certificates, leaf first, the leaf
//	                                 ;   certifying the AK's public key; at most 8
//	  "pcrs":       {+ uint => bstr} ; PCR index => its 32-byte SHA-256 bank value,
//	                                 ;   exactly the PCRs the quote selects
//	}
//
// "quote", "signature", "ak" and "pcrs" are required; "ak_certs" is
// optional but not empty when present. The TPM structures are in the TPM
// 2.0 Part 2 encoding (big-endian integers, sized buffers with a 2-byte
// length), each exactly one structure with no bytes after it, in its
// canonical encoding (booleans 0 or 1): the verifier decodes each and
// refuses it unless encoding the result again gives the same bytes.
// Devices make this with Attest; Evidence.Marshal writes CBOR core
// deterministic encoding, although the verifier does not require a key
// order.
//
// # Verification
//
// Verifier.Verify checks, in this order, each failure an *attest.Error
// with the reason named. Structure comes before cryptography, so that
// every structural refusal is reachable with validly signed evidence.
//
//  1. The CBOR map: more than attest.MaxEvidenceBytes, or over a nesting,
//     array or map limit (too-large); more than 8 "ak_certs" (too-large);
//     not a map, a missing, unknown or mistyped field, a tag, an
//     indefinite length, a duplicate key, trailing bytes, an empty
//     "ak_certs" or a PCR value that is not 32 bytes (malformed).
//  2. "quote": magic TPM_GENERATED_VALUE (tpm-bad-magic) and type
//     TPM_ST_ATTEST_QUOTE (tpm-bad-type), read from its first 6 bytes; then
//     the whole TPMS_ATTEST (malformed).
//  3. "ak": a TPMT_PUBLIC (malformed) with restricted, sign, fixedTPM,
//     fixedParent and sensitiveDataOrigin set and decrypt clear
//     (tpm-ak-attributes); a SHA-256, SHA-384 or SHA-512 name algorithm,
//     and ECC NIST P-256 or P-384 with ECDSA or RSA of 2048 to 4096 bits
//     with RSASSA or RSAPSS, the scheme's hash SHA-256, SHA-384 or SHA-512
//     (alg-unsupported); an ECC point on its curve, an RSA modulus of the
//     stated size and an odd exponent (malformed).
//  4. "ak_certs": each a DER certificate (malformed).
//  5. "signature": a TPMT_SIGNATURE (malformed) of the AK scheme's
//     algorithm and hash (alg-mismatch); for ECDSA, r and s in [1, n-1]
//     (signature-out-of-range); then the signature over the "quote" bytes
//     hashed with the scheme's hash (bad-signature). RSAPSS accepts any
//     salt length.
//  6. Endorsement: the AK's public key equals one of
//     Input.Endorsements.Keys, and then "ak_certs" are not looked at
//     further. Otherwise, without "ak_certs", unknown-key; with them, the
//     leaf is not a CA (cert-ca-as-leaf), every certificate given is within
//     its validity at the verifier's time (cert-expired), a root is
//     endorsed and a chain from the leaf through the given intermediates to
//     one of Input.Endorsements.Roots verifies at that time, with any
//     extended key usage (cert-untrusted; cert-expired when it is the root
//     that expired), the leaf certifies the AK's public key (unknown-key),
//     and the leaf, if it has a key usage extension, allows
//     digitalSignature (cert-bad-usage).
//  7. Nonce: the quote's extraData is not empty and Input.Nonce is not
//     empty (nonce-missing), and they are equal (nonce-mismatch). The
//     gateway passes attest.ExpectedNonce(attest.FormatTPM, challenge, jkt).
//  8. PCRs: the quote selects exactly one bank, SHA-256, and at least one
//     PCR in it, and exactly the indexes that "pcrs" has
//     (tpm-pcr-selection); its pcrDigest equals the hash of the "pcrs"
//     values concatenated in ascending index order (tpm-pcr-digest). The
//     hash is the AK scheme's, as TPM2_Quote computes it: SHA-256 for the
//     AK CreateAK makes.
//  9. Clock: when Input.Previous is set, the quote's TPMS_CLOCK_INFO must
//     not have gone back from it (attest.Clock.WentBackFrom;
//     tpm-clock-went-back).
//
// Evidence that passes is authentic and fresh; the Result (not an error)
// then appraises its PCRs: instance identity trusted and hardware genuine
// (a key the tenant endorses, held in a TPM); executables approved when
// every quoted PCR has a value Input.ReferenceValues allows for its index
// and every PCR the reference values list is quoted, otherwise
// contraindicated with reason measurement-unknown, or with
// empty-reference-values when the tenant allows no PCR at all. The
// Result's InstanceID is the hex SHA-256 of the AK's SubjectPublicKeyInfo
// (attest.KeyDigest), not its TPM name: the signature proves the key, but
// nothing binds the rest of the TPMT_PUBLIC sent with it (authPolicy, name
// algorithm), so a name over it would be the device's to choose. For the
// same reason the attributes of step 3 are what the evidence claims: they
// are only as good as the endorsement (a registered key, or a CA that
// checked them before certifying it). Its Clock is the quote's clock, and
// its Measurements map "pcrN" to the hex value of each quoted PCR N.
//
// The quote's qualifiedSigner and firmwareVersion are signed but not
// checked: the qualified name depends on the AK's parents, which the
// evidence does not carry, and the firmware version is vendor-specific.
//
// # Device side
//
// CreateAK makes the attestation key in the TPM's endorsement hierarchy
// and Attest quotes PCRs with it. OpenSimulator (cgo builds only) starts
// the Microsoft reference TPM simulator for development and tests; the rest
// of the package builds without cgo.
package tpm

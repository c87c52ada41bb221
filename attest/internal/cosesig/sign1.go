// Package cosesig reads and writes the COSE_Sign1 messages (RFC 9052) that
// PSA tokens (attest/psa) and native evidence (attest/native) are made of,
// with the checks both need done once:
//
//   - Decode takes at most attest.MaxEvidenceBytes, a COSE_Sign1 either
//     tagged (CBOR tag 18) or not, and decodes it and its headers with the
//     CBOR limits of attest (nesting, element counts, no indefinite
//     lengths, no tags inside, no duplicate map keys);
//   - the protected header must name an algorithm ("alg", label 1) that is
//     not 0 or "none" (alg-none) and that hegate accepts (alg-unsupported:
//     ES256, ES384, ES512, EdDSA, ML-DSA-65); its "crit" may list only alg
//     and kid, and only labels it has; a label present twice, or in both
//     buckets, and "crit" outside the protected header are refused
//     (bad-protected-header);
//   - Message.Verify pins the algorithm to the key: an Ed25519 key verifies
//     only EdDSA, an ML-DSA-65 key only ML-DSA-65 (-49), an ECDSA key on
//     P-256, P-384 or P-521 only ES256, ES384 or ES512 (alg-mismatch);
//     ECDSA signatures whose r or s is zero or not below the group order are
//     refused before any verification (signature-out-of-range); then the
//     signature over the Sig_structure (bad-signature).
//
// Every refusal is an *attest.Error.
package cosesig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/fxamacker/cbor/v2"
	cose "github.com/veraison/go-cose"

	"github.com/hegate/hegate/attest"
)

// AlgorithmMLDSA65 is ML-DSA-65 (FIPS 204) in COSE: -49 in the IANA COSE
// Algorithms registry (draft-ietf-cose-dilithium). The signature is the
// ML-DSA signature of the Sig_structure with an empty context string.
const AlgorithmMLDSA65 cose.Algorithm = -49

// Header labels this package reads.
const (
	labelAlg  int64 = 1
	labelCrit int64 = 2
	labelCty  int64 = 3
	labelKID  int64 = 4
)

// understood are the labels a "crit" header may name: the ones this
// package and its callers act on (alg, and kid, which selects the native
// key). The content type is checked for its type but not acted on, so it
// may not be critical.
var understood = map[int64]bool{labelAlg: true, labelKID: true}

// MaxKIDBytes bounds a key identifier.
const MaxKIDBytes = 64

// Message is a decoded COSE_Sign1 whose protected header passed the checks
// of Decode. Its signature is not yet verified: call Verify.
type Message struct {
	// Tagged reports whether the message carried CBOR tag 18.
	Tagged bool
	// Protected is the serialized protected header, as signed.
	Protected []byte
	// Alg is the protected "alg".
	Alg cose.Algorithm
	// KID is the protected "kid" (label 4), nil if absent.
	KID []byte
	// UnprotectedKID reports whether the unprotected header has a "kid".
	UnprotectedKID bool
	// Payload is the message's payload (never detached).
	Payload []byte
	// Signature is the signature bytes.
	Signature []byte
}

// Decode reads a COSE_Sign1. See the package documentation for what it
// checks.
func Decode(b []byte) (*Message, error) {
	if len(b) == 0 {
		return nil, attest.Errorf(attest.ReasonMalformed, "empty evidence")
	}
	if len(b) > attest.MaxEvidenceBytes {
		return nil, attest.Errorf(attest.ReasonTooLarge, "evidence of %d bytes exceeds %d", len(b), attest.MaxEvidenceBytes)
	}
	m := &Message{}
	switch {
	case b[0] == 0xd2: // tag 18, COSE_Sign1
		m.Tagged = true
		b = b[1:]
	case majorType(b) == majorTag:
		return nil, attest.Errorf(attest.ReasonMalformed, "a CBOR tag other than 18 (COSE_Sign1) in its one-byte form")
	}
	if majorType(b) != majorArray {
		return nil, attest.Errorf(attest.ReasonMalformed, "not a COSE_Sign1 array")
	}
	var parts []cbor.RawMessage
	if err := Unmarshal(b, &parts, "COSE_Sign1"); err != nil {
		return nil, err
	}
	if len(parts) != 4 {
		return nil, attest.Errorf(attest.ReasonMalformed, "COSE_Sign1 has %d elements, not 4", len(parts))
	}
	var err error
	if majorType(parts[0]) != majorByteString {
		return nil, attest.Errorf(attest.ReasonBadProtectedHeader, "protected header is not a byte string")
	}
	if m.Protected, err = RawBytes(parts[0], "protected header"); err != nil {
		return nil, err
	}
	if majorType(parts[2]) != majorByteString {
		return nil, attest.Errorf(attest.ReasonMalformed, "payload is not a byte string (detached payloads are not accepted)")
	}
	if m.Payload, err = RawBytes(parts[2], "payload"); err != nil {
		return nil, err
	}
	if m.Signature, err = RawBytes(parts[3], "signature"); err != nil {
		return nil, err
	}
	protected, err := headerMap(m.Protected, true)
	if err != nil {
		return nil, err
	}
	unprotected, err := headerMap(parts[1], false)
	if err != nil {
		return nil, err
	}
	if err := m.checkHeaders(protected, unprotected); err != nil {
		return nil, err
	}
	return m, nil
}

// headerMap decodes a header bucket into label => value. Labels must be
// integers or text strings and appear once.
func headerMap(b []byte, protected bool) (map[any]any, error) {
	reason, what := attest.ReasonMalformed, "unprotected header"
	if protected {
		reason, what = attest.ReasonBadProtectedHeader, "protected header"
		if len(b) == 0 {
			// An empty protected header has no "alg".
			return map[any]any{}, nil
		}
	}
	if majorType(b) != majorMap {
		return nil, attest.Errorf(reason, "%s is not a map", what)
	}
	var h map[any]any
	if err := decMode.Unmarshal(b, &h); err != nil {
		if e := decodeError(err, what); e.Reason == attest.ReasonTooLarge {
			return nil, e
		}
		if isDup(err) {
			return nil, attest.Errorf(reason, "%s: a label appears twice", what)
		}
		return nil, attest.Errorf(reason, "%s: %v", what, err)
	}
	for k := range h {
		switch k.(type) {
		case int64, string:
		default:
			return nil, attest.Errorf(reason, "%s has a label that is neither an integer nor a text string", what)
		}
	}
	return h, nil
}

func (m *Message) checkHeaders(protected, unprotected map[any]any) error {
	for k := range unprotected {
		if _, ok := protected[k]; ok {
			return attest.Errorf(attest.ReasonBadProtectedHeader, "label %v is in both the protected and the unprotected header", k)
		}
	}
	alg, ok := protected[labelAlg]
	if !ok {
		return attest.Errorf(attest.ReasonAlgNone, "the protected header names no algorithm")
	}
	switch a := alg.(type) {
	case int64:
		m.Alg = cose.Algorithm(a)
	case string:
		if a == "none" || a == "" {
			return attest.Errorf(attest.ReasonAlgNone, "algorithm %q", a)
		}
		return attest.Errorf(attest.ReasonAlgUnsupported, "algorithm %q", a)
	default:
		return attest.Errorf(attest.ReasonBadProtectedHeader, "alg is neither an integer nor a text string")
	}
	switch m.Alg {
	case cose.AlgorithmReserved:
		return attest.Errorf(attest.ReasonAlgNone, "algorithm 0 (reserved)")
	case cose.AlgorithmES256, cose.AlgorithmES384, cose.AlgorithmES512, cose.AlgorithmEdDSA, AlgorithmMLDSA65:
	default:
		return attest.Errorf(attest.ReasonAlgUnsupported, "algorithm %d", int64(m.Alg))
	}
	if crit, ok := protected[labelCrit]; ok {
		labels, ok := crit.([]any)
		if !ok || len(labels) == 0 {
			return attest.Errorf(attest.ReasonBadProtectedHeader, "crit is not a non-empty array")
		}
		for _, l := range labels {
			n, ok := l.(int64)
			if !ok || !understood[n] {
				return attest.Errorf(attest.ReasonBadProtectedHeader, "critical header %v is not understood", l)
			}
			if _, ok := protected[n]; !ok {
				return attest.Errorf(attest.ReasonBadProtectedHeader, "critical header %v is not in the protected header", l)
			}
		}
	}
	if _, ok := unprotected[labelCrit]; ok {
		return attest.Errorf(attest.ReasonBadProtectedHeader, "crit in the unprotected header")
	}
	if kid, ok := protected[labelKID]; ok {
		b, ok := kid.([]byte)
		if !ok || len(b) == 0 || len(b) > MaxKIDBytes {
			return attest.Errorf(attest.ReasonBadProtectedHeader, "kid is not a byte string of 1 to %d bytes", MaxKIDBytes)
		}
		m.KID = b
	}
	if cty, ok := protected[labelCty]; ok {
		switch cty.(type) {
		case int64, string:
		default:
			return attest.Errorf(attest.ReasonBadProtectedHeader, "content type is neither an integer nor a text string")
		}
	}
	_, m.UnprotectedKID = unprotected[labelKID]
	return nil
}

// AlgorithmFor is the one COSE algorithm hegate accepts for signatures by
// pub: EdDSA for Ed25519, ML-DSA-65 for ML-DSA-65, and ES256, ES384 or
// ES512 for ECDSA on P-256, P-384 or P-521. Other keys (RSA among them)
// are alg-unsupported.
func AlgorithmFor(pub crypto.PublicKey) (cose.Algorithm, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return 0, attest.Errorf(attest.ReasonAlgUnsupported, "Ed25519 key of %d bytes", len(k))
		}
		return cose.AlgorithmEdDSA, nil
	case *mldsa65.PublicKey:
		if k == nil {
			break
		}
		return AlgorithmMLDSA65, nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			break
		}
		switch k.Curve {
		case elliptic.P256():
			return cose.AlgorithmES256, nil
		case elliptic.P384():
			return cose.AlgorithmES384, nil
		case elliptic.P521():
			return cose.AlgorithmES512, nil
		}
		return 0, attest.Errorf(attest.ReasonAlgUnsupported, "ECDSA key on %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return 0, attest.Errorf(attest.ReasonAlgUnsupported, "RSA keys do not sign COSE evidence here")
	}
	return 0, attest.Errorf(attest.ReasonAlgUnsupported, "key type %T", pub)
}

// NewVerifier returns the cose.Verifier of pub for its pinned algorithm
// (see AlgorithmFor).
func NewVerifier(pub crypto.PublicKey) (cose.Verifier, error) {
	alg, err := AlgorithmFor(pub)
	if err != nil {
		return nil, err
	}
	if alg == AlgorithmMLDSA65 {
		return mldsaVerifier{pub.(*mldsa65.PublicKey)}, nil
	}
	v, err := cose.NewVerifier(alg, pub)
	if err != nil {
		return nil, attest.Errorf(attest.ReasonAlgUnsupported, "endorsed key: %v", err)
	}
	return v, nil
}

// Verify checks m's signature with pub: the algorithm pinned for pub must
// be m.Alg (alg-mismatch), an ECDSA signature must be r || s with r and s in
// [1, n-1] (signature-out-of-range), and the signature must verify over the
// Sig_structure with empty external data (bad-signature).
func (m *Message) Verify(pub crypto.PublicKey) error {
	alg, err := AlgorithmFor(pub)
	if err != nil {
		return err
	}
	if alg != m.Alg {
		return attest.Errorf(attest.ReasonAlgMismatch, "header algorithm %v, but the endorsed key signs with %v", algName(m.Alg), algName(alg))
	}
	if k, ok := pub.(*ecdsa.PublicKey); ok {
		if err := checkECDSARange(k.Curve, m.Signature); err != nil {
			return err
		}
	}
	v, err := NewVerifier(pub)
	if err != nil {
		return err
	}
	if err := v.Verify(ToBeSigned(m.Protected, m.Payload), m.Signature); err != nil {
		return attest.Errorf(attest.ReasonBadSignature, "%v signature does not verify under the endorsed key", algName(alg))
	}
	return nil
}

// checkECDSARange checks that sig is r || s, each the curve's byte length,
// with 0 < r, s < n.
func checkECDSARange(curve elliptic.Curve, sig []byte) error {
	n := curve.Params().N
	size := (curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return attest.Errorf(attest.ReasonBadSignature, "ECDSA signature of %d bytes, not %d", len(sig), 2*size)
	}
	for i, part := range [][]byte{sig[:size], sig[size:]} {
		v := new(big.Int).SetBytes(part)
		if v.Sign() == 0 || v.Cmp(n) >= 0 {
			return attest.Errorf(attest.ReasonSignatureRange, "ECDSA %s is zero or not below the group order", [2]string{"r", "s"}[i])
		}
	}
	return nil
}

func algName(a cose.Algorithm) string {
	if a == AlgorithmMLDSA65 {
		return "ML-DSA-65"
	}
	return a.String()
}

// ToBeSigned is the encoded Sig_structure of a COSE_Sign1 with this
// serialized protected header and payload and no external data:
// ["Signature1", protected, external_aad (an empty byte string), payload].
func ToBeSigned(protected, payload []byte) []byte {
	b, err := encMode.Marshal([]any{"Signature1", protected, []byte{}, payload})
	if err != nil {
		panic(err) // encoding a string and byte strings cannot fail
	}
	return b
}

// Assemble encodes a COSE_Sign1 from its parts as given, tagged with 18
// when tagged is set. unprotected is an encoded map (nil for {}). It does
// not check anything, which makes it the tool for building evidence that
// should fail.
func Assemble(protected, unprotected, payload, signature []byte, tagged bool) []byte {
	if unprotected == nil {
		unprotected = []byte{0xa0}
	}
	var buf bytes.Buffer
	if tagged {
		buf.WriteByte(0xd2)
	}
	buf.WriteByte(0x84)
	for i, part := range [][]byte{protected, unprotected, payload, signature} {
		if i == 1 {
			buf.Write(part)
			continue
		}
		enc, err := encMode.Marshal(part)
		if err != nil {
			panic(err)
		}
		buf.Write(enc)
	}
	return buf.Bytes()
}

// ProtectedHeader encodes the protected header {1: alg, 4: kid} (kid left
// out when nil) in the core deterministic encoding.
func ProtectedHeader(alg cose.Algorithm, kid []byte) []byte {
	h := map[int64]any{labelAlg: int64(alg)}
	if kid != nil {
		h[labelKID] = kid
	}
	b, err := encMode.Marshal(h)
	if err != nil {
		panic(err)
	}
	return b
}

// NewSigner returns a cose.Signer for key with the algorithm pinned for
// its public key (see AlgorithmFor): key is an ed25519.PrivateKey, an
// *ecdsa.PrivateKey, an *mldsa65.PrivateKey, or any crypto.Signer whose
// public key is one of those (an HSM or a TPM key, say).
func NewSigner(key crypto.Signer) (cose.Signer, error) {
	if key == nil {
		return nil, errors.New("cosesig: nil signing key")
	}
	alg, err := AlgorithmFor(key.Public())
	if err != nil {
		return nil, err
	}
	if alg == AlgorithmMLDSA65 {
		return mldsaSigner{key}, nil
	}
	return cose.NewSigner(alg, key)
}

// Sign makes a tagged COSE_Sign1 of payload signed by key, whose protected
// header is {1: alg, 4: kid} with alg pinned for key (kid left out when
// nil) and whose unprotected header is empty.
func Sign(rand io.Reader, key crypto.Signer, kid, payload []byte) ([]byte, error) {
	s, err := NewSigner(key)
	if err != nil {
		return nil, err
	}
	protected := ProtectedHeader(s.Algorithm(), kid)
	sig, err := s.Sign(rand, ToBeSigned(protected, payload))
	if err != nil {
		return nil, fmt.Errorf("cosesig: signing: %w", err)
	}
	return Assemble(protected, nil, payload, sig, true), nil
}

// mldsaVerifier is a cose.Verifier of ML-DSA-65 signatures, empty context.
type mldsaVerifier struct{ key *mldsa65.PublicKey }

func (mldsaVerifier) Algorithm() cose.Algorithm { return AlgorithmMLDSA65 }

func (v mldsaVerifier) Verify(content, signature []byte) error {
	if len(signature) != mldsa65.SignatureSize || !mldsa65.Verify(v.key, content, nil, signature) {
		return cose.ErrVerification
	}
	return nil
}

// mldsaSigner is a cose.Signer making ML-DSA-65 signatures, empty
// context. For an *mldsa65.PrivateKey it signs hedged (randomized, as FIPS
// 204 recommends); another crypto.Signer signs as it does.
type mldsaSigner struct{ key crypto.Signer }

func (mldsaSigner) Algorithm() cose.Algorithm { return AlgorithmMLDSA65 }

func (s mldsaSigner) Sign(rand io.Reader, content []byte) ([]byte, error) {
	if sk, ok := s.key.(*mldsa65.PrivateKey); ok {
		sig := make([]byte, mldsa65.SignatureSize)
		if err := mldsa65.SignTo(sk, content, nil, true, sig); err != nil {
			return nil, err
		}
		return sig, nil
	}
	return s.key.Sign(rand, content, crypto.Hash(0))
}

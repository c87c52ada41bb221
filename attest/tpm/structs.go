package tpm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/binary"
	"fmt"
	"math/big"

	"github.com/google/go-tpm/tpm2"

	"github.com/hegate/hegate/attest"
)

// unmarshalExact decodes b as exactly one T. go-tpm's Unmarshal stops
// where the structure ends and ignores what follows, so the result is
// marshalled again and must give back b: that refuses trailing bytes and
// any second encoding of the same value, so the bytes that were signed are
// the bytes that were read. A panic inside go-tpm's reflection on hostile
// input is turned into a malformed error rather than taking the gateway
// down.
func unmarshalExact[T tpm2.Marshallable, P interface {
	*T
	tpm2.Unmarshallable
}](b []byte, what string) (t *T, err error) {
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, attest.Errorf(attest.ReasonMalformed, "%s does not decode", what)
		}
	}()
	v, uerr := tpm2.Unmarshal[T, P](b)
	if uerr != nil {
		return nil, attest.Errorf(attest.ReasonMalformed, "%s does not decode: %v", what, uerr)
	}
	if !bytes.Equal(tpm2.Marshal(*v), b) {
		return nil, attest.Errorf(attest.ReasonMalformed, "%s has trailing bytes or a non-canonical encoding", what)
	}
	return v, nil
}

// parseQuote reads a TPMS_ATTEST that must be a quote. The magic and type
// are read from the fixed header before anything else, so that a
// structure that is not a TPM quote at all gets its own reason however the
// rest of it looks.
func parseQuote(b []byte) (*tpm2.TPMSAttest, *tpm2.TPMSQuoteInfo, error) {
	if len(b) < 6 {
		return nil, nil, attest.Errorf(attest.ReasonMalformed, "quote of %d bytes is shorter than a TPMS_ATTEST header", len(b))
	}
	if m := tpm2.TPMGenerated(binary.BigEndian.Uint32(b)); m != tpm2.TPMGeneratedValue {
		return nil, nil, attest.Errorf(attest.ReasonBadMagic, "magic is %#08x, not TPM_GENERATED_VALUE", uint32(m))
	}
	if st := tpm2.TPMST(binary.BigEndian.Uint16(b[4:])); st != tpm2.TPMSTAttestQuote {
		return nil, nil, attest.Errorf(attest.ReasonBadType, "attestation type is %#04x, not TPM_ST_ATTEST_QUOTE", uint16(st))
	}
	a, err := unmarshalExact[tpm2.TPMSAttest](b, "quote (TPMS_ATTEST)")
	if err != nil {
		return nil, nil, err
	}
	q, err := a.Attested.Quote()
	if err != nil {
		return nil, nil, attest.Errorf(attest.ReasonMalformed, "quote has no TPMS_QUOTE_INFO")
	}
	return a, q, nil
}

// akKey is an attestation key as the verifier uses it.
type akKey struct {
	public crypto.PublicKey // *ecdsa.PublicKey or *rsa.PublicKey
	sigAlg tpm2.TPMAlgID    // TPM_ALG_ECDSA, TPM_ALG_RSASSA or TPM_ALG_RSAPSS
	hash   tpm2.TPMAlgID    // the scheme's hash
	crypto crypto.Hash      // the same, as a crypto.Hash
}

// hashOf maps the hash algorithms this verifier accepts. SHA-1 is not
// among them: a quote signed over a SHA-1 digest proves little.
func hashOf(alg tpm2.TPMAlgID) (crypto.Hash, bool) {
	switch alg {
	case tpm2.TPMAlgSHA256:
		return crypto.SHA256, true
	case tpm2.TPMAlgSHA384:
		return crypto.SHA384, true
	case tpm2.TPMAlgSHA512:
		return crypto.SHA512, true
	}
	return 0, false
}

// parseAK reads the AK's TPMT_PUBLIC and checks it is a key the TPM made
// and will only use to sign what it produced itself. A restricted signing
// key refuses to sign data that begins with TPM_GENERATED_VALUE unless the
// TPM made it, which is what makes a quote's contents trustworthy; fixedTPM
// and fixedParent mean the key cannot be duplicated out, and
// sensitiveDataOrigin that no one outside the TPM ever knew the private
// key.
func parseAK(b []byte) (*akKey, error) {
	pub, err := unmarshalExact[tpm2.TPMTPublic](b, "ak (TPMT_PUBLIC)")
	if err != nil {
		return nil, err
	}
	at := pub.ObjectAttributes
	if !at.Restricted || !at.SignEncrypt || at.Decrypt || !at.FixedTPM || !at.FixedParent || !at.SensitiveDataOrigin {
		return nil, attest.Errorf(attest.ReasonAKAttributes,
			"ak must be restricted, sign, fixedTPM, fixedParent, sensitiveDataOrigin and not decrypt (restricted=%t sign=%t decrypt=%t fixedTPM=%t fixedParent=%t sensitiveDataOrigin=%t)",
			at.Restricted, at.SignEncrypt, at.Decrypt, at.FixedTPM, at.FixedParent, at.SensitiveDataOrigin)
	}
	if _, ok := hashOf(pub.NameAlg); !ok {
		return nil, attest.Errorf(attest.ReasonAlgUnsupported, "ak name algorithm %v is not SHA-256, SHA-384 or SHA-512", pub.NameAlg)
	}
	k := &akKey{}

	switch pub.Type {
	case tpm2.TPMAlgECC:
		err = k.parseECC(pub)
	case tpm2.TPMAlgRSA:
		err = k.parseRSA(pub)
	default:
		err = attest.Errorf(attest.ReasonAlgUnsupported, "ak type %v is neither ECC nor RSA", pub.Type)
	}
	if err != nil {
		return nil, err
	}
	return k, nil
}

func (k *akKey) parseECC(pub *tpm2.TPMTPublic) error {
	parms, err := pub.Parameters.ECCDetail()
	if err != nil {
		return attest.Errorf(attest.ReasonMalformed, "ECC ak has no ECC parameters")
	}
	var curve elliptic.Curve
	switch parms.CurveID {
	case tpm2.TPMECCNistP256:
		curve = elliptic.P256()
	case tpm2.TPMECCNistP384:
		curve = elliptic.P384()
	default:
		return attest.Errorf(attest.ReasonAlgUnsupported, "ak curve %v is not NIST P-256 or P-384", parms.CurveID)
	}
	if parms.Scheme.Scheme != tpm2.TPMAlgECDSA {
		return attest.Errorf(attest.ReasonAlgUnsupported, "ECC ak scheme %v is not ECDSA", parms.Scheme.Scheme)
	}
	sch, err := parms.Scheme.Details.ECDSA()
	if err != nil {
		return attest.Errorf(attest.ReasonMalformed, "ECC ak has no ECDSA scheme details")
	}
	if err := k.setHash(sch.HashAlg); err != nil {
		return err
	}
	pt, err := pub.Unique.ECC()
	if err != nil {
		return attest.Errorf(attest.ReasonMalformed, "ECC ak has no public point")
	}
	size := (curve.Params().BitSize + 7) / 8
	if len(pt.X.Buffer) > size || len(pt.Y.Buffer) > size {
		return attest.Errorf(attest.ReasonMalformed, "ak point coordinates are longer than %d bytes", size)
	}
	raw := make([]byte, 1+2*size)
	raw[0] = 4
	copy(raw[1+size-len(pt.X.Buffer):1+size], pt.X.Buffer)
	copy(raw[1+2*size-len(pt.Y.Buffer):], pt.Y.Buffer)
	ek, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
	if err != nil {
		return attest.Errorf(attest.ReasonMalformed, "ak public point is not on the curve")
	}
	k.public, k.sigAlg = ek, tpm2.TPMAlgECDSA
	return nil
}

// minRSABits and maxRSABits bound an RSA AK: below 2048 bits is too weak,
// and no TPM makes keys above 4096 bits (TPM 2.0 Library, part 2, RSA key
// sizes): larger ones only make each verification dearer (an RSA-16384
// AK with a 31-bit exponent costs about 17 ms a quote).
const (
	minRSABits = 2048
	maxRSABits = 4096
)

func (k *akKey) parseRSA(pub *tpm2.TPMTPublic) error {
	parms, err := pub.Parameters.RSADetail()
	if err != nil {
		return attest.Errorf(attest.ReasonMalformed, "RSA ak has no RSA parameters")
	}
	if parms.KeyBits < minRSABits || parms.KeyBits > maxRSABits {
		return attest.Errorf(attest.ReasonAlgUnsupported, "RSA ak of %d bits; %d to %d are accepted", parms.KeyBits, minRSABits, maxRSABits)
	}
	var hashAlg tpm2.TPMAlgID
	switch parms.Scheme.Scheme {
	case tpm2.TPMAlgRSASSA:
		s, err := parms.Scheme.Details.RSASSA()
		if err != nil {
			return attest.Errorf(attest.ReasonMalformed, "RSA ak has no RSASSA scheme details")
		}
		hashAlg = s.HashAlg
	case tpm2.TPMAlgRSAPSS:
		s, err := parms.Scheme.Details.RSAPSS()
		if err != nil {
			return attest.Errorf(attest.ReasonMalformed, "RSA ak has no RSAPSS scheme details")
		}
		hashAlg = s.HashAlg
	default:
		return attest.Errorf(attest.ReasonAlgUnsupported, "RSA ak scheme %v is not RSASSA or RSAPSS", parms.Scheme.Scheme)
	}
	if err := k.setHash(hashAlg); err != nil {
		return err
	}
	n, err := pub.Unique.RSA()
	if err != nil {
		return attest.Errorf(attest.ReasonMalformed, "RSA ak has no modulus")
	}
	// The TPM writes 0 for the default exponent 65537.
	e := parms.Exponent
	if e == 0 {
		e = 65537
	}
	if e < 3 || e%2 == 0 || e > 1<<31-1 {
		return attest.Errorf(attest.ReasonMalformed, "RSA ak exponent %d is not an odd number from 3 to 2^31-1", e)
	}
	mod := new(big.Int).SetBytes(n.Buffer)
	if mod.BitLen() != int(parms.KeyBits) {
		return attest.Errorf(attest.ReasonMalformed, "RSA ak modulus is %d bits, its parameters say %d", mod.BitLen(), parms.KeyBits)
	}
	k.public, k.sigAlg = &rsa.PublicKey{N: mod, E: int(e)}, parms.Scheme.Scheme
	return nil
}

func (k *akKey) setHash(alg tpm2.TPMAlgID) error {
	h, ok := hashOf(alg)
	if !ok {
		return attest.Errorf(attest.ReasonAlgUnsupported, "ak scheme hash %v is not SHA-256, SHA-384 or SHA-512", alg)
	}
	k.hash, k.crypto = alg, h
	return nil
}

// checkSignature verifies sig, a marshalled TPMT_SIGNATURE, over the quote
// bytes. The algorithm must be the one the AK's scheme pins: a restricted
// key signs only with its own scheme, so anything else was not made by
// this TPM key. ECDSA r and s are range-checked first so that a degenerate
// signature is named as such rather than merely failing.
func (k *akKey) checkSignature(quote, sig []byte) error {
	s, err := unmarshalExact[tpm2.TPMTSignature](sig, "signature (TPMT_SIGNATURE)")
	if err != nil {
		return err
	}
	if s.SigAlg != k.sigAlg {
		return attest.Errorf(attest.ReasonAlgMismatch, "signature algorithm %v is not the ak's %v", s.SigAlg, k.sigAlg)
	}
	h := k.crypto.New()
	h.Write(quote)
	digest := h.Sum(nil)

	switch s.SigAlg {
	case tpm2.TPMAlgECDSA:
		es, err := s.Signature.ECDSA()
		if err != nil {
			return attest.Errorf(attest.ReasonMalformed, "ECDSA signature has no contents")
		}
		if es.Hash != k.hash {
			return attest.Errorf(attest.ReasonAlgMismatch, "signature hash %v is not the ak's %v", es.Hash, k.hash)
		}
		pub := k.public.(*ecdsa.PublicKey)
		order := pub.Curve.Params().N
		r := new(big.Int).SetBytes(es.SignatureR.Buffer)
		sv := new(big.Int).SetBytes(es.SignatureS.Buffer)
		if r.Sign() == 0 || sv.Sign() == 0 || r.Cmp(order) >= 0 || sv.Cmp(order) >= 0 {
			return attest.Errorf(attest.ReasonSignatureRange, "ECDSA r or s is zero or not below the curve order")
		}
		if !ecdsa.Verify(pub, digest, r, sv) {
			return attest.Errorf(attest.ReasonBadSignature, "ECDSA signature does not verify under the ak")
		}
	case tpm2.TPMAlgRSASSA, tpm2.TPMAlgRSAPSS:
		var rs *tpm2.TPMSSignatureRSA
		if s.SigAlg == tpm2.TPMAlgRSASSA {
			rs, err = s.Signature.RSASSA()
		} else {
			rs, err = s.Signature.RSAPSS()
		}
		if err != nil {
			return attest.Errorf(attest.ReasonMalformed, "RSA signature has no contents")
		}
		if rs.Hash != k.hash {
			return attest.Errorf(attest.ReasonAlgMismatch, "signature hash %v is not the ak's %v", rs.Hash, k.hash)
		}
		pub := k.public.(*rsa.PublicKey)
		if s.SigAlg == tpm2.TPMAlgRSASSA {
			err = rsa.VerifyPKCS1v15(pub, k.crypto, digest, rs.Sig.Buffer)
		} else {
			// TPMs use a salt as long as the hash (TPM 2.0 library
			// 1.16 and later) or as long as fits (earlier ones); accept
			// either.
			err = rsa.VerifyPSS(pub, k.crypto, digest, rs.Sig.Buffer, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		}
		if err != nil {
			return attest.Errorf(attest.ReasonBadSignature, "RSA signature does not verify under the ak")
		}
	default:
		// parseAK admits no other algorithm, so sigAlg matched one above.
		return attest.Errorf(attest.ReasonAlgUnsupported, "signature algorithm %v", s.SigAlg)
	}
	return nil
}

// selectedPCRs returns the indexes a quote covers, in the order the TPM
// hashed them, and checks the selection is of the SHA-256 bank alone:
// reference values are SHA-256, and a second bank or a second selection
// of the same bank would make the digest cover values not sent.
func selectedPCRs(sel tpm2.TPMLPCRSelection) ([]uint32, error) {
	if len(sel.PCRSelections) != 1 {
		return nil, attest.Errorf(attest.ReasonPCRSelection, "quote selects %d PCR banks; exactly one, SHA-256, is accepted", len(sel.PCRSelections))
	}
	s := sel.PCRSelections[0]
	if s.Hash != tpm2.TPMAlgSHA256 {
		return nil, attest.Errorf(attest.ReasonPCRSelection, "quote selects the %v bank, not SHA-256", s.Hash)
	}
	var idx []uint32
	for i, b := range s.PCRSelect {
		for bit := range 8 {
			if b&(1<<bit) != 0 {
				idx = append(idx, uint32(8*i+bit))
			}
		}
	}
	if len(idx) == 0 {
		return nil, attest.Errorf(attest.ReasonPCRSelection, "quote selects no PCR")
	}
	return idx, nil
}

// pcrDigest is what TPM2_Quote puts in pcrDigest: the hash, with the
// signing scheme's hash, of the selected PCR values in selection order.
func pcrDigest(h crypto.Hash, idx []uint32, values map[uint32][]byte) []byte {
	d := h.New()
	for _, i := range idx {
		d.Write(values[i])
	}
	return d.Sum(nil)
}

// describeKey names a public key type for error details.
func describeKey(k crypto.PublicKey) string {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	}
	return fmt.Sprintf("%T", k)
}

package tpm

import (
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/hegate/hegate/attest"
)

// TestInstanceIDIsTheKey: the instance id must not change with the parts
// of the AK's public area that the quote's signature does not bind (the
// signature proves the private key, not the TPMT_PUBLIC sent with it). A
// device could otherwise send its AK with another authPolicy or name
// algorithm, get a new instance id, and so a new registry row: escaping a
// revocation and the clock check of its previous quotes.
func TestInstanceIDIsTheKey(t *testing.T) {
	k := newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256)
	res, err := verify(mustMarshal(t, k.evidence(t, k.softQuote())), testNonce, k.endorsement(), softRef, nil)
	wantAffirming(t, res, err)

	der, err := x509.MarshalPKIXPublicKey(k.publicKey())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	if res.InstanceID != hex.EncodeToString(sum[:]) {
		t.Errorf("instance id %s; want the SHA-256 of the AK's SubjectPublicKeyInfo %x", res.InstanceID, sum)
	}

	tweaked := *k
	tweaked.public.AuthPolicy = tpm2.TPM2BDigest{Buffer: make([]byte, 32)}
	tweaked.public.NameAlg = tpm2.TPMAlgSHA384
	res2, err := verify(mustMarshal(t, tweaked.evidence(t, tweaked.softQuote())), testNonce, k.endorsement(), softRef, nil)
	wantAffirming(t, res2, err)
	if res2.InstanceID != res.InstanceID {
		t.Errorf("the same AK with another authPolicy and name algorithm is instance %s, not %s", res2.InstanceID, res.InstanceID)
	}
}

// TestRSAAKSizeBound: TPMs make RSA keys of at most 4096 bits, and every
// bit past that makes each verification dearer for whoever may enroll (an
// RSA-16384 AK with a 31-bit exponent cost about 17 ms a quote); such an
// AK is refused before any signature check.
func TestRSAAKSizeBound(t *testing.T) {
	k := newSoftRSA(t, 2048, tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA256)
	n := make([]byte, 8192/8)
	if _, err := rand.Read(n); err != nil {
		t.Fatal(err)
	}
	n[0] |= 0x80
	n[len(n)-1] |= 1
	k.public.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
		Scheme: tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgRSASSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSigSchemeRSASSA{HashAlg: tpm2.TPMAlgSHA256})},
		KeyBits: 8192,
	})
	k.public.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: n})
	_, err := verify(mustMarshal(t, k.evidence(t, k.softQuote())), testNonce, k.endorsement(), softRef, nil)
	wantReason(t, err, attest.ReasonAlgUnsupported)
}

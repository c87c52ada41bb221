package tpm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/hegate/hegate/attest"
)

// testNow is the time every test verifies at.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testNonce is the expected nonce of the tests: what the gateway would
// ask a device for.
var testNonce = attest.ExpectedNonce(attest.FormatTPM, []byte("a challenge of thirty-two bytes!!"), []byte("jkt"))

func testVerifier() Verifier { return Verifier{Now: func() time.Time { return testNow }} }

// verify runs the test verifier on evidence with the given nonce,
// endorsements and reference values.
func verify(evidence, nonce []byte, e attest.Endorsements, ref attest.ReferenceValues, prev *attest.Clock) (attest.Result, error) {
	return testVerifier().Verify(context.Background(), attest.Input{
		Evidence: evidence, Nonce: nonce, Endorsements: e, ReferenceValues: ref, Previous: prev,
	})
}

// wantReason fails the test unless err is an *attest.Error with reason r.
func wantReason(t *testing.T, err error, r attest.Reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("verified; want refusal %q", r)
	}
	if got := attest.ReasonOf(err); got != r {
		t.Fatalf("reason %q (%v); want %q", got, err, r)
	}
}

// wantAffirming fails the test unless the evidence verified with an
// affirming result.
func wantAffirming(t *testing.T, res attest.Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	if s := res.Status(); s != attest.StatusAffirming {
		t.Fatalf("status %q (reasons %v); want affirming", s, res.Reasons())
	}
}

// wantAppraisal fails the test unless the evidence verified with a
// contraindicated result for reason r.
func wantAppraisal(t *testing.T, res attest.Result, err error, r attest.Reason) {
	t.Helper()
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	if s := res.Status(); s != attest.StatusContraindicated {
		t.Fatalf("status %q; want contraindicated", s)
	}
	if got := res.Reasons(); !slices.Equal(got, []attest.Reason{r}) {
		t.Fatalf("reasons %v; want [%s]", got, r)
	}
}

// softAK is an attestation key held in software, with a TPMT_PUBLIC made
// by hand. It signs TPMS_ATTEST structures that no TPM would, which is how
// the tests reach every structural check with otherwise valid evidence.
type softAK struct {
	signer crypto.Signer
	public tpm2.TPMTPublic
	sigAlg tpm2.TPMAlgID
	hash   tpm2.TPMAlgID
}

func eccPublic(k *ecdsa.PublicKey, curve tpm2.TPMECCCurve, hash tpm2.TPMAlgID) tpm2.TPMTPublic {
	raw, err := k.Bytes()
	if err != nil {
		panic(err)
	}
	size := (len(raw) - 1) / 2
	pub := AKTemplate()
	pub.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Scheme: tpm2.TPMTECCScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: hash}),
		},
		CurveID: curve,
	})
	pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: raw[1 : 1+size]},
		Y: tpm2.TPM2BECCParameter{Buffer: raw[1+size:]},
	})
	return pub
}

func newSoftECC(t testing.TB, curve elliptic.Curve, hash tpm2.TPMAlgID) *softAK {
	t.Helper()
	priv, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := map[elliptic.Curve]tpm2.TPMECCCurve{
		elliptic.P256(): tpm2.TPMECCNistP256, elliptic.P384(): tpm2.TPMECCNistP384, elliptic.P521(): tpm2.TPMECCNistP521,
	}[curve]
	return &softAK{signer: priv, public: eccPublic(&priv.PublicKey, id, hash), sigAlg: tpm2.TPMAlgECDSA, hash: hash}
}

func newSoftRSA(t testing.TB, bits int, scheme, hash tpm2.TPMAlgID) *softAK {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	details := tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSigSchemeRSASSA{HashAlg: hash})
	if scheme == tpm2.TPMAlgRSAPSS {
		details = tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSAPSS, &tpm2.TPMSSigSchemeRSAPSS{HashAlg: hash})
	}
	pub := AKTemplate()
	pub.Type = tpm2.TPMAlgRSA
	pub.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
		Scheme:  tpm2.TPMTRSAScheme{Scheme: scheme, Details: details},
		KeyBits: tpm2.TPMKeyBits(bits),
	})
	pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: priv.N.Bytes()})
	return &softAK{signer: priv, public: pub, sigAlg: scheme, hash: hash}
}

func (k *softAK) publicKey() crypto.PublicKey { return k.signer.Public() }

func (k *softAK) endorsement() attest.Endorsements {
	return attest.Endorsements{Keys: []attest.TrustedKey{{Public: k.publicKey()}}}
}

// sign returns the marshalled TPMT_SIGNATURE of quote.
func (k *softAK) sign(t testing.TB, quote []byte) []byte {
	t.Helper()
	h, _ := k.hash.Hash()
	d := h.New()
	d.Write(quote)
	digest := d.Sum(nil)
	switch priv := k.signer.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, priv, digest)
		if err != nil {
			t.Fatal(err)
		}
		return ecdsaSignature(k.hash, r, s)
	case *rsa.PrivateKey:
		var sig []byte
		var err error
		if k.sigAlg == tpm2.TPMAlgRSAPSS {
			sig, err = rsa.SignPSS(rand.Reader, priv, h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, priv, h, digest)
		}
		if err != nil {
			t.Fatal(err)
		}
		c := &tpm2.TPMSSignatureRSA{Hash: k.hash, Sig: tpm2.TPM2BPublicKeyRSA{Buffer: sig}}
		if k.sigAlg == tpm2.TPMAlgRSAPSS {
			return tpm2.Marshal(tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgRSAPSS, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgRSAPSS, c)})
		}
		return tpm2.Marshal(tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgRSASSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgRSASSA, c)})
	}
	t.Fatalf("unknown signer %T", k.signer)
	return nil
}

func ecdsaSignature(hash tpm2.TPMAlgID, r, s *big.Int) []byte {
	return tpm2.Marshal(tpm2.TPMTSignature{
		SigAlg: tpm2.TPMAlgECDSA,
		Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
			Hash:       hash,
			SignatureR: tpm2.TPM2BECCParameter{Buffer: r.Bytes()},
			SignatureS: tpm2.TPM2BECCParameter{Buffer: s.Bytes()},
		}),
	})
}

// softPCRs are the PCR values of the software tests, and softRef the
// reference values that allow them.
var (
	softPCRs = map[uint32][]byte{0: sha(0), 7: sha(7)}
	softRef  = attest.ReferenceValues{PCRs: map[int][][]byte{0: {sha(0)}, 7: {sha(70), sha(7)}}}
)

func sha(i int) []byte {
	d := sha256.Sum256([]byte{byte(i)})
	return d[:]
}

// softQuote is a TPMS_ATTEST a TPM would make for softPCRs and the test
// nonce.
func (k *softAK) softQuote() tpm2.TPMSAttest {
	h, _ := k.hash.Hash()
	idx := []uint32{0, 7}
	name, err := tpm2.ObjectName(&k.public)
	if err != nil {
		panic(err)
	}
	return tpm2.TPMSAttest{
		Magic:           tpm2.TPMGeneratedValue,
		Type:            tpm2.TPMSTAttestQuote,
		QualifiedSigner: *name,
		ExtraData:       tpm2.TPM2BData{Buffer: testNonce},
		ClockInfo:       tpm2.TPMSClockInfo{Clock: 5000, ResetCount: 3, RestartCount: 1, Safe: true},
		FirmwareVersion: 0x20260301,
		Attested: tpm2.NewTPMUAttest(tpm2.TPMSTAttestQuote, &tpm2.TPMSQuoteInfo{
			PCRSelect: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
				Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(0, 7),
			}}},
			PCRDigest: tpm2.TPM2BDigest{Buffer: pcrDigest(h, idx, softPCRs)},
		}),
	}
}

// evidence returns signed evidence for q, with fresh copies of everything
// so that a test may change it.
func (k *softAK) evidence(t testing.TB, q tpm2.TPMSAttest) *Evidence {
	t.Helper()
	quote := tpm2.Marshal(q)
	pcrs := make(map[uint32][]byte, len(softPCRs))
	for i, v := range softPCRs {
		pcrs[i] = slices.Clone(v)
	}
	return &Evidence{Quote: quote, Signature: k.sign(t, quote), AK: tpm2.Marshal(k.public), PCRs: pcrs}
}

func mustMarshal(t testing.TB, e *Evidence) []byte {
	t.Helper()
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testCA is a certificate authority for AK certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial int64

// certOpts change a certificate newCert makes.
type certOpts struct {
	isCA                bool
	notBefore, notAfter time.Time
	keyUsage            x509.KeyUsage
}

// newCert issues a certificate for pub, signed by parent (self-signed when
// parent is nil, pub then being ignored in favour of a fresh key).
func newCert(t testing.TB, parent *testCA, pub crypto.PublicKey, o certOpts) *testCA {
	t.Helper()
	serial++
	if o.notBefore.IsZero() {
		o.notBefore = testNow.Add(-24 * time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = testNow.Add(365 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "hegate test " + big.NewInt(serial).String()},
		NotBefore:             o.notBefore,
		NotAfter:              o.notAfter,
		BasicConstraintsValid: true,
		IsCA:                  o.isCA,
		KeyUsage:              o.keyUsage,
	}
	if o.isCA && o.keyUsage == 0 {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	var key *ecdsa.PrivateKey
	if parent == nil || o.isCA {
		var err error
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if pub == nil {
			pub = &key.PublicKey
		}
	}
	issuer, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: c, key: key}
}

package tpm

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"encoding/hex"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/hegate/hegate/attest"
)

// These tests sign with software keys, so they need no simulator and can
// make every malformed structure a TPM never would.

func TestSoftGood(t *testing.T) {
	for _, tc := range []struct {
		name string
		ak   func(testing.TB) *softAK
	}{
		{"ECDSA P-256 SHA-256", func(t testing.TB) *softAK { return newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256) }},
		{"ECDSA P-384 SHA-384", func(t testing.TB) *softAK { return newSoftECC(t, elliptic.P384(), tpm2.TPMAlgSHA384) }},
		{"RSASSA 2048 SHA-256", func(t testing.TB) *softAK { return newSoftRSA(t, 2048, tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA256) }},
		{"RSAPSS 2048 SHA-256", func(t testing.TB) *softAK { return newSoftRSA(t, 2048, tpm2.TPMAlgRSAPSS, tpm2.TPMAlgSHA256) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.ak(t)
			ev := mustMarshal(t, k.evidence(t, k.softQuote()))
			res, err := verify(ev, testNonce, k.endorsement(), softRef, nil)
			wantAffirming(t, res, err)
			if want, err := attest.KeyDigest(k.publicKey()); err != nil || res.InstanceID != hex.EncodeToString(want) {
				t.Errorf("instance id %s; want the digest of the ak's public key %x (%v)", res.InstanceID, want, err)
			}
			if res.Measurements["pcr0"] != hex.EncodeToString(sha(0)) || res.Measurements["pcr7"] != hex.EncodeToString(sha(7)) || len(res.Measurements) != 2 {
				t.Errorf("measurements %v", res.Measurements)
			}
			if res.Clock == nil || *res.Clock != (attest.Clock{Clock: 5000, ResetCount: 3, RestartCount: 1, Safe: true}) {
				t.Errorf("clock %+v", res.Clock)
			}
			if res.Format != attest.FormatTPM || res.IssuedAt != testNow.Unix() {
				t.Errorf("format %q, issued at %d", res.Format, res.IssuedAt)
			}
		})
	}
}

// TestZeroVerifier checks the zero Verifier: the TPM format, and the
// current time when Now is nil.
func TestZeroVerifier(t *testing.T) {
	var v Verifier
	if v.Format() != attest.FormatTPM {
		t.Fatalf("format %q", v.Format())
	}
	k := newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256)
	before := time.Now().Unix()
	res, err := v.Verify(context.Background(), attest.Input{
		Evidence: mustMarshal(t, k.evidence(t, k.softQuote())), Nonce: testNonce,
		Endorsements: k.endorsement(), ReferenceValues: softRef,
	})
	wantAffirming(t, res, err)
	if res.IssuedAt < before {
		t.Errorf("issued at %d, before %d", res.IssuedAt, before)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.Verify(ctx, attest.Input{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestSoftStructure(t *testing.T) {
	k := newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256)
	e := k.endorsement()
	// resign re-signs the evidence after a change to its quote.
	resign := func(ev *Evidence) *Evidence { ev.Signature = k.sign(t, ev.Quote); return ev }
	quoteWith := func(f func(*tpm2.TPMSAttest)) *Evidence {
		q := k.softQuote()
		f(&q)
		return k.evidence(t, q)
	}
	for _, tc := range []struct {
		name string
		ev   func() *Evidence
		want attest.Reason
	}{
		{"bad magic", func() *Evidence { return quoteWith(func(q *tpm2.TPMSAttest) { q.Magic = 0xff544348 }) }, attest.ReasonBadMagic},
		{"certify, not quote", func() *Evidence {
			return quoteWith(func(q *tpm2.TPMSAttest) {
				q.Type = tpm2.TPMSTAttestCertify
				q.Attested = tpm2.NewTPMUAttest(tpm2.TPMSTAttestCertify, &tpm2.TPMSCertifyInfo{})
			})
		}, attest.ReasonBadType},
		{"quote shorter than its header", func() *Evidence {
			ev := k.evidence(t, k.softQuote())
			ev.Quote = ev.Quote[:5]
			return resign(ev)
		}, attest.ReasonMalformed},
		{"byte after the TPMS_ATTEST", func() *Evidence {
			ev := k.evidence(t, k.softQuote())
			ev.Quote = append(ev.Quote, 0)
			return resign(ev)
		}, attest.ReasonMalformed},
		{"TPMS_ATTEST cut short", func() *Evidence {
			ev := k.evidence(t, k.softQuote())
			ev.Quote = ev.Quote[:len(ev.Quote)-1]
			return resign(ev)
		}, attest.ReasonMalformed},
		{"byte after the TPMT_PUBLIC", func() *Evidence {
			ev := k.evidence(t, k.softQuote())
			ev.AK = append(ev.AK, 0)
			return ev
		}, attest.ReasonMalformed},
		{"byte after the TPMT_SIGNATURE", func() *Evidence {
			ev := k.evidence(t, k.softQuote())
			ev.Signature = append(ev.Signature, 0)
			return ev
		}, attest.ReasonMalformed},
		{"safe flag 2", func() *Evidence {
			ev := k.evidence(t, k.softQuote())
			// The safe byte follows magic, type, qualifiedSigner,
			// extraData, clock, resetCount and restartCount.
			off := 4 + 2 + 2 + len(k.softQuote().QualifiedSigner.Buffer) + 2 + len(testNonce) + 8 + 4 + 4
			if ev.Quote[off] != 1 {
				t.Fatalf("offset %d is not the safe flag", off)
			}
			ev.Quote[off] = 2
			return resign(ev)
		}, attest.ReasonMalformed},
		{"SHA-1 bank", func() *Evidence {
			return quoteWith(func(q *tpm2.TPMSAttest) {
				qi, _ := q.Attested.Quote()
				qi.PCRSelect.PCRSelections[0].Hash = tpm2.TPMAlgSHA1
			})
		}, attest.ReasonPCRSelection},
		{"two selections", func() *Evidence {
			return quoteWith(func(q *tpm2.TPMSAttest) {
				qi, _ := q.Attested.Quote()
				qi.PCRSelect.PCRSelections = append(qi.PCRSelect.PCRSelections,
					tpm2.TPMSPCRSelection{Hash: tpm2.TPMAlgSHA1, PCRSelect: tpm2.PCClientCompatible.PCRs(0)})
			})
		}, attest.ReasonPCRSelection},
		{"empty selection", func() *Evidence {
			return quoteWith(func(q *tpm2.TPMSAttest) {
				qi, _ := q.Attested.Quote()
				qi.PCRSelect.PCRSelections[0].PCRSelect = []byte{0, 0, 0}
			})
		}, attest.ReasonPCRSelection},
		{"selection of PCR 0 only", func() *Evidence {
			return quoteWith(func(q *tpm2.TPMSAttest) {
				qi, _ := q.Attested.Quote()
				qi.PCRSelect.PCRSelections[0].PCRSelect = tpm2.PCClientCompatible.PCRs(0)
			})
		}, attest.ReasonPCRSelection},
		{"digest of other values", func() *Evidence {
			return quoteWith(func(q *tpm2.TPMSAttest) {
				qi, _ := q.Attested.Quote()
				qi.PCRDigest.Buffer = sha(99)
			})
		}, attest.ReasonPCRDigestMismatch},
		{"no qualifying data", func() *Evidence {
			return quoteWith(func(q *tpm2.TPMSAttest) { q.ExtraData.Buffer = nil })
		}, attest.ReasonNonceMissing},
		{"other qualifying data", func() *Evidence {
			return quoteWith(func(q *tpm2.TPMSAttest) { q.ExtraData.Buffer = sha(1) })
		}, attest.ReasonNonceMismatch},
		{"tampered clock", func() *Evidence {
			ev := k.evidence(t, k.softQuote())
			// The clock follows magic, type, qualifiedSigner and
			// extraData; its low byte is 8 bytes in.
			ev.Quote[4+2+2+len(k.softQuote().QualifiedSigner.Buffer)+2+len(testNonce)+7] ^= 1
			return ev
		}, attest.ReasonBadSignature},
		{"signature over other bytes", func() *Evidence {
			ev := k.evidence(t, k.softQuote())
			ev.Signature = k.sign(t, []byte("other"))
			return ev
		}, attest.ReasonBadSignature},
		{"ECDSA r = s = 0", func() *Evidence {
			ev := k.evidence(t, k.softQuote())
			ev.Signature = ecdsaSignature(tpm2.TPMAlgSHA256, new(big.Int), new(big.Int))
			return ev
		}, attest.ReasonSignatureRange},
		{"ECDSA s = n", func() *Evidence {
			ev := k.evidence(t, k.softQuote())
			ev.Signature = ecdsaSignature(tpm2.TPMAlgSHA256, big.NewInt(1), elliptic.P256().Params().N)
			return ev
		}, attest.ReasonSignatureRange},
		{"ECDSA r > n", func() *Evidence {
			ev := k.evidence(t, k.softQuote())
			ev.Signature = ecdsaSignature(tpm2.TPMAlgSHA256, new(big.Int).Lsh(big.NewInt(1), 300), big.NewInt(1))
			return ev
		}, attest.ReasonSignatureRange},
		{"signature hash SHA-384, scheme SHA-256", func() *Evidence {
			ev := k.evidence(t, k.softQuote())
			ev.Signature = ecdsaSignature(tpm2.TPMAlgSHA384, big.NewInt(1), big.NewInt(1))
			return ev
		}, attest.ReasonAlgMismatch},
		{"RSASSA signature from an ECDSA key", func() *Evidence {
			ev := k.evidence(t, k.softQuote())
			ev.Signature = tpm2.Marshal(tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgRSASSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgRSASSA,
				&tpm2.TPMSSignatureRSA{Hash: tpm2.TPMAlgSHA256, Sig: tpm2.TPM2BPublicKeyRSA{Buffer: make([]byte, 256)}})})
			return ev
		}, attest.ReasonAlgMismatch},
		{"null signature", func() *Evidence {
			ev := k.evidence(t, k.softQuote())
			ev.Signature = tpm2.Marshal(tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgNull})
			return ev
		}, attest.ReasonAlgMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verify(mustMarshal(t, tc.ev()), testNonce, e, softRef, nil)
			wantReason(t, err, tc.want)
		})
	}
}

func TestSoftAKAttributes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*tpm2.TPMAObject)
	}{
		{"not restricted", func(a *tpm2.TPMAObject) { a.Restricted = false }},
		{"not sign", func(a *tpm2.TPMAObject) { a.SignEncrypt = false }},
		{"decrypt", func(a *tpm2.TPMAObject) { a.Decrypt = true }},
		{"not fixedTPM", func(a *tpm2.TPMAObject) { a.FixedTPM = false }},
		{"not fixedParent", func(a *tpm2.TPMAObject) { a.FixedParent = false }},
		{"imported (not sensitiveDataOrigin)", func(a *tpm2.TPMAObject) { a.SensitiveDataOrigin = false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256)
			tc.change(&k.public.ObjectAttributes)
			_, err := verify(mustMarshal(t, k.evidence(t, k.softQuote())), testNonce, k.endorsement(), softRef, nil)
			wantReason(t, err, attest.ReasonAKAttributes)
		})
	}
}

func TestSoftAKAlgorithms(t *testing.T) {
	for _, tc := range []struct {
		name string
		ak   func(testing.TB) *softAK
		want attest.Reason
	}{
		{"P-521", func(t testing.TB) *softAK { return newSoftECC(t, elliptic.P521(), tpm2.TPMAlgSHA512) }, attest.ReasonAlgUnsupported},
		{"SHA-1 scheme", func(t testing.TB) *softAK { return newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA1) }, attest.ReasonAlgUnsupported},
		{"RSA 1024", func(t testing.TB) *softAK { return newSoftRSA(t, 1024, tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA256) }, attest.ReasonAlgUnsupported},
		{"SHA-1 name algorithm", func(t testing.TB) *softAK {
			k := newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256)
			k.public.NameAlg = tpm2.TPMAlgSHA1
			return k
		}, attest.ReasonAlgUnsupported},
		{"ECDAA scheme", func(t testing.TB) *softAK {
			k := newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256)
			p, _ := k.public.Parameters.ECCDetail()
			p.Scheme = tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDAA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDAA, &tpm2.TPMSSchemeECDAA{HashAlg: tpm2.TPMAlgSHA256})}
			return k
		}, attest.ReasonAlgUnsupported},
		{"point off the curve", func(t testing.TB) *softAK {
			k := newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256)
			pt, _ := k.public.Unique.ECC()
			pt.Y.Buffer[len(pt.Y.Buffer)-1] ^= 1
			return k
		}, attest.ReasonMalformed},
		{"keyedHash object", func(t testing.TB) *softAK {
			k := newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256)
			k.public.Type = tpm2.TPMAlgKeyedHash
			k.public.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{
				Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgHMAC,
					Details: tpm2.NewTPMUSchemeKeyedHash(tpm2.TPMAlgHMAC, &tpm2.TPMSSchemeHMAC{HashAlg: tpm2.TPMAlgSHA256})}})
			k.public.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BDigest{Buffer: sha(1)})
			return k
		}, attest.ReasonAlgUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.ak(t)
			_, err := verify(mustMarshal(t, k.evidence(t, k.softQuote())), testNonce, k.endorsement(), softRef, nil)
			wantReason(t, err, tc.want)
		})
	}
}

func TestSoftRSASignatures(t *testing.T) {
	k := newSoftRSA(t, 2048, tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA256)
	ev := k.evidence(t, k.softQuote())
	sig, _ := tpm2.Unmarshal[tpm2.TPMTSignature](ev.Signature)
	rs, _ := sig.Signature.RSASSA()

	t.Run("tampered", func(t *testing.T) {
		rs.Sig.Buffer[10] ^= 1
		ev.Signature = tpm2.Marshal(*sig)
		_, err := verify(mustMarshal(t, ev), testNonce, k.endorsement(), softRef, nil)
		wantReason(t, err, attest.ReasonBadSignature)
		rs.Sig.Buffer[10] ^= 1
	})
	t.Run("PSS from an RSASSA key", func(t *testing.T) {
		pss := tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgRSAPSS, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgRSAPSS, rs)}
		ev.Signature = tpm2.Marshal(pss)
		_, err := verify(mustMarshal(t, ev), testNonce, k.endorsement(), softRef, nil)
		wantReason(t, err, attest.ReasonAlgMismatch)
	})
	t.Run("SHA-384 hash", func(t *testing.T) {
		c := *rs
		c.Hash = tpm2.TPMAlgSHA384
		ev.Signature = tpm2.Marshal(tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgRSASSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgRSASSA, &c)})
		_, err := verify(mustMarshal(t, ev), testNonce, k.endorsement(), softRef, nil)
		wantReason(t, err, attest.ReasonAlgMismatch)
	})
}

func TestSoftPCRsAndNonce(t *testing.T) {
	k := newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256)
	e := k.endorsement()
	for _, tc := range []struct {
		name  string
		edit  func(*Evidence)
		nonce []byte
		want  attest.Reason
	}{
		{"a PCR value changed", func(ev *Evidence) { ev.PCRs[7][0] ^= 1 }, testNonce, attest.ReasonPCRDigestMismatch},
		{"a PCR left out", func(ev *Evidence) { delete(ev.PCRs, 7) }, testNonce, attest.ReasonPCRSelection},
		{"a PCR added", func(ev *Evidence) { ev.PCRs[8] = sha(8) }, testNonce, attest.ReasonPCRSelection},
		{"a PCR swapped for another", func(ev *Evidence) { ev.PCRs[8] = ev.PCRs[7]; delete(ev.PCRs, 7) }, testNonce, attest.ReasonPCRSelection},
		{"the verifier expects another nonce", func(*Evidence) {}, sha(3), attest.ReasonNonceMismatch},
		{"the verifier expects a longer nonce", func(*Evidence) {}, append(bytes.Clone(testNonce), 0), attest.ReasonNonceMismatch},
		{"the verifier has no nonce", func(*Evidence) {}, nil, attest.ReasonNonceMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := k.evidence(t, k.softQuote())
			tc.edit(ev)
			_, err := verify(mustMarshal(t, ev), tc.nonce, e, softRef, nil)
			wantReason(t, err, tc.want)
		})
	}
}

func TestSoftClock(t *testing.T) {
	k := newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256)
	ev := mustMarshal(t, k.evidence(t, k.softQuote())) // clock 5000, reset 3, restart 1
	for _, tc := range []struct {
		prev attest.Clock
		back bool
	}{
		{attest.Clock{Clock: 4999, ResetCount: 3, RestartCount: 1}, false},
		{attest.Clock{Clock: 9999, ResetCount: 2, RestartCount: 7}, false},
		{attest.Clock{Clock: 5000, ResetCount: 3, RestartCount: 1}, true},
		{attest.Clock{Clock: 6000, ResetCount: 3, RestartCount: 1}, true},
		{attest.Clock{Clock: 1, ResetCount: 3, RestartCount: 2}, true},
		{attest.Clock{Clock: 1, ResetCount: 4, RestartCount: 0}, true},
	} {
		res, err := verify(ev, testNonce, k.endorsement(), softRef, &tc.prev)
		if tc.back {
			wantReason(t, err, attest.ReasonClockWentBack)
		} else {
			wantAffirming(t, res, err)
		}
	}
}

func TestSoftAppraisal(t *testing.T) {
	k := newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256)
	ev := mustMarshal(t, k.evidence(t, k.softQuote()))
	for _, tc := range []struct {
		name string
		ref  attest.ReferenceValues
		want attest.Reason
	}{
		{"no reference values", attest.ReferenceValues{}, attest.ReasonEmptyReferenceValues},
		{"only other formats' reference values", attest.ReferenceValues{Measurements: map[string][][]byte{"pcr0": {sha(0)}}}, attest.ReasonEmptyReferenceValues},
		{"PCR 7 not allowed", attest.ReferenceValues{PCRs: map[int][][]byte{0: {sha(0)}, 7: {sha(70)}}}, attest.ReasonMeasurementUnknown},
		{"PCR 7 not listed", attest.ReferenceValues{PCRs: map[int][][]byte{0: {sha(0)}}}, attest.ReasonMeasurementUnknown},
		{"PCR 4 listed but not quoted", attest.ReferenceValues{PCRs: map[int][][]byte{0: {sha(0)}, 4: {sha(4)}, 7: {sha(7)}}}, attest.ReasonMeasurementUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := verify(ev, testNonce, k.endorsement(), tc.ref, nil)
			wantAppraisal(t, res, err, tc.want)
			a := res.Submods[string(attest.FormatTPM)]
			if a.TrustVector.InstanceIdentity != attest.InstanceTrusted || a.TrustVector.Hardware != attest.HardwareGenuine ||
				a.TrustVector.Executables != attest.ExecutablesContraindicated {
				t.Errorf("trust vector %+v", a.TrustVector)
			}
		})
	}
}

func TestSoftEndorsement(t *testing.T) {
	k := newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256)
	other := newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256)
	ev := mustMarshal(t, k.evidence(t, k.softQuote()))
	_, err := verify(ev, testNonce, other.endorsement(), softRef, nil)
	wantReason(t, err, attest.ReasonUnknownKey)
	_, err = verify(ev, testNonce, attest.Endorsements{}, softRef, nil)
	wantReason(t, err, attest.ReasonUnknownKey)
	// Another key type among the endorsed keys is passed over, not a
	// panic.
	rsaKey := newSoftRSA(t, 2048, tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA256)
	e := attest.Endorsements{Keys: []attest.TrustedKey{{}, {Public: rsaKey.publicKey()}, {Public: k.publicKey()}}}
	res, err := verify(ev, testNonce, e, softRef, nil)
	wantAffirming(t, res, err)
}

// TestEvidenceMap checks the CBOR layer: limits, required and unknown
// fields, and types.
func TestEvidenceMap(t *testing.T) {
	k := newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256)
	good := k.evidence(t, k.softQuote())
	enc := func(v any) []byte {
		b, err := encMode.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	base := func() map[string]any {
		return map[string]any{"quote": good.Quote, "signature": good.Signature, "ak": good.AK, "pcrs": good.PCRs}
	}
	with := func(key string, v any) []byte {
		m := base()
		if v == nil {
			delete(m, key)
		} else {
			m[key] = v
		}
		return enc(m)
	}
	deep := []byte{0xa1, 0x65, 'q', 'u', 'o', 't', 'e'}
	deep = append(deep, bytes.Repeat([]byte{0x81}, 40)...)
	deep = append(deep, 0x00)
	wide := append([]byte{0x99, 0x01, 0x2c}, bytes.Repeat([]byte{0x00}, 300)...) // an array of 300 zeros

	for _, tc := range []struct {
		name string
		b    []byte
		want attest.Reason
	}{
		{"empty", nil, attest.ReasonMalformed},
		{"oversized", append(enc(base()), make([]byte, attest.MaxEvidenceBytes)...), attest.ReasonTooLarge},
		{"deeply nested", deep, attest.ReasonTooLarge},
		{"deeply nested at the top", append(bytes.Repeat([]byte{0x81}, 100), 0), attest.ReasonTooLarge},
		{"a 300-element array", wide, attest.ReasonTooLarge},
		{"an array, not a map", enc([]any{good.Quote}), attest.ReasonMalformed},
		{"trailing CBOR", append(enc(base()), 0), attest.ReasonMalformed},
		{"no quote", with("quote", nil), attest.ReasonMalformed},
		{"no signature", with("signature", nil), attest.ReasonMalformed},
		{"no ak", with("ak", nil), attest.ReasonMalformed},
		{"no pcrs", with("pcrs", nil), attest.ReasonMalformed},
		{"unknown field", with("extra", 1), attest.ReasonMalformed},
		{"field name in another case", func() []byte { m := base(); m["Quote"] = m["quote"]; delete(m, "quote"); return enc(m) }(), attest.ReasonMalformed},
		{"quote as text", with("quote", string(good.Quote)), attest.ReasonMalformed},
		{"empty ak_certs", with("ak_certs", [][]byte{}), attest.ReasonMalformed},
		{"an empty certificate", with("ak_certs", [][]byte{{}}), attest.ReasonMalformed},
		{"not a certificate", with("ak_certs", [][]byte{{1, 2, 3}}), attest.ReasonMalformed},
		{"nine certificates", with("ak_certs", make([][]byte, 9)), attest.ReasonTooLarge},
		{"a 20-byte PCR", with("pcrs", map[uint32][]byte{0: make([]byte, 20), 7: sha(7)}), attest.ReasonMalformed},
		{"a negative PCR index", with("pcrs", map[int][]byte{-1: sha(0)}), attest.ReasonMalformed},
		{"a text PCR index", with("pcrs", map[string][]byte{"0": sha(0)}), attest.ReasonMalformed},
		{"a tag", append([]byte{0xd8, 0x18}, enc(base())...), attest.ReasonMalformed},
		{"duplicate key", func() []byte {
			// A map of five pairs whose last repeats "ak".
			b := enc(base())
			if b[0] != 0xa4 {
				t.Fatalf("map header %#x", b[0])
			}
			b = append([]byte{0xa5}, b[1:]...)
			b = append(b, enc("ak")...)
			return append(b, enc(good.AK)...)
		}(), attest.ReasonMalformed},
		{"indefinite length", func() []byte {
			b := enc(base())
			b = append([]byte{0xbf}, b[1:]...)
			return append(b, 0xff)
		}(), attest.ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verify(tc.b, testNonce, k.endorsement(), softRef, nil)
			wantReason(t, err, tc.want)
		})
	}
}

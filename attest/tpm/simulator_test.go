//go:build cgo

package tpm

import (
	"bytes"
	"crypto"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/hegate/hegate/attest"
)

// simPCRs are the PCRs the simulator tests quote: the one OpenSimulator
// measures and one the fixture measures.
var simPCRs = []int{SimulatorPCR, 7}

// simFixture is a simulator with an AK and one good quote.
type simFixture struct {
	tpm   transport.TPMCloser
	ak    *AK
	akPub crypto.PublicKey
	ref   attest.ReferenceValues
}

func openFixture(t testing.TB) *simFixture {
	t.Helper()
	return openFixtureWith(t, OpenSimulator)
}

// openFixtureWith makes a fixture on the TPM open returns, measuring PCR
// 7 (OpenSimulator has measured PCR 0).
func openFixtureWith(t testing.TB, open func() (transport.TPMCloser, error)) *simFixture {
	t.Helper()
	tp, err := open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	if _, err := Measure(tp, 7, []byte("secure boot policy")); err != nil {
		t.Fatal(err)
	}
	ak, err := CreateAK(tp)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ak.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	vals, err := ReadPCRs(tp, simPCRs)
	if err != nil {
		t.Fatal(err)
	}
	ref := attest.ReferenceValues{PCRs: map[int][][]byte{}}
	for i, v := range vals {
		ref.PCRs[i] = [][]byte{v}
	}
	return &simFixture{tpm: tp, ak: ak, akPub: pub, ref: ref}
}

func (f *simFixture) registered() attest.Endorsements {
	return attest.Endorsements{Keys: []attest.TrustedKey{{Public: f.akPub}}}
}

// evidence quotes simPCRs with the test nonce and the AK's current certs.
func (f *simFixture) evidence(t testing.TB) *Evidence {
	t.Helper()
	ev, err := quote(f.tpm, f.ak, simPCRs, testNonce)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// extended is PCR value after extending SHA-256(data) into zeros.
func extended(data string) []byte {
	d := sha256.Sum256([]byte(data))
	v := sha256.Sum256(append(make([]byte, 32), d[:]...))
	return v[:]
}

func TestSimulatorGood(t *testing.T) {
	f := openFixture(t)
	ev := f.evidence(t)
	b := mustMarshal(t, ev)
	res, err := verify(b, testNonce, f.registered(), f.ref, nil)
	wantAffirming(t, res, err)

	if want, err := attest.KeyDigest(f.akPub); err != nil || res.InstanceID != hex.EncodeToString(want) {
		t.Errorf("instance id %s; want the digest of the ak's public key %x (%v)", res.InstanceID, want, err)
	}
	if got, want := res.Measurements["pcr0"], hex.EncodeToString(extended(SimulatorMeasurement)); got != want {
		t.Errorf("pcr0 %s; want %s", got, want)
	}
	if got, want := res.Measurements["pcr7"], hex.EncodeToString(extended("secure boot policy")); got != want {
		t.Errorf("pcr7 %s; want %s", got, want)
	}
	if res.Clock == nil {
		t.Fatal("no clock")
	}
	if a := res.Submods[string(attest.FormatTPM)]; a.TrustVector.InstanceIdentity != attest.InstanceTrusted ||
		a.TrustVector.Hardware != attest.HardwareGenuine || a.TrustVector.Executables != attest.ExecutablesApproved {
		t.Errorf("trust vector %+v", a.TrustVector)
	}
	d := sha256.Sum256(b)
	if res.EvidenceDigest != hex.EncodeToString(d[:]) {
		t.Errorf("evidence digest %s", res.EvidenceDigest)
	}

	// Attest makes the same evidence as quote, encoded.
	b2, err := Attest(f.tpm, f.ak, simPCRs, testNonce)
	if err != nil {
		t.Fatal(err)
	}
	res, err = verify(b2, testNonce, f.registered(), f.ref, nil)
	wantAffirming(t, res, err)

	// CreateAK makes the same key again: the instance id is stable.
	name := f.ak.Name.Buffer
	if err := f.ak.Close(f.tpm); err != nil {
		t.Fatal(err)
	}
	again, err := CreateAK(f.tpm)
	if err != nil {
		t.Fatal(err)
	}
	f.ak = again
	if !bytes.Equal(again.Name.Buffer, name) {
		t.Error("a second CreateAK made another key")
	}
}

func TestSimulatorClock(t *testing.T) {
	f := openFixture(t)
	firstEv := mustMarshal(t, f.evidence(t))
	first, err := verify(firstEv, testNonce, f.registered(), f.ref, nil)
	wantAffirming(t, first, err)
	// The simulator's clock counts milliseconds; wait for it to move.
	var secondEv []byte
	var second attest.Result
	for deadline := time.Now().Add(5 * time.Second); ; {
		time.Sleep(10 * time.Millisecond)
		secondEv = mustMarshal(t, f.evidence(t))
		second, err = verify(secondEv, testNonce, f.registered(), f.ref, nil)
		wantAffirming(t, second, err)
		if second.Clock.Clock > first.Clock.Clock {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the simulator's clock did not advance")
		}
	}
	res, err := verify(secondEv, testNonce, f.registered(), f.ref, first.Clock)
	wantAffirming(t, res, err)

	// The first quote again, after the second was accepted, is a replay
	// or a clock rolled back.
	_, err = verify(firstEv, testNonce, f.registered(), f.ref, second.Clock)
	wantReason(t, err, attest.ReasonClockWentBack)
	// So is the same quote once the device is known to have reset since.
	_, err = verify(secondEv, testNonce, f.registered(), f.ref, &attest.Clock{ResetCount: second.Clock.ResetCount + 1})
	wantReason(t, err, attest.ReasonClockWentBack)
	// And a later clock than the TPM shows.
	_, err = verify(secondEv, testNonce, f.registered(), f.ref, &attest.Clock{
		Clock: second.Clock.Clock + 1000, ResetCount: second.Clock.ResetCount, RestartCount: second.Clock.RestartCount,
	})
	wantReason(t, err, attest.ReasonClockWentBack)
}

func TestSimulatorRefusals(t *testing.T) {
	f := openFixture(t)
	good := f.evidence(t)
	clone := func() *Evidence {
		ev := *good
		ev.Quote, ev.Signature, ev.AK = bytes.Clone(good.Quote), bytes.Clone(good.Signature), bytes.Clone(good.AK)
		ev.PCRs = map[uint32][]byte{}
		for i, v := range good.PCRs {
			ev.PCRs[i] = bytes.Clone(v)
		}
		return &ev
	}
	q, _ := tpm2.Unmarshal[tpm2.TPMSAttest](good.Quote)
	// extraDataAt is where the quote's qualifying data begins.
	extraDataAt := 4 + 2 + 2 + len(q.QualifiedSigner.Buffer) + 2

	for _, tc := range []struct {
		name  string
		edit  func(*Evidence)
		nonce []byte
		e     attest.Endorsements
		want  attest.Reason
	}{
		{"bad magic", func(ev *Evidence) { ev.Quote[0] ^= 0x80 }, testNonce, f.registered(), attest.ReasonBadMagic},
		{"wrong type", func(ev *Evidence) { ev.Quote[5] = byte(tpm2.TPMSTAttestCertify & 0xff) }, testNonce, f.registered(), attest.ReasonBadType},
		{"tampered qualifying data", func(ev *Evidence) { ev.Quote[extraDataAt] ^= 1 }, testNonce, f.registered(), attest.ReasonBadSignature},
		{"tampered firmware version", func(ev *Evidence) { ev.Quote[extraDataAt+len(testNonce)+17] ^= 1 }, testNonce, f.registered(), attest.ReasonBadSignature},
		{"PCR digest mismatch", func(ev *Evidence) { ev.PCRs[0][31] ^= 1 }, testNonce, f.registered(), attest.ReasonPCRDigestMismatch},
		{"PCR values swapped", func(ev *Evidence) { ev.PCRs[0], ev.PCRs[7] = ev.PCRs[7], ev.PCRs[0] }, testNonce, f.registered(), attest.ReasonPCRDigestMismatch},
		{"PCR left out", func(ev *Evidence) { delete(ev.PCRs, 7) }, testNonce, f.registered(), attest.ReasonPCRSelection},
		{"PCR added", func(ev *Evidence) { ev.PCRs[1] = make([]byte, 32) }, testNonce, f.registered(), attest.ReasonPCRSelection},
		{"ECDSA r = s = 0", func(ev *Evidence) {
			ev.Signature = ecdsaSignature(tpm2.TPMAlgSHA256, new(big.Int), new(big.Int))
		}, testNonce, f.registered(), attest.ReasonSignatureRange},
		{"ECDSA s >= n", func(ev *Evidence) {
			s, _ := tpm2.Unmarshal[tpm2.TPMTSignature](ev.Signature)
			es, _ := s.Signature.ECDSA()
			n := new(big.Int).SetBytes([]byte{
				0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51})
			ev.Signature = ecdsaSignature(tpm2.TPMAlgSHA256, new(big.Int).SetBytes(es.SignatureR.Buffer), n.Add(n, big.NewInt(1)))
		}, testNonce, f.registered(), attest.ReasonSignatureRange},
		{"signature hash SHA-384", func(ev *Evidence) {
			s, _ := tpm2.Unmarshal[tpm2.TPMTSignature](ev.Signature)
			es, _ := s.Signature.ECDSA()
			es.Hash = tpm2.TPMAlgSHA384
			ev.Signature = tpm2.Marshal(*s)
		}, testNonce, f.registered(), attest.ReasonAlgMismatch},
		{"wrong nonce", func(*Evidence) {}, sha(1), f.registered(), attest.ReasonNonceMismatch},
		{"nonce of another key thumbprint", func(*Evidence) {},
			attest.ExpectedNonce(attest.FormatTPM, []byte("a challenge of thirty-two bytes!!"), []byte("another jkt")), f.registered(), attest.ReasonNonceMismatch},
		{"another endorsed key", func(*Evidence) {}, testNonce,
			attest.Endorsements{Keys: []attest.TrustedKey{{Public: newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256).publicKey()}}}, attest.ReasonUnknownKey},
		{"no endorsements", func(*Evidence) {}, testNonce, attest.Endorsements{}, attest.ReasonUnknownKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := clone()
			tc.edit(ev)
			_, err := verify(mustMarshal(t, ev), tc.nonce, tc.e, f.ref, nil)
			wantReason(t, err, tc.want)
		})
	}

	t.Run("empty nonce", func(t *testing.T) {
		ev, err := quote(f.tpm, f.ak, simPCRs, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = verify(mustMarshal(t, ev), testNonce, f.registered(), f.ref, nil)
		wantReason(t, err, attest.ReasonNonceMissing)
	})

	t.Run("every byte of the quote flipped", func(t *testing.T) {
		for i := range good.Quote {
			ev := clone()
			ev.Quote[i] ^= 0x01
			if _, err := verify(mustMarshal(t, ev), testNonce, f.registered(), f.ref, nil); err == nil {
				t.Fatalf("verified with quote byte %d flipped", i)
			} else if attest.ReasonOf(err) == "" {
				t.Fatalf("byte %d: an error without a reason: %v", i, err)
			}
		}
	})

	t.Run("truncated evidence", func(t *testing.T) {
		b := mustMarshal(t, good)
		for n := range len(b) {
			if _, err := verify(b[:n], testNonce, f.registered(), f.ref, nil); err == nil {
				t.Fatalf("verified %d of %d bytes", n, len(b))
			} else if attest.ReasonOf(err) == "" {
				t.Fatalf("%d bytes: an error without a reason: %v", n, err)
			}
		}
	})

	t.Run("truncated TPM structures", func(t *testing.T) {
		for _, field := range []string{"quote", "signature", "ak"} {
			var full []byte
			switch field {
			case "quote":
				full = good.Quote
			case "signature":
				full = good.Signature
			case "ak":
				full = good.AK
			}
			for n := 1; n < len(full); n++ {
				ev := clone()
				switch field {
				case "quote":
					ev.Quote = full[:n]
				case "signature":
					ev.Signature = full[:n]
				case "ak":
					ev.AK = full[:n]
				}
				if _, err := verify(mustMarshal(t, ev), testNonce, f.registered(), f.ref, nil); err == nil {
					t.Fatalf("verified with %s cut to %d of %d bytes", field, n, len(full))
				} else if attest.ReasonOf(err) == "" {
					t.Fatalf("%s cut to %d bytes: an error without a reason: %v", field, n, err)
				}
			}
		}
	})
}

func TestSimulatorUnrestrictedAK(t *testing.T) {
	f := openFixture(t)
	tmpl := AKTemplate()
	tmpl.ObjectAttributes.Restricted = false
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tmpl),
	}.Execute(f.tpm)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		t.Fatal(err)
	}
	key := &AK{Handle: rsp.ObjectHandle, Name: rsp.Name, Public: *pub}
	defer key.Close(f.tpm)
	kp, err := key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	// An unrestricted key signs whatever it is given, quotes included;
	// only the attribute tells the verifier not to believe them.
	b, err := Attest(f.tpm, key, simPCRs, testNonce)
	if err != nil {
		t.Fatal(err)
	}
	_, err = verify(b, testNonce, attest.Endorsements{Keys: []attest.TrustedKey{{Public: kp}}}, f.ref, nil)
	wantReason(t, err, attest.ReasonAKAttributes)
}

func TestSimulatorAppraisal(t *testing.T) {
	f := openFixture(t)
	b := mustMarshal(t, f.evidence(t))
	other := attest.ReferenceValues{PCRs: map[int][][]byte{0: f.ref.PCRs[0], 7: {sha(7)}}}
	res, err := verify(b, testNonce, f.registered(), attest.ReferenceValues{}, nil)
	wantAppraisal(t, res, err, attest.ReasonEmptyReferenceValues)
	res, err = verify(b, testNonce, f.registered(), other, nil)
	wantAppraisal(t, res, err, attest.ReasonMeasurementUnknown)

	// After a measurement the reference values do not list, the same
	// device's next quote is contraindicated.
	if _, err := Measure(f.tpm, 7, []byte("an unknown bootloader")); err != nil {
		t.Fatal(err)
	}
	res, err = verify(mustMarshal(t, f.evidence(t)), testNonce, f.registered(), f.ref, nil)
	wantAppraisal(t, res, err, attest.ReasonMeasurementUnknown)
}

func TestSimulatorCertificates(t *testing.T) {
	f := openFixture(t)
	root := newCert(t, nil, nil, certOpts{isCA: true})
	inter := newCert(t, root, nil, certOpts{isCA: true})
	roots := attest.Endorsements{Roots: []*x509.Certificate{root.cert}}
	leaf := func(o certOpts) []byte { return newCert(t, inter, f.akPub, o).cert.Raw }
	otherRoot := newCert(t, nil, nil, certOpts{isCA: true})
	expiredRoot := newCert(t, nil, nil, certOpts{isCA: true, notBefore: testNow.Add(-48 * time.Hour), notAfter: testNow.Add(-time.Hour)})

	for _, tc := range []struct {
		name  string
		certs [][]byte
		e     attest.Endorsements
		want  attest.Reason // "" for affirming
	}{
		{"chain through an intermediate", [][]byte{leaf(certOpts{}), inter.cert.Raw}, roots, ""},
		{"leaf with digitalSignature", [][]byte{leaf(certOpts{keyUsage: x509.KeyUsageDigitalSignature}), inter.cert.Raw}, roots, ""},
		{"leaf issued by the root", [][]byte{newCert(t, root, f.akPub, certOpts{}).cert.Raw}, roots, ""},
		{"registered key, certificates of another root", [][]byte{leaf(certOpts{}), inter.cert.Raw},
			attest.Endorsements{Keys: f.registered().Keys, Roots: []*x509.Certificate{otherRoot.cert}}, ""},
		{"another root", [][]byte{leaf(certOpts{}), inter.cert.Raw}, attest.Endorsements{Roots: []*x509.Certificate{otherRoot.cert}}, attest.ReasonCertUntrusted},
		{"no root", [][]byte{leaf(certOpts{}), inter.cert.Raw}, attest.Endorsements{}, attest.ReasonCertUntrusted},
		{"intermediate missing", [][]byte{leaf(certOpts{})}, roots, attest.ReasonCertUntrusted},
		{"self-signed leaf", [][]byte{newCert(t, nil, nil, certOpts{}).cert.Raw}, roots, attest.ReasonCertUntrusted},
		{"expired leaf", [][]byte{leaf(certOpts{notBefore: testNow.Add(-48 * time.Hour), notAfter: testNow.Add(-time.Hour)}), inter.cert.Raw}, roots, attest.ReasonCertExpired},
		{"leaf not yet valid", [][]byte{leaf(certOpts{notBefore: testNow.Add(time.Hour)}), inter.cert.Raw}, roots, attest.ReasonCertExpired},
		{"expired intermediate", func() [][]byte {
			old := newCert(t, root, nil, certOpts{isCA: true, notBefore: testNow.Add(-48 * time.Hour), notAfter: testNow.Add(-time.Hour)})
			return [][]byte{newCert(t, old, f.akPub, certOpts{}).cert.Raw, old.cert.Raw}
		}(), roots, attest.ReasonCertExpired},
		{"expired root", [][]byte{newCert(t, expiredRoot, f.akPub, certOpts{}).cert.Raw},
			attest.Endorsements{Roots: []*x509.Certificate{expiredRoot.cert}}, attest.ReasonCertExpired},
		{"CA certificate as the leaf", [][]byte{newCert(t, inter, f.akPub, certOpts{isCA: true}).cert.Raw, inter.cert.Raw}, roots, attest.ReasonCertCAAsLeaf},
		{"leaf of another key", [][]byte{newCert(t, inter, newSoftECC(t, elliptic.P256(), tpm2.TPMAlgSHA256).publicKey(), certOpts{}).cert.Raw, inter.cert.Raw}, roots, attest.ReasonUnknownKey},
		{"leaf for key encipherment only", [][]byte{leaf(certOpts{keyUsage: x509.KeyUsageKeyEncipherment}), inter.cert.Raw}, roots, attest.ReasonCertBadUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.ak.Certs = tc.certs
			defer func() { f.ak.Certs = nil }()
			b, err := Attest(f.tpm, f.ak, simPCRs, testNonce)
			if err != nil {
				t.Fatal(err)
			}
			res, err := verify(b, testNonce, tc.e, f.ref, nil)
			if tc.want == "" {
				wantAffirming(t, res, err)
			} else {
				wantReason(t, err, tc.want)
			}
		})
	}
}

func TestAttestArguments(t *testing.T) {
	f := openFixture(t)
	for _, tc := range []struct {
		name  string
		pcrs  []int
		nonce []byte
	}{
		{"no nonce", simPCRs, nil},
		{"a 65-byte nonce", simPCRs, make([]byte, 65)},
		{"no PCR", nil, testNonce},
		{"PCR 24", []int{24}, testNonce},
		{"PCR -1", []int{-1}, testNonce},
		{"PCR 7 twice", []int{7, 0, 7}, testNonce},
	} {
		if _, err := Attest(f.tpm, f.ak, tc.pcrs, tc.nonce); err == nil {
			t.Errorf("%s: Attest made evidence", tc.name)
		}
	}
	// All 24 PCRs quote and verify (most of them zeros).
	all := make([]int, maxPCR)
	for i := range all {
		all[i] = i
	}
	b, err := Attest(f.tpm, f.ak, all, testNonce)
	if err != nil {
		t.Fatal(err)
	}
	res, err := verify(b, testNonce, f.registered(), f.ref, nil)
	wantAppraisal(t, res, err, attest.ReasonMeasurementUnknown)
	if len(res.Measurements) != maxPCR {
		t.Errorf("%d measurements", len(res.Measurements))
	}
}

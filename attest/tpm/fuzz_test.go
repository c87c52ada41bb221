//go:build cgo

package tpm

import (
	"crypto/elliptic"
	"crypto/x509"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/hegate/hegate/attest"
)

// openFixedSimulator opens a simulator whose hierarchy seeds are fixed, so
// that every fuzzing worker process (each runs this setup again) derives
// the same AK and endorses the key that the seed evidence carries.
func openFixedSimulator() (transport.TPMCloser, error) {
	sim, err := simulator.GetWithFixedSeedInsecure(20260301)
	if err != nil {
		return nil, err
	}
	t := transport.FromReadWriteCloser(sim)
	if _, err := Measure(t, SimulatorPCR, []byte(SimulatorMeasurement)); err != nil {
		_ = t.Close()
		return nil, err
	}
	return t, nil
}

// FuzzEvidence feeds Verify arbitrary evidence, seeded with real
// simulator quotes. Verify must never panic, every refusal must carry a
// reason, and an acceptance must come with a complete result.
//
// Each input is verified three times: against the fixture's registered
// key, against the CA root (whose key is fresh in each worker, so only the
// seeds made in the coordinating process chain to it), and
// against an endorsement of whatever AK the input carries, so that
// mutations of the AK still reach the signature, nonce, PCR and clock
// checks.
func FuzzEvidence(f *testing.F) {
	fx := openFixtureWith(f, openFixedSimulator)
	root := newCert(f, nil, nil, certOpts{isCA: true})
	inter := newCert(f, root, nil, certOpts{isCA: true})
	leaf := newCert(f, inter, fx.akPub, certOpts{})

	good := fx.evidence(f)
	f.Add(mustMarshal(f, good))
	fx.ak.Certs = [][]byte{leaf.cert.Raw, inter.cert.Raw}
	f.Add(mustMarshal(f, fx.evidence(f)))
	fx.ak.Certs = nil
	all, err := quote(fx.tpm, fx.ak, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}, testNonce)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(mustMarshal(f, all))
	for _, k := range []*softAK{
		newSoftECC(f, elliptic.P384(), tpm2.TPMAlgSHA384),
		newSoftRSA(f, 2048, tpm2.TPMAlgRSAPSS, tpm2.TPMAlgSHA256),
	} {
		f.Add(mustMarshal(f, k.evidence(f, k.softQuote())))
	}
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	f.Add(append([]byte{0xa1, 0x64, 'p', 'c', 'r', 's', 0xa1, 0x00, 0x58, 0x20}, make([]byte, 32)...))

	fixture := attest.Endorsements{Keys: fx.registered().Keys}
	roots := attest.Endorsements{Roots: []*x509.Certificate{root.cert}}
	ref := fx.ref
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(e attest.Endorsements) {
			res, err := verify(b, testNonce, e, ref, nil)
			if err != nil {
				if attest.ReasonOf(err) == "" {
					t.Fatalf("an error without a reason: %v", err)
				}
				return
			}
			if !res.Status().Valid() || res.Clock == nil || res.InstanceID == "" {
				t.Fatalf("accepted with result %+v", res)
			}
		}
		check(fixture)
		check(roots)
		// Endorse the AK the input carries, when it has one.
		if ev, err := ParseEvidence(b); err == nil {
			if ak, err := parseAK(ev.AK); err == nil {
				check(attest.Endorsements{Keys: []attest.TrustedKey{{Public: ak.public}}})
			}
		}
	})
}

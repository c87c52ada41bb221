package native

import (
	"context"
	"testing"

	"github.com/hegate/hegate/attest"
)

// FuzzEvidence feeds arbitrary bytes to the verifier, seeded with evidence
// signed by fixed Ed25519 and ML-DSA-65 keys that the input endorses, so
// that mutations reach the claims and the appraisal. Every input must be
// either refused with a reason or verified into a well-formed result;
// none may panic.
func FuzzEvidence(f *testing.F) {
	ed := newDevice(edKey("fuzz"), "fuzz")
	ml := newDevice(mlKey("fuzz"), "fuzz")
	ml.kid = []byte("kid-fuzz-ml")
	ml.claims = ed.claims
	for _, d := range []*device{ed, ml} {
		ev := d.sign(f)
		f.Add(ev)
		f.Add(ev[1:]) // untagged
	}
	in := ed.input(nil)
	in.Endorsements.Keys = append(in.Endorsements.Keys, attest.TrustedKey{ID: ml.kid, Public: ml.key.Public()})

	v := Verifier{}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := in
		in.Evidence = b
		res, err := v.Verify(context.Background(), in)
		if err != nil {
			if attest.ReasonOf(err) == "" {
				t.Fatalf("refusal without a reason: %v", err)
			}
			return
		}
		if !res.Status().Valid() || res.Format != attest.FormatNative || res.InstanceID == "" || len(res.KeyThumbprint) != 64 {
			t.Fatalf("verified into a malformed result: %+v", res)
		}
	})
}

package psa

import (
	"context"
	"testing"

	"github.com/hegate/hegate/attest"
)

// FuzzToken feeds arbitrary bytes to the verifier, seeded with the real
// tokens of testdata and with tokens of every profile signed by a fixed
// key (endorsed, so that mutations of them reach the claims and the
// appraisal). Every input must be either refused with a reason or
// verified into a well-formed result; none may panic.
func FuzzToken(f *testing.F) {
	d := testDevice(f, "fuzz")
	nonce := testNonce("fuzz")
	keys := []attest.TrustedKey{d.Endorsement()}
	var ref attest.ReferenceValues = d.ReferenceValues()
	for _, rt := range realTokens {
		tok := readTestdata(f, rt.file)
		f.Add(tok)
		f.Add(tok[1:]) // untagged
	}
	for _, c := range []map[int64]any{p1Claims(d, nonce), p2Claims(d, nonce), rfc9783Claims(d, nonce)} {
		f.Add(signClaims(f, d, c))
	}
	tok, err := d.Token(nonce)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)

	// Endorse the real tokens' keys too.
	for _, rt := range realTokens {
		in, _ := realInput(f, rt)
		keys = append(keys, in.Endorsements.Keys...)
		ref.Components = append(ref.Components, in.ReferenceValues.Components...)
		ref.ImplementationIDs = append(ref.ImplementationIDs, in.ReferenceValues.ImplementationIDs...)
	}

	v := Verifier{}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := attest.Input{Evidence: b, Nonce: nonce, Endorsements: attest.Endorsements{Keys: keys}, ReferenceValues: ref}
		res, err := v.Verify(context.Background(), in)
		if err != nil {
			if attest.ReasonOf(err) == "" {
				t.Fatalf("refusal without a reason: %v", err)
			}
			return
		}
		if !res.Status().Valid() || res.Format != attest.FormatPSA || res.InstanceID == "" || len(res.Measurements) == 0 {
			t.Fatalf("verified into a malformed result: %+v", res)
		}
	})
}

//go:build cgo

package gateway

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/tpm"
)

// TestEnrollTPMSimulator: a quote of the TPM reference simulator enrolls a
// device whose credential runs an encrypted inference; the same quote
// replayed against a later, accepted one is refused because the TPM clock
// went back.
func TestEnrollTPMSimulator(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	ksID := bd.upload(t, bd.a)
	requireAttestation(t, bd.ctx, bd.a.client)

	sim, err := tpm.OpenSimulator()
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ak, err := tpm.CreateAK(sim)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ak.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	pcrs, err := tpm.ReadPCRs(sim, []int{tpm.SimulatorPCR})
	if err != nil {
		t.Fatal(err)
	}
	ev := testEvidence{
		format: attest.FormatTPM,
		make: func(nonce, _ []byte) ([]byte, error) {
			return tpm.Attest(sim, ak, []int{tpm.SimulatorPCR}, nonce)
		},
		trust: func() (attest.Endorsements, attest.ReferenceValues) {
			return attest.Endorsements{Keys: []attest.TrustedKey{{Public: pub}}},
				attest.ReferenceValues{PCRs: map[int][][]byte{tpm.SimulatorPCR: {pcrs[tpm.SimulatorPCR]}}}
		},
	}
	endorse(t, bd.ctx, bd.a.client, ev)
	dev, _ := enrollAndInfer(t, bd, ksID, ev)
	var res attest.Result
	if err := json.Unmarshal(dev.Result, &res); err != nil || res.Clock == nil {
		t.Fatalf("TPM result without a clock: %s", dev.Result)
	}

	t.Run("fail/clock went back", func(t *testing.T) {
		// A quote made now, held back while a later one enrolls, then sent.
		_, devKey := newEd25519(t)
		jkt := thumbprint(t, devKey)
		n1, _, err := bd.a.client.Challenge(bd.ctx)
		if err != nil {
			t.Fatal(err)
		}
		early, err := tpm.Attest(sim, ak, []int{tpm.SimulatorPCR}, attest.ExpectedNonce(attest.FormatTPM, n1, jkt))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := bd.a.client.Enroll(bd.ctx, ev, devKey); err != nil {
			t.Fatalf("a later quote: %v", err)
		}
		err = enrollRaw(bd, bd.a.client, attest.FormatTPM, n1, early, devKey)
		wantReason(t, err, http.StatusForbidden, string(attest.ReasonClockWentBack))
	})
}

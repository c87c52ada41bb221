//go:build cgo

package main

import (
	"context"
	"fmt"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/tpm"
)

// tpmSimulatorEvidence quotes the TPM reference simulator, seeded so that
// the same identity has the same attestation key every run. The
// simulator's clock starts again with every process, so a second
// enrollment of one simulated TPM is refused as tpm-clock-went-back, just
// as a real verifier must refuse a TPM whose clock went back: enroll a
// new simulated device with --new.
type tpmSimulatorEvidence struct{ seed int64 }

func newTPMSimulatorEvidence(seed int64) (evidenceMaker, error) {
	return tpmSimulatorEvidence{seed}, nil
}

func (e tpmSimulatorEvidence) Format() attest.Format { return attest.FormatTPM }

func (e tpmSimulatorEvidence) with(f func(t transport.TPM, ak *tpm.AK) error) error {
	t, err := tpm.OpenSimulatorWithSeed(e.seed)
	if err != nil {
		return err
	}
	defer t.Close()
	ak, err := tpm.CreateAK(t)
	if err != nil {
		return err
	}
	defer ak.Close(t)
	return f(t, ak)
}

func (e tpmSimulatorEvidence) Evidence(_ context.Context, nonce, _ []byte) ([]byte, error) {
	var out []byte
	err := e.with(func(t transport.TPM, ak *tpm.AK) error {
		var err error
		out, err = tpm.Attest(t, ak, []int{tpm.SimulatorPCR}, nonce)
		return err
	})
	return out, err
}

// Trust is the AK's public key (pre-registered: the simulator has no
// manufacturer certificate) and the PCR value the simulator's one
// measurement gives.
func (e tpmSimulatorEvidence) Trust() (attest.Endorsements, attest.ReferenceValues, error) {
	var en attest.Endorsements
	var refs attest.ReferenceValues
	err := e.with(func(t transport.TPM, ak *tpm.AK) error {
		pub, err := ak.PublicKey()
		if err != nil {
			return err
		}
		pcrs, err := tpm.ReadPCRs(t, []int{tpm.SimulatorPCR})
		if err != nil {
			return err
		}
		en.Keys = []attest.TrustedKey{{Public: pub}}
		refs.PCRs = map[int][][]byte{tpm.SimulatorPCR: {pcrs[tpm.SimulatorPCR]}}
		return nil
	})
	if err != nil {
		return en, refs, fmt.Errorf("reading the simulated TPM: %w", err)
	}
	return en, refs, nil
}

// cgoEnabled says whether this binary has the TPM simulator.
const cgoEnabled = true

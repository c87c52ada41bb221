//go:build cgo

package tpm

import (
	"fmt"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"
)

// SimulatorPCR and SimulatorMeasurement are what OpenSimulator measures:
// a fresh simulator's PCRs are all zeros, which no reference value should
// allow, so development quotes show one boot measurement instead. Its
// value, SHA-256 extended into PCR 0 once, is what a development
// tenant's reference values list.
const (
	SimulatorPCR         = 0
	SimulatorMeasurement = "hegate development TPM simulator: not a real TPM"
)

// OpenSimulator starts the Microsoft TPM 2.0 reference simulator (from
// go-tpm-tools, built with cgo) and measures SimulatorMeasurement into
// SimulatorPCR. It is for development and tests: its seeds are fresh each
// time, so its AK differs between runs, and nothing about it is
// hardware. Only one simulator runs per process: a second OpenSimulator
// waits until the first is closed.
func OpenSimulator() (transport.TPMCloser, error) {
	sim, err := simulator.Get()
	return startSimulator(sim, err)
}

// OpenSimulatorWithSeed is OpenSimulator with the simulator's seeds
// derived from seed, so that its endorsement hierarchy, and so its AK (see
// CreateAK), is the same on every run: a development device keeps its
// identity. Anyone who knows the seed has the keys; this is no secret
// storage either.
func OpenSimulatorWithSeed(seed int64) (transport.TPMCloser, error) {
	sim, err := simulator.GetWithFixedSeedInsecure(seed)
	return startSimulator(sim, err)
}

func startSimulator(sim *simulator.Simulator, err error) (transport.TPMCloser, error) {
	if err != nil {
		return nil, fmt.Errorf("attest/tpm: starting the TPM simulator: %w", err)
	}
	t := transport.FromReadWriteCloser(sim)
	if _, err := Measure(t, SimulatorPCR, []byte(SimulatorMeasurement)); err != nil {
		_ = t.Close()
		return nil, err
	}
	return t, nil
}

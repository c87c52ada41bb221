//go:build !cgo

package main

import "errors"

func newTPMSimulatorEvidence(int64) (evidenceMaker, error) {
	return nil, errors.New("this hegate was built without cgo, so it has no TPM simulator: build it with CGO_ENABLED=1")
}

// cgoEnabled says whether this binary has the TPM simulator.
const cgoEnabled = false

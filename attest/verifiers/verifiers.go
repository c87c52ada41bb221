// Package verifiers gathers hegate's evidence verifiers, one per format,
// for the gateway and the offline "hegate attest verify".
package verifiers

import (
	"time"

	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/native"
	"github.com/hegate/hegate/attest/psa"
	"github.com/hegate/hegate/attest/tpm"
)

// All returns a verifier for every format, telling the time with now
// (time.Now when nil).
func All(now func() time.Time) []attest.Verifier {
	if now == nil {
		now = time.Now
	}
	return []attest.Verifier{
		&tpm.Verifier{Now: now},
		&psa.Verifier{Now: now},
		&native.Verifier{Now: now},
	}
}

// For returns the verifier of format f among vs, or nil.
func For(vs []attest.Verifier, f attest.Format) attest.Verifier {
	for _, v := range vs {
		if v.Format() == f {
			return v
		}
	}
	return nil
}

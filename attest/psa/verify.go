package psa

import (
	"bytes"
	"context"
	"encoding/hex"
	"time"

	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/internal/cosesig"
)

// Verifier verifies PSA attestation tokens. The zero value is ready to
// use.
type Verifier struct {
	// Now is the time results are issued at; nil means time.Now.
	Now func() time.Time
}

var _ attest.Verifier = Verifier{}

// Format returns attest.FormatPSA.
func (Verifier) Format() attest.Format { return attest.FormatPSA }

// Verify checks a PSA token against in, in the order the package
// documentation gives. Every refusal is an *attest.Error.
func (v Verifier) Verify(ctx context.Context, in attest.Input) (attest.Result, error) {
	if err := ctx.Err(); err != nil {
		return attest.Result{}, err
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}

	msg, err := cosesig.Decode(in.Evidence)
	if err != nil {
		return attest.Result{}, err
	}
	claims, err := DecodeClaims(msg.Payload)
	if err != nil {
		return attest.Result{}, err
	}
	key, ok := endorsedKey(in.Endorsements, claims.InstanceID)
	if !ok {
		return attest.Result{}, attest.Errorf(attest.ReasonUnknownInstance, "instance id %x has no endorsed key", claims.InstanceID)
	}
	if err := msg.Verify(key.Public); err != nil {
		return attest.Result{}, err
	}
	if !bytes.Equal(claims.Nonce, in.Nonce) {
		return attest.Result{}, attest.Errorf(attest.ReasonNonceMismatch, "the token's nonce is not the expected one")
	}

	res := attest.NewResult(attest.FormatPSA, in.Evidence, now, appraise(claims, key, in.ReferenceValues))
	res.InstanceID = hex.EncodeToString(claims.InstanceID)
	res.Measurements = make(map[string]string, len(claims.Components))
	for i, n := range measurementNames(claims.Components) {
		res.Measurements[n] = hex.EncodeToString(claims.Components[i].Measurement)
	}
	return res, nil
}

// endorsedKey finds the endorsed key whose ID is the instance id.
func endorsedKey(e attest.Endorsements, instanceID []byte) (attest.TrustedKey, bool) {
	for _, k := range e.Keys {
		if len(k.ID) > 0 && bytes.Equal(k.ID, instanceID) {
			return k, true
		}
	}
	return attest.TrustedKey{}, false
}

// appraise compares an authentic token's claims with the endorsement and
// the reference values.
func appraise(c *Claims, key attest.TrustedKey, ref attest.ReferenceValues) attest.Appraisal {
	a := attest.Appraisal{TrustVector: attest.TrustVector{
		InstanceIdentity: attest.InstanceTrusted,
		Hardware:         attest.HardwareGenuine,
		Configuration:    attest.ConfigApproved,
		Executables:      attest.ExecutablesApproved,
	}}
	if !implementationAllowed(c.ImplementationID, key, ref) {
		a.TrustVector.Hardware = attest.TierContraindicated
		a.TrustVector.Configuration = attest.ConfigContraindicated
		a.Reasons = append(a.Reasons, attest.ReasonImplementationID)
	}
	if !c.Secured() {
		a.TrustVector.Configuration = attest.ConfigContraindicated
		a.Reasons = append(a.Reasons, attest.ReasonDebugLifecycle)
	}
	switch {
	case ref.Empty(attest.FormatPSA):
		a.TrustVector.Executables = attest.ExecutablesContraindicated
		a.Reasons = append(a.Reasons, attest.ReasonEmptyReferenceValues)
	default:
		for _, comp := range c.Components {
			if !ref.AllowsComponent(comp.Measurement, comp.SignerID) {
				a.TrustVector.Executables = attest.ExecutablesContraindicated
				a.Reasons = append(a.Reasons, attest.ReasonMeasurementUnknown)
				break
			}
		}
	}
	return a
}

// implementationAllowed: a key bound to an implementation id admits that
// one alone (attest.TrustedKey.ImplementationID: "the implementation the
// key's device must report"); a key bound to none admits the reference
// values' list.
func implementationAllowed(id []byte, key attest.TrustedKey, ref attest.ReferenceValues) bool {
	if len(key.ImplementationID) > 0 {
		return bytes.Equal(key.ImplementationID, id)
	}
	return ref.AllowsImplementation(id)
}

package native

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"sort"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/internal/cosesig"
)

// Verifier verifies native evidence. The zero value is ready to use.
type Verifier struct {
	// Now is the time results are issued at; nil means time.Now.
	Now func() time.Time
}

var _ attest.Verifier = Verifier{}

// Format returns attest.FormatNative.
func (Verifier) Format() attest.Format { return attest.FormatNative }

// Verify checks native evidence against in, in the order the package
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
	if msg.KID == nil {
		if msg.UnprotectedKID {
			return attest.Result{}, attest.Errorf(attest.ReasonBadProtectedHeader, "kid is in the unprotected header; native evidence protects it")
		}
		return attest.Result{}, attest.Errorf(attest.ReasonBadProtectedHeader, "no kid in the protected header")
	}
	if msg.UnprotectedKID {
		return attest.Result{}, attest.Errorf(attest.ReasonBadProtectedHeader, "a kid in the unprotected header too")
	}
	claims, err := ParseClaims(msg.Payload)
	if err != nil {
		return attest.Result{}, err
	}
	key, ok := endorsedKey(in.Endorsements, msg.KID)
	if !ok {
		return attest.Result{}, attest.Errorf(attest.ReasonUnknownKey, "kid %x names no endorsed key", msg.KID)
	}
	switch key.Public.(type) {
	case ed25519.PublicKey, *mldsa65.PublicKey:
	default:
		return attest.Result{}, attest.Errorf(attest.ReasonAlgUnsupported, "the key endorsed under kid %x is %T; native evidence is signed with Ed25519 or ML-DSA-65", msg.KID, key.Public)
	}
	if err := msg.Verify(key.Public); err != nil {
		return attest.Result{}, err
	}
	if !bytes.Equal(claims.Nonce, in.Nonce) {
		return attest.Result{}, attest.Errorf(attest.ReasonNonceMismatch, "eat_nonce is not the expected nonce")
	}
	if len(in.KeyThumbprint) > 0 && !bytes.Equal(claims.KeyThumbprint, in.KeyThumbprint) {
		return attest.Result{}, attest.Errorf(attest.ReasonKeyMismatch, "cnf.jkt %x is not the credential key's thumbprint", claims.KeyThumbprint)
	}

	// The instance is the endorsed key, not the ueid: the ueid is whatever
	// the key's holder writes, and letting it choose the registry row would
	// let one endorsed device take over another's, or a revoked one come
	// back under a new ueid.
	instance, err := attest.KeyDigest(key.Public)
	if err != nil {
		return attest.Result{}, attest.Errorf(attest.ReasonAlgUnsupported, "the key endorsed under kid %x: %v", msg.KID, err)
	}
	res := attest.NewResult(attest.FormatNative, in.Evidence, now, appraise(claims.Measurements, in.ReferenceValues))
	res.InstanceID = hex.EncodeToString(instance)
	res.UEID = hex.EncodeToString(claims.UEID)
	res.KeyThumbprint = hex.EncodeToString(claims.KeyThumbprint)
	res.Measurements = make(map[string]string, len(claims.Measurements))
	for name, d := range claims.Measurements {
		res.Measurements[name] = hex.EncodeToString(d)
	}
	return res, nil
}

func endorsedKey(e attest.Endorsements, kid []byte) (attest.TrustedKey, bool) {
	for _, k := range e.Keys {
		if len(k.ID) > 0 && bytes.Equal(k.ID, kid) {
			return k, true
		}
	}
	return attest.TrustedKey{}, false
}

// appraise compares the measurements with the reference values. A name
// the reference values list but the evidence leaves out counts against it,
// as a PCR does for TPM quotes: the tenant said that measurement matters,
// and a device may not drop it to hide its value.
func appraise(ms map[string][]byte, ref attest.ReferenceValues) attest.Appraisal {
	a := attest.Appraisal{TrustVector: attest.TrustVector{
		InstanceIdentity: attest.InstanceTrusted,
		Executables:      attest.ExecutablesApproved,
		// Hardware stays attest.TierNone: a software key proves no
		// hardware, so native evidence makes no hardware claim.
	}}
	contraindicate := func(r attest.Reason) attest.Appraisal {
		a.TrustVector.Executables = attest.ExecutablesContraindicated
		a.Reasons = []attest.Reason{r}
		return a
	}
	if ref.Empty(attest.FormatNative) {
		return contraindicate(attest.ReasonEmptyReferenceValues)
	}
	names := make([]string, 0, len(ms))
	for n := range ms {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !ref.AllowsMeasurement(n, ms[n]) {
			return contraindicate(attest.ReasonMeasurementUnknown)
		}
	}
	for n := range ref.Measurements {
		if _, ok := ms[n]; !ok {
			return contraindicate(attest.ReasonMeasurementUnknown)
		}
	}
	return a
}

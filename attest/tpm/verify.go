package tpm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hegate/hegate/attest"
)

// Verifier verifies TPM 2.0 quote evidence. The zero value is ready to
// use.
type Verifier struct {
	// Now is the time certificates are checked at and results are issued
	// at; nil means time.Now.
	Now func() time.Time
}

var _ attest.Verifier = Verifier{}

// Format returns attest.FormatTPM.
func (Verifier) Format() attest.Format { return attest.FormatTPM }

// Verify checks TPM evidence against in, in the order the package
// documentation gives. Every refusal is an *attest.Error; the only other
// error is ctx's, when it is already done (verification itself is a
// bounded computation and does not watch ctx).
func (v Verifier) Verify(ctx context.Context, in attest.Input) (attest.Result, error) {
	if err := ctx.Err(); err != nil {
		return attest.Result{}, err
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}

	ev, err := ParseEvidence(in.Evidence)
	if err != nil {
		return attest.Result{}, err
	}
	// Structure first, cryptography after: every structural refusal is
	// reachable with evidence that is signed, and nothing unparsed is
	// handed to a signature check.
	quote, info, err := parseQuote(ev.Quote)
	if err != nil {
		return attest.Result{}, err
	}
	ak, err := parseAK(ev.AK)
	if err != nil {
		return attest.Result{}, err
	}
	certs, err := parseCerts(ev.AKCerts)
	if err != nil {
		return attest.Result{}, err
	}
	if err := ak.checkSignature(ev.Quote, ev.Signature); err != nil {
		return attest.Result{}, err
	}
	if err := endorsed(ak.public, certs, in.Endorsements, now); err != nil {
		return attest.Result{}, err
	}

	switch {
	case len(quote.ExtraData.Buffer) == 0:
		return attest.Result{}, attest.Errorf(attest.ReasonNonceMissing, "quote carries no qualifying data")
	case len(in.Nonce) == 0:
		return attest.Result{}, attest.Errorf(attest.ReasonNonceMissing, "no expected nonce to check the quote against")
	case !bytes.Equal(quote.ExtraData.Buffer, in.Nonce):
		return attest.Result{}, attest.Errorf(attest.ReasonNonceMismatch, "quote qualifying data is not the expected nonce")
	}

	idx, err := selectedPCRs(info.PCRSelect)
	if err != nil {
		return attest.Result{}, err
	}
	if len(idx) != len(ev.PCRs) {
		return attest.Result{}, attest.Errorf(attest.ReasonPCRSelection, "quote selects %d PCRs, evidence gives %d", len(idx), len(ev.PCRs))
	}
	for _, i := range idx {
		if _, ok := ev.PCRs[i]; !ok {
			return attest.Result{}, attest.Errorf(attest.ReasonPCRSelection, "quote selects PCR %d, evidence gives no value for it", i)
		}
	}
	if !bytes.Equal(pcrDigest(ak.crypto, idx, ev.PCRs), info.PCRDigest.Buffer) {
		return attest.Result{}, attest.Errorf(attest.ReasonPCRDigestMismatch, "PCR values do not hash to the quoted digest")
	}

	clock := attest.Clock{
		Clock:        quote.ClockInfo.Clock,
		ResetCount:   quote.ClockInfo.ResetCount,
		RestartCount: quote.ClockInfo.RestartCount,
		Safe:         quote.ClockInfo.Safe,
	}
	if in.Previous != nil && clock.WentBackFrom(*in.Previous) {
		return attest.Result{}, attest.Errorf(attest.ReasonClockWentBack,
			"clock %d (reset %d, restart %d) is not after the last accepted %d (reset %d, restart %d)",
			clock.Clock, clock.ResetCount, clock.RestartCount, in.Previous.Clock, in.Previous.ResetCount, in.Previous.RestartCount)
	}

	res := attest.NewResult(attest.FormatTPM, in.Evidence, now, appraise(idx, ev.PCRs, in.ReferenceValues))
	// The instance is the AK's public key, not its TPM name: the signature
	// proves the key, while the rest of the TPMT_PUBLIC sent with it (the
	// authPolicy, the name algorithm) is the device's to choose, and a name
	// over it would let a device pick a new registry row at will.
	instance, err := attest.KeyDigest(ak.public)
	if err != nil {
		return attest.Result{}, attest.Errorf(attest.ReasonMalformed, "ak: %v", err)
	}
	res.InstanceID = hex.EncodeToString(instance)
	res.Clock = &clock
	res.Measurements = make(map[string]string, len(idx))
	for _, i := range idx {
		res.Measurements[fmt.Sprintf("pcr%d", i)] = hex.EncodeToString(ev.PCRs[i])
	}
	return res, nil
}

// appraise compares the quoted PCRs with the reference values. A PCR the
// reference values name but the quote leaves out counts against it: the
// tenant said that PCR matters, and a device may not drop it from the
// selection to hide its value.
func appraise(idx []uint32, pcrs map[uint32][]byte, ref attest.ReferenceValues) attest.Appraisal {
	a := attest.Appraisal{TrustVector: attest.TrustVector{
		InstanceIdentity: attest.InstanceTrusted,
		Hardware:         attest.HardwareGenuine,
		Executables:      attest.ExecutablesApproved,
	}}
	contraindicate := func(r attest.Reason) {
		a.TrustVector.Executables = attest.ExecutablesContraindicated
		a.Reasons = []attest.Reason{r}
	}
	if ref.Empty(attest.FormatTPM) {
		contraindicate(attest.ReasonEmptyReferenceValues)
		return a
	}
	for _, i := range idx {
		if !ref.AllowsPCR(int(i), pcrs[i]) {
			contraindicate(attest.ReasonMeasurementUnknown)
			return a
		}
	}
	for i := range ref.PCRs {
		if i < 0 || !slices.Contains(idx, uint32(i)) {
			contraindicate(attest.ReasonMeasurementUnknown)
			return a
		}
	}
	return a
}

// publicKeyEqual is what the standard library's public keys implement.
type publicKeyEqual interface {
	Equal(crypto.PublicKey) bool
}

// endorsed checks that the tenant vouches for the AK: it registered the
// key itself, or a CA it trusts certified it. A registered key is enough;
// certificates are only read when it is not one.
func endorsed(ak crypto.PublicKey, certs []*x509.Certificate, e attest.Endorsements, now time.Time) error {
	eq := ak.(publicKeyEqual)
	for _, k := range e.Keys {
		if k.Public != nil && eq.Equal(k.Public) {
			return nil
		}
	}
	if len(certs) == 0 {
		return attest.Errorf(attest.ReasonUnknownKey, "the ak (%s) is not an endorsed key and no certificate was given", describeKey(ak))
	}
	return verifyChain(eq, certs, e.Roots, now)
}

// parseCerts reads "ak_certs". It runs whether or not the AK turns out to
// be a registered key, so that evidence is malformed or not by its bytes
// alone, whatever the tenant's endorsements.
func parseCerts(ders [][]byte) ([]*x509.Certificate, error) {
	certs := make([]*x509.Certificate, len(ders))
	for i, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, attest.Errorf(attest.ReasonMalformed, `"ak_certs"[%d] is not a certificate: %v`, i, err)
		}
		certs[i] = c
	}
	return certs, nil
}

// verifyChain checks the AK certificate chain. The specific checks come
// before x509's chain building so that the reason names the fault, not
// merely the absence of a chain.
func verifyChain(ak publicKeyEqual, certs []*x509.Certificate, roots []*x509.Certificate, now time.Time) error {
	leaf := certs[0]
	if leaf.BasicConstraintsValid && leaf.IsCA {
		return attest.Errorf(attest.ReasonCertCAAsLeaf, "the ak certificate %q is a CA certificate", leaf.Subject)
	}
	for i, c := range certs {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return attest.Errorf(attest.ReasonCertExpired, `"ak_certs"[%d] (%s) is valid from %s to %s`,
				i, c.Subject, c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	if len(roots) == 0 {
		return attest.Errorf(attest.ReasonCertUntrusted, "no CA root is endorsed")
	}
	opts := x509.VerifyOptions{
		Roots:         x509.NewCertPool(),
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, r := range roots {
		opts.Roots.AddCert(r)
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(opts); err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return attest.Errorf(attest.ReasonCertExpired, "the ak certificate chain: %v", err)
		}
		return attest.Errorf(attest.ReasonCertUntrusted, "the ak certificate does not chain to an endorsed root: %v", err)
	}
	if !ak.Equal(leaf.PublicKey) {
		return attest.Errorf(attest.ReasonUnknownKey, "the ak certificate %q certifies another key", leaf.Subject)
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return attest.Errorf(attest.ReasonCertBadUsage, "the ak certificate %q does not allow digitalSignature", leaf.Subject)
	}
	return nil
}

package service

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/credential"
	"github.com/hegate/hegate/storage"
)

// Enrollment: a device asks for a challenge, answers it with attestation
// evidence, and gets a credential bound to its key.

const (
	// challengeBytes is the size of a challenge nonce.
	challengeBytes = 32
)

// NewChallenge issues a challenge nonce to the principal's tenant, stored
// so that any replica can redeem it once.
func (s *Service) NewChallenge(ctx context.Context, p Principal) (storage.Challenge, error) {
	const op = "enroll.challenge"
	nonce := make([]byte, challengeBytes)
	if _, err := rand.Read(nonce); err != nil {
		return storage.Challenge{}, hegate.E(op, hegate.KindInternal, err, "")
	}
	now := s.now()
	c := storage.Challenge{Nonce: nonce, TenantID: p.Tenant, CreatedAt: now, ExpiresAt: now.Add(s.challTTL)}
	if err := s.store.CreateChallenge(ctx, c); err != nil {
		return storage.Challenge{}, hegate.E(op, hegate.KindUnavailable, fmt.Errorf("storing challenge: %w", err), "")
	}
	// Challenges are kept past their redemption (so that a reuse is told
	// from a stranger) until they expire: each new one clears the expired.
	if _, err := s.store.DeleteExpiredChallenges(ctx, now); err != nil {
		s.log.WarnContext(ctx, "deleting expired challenges", logAttrs(p, "error", err.Error())...)
	}
	return c, nil
}

// EnrollParams are the inputs of Enroll.
type EnrollParams struct {
	Format    attest.Format
	Nonce     []byte
	Evidence  []byte
	DeviceKey json.RawMessage // public JWK
}

// Enrolled is what Enroll gives: the device and its credential.
type Enrolled struct {
	Device     storage.Device
	Token      string
	ExpiresAt  time.Time
	Appraisal  attest.Result
	Credential credential.Claims
}

// Enroll redeems the challenge, verifies the evidence against the tenant's
// endorsements and reference values, records the device and issues its
// credential. Every refusal is KindRejected (403) or KindInvalid (400)
// with an attest.Reason in its chain.
func (s *Service) Enroll(ctx context.Context, p Principal, in EnrollParams) (Enrolled, error) {
	got, err := s.enroll(ctx, p, in)
	if r := attest.ReasonOf(err); r != "" {
		// A refused enrollment (a revoked device trying again, evidence
		// that does not verify) is recorded as denied, with its reason.
		s.record(ctx, p, "device.enroll", string(in.Format), OutcomeDenied, map[string]any{"reason": r})
	}
	return got, err
}

func (s *Service) enroll(ctx context.Context, p Principal, in EnrollParams) (Enrolled, error) {
	const op = "enroll"
	reject := func(kind hegate.Kind, r attest.Reason, format string, args ...any) error {
		e := attest.Errorf(r, format, args...)
		return hegate.E(op, kind, e, "%s", e.Error())
	}
	if s.issuer == nil {
		return Enrolled{}, hegate.E(op, hegate.KindUnavailable, nil, "this gateway issues no device credentials")
	}
	v, ok := s.verifiers[in.Format]
	if !ok {
		return Enrolled{}, reject(hegate.KindInvalid, attest.ReasonUnsupportedFormat, "format %q is not one of tpm, psa, native", in.Format)
	}
	if len(in.Nonce) == 0 {
		return Enrolled{}, reject(hegate.KindInvalid, attest.ReasonNonceMissing, "the request names no challenge nonce")
	}
	if len(in.Nonce) != challengeBytes {
		return Enrolled{}, reject(hegate.KindInvalid, attest.ReasonNonceLength, "a challenge nonce is %d bytes, not %d", challengeBytes, len(in.Nonce))
	}
	if len(in.Evidence) == 0 {
		return Enrolled{}, reject(hegate.KindInvalid, attest.ReasonMalformed, "the request carries no evidence")
	}
	if len(in.Evidence) > attest.MaxEvidenceBytes {
		return Enrolled{}, reject(hegate.KindInvalid, attest.ReasonTooLarge, "evidence of %d bytes exceeds %d", len(in.Evidence), attest.MaxEvidenceBytes)
	}
	pub, err := credential.ParseJWK(in.DeviceKey)
	if err != nil {
		return Enrolled{}, reject(hegate.KindInvalid, attest.ReasonDeviceKey, "device_key: %v", err)
	}
	jkt, err := credential.ThumbprintBytes(pub)
	if err != nil {
		return Enrolled{}, reject(hegate.KindInvalid, attest.ReasonDeviceKey, "device_key: %v", err)
	}
	jktText := base64.RawURLEncoding.EncodeToString(jkt)

	// The challenge is spent whatever the evidence says: one nonce, one try.
	c, err := s.store.RedeemChallenge(ctx, p.Tenant, in.Nonce)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return Enrolled{}, reject(hegate.KindRejected, attest.ReasonNonceUnknown, "this tenant was never given that challenge nonce")
	case errors.Is(err, storage.ErrConflict):
		return Enrolled{}, reject(hegate.KindRejected, attest.ReasonNonceReused, "that challenge nonce was redeemed before; ask for a new one")
	case err != nil:
		return Enrolled{}, hegate.E(op, hegate.KindUnavailable, fmt.Errorf("redeeming challenge: %w", err), "")
	}
	now := s.now()
	if !now.Before(c.ExpiresAt) {
		return Enrolled{}, reject(hegate.KindRejected, attest.ReasonNonceExpired, "the challenge expired at %s; ask for a new one", c.ExpiresAt.UTC().Format(time.RFC3339))
	}

	endorsements, refs, err := s.trustAnchors(ctx, p.Tenant, in.Format)
	if err != nil {
		return Enrolled{}, hegate.E(op, hegate.KindUnavailable, err, "")
	}
	res, err := v.Verify(ctx, attest.Input{
		Evidence:        in.Evidence,
		Nonce:           attest.ExpectedNonce(in.Format, in.Nonce, jkt),
		KeyThumbprint:   jkt,
		Endorsements:    endorsements,
		ReferenceValues: refs,
	})
	if err != nil {
		if attest.ReasonOf(err) == "" {
			return Enrolled{}, hegate.E(op, hegate.KindInternal, fmt.Errorf("verifying %s evidence: %w", in.Format, err), "")
		}
		return Enrolled{}, hegate.E(op, hegate.KindRejected, err, "%s evidence refused: %s", in.Format, SafeDetail(err))
	}
	status := res.Status()
	if status != attest.StatusAffirming && status != attest.StatusWarning {
		reasons := res.Reasons()
		cause := attest.Errorf(attest.ReasonStatus, "status %s", status)
		if len(reasons) > 0 {
			cause = attest.Errorf(reasons[0], "status %s", status)
		}
		return Enrolled{}, hegate.E(op, hegate.KindRejected, cause, "%s evidence appraised %s: %v", in.Format, status, reasons)
	}
	if res.KeyThumbprint != "" && res.KeyThumbprint != hex.EncodeToString(jkt) {
		return Enrolled{}, reject(hegate.KindRejected, attest.ReasonKeyMismatch, "the evidence names another device key")
	}

	var prevClock []byte
	if res.Clock != nil {
		prev, err := s.store.FindDevice(ctx, p.Tenant, string(in.Format), res.InstanceID)
		switch {
		case err == nil && len(prev.Clock) > 0:
			var pc attest.Clock
			if err := json.Unmarshal(prev.Clock, &pc); err != nil {
				return Enrolled{}, hegate.E(op, hegate.KindInternal, fmt.Errorf("reading device %s clock: %w", prev.ID, err), "")
			}
			if res.Clock.WentBackFrom(pc) {
				return Enrolled{}, reject(hegate.KindRejected, attest.ReasonClockWentBack, "the TPM clock (reset %d, restart %d, clock %d) is not after the last accepted quote's (reset %d, restart %d, clock %d)",
					res.Clock.ResetCount, res.Clock.RestartCount, res.Clock.Clock, pc.ResetCount, pc.RestartCount, pc.Clock)
			}
		case err != nil && !errors.Is(err, storage.ErrNotFound):
			return Enrolled{}, hegate.E(op, hegate.KindUnavailable, fmt.Errorf("reading device: %w", err), "")
		}
		if prevClock, err = json.Marshal(res.Clock); err != nil {
			return Enrolled{}, hegate.E(op, hegate.KindInternal, err, "")
		}
	}
	resultJSON, err := json.Marshal(res)
	if err != nil {
		return Enrolled{}, hegate.E(op, hegate.KindInternal, err, "")
	}
	dev, err := s.store.EnrollDevice(ctx, storage.EnrollDeviceParams{
		TenantID:          p.Tenant,
		Format:            string(in.Format),
		InstanceID:        res.InstanceID,
		KeyThumbprint:     hex.EncodeToString(jkt),
		AttestationStatus: string(status),
		Result:            resultJSON,
		Clock:             prevClock,
	})
	switch {
	case errors.Is(err, storage.ErrConflict):
		return Enrolled{}, reject(hegate.KindRejected, attest.ReasonDeviceRevoked, "this device (%s instance %s) was revoked; enrolling again does not undo that", in.Format, res.InstanceID)
	case err != nil:
		return Enrolled{}, hegate.E(op, hegate.KindUnavailable, fmt.Errorf("recording device: %w", err), "")
	}
	claims := credential.Claims{
		Tenant: string(p.Tenant),
		Device: string(dev.ID),
		Format: string(in.Format),
		Status: string(status),
		JKT:    jktText,
	}
	token, exp, err := s.issuer.Issue(ctx, claims)
	if err != nil {
		return Enrolled{}, hegate.E(op, hegate.KindUnavailable, fmt.Errorf("issuing credential: %w", err), "")
	}
	s.audit(ctx, p, "device.enroll", string(dev.ID), map[string]any{"format": in.Format, "instance_id": res.InstanceID, "status": status})
	return Enrolled{Device: dev, Token: token, ExpiresAt: exp, Appraisal: res, Credential: claims}, nil
}

// trustAnchors reads and parses the tenant's endorsements and reference
// values for a format; a document not set is an empty one (which endorses
// nothing, and whose reference values never match).
func (s *Service) trustAnchors(ctx context.Context, tenant hegate.TenantID, f attest.Format) (attest.Endorsements, attest.ReferenceValues, error) {
	var e attest.Endorsements
	var r attest.ReferenceValues
	doc, err := s.store.GetAttestationDoc(ctx, tenant, string(f), storage.DocEndorsements)
	switch {
	case err == nil:
		if e, err = attest.ParseEndorsements(doc.Document); err != nil {
			return e, r, fmt.Errorf("stored %s endorsements no longer parse: %w", f, err)
		}
	case !errors.Is(err, storage.ErrNotFound):
		return e, r, fmt.Errorf("reading %s endorsements: %w", f, err)
	}
	doc, err = s.store.GetAttestationDoc(ctx, tenant, string(f), storage.DocReferenceValues)
	switch {
	case err == nil:
		if r, err = attest.ParseReferenceValues(doc.Document); err != nil {
			return e, r, fmt.Errorf("stored %s reference values no longer parse: %w", f, err)
		}
	case !errors.Is(err, storage.ErrNotFound):
		return e, r, fmt.Errorf("reading %s reference values: %w", f, err)
	}
	return e, r, nil
}

// SafeDetail is the client-safe text of a refusal from attest or
// credential: their details name fields and expectations, never key or
// token material.
func SafeDetail(err error) string {
	var ae *attest.Error
	if errors.As(err, &ae) {
		return ae.Error()
	}
	var ce *credential.Error
	if errors.As(err, &ce) {
		return ce.Error()
	}
	return "refused"
}

package gateway

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// Enrollment over HTTP: the rules are service.NewChallenge and
// service.Enroll.

// maxEnrollBody bounds an enroll request: the evidence in base64 and a JWK.
const maxEnrollBody = attest.MaxEvidenceBytes*4/3 + 16<<10

// DefaultChallengeTTL and MaxChallengeTTL are the service's.
const (
	DefaultChallengeTTL = service.DefaultChallengeTTL
	MaxChallengeTTL     = service.MaxChallengeTTL
)

func (s *Server) postChallenge(w http.ResponseWriter, r *http.Request) {
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := s.svc.NewChallenge(r.Context(), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, api.Challenge{Nonce: base64.RawURLEncoding.EncodeToString(c.Nonce), ExpiresAt: c.ExpiresAt.UTC()})
}

func (s *Server) postEnroll(w http.ResponseWriter, r *http.Request) {
	const op = "enroll"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req api.EnrollRequest
	if err := decodeBody(r, op, maxEnrollBody, &req); err != nil {
		s.fail(w, r, bodyTooLarge(op, err))
		return
	}
	nonce, err := base64.RawURLEncoding.DecodeString(req.Nonce)
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindInvalid, attest.Errorf(attest.ReasonNonceMissing, ""), "nonce is not unpadded base64url"))
		return
	}
	evidence, err := base64.RawURLEncoding.DecodeString(req.Evidence)
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindInvalid, attest.Errorf(attest.ReasonMalformed, ""), "evidence is not unpadded base64url"))
		return
	}
	got, err := s.svc.Enroll(r.Context(), p, service.EnrollParams{Format: attest.Format(req.Format), Nonce: nonce, Evidence: evidence, DeviceKey: req.DeviceKey})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, api.EnrollResponse{
		Device: deviceView(got.Device),
		Credential: api.Credential{
			AccessToken: got.Token,
			TokenType:   "DPoP",
			ExpiresIn:   int64(got.ExpiresAt.Sub(s.svc.Now()).Round(time.Second) / time.Second),
			ExpiresAt:   got.ExpiresAt.UTC(),
		},
	})
}

func deviceView(d storage.Device) api.Device {
	v := api.Device{
		ID:                string(d.ID),
		Format:            d.Format,
		InstanceID:        d.InstanceID,
		KeyThumbprint:     d.KeyThumbprint,
		Status:            d.Status,
		AttestationStatus: d.AttestationStatus,
		Result:            json.RawMessage(d.Result),
		EnrolledAt:        d.EnrolledAt.UTC(),
		AttestedAt:        d.AttestedAt.UTC(),
		LastSeenAt:        utcPtr(d.LastSeenAt),
		RevokedAt:         utcPtr(d.RevokedAt),
	}
	if len(d.Result) == 0 {
		v.Result = json.RawMessage("null")
	}
	return v
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

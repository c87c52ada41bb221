package gateway

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/credential"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// Device credentials: the gateway's signing keys, kept in the store so
// that every replica signs and verifies with the same ones, and the DPoP
// branch of authentication.

const (
	// DefaultCredentialTTL is how long a device credential lives. A device
	// renews it by attesting again.
	DefaultCredentialTTL = 15 * time.Minute
	// MaxCredentialTTL bounds Config.CredentialTTL.
	MaxCredentialTTL = time.Hour
	// credentialGrace is how long a retired signing key keeps verifying:
	// the longest credential it can have signed, plus clock leeway.
	credentialGrace = MaxCredentialTTL + time.Minute
	// touchEvery is how often a device's LastSeenAt is written at most.
	touchEvery = time.Minute
	// signingAlgorithm is the only algorithm the gateway signs with.
	signingAlgorithm = "EdDSA"
)

// storeReplay is the credential.ReplayCache over the store, shared by
// every replica. Every sweepEvery-th proof also deletes the proof ids that
// expired, so that the table holds about one proof window of requests.
type storeReplay struct {
	store storage.Attestation
	now   func() time.Time
	uses  *atomic.Uint64
}

const sweepEvery = 256

func (r storeReplay) Use(ctx context.Context, id []byte, expiresAt time.Time) error {
	if r.uses.Add(1)%sweepEvery == 0 {
		_, _ = r.store.DeleteExpiredProofs(ctx, r.now())
	}
	err := r.store.UseProof(ctx, id, expiresAt)
	if errors.Is(err, storage.ErrConflict) {
		return fmt.Errorf("%w: %w", credential.ErrReplay, err)
	}
	return err
}

// jwks serves the public credential keys (RFC 7517), so that anyone can
// check a device credential offline.
func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	const op = "gateway.jwks"
	keys, err := s.credKeys.VerificationKeys(r.Context())
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindUnavailable, err, ""))
		return
	}
	b, err := credential.JWKS(keys)
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindInternal, err, ""))
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "max-age=60")
	_, _ = w.Write(b)
}

// requestURL is the URL a DPoP proof must name (htu): the configured
// public URL, or the scheme and Host the request came with, and the path.
func (s *Server) requestURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/") + r.URL.EscapedPath()
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.EscapedPath()
}

// authenticateDevice verifies a device credential and its DPoP proof and
// checks the device is still enrolled and not revoked: revocation is read
// from the store on every request, so it holds on every replica at once.
func (s *Server) authenticateDevice(r *http.Request, token string) (Principal, error) {
	const op = "gateway.authenticate"
	ctx := r.Context()
	if len(r.Header.Values(api.HeaderDPoP)) > 1 {
		// RFC 9449 section 4.3: exactly one DPoP header.
		return Principal{}, hegate.E(op, hegate.KindUnauthenticated, &credential.Error{Reason: credential.ReasonProofMalformed, Detail: "more than one DPoP header"}, "device credential refused: more than one DPoP header")
	}
	claims, err := s.credVerifier.Verify(ctx, credential.Request{
		Token:  token,
		Proof:  r.Header.Get(api.HeaderDPoP),
		Method: r.Method,
		URL:    s.requestURL(r),
	})
	if err != nil {
		if credential.ReasonOf(err) == "" {
			return Principal{}, hegate.E(op, hegate.KindUnavailable, err, "")
		}
		return Principal{}, hegate.E(op, hegate.KindUnauthenticated, err, "device credential refused: %s", safeDetail(err))
	}
	tenant := hegate.TenantID(claims.Tenant)
	dev, err := s.cfg.Store.GetDevice(ctx, tenant, storage.DeviceID(claims.Device))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return Principal{}, hegate.E(op, hegate.KindUnauthenticated, attest.Errorf(attest.ReasonDeviceUnknown, ""), "the credential names no enrolled device")
	case err != nil:
		return Principal{}, hegate.E(op, hegate.KindUnavailable, fmt.Errorf("reading device: %w", err), "")
	case dev.Status == storage.DeviceRevoked:
		return Principal{}, hegate.E(op, hegate.KindUnauthenticated, attest.Errorf(attest.ReasonDeviceRevoked, ""), "device %s was revoked", dev.ID)
	}
	if jkt, err := base64.RawURLEncoding.DecodeString(claims.JKT); err != nil || hex.EncodeToString(jkt) != dev.KeyThumbprint {
		return Principal{}, hegate.E(op, hegate.KindUnauthenticated, attest.Errorf(attest.ReasonDeviceRekeyed, ""), "device %s enrolled again with another key; use its newest credential", dev.ID)
	}
	now := s.cfg.Clock()
	if dev.LastSeenAt == nil || now.Sub(*dev.LastSeenAt) >= touchEvery {
		if err := s.cfg.Store.TouchDevice(ctx, tenant, dev.ID, now); err != nil {
			s.log.WarnContext(ctx, "recording when a device was last seen", "request_id", RequestIDFromContext(ctx), "device", string(dev.ID), "error", err.Error())
		}
	}
	return Principal{
		Tenant:       tenant,
		Role:         storage.RoleClient,
		Device:       dev.ID,
		DeviceFormat: attest.Format(dev.Format),
		DeviceStatus: attest.Status(dev.AttestationStatus),
	}, nil
}

// safeDetail is the client-safe text of a refusal from attest or
// credential (service.SafeDetail).
var safeDetail = service.SafeDetail

// reasonOf is the stable reason code of a refusal, for the problem
// document's "reason" member.
func reasonOf(err error) string {
	if r := attest.ReasonOf(err); r != "" {
		return string(r)
	}
	return string(credential.ReasonOf(err))
}

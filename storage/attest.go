package storage

import (
	"context"
	"time"

	"github.com/hegate/hegate"
)

// Device enrollment.
//
// A device enrolls by redeeming a challenge nonce with attestation evidence
// (package attest verifies it; storage only keeps what came of it). The
// tenant's trust anchors are two JSON documents per evidence format, the
// endorsements and the reference values, kept exactly as the admin gave
// them (attest.ParseEndorsements and attest.ParseReferenceValues read them).
// A policy per tenant and model says what may run inference. The gateway's
// credential signing keys and the DPoP proof ids it has seen are here too,
// so that every replica issues, verifies and refuses replays alike.

// DeviceID names one enrolled device: "dev_" and 26 base32 characters.
type DeviceID string

// Device statuses.
const (
	DeviceActive  = "active"
	DeviceRevoked = "revoked"
)

// Attestation document kinds.
const (
	DocEndorsements    = "endorsements"
	DocReferenceValues = "reference-values"
)

// Challenge is one enrollment nonce.
type Challenge struct {
	Nonce     []byte
	TenantID  hegate.TenantID
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Device is one enrolled device of a tenant.
type Device struct {
	ID       DeviceID
	TenantID hegate.TenantID
	// Format is the evidence format it enrolled with (attest.Format).
	Format string
	// InstanceID identifies the attester (attest.Result.InstanceID): one
	// device row per tenant, format and instance; enrolling again updates it.
	InstanceID string
	// KeyThumbprint is the hex RFC 7638 thumbprint of the key its current
	// credential is bound to.
	KeyThumbprint string
	// Status is DeviceActive or DeviceRevoked.
	Status string
	// AttestationStatus is the EAR status of the last result.
	AttestationStatus string
	// Result is the last attestation result, EAR-shaped JSON.
	Result []byte
	// Clock is the TPM clock of the last accepted quote, JSON, or nil.
	Clock      []byte
	EnrolledAt time.Time // first enrollment
	AttestedAt time.Time // last accepted evidence
	LastSeenAt *time.Time
	RevokedAt  *time.Time
}

// EnrollDeviceParams are the inputs of Attestation.EnrollDevice.
type EnrollDeviceParams struct {
	TenantID          hegate.TenantID
	Format            string
	InstanceID        string
	KeyThumbprint     string
	AttestationStatus string
	Result            []byte
	Clock             []byte
}

// AttestationDoc is one stored endorsements or reference-values document.
type AttestationDoc struct {
	TenantID  hegate.TenantID
	Format    string
	Kind      string // DocEndorsements or DocReferenceValues
	Document  []byte // JSON, at most 1 MiB
	UpdatedAt time.Time
	UpdatedBy string // the actor, e.g. "key:key_..." or "cli"
}

// Policy is what may run inference on one model of a tenant; Model "" is
// the tenant's default, used for models with no policy of their own.
type Policy struct {
	TenantID hegate.TenantID
	Model    hegate.ModelID
	// Document is the policy JSON (gateway.Policy reads it).
	Document  []byte
	UpdatedAt time.Time
	UpdatedBy string
}

// SigningKey is one of the gateway's credential signing keys.
type SigningKey struct {
	ID         string // the JWS kid
	Algorithm  string // "EdDSA"
	PrivateKey []byte // the key's seed; never leaves the store except to sign
	PublicKey  []byte
	CreatedAt  time.Time
	// RetiredAt is when a newer key replaced it for signing; it still
	// verifies tokens until VerifyUntil.
	RetiredAt   *time.Time
	VerifyUntil *time.Time
}

// Attestation stores challenges, enrolled devices, the tenants' trust
// anchors and policies, the credential signing keys and seen DPoP proofs.
type Attestation interface {
	// CreateChallenge stores a nonce for tenant, valid until expiresAt.
	// ErrConflict if the nonce exists.
	CreateChallenge(ctx context.Context, c Challenge) error
	// RedeemChallenge marks the tenant's challenge with this nonce
	// redeemed and returns it, in one conditional statement, so that it is
	// redeemed at most once across every replica. ErrConflict when it was
	// redeemed before (a replay, which the caller reports as such);
	// ErrNotFound when the tenant has none with this nonce (never issued,
	// or another tenant's). An expired challenge is redeemed and returned
	// all the same: the caller checks ExpiresAt. Redeemed rows stay until
	// DeleteExpiredChallenges, so that a reuse is told from a stranger.
	RedeemChallenge(ctx context.Context, tenant hegate.TenantID, nonce []byte) (Challenge, error)
	// DeleteExpiredChallenges removes challenges, redeemed or not, that
	// expired before the given time and returns how many.
	DeleteExpiredChallenges(ctx context.Context, before time.Time) (int, error)

	// PutAttestationDoc stores (or replaces) one document.
	PutAttestationDoc(ctx context.Context, d AttestationDoc) (AttestationDoc, error)
	// GetAttestationDoc returns one document or ErrNotFound.
	GetAttestationDoc(ctx context.Context, tenant hegate.TenantID, format, kind string) (AttestationDoc, error)
	// ListAttestationDocs returns the tenant's documents, by format then kind.
	ListAttestationDocs(ctx context.Context, tenant hegate.TenantID) ([]AttestationDoc, error)
	// DeleteAttestationDoc removes one document; ErrNotFound if none.
	DeleteAttestationDoc(ctx context.Context, tenant hegate.TenantID, format, kind string) error

	// PutPolicy stores (or replaces) a policy.
	PutPolicy(ctx context.Context, p Policy) (Policy, error)
	// GetPolicy returns the policy of tenant and model ("" for the
	// tenant's default), or ErrNotFound.
	GetPolicy(ctx context.Context, tenant hegate.TenantID, model hegate.ModelID) (Policy, error)
	// ListPolicies returns the tenant's policies, default first, then by model.
	ListPolicies(ctx context.Context, tenant hegate.TenantID) ([]Policy, error)
	// DeletePolicy removes a policy; ErrNotFound if none.
	DeletePolicy(ctx context.Context, tenant hegate.TenantID, model hegate.ModelID) error

	// EnrollDevice records accepted evidence: it creates the device of
	// (tenant, format, instance id), or updates that device's key
	// thumbprint, result, clock and AttestedAt. A revoked device stays
	// revoked: ErrConflict (enrolling again does not undo a revocation).
	EnrollDevice(ctx context.Context, p EnrollDeviceParams) (Device, error)
	// GetDevice returns the tenant's device or ErrNotFound.
	GetDevice(ctx context.Context, tenant hegate.TenantID, id DeviceID) (Device, error)
	// FindDevice returns the tenant's device of (format, instance id) or
	// ErrNotFound.
	FindDevice(ctx context.Context, tenant hegate.TenantID, format, instanceID string) (Device, error)
	// ListDevices returns the tenant's devices, newest enrollment first.
	ListDevices(ctx context.Context, tenant hegate.TenantID) ([]Device, error)
	// RevokeDevice marks the device revoked (idempotent: revoking a
	// revoked device returns it unchanged). ErrNotFound if none.
	RevokeDevice(ctx context.Context, tenant hegate.TenantID, id DeviceID) (Device, error)
	// TouchDevice sets LastSeenAt to at. ErrNotFound if none.
	TouchDevice(ctx context.Context, tenant hegate.TenantID, id DeviceID, at time.Time) error

	// CreateSigningKey stores a new signing key.
	CreateSigningKey(ctx context.Context, k SigningKey) error
	// ListSigningKeys returns every key that still verifies at now
	// (VerifyUntil nil or after now), newest first.
	ListSigningKeys(ctx context.Context, now time.Time) ([]SigningKey, error)
	// RetireSigningKeys marks every key not yet retired, except keep,
	// retired at now and verifying until verifyUntil.
	RetireSigningKeys(ctx context.Context, keep string, now, verifyUntil time.Time) error

	// UseProof records a DPoP proof id (a digest of the key thumbprint and
	// the jti) until expiresAt. ErrConflict if it was recorded and has not
	// expired: a replay.
	UseProof(ctx context.Context, id []byte, expiresAt time.Time) error
	// DeleteExpiredProofs removes proof ids that expired before now.
	DeleteExpiredProofs(ctx context.Context, before time.Time) (int, error)
}

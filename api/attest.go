package api

import (
	"encoding/json"
	"time"
)

// Device enrollment: wire types of /v1/enroll, /v1/devices, /v1/attestation
// and /v1/policies.

// HeaderDPoP carries a DPoP proof (RFC 9449) with a device credential,
// which itself travels as "Authorization: DPoP <token>".
const HeaderDPoP = "DPoP"

// Challenge answers POST /v1/enroll/challenge.
type Challenge struct {
	// Nonce is 32 random bytes, unpadded base64url. The evidence carries
	// it (native) or SHA-256(nonce || jkt) (tpm, psa), where jkt is the raw
	// 32-byte RFC 7638 thumbprint of DeviceKey in the enroll request.
	Nonce     string    `json:"nonce"`
	ExpiresAt time.Time `json:"expires_at"`
}

// EnrollRequest is the body of POST /v1/enroll.
type EnrollRequest struct {
	Format string `json:"format"` // tpm, psa or native
	// Nonce is the challenge's nonce, as it was given.
	Nonce string `json:"nonce"`
	// Evidence is the evidence bytes, unpadded base64url.
	Evidence string `json:"evidence"`
	// DeviceKey is the public JWK (Ed25519 or P-256) the credential will be
	// bound to; every request with the credential carries a DPoP proof
	// signed by its private key.
	DeviceKey json.RawMessage `json:"device_key"`
}

// Credential is a device credential: a DPoP-bound access token.
type Credential struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"` // "DPoP"
	ExpiresIn   int64     `json:"expires_in"` // seconds
	ExpiresAt   time.Time `json:"expires_at"`
}

// EnrollResponse answers POST /v1/enroll.
type EnrollResponse struct {
	Device     Device     `json:"device"`
	Credential Credential `json:"credential"`
}

// Device is the JSON view of an enrolled device.
type Device struct {
	ID     string `json:"id"`
	Format string `json:"format"`
	// InstanceID identifies the attester, in hex: the PSA instance id, or
	// for TPM and native evidence the SHA-256 of the signing key's DER
	// SubjectPublicKeyInfo.
	InstanceID    string `json:"instance_id"`
	KeyThumbprint string `json:"key_thumbprint"`
	Status        string `json:"status"` // active or revoked
	// AttestationStatus is the EAR status of the last accepted evidence.
	AttestationStatus string `json:"attestation_status"`
	// Result is the last attestation result, EAR-shaped.
	Result     json.RawMessage `json:"attestation_result"`
	EnrolledAt time.Time       `json:"enrolled_at"`
	AttestedAt time.Time       `json:"attested_at"`
	LastSeenAt *time.Time      `json:"last_seen_at,omitempty"`
	RevokedAt  *time.Time      `json:"revoked_at,omitempty"`
}

// DeviceList answers GET /v1/devices.
type DeviceList struct {
	Devices []Device `json:"devices"`
}

// AttestationDoc is the JSON view of a tenant's endorsements or reference
// values for one format.
type AttestationDoc struct {
	Format    string          `json:"format"`
	Kind      string          `json:"kind"` // endorsements or reference-values
	Document  json.RawMessage `json:"document"`
	UpdatedAt time.Time       `json:"updated_at"`
	UpdatedBy string          `json:"updated_by"`
}

// AttestationDocList answers GET /v1/attestation.
type AttestationDocList struct {
	Documents []AttestationDoc `json:"documents"`
}

// Policy says what may run inference on a model (or, as the tenant's
// default, on every model without a policy of its own).
type Policy struct {
	// Model is the model, or "" for the tenant's default.
	Model string `json:"model,omitempty"`
	// AllowAPIKey lets a request with only an API key run inference.
	AllowAPIKey bool `json:"allow_api_key"`
	// Formats are the evidence formats whose devices may run inference.
	Formats []string `json:"formats"`
	// Statuses are the attestation statuses that may: "affirming", and
	// "warning" if the tenant accepts it. "contraindicated" never may.
	Statuses []string `json:"statuses"`
	// Default is true in an answer when no policy was set and the
	// built-in default applies.
	Default   bool       `json:"default,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	UpdatedBy string     `json:"updated_by,omitempty"`
}

// PolicyList answers GET /v1/policies.
type PolicyList struct {
	Policies []Policy `json:"policies"`
}

package attest

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Status is an EAR status: the verifier's overall appraisal.
type Status string

// The EAR statuses, best first (draft-ietf-rats-ear, AR4SI tiers).
const (
	StatusAffirming       Status = "affirming"
	StatusWarning         Status = "warning"
	StatusContraindicated Status = "contraindicated"
	StatusNone            Status = "none"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case StatusAffirming, StatusWarning, StatusContraindicated, StatusNone:
		return true
	}
	return false
}

// rank orders statuses, best (0) to worst.
func (s Status) rank() int {
	switch s {
	case StatusAffirming:
		return 0
	case StatusWarning:
		return 1
	case StatusContraindicated:
		return 2
	default:
		return 3
	}
}

// Tier values of an AR4SI trustworthiness claim (draft-ietf-rats-ar4si
// section 2.3). 0 is "no claim"; 2 to 31 affirm, 32 to 95 warn, 96 to 127
// contraindicate.
const (
	TierNone            int8 = 0
	TierAffirming       int8 = 2
	TierWarning         int8 = 32
	TierContraindicated int8 = 96
)

// The specific AR4SI values this verifier uses.
const (
	// InstanceTrusted: the instance is recognised and its key endorsed.
	InstanceTrusted int8 = 2
	// ConfigApproved and ConfigContraindicated: PSA lifecycle secured, or
	// a debug or decommissioned lifecycle.
	ConfigApproved        int8 = 2
	ConfigContraindicated int8 = 96
	// ExecutablesApproved: every measured component is in the reference
	// values. ExecutablesContraindicated: one is not, or none are allowed.
	ExecutablesApproved        int8 = 2
	ExecutablesContraindicated int8 = 96
	// HardwareGenuine: a hardware root of trust endorsed by the tenant (a
	// TPM's AK, a PSA IAK). Native evidence makes no hardware claim.
	HardwareGenuine int8 = 2
)

// TrustVector is the AR4SI trustworthiness vector of one appraisal.
type TrustVector struct {
	InstanceIdentity int8 `json:"instance-identity"`
	Configuration    int8 `json:"configuration"`
	Executables      int8 `json:"executables"`
	FileSystem       int8 `json:"file-system"`
	Hardware         int8 `json:"hardware"`
	RuntimeOpaque    int8 `json:"runtime-opaque"`
	StorageOpaque    int8 `json:"storage-opaque"`
	SourcedData      int8 `json:"sourced-data"`
}

// Status is the worst tier among the vector's claims, as EAR derives
// ear.status; a vector with no claim is StatusNone.
func (v TrustVector) Status() Status {
	worst := StatusNone
	seen := false
	for _, c := range []int8{v.InstanceIdentity, v.Configuration, v.Executables, v.FileSystem,
		v.Hardware, v.RuntimeOpaque, v.StorageOpaque, v.SourcedData} {
		if c == TierNone {
			continue
		}
		var s Status
		switch {
		case c < 0 || c >= TierContraindicated:
			s = StatusContraindicated
		case c >= TierWarning:
			s = StatusWarning
		default:
			s = StatusAffirming
		}
		if !seen || s.rank() > worst.rank() {
			worst, seen = s, true
		}
	}
	return worst
}

// VerifierID names the verifier that made a result (ear.verifier-id).
type VerifierID struct {
	Developer string `json:"developer"`
	Build     string `json:"build"`
}

// DefaultVerifierID is this program's verifier.
var DefaultVerifierID = VerifierID{Developer: "https://github.com/hegate/hegate", Build: "hegate-attest/1"}

// EARProfile is the EAR profile the JSON form of a Result follows.
const EARProfile = "tag:github.com,2023:veraison/ear"

// Appraisal is the appraisal of one attester (one EAR submodule).
type Appraisal struct {
	Status      Status      `json:"ear.status"`
	TrustVector TrustVector `json:"ear.trustworthiness-vector"`
	// PolicyID names the reference values used.
	PolicyID string `json:"ear.appraisal-policy-id,omitempty"`
	// Reasons says why the status is not affirming, one per claim below
	// affirming (hegate extension).
	Reasons []Reason `json:"hegate.reasons,omitempty"`
}

// Result is an attestation result in the shape of EAR: who verified, when,
// the digest of the evidence, and one appraisal per attester, keyed by the
// evidence format. The extra fields (instance id, clock, key thumbprint)
// are what the gateway needs to keep a device registry.
type Result struct {
	Profile    string               `json:"eat_profile"`
	IssuedAt   int64                `json:"iat"`
	VerifierID VerifierID           `json:"ear.verifier-id"`
	Submods    map[string]Appraisal `json:"submods"`

	// EvidenceDigest is the hex SHA-256 of the evidence bytes.
	EvidenceDigest string `json:"hegate.evidence-sha256"`
	// Format is the evidence format.
	Format Format `json:"hegate.format"`
	// InstanceID identifies the attester across enrollments, in hex: the
	// PSA instance id (which selects the endorsed key), or for TPM and
	// native evidence the SHA-256 of the signing key's SubjectPublicKeyInfo
	// (KeyDigest). It is always bound to the key that verified the
	// evidence: nothing the evidence merely claims (a native ueid, the parts
	// of a TPM AK's public area no signature covers) may pick the registry
	// row that the evidence updates.
	InstanceID string `json:"hegate.instance-id"`
	// UEID is the ueid native evidence claims, in hex: informative only.
	UEID string `json:"hegate.ueid,omitempty"`
	// KeyThumbprint is the hex RFC 7638 thumbprint of the key the evidence
	// names (native), or empty.
	KeyThumbprint string `json:"hegate.key-thumbprint,omitempty"`
	// Clock is the TPM clock of a quote.
	Clock *Clock `json:"hegate.tpm-clock,omitempty"`
	// Measurements are what the evidence measured, name to hex digest, for
	// the registry and for writing reference values from a known-good
	// device.
	Measurements map[string]string `json:"hegate.measurements,omitempty"`
}

// NewResult starts a result for evidence of format f made at now, with one
// appraisal.
func NewResult(f Format, evidence []byte, now time.Time, a Appraisal) Result {
	d := sha256.Sum256(evidence)
	a.Status = a.TrustVector.Status()
	return Result{
		Profile:        EARProfile,
		IssuedAt:       now.Unix(),
		VerifierID:     DefaultVerifierID,
		Submods:        map[string]Appraisal{string(f): a},
		EvidenceDigest: hex.EncodeToString(d[:]),
		Format:         f,
	}
}

// Status is the worst status among the submodules, StatusNone if none.
func (r Result) Status() Status {
	worst := StatusNone
	seen := false
	for _, a := range r.Submods {
		if !seen || a.Status.rank() > worst.rank() {
			worst, seen = a.Status, true
		}
	}
	return worst
}

// Reasons lists every submodule's reasons.
func (r Result) Reasons() []Reason {
	var out []Reason
	for _, a := range r.Submods {
		out = append(out, a.Reasons...)
	}
	return out
}

package attest

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Policy says who may run inference on a model: devices enrolled with
// which formats and attestation statuses, and whether a request with an
// API key alone may. A tenant sets one per model and a default for the
// rest.
type Policy struct {
	AllowAPIKey bool
	Formats     []Format
	Statuses    []Status
}

// DefaultPolicy applies to a model when its tenant set no policy at all:
// API keys may run inference (as before enrollment existed), and so may a
// device of any format whose evidence was affirming. A tenant that wants
// only attested devices sets allow_api_key false.
func DefaultPolicy() Policy {
	return Policy{AllowAPIKey: true, Formats: slices.Clone(Formats), Statuses: []Status{StatusAffirming}}
}

type policyDoc struct {
	AllowAPIKey *bool    `json:"allow_api_key"`
	Formats     []string `json:"formats"`
	Statuses    []string `json:"statuses"`
}

// ParsePolicy reads a policy document:
//
//	{"allow_api_key": false, "formats": ["tpm", "psa"], "statuses": ["affirming"]}
//
// Every field is required, so that a policy says what it means: an empty
// formats list admits no device. "contraindicated" and "none" are never
// admissible statuses.
func ParsePolicy(b []byte) (Policy, error) {
	var doc policyDoc
	if err := decodeDoc(b, &doc); err != nil {
		return Policy{}, fmt.Errorf("policy: %w", err)
	}
	if doc.AllowAPIKey == nil || doc.Formats == nil || doc.Statuses == nil {
		return Policy{}, fmt.Errorf("policy: allow_api_key, formats and statuses are all required")
	}
	p := Policy{AllowAPIKey: *doc.AllowAPIKey}
	for _, f := range doc.Formats {
		if !Format(f).Valid() {
			return Policy{}, fmt.Errorf("policy: unknown format %q (want tpm, psa or native)", f)
		}
		if !slices.Contains(p.Formats, Format(f)) {
			p.Formats = append(p.Formats, Format(f))
		}
	}
	for _, s := range doc.Statuses {
		switch Status(s) {
		case StatusAffirming, StatusWarning:
		case StatusContraindicated, StatusNone:
			return Policy{}, fmt.Errorf("policy: status %q can never be allowed to run inference", s)
		default:
			return Policy{}, fmt.Errorf("policy: unknown status %q (want affirming or warning)", s)
		}
		if !slices.Contains(p.Statuses, Status(s)) {
			p.Statuses = append(p.Statuses, Status(s))
		}
	}
	return p, nil
}

// MarshalJSON writes the document ParsePolicy reads.
func (p Policy) MarshalJSON() ([]byte, error) {
	doc := policyDoc{AllowAPIKey: &p.AllowAPIKey, Formats: []string{}, Statuses: []string{}}
	for _, f := range p.Formats {
		doc.Formats = append(doc.Formats, string(f))
	}
	for _, s := range p.Statuses {
		doc.Statuses = append(doc.Statuses, string(s))
	}
	return json.Marshal(doc)
}

// AdmitsDevice reports why a device enrolled with format f and status s
// may not run inference under p, or nil if it may.
func (p Policy) AdmitsDevice(f Format, s Status) error {
	if !slices.Contains(p.Formats, f) {
		return fmt.Errorf("the policy admits no device enrolled with %s evidence", f)
	}
	if !slices.Contains(p.Statuses, s) {
		return fmt.Errorf("the policy admits no device whose attestation status is %s", s)
	}
	return nil
}

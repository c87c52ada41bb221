package api

// ProblemTypeBase prefixes every problem type URI hegate uses.
const ProblemTypeBase = "https://hegate.dev/problems/"

// Problem types: one per error kind.
const (
	ProblemInternal         = ProblemTypeBase + "internal"
	ProblemInvalid          = ProblemTypeBase + "invalid"
	ProblemNotFound         = ProblemTypeBase + "not-found"
	ProblemGone             = ProblemTypeBase + "gone"
	ProblemUnauthenticated  = ProblemTypeBase + "unauthenticated"
	ProblemForbidden        = ProblemTypeBase + "forbidden"
	ProblemConflict         = ProblemTypeBase + "conflict"
	ProblemTooLarge         = ProblemTypeBase + "too-large"
	ProblemUnavailable      = ProblemTypeBase + "unavailable"
	ProblemBudgetExhausted  = ProblemTypeBase + "budget-exhausted"
	ProblemRejected         = ProblemTypeBase + "rejected"
	ProblemMethodNotAllowed = ProblemTypeBase + "method-not-allowed"
	// ProblemUnsupportedMediaType is a 415: the body's Content-Type is not one
	// the route takes (the Accept header lists those).
	ProblemUnsupportedMediaType = ProblemTypeBase + "unsupported-media-type"
)

// Problem is an RFC 9457 problem document, served as ContentTypeProblem.
//
// Detail never holds anything internal: for a 5xx it only points at the
// request id, under which the gateway logged the cause.
//
// On /v2 (Open Inference Protocol) routes the same document also carries
// Error, the OIP error message, so that OIP clients reading {"error": "..."}
// understand it.
type Problem struct {
	Type      string `json:"type,omitempty"`
	Title     string `json:"title,omitempty"`
	Status    int    `json:"status,omitempty"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// Reason is a stable code saying exactly why attestation evidence, a
	// challenge, a device credential or a policy refused the request
	// (e.g. "nonce-reused", "bad-signature", "proof-replayed").
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
}

package api

// PathQuota is the caller's tenant quotas, usage and rate limits (GET).
const PathQuota = "/v1/quota"

// Rate-limit headers of draft-ietf-httpapi-ratelimit-headers (structured
// field Lists): RateLimit-Policy describes the policies that applied to a
// request (`"infer";q=20;w=4`: a quota q of requests per window w
// seconds), RateLimit their current state (`"infer";r=19;t=1`: r requests
// left, t seconds until the quota is whole again).
const (
	HeaderRateLimitPolicy = "RateLimit-Policy"
	HeaderRateLimit       = "RateLimit"
	HeaderRetryAfter      = "Retry-After"
)

// Problem types of refusals by the rate limits, the admission control and
// the quotas (the problem's reason says which limit).
const (
	// ProblemRateLimited is a 429: a rate limit of the caller (its API key,
	// its device, or its client address) is exhausted; Retry-After says
	// when one request is allowed again.
	ProblemRateLimited = ProblemTypeBase + "rate-limited"
	// ProblemQuotaExceeded is a 403 (a storage quota: the tenant must
	// delete something or wait for retention) or a 429 (the active-jobs
	// quota, with Retry-After: jobs finish).
	ProblemQuotaExceeded = ProblemTypeBase + "quota-exceeded"
	// Admission control answers 503 with ProblemUnavailable and a
	// concurrency-* reason, and Retry-After.
)

// Reason codes of those refusals (the problem document's reason).
const (
	// rate-<policy>: the rate limit of that policy is exhausted (429).
	ReasonRateDefault   = "rate-default"
	ReasonRateInfer     = "rate-infer"
	ReasonRateUpload    = "rate-upload"
	ReasonRateEnroll    = "rate-enroll"
	ReasonRateAnonymous = "rate-anonymous"
	// ReasonRateFailedAuth: too many failed authentications from one
	// client address (429; valid keys from it too, until it refills).
	ReasonRateFailedAuth = "rate-failed-auth"
	// concurrency-*: too many inferences or uploads in progress (503).
	// ReasonStreams: too many open job event streams (429).
	ReasonStreams = "streams"

	ReasonConcurrencyTenant  = "concurrency-tenant"
	ReasonConcurrencyProcess = "concurrency-process"
	// quota-*: a per-tenant quota would be exceeded.
	ReasonQuotaKeySets     = "quota-key-sets"      // 403
	ReasonQuotaKeySetBytes = "quota-key-set-bytes" // 403
	ReasonQuotaBlobs       = "quota-blobs"         // 403
	ReasonQuotaBlobBytes   = "quota-blob-bytes"    // 403
	ReasonQuotaActiveJobs  = "quota-active-jobs"   // 429
)

// Quota answers GET /v1/quota: the caller's tenant's quotas and usage, the
// admission limits, and the caller's rate limits on the replica that
// answered.
type Quota struct {
	// KeySets and KeySetBytes count the tenant's key sets.
	KeySets     QuotaItem `json:"key_sets"`
	KeySetBytes QuotaItem `json:"key_set_bytes"`
	// Blobs and BlobBytes count everything the tenant stores: key sets,
	// the input and result ciphertexts of jobs not yet expired by
	// retention, and uploaded models.
	Blobs     QuotaItem `json:"blobs"`
	BlobBytes QuotaItem `json:"blob_bytes"`
	// ActiveJobs counts the tenant's queued and running jobs.
	ActiveJobs QuotaItem `json:"active_jobs"`
	// Usage details what the blobs are.
	Usage QuotaUsage `json:"usage"`
	// Concurrency is the admission control of the replica that answered:
	// inferences and uploads of the tenant in progress there, against the
	// per-tenant cap.
	Concurrency QuotaConcurrency `json:"concurrency"`
	// RateLimits are the caller's (this API key's or device's) rate
	// limits on the replica that answered; empty when rate limiting is
	// off.
	RateLimits []RateLimitState `json:"rate_limits"`
}

// QuotaItem is one quantity and its limit; Limit is absent when there is
// none.
type QuotaItem struct {
	Used  int64  `json:"used"`
	Limit *int64 `json:"limit,omitempty"`
}

// QuotaUsage is what a tenant's blobs are.
type QuotaUsage struct {
	KeySets      int64 `json:"key_sets"`
	KeySetBytes  int64 `json:"key_set_bytes"`
	JobBlobs     int64 `json:"job_blobs"`
	JobBlobBytes int64 `json:"job_blob_bytes"`
	ModelBlobs   int64 `json:"model_blobs"`
	ModelBytes   int64 `json:"model_bytes"` // uploaded sources; graphs are not counted
}

// QuotaConcurrency is the admission control's state for a tenant.
type QuotaConcurrency struct {
	Inferences QuotaItem `json:"inferences"`
	Uploads    QuotaItem `json:"uploads"`
}

// RateLimitState is one rate-limit policy and the caller's state in it, as
// the RateLimit-Policy and RateLimit headers tell.
type RateLimitState struct {
	Policy string `json:"policy"` // default, infer, upload or enroll
	// Quota requests per WindowSeconds: a token bucket of Quota requests
	// that refills at PerSecond.
	Quota         int64   `json:"quota"`
	WindowSeconds int64   `json:"window_seconds"`
	PerSecond     float64 `json:"per_second"`
	// Remaining is how many requests the caller may make now.
	Remaining int64 `json:"remaining"`
}

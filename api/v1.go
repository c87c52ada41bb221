package api

import (
	"time"

	"github.com/hegate/hegate/he"
)

// KeySet is the JSON view of an uploaded evaluation-key set.
type KeySet struct {
	ID        string    `json:"id"` // hex SHA-256 of the upload
	Model     string    `json:"model"`
	ParamsID  string    `json:"params_id"`
	SizeBytes int64     `json:"size_bytes"`
	CreatedAt time.Time `json:"created_at"`
}

// KeySetList answers GET /v1/keys.
type KeySetList struct {
	KeySets []KeySet `json:"key_sets"`
}

// JobStatus is where a job is in its life.
type JobStatus string

// Job statuses.
const (
	JobQueued    JobStatus = "queued"
	JobRunning   JobStatus = "running"
	JobSucceeded JobStatus = "succeeded"
	JobFailed    JobStatus = "failed"
	JobCancelled JobStatus = "cancelled"
)

// Terminal reports whether the status is final.
func (s JobStatus) Terminal() bool {
	return s == JobSucceeded || s == JobFailed || s == JobCancelled
}

// Job is the JSON view of an inference job. It also answers an inference
// that was accepted but not finished (202).
type Job struct {
	ID             string     `json:"id"`
	Model          string     `json:"model"`
	KeySetID       string     `json:"key_set_id"`
	Status         JobStatus  `json:"status"`
	InputBytes     int64      `json:"input_bytes"`
	ResultBytes    int64      `json:"result_bytes,omitempty"`
	Error          string     `json:"error,omitempty"` // why it failed, when Status is failed
	IdempotencyKey string     `json:"idempotency_key,omitempty"`
	Attempts       int        `json:"attempts"`
	CreatedAt      time.Time  `json:"created_at"`
	StartedAt      *time.Time `json:"started_at,omitempty"`
	FinishedAt     *time.Time `json:"finished_at,omitempty"`
	// Device is the enrolled device whose credential created the job.
	Device string `json:"device,omitempty"`
	// Privacy is the noise the result gets and what it costs.
	Privacy *JobPrivacy `json:"privacy,omitempty"`
	// Links to the job and, once it succeeded, its result.
	Self   string `json:"self"`
	Result string `json:"result,omitempty"`
}

// JobPrivacy is the privacy side of a job.
type JobPrivacy struct {
	NoiseSigma float64 `json:"noise_sigma"` // noise standard deviation on each output
	Rho        string  `json:"rho"`         // zCDP cost reserved for the job
	// State is reserved (not finished), settled (released: spent) or
	// refunded (failed or cancelled: nothing released).
	State string `json:"state,omitempty"`
}

// JobList answers GET /v1/jobs.
type JobList struct {
	Jobs []Job `json:"jobs"`
}

// ModelStatus is where an uploaded model version is in its life.
type ModelStatus string

// Model version statuses.
const (
	ModelStatusCompiling ModelStatus = "compiling"
	ModelStatusReady     ModelStatus = "ready"
	ModelStatusFailed    ModelStatus = "failed"
)

// ModelVersion is the JSON view of one version of a model (a built-in model
// has the one version 1 and no owner).
type ModelVersion struct {
	Name     string       `json:"name"`
	Version  int          `json:"version"`
	BuiltIn  bool         `json:"built_in,omitempty"`
	Status   ModelStatus  `json:"status"`
	Error    string       `json:"error,omitempty"` // why compiling failed
	Options  any          `json:"options,omitempty"`
	Manifest *he.Manifest `json:"manifest,omitempty"` // set when ready
	// KeyModel is what a key set for this version is uploaded and listed
	// as ("name" for a built-in, "name@vN" for an uploaded version).
	KeyModel  string     `json:"key_model"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	Self      string     `json:"self"`
}

// ModelVersionList answers GET /v1/models and GET /v1/models/{name}.
type ModelVersionList struct {
	Models []ModelVersion `json:"models"`
}

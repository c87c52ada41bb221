// Package storage defines hegate's repositories and the errors they return.
//
// Two engines implement every interface here: storage/postgres (pgx, the
// production store that scales out) and storage/sqlite (pure Go, the
// embedded default). One conformance suite, storage/storagetest, runs the
// same tests against both. No driver type crosses this package's edge: the
// implementations translate their errors into ErrNotFound, ErrConflict and
// friends in one function each.
//
// Every tenant-owned object is read through a TenantID. An object that
// exists but belongs to another tenant is reported as ErrNotFound, exactly
// as if it did not exist. The one exception is the web console's users,
// read by id for their sessions and for the operators, who act across
// tenants: see Users.
package storage

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/hegate/hegate"
)

// Domain errors. Implementations wrap them; test with errors.Is.
var (
	ErrNotFound = errors.New("storage: not found")
	ErrConflict = errors.New("storage: conflict")
	ErrTooLarge = errors.New("storage: too large")
	// ErrUnavailable wraps a failure of the database itself rather than
	// of the request: it cannot be reached, it timed out (statement, lock
	// or pool), it is shutting down, or a table is missing. Trying again
	// later may succeed.
	ErrUnavailable = errors.New("storage: unavailable")
)

// Tenant is one customer organisation.
type Tenant struct {
	ID        hegate.TenantID
	Name      string
	CreatedAt time.Time
}

// APIKey is a tenant credential. The secret is never stored: only its
// SHA-256 hash, which is what LookupAPIKey searches by.
type APIKey struct {
	ID         hegate.APIKeyID
	TenantID   hegate.TenantID
	Name       string
	Prefix     string // the first characters of the secret, to recognise it in lists
	Role       string // RoleAdmin or RoleClient
	CreatedAt  time.Time
	RevokedAt  *time.Time
	LastUsedAt *time.Time
}

// KeySet is the metadata of an uploaded evaluation-key set. The bytes live
// in a Blobs store under BlobKey.
type KeySet struct {
	ID        hegate.KeySetID // hex SHA-256 of the bytes
	TenantID  hegate.TenantID
	Model     hegate.ModelID // the compiled model the keys were validated against
	ParamsID  string         // fingerprint of the CKKS parameters
	SizeBytes int64
	BlobKey   string
	CreatedAt time.Time
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

// Job is one encrypted inference: input ciphertext in, result ciphertext out.
// Both are blobs; the row holds only their keys. Retention (Jobs.ExpireJobs)
// later clears those keys and sets BlobsExpiredAt; the row itself stays.
type Job struct {
	ID       hegate.JobID
	TenantID hegate.TenantID
	Model    hegate.ModelID
	// ModelVersion is the version of the tenant's stored model (see
	// Models) that the job runs, or 0 for a built-in model compiled into
	// the binary, which has no row.
	ModelVersion   int
	KeySetID       hegate.KeySetID
	Status         JobStatus
	InputBlob      string // "" once the blobs expired
	InputBytes     int64
	ResultBlob     string // set when Status is JobSucceeded; "" once the blobs expired
	ResultBytes    int64
	Error          string // client-safe reason when Status is JobFailed
	IdempotencyKey string // optional, unique per tenant
	Attempts       int
	CreatedAt      time.Time
	StartedAt      *time.Time
	FinishedAt     *time.Time
	// BlobsExpiredAt is when ExpireJobs cleared InputBlob and ResultBlob;
	// nil while the job still holds them. InputBytes and ResultBytes keep
	// the sizes the blobs had.
	BlobsExpiredAt *time.Time
	// NoiseSigma is the scale of the differential-privacy noise that the
	// worker adds to the result before release (the model's output
	// units), fixed when the job is created so that the noise added is the
	// noise paid for; 0 only for jobs created before budgets existed.
	NoiseSigma float64
	// PrivacyUnits is the privacy cost reserved for the job (units of
	// 1e-9 rho, see Budgets) and PrivacyState where that reservation is:
	// PrivacyNone, PrivacyReserved, PrivacySettled or PrivacyRefunded.
	PrivacyUnits int64
	PrivacyState string
	// DeviceID is the enrolled device whose credential created the job,
	// or "" for a job created with an API key.
	DeviceID DeviceID
}

// Expired reports whether retention removed the job's blobs.
func (j Job) Expired() bool { return j.BlobsExpiredAt != nil }

// CreateTenantParams are the inputs of Tenants.CreateTenant.
type CreateTenantParams struct {
	Name string // unique
	// FirstKey, when set, is the tenant's first API key (its TenantID is
	// ignored), stored in the same transaction: a tenant never exists
	// without it, and a failure leaves neither.
	FirstKey *CreateAPIKeyParams
}

// Tenants stores tenants.
type Tenants interface {
	// CreateTenant makes a tenant with a fresh id, and its first API key
	// if p.FirstKey is set, in one transaction. ErrConflict if the name
	// (or the key's hash) is taken.
	CreateTenant(ctx context.Context, p CreateTenantParams) (Tenant, error)
	// GetTenant returns a tenant or ErrNotFound.
	GetTenant(ctx context.Context, id hegate.TenantID) (Tenant, error)
	// GetTenantByName returns a tenant or ErrNotFound.
	GetTenantByName(ctx context.Context, name string) (Tenant, error)
	// ListTenants returns all tenants, oldest first.
	ListTenants(ctx context.Context) ([]Tenant, error)
}

// CreateAPIKeyParams are the inputs of APIKeys.CreateAPIKey.
type CreateAPIKeyParams struct {
	TenantID hegate.TenantID
	Name     string
	Prefix   string
	Hash     []byte // SHA-256 of the secret, 32 bytes
	Role     string // RoleAdmin or RoleClient; "" means RoleClient
}

// API key roles. A client key runs inferences and manages its key sets and
// jobs; an admin key may also change the tenant's settings (budgets of its
// own models). Keys made before roles existed are admin keys.
const (
	RoleAdmin  = "admin"
	RoleClient = "client"
)

// APIKeyUseResolution is how stale APIKey.LastUsedAt may be.
const APIKeyUseResolution = time.Minute

// APIKeys stores hashed tenant API keys.
type APIKeys interface {
	// CreateAPIKey stores a key. ErrNotFound if the tenant does not exist,
	// ErrConflict if the hash is already stored.
	CreateAPIKey(ctx context.Context, p CreateAPIKeyParams) (APIKey, error)
	// LookupAPIKey finds a key that is not revoked by the hash of its secret,
	// or returns ErrNotFound. It records the time of use, at most once per
	// APIKeyUseResolution, so that authenticating is a read, not a write,
	// on almost every request (and an unknown key never writes).
	LookupAPIKey(ctx context.Context, hash []byte) (APIKey, error)
	// ListAPIKeys returns the tenant's keys, oldest first, revoked ones included.
	ListAPIKeys(ctx context.Context, tenant hegate.TenantID) ([]APIKey, error)
	// RevokeAPIKey revokes one of the tenant's keys; ErrNotFound if the
	// tenant has no such key. Revoking twice is not an error.
	RevokeAPIKey(ctx context.Context, tenant hegate.TenantID, id hegate.APIKeyID) error
}

// KeySets stores key-set metadata.
type KeySets interface {
	// PutKeySet records a key set for ks.TenantID. It is idempotent: if the
	// tenant already has a key set with this id, that one is returned with
	// created == false and nothing changes.
	PutKeySet(ctx context.Context, ks KeySet) (stored KeySet, created bool, err error)
	// GetKeySet returns the tenant's key set or ErrNotFound.
	GetKeySet(ctx context.Context, tenant hegate.TenantID, id hegate.KeySetID) (KeySet, error)
	// ListKeySets returns the tenant's key sets, newest first.
	ListKeySets(ctx context.Context, tenant hegate.TenantID) ([]KeySet, error)
	// DeleteKeySet removes the tenant's key set record or returns ErrNotFound.
	// It does not touch the blob, which is content-addressed and may be
	// shared with another tenant's key set; instead it reports, in the same
	// transaction, whether anything still references it. unreferencedBlob
	// is the record's BlobKey when no key set, no job and no model version
	// (not deleted) of any tenant names that blob any more, and ""
	// otherwise; the caller then deletes it from the Blobs store (see
	// ExpireJobs for the caveat about a blob that is being uploaded again
	// at that moment).
	DeleteKeySet(ctx context.Context, tenant hegate.TenantID, id hegate.KeySetID) (unreferencedBlob string, err error)
}

// CreateJobParams are the inputs of Jobs.CreateJob.
type CreateJobParams struct {
	TenantID hegate.TenantID
	Model    hegate.ModelID
	// ModelVersion is a version of the tenant's stored model Model, which
	// must be ready, or 0 for a built-in model (no check). Never < 0.
	ModelVersion   int
	KeySetID       hegate.KeySetID
	InputBlob      string
	InputBytes     int64
	IdempotencyKey string // optional
	// NoiseSigma is the noise scale the job's result gets (Job.NoiseSigma), >= 0.
	NoiseSigma float64
	// DeviceID is the device whose credential created the job, or "".
	DeviceID DeviceID
}

// MaxExpireJobs caps ExpireJobsParams.Limit.
const MaxExpireJobs = 10000

// ExpireJobsParams are the inputs of Jobs.ExpireJobs.
type ExpireJobsParams struct {
	// FinishedBefore selects terminal jobs whose FinishedAt is strictly
	// before it. Required (not the zero time).
	FinishedBefore time.Time
	// Limit is the most jobs expired by one call: 1 to MaxExpireJobs.
	Limit int
}

// ExpiredJobs is what one Jobs.ExpireJobs call did.
type ExpiredJobs struct {
	// Jobs are the jobs whose blob references were cleared, in the order
	// they finished. Fewer than the Limit means none was left to expire.
	Jobs []hegate.JobID
	// Blobs are the keys, sorted and without duplicates, of the blobs those
	// jobs held that nothing references any more: no job, no key set and no
	// model version (not deleted) of any tenant. The caller deletes them
	// from the Blobs store.
	Blobs []string
}

// JobFilter selects a tenant's jobs for Jobs.ListJobsPage.
type JobFilter struct {
	// Status, if set, keeps the jobs of that status.
	Status JobStatus
	// Model, if set, keeps the jobs of that model (of any ModelVersion).
	Model hegate.ModelID
	// Before, if set, keeps the jobs listed after that job of the tenant
	// (older, or as old with a smaller ID): pass the next cursor of the
	// previous page, with the same Status and Model.
	Before hegate.JobID
	// Limit is the page size: 0 means DefaultPageLimit, more than
	// MaxPageLimit means MaxPageLimit; negative is an error.
	Limit int
}

// Jobs stores inference jobs and enqueues them for the workers.
type Jobs interface {
	// CreateJob inserts a queued job and enqueues its work item in the same
	// transaction, so a job row exists if and only if a worker will see it.
	// Outcomes:
	//
	//   - the new job, created == true;
	//   - with an IdempotencyKey that the tenant already used, the existing
	//     job, created == false, and nothing is enqueued (whatever the other
	//     params say, and even if its model has since been deleted);
	//   - ErrNotFound if the tenant does not exist, or p.ModelVersion > 0
	//     names no version of the tenant's model p.Model that is not deleted;
	//   - ErrConflict if that version is not ready (compiling or failed);
	//   - an error if p.ModelVersion < 0 or p.NoiseSigma is negative or
	//     not finite.
	//
	// A job created concurrently with Models.DeleteModel of its model either
	// commits first, and the delete is refused, or sees the model deleted.
	CreateJob(ctx context.Context, p CreateJobParams) (job Job, created bool, err error)
	// GetJob returns the tenant's job or ErrNotFound.
	GetJob(ctx context.Context, tenant hegate.TenantID, id hegate.JobID) (Job, error)
	// ListJobs returns the tenant's most recent jobs, newest first, at most limit.
	ListJobs(ctx context.Context, tenant hegate.TenantID, limit int) ([]Job, error)
	// ListJobsPage returns one page of the tenant's jobs that f selects,
	// newest first (by CreatedAt, then ID, as ListJobs), and the cursor of
	// the next page (f.Before for the next call), or "" when this page is
	// the last. ErrNotFound if f.Before names no job of the tenant; an
	// error if f is invalid (unknown Status, negative Limit).
	ListJobsPage(ctx context.Context, tenant hegate.TenantID, f JobFilter) (jobs []Job, next hegate.JobID, err error)
	// StartJob moves a queued (or, on retry, running) job to running and
	// counts the attempt. For workers only: it is not tenant-scoped.
	// ErrConflict if the job is already terminal.
	StartJob(ctx context.Context, id hegate.JobID) (Job, error)
	// CompleteJob marks a running job succeeded with its result blob and,
	// in the same transaction, settles its privacy reservation (the result
	// is released). ErrConflict if it is not running.
	CompleteJob(ctx context.Context, id hegate.JobID, resultBlob string, resultBytes int64) (Job, error)
	// FailJob marks a non-terminal job failed with a client-safe reason
	// and, in the same transaction, refunds its privacy reservation
	// (nothing was released). ErrConflict if it is already terminal.
	FailJob(ctx context.Context, id hegate.JobID, reason string) (Job, error)
	// CancelJob cancels the tenant's queued job and refunds its privacy
	// reservation; ErrNotFound if there is no such job, ErrConflict if it
	// is no longer queued.
	CancelJob(ctx context.Context, tenant hegate.TenantID, id hegate.JobID) (Job, error)
	// ExpireJobs applies retention to at most p.Limit terminal jobs
	// (succeeded, failed or cancelled) that finished before
	// p.FinishedBefore and still hold their blobs, oldest first, across all
	// tenants. In one transaction it clears their InputBlob and ResultBlob,
	// sets BlobsExpiredAt, and finds which of their blobs are no longer
	// referenced by any job, key set or model version that is not deleted.
	// Rows are kept (history, audit); queued and running jobs are never
	// touched. Outcomes:
	//
	//   - the expired job ids and the unreferenced blob keys, which the
	//     caller must delete from the Blobs store: the database no longer
	//     names them, so nothing else will;
	//   - empty lists when nothing is left to expire: calling again is
	//     harmless (idempotent);
	//   - an error, with nothing changed, if p is invalid (zero
	//     FinishedBefore, Limit outside 1..MaxExpireJobs) or the database
	//     fails.
	//
	// Several processes may call it at once: each job is expired by one
	// call, and a blob shared by jobs that two concurrent calls expire is
	// returned by exactly one of them (calls are serialised on the
	// references, so none can miss the other's change and leak a blob).
	//
	// Caveat: blobs are content-addressed, and the gateway writes a blob
	// before the row that references it. If the very same bytes are being
	// submitted again at the moment their last reference expires, the new
	// row may commit after this call decided the blob was unreferenced, and
	// the caller's delete then removes content the new row needs. With
	// randomised (CKKS) encryptions that means a client resubmitting an
	// identical ciphertext exactly when its previous copy expires.
	ExpireJobs(ctx context.Context, p ExpireJobsParams) (ExpiredJobs, error)
}

// ModelStatus is where a model version is in its life: compiling, then
// ready or failed, for good.
type ModelStatus string

// Model statuses.
const (
	ModelCompiling ModelStatus = "compiling"
	ModelReady     ModelStatus = "ready"
	ModelFailed    ModelStatus = "failed"
)

// Source formats of an uploaded model (ModelVersion.SourceFormat).
const (
	ModelFormatONNX   = "onnx"
	ModelFormatIRJSON = "ir-json"
)

// Limits on a model version's opaque JSON; larger ones are ErrTooLarge.
const (
	MaxModelOptionsBytes  = 64 << 10 // ModelVersion.Options
	MaxModelManifestBytes = 4 << 20  // ModelVersion.Manifest
)

// MaxModelChanges is the largest limit of Models.ModelsChangedSince.
const MaxModelChanges = 1000

// ModelVersion is one uploaded version of a tenant's model. The uploaded
// source and the imported graph are blobs; the row holds their keys.
type ModelVersion struct {
	TenantID     hegate.TenantID
	Name         hegate.ModelID
	Version      int // 1, 2, ... per (tenant, name), assigned by the store, never reused
	Status       ModelStatus
	SourceBlob   string // blob key of the uploaded file; "" once deleted
	SourceBytes  int64
	SourceFormat string // ModelFormatONNX or ModelFormatIRJSON
	Options      []byte // compile options as JSON, opaque to storage; nil when empty
	// GraphBlob is the blob key of the imported graph, set by
	// MarkModelReady; "" before that and once deleted.
	GraphBlob string
	// Manifest is the JSON manifest of the compiled model, set by
	// MarkModelReady, opaque to storage; nil before that.
	Manifest       []byte
	Error          string // client-safe reason when Status is ModelFailed
	IdempotencyKey string // optional, unique per tenant among model uploads
	CreatedAt      time.Time
	// UpdatedAt is the time of the version's last change: created,
	// readied, failed or deleted. See Models.ModelsChangedSince.
	UpdatedAt time.Time
	// DeletedAt is when DeleteModel deleted the version; nil while it
	// exists. A deleted version keeps its Status, but not its blob keys.
	DeletedAt *time.Time
}

// Deleted reports whether the version was deleted.
func (v ModelVersion) Deleted() bool { return v.DeletedAt != nil }

// CreateModelVersionParams are the inputs of Models.CreateModelVersion.
type CreateModelVersionParams struct {
	TenantID       hegate.TenantID // required
	Name           hegate.ModelID  // required
	SourceBlob     string          // required: the uploaded file, already in the Blobs store
	SourceBytes    int64           // >= 0
	SourceFormat   string          // ModelFormatONNX or ModelFormatIRJSON
	Options        []byte          // at most MaxModelOptionsBytes
	IdempotencyKey string          // optional
}

// Models stores the tenants' uploaded models, one row per version, and
// enqueues their compilation. Every gateway and worker process learns of
// new, readied, failed and deleted versions by polling ModelsChangedSince.
//
// Every method is tenant-scoped except ModelsChangedSince: another
// tenant's model is ErrNotFound, exactly as if it did not exist. Deleted
// versions are invisible to every method except ModelsChangedSince (and
// an idempotent replay of CreateModelVersion).
type Models interface {
	// CreateModelVersion inserts the next version of the tenant's model
	// p.Name, compiling, and enqueues its compile job (args: tenant, name,
	// version) in the same transaction, so a compiling version exists if
	// and only if a compile worker will see it. Outcomes:
	//
	//   - the new version, created == true. Versions count 1, 2, ... per
	//     tenant and name and are never reused: after DeleteModel the next
	//     upload of the same name continues the numbering. Concurrent
	//     calls get distinct versions, never an error;
	//   - with an IdempotencyKey that the tenant already used for a model
	//     upload (of any name), the version that upload created, created ==
	//     false, even if it has since been deleted (DeletedAt set); nothing
	//     is enqueued;
	//   - ErrNotFound if the tenant does not exist;
	//   - ErrTooLarge (wrapped) if p.Options exceeds MaxModelOptionsBytes;
	//   - an error if another field of p is invalid.
	CreateModelVersion(ctx context.Context, p CreateModelVersionParams) (v ModelVersion, created bool, err error)
	// GetModelVersion returns one version of the tenant's model; version 0
	// means the latest (highest) version that is ready. ErrNotFound if
	// there is no such version (never ready, for 0), it was deleted, or it
	// is another tenant's.
	GetModelVersion(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int) (ModelVersion, error)
	// ListModelVersions returns the versions of the tenant's model, newest
	// (highest) first, of any status; an empty list if there are none.
	ListModelVersions(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID) ([]ModelVersion, error)
	// ListModels returns the latest (highest) version of each of the
	// tenant's models, of any status, by name; an empty list if there are
	// none.
	ListModels(ctx context.Context, tenant hegate.TenantID) ([]ModelVersion, error)
	// MarkModelReady records a compiling version's graph blob and
	// manifest and makes it ready. Outcomes:
	//
	//   - the ready version;
	//   - the version unchanged if it is already ready with this very
	//     graphBlob and manifest (a retried call is harmless);
	//   - ErrConflict if it is ready with other values, or failed;
	//   - ErrNotFound if the tenant has no such version or it was deleted;
	//   - ErrTooLarge (wrapped) if manifest exceeds MaxModelManifestBytes,
	//     an error if graphBlob is "".
	MarkModelReady(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int, graphBlob string, manifest []byte) (ModelVersion, error)
	// MarkModelFailed marks a compiling version failed with a client-safe
	// reason. Outcomes as for MarkModelReady: the failed version; the
	// version unchanged if it already failed with this very reason;
	// ErrConflict if it is ready or failed with another reason;
	// ErrNotFound if there is no such version or it was deleted; an error
	// if reason is "". The source blob stays until DeleteModel.
	MarkModelFailed(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int, reason string) (ModelVersion, error)
	// ModelsChangedSince returns, across all tenants, the current state of
	// every version whose UpdatedAt is at or after since (the zero time:
	// all), deleted versions included, oldest change first: at most limit,
	// which must be 1 to MaxModelChanges (an error otherwise). It is for
	// the processes that keep a registry of the stored models; never
	// answer a tenant with it, as it names every tenant's models.
	//
	// Every change (create, ready, failed, delete) gets an UpdatedAt that
	// is strictly later than that of every change committed before it,
	// and unique: the store serialises model changes and stamps each one
	// with its clock or, should the clock be behind, one microsecond after
	// the last change (DeleteModel stamps the versions it deletes one
	// microsecond apart). So a poller misses nothing and sees nothing
	// twice if it pages and polls from the last UpdatedAt it saw plus a
	// microsecond:
	//
	//	for {
	//		page, err := store.ModelsChangedSince(ctx, since, storage.MaxModelChanges)
	//		// apply page (a version seen again has only moved forward)
	//		if len(page) > 0 {
	//			since = page[len(page)-1].UpdatedAt.Add(time.Microsecond)
	//		}
	//		if len(page) < storage.MaxModelChanges {
	//			break // caught up: poll again later from since
	//		}
	//	}
	//
	// A version that changed several times since is returned once, as it
	// is now.
	ModelsChangedSince(ctx context.Context, since time.Time, limit int) ([]ModelVersion, error)
	// DeleteModel deletes every version of the tenant's model (soft: the
	// rows stay, with DeletedAt set and their blob keys cleared, so that
	// ModelsChangedSince reports them) and returns, sorted and without
	// duplicates, the keys of those versions' source and graph blobs that
	// nothing references any more (no job, key set or model version that
	// is not deleted, of any tenant); the caller deletes them from the
	// Blobs store, with the caveat of Jobs.ExpireJobs. Outcomes:
	//
	//   - the unreferenced blob keys (possibly none);
	//   - ErrNotFound if the tenant has no such model (never uploaded,
	//     already deleted, or another tenant's);
	//   - ErrConflict, with nothing changed, while a version is compiling
	//     (its compile job is queued or running; it ends, ready or failed,
	//     once a compile worker has worked it, after at most
	//     WorkerConfig.MaxAttempts attempts) or while any job of the tenant
	//     whose Model is name, of any ModelVersion, is queued or running.
	//
	// The check and the delete are one transaction, and CreateJob and
	// CreateModelVersion cannot slip a job or a version in between. A
	// later CreateModelVersion of the same name continues the numbering.
	DeleteModel(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID) (unreferencedBlobs []string, err error)
}

// BlobReferences tells which blobs the database still names.
type BlobReferences interface {
	// UnreferencedBlobs returns the keys among keys, sorted and without
	// duplicates or "", that no job, no key set and no model version that
	// is not deleted (its SourceBlob or GraphBlob) of any tenant names. A
	// caller that wrote a blob and then recorded no row for it (a replayed
	// request whose job already existed, a result another attempt
	// recorded first) uses it to decide whether to delete that blob. It
	// only reads; the caveat of Jobs.ExpireJobs about the same bytes being
	// submitted again at that moment applies to the delete that follows.
	UnreferencedBlobs(ctx context.Context, keys []string) ([]string, error)
}

// JobHandler evaluates one job. The queue retries it when it returns an
// error, up to a configured number of attempts.
type JobHandler func(ctx context.Context, id hegate.JobID) error

// CompileHandler imports and compiles one model version, which is
// compiling when it is called, and records the outcome with
// Models.MarkModelReady or, for a source that can never compile (the
// client's fault), Models.MarkModelFailed with a client-safe reason; it
// then returns nil. An error means "try again": the queue retries it up to
// WorkerConfig.MaxAttempts attempts and then marks the version failed
// with a generic reason. It is not called for a version that is no longer
// compiling or was deleted.
type CompileHandler func(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int) error

// WorkerConfig configures the job workers of a Store. Inference jobs and
// compile jobs wait in separate queues, and a process works only those
// whose handler it sets (at least one is required): inference workers and
// compile workers may run in different processes, and jobs of a kind that
// no process works wait.
//
// A job whose worker died (kill -9, a lost machine) stays running until
// River's rescuer, in whichever worker process leads the queue's
// maintenance, schedules it again for another worker: once it has run
// twice its kind's timeout, at most the timeout plus a minute, or an hour
// for a kind without a timeout (see jobqueue.RescueAfter). A job rescued
// while its first attempt still runs is worked twice, and the first to
// finish it wins (StartJob, CompleteJob and FailJob settle a job once);
// one whose workers died on MaxAttempts attempts is failed. Give every
// process the same timeouts.
type WorkerConfig struct {
	Concurrency int           // inference jobs at once in this process; >= 1 when Handler is set
	MaxAttempts int           // attempts before a job (of either kind) is given up; >= 1
	JobTimeout  time.Duration // per inference attempt; 0 means no limit
	Handler     JobHandler    // nil: this process works no inference jobs

	CompileConcurrency int            // compile jobs at once in this process; 0 means 1
	CompileTimeout     time.Duration  // per compile attempt; 0 means no limit
	CompileHandler     CompileHandler // nil: this process works no compile jobs
}

// Workers runs queued jobs. On PostgreSQL any number of processes on any
// number of machines may run workers against the same database.
type Workers interface {
	// StartWorkers starts working jobs until StopWorkers or ctx ends. An
	// error if cfg is invalid (the message names the field) or workers are
	// already running.
	StartWorkers(ctx context.Context, cfg WorkerConfig) error
	// StopWorkers waits for running jobs to finish, then stops. Safe to call
	// twice or without StartWorkers.
	StopWorkers(ctx context.Context) error
}

// Store is one database: every repository, its workers and its life cycle.
type Store interface {
	Tenants
	APIKeys
	KeySets
	KeySetUploads
	Jobs
	Models
	Budgets
	Attestation
	BlobReferences
	Quotas
	Users
	Sessions
	Audit
	Workers
	Transactor
	// Migrate applies pending migrations (ours and the job queue's).
	Migrate(ctx context.Context) error
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// Engine names the engine: "postgres" or "sqlite".
	Engine() string
	// Close releases connections. Call StopWorkers first.
	Close() error
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Key    string // lowercase hex SHA-256 of the content
	Size   int64
	SHA256 [32]byte
}

// Blobs stores immutable, content-addressed byte strings: key sets,
// ciphertexts. Writes are streamed and bounded; a partial write never
// becomes visible.
type Blobs interface {
	// Put stores at most limit bytes from r. ErrTooLarge (wrapped) if r has
	// more; nothing is stored then. Putting the same content twice is cheap
	// and returns the same key.
	Put(ctx context.Context, r io.Reader, limit int64) (BlobInfo, error)
	// Open returns the content or ErrNotFound.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat returns the size or ErrNotFound.
	Stat(ctx context.Context, key string) (BlobInfo, error)
	// Delete removes a blob; deleting a missing blob is not an error.
	Delete(ctx context.Context, key string) error
}

// StoredBlob is a blob as a BlobLister lists it.
type StoredBlob struct {
	Key      string
	Size     int64
	Modified time.Time // the time of its last Put, or later
}

// BlobLister is a Blobs store that can list what it holds, for the sweeper
// of blobs that no row names (gateway.OrphanSweeper).
type BlobLister interface {
	// ListBlobs calls fn for every stored blob, in no particular order,
	// until fn returns an error (returned as is) or ctx ends. A Put of
	// content already stored makes its Modified the time of that Put.
	ListBlobs(ctx context.Context, fn func(StoredBlob) error) error
	// BlobModTime returns the Modified of one blob, or ErrNotFound.
	BlobModTime(ctx context.Context, key string) (time.Time, error)
	// DeleteIfOlder deletes the blob only if its Modified is before
	// cutoff, atomically with respect to a concurrent Put of the same
	// content (which makes it young, or stores a copy of its own), and
	// reports whether it deleted it.
	DeleteIfOlder(ctx context.Context, key string, cutoff time.Time) (bool, error)
}

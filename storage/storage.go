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
// as if it did not exist.
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
	ID             hegate.JobID
	TenantID       hegate.TenantID
	Model          hegate.ModelID
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
}

// Expired reports whether retention removed the job's blobs.
func (j Job) Expired() bool { return j.BlobsExpiredAt != nil }

// CreateTenantParams are the inputs of Tenants.CreateTenant.
type CreateTenantParams struct {
	Name string // unique
}

// Tenants stores tenants.
type Tenants interface {
	// CreateTenant makes a tenant with a fresh id. ErrConflict if the name is taken.
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
}

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
	// is the record's BlobKey when no key set of any tenant and no job names
	// that blob any more, and "" otherwise; the caller then deletes it from
	// the Blobs store (see ExpireJobs for the caveat about a blob that is
	// being uploaded again at that moment).
	DeleteKeySet(ctx context.Context, tenant hegate.TenantID, id hegate.KeySetID) (unreferencedBlob string, err error)
}

// CreateJobParams are the inputs of Jobs.CreateJob.
type CreateJobParams struct {
	TenantID       hegate.TenantID
	Model          hegate.ModelID
	KeySetID       hegate.KeySetID
	InputBlob      string
	InputBytes     int64
	IdempotencyKey string // optional
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
	// jobs held that nothing references any more: no job and no key set of
	// any tenant. The caller deletes them from the Blobs store.
	Blobs []string
}

// Jobs stores inference jobs and enqueues them for the workers.
type Jobs interface {
	// CreateJob inserts a queued job and enqueues its work item in the same
	// transaction, so a job row exists if and only if a worker will see it.
	// With an IdempotencyKey that the tenant already used, the existing job
	// is returned with created == false and nothing is enqueued.
	CreateJob(ctx context.Context, p CreateJobParams) (job Job, created bool, err error)
	// GetJob returns the tenant's job or ErrNotFound.
	GetJob(ctx context.Context, tenant hegate.TenantID, id hegate.JobID) (Job, error)
	// ListJobs returns the tenant's most recent jobs, newest first, at most limit.
	ListJobs(ctx context.Context, tenant hegate.TenantID, limit int) ([]Job, error)
	// StartJob moves a queued (or, on retry, running) job to running and
	// counts the attempt. For workers only: it is not tenant-scoped.
	// ErrConflict if the job is already terminal.
	StartJob(ctx context.Context, id hegate.JobID) (Job, error)
	// CompleteJob marks a running job succeeded with its result blob.
	// ErrConflict if it is not running.
	CompleteJob(ctx context.Context, id hegate.JobID, resultBlob string, resultBytes int64) (Job, error)
	// FailJob marks a non-terminal job failed with a client-safe reason.
	// ErrConflict if it is already terminal.
	FailJob(ctx context.Context, id hegate.JobID, reason string) (Job, error)
	// CancelJob cancels the tenant's queued job; ErrNotFound if there is no
	// such job, ErrConflict if it is no longer queued.
	CancelJob(ctx context.Context, tenant hegate.TenantID, id hegate.JobID) (Job, error)
	// ExpireJobs applies retention to at most p.Limit terminal jobs
	// (succeeded, failed or cancelled) that finished before
	// p.FinishedBefore and still hold their blobs, oldest first, across all
	// tenants. In one transaction it clears their InputBlob and ResultBlob,
	// sets BlobsExpiredAt, and finds which of their blobs are no longer
	// referenced by any job or key set. Rows are kept (history, audit);
	// queued and running jobs are never touched. Outcomes:
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

// BlobReferences tells which blobs the database still names.
type BlobReferences interface {
	// UnreferencedBlobs returns the keys among keys, sorted and without
	// duplicates or "", that no job and no key set of any tenant names. A
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

// WorkerConfig configures the job workers of a Store.
type WorkerConfig struct {
	Concurrency int           // jobs at once in this process; >= 1
	MaxAttempts int           // attempts before a job is given up; >= 1
	JobTimeout  time.Duration // per attempt; 0 means no limit
	Handler     JobHandler
}

// Workers runs queued jobs. On PostgreSQL any number of processes on any
// number of machines may run workers against the same database.
type Workers interface {
	// StartWorkers starts working jobs until StopWorkers or ctx ends.
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
	Jobs
	BlobReferences
	Workers
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

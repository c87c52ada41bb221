package storage

import (
	"context"

	"github.com/hegate/hegate"
)

// TenantUsage is what one tenant holds in the store: what per-tenant
// quotas are measured against. Blob counts and bytes are per reference:
// a blob that two key sets or jobs name counts twice, and a blob another
// tenant also holds counts for each tenant (blobs are content-addressed
// and shared, quotas are not).
type TenantUsage struct {
	// KeySets is the number of the tenant's key sets, KeySetBytes the sum
	// of their SizeBytes.
	KeySets     int64
	KeySetBytes int64
	// JobBlobs is the number of input and result blobs that the tenant's
	// jobs still hold (not expired by retention: Job.InputBlob and
	// Job.ResultBlob that are not ""), JobBlobBytes the sum of their sizes
	// (Job.InputBytes, Job.ResultBytes).
	JobBlobs     int64
	JobBlobBytes int64
	// ModelBlobs is the number of source and graph blobs that the tenant's
	// model versions (not deleted) hold, ModelBytes the sum of their
	// SourceBytes (the size of a graph blob is not recorded).
	ModelBlobs int64
	ModelBytes int64
	// ActiveJobs is the number of the tenant's jobs that are queued or
	// running.
	ActiveJobs int64
}

// Blobs is the number of blobs the tenant holds: key sets, job inputs and
// results, model sources and graphs.
func (u TenantUsage) Blobs() int64 { return u.KeySets + u.JobBlobs + u.ModelBlobs }

// BlobBytes is the size of the blobs the tenant holds, as far as recorded.
func (u TenantUsage) BlobBytes() int64 { return u.KeySetBytes + u.JobBlobBytes + u.ModelBytes }

// Quotas measures what tenants hold, so that the gateway can enforce
// per-tenant quotas before it accepts an upload or an inference.
type Quotas interface {
	// TenantUsage returns what the tenant holds now, read in one
	// statement (a consistent snapshot). ErrNotFound if the tenant does
	// not exist. It only reads; it is meant to be called on every upload
	// and inference, and is served by indexes over the tenant's key sets,
	// unexpired jobs and model versions (not its whole job history).
	TenantUsage(ctx context.Context, tenant hegate.TenantID) (TenantUsage, error)
}

-- Per-tenant quotas: storage.Quotas.TenantUsage sums, on every upload and
-- inference, what a tenant's jobs still hold. Rows stay after retention
-- (blobs_expired_at set), so the tenant's whole job history would be read
-- without this index of the jobs that still hold blobs (queued and running
-- jobs are never expired, so it covers them too).

-- +goose Up
CREATE INDEX jobs_tenant_unexpired_idx ON jobs (tenant_id)
    WHERE blobs_expired_at IS NULL;

-- +goose Down
DROP INDEX jobs_tenant_unexpired_idx;

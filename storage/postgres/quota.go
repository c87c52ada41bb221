package postgres

import (
	"context"
	"fmt"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// tenantUsageQuery reads a tenant's usage in one statement, so the counts
// are one snapshot. It yields no row when the tenant does not exist.
const tenantUsageQuery = `
SELECT
  (SELECT count(*) FROM key_sets WHERE tenant_id = t.id),
  (SELECT coalesce(sum(size_bytes), 0)::bigint FROM key_sets WHERE tenant_id = t.id),
  j.blobs, j.bytes,
  m.blobs, m.bytes,
  j.active
FROM tenants t
CROSS JOIN LATERAL (
  SELECT coalesce(sum((input_blob <> '')::int + (result_blob <> '')::int), 0)::bigint AS blobs,
         coalesce(sum(CASE WHEN input_blob <> '' THEN input_bytes ELSE 0 END
                    + CASE WHEN result_blob <> '' THEN result_bytes ELSE 0 END), 0)::bigint AS bytes,
         count(*) FILTER (WHERE status IN ('queued', 'running')) AS active
  FROM jobs WHERE tenant_id = t.id AND blobs_expired_at IS NULL) j
CROSS JOIN LATERAL (
  SELECT coalesce(sum((source_blob <> '')::int + (graph_blob <> '')::int), 0)::bigint AS blobs,
         coalesce(sum(CASE WHEN source_blob <> '' THEN source_bytes ELSE 0 END), 0)::bigint AS bytes
  FROM model_versions WHERE tenant_id = t.id AND deleted_at IS NULL) m
WHERE t.id = $1`

// TenantUsage returns what the tenant holds; ErrNotFound if it does not exist.
func (s *Store) TenantUsage(ctx context.Context, tenant hegate.TenantID) (storage.TenantUsage, error) {
	var u storage.TenantUsage
	err := s.pool.QueryRow(ctx, tenantUsageQuery, tenant).Scan(
		&u.KeySets, &u.KeySetBytes, &u.JobBlobs, &u.JobBlobBytes, &u.ModelBlobs, &u.ModelBytes, &u.ActiveJobs)
	if err != nil {
		return storage.TenantUsage{}, fmt.Errorf("reading the usage of tenant %s: %w", tenant, translate(err))
	}
	return u, nil
}

package sqlite

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
  (SELECT coalesce(sum(size_bytes), 0) FROM key_sets WHERE tenant_id = t.id),
  (SELECT coalesce(sum((input_blob <> '') + (result_blob <> '')), 0)
     FROM jobs WHERE tenant_id = t.id AND blobs_expired_at IS NULL),
  (SELECT coalesce(sum(CASE WHEN input_blob <> '' THEN input_bytes ELSE 0 END
                     + CASE WHEN result_blob <> '' THEN result_bytes ELSE 0 END), 0)
     FROM jobs WHERE tenant_id = t.id AND blobs_expired_at IS NULL),
  (SELECT coalesce(sum((source_blob <> '') + (graph_blob <> '')), 0)
     FROM model_versions WHERE tenant_id = t.id AND deleted_at IS NULL),
  (SELECT coalesce(sum(CASE WHEN source_blob <> '' THEN source_bytes ELSE 0 END), 0)
     FROM model_versions WHERE tenant_id = t.id AND deleted_at IS NULL),
  (SELECT count(*) FROM jobs
     WHERE tenant_id = t.id AND blobs_expired_at IS NULL AND status IN ('queued', 'running'))
FROM tenants t WHERE t.id = ?1`

// TenantUsage returns what the tenant holds; ErrNotFound if it does not exist.
func (s *Store) TenantUsage(ctx context.Context, tenant hegate.TenantID) (storage.TenantUsage, error) {
	var u storage.TenantUsage
	err := s.db.QueryRowContext(ctx, tenantUsageQuery, tenant).Scan(
		&u.KeySets, &u.KeySetBytes, &u.JobBlobs, &u.JobBlobBytes, &u.ModelBlobs, &u.ModelBytes, &u.ActiveJobs)
	if err != nil {
		return storage.TenantUsage{}, fmt.Errorf("reading the usage of tenant %s: %w", tenant, translate(err))
	}
	return u, nil
}

package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/internal/jobqueue"
	"github.com/hegate/hegate/storage/internal/validate"
)

const modelColumns = `tenant_id, name, version, status, source_blob, source_bytes, source_format, options,
	graph_blob, manifest, error, idempotency_key, created_at, updated_at, deleted_at`

func scanModel(row pgx.Row) (storage.ModelVersion, error) {
	var (
		v   storage.ModelVersion
		key *string
	)
	err := row.Scan(&v.TenantID, &v.Name, &v.Version, &v.Status, &v.SourceBlob, &v.SourceBytes, &v.SourceFormat, &v.Options,
		&v.GraphBlob, &v.Manifest, &v.Error, &key, &v.CreatedAt, &v.UpdatedAt, &v.DeletedAt)
	if err != nil {
		return storage.ModelVersion{}, translate(err)
	}
	if key != nil {
		v.IdempotencyKey = *key
	}
	v.Options = nilIfEmpty(v.Options)
	v.Manifest = nilIfEmpty(v.Manifest)
	v.CreatedAt = v.CreatedAt.UTC()
	v.UpdatedAt = v.UpdatedAt.UTC()
	v.DeletedAt = utc(v.DeletedAt)
	return v, nil
}

// nilIfEmpty returns b, or nil if it is empty: the columns are NOT NULL,
// empty for "none", and both engines answer nil for it.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// orEmpty returns b, or an empty slice for nil, which pgx would send as NULL.
func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// modelStamp returns the UpdatedAt of a model change, to be called under
// lockModelChanges: the store's clock, or one microsecond after the last
// change if the clock is not past it. A change of n rows uses the stamp,
// stamp+1µs, ... stamp+(n-1)µs.
func (s *Store) modelStamp(ctx context.Context, tx pgx.Tx) (time.Time, error) {
	var last *time.Time
	if err := tx.QueryRow(ctx, `SELECT max(updated_at) FROM model_versions`).Scan(&last); err != nil {
		return time.Time{}, translate(err)
	}
	now := s.now()
	if last != nil && !now.After(*last) {
		now = last.UTC().Add(time.Microsecond)
	}
	return now, nil
}

// CreateModelVersion inserts the next version of the tenant's model and its
// compile job in one transaction; see storage.Models.
//
// Versions come from the models row of (tenant, name), bumped by an
// upsert: concurrent uploads of the same name queue on that row (and all
// model changes on lockModelChanges) rather than race for a number, so
// none fails and none retries.
func (s *Store) CreateModelVersion(ctx context.Context, p storage.CreateModelVersionParams) (v storage.ModelVersion, created bool, err error) {
	if err := validate.CreateModelVersion(p); err != nil {
		return storage.ModelVersion{}, false, fmt.Errorf("creating model version: %w", err)
	}
	var key *string
	if p.IdempotencyKey != "" {
		key = &p.IdempotencyKey
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		created = false
		if err := s.lockModelChanges(ctx, tx); err != nil {
			return err
		}
		if key != nil {
			// Under the lock, a concurrent upload with the same key has
			// either committed (and is seen here) or not begun.
			v, err = scanModel(tx.QueryRow(ctx,
				`SELECT `+modelColumns+` FROM model_versions WHERE tenant_id = $1 AND idempotency_key = $2`,
				p.TenantID, p.IdempotencyKey))
			if !errors.Is(err, errNoRows) {
				return err // the replayed version, or a failure
			}
		}
		var version int
		// A missing tenant is a foreign-key violation: ErrNotFound.
		if err := tx.QueryRow(ctx,
			`INSERT INTO models (tenant_id, name, last_version) VALUES ($1, $2, 1)
			 ON CONFLICT (tenant_id, name) DO UPDATE SET last_version = models.last_version + 1
			 RETURNING last_version`,
			p.TenantID, p.Name).Scan(&version); err != nil {
			return translate(err)
		}
		at, err := s.modelStamp(ctx, tx)
		if err != nil {
			return err
		}
		v, err = scanModel(tx.QueryRow(ctx,
			`INSERT INTO model_versions (tenant_id, name, version, status, source_blob, source_bytes,
			                             source_format, options, idempotency_key, created_at, updated_at)
			 VALUES ($1, $2, $3, 'compiling', $4, $5, $6, $7, $8, $9, $9)
			 RETURNING `+modelColumns,
			p.TenantID, p.Name, version, p.SourceBlob, p.SourceBytes, p.SourceFormat, orEmpty(p.Options), key, at))
		if err != nil {
			return err
		}
		created = true
		return s.queue.EnqueueCompile(ctx, tx, jobqueue.CompileArgs{TenantID: p.TenantID, Model: p.Name, Version: version})
	})
	if err != nil {
		return storage.ModelVersion{}, false, fmt.Errorf("creating version of model %s for tenant %s: %w", p.Name, p.TenantID, translate(err))
	}
	return v, created, nil
}

// GetModelVersion returns a version of the tenant's model, or with version
// 0 its latest ready version; ErrNotFound if there is none or it was deleted.
func (s *Store) GetModelVersion(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int) (storage.ModelVersion, error) {
	var row pgx.Row
	switch {
	case version < 0:
		return storage.ModelVersion{}, fmt.Errorf("getting model %s version %d: %w", name, version, storage.ErrNotFound)
	case version == 0:
		row = s.pool.QueryRow(ctx,
			`SELECT `+modelColumns+` FROM model_versions
			 WHERE tenant_id = $1 AND name = $2 AND status = 'ready' AND deleted_at IS NULL
			 ORDER BY version DESC LIMIT 1`,
			tenant, name)
	default:
		row = s.pool.QueryRow(ctx,
			`SELECT `+modelColumns+` FROM model_versions
			 WHERE tenant_id = $1 AND name = $2 AND version = $3 AND deleted_at IS NULL`,
			tenant, name, version)
	}
	v, err := scanModel(row)
	if err != nil {
		return storage.ModelVersion{}, fmt.Errorf("getting model %s version %d: %w", name, version, err)
	}
	return v, nil
}

// ListModelVersions returns the versions of the tenant's model that are not
// deleted, newest first.
func (s *Store) ListModelVersions(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID) ([]storage.ModelVersion, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT `+modelColumns+` FROM model_versions
		 WHERE tenant_id = $1 AND name = $2 AND deleted_at IS NULL
		 ORDER BY version DESC`,
		tenant, name)
	if err != nil {
		return nil, fmt.Errorf("listing versions of model %s: %w", name, translate(err))
	}
	out, err := collect(rows, scanModel)
	if err != nil {
		return nil, fmt.Errorf("listing versions of model %s: %w", name, err)
	}
	return out, nil
}

// ListModels returns the latest version of each of the tenant's models that
// are not deleted, by name (bytewise, as on SQLite). The latest version is
// the models row's last_version: DeleteModel deletes every version at
// once, so if that one is not deleted the model is not.
func (s *Store) ListModels(ctx context.Context, tenant hegate.TenantID) ([]storage.ModelVersion, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT `+modelColumns+` FROM model_versions
		 WHERE tenant_id = $1 AND deleted_at IS NULL
		   AND (name, version) IN (SELECT name, last_version FROM models WHERE tenant_id = $1)
		 ORDER BY name COLLATE "C"`,
		tenant)
	if err != nil {
		return nil, fmt.Errorf("listing models of tenant %s: %w", tenant, translate(err))
	}
	out, err := collect(rows, scanModel)
	if err != nil {
		return nil, fmt.Errorf("listing models of tenant %s: %w", tenant, err)
	}
	return out, nil
}

// MarkModelReady makes a compiling version ready; see storage.Models.
func (s *Store) MarkModelReady(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int, graphBlob string, manifest []byte) (storage.ModelVersion, error) {
	if err := validate.MarkModelReady(graphBlob, manifest); err != nil {
		return storage.ModelVersion{}, fmt.Errorf("marking model %s version %d ready: %w", name, version, err)
	}
	v, err := s.finishModel(ctx, tenant, name, version, storage.ModelReady,
		func(cur storage.ModelVersion) bool {
			return cur.GraphBlob == graphBlob && bytes.Equal(cur.Manifest, manifest)
		},
		`graph_blob = $6, manifest = $7`, graphBlob, orEmpty(manifest))
	if err != nil {
		return storage.ModelVersion{}, fmt.Errorf("marking model %s version %d ready: %w", name, version, err)
	}
	return v, nil
}

// MarkModelFailed marks a compiling version failed; see storage.Models.
func (s *Store) MarkModelFailed(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int, reason string) (storage.ModelVersion, error) {
	if err := validate.MarkModelFailed(reason); err != nil {
		return storage.ModelVersion{}, fmt.Errorf("marking model %s version %d failed: %w", name, version, err)
	}
	v, err := s.finishModel(ctx, tenant, name, version, storage.ModelFailed,
		func(cur storage.ModelVersion) bool { return cur.Error == reason },
		`error = $6`, reason)
	if err != nil {
		return storage.ModelVersion{}, fmt.Errorf("marking model %s version %d failed: %w", name, version, err)
	}
	return v, nil
}

// finishModel moves a compiling version to status `to`, setting the
// columns of set (whose parameters, args, are $6, ...). If the version
// already has that status and same says it holds the same values, it is
// returned unchanged; another status, or other values, is ErrConflict.
func (s *Store) finishModel(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int,
	to storage.ModelStatus, same func(storage.ModelVersion) bool, set string, args ...any,
) (v storage.ModelVersion, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.lockModelChanges(ctx, tx); err != nil {
			return err
		}
		cur, err := scanModel(tx.QueryRow(ctx,
			`SELECT `+modelColumns+` FROM model_versions
			 WHERE tenant_id = $1 AND name = $2 AND version = $3 AND deleted_at IS NULL`,
			tenant, name, version))
		if err != nil {
			return err
		}
		switch {
		case cur.Status == to && same(cur):
			v = cur
			return nil
		case cur.Status != storage.ModelCompiling:
			return fmt.Errorf("%w: version is %s", storage.ErrConflict, cur.Status)
		}
		at, err := s.modelStamp(ctx, tx)
		if err != nil {
			return err
		}
		v, err = scanModel(tx.QueryRow(ctx,
			`UPDATE model_versions SET status = $4, updated_at = $5, `+set+`
			 WHERE tenant_id = $1 AND name = $2 AND version = $3
			 RETURNING `+modelColumns,
			append([]any{tenant, name, version, to, at}, args...)...))
		return err
	})
	if err != nil {
		return storage.ModelVersion{}, translate(err)
	}
	return v, nil
}

// ModelsChangedSince returns the versions changed at or after since, oldest
// change first, at most limit; see storage.Models. It reads in one
// statement: every change it sees committed before every change it does
// not (see lockModelChanges).
func (s *Store) ModelsChangedSince(ctx context.Context, since time.Time, limit int) ([]storage.ModelVersion, error) {
	if err := validate.ModelsChangedSince(limit); err != nil {
		return nil, fmt.Errorf("listing model changes: %w", err)
	}
	rows, err := s.pool.Query(ctx,
		`SELECT `+modelColumns+` FROM model_versions WHERE updated_at >= $1
		 ORDER BY updated_at LIMIT $2`,
		since, limit)
	if err != nil {
		return nil, fmt.Errorf("listing model changes: %w", translate(err))
	}
	out, err := collect(rows, scanModel)
	if err != nil {
		return nil, fmt.Errorf("listing model changes: %w", err)
	}
	return out, nil
}

// DeleteModel soft-deletes every version of the tenant's model and returns
// the blobs nothing references any more; see storage.Models.
//
// Locks, in order: lockModelChanges (no other model change, in particular
// no CreateModelVersion of this name, interleaves); the models row FOR
// UPDATE, which waits for every CreateJob of this model that holds it FOR
// KEY SHARE to commit, so the check for unfinished jobs that follows sees
// them, and makes later ones wait for this transaction and then see the
// model deleted; and lockBlobReferences for the reference check.
func (s *Store) DeleteModel(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID) (free []string, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		free = nil
		if err := s.lockModelChanges(ctx, tx); err != nil {
			return err
		}
		var one int
		if err := tx.QueryRow(ctx,
			`SELECT 1 FROM models WHERE tenant_id = $1 AND name = $2 FOR UPDATE`,
			tenant, name).Scan(&one); err != nil {
			return translate(err)
		}
		rows, err := tx.Query(ctx,
			`SELECT version, status, source_blob, graph_blob FROM model_versions
			 WHERE tenant_id = $1 AND name = $2 AND deleted_at IS NULL
			 ORDER BY version`,
			tenant, name)
		if err != nil {
			return translate(err)
		}
		var held []string
		versions, err := collect(rows, func(row pgx.Row) (int, error) {
			var (
				version       int
				status        storage.ModelStatus
				source, graph string
			)
			if err := row.Scan(&version, &status, &source, &graph); err != nil {
				return 0, translate(err)
			}
			if status == storage.ModelCompiling {
				return 0, fmt.Errorf("%w: version %d is compiling", storage.ErrConflict, version)
			}
			held = append(held, source, graph)
			return version, nil
		})
		if err != nil {
			return err
		}
		if len(versions) == 0 {
			return errNoRows // deleted before
		}
		var busy bool
		if err := tx.QueryRow(ctx,
			`SELECT EXISTS (SELECT 1 FROM jobs
			                WHERE tenant_id = $1 AND model = $2 AND status IN ('queued', 'running'))`,
			tenant, name).Scan(&busy); err != nil {
			return translate(err)
		}
		if busy {
			return fmt.Errorf("%w: the model has queued or running jobs", storage.ErrConflict)
		}
		at, err := s.modelStamp(ctx, tx)
		if err != nil {
			return err
		}
		for i, version := range versions {
			stamp := at.Add(time.Duration(i) * time.Microsecond)
			if _, err := tx.Exec(ctx,
				`UPDATE model_versions SET deleted_at = $4, updated_at = $4, source_blob = '', graph_blob = ''
				 WHERE tenant_id = $1 AND name = $2 AND version = $3`,
				tenant, name, version, stamp); err != nil {
				return translate(err)
			}
		}
		if err := s.lockBlobReferences(ctx, tx); err != nil {
			return err
		}
		free, err = unreferencedBlobs(ctx, tx, held)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("deleting model %s of tenant %s: %w", name, tenant, translate(err))
	}
	return free, nil
}

// modelStatus returns the status of a version that is not deleted, or
// ErrNotFound: the status lookup of the compile workers' jobqueue.ModelHooks.
func (s *Store) modelStatus(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int) (storage.ModelStatus, error) {
	var status storage.ModelStatus
	if err := s.pool.QueryRow(ctx,
		`SELECT status FROM model_versions
		 WHERE tenant_id = $1 AND name = $2 AND version = $3 AND deleted_at IS NULL`,
		tenant, name, version).Scan(&status); err != nil {
		return "", translate(err)
	}
	return status, nil
}

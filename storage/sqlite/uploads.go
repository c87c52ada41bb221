package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/internal/ids"
	"github.com/hegate/hegate/storage/internal/validate"
)

const uploadColumns = `id, tenant_id, model, model_version, size_bytes, offset_bytes, created_at, updated_at, expires_at`

func scanUpload(row scanner) (storage.KeySetUpload, error) {
	var (
		u                         storage.KeySetUpload
		created, updated, expires nullTime
	)
	if err := row.Scan(&u.ID, &u.TenantID, &u.Model, &u.ModelVersion, &u.Size, &u.Offset, &created, &updated, &expires); err != nil {
		return storage.KeySetUpload{}, translate(err)
	}
	u.CreatedAt, u.UpdatedAt, u.ExpiresAt = created.Time, updated.Time, expires.Time
	return u, nil
}

// CreateKeySetUpload records a new upload at offset 0. See
// storage.KeySetUploads.
func (s *Store) CreateKeySetUpload(ctx context.Context, p storage.CreateKeySetUploadParams) (storage.KeySetUpload, error) {
	if err := validate.CreateKeySetUpload(p); err != nil {
		return storage.KeySetUpload{}, fmt.Errorf("creating key-set upload: %w", err)
	}
	now := dbTime(s.now())
	u, err := scanUpload(s.db.QueryRowContext(ctx,
		`INSERT INTO key_set_uploads (id, tenant_id, model, model_version, size_bytes, offset_bytes, created_at, updated_at, expires_at)
		 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?6, ?7)
		 RETURNING `+uploadColumns,
		ids.New(ids.Upload), p.TenantID, p.Model, p.ModelVersion, p.Size, now, dbTime(p.ExpiresAt)))
	if err != nil {
		return storage.KeySetUpload{}, fmt.Errorf("creating key-set upload: %w", err)
	}
	return u, nil
}

// GetKeySetUpload returns the tenant's upload or ErrNotFound.
func (s *Store) GetKeySetUpload(ctx context.Context, tenant hegate.TenantID, id storage.UploadID) (storage.KeySetUpload, error) {
	u, err := scanUpload(s.db.QueryRowContext(ctx,
		`SELECT `+uploadColumns+` FROM key_set_uploads WHERE tenant_id = ?1 AND id = ?2`, tenant, id))
	if err != nil {
		return storage.KeySetUpload{}, fmt.Errorf("getting key-set upload %s: %w", id, err)
	}
	return u, nil
}

// AdvanceKeySetUpload moves the upload's offset from from to to in one
// conditional update. See storage.KeySetUploads.
func (s *Store) AdvanceKeySetUpload(ctx context.Context, tenant hegate.TenantID, id storage.UploadID, from, to int64, expiresAt time.Time) (storage.KeySetUpload, error) {
	if err := validate.AdvanceKeySetUpload(from, to, expiresAt); err != nil {
		return storage.KeySetUpload{}, fmt.Errorf("advancing key-set upload %s: %w", id, err)
	}
	u, err := scanUpload(s.db.QueryRowContext(ctx,
		`UPDATE key_set_uploads SET offset_bytes = ?4, updated_at = ?5, expires_at = ?6
		 WHERE tenant_id = ?1 AND id = ?2 AND offset_bytes = ?3 AND ?4 <= size_bytes
		 RETURNING `+uploadColumns,
		tenant, id, from, to, dbTime(s.now()), dbTime(expiresAt)))
	if err == nil {
		return u, nil
	}
	if !errors.Is(err, errNoRows) {
		return storage.KeySetUpload{}, fmt.Errorf("advancing key-set upload %s: %w", id, err)
	}
	cur, err := s.GetKeySetUpload(ctx, tenant, id)
	if err != nil {
		return storage.KeySetUpload{}, fmt.Errorf("advancing key-set upload: %w", err)
	}
	return storage.KeySetUpload{}, fmt.Errorf("advancing key-set upload %s from %d to %d: it is at %d of %d: %w", id, from, to, cur.Offset, cur.Size, storage.ErrConflict)
}

// DeleteKeySetUpload removes the tenant's upload record or returns
// ErrNotFound.
func (s *Store) DeleteKeySetUpload(ctx context.Context, tenant hegate.TenantID, id storage.UploadID) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM key_set_uploads WHERE tenant_id = ?1 AND id = ?2`, tenant, id)
	if err != nil {
		return fmt.Errorf("deleting key-set upload %s: %w", id, translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("deleting key-set upload %s: %w", id, translate(err))
	} else if n == 0 {
		return fmt.Errorf("deleting key-set upload %s: %w", id, errNoRows)
	}
	return nil
}

// CountKeySetUploads returns how many uploads the tenant has open.
func (s *Store) CountKeySetUploads(ctx context.Context, tenant hegate.TenantID) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM key_set_uploads WHERE tenant_id = ?1`, tenant).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting key-set uploads: %w", translate(err))
	}
	return n, nil
}

// ListExpiredKeySetUploads returns uploads of any tenant that expired
// before before, oldest expiry first.
func (s *Store) ListExpiredKeySetUploads(ctx context.Context, before time.Time, limit int) ([]storage.KeySetUpload, error) {
	if err := validate.ListExpiredKeySetUploads(before, limit); err != nil {
		return nil, fmt.Errorf("listing expired key-set uploads: %w", err)
	}
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+uploadColumns+` FROM key_set_uploads WHERE expires_at < ?1 ORDER BY expires_at, id LIMIT ?2`,
		dbTime(before), limit)
	if err != nil {
		return nil, fmt.Errorf("listing expired key-set uploads: %w", translate(err))
	}
	out, err := collect(rows, scanUpload)
	if err != nil {
		return nil, fmt.Errorf("listing expired key-set uploads: %w", err)
	}
	return out, nil
}

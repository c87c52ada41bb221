package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/internal/validate"
)

const keySetColumns = `id, tenant_id, model, params_id, size_bytes, blob_key, created_at`

func scanKeySet(row scanner) (storage.KeySet, error) {
	var (
		ks      storage.KeySet
		created nullTime
	)
	if err := row.Scan(&ks.ID, &ks.TenantID, &ks.Model, &ks.ParamsID, &ks.SizeBytes, &ks.BlobKey, &created); err != nil {
		return storage.KeySet{}, translate(err)
	}
	ks.CreatedAt = created.Time
	return ks, nil
}

// PutKeySet records a key set for ks.TenantID; ks.CreatedAt is ignored and
// set to now. If the tenant already has a key set with ks.ID, that one is
// returned unchanged with created == false. ErrNotFound if the tenant does
// not exist.
func (s *Store) PutKeySet(ctx context.Context, ks storage.KeySet) (storage.KeySet, bool, error) {
	if err := validate.PutKeySet(ks); err != nil {
		return storage.KeySet{}, false, fmt.Errorf("putting key set: %w", err)
	}
	stored, err := scanKeySet(s.db.QueryRowContext(ctx,
		`INSERT INTO key_sets (tenant_id, id, model, params_id, size_bytes, blob_key, created_at)
		 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
		 ON CONFLICT (tenant_id, id) DO NOTHING
		 RETURNING `+keySetColumns,
		ks.TenantID, ks.ID, ks.Model, ks.ParamsID, ks.SizeBytes, ks.BlobKey, dbTime(s.now())))
	if err == nil {
		return stored, true, nil
	}
	if !errors.Is(err, errNoRows) {
		// A missing tenant is a foreign-key violation: ErrNotFound too,
		// but not errNoRows.
		return storage.KeySet{}, false, fmt.Errorf("putting key set %s: %w", ks.ID, err)
	}
	// No row inserted: the tenant already has this key set.
	stored, err = s.GetKeySet(ctx, ks.TenantID, ks.ID)
	if err != nil {
		return storage.KeySet{}, false, fmt.Errorf("putting key set %s: %w", ks.ID, err)
	}
	return stored, false, nil
}

// GetKeySet returns the tenant's key set or ErrNotFound.
func (s *Store) GetKeySet(ctx context.Context, tenant hegate.TenantID, id hegate.KeySetID) (storage.KeySet, error) {
	ks, err := scanKeySet(s.db.QueryRowContext(ctx,
		`SELECT `+keySetColumns+` FROM key_sets WHERE tenant_id = ?1 AND id = ?2`, tenant, id))
	if err != nil {
		return storage.KeySet{}, fmt.Errorf("getting key set %s: %w", id, err)
	}
	return ks, nil
}

// ListKeySets returns the tenant's key sets, newest first.
func (s *Store) ListKeySets(ctx context.Context, tenant hegate.TenantID) ([]storage.KeySet, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+keySetColumns+` FROM key_sets WHERE tenant_id = ?1 ORDER BY created_at DESC, id DESC`, tenant)
	if err != nil {
		return nil, fmt.Errorf("listing key sets of tenant %s: %w", tenant, translate(err))
	}
	out, err := collect(rows, scanKeySet)
	if err != nil {
		return nil, fmt.Errorf("listing key sets of tenant %s: %w", tenant, err)
	}
	return out, nil
}

// DeleteKeySet removes the tenant's key set record or returns ErrNotFound.
// In the same transaction it checks whether anything still references the
// record's blob; if nothing does, it returns the blob key for the caller to
// delete. See storage.KeySets.
func (s *Store) DeleteKeySet(ctx context.Context, tenant hegate.TenantID, id hegate.KeySetID) (string, error) {
	var unreferenced string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var blob string
		if err := tx.QueryRowContext(ctx,
			`DELETE FROM key_sets WHERE tenant_id = ?1 AND id = ?2 RETURNING blob_key`,
			tenant, id).Scan(&blob); err != nil {
			return translate(err)
		}
		free, err := unreferencedBlobs(ctx, tx, []string{blob})
		if err != nil {
			return err
		}
		if len(free) == 1 {
			unreferenced = free[0]
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("deleting key set %s: %w", id, err)
	}
	return unreferenced, nil
}

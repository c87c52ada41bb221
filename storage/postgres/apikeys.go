package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/internal/ids"
	"github.com/hegate/hegate/storage/internal/validate"
)

const apiKeyColumns = `id, tenant_id, name, prefix, role, created_at, revoked_at, last_used_at`

func scanAPIKey(row pgx.Row) (storage.APIKey, error) {
	var k storage.APIKey
	if err := row.Scan(&k.ID, &k.TenantID, &k.Name, &k.Prefix, &k.Role, &k.CreatedAt, &k.RevokedAt, &k.LastUsedAt); err != nil {
		return storage.APIKey{}, translate(err)
	}
	k.CreatedAt = k.CreatedAt.UTC()
	k.RevokedAt = utc(k.RevokedAt)
	k.LastUsedAt = utc(k.LastUsedAt)
	return k, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// CreateAPIKey stores a hashed key. ErrNotFound if the tenant does not
// exist, ErrConflict if the hash is already stored.
func (s *Store) CreateAPIKey(ctx context.Context, p storage.CreateAPIKeyParams) (storage.APIKey, error) {
	if err := validate.CreateAPIKey(p); err != nil {
		return storage.APIKey{}, fmt.Errorf("creating API key: %w", err)
	}
	return s.insertAPIKey(ctx, s.pool, p)
}

// insertAPIKey stores a validated key through q (the pool or a tx).
func (s *Store) insertAPIKey(ctx context.Context, q rowQuerier, p storage.CreateAPIKeyParams) (storage.APIKey, error) {
	k, err := scanAPIKey(q.QueryRow(ctx,
		`INSERT INTO api_keys (id, tenant_id, name, prefix, hash, created_at, role)
		 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+apiKeyColumns,
		ids.New(ids.APIKey), p.TenantID, p.Name, p.Prefix, p.Hash, s.now(), validate.Role(p.Role)))
	if err != nil {
		return storage.APIKey{}, fmt.Errorf("creating API key for tenant %s: %w", p.TenantID, err)
	}
	return k, nil
}

// LookupAPIKey finds an unrevoked key by hash, records its use and returns
// it, or returns ErrNotFound.
func (s *Store) LookupAPIKey(ctx context.Context, hash []byte) (storage.APIKey, error) {
	if err := validate.LookupAPIKey(hash); err != nil {
		return storage.APIKey{}, fmt.Errorf("looking up API key: %w", err)
	}
	k, err := scanAPIKey(s.pool.QueryRow(ctx,
		`SELECT `+apiKeyColumns+` FROM api_keys WHERE hash = $1 AND revoked_at IS NULL`, hash))
	if err != nil {
		return storage.APIKey{}, fmt.Errorf("looking up API key: %w", err)
	}
	now := s.now()
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= storage.APIKeyUseResolution {
		if _, err := s.pool.Exec(ctx,
			`UPDATE api_keys SET last_used_at = $2 WHERE id = $1`, k.ID, now); err != nil {
			return storage.APIKey{}, fmt.Errorf("recording use of API key %s: %w", k.ID, translate(err))
		}
		k.LastUsedAt = &now
	}
	return k, nil
}

// ListAPIKeys returns the tenant's keys, oldest first, revoked ones included.
func (s *Store) ListAPIKeys(ctx context.Context, tenant hegate.TenantID) ([]storage.APIKey, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT `+apiKeyColumns+` FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("listing API keys of tenant %s: %w", tenant, translate(err))
	}
	out, err := collect(rows, scanAPIKey)
	if err != nil {
		return nil, fmt.Errorf("listing API keys of tenant %s: %w", tenant, err)
	}
	return out, nil
}

// RevokeAPIKey revokes one of the tenant's keys; ErrNotFound if the tenant
// has no such key. Revoking twice keeps the first revocation time.
func (s *Store) RevokeAPIKey(ctx context.Context, tenant hegate.TenantID, id hegate.APIKeyID) error {
	tag, err := s.pool.Exec(ctx,
		`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE tenant_id = $1 AND id = $2`,
		tenant, id, s.now())
	if err != nil {
		return fmt.Errorf("revoking API key %s: %w", id, translate(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoking API key %s: %w", id, storage.ErrNotFound)
	}
	return nil
}

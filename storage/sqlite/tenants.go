package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/internal/ids"
	"github.com/hegate/hegate/storage/internal/validate"
)

const tenantColumns = `id, name, created_at`

func scanTenant(row scanner) (storage.Tenant, error) {
	var (
		t       storage.Tenant
		created nullTime
	)
	if err := row.Scan(&t.ID, &t.Name, &created); err != nil {
		return storage.Tenant{}, translate(err)
	}
	t.CreatedAt = created.Time
	return t, nil
}

// CreateTenant makes a tenant with a fresh id; ErrConflict if the name is taken.
func (s *Store) CreateTenant(ctx context.Context, p storage.CreateTenantParams) (storage.Tenant, error) {
	if err := validate.CreateTenant(p); err != nil {
		return storage.Tenant{}, fmt.Errorf("creating tenant: %w", err)
	}
	var t storage.Tenant
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = scanTenant(tx.QueryRowContext(ctx,
			`INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3) RETURNING `+tenantColumns,
			ids.New(ids.Tenant), p.Name, dbTime(s.now())))
		if err != nil || p.FirstKey == nil {
			return err
		}
		k := *p.FirstKey
		k.TenantID = t.ID
		_, err = s.insertAPIKey(ctx, tx, k)
		return err
	})
	if err != nil {
		return storage.Tenant{}, fmt.Errorf("creating tenant %q: %w", p.Name, err)
	}
	return t, nil
}

// GetTenant returns a tenant or ErrNotFound.
func (s *Store) GetTenant(ctx context.Context, id hegate.TenantID) (storage.Tenant, error) {
	t, err := scanTenant(s.db.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = ?1`, id))
	if err != nil {
		return storage.Tenant{}, fmt.Errorf("getting tenant %s: %w", id, err)
	}
	return t, nil
}

// GetTenantByName returns a tenant or ErrNotFound.
func (s *Store) GetTenantByName(ctx context.Context, name string) (storage.Tenant, error) {
	t, err := scanTenant(s.db.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE name = ?1`, name))
	if err != nil {
		return storage.Tenant{}, fmt.Errorf("getting tenant %q: %w", name, err)
	}
	return t, nil
}

// ListTenants returns all tenants, oldest first.
func (s *Store) ListTenants(ctx context.Context) ([]storage.Tenant, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tenantColumns+` FROM tenants ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("listing tenants: %w", translate(err))
	}
	out, err := collect(rows, scanTenant)
	if err != nil {
		return nil, fmt.Errorf("listing tenants: %w", err)
	}
	return out, nil
}

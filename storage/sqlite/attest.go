package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/internal/ids"
	"github.com/hegate/hegate/storage/internal/validate"
)

// Device enrollment; see storage.Attestation and migrations/sqlite/00006.
//
// Everything that must happen at most once is one conditional statement,
// as on PostgreSQL, never a read and then a write: redeeming a challenge
// (UPDATE ... WHERE redeemed_at IS NULL), re-enrolling a device that may
// have been revoked (the upsert's DO UPDATE ... WHERE status = 'active')
// and recording a DPoP proof (the upsert's DO UPDATE ... WHERE expires_at
// <= now). SQLite runs one writer at a time, in this process (one
// connection) and in any other sharing the file, so each statement sees
// every write committed before it.

const challengeColumns = `nonce, tenant_id, created_at, expires_at`

func scanChallenge(row scanner) (storage.Challenge, error) {
	var (
		c                storage.Challenge
		created, expires nullTime
	)
	if err := row.Scan(&c.Nonce, &c.TenantID, &created, &expires); err != nil {
		return storage.Challenge{}, translate(err)
	}
	c.CreatedAt = created.Time
	c.ExpiresAt = expires.Time
	return c, nil
}

// CreateChallenge stores a nonce for c.TenantID until c.ExpiresAt;
// c.CreatedAt is ignored and set to now. ErrConflict if the nonce exists
// (of any tenant: nonces are the primary key), ErrNotFound if the tenant
// does not exist.
func (s *Store) CreateChallenge(ctx context.Context, c storage.Challenge) error {
	if err := validate.Challenge(c); err != nil {
		return fmt.Errorf("creating challenge: %w", err)
	}
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO enroll_challenges (nonce, tenant_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)`,
		c.Nonce, c.TenantID, dbTime(s.now()), dbTime(c.ExpiresAt))
	if err != nil {
		return fmt.Errorf("creating challenge for tenant %s: %w", c.TenantID, translate(err))
	}
	return nil
}

// RedeemChallenge marks the tenant's challenge redeemed and returns it;
// see storage.Attestation. The UPDATE is the redemption: of concurrent
// calls exactly one changes the row. Only when it changes none does a
// second statement look for the row, to tell a replay (ErrConflict) from a
// nonce the tenant was never given (ErrNotFound).
func (s *Store) RedeemChallenge(ctx context.Context, tenant hegate.TenantID, nonce []byte) (storage.Challenge, error) {
	c, err := scanChallenge(s.db.QueryRowContext(ctx,
		`UPDATE enroll_challenges SET redeemed_at = ?3
		 WHERE tenant_id = ?1 AND nonce = ?2 AND redeemed_at IS NULL
		 RETURNING `+challengeColumns,
		tenant, nonce, dbTime(s.now())))
	if !errors.Is(err, errNoRows) {
		if err != nil {
			return storage.Challenge{}, fmt.Errorf("redeeming challenge of tenant %s: %w", tenant, err)
		}
		return c, nil
	}
	var one int
	err = s.db.QueryRowContext(ctx,
		`SELECT 1 FROM enroll_challenges WHERE tenant_id = ?1 AND nonce = ?2`, tenant, nonce).Scan(&one)
	switch {
	case err == nil:
		return storage.Challenge{}, fmt.Errorf("redeeming challenge of tenant %s: %w: it was redeemed before", tenant, storage.ErrConflict)
	case errors.Is(err, sql.ErrNoRows):
		return storage.Challenge{}, fmt.Errorf("redeeming challenge of tenant %s: %w", tenant, storage.ErrNotFound)
	default:
		return storage.Challenge{}, fmt.Errorf("redeeming challenge of tenant %s: %w", tenant, translate(err))
	}
}

// DeleteExpiredChallenges removes every challenge, redeemed or not, whose
// ExpiresAt is before before, and returns how many.
func (s *Store) DeleteExpiredChallenges(ctx context.Context, before time.Time) (int, error) {
	n, err := execCount(ctx, s.db, `DELETE FROM enroll_challenges WHERE expires_at < ?1`, dbTime(before))
	if err != nil {
		return 0, fmt.Errorf("deleting expired challenges: %w", err)
	}
	return n, nil
}

// execCount runs a statement on the database and returns how many rows it
// changed.
func execCount(ctx context.Context, db *sql.DB, query string, args ...any) (int, error) {
	res, err := db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, translate(err)
	}
	return int(n), nil
}

// execOne runs a statement that changes one row, and returns ErrNotFound
// if it changed none.
func execOne(ctx context.Context, db *sql.DB, query string, args ...any) error {
	n, err := execCount(ctx, db, query, args...)
	if err == nil && n == 0 {
		return storage.ErrNotFound
	}
	return err
}

const docColumns = `tenant_id, format, kind, document, updated_at, updated_by`

func scanDoc(row scanner) (storage.AttestationDoc, error) {
	var (
		d       storage.AttestationDoc
		updated nullTime
	)
	if err := row.Scan(&d.TenantID, &d.Format, &d.Kind, &d.Document, &updated, &d.UpdatedBy); err != nil {
		return storage.AttestationDoc{}, translate(err)
	}
	d.UpdatedAt = updated.Time
	return d, nil
}

// PutAttestationDoc stores or replaces the tenant's document of d.Format
// and d.Kind, byte for byte; d.UpdatedAt is ignored and set to now. An
// error if d is invalid (ErrTooLarge, wrapped, beyond 1 MiB), ErrNotFound
// if the tenant does not exist.
func (s *Store) PutAttestationDoc(ctx context.Context, d storage.AttestationDoc) (storage.AttestationDoc, error) {
	if err := validate.AttestationDoc(d); err != nil {
		return storage.AttestationDoc{}, fmt.Errorf("putting attestation document: %w", err)
	}
	got, err := scanDoc(s.db.QueryRowContext(ctx,
		`INSERT INTO attestation_docs (tenant_id, format, kind, document, updated_at, updated_by)
		 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
		 ON CONFLICT (tenant_id, format, kind) DO UPDATE SET
		     document = excluded.document, updated_at = excluded.updated_at, updated_by = excluded.updated_by
		 RETURNING `+docColumns,
		d.TenantID, d.Format, d.Kind, d.Document, dbTime(s.now()), d.UpdatedBy))
	if err != nil {
		return storage.AttestationDoc{}, fmt.Errorf("putting %s %s of tenant %s: %w", d.Format, d.Kind, d.TenantID, err)
	}
	return got, nil
}

// GetAttestationDoc returns the tenant's document or ErrNotFound.
func (s *Store) GetAttestationDoc(ctx context.Context, tenant hegate.TenantID, format, kind string) (storage.AttestationDoc, error) {
	d, err := scanDoc(s.db.QueryRowContext(ctx,
		`SELECT `+docColumns+` FROM attestation_docs WHERE tenant_id = ?1 AND format = ?2 AND kind = ?3`,
		tenant, format, kind))
	if err != nil {
		return storage.AttestationDoc{}, fmt.Errorf("getting %s %s: %w", format, kind, err)
	}
	return d, nil
}

// ListAttestationDocs returns the tenant's documents by format, then kind
// (bytewise, SQLite's BINARY collation).
func (s *Store) ListAttestationDocs(ctx context.Context, tenant hegate.TenantID) ([]storage.AttestationDoc, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+docColumns+` FROM attestation_docs WHERE tenant_id = ?1 ORDER BY format, kind`, tenant)
	if err != nil {
		return nil, fmt.Errorf("listing attestation documents of tenant %s: %w", tenant, translate(err))
	}
	out, err := collect(rows, scanDoc)
	if err != nil {
		return nil, fmt.Errorf("listing attestation documents of tenant %s: %w", tenant, err)
	}
	return out, nil
}

// DeleteAttestationDoc removes the tenant's document; ErrNotFound if none.
func (s *Store) DeleteAttestationDoc(ctx context.Context, tenant hegate.TenantID, format, kind string) error {
	err := execOne(ctx, s.db,
		`DELETE FROM attestation_docs WHERE tenant_id = ?1 AND format = ?2 AND kind = ?3`, tenant, format, kind)
	if err != nil {
		return fmt.Errorf("deleting %s %s: %w", format, kind, err)
	}
	return nil
}

const policyColumns = `tenant_id, model, document, updated_at, updated_by`

func scanPolicy(row scanner) (storage.Policy, error) {
	var (
		p       storage.Policy
		updated nullTime
	)
	if err := row.Scan(&p.TenantID, &p.Model, &p.Document, &updated, &p.UpdatedBy); err != nil {
		return storage.Policy{}, translate(err)
	}
	p.UpdatedAt = updated.Time
	return p, nil
}

// PutPolicy stores or replaces the tenant's policy of p.Model ("" for the
// default), byte for byte; p.UpdatedAt is ignored and set to now. An error
// if p is invalid (ErrTooLarge, wrapped, beyond 1 MiB), ErrNotFound if the
// tenant does not exist.
func (s *Store) PutPolicy(ctx context.Context, p storage.Policy) (storage.Policy, error) {
	if err := validate.Policy(p); err != nil {
		return storage.Policy{}, fmt.Errorf("putting policy: %w", err)
	}
	got, err := scanPolicy(s.db.QueryRowContext(ctx,
		`INSERT INTO attestation_policies (tenant_id, model, document, updated_at, updated_by)
		 VALUES (?1, ?2, ?3, ?4, ?5)
		 ON CONFLICT (tenant_id, model) DO UPDATE SET
		     document = excluded.document, updated_at = excluded.updated_at, updated_by = excluded.updated_by
		 RETURNING `+policyColumns,
		p.TenantID, p.Model, p.Document, dbTime(s.now()), p.UpdatedBy))
	if err != nil {
		return storage.Policy{}, fmt.Errorf("putting policy of model %q for tenant %s: %w", p.Model, p.TenantID, err)
	}
	return got, nil
}

// GetPolicy returns the tenant's policy of model ("" for the default) or
// ErrNotFound. It does not fall back to the default: the caller does.
func (s *Store) GetPolicy(ctx context.Context, tenant hegate.TenantID, model hegate.ModelID) (storage.Policy, error) {
	p, err := scanPolicy(s.db.QueryRowContext(ctx,
		`SELECT `+policyColumns+` FROM attestation_policies WHERE tenant_id = ?1 AND model = ?2`, tenant, model))
	if err != nil {
		return storage.Policy{}, fmt.Errorf("getting policy of model %q: %w", model, err)
	}
	return p, nil
}

// ListPolicies returns the tenant's policies by model (bytewise), so the
// default, model "", comes first.
func (s *Store) ListPolicies(ctx context.Context, tenant hegate.TenantID) ([]storage.Policy, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+policyColumns+` FROM attestation_policies WHERE tenant_id = ?1 ORDER BY model`, tenant)
	if err != nil {
		return nil, fmt.Errorf("listing policies of tenant %s: %w", tenant, translate(err))
	}
	out, err := collect(rows, scanPolicy)
	if err != nil {
		return nil, fmt.Errorf("listing policies of tenant %s: %w", tenant, err)
	}
	return out, nil
}

// DeletePolicy removes the tenant's policy of model; ErrNotFound if none.
func (s *Store) DeletePolicy(ctx context.Context, tenant hegate.TenantID, model hegate.ModelID) error {
	err := execOne(ctx, s.db, `DELETE FROM attestation_policies WHERE tenant_id = ?1 AND model = ?2`, tenant, model)
	if err != nil {
		return fmt.Errorf("deleting policy of model %q: %w", model, err)
	}
	return nil
}

const deviceColumns = `id, tenant_id, format, instance_id, key_thumbprint, status, attestation_status, result, clock,
	enrolled_at, attested_at, last_seen_at, revoked_at`

func scanDevice(row scanner) (storage.Device, error) {
	var (
		d                              storage.Device
		enrolled, attested, seen, gone nullTime
	)
	err := row.Scan(&d.ID, &d.TenantID, &d.Format, &d.InstanceID, &d.KeyThumbprint, &d.Status, &d.AttestationStatus,
		&d.Result, &d.Clock, &enrolled, &attested, &seen, &gone)
	if err != nil {
		return storage.Device{}, translate(err)
	}
	d.Result = nilIfEmpty(d.Result)
	d.Clock = nilIfEmpty(d.Clock)
	d.EnrolledAt = enrolled.Time
	d.AttestedAt = attested.Time
	d.LastSeenAt = seen.ptr()
	d.RevokedAt = gone.ptr()
	return d, nil
}

// EnrollDevice creates or updates the device of (tenant, format, instance
// id); see storage.Attestation. AttestedAt is now, and so is EnrolledAt
// for a new device; an update keeps the id, EnrolledAt and LastSeenAt. The
// upsert's DO UPDATE only applies to an active device, so a revoked one
// is left as it is and the statement returns no row: ErrConflict. Result
// and Clock are stored as given (nil or empty: NULL, read back as nil).
func (s *Store) EnrollDevice(ctx context.Context, p storage.EnrollDeviceParams) (storage.Device, error) {
	if err := validate.EnrollDevice(p); err != nil {
		return storage.Device{}, fmt.Errorf("enrolling device: %w", err)
	}
	d, err := scanDevice(s.db.QueryRowContext(ctx,
		`INSERT INTO devices (id, tenant_id, format, instance_id, key_thumbprint, status, attestation_status, result, clock,
		                      enrolled_at, attested_at)
		 VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?7, ?8, ?9, ?9)
		 ON CONFLICT (tenant_id, format, instance_id) DO UPDATE SET
		     key_thumbprint = excluded.key_thumbprint, attestation_status = excluded.attestation_status,
		     result = excluded.result, clock = excluded.clock, attested_at = excluded.attested_at
		 WHERE devices.status = 'active'
		 RETURNING `+deviceColumns,
		ids.New(ids.Device), p.TenantID, p.Format, p.InstanceID, p.KeyThumbprint, p.AttestationStatus,
		nilIfEmpty(p.Result), nilIfEmpty(p.Clock), dbTime(s.now())))
	switch {
	case errors.Is(err, errNoRows):
		return storage.Device{}, fmt.Errorf("enrolling %s device %q of tenant %s: %w: the device is revoked",
			p.Format, p.InstanceID, p.TenantID, storage.ErrConflict)
	case err != nil:
		// A missing tenant is a foreign-key violation: ErrNotFound.
		return storage.Device{}, fmt.Errorf("enrolling %s device %q of tenant %s: %w", p.Format, p.InstanceID, p.TenantID, err)
	}
	return d, nil
}

// GetDevice returns the tenant's device or ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, tenant hegate.TenantID, id storage.DeviceID) (storage.Device, error) {
	d, err := scanDevice(s.db.QueryRowContext(ctx,
		`SELECT `+deviceColumns+` FROM devices WHERE tenant_id = ?1 AND id = ?2`, tenant, id))
	if err != nil {
		return storage.Device{}, fmt.Errorf("getting device %s: %w", id, err)
	}
	return d, nil
}

// FindDevice returns the tenant's device of (format, instance id) or
// ErrNotFound.
func (s *Store) FindDevice(ctx context.Context, tenant hegate.TenantID, format, instanceID string) (storage.Device, error) {
	d, err := scanDevice(s.db.QueryRowContext(ctx,
		`SELECT `+deviceColumns+` FROM devices WHERE tenant_id = ?1 AND format = ?2 AND instance_id = ?3`,
		tenant, format, instanceID))
	if err != nil {
		return storage.Device{}, fmt.Errorf("finding %s device %q: %w", format, instanceID, err)
	}
	return d, nil
}

// ListDevices returns the tenant's devices, newest enrollment first,
// revoked ones included.
func (s *Store) ListDevices(ctx context.Context, tenant hegate.TenantID) ([]storage.Device, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+deviceColumns+` FROM devices WHERE tenant_id = ?1 ORDER BY enrolled_at DESC, id DESC`, tenant)
	if err != nil {
		return nil, fmt.Errorf("listing devices of tenant %s: %w", tenant, translate(err))
	}
	out, err := collect(rows, scanDevice)
	if err != nil {
		return nil, fmt.Errorf("listing devices of tenant %s: %w", tenant, err)
	}
	return out, nil
}

// RevokeDevice revokes the tenant's device and returns it; revoking again
// keeps the first RevokedAt. ErrNotFound if the tenant has no such device.
func (s *Store) RevokeDevice(ctx context.Context, tenant hegate.TenantID, id storage.DeviceID) (storage.Device, error) {
	d, err := scanDevice(s.db.QueryRowContext(ctx,
		`UPDATE devices SET status = 'revoked', revoked_at = COALESCE(revoked_at, ?3)
		 WHERE tenant_id = ?1 AND id = ?2
		 RETURNING `+deviceColumns,
		tenant, id, dbTime(s.now())))
	if err != nil {
		return storage.Device{}, fmt.Errorf("revoking device %s: %w", id, err)
	}
	return d, nil
}

// TouchDevice sets the tenant's device's LastSeenAt to at, revoked or not;
// ErrNotFound if there is no such device. Callers write it at most every
// so often, so that authenticating stays a read on most requests.
func (s *Store) TouchDevice(ctx context.Context, tenant hegate.TenantID, id storage.DeviceID, at time.Time) error {
	err := execOne(ctx, s.db,
		`UPDATE devices SET last_seen_at = ?3 WHERE tenant_id = ?1 AND id = ?2`, tenant, id, dbTime(at))
	if err != nil {
		return fmt.Errorf("touching device %s: %w", id, err)
	}
	return nil
}

const signingKeyColumns = `kid, algorithm, private_key, public_key, created_at, retired_at, verify_until`

func scanSigningKey(row scanner) (storage.SigningKey, error) {
	var (
		k                       storage.SigningKey
		created, retired, until nullTime
	)
	if err := row.Scan(&k.ID, &k.Algorithm, &k.PrivateKey, &k.PublicKey, &created, &retired, &until); err != nil {
		return storage.SigningKey{}, translate(err)
	}
	k.CreatedAt = created.Time
	k.RetiredAt = retired.ptr()
	k.VerifyUntil = until.ptr()
	return k, nil
}

// CreateSigningKey stores a new signing key, not retired: k.CreatedAt,
// k.RetiredAt and k.VerifyUntil are ignored, and CreatedAt is now, which
// is what ListSigningKeys orders by. ErrConflict if the kid exists.
func (s *Store) CreateSigningKey(ctx context.Context, k storage.SigningKey) error {
	if err := validate.SigningKey(k); err != nil {
		return fmt.Errorf("creating signing key: %w", err)
	}
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO credential_signing_keys (kid, algorithm, private_key, public_key, created_at)
		 VALUES (?1, ?2, ?3, ?4, ?5)`,
		k.ID, k.Algorithm, k.PrivateKey, k.PublicKey, dbTime(s.now()))
	if err != nil {
		return fmt.Errorf("creating signing key %s: %w", k.ID, translate(err))
	}
	return nil
}

// ListSigningKeys returns every key that still verifies at now, newest
// first (ties, which only a coarse clock makes, by kid, descending, so
// every process picks the same signing key).
func (s *Store) ListSigningKeys(ctx context.Context, now time.Time) ([]storage.SigningKey, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+signingKeyColumns+` FROM credential_signing_keys
		 WHERE verify_until IS NULL OR verify_until > ?1
		 ORDER BY created_at DESC, kid DESC`, dbTime(now))
	if err != nil {
		return nil, fmt.Errorf("listing signing keys: %w", translate(err))
	}
	out, err := collect(rows, scanSigningKey)
	if err != nil {
		return nil, fmt.Errorf("listing signing keys: %w", err)
	}
	return out, nil
}

// RetireSigningKeys retires, in one statement, every key not yet retired
// except keep: RetiredAt now, VerifyUntil verifyUntil. Keys already
// retired keep their times, so rotating again never extends or cuts short
// an older key's grace. An error if verifyUntil is before now.
func (s *Store) RetireSigningKeys(ctx context.Context, keep string, now, verifyUntil time.Time) error {
	if err := validate.RetireSigningKeys(now, verifyUntil); err != nil {
		return fmt.Errorf("retiring signing keys: %w", err)
	}
	_, err := s.db.ExecContext(ctx,
		`UPDATE credential_signing_keys SET retired_at = ?2, verify_until = ?3
		 WHERE retired_at IS NULL AND kid <> ?1`,
		keep, dbTime(now), dbTime(verifyUntil))
	if err != nil {
		return fmt.Errorf("retiring signing keys but %s: %w", keep, translate(err))
	}
	return nil
}

// UseProof records a DPoP proof id until expiresAt; see
// storage.Attestation. The upsert replaces a row only if it has expired
// (expires_at <= now, the store's clock), and returns no row otherwise: a
// replay, ErrConflict.
func (s *Store) UseProof(ctx context.Context, id []byte, expiresAt time.Time) error {
	if err := validate.UseProof(id, expiresAt); err != nil {
		return fmt.Errorf("recording proof: %w", err)
	}
	var one int
	err := s.db.QueryRowContext(ctx,
		`INSERT INTO dpop_proofs (id, expires_at) VALUES (?1, ?2)
		 ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at
		 WHERE dpop_proofs.expires_at <= ?3
		 RETURNING 1`,
		id, dbTime(expiresAt), dbTime(s.now())).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("recording proof: %w: the proof was used before", storage.ErrConflict)
	case err != nil:
		return fmt.Errorf("recording proof: %w", translate(err))
	}
	return nil
}

// DeleteExpiredProofs removes the proof ids whose expiry is before before
// and returns how many.
func (s *Store) DeleteExpiredProofs(ctx context.Context, before time.Time) (int, error) {
	n, err := execCount(ctx, s.db, `DELETE FROM dpop_proofs WHERE expires_at < ?1`, dbTime(before))
	if err != nil {
		return 0, fmt.Errorf("deleting expired proofs: %w", err)
	}
	return n, nil
}

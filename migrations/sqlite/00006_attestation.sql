-- Device enrollment (storage.Attestation): challenge nonces, enrolled
-- devices, the tenants' trust anchors and policies, the credential signing
-- keys and the DPoP proof ids already seen. Timestamps are TEXT in the
-- fixed-width UTC form, so expiry checks compare them as text.
--
-- enroll_challenges: a nonce is redeemed with one conditional UPDATE ...
-- RETURNING scoped by tenant (redeemed_at IS NULL -> now); SQLite
-- serialises writers, so of concurrent redemptions exactly one gets the
-- row. A redeemed row stays, so that a replayed nonce is told from one
-- never issued, until DeleteExpiredChallenges sweeps it with the expired
-- ones.
--
-- attestation_docs and attestation_policies keep the documents exactly as
-- the admin gave them, as BLOBs, at most 1 MiB. A policy of model '' is the
-- tenant's default.
--
-- devices: one row per tenant, evidence format and attester instance,
-- which enrolling again updates (an upsert on that key). A revoked device
-- stays revoked. clock is NULL when the format has none.
--
-- credential_signing_keys and dpop_proofs belong to the gateway, not to a
-- tenant. A proof id is a digest of the key thumbprint and the jti; its
-- row may be replaced once it has expired.
--
-- jobs gets the device whose credential created it (NULL: an API key).

-- +goose Up
CREATE TABLE enroll_challenges (
    nonce       BLOB NOT NULL PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    redeemed_at TEXT,
    CONSTRAINT enroll_challenges_nonce_not_empty CHECK (length(nonce) > 0)
) STRICT;

-- DeleteExpiredChallenges' sweep.
CREATE INDEX enroll_challenges_expires_idx ON enroll_challenges (expires_at);

CREATE TABLE attestation_docs (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    format     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    document   BLOB NOT NULL CHECK (length(document) <= 1048576),
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, format, kind),
    CONSTRAINT attestation_docs_format_not_empty CHECK (format <> ''),
    CONSTRAINT attestation_docs_kind_check CHECK (kind IN ('endorsements', 'reference-values'))
) STRICT;

CREATE TABLE attestation_policies (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    model      TEXT NOT NULL,
    document   BLOB NOT NULL CHECK (length(document) <= 1048576),
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, model)
) STRICT;

CREATE TABLE devices (
    id                 TEXT NOT NULL PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    format             TEXT NOT NULL,
    instance_id        TEXT NOT NULL,
    key_thumbprint     TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'active',
    attestation_status TEXT NOT NULL,
    result             BLOB,
    clock              BLOB,
    enrolled_at        TEXT NOT NULL,
    attested_at        TEXT NOT NULL,
    last_seen_at       TEXT,
    revoked_at         TEXT,
    CONSTRAINT devices_tenant_format_instance_key UNIQUE (tenant_id, format, instance_id),
    CONSTRAINT devices_status_check CHECK (status IN ('active', 'revoked')),
    CONSTRAINT devices_revoked_check CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
) STRICT;

-- ListDevices: the tenant's devices, newest enrollment first.
CREATE INDEX devices_tenant_enrolled_idx ON devices (tenant_id, enrolled_at DESC);

CREATE TABLE credential_signing_keys (
    kid          TEXT NOT NULL PRIMARY KEY,
    algorithm    TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    public_key   BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    retired_at   TEXT,
    verify_until TEXT,
    CONSTRAINT credential_signing_keys_kid_not_empty CHECK (kid <> '')
) STRICT;

CREATE TABLE dpop_proofs (
    id         BLOB NOT NULL PRIMARY KEY,
    expires_at TEXT NOT NULL
) STRICT;

-- DeleteExpiredProofs' sweep.
CREATE INDEX dpop_proofs_expires_idx ON dpop_proofs (expires_at);

ALTER TABLE jobs ADD COLUMN device_id TEXT;

-- +goose Down
ALTER TABLE jobs DROP COLUMN device_id;
DROP TABLE dpop_proofs;
DROP TABLE credential_signing_keys;
DROP TABLE devices;
DROP TABLE attestation_policies;
DROP TABLE attestation_docs;
DROP TABLE enroll_challenges;

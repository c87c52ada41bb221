-- Device enrollment (storage.Attestation): challenge nonces, enrolled
-- devices, the tenants' trust anchors and policies, the credential signing
-- keys and the DPoP proof ids already seen. Every replica shares them, so
-- that a nonce is redeemed once, a proof is accepted once and a credential
-- that one replica issued verifies on all.
--
-- enroll_challenges: a nonce is redeemed with one conditional UPDATE ...
-- RETURNING scoped by tenant (redeemed_at IS NULL -> now): under READ
-- COMMITTED a concurrent redemption waits for the row lock and re-checks
-- the condition on the committed row, so exactly one gets the row. A
-- redeemed row stays, so that a replayed nonce is told from one never
-- issued, until DeleteExpiredChallenges sweeps it with the expired ones.
--
-- attestation_docs and attestation_policies keep the documents exactly as
-- the admin gave them (bytea, not jsonb, which would reformat them), at
-- most 1 MiB. A policy of model '' is the tenant's default.
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
-- Adding a nullable column without a default does not rewrite jobs.

-- +goose Up
CREATE TABLE enroll_challenges (
    nonce       bytea       PRIMARY KEY,
    tenant_id   text        NOT NULL REFERENCES tenants (id),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    redeemed_at timestamptz,
    CONSTRAINT enroll_challenges_nonce_not_empty CHECK (octet_length(nonce) > 0)
);

-- DeleteExpiredChallenges' sweep.
CREATE INDEX enroll_challenges_expires_idx ON enroll_challenges (expires_at);

CREATE TABLE attestation_docs (
    tenant_id  text        NOT NULL REFERENCES tenants (id),
    format     text        NOT NULL,
    kind       text        NOT NULL,
    document   bytea       NOT NULL CHECK (octet_length(document) <= 1048576),
    updated_at timestamptz NOT NULL,
    updated_by text        NOT NULL,
    PRIMARY KEY (tenant_id, format, kind),
    CONSTRAINT attestation_docs_format_not_empty CHECK (format <> ''),
    CONSTRAINT attestation_docs_kind_check CHECK (kind IN ('endorsements', 'reference-values'))
);

CREATE TABLE attestation_policies (
    tenant_id  text        NOT NULL REFERENCES tenants (id),
    model      text        NOT NULL,
    document   bytea       NOT NULL CHECK (octet_length(document) <= 1048576),
    updated_at timestamptz NOT NULL,
    updated_by text        NOT NULL,
    PRIMARY KEY (tenant_id, model)
);

CREATE TABLE devices (
    id                 text        PRIMARY KEY,
    tenant_id          text        NOT NULL REFERENCES tenants (id),
    format             text        NOT NULL,
    instance_id        text        NOT NULL,
    key_thumbprint     text        NOT NULL,
    status             text        NOT NULL DEFAULT 'active',
    attestation_status text        NOT NULL,
    result             bytea,
    clock              bytea,
    enrolled_at        timestamptz NOT NULL,
    attested_at        timestamptz NOT NULL,
    last_seen_at       timestamptz,
    revoked_at         timestamptz,
    CONSTRAINT devices_tenant_format_instance_key UNIQUE (tenant_id, format, instance_id),
    CONSTRAINT devices_status_check CHECK (status IN ('active', 'revoked')),
    CONSTRAINT devices_revoked_check CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);

-- ListDevices: the tenant's devices, newest enrollment first.
CREATE INDEX devices_tenant_enrolled_idx ON devices (tenant_id, enrolled_at DESC);

CREATE TABLE credential_signing_keys (
    kid          text        PRIMARY KEY,
    algorithm    text        NOT NULL,
    private_key  bytea       NOT NULL,
    public_key   bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    retired_at   timestamptz,
    verify_until timestamptz,
    CONSTRAINT credential_signing_keys_kid_not_empty CHECK (kid <> '')
);

CREATE TABLE dpop_proofs (
    id         bytea       PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

-- DeleteExpiredProofs' sweep.
CREATE INDEX dpop_proofs_expires_idx ON dpop_proofs (expires_at);

ALTER TABLE jobs ADD COLUMN device_id text;

-- +goose Down
ALTER TABLE jobs DROP COLUMN device_id;
DROP TABLE dpop_proofs;
DROP TABLE credential_signing_keys;
DROP TABLE devices;
DROP TABLE attestation_policies;
DROP TABLE attestation_docs;
DROP TABLE enroll_challenges;

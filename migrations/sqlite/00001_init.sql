-- Timestamps are TEXT in the fixed-width UTC form
-- 2006-01-02T15:04:05.000000Z (microseconds), so they sort as text.

-- +goose Up
CREATE TABLE tenants (
    id         TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    CONSTRAINT tenants_name_key UNIQUE (name),
    CONSTRAINT tenants_name_not_empty CHECK (name <> '')
) STRICT;

CREATE TABLE api_keys (
    id           TEXT NOT NULL PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    hash         BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT,
    last_used_at TEXT,
    CONSTRAINT api_keys_hash_key UNIQUE (hash),
    CONSTRAINT api_keys_hash_length CHECK (length(hash) = 32)
) STRICT;

CREATE INDEX api_keys_tenant_created_idx ON api_keys (tenant_id, created_at);

CREATE TABLE key_sets (
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id),
    id         TEXT    NOT NULL,
    model      TEXT    NOT NULL,
    params_id  TEXT    NOT NULL,
    size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
    blob_key   TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;

CREATE INDEX key_sets_tenant_created_idx ON key_sets (tenant_id, created_at DESC);

CREATE TABLE jobs (
    id              TEXT    NOT NULL PRIMARY KEY,
    tenant_id       TEXT    NOT NULL REFERENCES tenants (id),
    model           TEXT    NOT NULL,
    key_set_id      TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'queued',
    input_blob      TEXT    NOT NULL,
    input_bytes     INTEGER NOT NULL CHECK (input_bytes >= 0),
    result_blob     TEXT    NOT NULL DEFAULT '',
    result_bytes    INTEGER NOT NULL DEFAULT 0 CHECK (result_bytes >= 0),
    error           TEXT    NOT NULL DEFAULT '',
    idempotency_key TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at      TEXT    NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    CONSTRAINT jobs_status_check
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT jobs_idempotency_key_not_empty
        CHECK (idempotency_key IS NULL OR idempotency_key <> '')
) STRICT;

CREATE UNIQUE INDEX jobs_tenant_idempotency_key_idx
    ON jobs (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE INDEX jobs_tenant_created_idx ON jobs (tenant_id, created_at DESC);

-- +goose Down
DROP TABLE jobs;
DROP TABLE key_sets;
DROP TABLE api_keys;
DROP TABLE tenants;

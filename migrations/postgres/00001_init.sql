-- +goose Up
CREATE TABLE tenants (
    id         text        PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT tenants_name_key UNIQUE (name),
    CONSTRAINT tenants_name_not_empty CHECK (name <> '')
);

CREATE TABLE api_keys (
    id           text        PRIMARY KEY,
    tenant_id    text        NOT NULL REFERENCES tenants (id),
    name         text        NOT NULL,
    prefix       text        NOT NULL,
    hash         bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    CONSTRAINT api_keys_hash_key UNIQUE (hash),
    CONSTRAINT api_keys_hash_length CHECK (octet_length(hash) = 32)
);

CREATE INDEX api_keys_tenant_created_idx ON api_keys (tenant_id, created_at);

CREATE TABLE key_sets (
    tenant_id  text        NOT NULL REFERENCES tenants (id),
    id         text        NOT NULL,
    model      text        NOT NULL,
    params_id  text        NOT NULL,
    size_bytes bigint      NOT NULL CHECK (size_bytes >= 0),
    blob_key   text        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX key_sets_tenant_created_idx ON key_sets (tenant_id, created_at DESC);

CREATE TABLE jobs (
    id              text        PRIMARY KEY,
    tenant_id       text        NOT NULL REFERENCES tenants (id),
    model           text        NOT NULL,
    key_set_id      text        NOT NULL,
    status          text        NOT NULL DEFAULT 'queued',
    input_blob      text        NOT NULL,
    input_bytes     bigint      NOT NULL CHECK (input_bytes >= 0),
    result_blob     text        NOT NULL DEFAULT '',
    result_bytes    bigint      NOT NULL DEFAULT 0 CHECK (result_bytes >= 0),
    error           text        NOT NULL DEFAULT '',
    idempotency_key text,
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at      timestamptz NOT NULL,
    started_at      timestamptz,
    finished_at     timestamptz,
    CONSTRAINT jobs_status_check
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT jobs_idempotency_key_not_empty
        CHECK (idempotency_key IS NULL OR idempotency_key <> '')
);

CREATE UNIQUE INDEX jobs_tenant_idempotency_key_idx
    ON jobs (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE INDEX jobs_tenant_created_idx ON jobs (tenant_id, created_at DESC);

-- +goose Down
DROP TABLE jobs;
DROP TABLE key_sets;
DROP TABLE api_keys;
DROP TABLE tenants;

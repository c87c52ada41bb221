-- Models managed at run time: tenants upload a model, a compile job imports
-- and compiles it, and every process learns of the new version by polling
-- model_versions.updated_at (Models.ModelsChangedSince). Timestamps are
-- TEXT in the fixed-width UTC form.
--
-- models has one row per (tenant, name) ever uploaded: it hands out the
-- version numbers (last_version, bumped by an upsert). It stays after a
-- delete, so numbering continues. SQLite serialises writers, so no row
-- locks are needed around it.
--
-- model_versions rows are soft-deleted: deleted_at is set and the blob keys
-- cleared, so that the reference checks need not know about deletion.
--
-- jobs gets model_version (0: a built-in model) and an index for
-- DeleteModel's "any queued or running job of this model" check.

-- +goose Up
CREATE TABLE models (
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id),
    name         TEXT    NOT NULL,
    last_version INTEGER NOT NULL CHECK (last_version >= 1),
    PRIMARY KEY (tenant_id, name),
    CONSTRAINT models_name_not_empty CHECK (name <> '')
) STRICT;

CREATE TABLE model_versions (
    tenant_id       TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    status          TEXT    NOT NULL,
    source_blob     TEXT    NOT NULL,
    source_bytes    INTEGER NOT NULL CHECK (source_bytes >= 0),
    source_format   TEXT    NOT NULL,
    options         BLOB    NOT NULL DEFAULT x'' CHECK (length(options) <= 65536),
    graph_blob      TEXT    NOT NULL DEFAULT '',
    manifest        BLOB    NOT NULL DEFAULT x'' CHECK (length(manifest) <= 4194304),
    error           TEXT    NOT NULL DEFAULT '',
    idempotency_key TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    deleted_at      TEXT,
    PRIMARY KEY (tenant_id, name, version),
    FOREIGN KEY (tenant_id, name) REFERENCES models (tenant_id, name),
    CONSTRAINT model_versions_status_check
        CHECK (status IN ('compiling', 'ready', 'failed')),
    CONSTRAINT model_versions_idempotency_key_not_empty
        CHECK (idempotency_key IS NULL OR idempotency_key <> '')
) STRICT;

-- Idempotent uploads: a key is unique per tenant across its models.
CREATE UNIQUE INDEX model_versions_tenant_idempotency_key_idx
    ON model_versions (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- ModelsChangedSince's scan, and the max(updated_at) that each change reads
-- to stamp itself after the last one. Every change gets a distinct stamp;
-- the index holds the store to that.
CREATE UNIQUE INDEX model_versions_updated_idx ON model_versions (updated_at);

-- Who references a blob. Deleted rows hold '' and stay out of the indexes;
-- queries repeat the "<> ''" so that the planner may use them.
CREATE INDEX model_versions_source_blob_idx ON model_versions (source_blob) WHERE source_blob <> '';
CREATE INDEX model_versions_graph_blob_idx ON model_versions (graph_blob) WHERE graph_blob <> '';

ALTER TABLE jobs ADD COLUMN model_version INTEGER NOT NULL DEFAULT 0;

-- The tenant's unfinished jobs of a model.
CREATE INDEX jobs_tenant_model_active_idx ON jobs (tenant_id, model)
    WHERE status IN ('queued', 'running');

-- +goose Down
DROP INDEX jobs_tenant_model_active_idx;
ALTER TABLE jobs DROP COLUMN model_version;
DROP TABLE model_versions;
DROP TABLE models;

-- Resumable key-set uploads (storage.KeySetUploads): the record of how far
-- an upload got. The bytes are in the blob store's partial-upload area,
-- never here. An upload that sees no PATCH until expires_at is swept.

-- +goose Up
CREATE TABLE key_set_uploads (
    id            TEXT    NOT NULL PRIMARY KEY,
    tenant_id     TEXT    NOT NULL REFERENCES tenants (id),
    model         TEXT    NOT NULL CHECK (model <> ''),
    model_version INTEGER NOT NULL CHECK (model_version >= 0),
    size_bytes    INTEGER NOT NULL CHECK (size_bytes > 0),
    offset_bytes  INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    expires_at    TEXT    NOT NULL,
    CONSTRAINT key_set_uploads_offset CHECK (offset_bytes >= 0 AND offset_bytes <= size_bytes)
) STRICT;

CREATE INDEX key_set_uploads_expires_idx ON key_set_uploads (expires_at);

-- +goose Down
DROP TABLE key_set_uploads;

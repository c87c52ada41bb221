-- The web console (storage.Users, storage.Sessions, storage.Audit): its
-- users, their sessions, and the audit log. Timestamps are TEXT in the
-- fixed-width UTC form, so expiry checks compare them as text.
--
-- console_users: tenant_id is NULL for an operator, who belongs to no
-- tenant; the CHECK ties that to the role. Login names are unique per
-- tenant, and among the operators: the unique index is on
-- (coalesce(tenant_id, ''), name), and FindUser filters on that same
-- expression so that it uses the index. Names compare byte for byte (the
-- caller normalises them). password_hash is a PHC string, opaque here.
-- disabled is 0 or 1.
--
-- console_sessions: the id is the SHA-256 of the session token, never the
-- token. GetSession joins the user, so a disabled user's sessions stop at
-- once. client_addr is the client address the session was created from.
--
-- audit_log is append-only: the store never updates a row, and deletes
-- only by age (DeleteAuditBefore, on occurred_at). AUTOINCREMENT ids never
-- go back, even after that sweep, and with one writer at a time they
-- follow commit order. tenant_id is '' for an operator-wide action and has
-- no foreign key: the log records what happened, whatever the tenant.
-- detail is JSON kept byte for byte, at most 8 KiB.
--
-- jobs gets an index for the console's job table filtered by status
-- (ListJobsPage).

-- +goose Up
CREATE TABLE console_users (
    id            TEXT    NOT NULL PRIMARY KEY,
    tenant_id     TEXT    REFERENCES tenants (id),
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    last_login_at TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT console_users_name_check CHECK (name <> '' AND length(CAST(name AS BLOB)) <= 100),
    CONSTRAINT console_users_password_hash_check
        CHECK (password_hash <> '' AND length(CAST(password_hash AS BLOB)) <= 512),
    CONSTRAINT console_users_role_check CHECK (role IN ('admin', 'viewer', 'operator')),
    CONSTRAINT console_users_operator_check CHECK ((tenant_id IS NULL) = (role = 'operator')),
    CONSTRAINT console_users_disabled_check CHECK (disabled IN (0, 1))
) STRICT;

CREATE UNIQUE INDEX console_users_tenant_name_key ON console_users (coalesce(tenant_id, ''), name);

CREATE TABLE console_sessions (
    id           BLOB NOT NULL PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    client_addr  TEXT NOT NULL DEFAULT '',
    CONSTRAINT console_sessions_id_length CHECK (length(id) = 32),
    CONSTRAINT console_sessions_client_addr_length CHECK (length(CAST(client_addr AS BLOB)) <= 128)
) STRICT;

-- DeleteUserSessions.
CREATE INDEX console_sessions_user_idx ON console_sessions (user_id);
-- DeleteExpiredSessions' sweep.
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT    NOT NULL DEFAULT '',
    occurred_at TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    object      TEXT    NOT NULL DEFAULT '',
    client_addr TEXT    NOT NULL DEFAULT '',
    request_id  TEXT    NOT NULL DEFAULT '',
    detail      BLOB,
    outcome     TEXT    NOT NULL,
    CONSTRAINT audit_log_actor_not_empty CHECK (actor <> ''),
    CONSTRAINT audit_log_action_not_empty CHECK (action <> ''),
    CONSTRAINT audit_log_detail_length CHECK (length(detail) <= 8192),
    CONSTRAINT audit_log_outcome_check CHECK (outcome IN ('ok', 'denied', 'failed'))
) STRICT;

-- ListAudit: a tenant's events (or the operator-wide ones, tenant ''),
-- newest first, of every actor or of one.
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id);
CREATE INDEX audit_log_tenant_actor_idx ON audit_log (tenant_id, actor, id);
-- DeleteAuditBefore's sweep.
CREATE INDEX audit_log_occurred_idx ON audit_log (occurred_at);

CREATE INDEX jobs_tenant_status_created_idx ON jobs (tenant_id, status, created_at DESC);

-- +goose Down
DROP INDEX jobs_tenant_status_created_idx;
DROP TABLE audit_log;
DROP TABLE console_sessions;
DROP TABLE console_users;

-- The web console (storage.Users, storage.Sessions, storage.Audit): its
-- users, their sessions, and the audit log.
--
-- console_users: tenant_id is NULL for an operator, who belongs to no
-- tenant; the CHECK ties that to the role. Login names are unique per
-- tenant, and among the operators: the unique index is on
-- (coalesce(tenant_id, ''), name), and FindUser filters on that same
-- expression so that it uses the index. Names compare byte for byte (the
-- caller normalises them). password_hash is a PHC string, opaque here.
--
-- console_sessions: the id is the SHA-256 of the session token, never the
-- token. GetSession joins the user, so a disabled user's sessions stop at
-- once. client_addr is the client address the session was created from.
--
-- audit_log is append-only: the store never updates a row, and deletes
-- only by age (DeleteAuditBefore, on occurred_at). tenant_id is '' for an
-- operator-wide action and has no foreign key: the log records what
-- happened, whatever the tenant. detail is JSON kept byte for byte (bytea,
-- not jsonb, which would reformat it), at most 8 KiB. Listings are
-- newest first by id, per tenant or across all.
--
-- jobs gets an index for the console's job table filtered by status
-- (ListJobsPage): the tenant's queued or failed jobs without reading its
-- whole history.

-- +goose Up
CREATE TABLE console_users (
    id            text        PRIMARY KEY,
    tenant_id     text        REFERENCES tenants (id),
    name          text        NOT NULL,
    role          text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL,
    last_login_at timestamptz,
    disabled      boolean     NOT NULL DEFAULT false,
    CONSTRAINT console_users_name_check CHECK (name <> '' AND octet_length(name) <= 100),
    CONSTRAINT console_users_password_hash_check
        CHECK (password_hash <> '' AND octet_length(password_hash) <= 512),
    CONSTRAINT console_users_role_check CHECK (role IN ('admin', 'viewer', 'operator')),
    CONSTRAINT console_users_operator_check CHECK ((tenant_id IS NULL) = (role = 'operator'))
);

CREATE UNIQUE INDEX console_users_tenant_name_key ON console_users (coalesce(tenant_id, ''), name);

CREATE TABLE console_sessions (
    id           bytea       PRIMARY KEY,
    user_id      text        NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    client_addr  text        NOT NULL DEFAULT '',
    CONSTRAINT console_sessions_id_length CHECK (octet_length(id) = 32),
    CONSTRAINT console_sessions_client_addr_length CHECK (octet_length(client_addr) <= 128)
);

-- DeleteUserSessions.
CREATE INDEX console_sessions_user_idx ON console_sessions (user_id);
-- DeleteExpiredSessions' sweep.
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

CREATE TABLE audit_log (
    id          bigserial   PRIMARY KEY,
    tenant_id   text        NOT NULL DEFAULT '',
    occurred_at timestamptz NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    object      text        NOT NULL DEFAULT '',
    client_addr text        NOT NULL DEFAULT '',
    request_id  text        NOT NULL DEFAULT '',
    detail      bytea,
    outcome     text        NOT NULL,
    CONSTRAINT audit_log_actor_not_empty CHECK (actor <> ''),
    CONSTRAINT audit_log_action_not_empty CHECK (action <> ''),
    CONSTRAINT audit_log_detail_length CHECK (octet_length(detail) <= 8192),
    CONSTRAINT audit_log_outcome_check CHECK (outcome IN ('ok', 'denied', 'failed'))
);

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

-- Privacy budgets (storage.Budgets). Amounts are INTEGER counts of 1e-9
-- rho ("units"); timestamps are TEXT in the fixed-width UTC form.
--
-- budgets holds a tenant's budget for a model as set; global_budgets a
-- model's budget across all tenants. A tenant without a budgets row gets
-- the default that the caller passes.
--
-- budget_usage and global_budget_usage hold one row per period (period_start
-- is the period's start; the Unix epoch for "never"), created by the first
-- reservation or adjustment in it. Reservations are a conditional UPDATE of
-- that row (reserved + cost must fit the capacity) inside an IMMEDIATE
-- transaction: SQLite serialises writers, so none can overspend. The
-- CHECKs hold spent and reserved to >= 0.
--
-- budget_ledger records every change; AUTOINCREMENT ids never go back, and
-- with one writer at a time they follow commit order. tenant_id is '' for
-- the set and delete entries of a global budget, job_id '' for entries that
-- no job caused, period_start NULL for set and delete entries.
--
-- jobs gets the noise scale fixed at creation, the units reserved, where
-- the reservation is (privacy_state), and the periods it counts in
-- (global_period_start NULL: not counted globally), so that it settles or
-- refunds into the period it was reserved in.

-- +goose Up
CREATE TABLE budgets (
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id),
    model       TEXT    NOT NULL,
    capacity    INTEGER NOT NULL CHECK (capacity >= 0),
    period      TEXT    NOT NULL,
    epsilon     REAL    NOT NULL DEFAULT 0 CHECK (epsilon >= 0),
    delta       REAL    NOT NULL DEFAULT 0 CHECK (delta >= 0 AND delta < 1),
    noise_sigma REAL    NOT NULL DEFAULT 0 CHECK (noise_sigma >= 0),
    updated_at  TEXT    NOT NULL,
    updated_by  TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, model),
    CONSTRAINT budgets_model_not_empty CHECK (model <> ''),
    CONSTRAINT budgets_period_check CHECK (period IN ('day', 'week', 'month', 'never'))
) STRICT;

CREATE TABLE budget_usage (
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id),
    model        TEXT    NOT NULL,
    period_start TEXT    NOT NULL,
    spent        INTEGER NOT NULL DEFAULT 0 CHECK (spent >= 0),
    reserved     INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    PRIMARY KEY (tenant_id, model, period_start)
) STRICT;

CREATE TABLE global_budgets (
    model      TEXT    NOT NULL PRIMARY KEY,
    capacity   INTEGER NOT NULL CHECK (capacity >= 0),
    period     TEXT    NOT NULL,
    epsilon    REAL    NOT NULL DEFAULT 0 CHECK (epsilon >= 0),
    delta      REAL    NOT NULL DEFAULT 0 CHECK (delta >= 0 AND delta < 1),
    updated_at TEXT    NOT NULL,
    updated_by TEXT    NOT NULL,
    CONSTRAINT global_budgets_model_not_empty CHECK (model <> ''),
    CONSTRAINT global_budgets_period_check CHECK (period IN ('day', 'week', 'month', 'never'))
) STRICT;

CREATE TABLE global_budget_usage (
    model        TEXT    NOT NULL,
    period_start TEXT    NOT NULL,
    spent        INTEGER NOT NULL DEFAULT 0 CHECK (spent >= 0),
    reserved     INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    PRIMARY KEY (model, period_start)
) STRICT;

CREATE TABLE budget_ledger (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    scope        TEXT    NOT NULL,
    tenant_id    TEXT    NOT NULL,
    model        TEXT    NOT NULL,
    period_start TEXT,
    kind         TEXT    NOT NULL,
    units        INTEGER NOT NULL,
    job_id       TEXT    NOT NULL DEFAULT '',
    actor        TEXT    NOT NULL,
    reason       TEXT    NOT NULL DEFAULT '',
    created_at   TEXT    NOT NULL,
    CONSTRAINT budget_ledger_scope_check CHECK (scope IN ('tenant', 'global')),
    CONSTRAINT budget_ledger_kind_check
        CHECK (kind IN ('reserve', 'settle', 'refund', 'renew', 'adjust', 'set', 'delete'))
) STRICT;

-- Ledger: a tenant's entries, newest first, of every model or of one.
CREATE INDEX budget_ledger_tenant_idx ON budget_ledger (tenant_id, id);
CREATE INDEX budget_ledger_tenant_model_idx ON budget_ledger (tenant_id, model, id);

ALTER TABLE jobs ADD COLUMN noise_sigma REAL NOT NULL DEFAULT 0 CHECK (noise_sigma >= 0);
ALTER TABLE jobs ADD COLUMN privacy_units INTEGER NOT NULL DEFAULT 0 CHECK (privacy_units >= 0);
ALTER TABLE jobs ADD COLUMN privacy_state TEXT NOT NULL DEFAULT ''
    CHECK (privacy_state IN ('', 'reserved', 'settled', 'refunded'));
ALTER TABLE jobs ADD COLUMN privacy_period_start TEXT;
ALTER TABLE jobs ADD COLUMN global_period_start TEXT;

-- +goose Down
ALTER TABLE jobs DROP COLUMN global_period_start;
ALTER TABLE jobs DROP COLUMN privacy_period_start;
ALTER TABLE jobs DROP COLUMN privacy_state;
ALTER TABLE jobs DROP COLUMN privacy_units;
ALTER TABLE jobs DROP COLUMN noise_sigma;
DROP TABLE budget_ledger;
DROP TABLE global_budget_usage;
DROP TABLE global_budgets;
DROP TABLE budget_usage;
DROP TABLE budgets;

-- Privacy budgets (storage.Budgets). Amounts are bigint counts of 1e-9
-- rho ("units").
--
-- budgets holds a tenant's budget for a model as set; global_budgets a
-- model's budget across all tenants. A tenant without a budgets row gets
-- the default that the caller passes.
--
-- budget_usage and global_budget_usage hold one row per period (period_start
-- is the period's start in UTC; the Unix epoch for "never"), created by the
-- first reservation or adjustment in it. Reservations are a conditional
-- UPDATE of that row (reserved + cost must fit the capacity): under READ
-- COMMITTED a concurrent reservation waits for the row lock and re-checks
-- the condition on the committed row, so none can overspend. The CHECKs
-- hold spent and reserved to >= 0.
--
-- budget_ledger records every change. Its id comes from a sequence;
-- entries that change the same usage row or budget are written under that
-- row's lock, so their ids follow commit order. tenant_id is '' for the
-- set and delete entries of a global budget, job_id '' for entries that
-- no job caused, period_start NULL for set and delete entries.
--
-- jobs gets the noise scale fixed at creation, the units reserved, where
-- the reservation is (privacy_state), and the periods it counts in
-- (global_period_start NULL: not counted globally), so that it settles or
-- refunds into the period it was reserved in. Adding the columns with
-- constant defaults does not rewrite jobs; the CHECKs scan it once.

-- +goose Up
CREATE TABLE budgets (
    tenant_id   text             NOT NULL REFERENCES tenants (id),
    model       text             NOT NULL,
    capacity    bigint           NOT NULL CHECK (capacity >= 0),
    period      text             NOT NULL,
    epsilon     double precision NOT NULL DEFAULT 0 CHECK (epsilon >= 0),
    delta       double precision NOT NULL DEFAULT 0 CHECK (delta >= 0 AND delta < 1),
    noise_sigma double precision NOT NULL DEFAULT 0 CHECK (noise_sigma >= 0),
    updated_at  timestamptz      NOT NULL,
    updated_by  text             NOT NULL,
    PRIMARY KEY (tenant_id, model),
    CONSTRAINT budgets_model_not_empty CHECK (model <> ''),
    CONSTRAINT budgets_period_check CHECK (period IN ('day', 'week', 'month', 'never'))
);

CREATE TABLE budget_usage (
    tenant_id    text        NOT NULL REFERENCES tenants (id),
    model        text        NOT NULL,
    period_start timestamptz NOT NULL,
    spent        bigint      NOT NULL DEFAULT 0 CHECK (spent >= 0),
    reserved     bigint      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    PRIMARY KEY (tenant_id, model, period_start)
);

CREATE TABLE global_budgets (
    model      text             PRIMARY KEY,
    capacity   bigint           NOT NULL CHECK (capacity >= 0),
    period     text             NOT NULL,
    epsilon    double precision NOT NULL DEFAULT 0 CHECK (epsilon >= 0),
    delta      double precision NOT NULL DEFAULT 0 CHECK (delta >= 0 AND delta < 1),
    updated_at timestamptz      NOT NULL,
    updated_by text             NOT NULL,
    CONSTRAINT global_budgets_model_not_empty CHECK (model <> ''),
    CONSTRAINT global_budgets_period_check CHECK (period IN ('day', 'week', 'month', 'never'))
);

CREATE TABLE global_budget_usage (
    model        text        NOT NULL,
    period_start timestamptz NOT NULL,
    spent        bigint      NOT NULL DEFAULT 0 CHECK (spent >= 0),
    reserved     bigint      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    PRIMARY KEY (model, period_start)
);

CREATE TABLE budget_ledger (
    id           bigserial   PRIMARY KEY,
    scope        text        NOT NULL,
    tenant_id    text        NOT NULL,
    model        text        NOT NULL,
    period_start timestamptz,
    kind         text        NOT NULL,
    units        bigint      NOT NULL,
    job_id       text        NOT NULL DEFAULT '',
    actor        text        NOT NULL,
    reason       text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    CONSTRAINT budget_ledger_scope_check CHECK (scope IN ('tenant', 'global')),
    CONSTRAINT budget_ledger_kind_check
        CHECK (kind IN ('reserve', 'settle', 'refund', 'renew', 'adjust', 'set', 'delete'))
);

-- Ledger: a tenant's entries, newest first, of every model or of one.
CREATE INDEX budget_ledger_tenant_idx ON budget_ledger (tenant_id, id);
CREATE INDEX budget_ledger_tenant_model_idx ON budget_ledger (tenant_id, model, id);

ALTER TABLE jobs
    ADD COLUMN noise_sigma double precision NOT NULL DEFAULT 0 CHECK (noise_sigma >= 0),
    ADD COLUMN privacy_units bigint NOT NULL DEFAULT 0 CHECK (privacy_units >= 0),
    ADD COLUMN privacy_state text NOT NULL DEFAULT ''
        CONSTRAINT jobs_privacy_state_check CHECK (privacy_state IN ('', 'reserved', 'settled', 'refunded')),
    ADD COLUMN privacy_period_start timestamptz,
    ADD COLUMN global_period_start timestamptz;

-- +goose Down
ALTER TABLE jobs
    DROP COLUMN global_period_start,
    DROP COLUMN privacy_period_start,
    DROP COLUMN privacy_state,
    DROP COLUMN privacy_units,
    DROP COLUMN noise_sigma;
DROP TABLE budget_ledger;
DROP TABLE global_budget_usage;
DROP TABLE global_budgets;
DROP TABLE budget_usage;
DROP TABLE budgets;

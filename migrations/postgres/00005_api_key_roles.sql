-- API keys get a role: "client" keys run inferences and manage their key
-- sets and jobs; "admin" keys may also change the tenant's settings (the
-- budgets of its own models). Keys made before roles existed were the
-- operator's and could do everything: they become admin keys.

-- +goose Up
ALTER TABLE api_keys ADD COLUMN role text NOT NULL DEFAULT 'admin'
    CHECK (role IN ('admin', 'client'));

-- +goose Down
ALTER TABLE api_keys DROP COLUMN role;

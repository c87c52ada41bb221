package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/internal/budgets"
	"github.com/hegate/hegate/storage/internal/validate"
)

// Privacy budgets; see storage.Budgets and migrations/sqlite/00004.
//
// Every change runs in an IMMEDIATE transaction, so writers (of this
// process, through its one connection, and of any other process sharing
// the file) take turns: a reservation's check and its update cannot
// interleave with another's. The check is still the conditional UPDATE of
// the usage row in reserveIn (capacity - spent - reserved >= cost), as on
// PostgreSQL, never a value computed in Go from an earlier read.

const budgetColumns = `tenant_id, model, capacity, period, epsilon, delta, noise_sigma, updated_at, updated_by`

func scanBudget(row scanner) (storage.Budget, error) {
	var (
		b       storage.Budget
		updated nullTime
	)
	err := row.Scan(&b.TenantID, &b.Model, &b.Capacity, &b.Period, &b.Epsilon, &b.Delta, &b.NoiseSigma,
		&updated, &b.UpdatedBy)
	if err != nil {
		return storage.Budget{}, translate(err)
	}
	b.UpdatedAt = updated.Time
	return b, nil
}

const globalBudgetColumns = `model, capacity, period, epsilon, delta, updated_at, updated_by`

func scanGlobalBudget(row scanner) (storage.GlobalBudget, error) {
	var (
		b       storage.GlobalBudget
		updated nullTime
	)
	err := row.Scan(&b.Model, &b.Capacity, &b.Period, &b.Epsilon, &b.Delta, &updated, &b.UpdatedBy)
	if err != nil {
		return storage.GlobalBudget{}, translate(err)
	}
	b.UpdatedAt = updated.Time
	return b, nil
}

const ledgerColumns = `id, scope, tenant_id, model, period_start, kind, units, job_id, actor, reason, created_at`

func scanLedger(row scanner) (storage.LedgerEntry, error) {
	var (
		e              storage.LedgerEntry
		start, created nullTime
	)
	err := row.Scan(&e.ID, &e.Scope, &e.TenantID, &e.Model, &start, &e.Kind, &e.Units, &e.JobID, &e.Actor,
		&e.Reason, &created)
	if err != nil {
		return storage.LedgerEntry{}, translate(err)
	}
	e.PeriodStart = start.Time // zero when NULL
	e.CreatedAt = created.Time
	return e, nil
}

// writeLedger appends e (its ID is assigned) in tx.
func writeLedger(ctx context.Context, tx *sql.Tx, e storage.LedgerEntry) error {
	var start any // NULL
	if !e.PeriodStart.IsZero() {
		start = dbTime(e.PeriodStart)
	}
	_, err := tx.ExecContext(ctx,
		`INSERT INTO budget_ledger (scope, tenant_id, model, period_start, kind, units, job_id, actor, reason, created_at)
		 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)`,
		e.Scope, e.TenantID, e.Model, start, e.Kind, e.Units, e.JobID, e.Actor, e.Reason, dbTime(e.CreatedAt))
	return translate(err)
}

// usageKey names a usage row: the tenant's (ScopeTenant) or the model's
// (ScopeGlobal, where tenant is only whose action it is, for the ledger).
type usageKey struct {
	tenant hegate.TenantID
	model  hegate.ModelID
	start  time.Time
}

// usageTable is the SQL of one scope's usage rows. In every statement the
// key comes first (?1.. as args returns it), then ?n+1, the units, and
// ?n+2, the capacity.
type usageTable struct {
	scope storage.BudgetScope
	// ensure inserts the row with zero usage unless it exists.
	ensure string
	// reserve adds the units to reserved if they fit the capacity, and
	// returns spent and reserved. It is written as capacity - spent -
	// reserved >= units so that no sum can overflow.
	reserve string
	read    string // spent, reserved
	settle  string // reserved -= units, spent += units
	refund  string // reserved -= units
	// adjust adds the (signed) units to spent unless it would go below 0,
	// and returns spent and reserved.
	adjust string
}

func newUsageTable(scope storage.BudgetScope, table string, key ...string) usageTable {
	var where, vals []string
	for i, k := range key {
		where = append(where, fmt.Sprintf("%s = ?%d", k, i+1))
		vals = append(vals, fmt.Sprintf("?%d", i+1))
	}
	w := strings.Join(where, " AND ")
	units, capacity := fmt.Sprintf("?%d", len(key)+1), fmt.Sprintf("?%d", len(key)+2)
	return usageTable{
		scope: scope,
		ensure: `INSERT INTO ` + table + ` (` + strings.Join(key, ", ") + `) VALUES (` + strings.Join(vals, ", ") + `)
		         ON CONFLICT DO NOTHING`,
		reserve: `UPDATE ` + table + ` SET reserved = reserved + ` + units + `
		          WHERE ` + w + ` AND ` + capacity + ` - spent - reserved >= ` + units + `
		          RETURNING spent, reserved`,
		read:   `SELECT spent, reserved FROM ` + table + ` WHERE ` + w,
		settle: `UPDATE ` + table + ` SET reserved = reserved - ` + units + `, spent = spent + ` + units + ` WHERE ` + w,
		refund: `UPDATE ` + table + ` SET reserved = reserved - ` + units + ` WHERE ` + w,
		adjust: `UPDATE ` + table + ` SET spent = spent + ` + units + `
		         WHERE ` + w + ` AND spent + ` + units + ` >= 0
		         RETURNING spent, reserved`,
	}
}

var (
	tenantUsage = newUsageTable(storage.ScopeTenant, "budget_usage", "tenant_id", "model", "period_start")
	globalUsage = newUsageTable(storage.ScopeGlobal, "global_budget_usage", "model", "period_start")
)

// args returns k's key as t's statements take it, followed by more.
func (t usageTable) args(k usageKey, more ...any) []any {
	if t.scope == storage.ScopeGlobal {
		return append([]any{k.model, dbTime(k.start)}, more...)
	}
	return append([]any{k.tenant, k.model, dbTime(k.start)}, more...)
}

// rowQuerier is a *sql.Tx or the *sql.DB.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// usageOf returns the spent and reserved units of k's row, 0 if it has none.
func usageOf(ctx context.Context, q rowQuerier, t usageTable, k usageKey) (spent, reserved int64, err error) {
	err = q.QueryRowContext(ctx, t.read, t.args(k)...).Scan(&spent, &reserved)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	}
	return spent, reserved, translate(err)
}

// tenantLimit returns the tenant's budget for model, or def if none is set.
func tenantLimit(ctx context.Context, q rowQuerier, tenant hegate.TenantID, model hegate.ModelID, def storage.BudgetLimit) (budgets.Limit, error) {
	var l budgets.Limit
	err := q.QueryRowContext(ctx,
		`SELECT capacity, period, epsilon, delta, noise_sigma FROM budgets WHERE tenant_id = ?1 AND model = ?2`,
		tenant, model).Scan(&l.Capacity, &l.Period, &l.Epsilon, &l.Delta, &l.NoiseSigma)
	if errors.Is(err, sql.ErrNoRows) {
		return budgets.Limit{BudgetLimit: def, Default: true}, nil
	}
	return l, translate(err)
}

// globalLimit returns the model's global budget, or errNoRows.
func globalLimit(ctx context.Context, q rowQuerier, model hegate.ModelID) (storage.BudgetLimit, error) {
	var l storage.BudgetLimit
	err := q.QueryRowContext(ctx,
		`SELECT capacity, period, epsilon, delta FROM global_budgets WHERE model = ?1`,
		model).Scan(&l.Capacity, &l.Period, &l.Epsilon, &l.Delta)
	return l, translate(err)
}

// ensureUsage creates k's row in t unless it exists, with a renew entry by
// actor.
func ensureUsage(ctx context.Context, tx *sql.Tx, t usageTable, k usageKey, actor string, now time.Time) error {
	res, err := tx.ExecContext(ctx, t.ensure, t.args(k)...)
	if err != nil {
		return translate(err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return translate(err)
	}
	return writeLedger(ctx, tx, storage.LedgerEntry{
		Scope: t.scope, TenantID: k.tenant, Model: k.model, PeriodStart: k.start,
		Kind: storage.LedgerRenew, Actor: actor, CreatedAt: now,
	})
}

// reserveIn reserves p.Cost for p.JobID in k's row of t if it fits limit,
// with a reserve entry, and returns the row's spent and reserved after it;
// a *BudgetExhaustedError if it does not fit.
func reserveIn(ctx context.Context, tx *sql.Tx, t usageTable, k usageKey, limit storage.BudgetLimit,
	p storage.ReserveBudgetParams, now time.Time,
) (spent, reserved int64, err error) {
	if err := ensureUsage(ctx, tx, t, k, p.Actor, now); err != nil {
		return 0, 0, err
	}
	err = tx.QueryRowContext(ctx, t.reserve, t.args(k, p.Cost, limit.Capacity)...).Scan(&spent, &reserved)
	if errors.Is(err, sql.ErrNoRows) {
		if spent, reserved, err = usageOf(ctx, tx, t, k); err != nil {
			return 0, 0, err
		}
		_, end := limit.Period.Bounds(now)
		return 0, 0, budgets.Exhausted(t.scope, k.model, limit, spent, reserved, p.Cost, end)
	}
	if err != nil {
		return 0, 0, translate(err)
	}
	return spent, reserved, writeLedger(ctx, tx, storage.LedgerEntry{
		Scope: t.scope, TenantID: k.tenant, Model: k.model, PeriodStart: k.start,
		Kind: storage.LedgerReserve, Units: p.Cost, JobID: p.JobID, Actor: p.Actor, CreatedAt: now,
	})
}

// reserveBudget reserves p.Cost for the job in tx; see storage.Tx.
func (s *Store) reserveBudget(ctx context.Context, tx *sql.Tx, p storage.ReserveBudgetParams) (storage.BudgetUsage, error) {
	if err := validate.ReserveBudget(p); err != nil {
		return storage.BudgetUsage{}, fmt.Errorf("reserving budget: %w", err)
	}
	u, err := s.reserve(ctx, tx, p)
	if err != nil {
		return storage.BudgetUsage{}, fmt.Errorf("reserving budget for job %s: %w", p.JobID, translate(err))
	}
	return u, nil
}

func (s *Store) reserve(ctx context.Context, tx *sql.Tx, p storage.ReserveBudgetParams) (storage.BudgetUsage, error) {
	var (
		tenant hegate.TenantID
		model  hegate.ModelID
		status storage.JobStatus
		state  string
	)
	if err := tx.QueryRowContext(ctx,
		`SELECT tenant_id, model, status, privacy_state FROM jobs WHERE id = ?1`,
		p.JobID).Scan(&tenant, &model, &status, &state); err != nil {
		return storage.BudgetUsage{}, translate(err)
	}
	switch {
	case state != storage.PrivacyNone:
		return storage.BudgetUsage{}, fmt.Errorf("%w: the job already has a reservation (%s)", storage.ErrConflict, state)
	case status != storage.JobQueued:
		return storage.BudgetUsage{}, fmt.Errorf("%w: job is %s", storage.ErrConflict, status)
	}
	now := s.now()
	l, err := tenantLimit(ctx, tx, tenant, model, p.Default)
	if err != nil {
		return storage.BudgetUsage{}, err
	}
	start, _ := l.Period.Bounds(now)
	spent, reserved, err := reserveIn(ctx, tx, tenantUsage, usageKey{tenant, model, start}, l.BudgetLimit, p, now)
	if err != nil {
		return storage.BudgetUsage{}, err
	}
	var globalStart any // NULL: not counted globally
	if p.Global {
		gl, err := globalLimit(ctx, tx, model)
		switch {
		case err == nil:
			gs, _ := gl.Period.Bounds(now)
			if _, _, err := reserveIn(ctx, tx, globalUsage, usageKey{tenant, model, gs}, gl, p, now); err != nil {
				return storage.BudgetUsage{}, err
			}
			globalStart = dbTime(gs)
		case !errors.Is(err, errNoRows):
			return storage.BudgetUsage{}, err
		}
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE jobs SET privacy_units = ?2, privacy_state = 'reserved', privacy_period_start = ?3, global_period_start = ?4
		 WHERE id = ?1`,
		p.JobID, p.Cost, dbTime(start), globalStart); err != nil {
		return storage.BudgetUsage{}, translate(err)
	}
	return budgets.Usage(storage.ScopeTenant, tenant, model, l, now, spent, reserved), nil
}

// release settles (j.PrivacyState is PrivacySettled) or refunds j's
// reservation in tx, in the tenant period that starts at tenantStart and,
// if globalStart is not nil, in that global period, with a ledger entry
// each by actor for reason.
func (s *Store) release(ctx context.Context, tx *sql.Tx, j storage.Job, tenantStart, globalStart *time.Time, actor, reason string) error {
	kind, stmt := storage.LedgerRefund, func(t usageTable) string { return t.refund }
	if j.PrivacyState == storage.PrivacySettled {
		kind, stmt = storage.LedgerSettle, func(t usageTable) string { return t.settle }
	}
	if tenantStart == nil {
		return fmt.Errorf("job %s has a reservation without a period", j.ID)
	}
	now := s.now()
	for _, r := range []struct {
		t     usageTable
		start *time.Time
	}{{tenantUsage, tenantStart}, {globalUsage, globalStart}} {
		if r.start == nil {
			continue
		}
		k := usageKey{j.TenantID, j.Model, *r.start}
		res, err := tx.ExecContext(ctx, stmt(r.t), r.t.args(k, j.PrivacyUnits)...)
		if err != nil {
			return translate(err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errors.Join(translate(err),
				fmt.Errorf("job %s: no %s usage row for the period of %s", j.ID, r.t.scope, k.start.Format(time.RFC3339)))
		}
		if err := writeLedger(ctx, tx, storage.LedgerEntry{
			Scope: r.t.scope, TenantID: j.TenantID, Model: j.Model, PeriodStart: k.start,
			Kind: kind, Units: j.PrivacyUnits, JobID: j.ID, Actor: actor, Reason: reason, CreatedAt: now,
		}); err != nil {
			return err
		}
	}
	return nil
}

// SetBudget creates or replaces the tenant's budget for a model; see
// storage.Budgets.
func (s *Store) SetBudget(ctx context.Context, p storage.SetBudgetParams) (storage.Budget, error) {
	if err := validate.SetBudget(p); err != nil {
		return storage.Budget{}, fmt.Errorf("setting budget: %w", err)
	}
	var b storage.Budget
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		var err error
		// A missing tenant is a foreign-key violation: ErrNotFound.
		b, err = scanBudget(tx.QueryRowContext(ctx,
			`INSERT INTO budgets (tenant_id, model, capacity, period, epsilon, delta, noise_sigma, updated_at, updated_by)
			 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
			 ON CONFLICT (tenant_id, model) DO UPDATE SET
			     capacity = excluded.capacity, period = excluded.period, epsilon = excluded.epsilon,
			     delta = excluded.delta, noise_sigma = excluded.noise_sigma,
			     updated_at = excluded.updated_at, updated_by = excluded.updated_by
			 RETURNING `+budgetColumns,
			p.TenantID, p.Model, p.Limit.Capacity, p.Limit.Period, p.Limit.Epsilon, p.Limit.Delta, p.NoiseSigma,
			dbTime(now), p.Actor))
		if err != nil {
			return err
		}
		return writeLedger(ctx, tx, storage.LedgerEntry{
			Scope: storage.ScopeTenant, TenantID: p.TenantID, Model: p.Model, Kind: storage.LedgerSet,
			Units: p.Limit.Capacity, Actor: p.Actor, Reason: p.Reason, CreatedAt: now,
		})
	})
	if err != nil {
		return storage.Budget{}, fmt.Errorf("setting budget of model %s for tenant %s: %w", p.Model, p.TenantID, translate(err))
	}
	return b, nil
}

// GetBudget returns the tenant's budget for the model or ErrNotFound.
func (s *Store) GetBudget(ctx context.Context, tenant hegate.TenantID, model hegate.ModelID) (storage.Budget, error) {
	b, err := scanBudget(s.db.QueryRowContext(ctx,
		`SELECT `+budgetColumns+` FROM budgets WHERE tenant_id = ?1 AND model = ?2`, tenant, model))
	if err != nil {
		return storage.Budget{}, fmt.Errorf("getting budget of model %s: %w", model, err)
	}
	return b, nil
}

// deleteRow runs a DELETE in tx and returns errNoRows if it deleted nothing.
func deleteRow(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return translate(err)
	}
	n, err := res.RowsAffected()
	switch {
	case err != nil:
		return translate(err)
	case n == 0:
		return errNoRows
	}
	return nil
}

// DeleteBudget removes the tenant's budget for the model; see storage.Budgets.
func (s *Store) DeleteBudget(ctx context.Context, tenant hegate.TenantID, model hegate.ModelID, actor, reason string) error {
	if err := validate.DeleteBudget(actor, reason); err != nil {
		return fmt.Errorf("deleting budget: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := deleteRow(ctx, tx, `DELETE FROM budgets WHERE tenant_id = ?1 AND model = ?2`, tenant, model); err != nil {
			return err
		}
		return writeLedger(ctx, tx, storage.LedgerEntry{
			Scope: storage.ScopeTenant, TenantID: tenant, Model: model, Kind: storage.LedgerDelete,
			Actor: actor, Reason: reason, CreatedAt: s.now(),
		})
	})
	if err != nil {
		return fmt.Errorf("deleting budget of model %s: %w", model, err)
	}
	return nil
}

// BudgetUsage returns the tenant's usage of the model's budget in the
// current period; see storage.Budgets. It reads in one transaction.
func (s *Store) BudgetUsage(ctx context.Context, tenant hegate.TenantID, model hegate.ModelID, def storage.BudgetLimit) (storage.BudgetUsage, error) {
	if err := validate.BudgetLimit("default", def); err != nil {
		return storage.BudgetUsage{}, fmt.Errorf("reading budget usage: %w", err)
	}
	var u storage.BudgetUsage
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		l, err := tenantLimit(ctx, tx, tenant, model, def)
		if err != nil {
			return err
		}
		start, _ := l.Period.Bounds(now)
		spent, reserved, err := usageOf(ctx, tx, tenantUsage, usageKey{tenant, model, start})
		u = budgets.Usage(storage.ScopeTenant, tenant, model, l, now, spent, reserved)
		return err
	})
	if err != nil {
		return storage.BudgetUsage{}, fmt.Errorf("reading budget usage of model %s: %w", model, err)
	}
	return u, nil
}

// ListBudgetUsage returns the tenant's usage of every model with a budget
// or a usage row in the current period; see storage.Budgets. It reads in
// one transaction.
func (s *Store) ListBudgetUsage(ctx context.Context, tenant hegate.TenantID, def storage.BudgetLimit) ([]storage.BudgetUsage, error) {
	if err := validate.BudgetLimit("default", def); err != nil {
		return nil, fmt.Errorf("listing budget usage: %w", err)
	}
	var out []storage.BudgetUsage
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		rows, err := tx.QueryContext(ctx, `SELECT `+budgetColumns+` FROM budgets WHERE tenant_id = ?1`, tenant)
		if err != nil {
			return translate(err)
		}
		set, err := collect(rows, scanBudget)
		if err != nil {
			return err
		}
		args := []any{tenant}
		for _, start := range budgets.Starts(now) {
			args = append(args, dbTime(start))
		}
		rows, err = tx.QueryContext(ctx,
			`SELECT model, period_start, spent, reserved FROM budget_usage
			 WHERE tenant_id = ?1 AND period_start IN (?2, ?3, ?4, ?5)`,
			args...)
		if err != nil {
			return translate(err)
		}
		used, err := collect(rows, func(row scanner) (budgets.Row, error) {
			var (
				r     budgets.Row
				start nullTime
			)
			err := row.Scan(&r.Model, &start, &r.Spent, &r.Reserved)
			r.PeriodStart = start.Time
			return r, translate(err)
		})
		if err != nil {
			return err
		}
		out = budgets.List(tenant, set, used, def, now)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing budget usage of tenant %s: %w", tenant, err)
	}
	return out, nil
}

// AdjustBudget adds p.Units to the current period's spent; see
// storage.Budgets.
func (s *Store) AdjustBudget(ctx context.Context, p storage.AdjustBudgetParams, def storage.BudgetLimit) (storage.BudgetUsage, error) {
	if err := validate.AdjustBudget(p, def); err != nil {
		return storage.BudgetUsage{}, fmt.Errorf("adjusting budget: %w", err)
	}
	var u storage.BudgetUsage
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		l, err := tenantLimit(ctx, tx, p.TenantID, p.Model, def)
		if err != nil {
			return err
		}
		start, _ := l.Period.Bounds(now)
		k := usageKey{p.TenantID, p.Model, start}
		// A missing tenant is a foreign-key violation: ErrNotFound.
		if err := ensureUsage(ctx, tx, tenantUsage, k, p.Actor, now); err != nil {
			return err
		}
		var spent, reserved int64
		err = tx.QueryRowContext(ctx, tenantUsage.adjust, tenantUsage.args(k, p.Units)...).Scan(&spent, &reserved)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: spent would go below 0", storage.ErrConflict)
		}
		if err != nil {
			return translate(err)
		}
		u = budgets.Usage(storage.ScopeTenant, p.TenantID, p.Model, l, now, spent, reserved)
		return writeLedger(ctx, tx, storage.LedgerEntry{
			Scope: storage.ScopeTenant, TenantID: p.TenantID, Model: p.Model, PeriodStart: start,
			Kind: storage.LedgerAdjust, Units: p.Units, Actor: p.Actor, Reason: p.Reason, CreatedAt: now,
		})
	})
	if err != nil {
		return storage.BudgetUsage{}, fmt.Errorf("adjusting budget of model %s for tenant %s: %w", p.Model, p.TenantID, err)
	}
	return u, nil
}

// SetGlobalBudget creates or replaces a model's budget across all
// tenants; see storage.Budgets.
func (s *Store) SetGlobalBudget(ctx context.Context, p storage.SetGlobalBudgetParams) (storage.GlobalBudget, error) {
	if err := validate.SetGlobalBudget(p); err != nil {
		return storage.GlobalBudget{}, fmt.Errorf("setting global budget: %w", err)
	}
	var b storage.GlobalBudget
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		var err error
		b, err = scanGlobalBudget(tx.QueryRowContext(ctx,
			`INSERT INTO global_budgets (model, capacity, period, epsilon, delta, updated_at, updated_by)
			 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
			 ON CONFLICT (model) DO UPDATE SET
			     capacity = excluded.capacity, period = excluded.period, epsilon = excluded.epsilon,
			     delta = excluded.delta, updated_at = excluded.updated_at, updated_by = excluded.updated_by
			 RETURNING `+globalBudgetColumns,
			p.Model, p.Limit.Capacity, p.Limit.Period, p.Limit.Epsilon, p.Limit.Delta, dbTime(now), p.Actor))
		if err != nil {
			return err
		}
		return writeLedger(ctx, tx, storage.LedgerEntry{
			Scope: storage.ScopeGlobal, Model: p.Model, Kind: storage.LedgerSet,
			Units: p.Limit.Capacity, Actor: p.Actor, Reason: p.Reason, CreatedAt: now,
		})
	})
	if err != nil {
		return storage.GlobalBudget{}, fmt.Errorf("setting global budget of model %s: %w", p.Model, err)
	}
	return b, nil
}

// DeleteGlobalBudget removes a model's global budget; see storage.Budgets.
func (s *Store) DeleteGlobalBudget(ctx context.Context, model hegate.ModelID, actor, reason string) error {
	if err := validate.DeleteBudget(actor, reason); err != nil {
		return fmt.Errorf("deleting global budget: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := deleteRow(ctx, tx, `DELETE FROM global_budgets WHERE model = ?1`, model); err != nil {
			return err
		}
		return writeLedger(ctx, tx, storage.LedgerEntry{
			Scope: storage.ScopeGlobal, Model: model, Kind: storage.LedgerDelete,
			Actor: actor, Reason: reason, CreatedAt: s.now(),
		})
	})
	if err != nil {
		return fmt.Errorf("deleting global budget of model %s: %w", model, err)
	}
	return nil
}

// GlobalBudgetUsage returns a model's global usage in the current period;
// see storage.Budgets. It reads in one transaction.
func (s *Store) GlobalBudgetUsage(ctx context.Context, model hegate.ModelID) (storage.BudgetUsage, error) {
	var u storage.BudgetUsage
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		l, err := globalLimit(ctx, tx, model)
		if err != nil {
			return err
		}
		start, _ := l.Period.Bounds(now)
		spent, reserved, err := usageOf(ctx, tx, globalUsage, usageKey{"", model, start})
		u = budgets.Usage(storage.ScopeGlobal, "", model, budgets.Limit{BudgetLimit: l}, now, spent, reserved)
		return err
	})
	if err != nil {
		return storage.BudgetUsage{}, fmt.Errorf("reading global budget usage of model %s: %w", model, err)
	}
	return u, nil
}

// Ledger returns the tenant's ledger entries, newest first; see
// storage.Budgets.
func (s *Store) Ledger(ctx context.Context, q storage.LedgerQuery) ([]storage.LedgerEntry, error) {
	if err := validate.Ledger(q); err != nil {
		return nil, fmt.Errorf("reading ledger: %w", err)
	}
	query := `SELECT ` + ledgerColumns + ` FROM budget_ledger WHERE tenant_id = ?1`
	args := []any{q.TenantID}
	if q.Model != "" {
		args = append(args, q.Model)
		query += fmt.Sprintf(` AND model = ?%d`, len(args))
	}
	if q.BeforeID > 0 {
		args = append(args, q.BeforeID)
		query += fmt.Sprintf(` AND id < ?%d`, len(args))
	}
	args = append(args, q.Limit)
	query += fmt.Sprintf(` ORDER BY id DESC LIMIT ?%d`, len(args))
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("reading ledger of tenant %s: %w", q.TenantID, translate(err))
	}
	out, err := collect(rows, scanLedger)
	if err != nil {
		return nil, fmt.Errorf("reading ledger of tenant %s: %w", q.TenantID, err)
	}
	return out, nil
}

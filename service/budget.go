package service

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/dp"
	"github.com/hegate/hegate/storage"
)

// Privacy budgets: what an inference costs, and setting, reading and
// deleting a tenant's budgets.

// Charge is what one inference of a model costs a tenant.
type Charge struct {
	Sigma float64 // noise of each output
	Rho   float64
	Units int64 // rho in store units, rounded up
}

// ChargeFor works out the noise and cost of one inference of m for the
// tenant: the model's mechanism, with the tenant's noise if its budget
// sets one.
func (s *Service) ChargeFor(ctx context.Context, op string, tenant hegate.TenantID, m catalog.Model) (Charge, error) {
	mech := m.Privacy()
	if mech == nil {
		return Charge{}, hegate.E(op, hegate.KindInvalid, nil, "model %s has no privacy mechanism, so no answer of it can be charged: %s (upload it again with an output_range)", m.Name, m.Manifest().PrivacyNote)
	}
	sigma := mech.Sigma
	b, err := s.store.GetBudget(ctx, tenant, m.Name)
	switch {
	case err == nil && m.Builtin() && tenantActor(b.UpdatedBy):
		// Budgets are keyed by name: this one was set by the tenant (an
		// API key or a console user) for its own model of that name, which
		// a built-in model now shadows. A tenant must never set a
		// built-in's budget.
		return Charge{}, hegate.E(op, hegate.KindForbidden, nil, "the budget of model %s was set by the tenant for its own model of that name, and a built-in model of that name now takes its place: the operator must set or delete it (hegate budget set|delete)", m.Name)
	case err == nil && b.NoiseSigma > 0:
		sigma = b.NoiseSigma
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return Charge{}, unavailable(op, fmt.Errorf("reading budget: %w", err))
	}
	limit := b.BudgetLimit
	if errors.Is(err, storage.ErrNotFound) {
		if s.defBudget.Capacity == 0 {
			return Charge{}, hegate.E(op, hegate.KindForbidden, nil, "no privacy budget is set for model %s and this gateway has no default: an administrator sets one (hegate budget set, or PUT /v1/budgets/%s)", m.Name, m.Name)
		}
		limit = s.defBudget
	}
	if sigma > mech.MaxSigma {
		return Charge{}, hegate.E(op, hegate.KindInvalid, nil, "the noise sigma %g set for model %s exceeds the %g its parameters hold; an administrator must lower it", sigma, m.Name, mech.MaxSigma)
	}
	rho, err := mech.RhoAt(sigma)
	if err != nil {
		return Charge{}, hegate.E(op, hegate.KindInternal, err, "")
	}
	units, err := dp.RhoUnitsCeil(rho)
	if err != nil || units <= 0 {
		return Charge{}, hegate.E(op, hegate.KindInvalid, err, "one query of model %s would cost rho %g, which no budget can count", m.Name, rho)
	}
	if int64(units) > limit.Capacity {
		// Waiting for a renewal would not help: say so instead of 429.
		return Charge{}, hegate.E(op, hegate.KindForbidden, nil, "one answer of model %s with noise sigma %g costs rho %s, more than the whole budget (rho %s per %s): an administrator must raise the budget or the noise", m.Name, sigma, units, dp.Rho(limit.Capacity), limit.Period)
	}
	return Charge{Sigma: sigma, Rho: rho, Units: int64(units)}, nil
}

// BudgetStatus is a budget's usage this period with, when the model is
// compiled here, what one query costs and how many are left.
type BudgetStatus struct {
	Usage storage.BudgetUsage
	Query *QueryCost // nil until the model is compiled in this process
}

// QueryCost is the cost of one query for the tenant.
type QueryCost struct {
	NoiseSigma  float64
	Rho         dp.Rho
	Epsilon     float64 // of one query alone, at the budget's delta; 0 if none
	QueriesLeft int64
}

// SpentEpsilon is the epsilon the period's spend and reservations amount
// to at the budget's delta, and what is left of the budget's epsilon; ok
// is false when the budget has no delta to convert at.
func (b BudgetStatus) SpentEpsilon() (spent, left float64, ok bool) {
	u := b.Usage
	if !(u.Limit.Delta > 0 && u.Limit.Delta < 1) {
		return 0, 0, false
	}
	eps, err := dp.ZCDPToEpsilon(dp.Rho(u.Spent+u.Reserved).Float64(), u.Limit.Delta)
	if err != nil {
		return 0, 0, false
	}
	return eps, math.Max(0, u.Limit.Epsilon-eps), true
}

func (s *Service) status(ctx context.Context, tenant hegate.TenantID, u storage.BudgetUsage) BudgetStatus {
	st := BudgetStatus{Usage: u}
	m, ok := s.catalog.Loaded(ctx, tenant, u.Model)
	if !ok {
		return st
	}
	c, err := s.ChargeFor(ctx, "budget", tenant, m)
	if err != nil {
		return st
	}
	q := &QueryCost{NoiseSigma: c.Sigma, Rho: dp.Rho(c.Units), QueriesLeft: u.Left() / c.Units}
	if delta := u.Limit.Delta; delta > 0 && delta < 1 {
		q.Epsilon, _ = dp.ZCDPToEpsilon(c.Rho, delta)
	}
	st.Query = q
	return st
}

// Budgets lists every budget of the tenant set or used this period, and
// the built-in and uploaded models with the default.
func (s *Service) Budgets(ctx context.Context, p Principal) ([]BudgetStatus, error) {
	const op = "budget.list"
	if err := p.requireTenant(op); err != nil {
		return nil, err
	}
	usages, err := s.store.ListBudgetUsage(ctx, p.Tenant, s.defBudget)
	if err != nil {
		return nil, unavailable(op, err)
	}
	seen := map[hegate.ModelID]bool{}
	for _, u := range usages {
		seen[u.Model] = true
	}
	names, err := s.catalog.Names(ctx, p.Tenant)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if seen[name] {
			continue
		}
		u, err := s.store.BudgetUsage(ctx, p.Tenant, name, s.defBudget)
		if err != nil {
			return nil, unavailable(op, err)
		}
		usages = append(usages, u)
	}
	out := make([]BudgetStatus, 0, len(usages))
	for _, u := range usages {
		out = append(out, s.status(ctx, p.Tenant, u))
	}
	return out, nil
}

// Budget is the tenant's budget of one model.
func (s *Service) Budget(ctx context.Context, p Principal, model hegate.ModelID) (BudgetStatus, error) {
	const op = "budget.get"
	if err := p.requireTenant(op); err != nil {
		return BudgetStatus{}, err
	}
	if err := CheckModelName(op, string(model)); err != nil {
		return BudgetStatus{}, err
	}
	u, err := s.store.BudgetUsage(ctx, p.Tenant, model, s.defBudget)
	if err != nil {
		return BudgetStatus{}, unavailable(op, err)
	}
	return s.status(ctx, p.Tenant, u), nil
}

// CheckModelName refuses a model name no model can have (KindInvalid).
func CheckModelName(op, name string) error {
	if err := catalog.CheckName(name); err != nil {
		return hegate.E(op, hegate.KindInvalid, err, "model name: %v", err)
	}
	return nil
}

// SetBudgetParams are the inputs of SetBudget.
type SetBudgetParams struct {
	Model      hegate.ModelID
	Epsilon    float64
	Delta      float64
	Period     string  // day, week, month or never
	NoiseSigma float64 // 0: the model's own
	Reason     string
}

// CanSetBudget reports whether p may set the budget of model (admins, of
// the tenant's own models; operators, of any), for a front door that
// hides the forms of those who may not; SetBudget checks it anyway.
func (s *Service) CanSetBudget(p Principal, model hegate.ModelID) bool {
	return p.canChange() && (p.Role == RoleOperator || !s.catalog.IsBuiltin(model))
}

// SetBudget sets the tenant's budget for one of its uploaded models: the
// tenant owns those. Budgets of built-in models are the operator's: an
// operator principal may set those too. Admins and operators only.
func (s *Service) SetBudget(ctx context.Context, p Principal, params SetBudgetParams) (storage.Budget, error) {
	const op = "budget.set"
	if err := p.requireAdmin(op); err != nil {
		return storage.Budget{}, s.denied(ctx, p, op, string(params.Model), err)
	}
	if err := CheckModelName(op, string(params.Model)); err != nil {
		return storage.Budget{}, err
	}
	if err := p.requireTenant(op); err != nil {
		return storage.Budget{}, err
	}
	builtin := s.catalog.IsBuiltin(params.Model)
	switch {
	case builtin && p.Role != RoleOperator:
		return storage.Budget{}, hegate.E(op, hegate.KindForbidden, nil, "model %s is built in: its budgets are set by the operator of this gateway", params.Model)
	case !builtin:
		vs, err := s.store.ListModelVersions(ctx, p.Tenant, params.Model)
		if err != nil {
			return storage.Budget{}, unavailable(op, err)
		}
		if len(vs) == 0 && p.Role != RoleOperator {
			return storage.Budget{}, hegate.E(op, hegate.KindNotFound, nil, "the tenant has no model %s: budgets are set for the tenant's uploaded models", params.Model)
		}
	}
	if err := CheckReason(params.Reason); err != nil {
		return storage.Budget{}, hegate.E(op, hegate.KindInvalid, nil, "%v", err)
	}
	limit, err := BudgetLimit(params.Epsilon, params.Delta, params.Period)
	if err != nil {
		return storage.Budget{}, hegate.E(op, hegate.KindInvalid, err, "%v", err)
	}
	sigma := params.NoiseSigma
	if !(sigma >= 0) || math.IsInf(sigma, 0) {
		return storage.Budget{}, hegate.E(op, hegate.KindInvalid, nil, "noise_sigma must be a finite number >= 0")
	}
	if m, ok := s.catalog.Loaded(ctx, p.Tenant, params.Model); ok {
		if mech := m.Privacy(); mech != nil && sigma > mech.MaxSigma {
			return storage.Budget{}, hegate.E(op, hegate.KindInvalid, nil, "noise_sigma %g exceeds the %g that model %s's parameters hold", sigma, mech.MaxSigma, params.Model)
		}
	}
	b, err := SetBudgetCarrying(ctx, s.store, storage.SetBudgetParams{
		TenantID: p.Tenant, Model: params.Model, Limit: limit, NoiseSigma: sigma, Actor: p.Actor(), Reason: params.Reason,
	}, s.defBudget)
	if err != nil {
		return storage.Budget{}, err
	}
	s.audit(ctx, p, op, string(params.Model), map[string]any{
		"epsilon": params.Epsilon, "delta": params.Delta, "period": params.Period, "noise_sigma": sigma, "reason": params.Reason,
	})
	return b, nil
}

// DeleteBudget deletes the tenant's budget of a model, so that the
// default applies again (admins, and operators for built-in models).
func (s *Service) DeleteBudget(ctx context.Context, p Principal, model hegate.ModelID, reason string) error {
	const op = "budget.delete"
	if err := p.requireAdmin(op); err != nil {
		return s.denied(ctx, p, op, string(model), err)
	}
	if err := CheckModelName(op, string(model)); err != nil {
		return err
	}
	if s.catalog.IsBuiltin(model) && p.Role != RoleOperator {
		return hegate.E(op, hegate.KindForbidden, nil, "model %s is built in: its budgets are set by the operator of this gateway", model)
	}
	if err := CheckReason(reason); err != nil {
		return hegate.E(op, hegate.KindInvalid, nil, "%v", err)
	}
	err := s.store.DeleteBudget(ctx, p.Tenant, model, p.Actor(), reason)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return notFound(op, err, "no budget is set for model %s", model)
	case err != nil:
		return unavailable(op, err)
	}
	s.audit(ctx, p, op, string(model), map[string]any{"reason": reason})
	return nil
}

// Ledger reads the tenant's privacy ledger, newest first (admins and
// viewers: it names every job of the tenant). q.TenantID is set from the
// principal.
func (s *Service) Ledger(ctx context.Context, p Principal, q storage.LedgerQuery) ([]storage.LedgerEntry, error) {
	const op = "budget.ledger"
	if err := p.requireReader(op); err != nil {
		return nil, err
	}
	q.TenantID = p.Tenant
	if q.Model != "" {
		if err := CheckModelName(op, string(q.Model)); err != nil {
			return nil, err
		}
	}
	if q.Limit < 1 || q.Limit > storage.MaxLedgerEntries {
		return nil, hegate.E(op, hegate.KindInvalid, nil, "limit must be an integer in 1..%d", storage.MaxLedgerEntries)
	}
	entries, err := s.store.Ledger(ctx, q)
	if err != nil {
		return nil, unavailable(op, err)
	}
	return entries, nil
}

// SetBudgetCarrying sets a budget (see storage.Budgets.SetBudget) and,
// when that changes its period while the current period has spend or
// reservations, carries them into the new period as an adjustment: usage
// is kept per period, and without the carry a change from "day" to
// "never" would hand out a fresh budget. Jobs still reserved then settle
// into their old period, so the carry can only overcount. def is the
// default that applied when no budget was set. (A query reserved between
// the two writes is counted in the new period too; it is not refused.)
func SetBudgetCarrying(ctx context.Context, store storage.Budgets, p storage.SetBudgetParams, def storage.BudgetLimit) (storage.Budget, error) {
	const op = "budget.set"
	before, err := store.BudgetUsage(ctx, p.TenantID, p.Model, def)
	if err != nil {
		return storage.Budget{}, unavailable(op, err)
	}
	b, err := store.SetBudget(ctx, p)
	if err != nil {
		return storage.Budget{}, unavailable(op, err)
	}
	carry := before.Spent + before.Reserved
	if before.Limit.Period == p.Limit.Period || carry == 0 {
		return b, nil
	}
	if _, err := store.AdjustBudget(ctx, storage.AdjustBudgetParams{
		TenantID: p.TenantID, Model: p.Model, Units: carry, Actor: p.Actor,
		Reason: fmt.Sprintf("carried over from the %s period that began %s, when the period changed to %s", before.Limit.Period, before.PeriodStart.Format(time.RFC3339), p.Limit.Period),
	}, p.Limit); err != nil {
		return storage.Budget{}, unavailable(op, fmt.Errorf("carrying the spend into the new period: %w", err))
	}
	return b, nil
}

// maxBudgetEpsilon is the largest epsilon a budget may have: far beyond
// any meaningful guarantee, but demonstrations and tests with little noise
// need budgets that large to count their queries at all.
const maxBudgetEpsilon = 1e9

// BudgetLimit converts an (epsilon, delta) budget per period into the
// rho the store enforces (the largest rho whose tight conversion stays
// within it, rounded down).
func BudgetLimit(epsilon, delta float64, period string) (storage.BudgetLimit, error) {
	pr := storage.BudgetPeriod(period)
	if !pr.Valid() {
		return storage.BudgetLimit{}, fmt.Errorf("period %q: want day, week, month or never", period)
	}
	if !(epsilon > 0 && epsilon <= maxBudgetEpsilon) {
		return storage.BudgetLimit{}, fmt.Errorf("epsilon %g: want a number in (0, %g]", epsilon, maxBudgetEpsilon)
	}
	if !(delta > 0 && delta < 1) {
		return storage.BudgetLimit{}, fmt.Errorf("delta %g: want a number in (0, 1)", delta)
	}
	rho, err := dp.RhoForBudget(epsilon, delta)
	if err != nil {
		return storage.BudgetLimit{}, err
	}
	units, err := dp.RhoUnitsFloor(rho)
	if err != nil {
		return storage.BudgetLimit{}, err
	}
	return storage.BudgetLimit{Capacity: int64(units), Period: pr, Epsilon: epsilon, Delta: delta}, nil
}

// CheckReason refuses a ledger reason that is too long or not printable
// text (PostgreSQL refuses NUL and invalid UTF-8; nobody should store them).
func CheckReason(reason string) error {
	if len(reason) > storage.MaxReasonBytes {
		return fmt.Errorf("reason is longer than %d bytes", storage.MaxReasonBytes)
	}
	if !utf8.ValidString(reason) {
		return errors.New("reason is not valid UTF-8")
	}
	for _, c := range reason {
		if unicode.IsControl(c) && c != '\n' && c != '\t' {
			return errors.New("reason holds control characters")
		}
	}
	return nil
}

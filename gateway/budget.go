package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/dp"
	"github.com/hegate/hegate/storage"
)

// Privacy budgets: what an inference costs, the reservation that pays for
// it in the job's transaction, and the /v1/budget API. The rules are
// functions of (ctx, principal, params) so that the console can share them.

// charge is what one inference of a model costs the caller.
type charge struct {
	sigma float64 // noise of each output
	rho   float64
	units int64 // rho in store units, rounded up
}

// chargeFor works out the noise and cost of one inference of m for the
// tenant: the model's mechanism, with the tenant's noise if its budget
// sets one.
func (s *Server) chargeFor(ctx context.Context, op string, tenant hegate.TenantID, m catalog.Model) (charge, error) {
	mech := m.Privacy()
	if mech == nil {
		return charge{}, hegate.E(op, hegate.KindInvalid, nil, "model %s has no privacy mechanism, so no answer of it can be charged: %s (upload it again with an output_range)", m.Name, m.Manifest().PrivacyNote)
	}
	sigma := mech.Sigma
	b, err := s.cfg.Store.GetBudget(ctx, tenant, m.Name)
	switch {
	case err == nil && m.Builtin() && strings.HasPrefix(b.UpdatedBy, actorAPIKeyPrefix):
		// Budgets are keyed by name: this one was set through the API for
		// the tenant's own model of that name, which a built-in model now
		// shadows. A tenant must never set a built-in's budget.
		return charge{}, hegate.E(op, hegate.KindForbidden, nil, "the budget of model %s was set by the tenant for its own model of that name, and a built-in model of that name now takes its place: the operator must set or delete it (hegate budget set|delete)", m.Name)
	case err == nil && b.NoiseSigma > 0:
		sigma = b.NoiseSigma
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return charge{}, hegate.E(op, hegate.KindUnavailable, fmt.Errorf("reading budget: %w", err), "")
	}
	limit := b.BudgetLimit
	if errors.Is(err, storage.ErrNotFound) {
		if s.cfg.DefaultBudget.Capacity == 0 {
			return charge{}, hegate.E(op, hegate.KindForbidden, nil, "no privacy budget is set for model %s and this gateway has no default: an administrator sets one (hegate budget set, or PUT /v1/budgets/%s)", m.Name, m.Name)
		}
		limit = s.cfg.DefaultBudget
	}
	if sigma > mech.MaxSigma {
		return charge{}, hegate.E(op, hegate.KindInvalid, nil, "the noise sigma %g set for model %s exceeds the %g its parameters hold; an administrator must lower it", sigma, m.Name, mech.MaxSigma)
	}
	rho, err := mech.RhoAt(sigma)
	if err != nil {
		return charge{}, hegate.E(op, hegate.KindInternal, err, "")
	}
	units, err := dp.RhoUnitsCeil(rho)
	if err != nil || units <= 0 {
		return charge{}, hegate.E(op, hegate.KindInvalid, err, "one query of model %s would cost rho %g, which no budget can count", m.Name, rho)
	}
	if int64(units) > limit.Capacity {
		// Waiting for a renewal would not help: say so instead of 429.
		return charge{}, hegate.E(op, hegate.KindForbidden, nil, "one answer of model %s with noise sigma %g costs rho %s, more than the whole budget (rho %s per %s): an administrator must raise the budget or the noise", m.Name, sigma, units, dp.Rho(limit.Capacity), limit.Period)
	}
	return charge{sigma: sigma, rho: rho, units: int64(units)}, nil
}

// createPaidJob creates the job and reserves its cost in one transaction:
// either both commit or neither. A replay of an Idempotency-Key returns
// the existing job and charges nothing.
func (s *Server) createPaidJob(ctx context.Context, p Principal, m catalog.Model, params storage.CreateJobParams, c charge) (storage.Job, bool, error) {
	params.NoiseSigma = c.sigma
	var (
		job     storage.Job
		created bool
	)
	err := s.cfg.Store.InTx(ctx, func(tx storage.Tx) error {
		var err error
		job, created, err = tx.CreateJob(ctx, params)
		if err != nil || !created {
			return err
		}
		_, err = tx.ReserveBudget(ctx, storage.ReserveBudgetParams{
			JobID:   job.ID,
			Cost:    c.units,
			Default: s.cfg.DefaultBudget,
			Global:  m.Builtin(),
			Actor:   p.actor(),
		})
		return err
	})
	return job, created, err
}

// actorAPIKeyPrefix starts the ledger actor of a principal.
const actorAPIKeyPrefix = "api-key:"

// actorDevicePrefix starts the ledger actor of a device principal.
const actorDevicePrefix = "device:"

// actor names the principal in the ledger and the audit fields.
func (p Principal) actor() string {
	if p.Device != "" {
		return actorDevicePrefix + string(p.Device)
	}
	return actorAPIKeyPrefix + string(p.APIKey)
}

// budgetProblem turns a refused reservation into the client's error: 429,
// with Retry-After at the renewal when there is one.
func budgetProblem(op string, m hegate.ModelID, err error) error {
	var be *storage.BudgetExhaustedError
	if !errors.As(err, &be) {
		return nil
	}
	e := hegate.E(op, hegate.KindBudgetExhausted, err, "the privacy budget of model %s has rho %s left this period; one query costs %s",
		m, dp.Rho(be.Left), dp.Rho(be.Cost))
	if be.Scope == storage.ScopeGlobal {
		// What is left of a global budget tells of other tenants' use.
		e = hegate.E(op, hegate.KindBudgetExhausted, err, "the global privacy budget of model %s, shared by all tenants, cannot pay for another query this period", m)
	}
	if be.RenewsAt.IsZero() {
		return e
	}
	return &retryAfter{err: hegate.E(op, hegate.KindBudgetExhausted, err, "%s; it renews at %s", hegate.DetailOf(e), be.RenewsAt.UTC().Format(time.RFC3339)), at: be.RenewsAt}
}

// retryAfter carries the time a client may try again (Retry-After).
type retryAfter struct {
	err error
	at  time.Time
}

func (e *retryAfter) Error() string { return e.err.Error() }
func (e *retryAfter) Unwrap() error { return e.err }

// setRetryAfter sets Retry-After when err carries a time to retry at.
func setRetryAfter(w http.ResponseWriter, err error, now time.Time) {
	var ra *retryAfter
	if !errors.As(err, &ra) {
		return
	}
	secs := int64(math.Ceil(ra.at.Sub(now).Seconds()))
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
}

// budgetView is the JSON view of a usage.
func budgetView(u storage.BudgetUsage, q *api.QueryCost) api.Budget {
	left := u.Left()
	b := api.Budget{
		Model:       string(u.Model),
		Scope:       string(u.Scope),
		Default:     u.Default,
		Epsilon:     u.Limit.Epsilon,
		Delta:       u.Limit.Delta,
		Period:      string(u.Limit.Period),
		PeriodStart: u.PeriodStart,
		CapacityRho: dp.Rho(u.Limit.Capacity).String(),
		SpentRho:    dp.Rho(u.Spent).String(),
		ReservedRho: dp.Rho(u.Reserved).String(),
		LeftRho:     dp.Rho(left).String(),
		Query:       q,
	}
	if !u.PeriodEnd.IsZero() {
		end := u.PeriodEnd
		b.RenewsAt = &end
	}
	if u.Limit.Delta > 0 && u.Limit.Delta < 1 {
		if eps, err := dp.ZCDPToEpsilon(dp.Rho(u.Spent+u.Reserved).Float64(), u.Limit.Delta); err == nil {
			b.SpentEpsilon = eps
			b.RemainingEpsilon = math.Max(0, u.Limit.Epsilon-eps)
		}
	}
	return b
}

// queryCost is the cost of one query of the usage's model for the tenant,
// and how many the rest of the period buys, if the model is compiled here;
// nil otherwise (its cost shows once it is used).
func (s *Server) queryCost(ctx context.Context, tenant hegate.TenantID, u storage.BudgetUsage) *api.QueryCost {
	m, ok := s.catalog.Loaded(ctx, tenant, u.Model)
	if !ok {
		return nil
	}
	c, err := s.chargeFor(ctx, "budget", tenant, m)
	if err != nil {
		return nil
	}
	q := &api.QueryCost{NoiseSigma: c.sigma, Rho: dp.Rho(c.units).String(), QueriesLeft: u.Left() / c.units}
	if delta := u.Limit.Delta; delta > 0 && delta < 1 {
		q.Epsilon, _ = dp.ZCDPToEpsilon(c.rho, delta)
	}
	return q
}

// getBudget answers GET /v1/budget: every budget of the caller's tenant
// that is set or used this period, and the built-in and uploaded models
// with the default.
func (s *Server) getBudget(w http.ResponseWriter, r *http.Request) {
	const op = "budget.list"
	ctx := r.Context()
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	usages, err := s.cfg.Store.ListBudgetUsage(ctx, p.Tenant, s.cfg.DefaultBudget)
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindUnavailable, err, ""))
		return
	}
	seen := map[hegate.ModelID]bool{}
	for _, u := range usages {
		seen[u.Model] = true
	}
	names, err := s.catalog.Names(ctx, p.Tenant)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, name := range names {
		if seen[name] {
			continue
		}
		u, err := s.cfg.Store.BudgetUsage(ctx, p.Tenant, name, s.cfg.DefaultBudget)
		if err != nil {
			s.fail(w, r, hegate.E(op, hegate.KindUnavailable, err, ""))
			return
		}
		usages = append(usages, u)
	}
	list := api.BudgetList{Budgets: make([]api.Budget, 0, len(usages))}
	for _, u := range usages {
		list.Budgets = append(list.Budgets, budgetView(u, s.queryCost(ctx, p.Tenant, u)))
	}
	writeJSON(w, http.StatusOK, list)
}

// getModelBudget answers GET /v1/budget/{model}.
func (s *Server) getModelBudget(w http.ResponseWriter, r *http.Request) {
	const op = "budget.get"
	ctx := r.Context()
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	name, err := modelParam(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	u, err := s.cfg.Store.BudgetUsage(ctx, p.Tenant, name, s.cfg.DefaultBudget)
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindUnavailable, err, ""))
		return
	}
	writeJSON(w, http.StatusOK, budgetView(u, s.queryCost(ctx, p.Tenant, u)))
}

// modelParam is the {model} of a budget route, checked like a model name.
func modelParam(r *http.Request, op string) (hegate.ModelID, error) {
	name := chi.URLParam(r, "model")
	if err := catalog.CheckName(name); err != nil {
		return "", hegate.E(op, hegate.KindInvalid, err, "model name: %v", err)
	}
	return hegate.ModelID(name), nil
}

// maxBudgetBody bounds a budget request body.
const maxBudgetBody = 16 << 10

// SetBudgetParams are the inputs of SetBudget.
type SetBudgetParams struct {
	Model   hegate.ModelID
	Request api.SetBudgetRequest
}

// SetBudget sets the tenant's budget for one of its uploaded models: the
// tenant owns those. Budgets of built-in models are the operator's
// (hegate budget set, on the server). Only an admin key may.
func (s *Server) SetBudget(ctx context.Context, p Principal, params SetBudgetParams) (storage.Budget, error) {
	const op = "budget.set"
	if err := p.requireAdmin(op); err != nil {
		return storage.Budget{}, err
	}
	if s.catalog.IsBuiltin(params.Model) {
		return storage.Budget{}, hegate.E(op, hegate.KindForbidden, nil, "model %s is built in: its budgets are set by the operator of this gateway", params.Model)
	}
	vs, err := s.cfg.Store.ListModelVersions(ctx, p.Tenant, params.Model)
	if err != nil {
		return storage.Budget{}, hegate.E(op, hegate.KindUnavailable, err, "")
	}
	if len(vs) == 0 {
		return storage.Budget{}, hegate.E(op, hegate.KindNotFound, nil, "the tenant has no model %s: budgets are set for the tenant's uploaded models", params.Model)
	}
	if err := checkReason(params.Request.Reason); err != nil {
		return storage.Budget{}, hegate.E(op, hegate.KindInvalid, nil, "%v", err)
	}
	limit, err := BudgetLimit(params.Request.Epsilon, params.Request.Delta, params.Request.Period)
	if err != nil {
		return storage.Budget{}, hegate.E(op, hegate.KindInvalid, err, "%v", err)
	}
	sigma := params.Request.NoiseSigma
	if !(sigma >= 0) || math.IsInf(sigma, 0) {
		return storage.Budget{}, hegate.E(op, hegate.KindInvalid, nil, "noise_sigma must be a finite number >= 0")
	}
	if m, ok := s.catalog.Loaded(ctx, p.Tenant, params.Model); ok {
		if mech := m.Privacy(); mech != nil && sigma > mech.MaxSigma {
			return storage.Budget{}, hegate.E(op, hegate.KindInvalid, nil, "noise_sigma %g exceeds the %g that model %s's parameters hold", sigma, mech.MaxSigma, params.Model)
		}
	}
	return SetBudgetCarrying(ctx, s.cfg.Store, storage.SetBudgetParams{
		TenantID: p.Tenant, Model: params.Model, Limit: limit, NoiseSigma: sigma, Actor: p.actor(), Reason: params.Request.Reason,
	}, s.cfg.DefaultBudget)
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
		return storage.Budget{}, hegate.E(op, hegate.KindUnavailable, err, "")
	}
	b, err := store.SetBudget(ctx, p)
	if err != nil {
		return storage.Budget{}, hegate.E(op, hegate.KindUnavailable, err, "")
	}
	carry := before.Spent + before.Reserved
	if before.Limit.Period == p.Limit.Period || carry == 0 {
		return b, nil
	}
	if _, err := store.AdjustBudget(ctx, storage.AdjustBudgetParams{
		TenantID: p.TenantID, Model: p.Model, Units: carry, Actor: p.Actor,
		Reason: fmt.Sprintf("carried over from the %s period that began %s, when the period changed to %s", before.Limit.Period, before.PeriodStart.Format(time.RFC3339), p.Limit.Period),
	}, p.Limit); err != nil {
		return storage.Budget{}, hegate.E(op, hegate.KindUnavailable, fmt.Errorf("carrying the spend into the new period: %w", err), "")
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

func (s *Server) putBudget(w http.ResponseWriter, r *http.Request) {
	const op = "budget.set"
	ctx := r.Context()
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	name, err := modelParam(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req api.SetBudgetRequest
	if err := decodeBody(r, op, maxBudgetBody, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.SetBudget(ctx, p, SetBudgetParams{Model: name, Request: req}); err != nil {
		s.fail(w, r, err)
		return
	}
	u, err := s.cfg.Store.BudgetUsage(ctx, p.Tenant, name, s.cfg.DefaultBudget)
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindUnavailable, err, ""))
		return
	}
	writeJSON(w, http.StatusOK, budgetView(u, s.queryCost(ctx, p.Tenant, u)))
}

func (s *Server) deleteBudget(w http.ResponseWriter, r *http.Request) {
	const op = "budget.delete"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := p.requireAdmin(op); err != nil {
		s.fail(w, r, err)
		return
	}
	name, err := modelParam(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.catalog.IsBuiltin(name) {
		s.fail(w, r, hegate.E(op, hegate.KindForbidden, nil, "model %s is built in: its budgets are set by the operator of this gateway", name))
		return
	}
	reason := r.URL.Query().Get("reason")
	if err := checkReason(reason); err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindInvalid, nil, "%v", err))
		return
	}
	err = s.cfg.Store.DeleteBudget(r.Context(), p.Tenant, name, p.actor(), reason)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		s.fail(w, r, hegate.E(op, hegate.KindNotFound, err, "no budget is set for model %s", name))
	case err != nil:
		s.fail(w, r, hegate.E(op, hegate.KindUnavailable, err, ""))
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// getLedger answers GET /v1/budget/ledger?model=&before=&limit=, for
// admin keys: it names every job of the tenant.
func (s *Server) getLedger(w http.ResponseWriter, r *http.Request) {
	const op = "budget.ledger"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := p.requireAdmin(op); err != nil {
		s.fail(w, r, err)
		return
	}
	q := storage.LedgerQuery{TenantID: p.Tenant, Limit: 100}
	v := r.URL.Query()
	if m := v.Get("model"); m != "" {
		if err := catalog.CheckName(m); err != nil {
			s.fail(w, r, hegate.E(op, hegate.KindInvalid, err, "model: %v", err))
			return
		}
		q.Model = hegate.ModelID(m)
	}
	for _, f := range []struct {
		name string
		dst  *int64
		max  int64
	}{{"before", &q.BeforeID, math.MaxInt64}, {"limit", nil, storage.MaxLedgerEntries}} {
		raw := v.Get(f.name)
		if raw == "" {
			continue
		}
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 1 || n > f.max {
			s.fail(w, r, hegate.E(op, hegate.KindInvalid, nil, "%s must be an integer in 1..%d", f.name, f.max))
			return
		}
		if f.dst != nil {
			*f.dst = n
		} else {
			q.Limit = int(n)
		}
	}
	entries, err := s.cfg.Store.Ledger(r.Context(), q)
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindUnavailable, err, ""))
		return
	}
	out := api.Ledger{Entries: make([]api.LedgerEntry, 0, len(entries))}
	for _, e := range entries {
		out.Entries = append(out.Entries, api.LedgerEntry{
			ID: e.ID, Scope: string(e.Scope), Model: string(e.Model), PeriodStart: e.PeriodStart, Kind: e.Kind,
			Rho: dp.Rho(e.Units).String(), JobID: string(e.JobID), Actor: e.Actor, Reason: e.Reason, CreatedAt: e.CreatedAt,
		})
	}
	if len(entries) == q.Limit {
		next := url.Values{"before": {strconv.FormatInt(entries[len(entries)-1].ID, 10)}, "limit": {strconv.Itoa(q.Limit)}}
		if q.Model != "" {
			next.Set("model", string(q.Model))
		}
		out.Next = "/v1/budget/ledger?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

// decodeBody reads a JSON body of at most limit bytes into v, refusing
// unknown fields.
func decodeBody(r *http.Request, op string, limit int64, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return hegate.E(op, hegate.KindInvalid, err, "reading the body: %v", err)
	}
	if int64(len(b)) > limit {
		return hegate.E(op, hegate.KindTooLarge, nil, "the body is larger than %d bytes", limit)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return hegate.E(op, hegate.KindInvalid, err, "the body is not the expected JSON: %v", err)
	}
	return nil
}

// checkReason refuses a ledger reason that is too long or not printable
// text (PostgreSQL refuses NUL and invalid UTF-8; nobody should store them).
func checkReason(reason string) error {
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

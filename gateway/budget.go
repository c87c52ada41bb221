package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/dp"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// Privacy budgets over HTTP: /v1/budget and /v1/budgets. The rules (what a
// query costs, who may set a budget) are package service's.

// setRetryAfter sets Retry-After when err carries a time to retry at.
func setRetryAfter(w http.ResponseWriter, err error, now time.Time) {
	var ra *service.RetryAfterError
	if !errors.As(err, &ra) {
		return
	}
	secs := int64(math.Ceil(ra.At.Sub(now).Seconds()))
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
}

// budgetView is the JSON view of a budget's status.
func budgetView(st service.BudgetStatus) api.Budget {
	u := st.Usage
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
	}
	if q := st.Query; q != nil {
		b.Query = &api.QueryCost{NoiseSigma: q.NoiseSigma, Rho: q.Rho.String(), QueriesLeft: q.QueriesLeft, Epsilon: q.Epsilon}
	}
	if !u.PeriodEnd.IsZero() {
		end := u.PeriodEnd
		b.RenewsAt = &end
	}
	if spent, rest, ok := st.SpentEpsilon(); ok {
		b.SpentEpsilon, b.RemainingEpsilon = spent, rest
	}
	return b
}

// getBudget answers GET /v1/budget: every budget of the caller's tenant
// that is set or used this period, and the built-in and uploaded models
// with the default.
func (s *Server) getBudget(w http.ResponseWriter, r *http.Request) {
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sts, err := s.svc.Budgets(r.Context(), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list := api.BudgetList{Budgets: make([]api.Budget, 0, len(sts))}
	for _, st := range sts {
		list.Budgets = append(list.Budgets, budgetView(st))
	}
	writeJSON(w, http.StatusOK, list)
}

// getModelBudget answers GET /v1/budget/{model}.
func (s *Server) getModelBudget(w http.ResponseWriter, r *http.Request) {
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	st, err := s.svc.Budget(r.Context(), p, hegate.ModelID(chi.URLParam(r, "model")))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, budgetView(st))
}

// modelParam is the {model} of a route, checked like a model name.
func modelParam(r *http.Request, op string) (hegate.ModelID, error) {
	name := chi.URLParam(r, "model")
	if err := service.CheckModelName(op, name); err != nil {
		return "", err
	}
	return hegate.ModelID(name), nil
}

// maxBudgetBody bounds a budget request body.
const maxBudgetBody = 16 << 10

func (s *Server) putBudget(w http.ResponseWriter, r *http.Request) {
	const op = "budget.set"
	ctx := r.Context()
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req api.SetBudgetRequest
	if err := decodeBody(r, op, maxBudgetBody, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	name := hegate.ModelID(chi.URLParam(r, "model"))
	if _, err := s.svc.SetBudget(ctx, p, service.SetBudgetParams{
		Model: name, Epsilon: req.Epsilon, Delta: req.Delta, Period: req.Period, NoiseSigma: req.NoiseSigma, Reason: req.Reason,
	}); err != nil {
		s.fail(w, r, err)
		return
	}
	st, err := s.svc.Budget(ctx, p, name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, budgetView(st))
}

func (s *Server) deleteBudget(w http.ResponseWriter, r *http.Request) {
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.svc.DeleteBudget(r.Context(), p, hegate.ModelID(chi.URLParam(r, "model")), r.URL.Query().Get("reason")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// getLedger answers GET /v1/budget/ledger?model=&before=&limit=.
func (s *Server) getLedger(w http.ResponseWriter, r *http.Request) {
	const op = "budget.ledger"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := storage.LedgerQuery{Limit: 100}
	v := r.URL.Query()
	q.Model = hegate.ModelID(v.Get("model"))
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
	entries, err := s.svc.Ledger(r.Context(), p, q)
	if err != nil {
		s.fail(w, r, err)
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

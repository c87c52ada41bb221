package web

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/dp"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// The privacy budget page: each model's budget and where it stands this
// period, a burn-down chart per model that refreshes itself (htmx), the
// forms that set and delete a budget, and the ledger.

const (
	// budgetLedgerPage is the number of ledger entries per page.
	budgetLedgerPage = 50
	// burnMaxEntries bounds the ledger entries read for one chart.
	burnMaxEntries = 2000
	// burnMaxCharts bounds the charts drawn (each reads the ledger).
	burnMaxCharts = 20
	// budgetFormOp names the console's own refusals of a budget form.
	budgetFormOp = "console.budget"
)

// budgetPeriods are the choices of a budget's period, in order.
var budgetPeriods = []string{string(storage.BudgetDaily), string(storage.BudgetWeekly), string(storage.BudgetMonthly), string(storage.BudgetNever)}

type budgetData struct {
	Rows    []budgetRow
	Charts  budgetCharts
	Ledger  ledgerView
	CanEdit bool
	// Orphan is a set-budget error for a model without a row (shown at
	// the top of the page).
	Orphan string
}

// budgetRow is one model's budget.
type budgetRow struct {
	Model    hegate.ModelID
	Builtin  bool
	Default  bool // no budget is set: the gateway's default applies
	Epsilon  string
	Delta    string
	Period   string
	Capacity string // rho per period
	Spent    string
	Reserved string
	Left     string
	// EpsOK: the epsilon spent and left could be worked out (the budget
	// has a delta).
	EpsOK       bool
	EpsSpent    string
	EpsLeft     string
	QueryCost   string // one query's rho (and epsilon), "" when unknown here
	QueriesLeft string
	NoiseSigma  string // the tenant's noise, "" for the model's own
	Renews      string
	// CanSet: the form is shown (an admin for the tenant's own models, an
	// operator for every model); the service decides in any case.
	CanSet bool
	Form   budgetForm
}

// budgetForm is a model's set-budget form: the values to show again and
// the errors by field name (epsilon, delta, period, noise_sigma, reason).
type budgetForm struct {
	ID     string // id prefix of the form's controls
	Open   bool   // the <details> starts open (after an error)
	Error  string // an error that names no field
	Fields []formField
}

// formField is one labelled control of a form, rendered by the "field"
// template of a page.
type formField struct {
	ID, Name, Label string
	Type            string // text, number, select, checkbox, file
	Value, Hint     string
	Error           string
	Choices         []formChoice
	Checked         bool
	Required        bool
	Accept          string // file inputs
}

type formChoice struct {
	Value, Label string
	Selected     bool
}

// DescribedBy is the ids of the field's hint and error, for
// aria-describedby.
func (f formField) DescribedBy() string {
	var ids []string
	if f.Hint != "" {
		ids = append(ids, f.ID+"-hint")
	}
	if f.Error != "" {
		ids = append(ids, f.ID+"-error")
	}
	return strings.Join(ids, " ")
}

func choices(values []string, labels map[string]string, selected string) []formChoice {
	out := make([]formChoice, 0, len(values))
	for _, v := range values {
		l := labels[v]
		if l == "" {
			l = v
		}
		out = append(out, formChoice{Value: v, Label: l, Selected: v == selected})
	}
	return out
}

// budgetCharts is the self-refreshing chart region.
type budgetCharts struct {
	Charts  []budgetChart
	Omitted int // budgets without a chart (over burnMaxCharts)
	Error   string
}

type budgetChart struct {
	ID      string // the chart element's id; the island is ID+"-data"
	Model   hegate.ModelID
	Heading string
	Summary string // the chart in words
	Note    string // what the chart does not cover
	Spec    chartIsland
}

// chartIsland is the JSON a data-chart island holds (see console.js). It
// is passed to the template as a value: html/template marshals it with
// encoding/json and escapes it for the script element.
type chartIsland struct {
	Label  string    `json:"label"`
	X      []int64   `json:"x"`
	Y      []float64 `json:"y"`
	Step   bool      `json:"step"`
	Total  float64   `json:"total,omitempty"`
	XLabel string    `json:"xLabel,omitempty"`
	YLabel string    `json:"yLabel,omitempty"`
}

// ledgerView is one page of the ledger.
type ledgerView struct {
	Model   string // the filter, "" for every model
	Models  []formChoice
	Entries []ledgerRow
	Older   string // the link to the next page, "" at the end
	Newest  bool   // the first page
}

type ledgerRow struct {
	ID     int64
	At     string
	Model  hegate.ModelID
	Scope  string
	Kind   string
	Units  string // rho
	JobID  hegate.JobID
	Actor  string
	Reason string
	Period string
	Badge  string
}

func (c *Console) budgetPage() page {
	return page{
		path: Prefix + "/budget",
		get:  c.budget,
		gets: map[string]http.HandlerFunc{"/charts": c.budgetChartsFragment},
		posts: map[string]http.HandlerFunc{
			"/set":    c.setBudget,
			"/delete": c.deleteBudget,
		},
	}
}

func (c *Console) budget(w http.ResponseWriter, r *http.Request) {
	data, err := c.budgetPageData(r, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "budget", frame(r, "Privacy budget", "budget", data, doneFlash(w, r)...))
}

func (c *Console) budgetChartsFragment(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	sts, err := c.svc.Budgets(r.Context(), p)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.fragment(w, r, "budget", "charts", c.burnCharts(r.Context(), p, sts))
}

// budgetPageData reads the page; form, when set, is the submitted form of
// one model to show again with its errors.
func (c *Console) budgetPageData(r *http.Request, form *submittedBudget) (budgetData, error) {
	ctx := r.Context()
	p := principal(r)
	sts, err := c.svc.Budgets(ctx, p)
	if err != nil {
		return budgetData{}, err
	}
	data := budgetData{CanEdit: canEdit(p.Role)}
	now := c.svc.Now()
	matched := false
	for _, st := range sts {
		row := budgetRowOf(st, now)
		row.Builtin = c.svc.Catalog().IsBuiltin(st.Usage.Model)
		row.CanSet = data.CanEdit && (!row.Builtin || p.Role == service.RoleOperator)
		values := budgetFormValues{
			Epsilon: fmtFloat(st.Usage.Limit.Epsilon), Delta: fmtFloat(st.Usage.Limit.Delta),
			Period: string(st.Usage.Limit.Period),
		}
		if st.Usage.NoiseSigma > 0 {
			values.NoiseSigma = fmtFloat(st.Usage.NoiseSigma)
		}
		var errs map[string]string
		formErr := ""
		open := false
		if form != nil && form.Model == string(st.Usage.Model) {
			values, errs, formErr, open, matched = form.Values, form.Errors, form.Error, true, true
		}
		row.Form = budgetFormOf(st.Usage.Model, values, errs, formErr, open)
		data.Rows = append(data.Rows, row)
	}
	if form != nil && !matched {
		var msgs []string
		if form.Error != "" {
			msgs = append(msgs, form.Error)
		}
		for _, k := range []string{"model", "epsilon", "delta", "period", "noise_sigma", "reason"} {
			if e := form.Errors[k]; e != "" {
				msgs = append(msgs, e)
			}
		}
		data.Orphan = fmt.Sprintf("Model %s: %s", truncate(form.Model, 80), strings.Join(msgs, " "))
	}
	data.Charts = c.burnCharts(ctx, p, sts)
	ledger, err := c.ledgerPage(ctx, p, r, sts)
	if err != nil {
		return budgetData{}, err
	}
	data.Ledger = ledger
	return data, nil
}

func budgetRowOf(st service.BudgetStatus, now time.Time) budgetRow {
	u := st.Usage
	row := budgetRow{
		Model: u.Model, Default: u.Default,
		Epsilon: fmtFloat(u.Limit.Epsilon), Delta: fmtFloat(u.Limit.Delta), Period: string(u.Limit.Period),
		Capacity: rhoText(u.Limit.Capacity), Spent: rhoText(u.Spent), Reserved: rhoText(u.Reserved), Left: rhoText(u.Left()),
		QueriesLeft: "unknown until the model is loaded here",
	}
	if spent, left, ok := st.SpentEpsilon(); ok {
		row.EpsOK, row.EpsSpent, row.EpsLeft = true, fmtFloat(spent), fmtFloat(left)
	}
	if q := st.Query; q != nil {
		row.QueriesLeft = strconv.FormatInt(q.QueriesLeft, 10)
		row.QueryCost = "rho " + rhoText(int64(q.Rho))
		if q.Epsilon > 0 {
			row.QueryCost += " (epsilon " + fmtFloat(q.Epsilon) + ")"
		}
		row.QueryCost += ", noise sigma " + fmtFloat(q.NoiseSigma)
	}
	if u.NoiseSigma > 0 {
		row.NoiseSigma = fmtFloat(u.NoiseSigma)
	}
	switch {
	case u.PeriodEnd.IsZero():
		row.Renews = "never"
	default:
		row.Renews = stampUTC(u.PeriodEnd) + " (in " + untilText(now, u.PeriodEnd) + ")"
	}
	return row
}

// budgetFormValues are the values of a set-budget form.
type budgetFormValues struct {
	Epsilon, Delta, Period, NoiseSigma, Reason string
}

// submittedBudget is a set-budget form that the service refused.
type submittedBudget struct {
	Model  string
	Values budgetFormValues
	Errors map[string]string
	Error  string
	Open   bool
}

func budgetFormOf(model hegate.ModelID, v budgetFormValues, errs map[string]string, formErr string, open bool) budgetForm {
	id := "budget-" + string(model)
	f := budgetForm{ID: id, Open: open || formErr != "" || len(errs) > 0, Error: formErr}
	f.Fields = []formField{
		{ID: id + "-epsilon", Name: "epsilon", Label: "Epsilon per period", Type: "number", Value: v.Epsilon, Required: true, Error: errs["epsilon"],
			Hint: "The (epsilon, delta) guarantee the tenant's answers of this model keep per period."},
		{ID: id + "-delta", Name: "delta", Label: "Delta", Type: "number", Value: v.Delta, Required: true, Error: errs["delta"],
			Hint: "Between 0 and 1, say 1e-6."},
		{ID: id + "-period", Name: "period", Label: "Renews every", Type: "select", Error: errs["period"],
			Choices: choices(budgetPeriods, map[string]string{"day": "day (UTC)", "week": "week (ISO, from Monday)", "month": "month", "never": "never (one budget for good)"}, v.Period)},
		{ID: id + "-noise", Name: "noise_sigma", Label: "Noise sigma (optional)", Type: "number", Value: v.NoiseSigma, Error: errs["noise_sigma"],
			Hint: "Leave empty for the model's own noise. More noise makes each answer cheaper."},
		{ID: id + "-reason", Name: "reason", Label: "Reason", Type: "text", Value: v.Reason, Error: errs["reason"],
			Hint: "Kept in the ledger with the change."},
	}
	return f
}

func (c *Console) setBudget(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, err)
		return
	}
	f := r.PostForm
	sub := &submittedBudget{
		Model:  strings.TrimSpace(f.Get("model")),
		Values: budgetFormValues{Epsilon: f.Get("epsilon"), Delta: f.Get("delta"), Period: f.Get("period"), NoiseSigma: f.Get("noise_sigma"), Reason: f.Get("reason")},
		Errors: map[string]string{},
	}
	params := service.SetBudgetParams{Model: hegate.ModelID(sub.Model), Period: sub.Values.Period, Reason: sub.Values.Reason}
	number := func(field, v string, dst *float64, required bool) {
		v = strings.TrimSpace(v)
		if v == "" {
			if required {
				sub.Errors[field] = "Enter a number."
			}
			return
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			sub.Errors[field] = fmt.Sprintf("%q is not a number.", truncate(v, 40))
			return
		}
		*dst = x
	}
	number("epsilon", sub.Values.Epsilon, &params.Epsilon, true)
	number("delta", sub.Values.Delta, &params.Delta, true)
	number("noise_sigma", sub.Values.NoiseSigma, &params.NoiseSigma, false)
	if sub.Model == "" {
		sub.Errors["model"] = "Name the model."
	}
	if len(sub.Errors) == 0 {
		_, err := c.svc.SetBudget(r.Context(), principal(r), params)
		if err == nil {
			seeOther(w, r, Prefix+"/budget", fmt.Sprintf("The budget of model %s is now epsilon %s, delta %s per %s.", sub.Model, fmtFloat(params.Epsilon), fmtFloat(params.Delta), params.Period))
			return
		}
		if !placeFormError(err, sub.Errors, &sub.Error, []string{"epsilon", "delta", "period", "noise_sigma", "reason"}) {
			c.fail(w, r, err)
			return
		}
	}
	data, err := c.budgetPageData(r, sub)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusUnprocessableEntity, "budget", frame(r, "Privacy budget", "budget", data))
}

// placeFormError places a KindInvalid error of the service in a form: next to
// the field it names (a *service.FieldError, or a message that begins
// with a field's name), else in formErr. It reports false for any other
// error, which the caller answers with c.fail.
func placeFormError(err error, errs map[string]string, formErr *string, fields []string) bool {
	if fe, ok := fieldErrors(err); ok {
		for k, v := range fe {
			errs[k] = v
		}
		return true
	}
	if hegate.KindOf(err) != hegate.KindInvalid {
		return false
	}
	detail := hegate.DetailOf(err)
	if field := fieldNamed(detail, fields); field != "" {
		errs[field] = detail
		return true
	}
	*formErr = detail
	return true
}

// fieldNamed is the field a message begins with ("epsilon 0: want ..."),
// or "".
func fieldNamed(msg string, fields []string) string {
	for _, f := range fields {
		if strings.HasPrefix(msg, f+" ") || strings.HasPrefix(msg, f+":") || strings.HasPrefix(msg, f+"=") {
			return f
		}
	}
	return ""
}

func (c *Console) deleteBudget(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, err)
		return
	}
	model := strings.TrimSpace(r.PostForm.Get("model"))
	if err := c.svc.DeleteBudget(r.Context(), principal(r), hegate.ModelID(model), r.PostForm.Get("reason")); err != nil {
		c.fail(w, r, err)
		return
	}
	seeOther(w, r, Prefix+"/budget", fmt.Sprintf("The budget of model %s is deleted: the gateway's default applies again.", model))
}

// ledgerPage reads one page of the ledger that the query selects
// (?model=NAME&before=ID).
func (c *Console) ledgerPage(ctx context.Context, p service.Principal, r *http.Request, sts []service.BudgetStatus) (ledgerView, error) {
	q := r.URL.Query()
	v := ledgerView{Model: q.Get("model"), Newest: q.Get("before") == ""}
	lq := storage.LedgerQuery{Model: hegate.ModelID(v.Model), Limit: budgetLedgerPage + 1}
	if b := q.Get("before"); b != "" {
		id, err := strconv.ParseInt(b, 10, 64)
		if err != nil || id < 1 {
			return v, hegate.E(budgetFormOp, hegate.KindInvalid, nil, "the ledger page cursor %q is not an entry id", truncate(b, 40))
		}
		lq.BeforeID = id
	}
	names := []string{""}
	labels := map[string]string{"": "every model"}
	for _, st := range sts {
		names = append(names, string(st.Usage.Model))
	}
	if !slices.Contains(names, v.Model) {
		names = append(names, v.Model) // a model without a budget row now
	}
	v.Models = choices(names, labels, v.Model)
	entries, err := c.svc.Ledger(ctx, p, lq)
	if err != nil {
		return v, err
	}
	if len(entries) > budgetLedgerPage {
		entries = entries[:budgetLedgerPage]
		older := fmt.Sprintf("%s/budget?before=%d", Prefix, entries[len(entries)-1].ID)
		if v.Model != "" {
			older += "&model=" + url.QueryEscape(v.Model)
		}
		v.Older = older + "#ledger-heading"
	}
	for _, e := range entries {
		row := ledgerRow{ID: e.ID, At: stampUTC(e.CreatedAt), Model: e.Model, Scope: string(e.Scope), Kind: e.Kind, JobID: e.JobID, Actor: e.Actor, Reason: e.Reason}
		switch e.Kind {
		case storage.LedgerSet:
			row.Units = "capacity " + dp.Rho(e.Units).String()
		case storage.LedgerRenew, storage.LedgerDelete:
			row.Units = ""
		default:
			row.Units = dp.Rho(e.Units).String()
		}
		if !e.PeriodStart.IsZero() && e.PeriodStart.Unix() != 0 {
			row.Period = e.PeriodStart.UTC().Format("2006-01-02")
		}
		switch e.Kind {
		case storage.LedgerSettle, storage.LedgerAdjust:
			row.Badge = "warning"
		case storage.LedgerRefund, storage.LedgerRenew:
			row.Badge = "ok"
		default:
			row.Badge = "neutral"
		}
		v.Entries = append(v.Entries, row)
	}
	return v, nil
}

// burnCharts draws a burn-down chart of each budget (the first
// burnMaxCharts of them).
func (c *Console) burnCharts(ctx context.Context, p service.Principal, sts []service.BudgetStatus) budgetCharts {
	var out budgetCharts
	now := c.svc.Now()
	def := c.svc.DefaultBudget()
	for i, st := range sts {
		if i >= burnMaxCharts {
			out.Omitted = len(sts) - burnMaxCharts
			break
		}
		u := st.Usage
		entries, exhausted, err := c.periodLedger(ctx, p, u)
		if err != nil {
			// One failure stops the rest: they read the same ledger.
			out.Error = "The ledger could not be read, so the charts are missing: " + errText(err)
			break
		}
		s := burnDown(burnInput{Usage: u, Default: def.Capacity, Entries: entries, Exhausted: exhausted, Now: now})
		ch := budgetChart{ID: "burn-" + string(u.Model), Model: u.Model}
		ch.Spec = chartIsland{Label: "Budget left (rho)", Step: true, Total: dp.Rho(u.Limit.Capacity).Float64(), XLabel: "Time", YLabel: "rho left"}
		for _, pt := range s.Points {
			ch.Spec.X = append(ch.Spec.X, pt.At.Unix())
			ch.Spec.Y = append(ch.Spec.Y, dp.Rho(pt.Left).Float64())
		}
		period := string(u.Limit.Period)
		if u.Limit.Period == storage.BudgetNever {
			ch.Heading = fmt.Sprintf("Model %s: budget left (it never renews)", u.Model)
		} else {
			ch.Heading = fmt.Sprintf("Model %s: budget left this %s, since %s", u.Model, period, stampUTC(u.PeriodStart))
		}
		ch.Summary = fmt.Sprintf("Rho %s of %s left now, after %d changes this period.", rhoText(u.Left()), rhoText(u.Limit.Capacity), s.Changes)
		if s.Truncated {
			ch.Note = fmt.Sprintf("The chart starts at %s: older ledger entries were not read.", stampUTC(s.From))
		}
		out.Charts = append(out.Charts, ch)
	}
	return out
}

// periodLedger reads the ledger entries of u's model, newest first, back
// to the start of u's period and, if a budget was set or deleted in the
// period, on to the set or delete before it (whose capacity applied until
// then); at most burnMaxEntries. exhausted is true when the reads reached
// the model's first entry.
func (c *Console) periodLedger(ctx context.Context, p service.Principal, u storage.BudgetUsage) (entries []storage.LedgerEntry, exhausted bool, err error) {
	var before int64
	reachedStart, pendingCap := false, false
	for len(entries) < burnMaxEntries {
		limit := min(storage.MaxLedgerEntries, burnMaxEntries-len(entries))
		page, err := c.svc.Ledger(ctx, p, storage.LedgerQuery{Model: u.Model, BeforeID: before, Limit: limit})
		if err != nil {
			return nil, false, err
		}
		for _, e := range page {
			entries = append(entries, e)
			if e.CreatedAt.Before(u.PeriodStart) {
				reachedStart = true
			}
			if isCapacityChange(e) {
				pendingCap = !e.CreatedAt.Before(u.PeriodStart)
			}
		}
		if len(page) < limit {
			return entries, true, nil
		}
		if reachedStart && !pendingCap {
			return entries, false, nil
		}
		before = page[len(page)-1].ID
	}
	return entries, false, nil
}

func isCapacityChange(e storage.LedgerEntry) bool {
	return (e.Kind == storage.LedgerSet || e.Kind == storage.LedgerDelete) && tenantScoped(e)
}

func tenantScoped(e storage.LedgerEntry) bool {
	return e.Scope == "" || e.Scope == storage.ScopeTenant
}

// burnInput is what a burn-down is derived from.
type burnInput struct {
	// Usage is where the budget stands now: the authority, which the
	// ledger is replayed backwards from.
	Usage storage.BudgetUsage
	// Default is the capacity that applies while no budget is set.
	Default int64
	// Entries are the model's ledger entries, newest first, back to the
	// period's start and to the last set or delete before it (see
	// periodLedger), or fewer when the reads stopped at a bound.
	Entries []storage.LedgerEntry
	// Exhausted: Entries end at the model's first entry.
	Exhausted bool
	Now       time.Time
}

// burnPoint is the budget left (units) from At on.
type burnPoint struct {
	At   time.Time
	Left int64
}

// burnSeries is a burn-down: the budget left over the period, a step
// function through Points (in time order; the last is now).
type burnSeries struct {
	Points []burnPoint
	From   time.Time // where the series starts
	// Truncated: the series starts later than the period, at From,
	// because the entries before were not read.
	Truncated bool
	Changes   int // entries of the period that changed spend or capacity
}

// burnDown derives the budget left over the current period from the
// ledger. It replays the entries backwards from the current usage, which
// is what the store enforces: by the store's invariants, for each period,
//
//	spent    = sum(settle) + sum(adjust)
//	reserved = sum(reserve) - sum(settle) - sum(refund)
//
// so undoing an entry gives the state before it: a reserve held units
// back (reserved -= units), a settle moved them from reserved to spent
// (spent -= units, reserved += units), a refund gave them back (reserved
// += units), an adjustment changed spent (spent -= units; signed). Entries
// of other periods (a job reserved before the renewal settles into its
// old period) and of the model's global budget do not count. A set
// changed the capacity to its units and a delete back to the default:
// before either, the capacity is what the previous set or delete made it,
// or the default before the model's first entry. Left is capacity - spent
// - reserved, never below 0, as storage.BudgetUsage.Left.
func burnDown(in burnInput) burnSeries {
	u := in.Usage
	capacity, spent, reserved := u.Limit.Capacity, u.Spent, u.Reserved
	left := func() int64 { return max(0, capacity-spent-reserved) }
	// Built backwards (newest first), reversed at the end.
	back := []burnPoint{{At: in.Now, Left: left()}}
	var s burnSeries
	from := u.PeriodStart
	reached := false
	stopped := false
	oldest := in.Now
	for i, e := range in.Entries {
		if e.CreatedAt.Before(u.PeriodStart) {
			reached = true
			break
		}
		if !tenantScoped(e) {
			continue
		}
		switch e.Kind {
		case storage.LedgerReserve, storage.LedgerSettle, storage.LedgerRefund, storage.LedgerAdjust, storage.LedgerRenew:
			if !e.PeriodStart.Equal(u.PeriodStart) {
				continue
			}
		case storage.LedgerSet, storage.LedgerDelete:
		default:
			continue // a kind this console does not know changes nothing it shows
		}
		// The state now is the state after e, from e.CreatedAt on.
		back = append(back, burnPoint{At: e.CreatedAt, Left: left()})
		oldest = e.CreatedAt
		switch e.Kind {
		case storage.LedgerReserve:
			reserved -= e.Units
		case storage.LedgerSettle:
			reserved += e.Units
			spent -= e.Units
		case storage.LedgerRefund:
			reserved += e.Units
		case storage.LedgerAdjust:
			spent -= e.Units
		case storage.LedgerSet, storage.LedgerDelete:
			prev, ok := capacityBefore(in.Entries[i+1:], in.Default, in.Exhausted)
			if !ok {
				stopped = true
			}
			capacity = prev
		}
		if e.Kind != storage.LedgerRenew {
			s.Changes++
		}
		if stopped {
			break
		}
	}
	switch {
	case stopped:
		// The capacity before oldest is unknown.
		s.Truncated, from = true, oldest
	case !reached && !in.Exhausted:
		// The entries stop before the period's start: the state before
		// the oldest one is known, not since when.
		s.Truncated, from = true, oldest
	case u.Limit.Period == storage.BudgetNever || u.PeriodStart.Unix() <= 0:
		// One period since 1970: start at the first change, not there.
		from = oldest
		back = append(back, burnPoint{At: from, Left: left()})
	default:
		back = append(back, burnPoint{At: from, Left: left()})
	}
	s.From = from
	if len(back) == 1 || from.Equal(in.Now) {
		// Nothing changed: the budget stood where it stands now.
		from = in.Now.Add(-24 * time.Hour)
		if !u.PeriodStart.IsZero() && u.PeriodStart.Unix() > 0 && u.PeriodStart.After(from) {
			from = u.PeriodStart
		}
		back = append(back, burnPoint{At: from, Left: left()})
		s.From = from
	}
	// Time order, no time before the previous one (clocks of several
	// writers may disagree a little); a point that changes nothing is
	// dropped, and of points at the same time the last holds (except the
	// first point, the start, which later ones step down from).
	for i := len(back) - 1; i >= 0; i-- {
		pt, final := back[i], i == 0
		n := len(s.Points)
		if n == 0 {
			s.Points = append(s.Points, pt)
			continue
		}
		last := s.Points[n-1]
		if pt.At.Before(last.At) {
			pt.At = last.At
		}
		switch {
		case pt.Left == last.Left && !final:
		case pt.At.Equal(last.At) && n > 1:
			s.Points[n-1].Left = pt.Left
			if s.Points[n-2].Left == pt.Left && !final {
				s.Points = s.Points[:n-1]
			}
		case pt == last:
		default:
			s.Points = append(s.Points, pt)
		}
	}
	return s
}

// capacityBefore is the capacity that older (newest first) says applied:
// that of its most recent set or delete of the tenant's budget, or the
// default if there is none and older reaches the model's first entry.
func capacityBefore(older []storage.LedgerEntry, def int64, exhausted bool) (int64, bool) {
	for _, e := range older {
		if !isCapacityChange(e) {
			continue
		}
		if e.Kind == storage.LedgerSet {
			return e.Units, true
		}
		return def, true
	}
	if exhausted {
		return def, true
	}
	return 0, false
}

// rhoText formats an amount of rho units for reading: six significant
// digits (storage.BudgetUsage and the ledger keep it exactly).
func rhoText(units int64) string {
	return fmtFloat(dp.Rho(units).Float64())
}

// fmtFloat formats a number for reading.
func fmtFloat(x float64) string {
	return strconv.FormatFloat(x, 'g', 6, 64)
}

// stampUTC formats a time to the minute, in UTC.
func stampUTC(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// untilText says how long until t, roughly.
func untilText(now, t time.Time) string {
	d := t.Sub(now)
	switch {
	case d < time.Minute:
		return "less than a minute"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// errText is a service error's client-safe text.
func errText(err error) string {
	if d := hegate.DetailOf(err); d != "" {
		return d
	}
	if hegate.KindOf(err) == hegate.KindUnavailable {
		return "the gateway's database is not answering."
	}
	return "an error on the server."
}

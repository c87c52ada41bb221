// Package budgets holds what storage/postgres and storage/sqlite share
// about privacy budgets besides validation: the reasons of the ledger
// entries that the stores write on their own, the errors and usages they
// build from what they read, and the merge behind ListBudgetUsage. The
// SQL, and with it everything that decides whether a reservation fits,
// stays in each engine.
package budgets

import (
	"slices"
	"strings"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// Reasons of the settle and refund entries that Jobs writes.
const (
	ReasonComplete = "result released"
	ReasonFail     = "job failed"
	ReasonCancel   = "job cancelled"
)

// Limit is a budget as read for a reservation or a usage: the one set, or
// the caller's default.
type Limit struct {
	storage.BudgetLimit
	NoiseSigma float64 // 0 for a default and for global budgets
	Default    bool    // no budget was set: this is the caller's default
}

// Exhausted is the error of a reservation of cost that does not fit limit,
// given the usage row's spent and reserved; end is the period's end.
func Exhausted(scope storage.BudgetScope, model hegate.ModelID, limit storage.BudgetLimit,
	spent, reserved, cost int64, end time.Time,
) *storage.BudgetExhaustedError {
	return &storage.BudgetExhaustedError{
		Scope: scope, Model: model, Cost: cost, RenewsAt: end,
		Left: max(0, limit.Capacity-spent-reserved),
	}
}

// Usage is the BudgetUsage of one budget in the period that holds now.
func Usage(scope storage.BudgetScope, tenant hegate.TenantID, model hegate.ModelID, l Limit,
	now time.Time, spent, reserved int64,
) storage.BudgetUsage {
	start, end := l.Period.Bounds(now)
	return storage.BudgetUsage{
		Scope: scope, TenantID: tenant, Model: model, Limit: l.BudgetLimit, Default: l.Default,
		NoiseSigma: l.NoiseSigma, PeriodStart: start, PeriodEnd: end, Spent: spent, Reserved: reserved,
	}
}

// Periods are the valid budget periods, in the order Starts returns them.
var Periods = []storage.BudgetPeriod{storage.BudgetDaily, storage.BudgetWeekly, storage.BudgetMonthly, storage.BudgetNever}

// Starts returns the start of the period of each of Periods that holds now.
func Starts(now time.Time) []time.Time {
	out := make([]time.Time, len(Periods))
	for i, p := range Periods {
		out[i], _ = p.Bounds(now)
	}
	return out
}

// Row is one of a tenant's usage rows.
type Row struct {
	Model           hegate.ModelID
	PeriodStart     time.Time
	Spent, Reserved int64
}

// List builds ListBudgetUsage's answer, by model name (bytewise), from the
// tenant's budgets and its usage rows in the periods that hold now (see
// Starts): every model with a budget, in its budget's current period, and
// every model without one that has a row in def's current period.
func List(tenant hegate.TenantID, set []storage.Budget, rows []Row, def storage.BudgetLimit, now time.Time) []storage.BudgetUsage {
	type key struct {
		model hegate.ModelID
		start time.Time
	}
	usage := make(map[key]Row, len(rows))
	for _, r := range rows {
		usage[key{r.Model, r.PeriodStart.UTC()}] = r
	}
	out := make([]storage.BudgetUsage, 0, len(set)+len(rows))
	has := make(map[hegate.ModelID]bool, len(set))
	for _, b := range set {
		has[b.Model] = true
		start, _ := b.Period.Bounds(now)
		r := usage[key{b.Model, start}]
		out = append(out, Usage(storage.ScopeTenant, tenant, b.Model,
			Limit{BudgetLimit: b.BudgetLimit, NoiseSigma: b.NoiseSigma}, now, r.Spent, r.Reserved))
	}
	defStart, _ := def.Period.Bounds(now)
	for _, r := range rows {
		if !has[r.Model] && r.PeriodStart.Equal(defStart) {
			has[r.Model] = true
			out = append(out, Usage(storage.ScopeTenant, tenant, r.Model,
				Limit{BudgetLimit: def, Default: true}, now, r.Spent, r.Reserved))
		}
	}
	slices.SortFunc(out, func(a, b storage.BudgetUsage) int {
		return strings.Compare(string(a.Model), string(b.Model))
	})
	return out
}

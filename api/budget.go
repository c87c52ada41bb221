package api

import "time"

// Budget is where one privacy budget stands in its current period
// (GET /v1/budget). Amounts of rho are exact decimals (the store counts
// units of 1e-9 rho); epsilons are for display, converted at Delta with
// the tight zCDP conversion.
type Budget struct {
	Model string `json:"model"`
	// Scope is "tenant" (this tenant's budget for the model) or "global"
	// (the model's cap across all tenants, shown to operators only).
	Scope string `json:"scope"`
	// Default is true when no budget was set for the model and the
	// server's default applies.
	Default bool    `json:"default"`
	Epsilon float64 `json:"epsilon"` // the budget per period
	Delta   float64 `json:"delta"`
	Period  string  `json:"period"` // day, week, month or never
	// PeriodStart is when the current period began; RenewsAt when the
	// next begins (absent for "never").
	PeriodStart time.Time  `json:"period_start"`
	RenewsAt    *time.Time `json:"renews_at,omitempty"`
	CapacityRho string     `json:"capacity_rho"`
	SpentRho    string     `json:"spent_rho"`    // released answers (and adjustments)
	ReservedRho string     `json:"reserved_rho"` // jobs not finished yet
	LeftRho     string     `json:"left_rho"`
	// SpentEpsilon is what spent and reserved amount to at Delta;
	// RemainingEpsilon is Epsilon minus it (epsilons do not subtract
	// exactly; LeftRho is what is enforced).
	SpentEpsilon     float64 `json:"spent_epsilon"`
	RemainingEpsilon float64 `json:"remaining_epsilon"`
	// Query is what one inference costs now, when the model is known.
	Query *QueryCost `json:"query,omitempty"`
}

// QueryCost is the privacy cost of one inference.
type QueryCost struct {
	// NoiseSigma is the noise standard deviation on each output.
	NoiseSigma float64 `json:"noise_sigma"`
	Rho        string  `json:"rho"`
	// Epsilon is one query's guarantee at the budget's delta.
	Epsilon float64 `json:"epsilon"`
	// QueriesLeft is how many such queries the rest of the period buys.
	QueriesLeft int64 `json:"queries_left"`
}

// BudgetList answers GET /v1/budget.
type BudgetList struct {
	Budgets []Budget `json:"budgets"`
}

// SetBudgetRequest is the body of PUT /v1/budgets/{model}.
type SetBudgetRequest struct {
	Epsilon float64 `json:"epsilon"` // > 0: the (epsilon, delta) allowed per period
	Delta   float64 `json:"delta"`   // in (0, 1)
	Period  string  `json:"period"`  // day, week, month or never
	// NoiseSigma, if > 0, is the noise of each output for this tenant
	// instead of the model's default (more noise: cheaper queries).
	NoiseSigma float64 `json:"noise_sigma,omitempty"`
	Reason     string  `json:"reason,omitempty"`
}

// LedgerEntry is one change of a budget (GET /v1/budget/ledger).
type LedgerEntry struct {
	ID          int64     `json:"id"`
	Scope       string    `json:"scope"`
	Model       string    `json:"model"`
	PeriodStart time.Time `json:"period_start,omitzero"`
	Kind        string    `json:"kind"` // reserve, settle, refund, renew, adjust, set, delete
	Rho         string    `json:"rho"`
	JobID       string    `json:"job_id,omitempty"`
	Actor       string    `json:"actor"`
	Reason      string    `json:"reason,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// Ledger answers GET /v1/budget/ledger; Next, when set, is the URL of the
// following (older) page.
type Ledger struct {
	Entries []LedgerEntry `json:"entries"`
	Next    string        `json:"next,omitempty"`
}

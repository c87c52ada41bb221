package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hegate/hegate"
)

// Privacy budgets.
//
// Every released answer of a model costs its tenant privacy, counted in
// zero-concentrated differential privacy (zCDP): a query of cost rho spends
// rho, and costs add up. Amounts are stored exactly, as int64 counts of
// 1e-9 rho ("units", the same as dp.Rho); callers round spends up and
// capacities down when they convert.
//
// A budget belongs to a tenant and a model and renews every period: each
// period (a calendar day, ISO week or month in UTC, or one period that
// never ends) has its own usage row, created by the first reservation in
// it (a "renew" ledger entry). A model shared by all tenants (a built-in)
// may also carry a global budget across tenants, against tenants that
// collude.
//
// The life of one job's cost: Tx.ReserveBudget reserves it in the
// transaction that creates the job (a conditional update: concurrent
// reservations can never spend more than the capacity, on either engine);
// Jobs.CompleteJob settles it in the transaction that records the result
// (released: never refunded); Jobs.FailJob and Jobs.CancelJob refund it
// (nothing was released). A job retried after a crash stays reserved and
// settles once. The ledger records every reserve, settle, refund, renewal,
// adjustment and change of a budget, with who and why; for every tenant,
// model and period:
//
//	spent    = sum(settle) + sum(adjust)
//	reserved = sum(reserve) - sum(settle) - sum(refund)

// ErrBudgetExhausted is returned (wrapped in a *BudgetExhaustedError) by
// Tx.ReserveBudget when the cost does not fit what is left.
var ErrBudgetExhausted = errors.New("storage: privacy budget exhausted")

// BudgetExhaustedError says which budget is exhausted and when it renews.
type BudgetExhaustedError struct {
	Scope    BudgetScope
	Model    hegate.ModelID
	Left     int64     // units left in the period (capacity - spent - reserved), >= 0
	Cost     int64     // units the reservation asked for
	RenewsAt time.Time // start of the next period; zero for BudgetNever
}

func (e *BudgetExhaustedError) Error() string {
	return fmt.Sprintf("%v: %s budget of model %s has %d units left, the query costs %d",
		ErrBudgetExhausted, e.Scope, e.Model, e.Left, e.Cost)
}

// Is makes errors.Is(err, ErrBudgetExhausted) true.
func (e *BudgetExhaustedError) Is(target error) bool { return target == ErrBudgetExhausted }

// BudgetScope says whose budget an amount counts against.
type BudgetScope string

// Budget scopes.
const (
	ScopeTenant BudgetScope = "tenant" // one tenant's budget for a model
	ScopeGlobal BudgetScope = "global" // a model's budget across all tenants
)

// BudgetPeriod is how often a budget renews.
type BudgetPeriod string

// Budget periods, in UTC.
const (
	BudgetDaily   BudgetPeriod = "day"
	BudgetWeekly  BudgetPeriod = "week" // ISO weeks, from Monday
	BudgetMonthly BudgetPeriod = "month"
	BudgetNever   BudgetPeriod = "never" // one period from the Unix epoch on
)

// Valid reports whether p is one of the periods above.
func (p BudgetPeriod) Valid() bool {
	switch p {
	case BudgetDaily, BudgetWeekly, BudgetMonthly, BudgetNever:
		return true
	}
	return false
}

// Bounds returns the period that holds t: its start, and the start of the
// next one (zero for BudgetNever). It panics on an invalid period; check
// Valid first.
func (p BudgetPeriod) Bounds(t time.Time) (start, end time.Time) {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch p {
	case BudgetDaily:
		return day, day.AddDate(0, 0, 1)
	case BudgetWeekly:
		back := (int(day.Weekday()) + 6) % 7 // days since Monday
		start = day.AddDate(0, 0, -back)
		return start, start.AddDate(0, 0, 7)
	case BudgetMonthly:
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	case BudgetNever:
		return time.Unix(0, 0).UTC(), time.Time{}
	}
	panic(fmt.Sprintf("storage: invalid budget period %q", string(p)))
}

// BudgetLimit is what a budget allows per period.
type BudgetLimit struct {
	// Capacity is the rho allowed per period, in units (1e-9 rho), >= 0.
	Capacity int64
	Period   BudgetPeriod
	// Epsilon and Delta are the (epsilon, delta) guarantee that the caller
	// converted to Capacity, kept for display; storage does not interpret
	// them. Epsilon >= 0, 0 <= Delta < 1.
	Epsilon, Delta float64
}

// Budget is a tenant's budget for one of its models, as set.
type Budget struct {
	TenantID hegate.TenantID
	Model    hegate.ModelID
	BudgetLimit
	// NoiseSigma, if > 0, overrides the noise scale of the model's
	// mechanism for this tenant; 0 means the model's own.
	NoiseSigma float64
	UpdatedAt  time.Time
	UpdatedBy  string // the actor that last set it
}

// GlobalBudget is a model's budget across all tenants, as set.
type GlobalBudget struct {
	Model hegate.ModelID
	BudgetLimit
	UpdatedAt time.Time
	UpdatedBy string
}

// BudgetUsage is where a budget stands in its current period.
type BudgetUsage struct {
	Scope    BudgetScope
	TenantID hegate.TenantID // "" for ScopeGlobal
	Model    hegate.ModelID
	Limit    BudgetLimit
	// Default is true when no budget was set and Limit is the default that
	// the caller passed.
	Default     bool
	NoiseSigma  float64   // as in Budget; 0 for ScopeGlobal
	PeriodStart time.Time // the current period
	PeriodEnd   time.Time // its end, when the budget renews; zero for BudgetNever
	Spent       int64     // settled units (and adjustments) this period
	Reserved    int64     // units of jobs that have not finished
}

// Left is the capacity not yet spent or reserved; never negative.
func (u BudgetUsage) Left() int64 { return max(0, u.Limit.Capacity-u.Spent-u.Reserved) }

// Ledger entry kinds.
const (
	LedgerReserve = "reserve" // Units reserved for JobID
	LedgerSettle  = "settle"  // JobID's Units, released: moved from reserved to spent
	LedgerRefund  = "refund"  // JobID's Units given back: nothing was released
	LedgerRenew   = "renew"   // a new period began (Units 0)
	LedgerAdjust  = "adjust"  // Units (signed) added to spent by hand
	LedgerSet     = "set"     // the budget was set (Units is the new capacity)
	LedgerDelete  = "delete"  // the budget was deleted (Units 0): the default applies again
)

// Actors of the ledger entries that Jobs writes on its own, which no
// caller names: CompleteJob and FailJob settle and refund as ActorWorker,
// CancelJob refunds as ActorTenant (the job's tenant cancelled it).
const (
	ActorWorker = "worker"
	ActorTenant = "tenant"
)

// LedgerEntry is one change of a budget.
type LedgerEntry struct {
	// ID increases in the order the entries were written, per database.
	// Entries of the same budget or usage row are written under that
	// row's lock, so among them it is commit order too; entries of
	// unrelated budgets written by concurrent transactions may commit in
	// another order than their IDs on PostgreSQL.
	ID          int64
	Scope       BudgetScope
	TenantID    hegate.TenantID // the tenant whose action it was; "" for a global Set
	Model       hegate.ModelID
	PeriodStart time.Time // the period it counts in; zero for LedgerSet and LedgerDelete
	Kind        string
	Units       int64
	JobID       hegate.JobID // for reserve, settle and refund
	Actor       string       // who: "api-key:<id>", "cli:<user>", "worker", ...
	Reason      string
	CreatedAt   time.Time
}

// Limits on budget text fields; longer ones are an error.
const (
	MaxActorBytes  = 200
	MaxReasonBytes = 1000
)

// SetBudgetParams are the inputs of Budgets.SetBudget.
type SetBudgetParams struct {
	TenantID   hegate.TenantID
	Model      hegate.ModelID
	Limit      BudgetLimit
	NoiseSigma float64 // >= 0; 0: the model's own
	Actor      string  // required
	Reason     string
}

// SetGlobalBudgetParams are the inputs of Budgets.SetGlobalBudget.
type SetGlobalBudgetParams struct {
	Model  hegate.ModelID
	Limit  BudgetLimit
	Actor  string // required
	Reason string
}

// AdjustBudgetParams are the inputs of Budgets.AdjustBudget.
type AdjustBudgetParams struct {
	TenantID hegate.TenantID
	Model    hegate.ModelID
	// Units is added to the current period's spent: positive to charge,
	// negative to give back (spent never goes below 0: an error then).
	Units  int64
	Actor  string // required
	Reason string // required: a manual change must say why
}

// MaxLedgerEntries caps LedgerQuery.Limit.
const MaxLedgerEntries = 1000

// LedgerQuery selects ledger entries of a tenant, newest first.
type LedgerQuery struct {
	TenantID hegate.TenantID // required
	Model    hegate.ModelID  // "" for every model
	BeforeID int64           // > 0: only entries with ID < BeforeID (paging)
	Limit    int             // 1 to MaxLedgerEntries
}

// Budgets stores privacy budgets, their usage per period and the ledger.
// Reservations are made only inside a transaction, with the job they pay
// for (Tx.ReserveBudget); settling and refunding happen inside
// Jobs.CompleteJob, FailJob and CancelJob.
type Budgets interface {
	// SetBudget creates or replaces the tenant's budget for a model (the
	// model need not exist yet) and records a "set" entry. It applies to
	// the current period at once: lowering the capacity below what is
	// spent refuses further queries until the period renews. An error if
	// p is invalid (the message names the field), ErrNotFound if the
	// tenant does not exist.
	SetBudget(ctx context.Context, p SetBudgetParams) (Budget, error)
	// GetBudget returns the tenant's budget for the model, or ErrNotFound
	// if none was set.
	GetBudget(ctx context.Context, tenant hegate.TenantID, model hegate.ModelID) (Budget, error)
	// DeleteBudget removes the tenant's budget for the model (the default
	// applies again; usage and ledger stay) and records it in the ledger;
	// ErrNotFound if none was set.
	DeleteBudget(ctx context.Context, tenant hegate.TenantID, model hegate.ModelID, actor, reason string) error
	// BudgetUsage returns the tenant's usage of the model's budget in the
	// current period: the budget set, or def (Default true) if none was
	// set. Nothing is written.
	BudgetUsage(ctx context.Context, tenant hegate.TenantID, model hegate.ModelID, def BudgetLimit) (BudgetUsage, error)
	// ListBudgetUsage returns, by model name, the tenant's usage of every
	// model that has a budget set or any usage in the current period of
	// def.Period or its own; models without a budget get def.
	ListBudgetUsage(ctx context.Context, tenant hegate.TenantID, def BudgetLimit) ([]BudgetUsage, error)
	// AdjustBudget changes the current period's spent by hand (an
	// operator's correction) and records an "adjust" entry; the budget set,
	// or def, gives the period. ErrConflict, with nothing changed, if
	// spent would go below 0; ErrNotFound if the tenant does not exist; an
	// error if p (Units 0 included) or def is invalid.
	AdjustBudget(ctx context.Context, p AdjustBudgetParams, def BudgetLimit) (BudgetUsage, error)
	// SetGlobalBudget creates or replaces the budget of a model across all
	// tenants (it caps the sum of every tenant's spend on the model).
	SetGlobalBudget(ctx context.Context, p SetGlobalBudgetParams) (GlobalBudget, error)
	// DeleteGlobalBudget removes it (usage and ledger stay) and records
	// it in the ledger; ErrNotFound if none was set.
	DeleteGlobalBudget(ctx context.Context, model hegate.ModelID, actor, reason string) error
	// GlobalBudgetUsage returns a model's global usage in the current
	// period, or ErrNotFound if it has no global budget. For operators
	// only: it sums every tenant's spend.
	GlobalBudgetUsage(ctx context.Context, model hegate.ModelID) (BudgetUsage, error)
	// Ledger returns at most q.Limit of the tenant's ledger entries,
	// newest first (global entries included where the tenant's job
	// caused them; the set and delete entries of global budgets belong to
	// no tenant). An error if q is invalid.
	Ledger(ctx context.Context, q LedgerQuery) ([]LedgerEntry, error)
}

// ReserveBudgetParams are the inputs of Tx.ReserveBudget.
type ReserveBudgetParams struct {
	// JobID is the job that pays, created earlier in the same
	// transaction; its tenant and model are the budget's.
	JobID hegate.JobID
	Cost  int64 // units, > 0
	// Default is the limit used when the tenant has set no budget for the
	// model. A Default of capacity 0 refuses every query of such a model.
	Default BudgetLimit
	// Global makes the reservation count against the model's global
	// budget too, if it has one (for models shared by all tenants).
	Global bool
	Actor  string // who asked, for the ledger
}

// Tx is one database transaction that a caller holds across repositories,
// in the shape of River's InsertTx: the job, its work item and its budget
// reservation commit together or not at all. A Tx is valid only inside the
// function given to Transactor.InTx and must not be used from several
// goroutines at once. After one of its methods returns an error, return
// that error from the function: the transaction may be unusable (on
// PostgreSQL a failed statement aborts it).
type Tx interface {
	// CreateJob is Jobs.CreateJob inside the transaction; the River job
	// is inserted in it too.
	CreateJob(ctx context.Context, p CreateJobParams) (job Job, created bool, err error)
	// ReserveBudget reserves p.Cost for the job against the tenant's
	// budget of the job's model in the current period (and the model's
	// global budget if p.Global and it has one), with a conditional
	// update that cannot overspend however many transactions run at once,
	// and records it on the job (Job.PrivacyUnits, PrivacyReserved) and in
	// the ledger. Outcomes:
	//
	//   - the tenant's usage after the reservation;
	//   - a *BudgetExhaustedError (errors.Is ErrBudgetExhausted) if the
	//     cost does not fit a budget: the caller returns it and the
	//     transaction, job included, rolls back;
	//   - ErrNotFound if the job does not exist, ErrConflict if it
	//     already has a reservation or is not queued;
	//   - an error if p is invalid.
	ReserveBudget(ctx context.Context, p ReserveBudgetParams) (BudgetUsage, error)
	// RecordAudit is Audit.RecordAudit inside the transaction: the event
	// commits with the change it describes, or neither does (the caller
	// that wants the failure recorded too records it after the rollback,
	// outside the transaction).
	RecordAudit(ctx context.Context, e AuditEvent) (AuditEvent, error)
}

// Transactor runs functions in one transaction.
type Transactor interface {
	// InTx begins a transaction, calls fn with it, and commits if fn
	// returns nil; otherwise, or if fn panics, it rolls back and returns
	// fn's error as it is (the panic is re-raised after the rollback). On
	// SQLite the transaction is IMMEDIATE (it takes the write lock at
	// once); on PostgreSQL it is READ COMMITTED, with the row locks each
	// method documents. fn must use only tx, never the Store itself: on
	// SQLite, which has one connection, that deadlocks.
	InTx(ctx context.Context, fn func(tx Tx) error) error
}

// Privacy states of a job's reservation (Job.PrivacyState).
const (
	PrivacyNone     = ""         // the job pays nothing
	PrivacyReserved = "reserved" // reserved, not yet settled or refunded
	PrivacySettled  = "settled"  // its result was released: spent
	PrivacyRefunded = "refunded" // it failed or was cancelled: given back
)

package storagetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// unit is the cost of one query in the budget tests.
const unit = int64(1_000_000) // 1e-6 rho

// testModel is the model of jobParams' jobs.
const testModel = hegate.ModelID("mnist-cryptonets")

// errBoom is what transaction functions return to roll back.
var errBoom = errors.New("boom")

// limit is a monthly limit of n queries.
func limit(n int64) storage.BudgetLimit {
	return storage.BudgetLimit{Capacity: n * unit, Period: storage.BudgetMonthly, Epsilon: 1.5, Delta: 1e-6}
}

// plenty is a default that never refuses in these tests.
var plenty = limit(1 << 20)

// set is the current time of the clock.
func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// clockedAt replaces b's store with a fresh one on a fake clock at `at`,
// holding tenants "a" and "b".
func clockedAt(t *testing.T, b bundle, at time.Time) (bundle, *fakeClock) {
	t.Helper()
	clk := &fakeClock{now: at}
	b.store = b.open(t, clk.Now)
	b.a = mustTenant(t, b, "tenant-a")
	b.b = mustTenant(t, b, "tenant-b")
	return b, clk
}

func mustSetBudget(t *testing.T, b bundle, tenant hegate.TenantID, model hegate.ModelID, l storage.BudgetLimit) storage.Budget {
	t.Helper()
	got, err := b.store.SetBudget(b.ctx, storage.SetBudgetParams{
		TenantID: tenant, Model: model, Limit: l, Actor: "cli:root", Reason: "test budget",
	})
	noErr(t, "SetBudget", err)
	return got
}

// reservation is a ReserveBudgetParams of one unit-cost query.
func reservation(def storage.BudgetLimit) storage.ReserveBudgetParams {
	return storage.ReserveBudgetParams{Cost: unit, Default: def, Actor: "api-key:key_test"}
}

// submit does what the gateway does for one query, in one transaction:
// create the job and, only if it was created, reserve r for it. On an
// error the job is returned as fn saw it (its id, for the checks that it
// is gone).
func submit(b bundle, p storage.CreateJobParams, r storage.ReserveBudgetParams) (j storage.Job, created bool, err error) {
	err = b.store.InTx(b.ctx, func(tx storage.Tx) error {
		var err error
		j, created, err = tx.CreateJob(b.ctx, p)
		if err != nil || !created {
			return err
		}
		r.JobID = j.ID
		_, err = tx.ReserveBudget(b.ctx, r)
		return err
	})
	return j, created, err
}

// mustSubmit submits a job of p's tenant and model that must be created
// and reserved.
func mustSubmit(t *testing.T, b bundle, p storage.CreateJobParams, r storage.ReserveBudgetParams) storage.Job {
	t.Helper()
	j, created, err := submit(b, p, r)
	if err != nil || !created {
		t.Fatalf("submit: created %v, err %v", created, err)
	}
	got, err := b.store.GetJob(b.ctx, j.TenantID, j.ID)
	noErr(t, "GetJob", err)
	if got.PrivacyState != storage.PrivacyReserved || got.PrivacyUnits != r.Cost {
		t.Fatalf("submitted job: state %q, units %d; want reserved, %d", got.PrivacyState, got.PrivacyUnits, r.Cost)
	}
	return got
}

// jobOf returns the params of a job of model.
func jobOf(tenant hegate.TenantID, model hegate.ModelID, idempotencyKey string) storage.CreateJobParams {
	p := jobParams(tenant, idempotencyKey)
	p.Model = model
	return p
}

func mustUsage(t *testing.T, b bundle, tenant hegate.TenantID, model hegate.ModelID, def storage.BudgetLimit) storage.BudgetUsage {
	t.Helper()
	u, err := b.store.BudgetUsage(b.ctx, tenant, model, def)
	noErr(t, "BudgetUsage", err)
	return u
}

// wantUsage fails unless u spends and reserves spent and reserved queries.
func wantUsage(t *testing.T, what string, u storage.BudgetUsage, spent, reserved int64) {
	t.Helper()
	if u.Spent != spent*unit || u.Reserved != reserved*unit {
		t.Fatalf("%s: spent %d, reserved %d units; want %d, %d queries of %d", what, u.Spent, u.Reserved, spent, reserved, unit)
	}
}

// wantExhausted fails unless err is a *BudgetExhaustedError of scope with
// left queries left, renewing at renews.
func wantExhausted(t *testing.T, what string, err error, scope storage.BudgetScope, model hegate.ModelID, left int64, renews time.Time) {
	t.Helper()
	var be *storage.BudgetExhaustedError
	if !errors.As(err, &be) || !errors.Is(err, storage.ErrBudgetExhausted) {
		t.Fatalf("%s: error %v, want a *BudgetExhaustedError", what, err)
	}
	if be.Scope != scope || be.Model != model || be.Left != left*unit || be.Cost != unit || !be.RenewsAt.Equal(renews) {
		t.Fatalf("%s: %+v, want scope %s, model %s, left %d, cost %d, renews at %v", what, *be, scope, model, left*unit, unit, renews)
	}
}

// ledgerOf returns every ledger entry of the tenant (of model, unless ""),
// newest first, paging with pages of size, and checks the order.
func ledgerOf(t *testing.T, b bundle, tenant hegate.TenantID, model hegate.ModelID, size int) []storage.LedgerEntry {
	t.Helper()
	var out []storage.LedgerEntry
	q := storage.LedgerQuery{TenantID: tenant, Model: model, Limit: size}
	for range 10000 {
		page, err := b.store.Ledger(b.ctx, q)
		noErr(t, "Ledger", err)
		if page == nil {
			t.Fatal("Ledger returned nil, want an empty list")
		}
		if len(page) > size {
			t.Fatalf("Ledger(Limit %d) returned %d", size, len(page))
		}
		out = append(out, page...)
		if len(page) < size {
			for i := 1; i < len(out); i++ {
				if out[i].ID >= out[i-1].ID {
					t.Fatalf("ledger entry %d has id %d after %d: not newest first", i, out[i].ID, out[i-1].ID)
				}
			}
			return out
		}
		q.BeforeID = page[len(page)-1].ID
	}
	t.Fatal("Ledger: paging does not end")
	return nil
}

// period names a usage row in the ledger.
type period struct {
	scope storage.BudgetScope
	start time.Time
}

// sums are what the ledger says of one period.
type sums struct {
	spent, reserved  int64
	renews, reserves int
}

// ledgerSums adds up the ledger entries of model of the tenants per
// scope and period:
//
//	spent    = sum(settle) + sum(adjust)
//	reserved = sum(reserve) - sum(settle) - sum(refund)
func ledgerSums(t *testing.T, b bundle, model hegate.ModelID, tenants ...hegate.TenantID) map[period]sums {
	t.Helper()
	out := map[period]sums{}
	for _, tenant := range tenants {
		for _, e := range ledgerOf(t, b, tenant, model, 100) {
			if e.Model != model || e.TenantID != tenant {
				t.Fatalf("Ledger(%s, %s) returned %+v", tenant, model, e)
			}
			k := period{e.Scope, e.PeriodStart}
			s := out[k]
			switch e.Kind {
			case storage.LedgerReserve:
				s.reserved += e.Units
				s.reserves++
			case storage.LedgerSettle:
				s.reserved -= e.Units
				s.spent += e.Units
			case storage.LedgerRefund:
				s.reserved -= e.Units
			case storage.LedgerAdjust:
				s.spent += e.Units
			case storage.LedgerRenew:
				s.renews++
			case storage.LedgerSet, storage.LedgerDelete:
				if !e.PeriodStart.IsZero() {
					t.Fatalf("%s entry with a period: %+v", e.Kind, e)
				}
			default:
				t.Fatalf("unknown ledger kind: %+v", e)
			}
			out[k] = s
		}
	}
	return out
}

// checkLedger fails unless the usage u agrees with the ledger entries of
// its model of the tenants (its own, for ScopeTenant), and its period has
// exactly one renew entry if it has any usage.
func checkLedger(t *testing.T, b bundle, u storage.BudgetUsage, tenants ...hegate.TenantID) {
	t.Helper()
	if u.Scope == storage.ScopeTenant {
		tenants = []hegate.TenantID{u.TenantID}
	}
	s := ledgerSums(t, b, u.Model, tenants...)[period{u.Scope, u.PeriodStart}]
	if s.spent != u.Spent || s.reserved != u.Reserved {
		t.Fatalf("%s usage of %s from %v: spent %d, reserved %d; the ledger says %d, %d",
			u.Scope, u.Model, u.PeriodStart, u.Spent, u.Reserved, s.spent, s.reserved)
	}
	if s.spent != 0 || s.reserved != 0 || s.reserves > 0 {
		if s.renews != 1 {
			t.Fatalf("%s usage of %s from %v: %d renew entries, want 1", u.Scope, u.Model, u.PeriodStart, s.renews)
		}
	}
}

// queued returns the job ids of the store's inference work items.
func queued(t *testing.T, b bundle) []hegate.JobID {
	t.Helper()
	qi, ok := b.store.(QueueInspector)
	if !ok {
		t.Fatalf("the engine's Opener returned a %T, which does not implement storagetest.QueueInspector", b.store)
	}
	got, err := qi.QueuedInference(b.ctx)
	noErr(t, "QueuedInference", err)
	return got
}

// wantGone fails unless the job j, created in a transaction that rolled
// back, left nothing: no row, no work item, no usage, no ledger entry.
func wantGone(t *testing.T, b bundle, j storage.Job) {
	t.Helper()
	if j.ID == "" {
		t.Fatal("the transaction function saw no job")
	}
	_, err := b.store.GetJob(b.ctx, j.TenantID, j.ID)
	wantErr(t, "GetJob of a rolled-back job", err, storage.ErrNotFound)
	if slices.Contains(queued(t, b), j.ID) {
		t.Fatalf("the rolled-back job %s left a work item in the queue", j.ID)
	}
	wantUsage(t, "usage after a rollback", mustUsage(t, b, j.TenantID, j.Model, plenty), 0, 0)
	for _, e := range ledgerOf(t, b, j.TenantID, "", 10) {
		if e.Kind != storage.LedgerSet {
			t.Fatalf("ledger entry after a rollback: %+v", e)
		}
	}
}

var budgetTests = []test{
	{"ok/budget/set-get-delete", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		at := clk.Now()
		p := storage.SetBudgetParams{
			TenantID: b.a.ID, Model: "not-uploaded-yet", Limit: limit(10), NoiseSigma: 0.25,
			Actor: "cli:alice", Reason: "pilot",
		}
		got, err := b.store.SetBudget(b.ctx, p)
		noErr(t, "SetBudget", err)
		want := storage.Budget{
			TenantID: b.a.ID, Model: "not-uploaded-yet", BudgetLimit: limit(10), NoiseSigma: 0.25,
			UpdatedAt: at, UpdatedBy: "cli:alice",
		}
		equal(t, "SetBudget", got, want)
		stored, err := b.store.GetBudget(b.ctx, b.a.ID, "not-uploaded-yet")
		noErr(t, "GetBudget", err)
		equal(t, "GetBudget", stored, want)

		// Replace it.
		later := clk.advance(time.Hour)
		p.Limit = storage.BudgetLimit{Capacity: 0, Period: storage.BudgetNever}
		p.NoiseSigma, p.Actor, p.Reason = 0, "cli:bob", ""
		got, err = b.store.SetBudget(b.ctx, p)
		noErr(t, "SetBudget again", err)
		want = storage.Budget{
			TenantID: b.a.ID, Model: "not-uploaded-yet", BudgetLimit: p.Limit, UpdatedAt: later, UpdatedBy: "cli:bob",
		}
		equal(t, "SetBudget again", got, want)
		stored, err = b.store.GetBudget(b.ctx, b.a.ID, "not-uploaded-yet")
		noErr(t, "GetBudget", err)
		equal(t, "GetBudget after SetBudget again", stored, want)

		deleted := clk.advance(time.Hour)
		noErr(t, "DeleteBudget", b.store.DeleteBudget(b.ctx, b.a.ID, "not-uploaded-yet", "cli:carol", "pilot over"))
		_, err = b.store.GetBudget(b.ctx, b.a.ID, "not-uploaded-yet")
		wantErr(t, "GetBudget after DeleteBudget", err, storage.ErrNotFound)
		err = b.store.DeleteBudget(b.ctx, b.a.ID, "not-uploaded-yet", "cli:carol", "")
		wantErr(t, "DeleteBudget again", err, storage.ErrNotFound)
		u := mustUsage(t, b, b.a.ID, "not-uploaded-yet", plenty)
		if !u.Default || u.Limit != plenty {
			t.Fatalf("usage after DeleteBudget: %+v, want the default", u)
		}

		entries := ledgerOf(t, b, b.a.ID, "", 2)
		for i := range entries {
			entries[i].ID = 0
		}
		equal(t, "ledger", entries, []storage.LedgerEntry{
			{Scope: storage.ScopeTenant, TenantID: b.a.ID, Model: "not-uploaded-yet", Kind: storage.LedgerDelete,
				Actor: "cli:carol", Reason: "pilot over", CreatedAt: deleted},
			{Scope: storage.ScopeTenant, TenantID: b.a.ID, Model: "not-uploaded-yet", Kind: storage.LedgerSet,
				Units: 0, Actor: "cli:bob", CreatedAt: later},
			{Scope: storage.ScopeTenant, TenantID: b.a.ID, Model: "not-uploaded-yet", Kind: storage.LedgerSet,
				Units: 10 * unit, Actor: "cli:alice", Reason: "pilot", CreatedAt: at},
		})
	}},
	{"fail/budget/set-params", func(t *testing.T, b bundle) {
		good := storage.SetBudgetParams{TenantID: b.a.ID, Model: testModel, Limit: limit(1), Actor: "cli:root"}
		with := func(f func(p *storage.SetBudgetParams)) storage.SetBudgetParams {
			p := good
			f(&p)
			return p
		}
		for name, p := range map[string]storage.SetBudgetParams{
			"no tenant":         with(func(p *storage.SetBudgetParams) { p.TenantID = "" }),
			"no model":          with(func(p *storage.SetBudgetParams) { p.Model = "" }),
			"negative capacity": with(func(p *storage.SetBudgetParams) { p.Limit.Capacity = -1 }),
			"no period":         with(func(p *storage.SetBudgetParams) { p.Limit.Period = "" }),
			"bad period":        with(func(p *storage.SetBudgetParams) { p.Limit.Period = "year" }),
			"negative epsilon":  with(func(p *storage.SetBudgetParams) { p.Limit.Epsilon = -1 }),
			"NaN epsilon":       with(func(p *storage.SetBudgetParams) { p.Limit.Epsilon = math.NaN() }),
			"infinite epsilon":  with(func(p *storage.SetBudgetParams) { p.Limit.Epsilon = math.Inf(1) }),
			"negative delta":    with(func(p *storage.SetBudgetParams) { p.Limit.Delta = -0.1 }),
			"delta 1":           with(func(p *storage.SetBudgetParams) { p.Limit.Delta = 1 }),
			"NaN delta":         with(func(p *storage.SetBudgetParams) { p.Limit.Delta = math.NaN() }),
			"negative sigma":    with(func(p *storage.SetBudgetParams) { p.NoiseSigma = -0.5 }),
			"NaN sigma":         with(func(p *storage.SetBudgetParams) { p.NoiseSigma = math.NaN() }),
			"infinite sigma":    with(func(p *storage.SetBudgetParams) { p.NoiseSigma = math.Inf(1) }),
			"no actor":          with(func(p *storage.SetBudgetParams) { p.Actor = "" }),
			"long actor":        with(func(p *storage.SetBudgetParams) { p.Actor = strings.Repeat("a", storage.MaxActorBytes+1) }),
			"long reason":       with(func(p *storage.SetBudgetParams) { p.Reason = strings.Repeat("r", storage.MaxReasonBytes+1) }),
		} {
			if got, err := b.store.SetBudget(b.ctx, p); err == nil || errors.Is(err, storage.ErrNotFound) {
				t.Errorf("SetBudget with %s: %+v, %v; want a validation error", name, got, err)
			}
		}
		_, err := b.store.SetBudget(b.ctx, with(func(p *storage.SetBudgetParams) { p.TenantID = "ten_missing" }))
		wantErr(t, "SetBudget for a missing tenant", err, storage.ErrNotFound)
		_, err = b.store.GetBudget(b.ctx, b.a.ID, testModel)
		wantErr(t, "GetBudget after refused SetBudgets", err, storage.ErrNotFound)
		if l := ledgerOf(t, b, b.a.ID, "", 10); len(l) != 0 {
			t.Fatalf("ledger after refused SetBudgets: %+v", l)
		}
		// The limits themselves are accepted.
		_, err = b.store.SetBudget(b.ctx, with(func(p *storage.SetBudgetParams) {
			p.Limit = storage.BudgetLimit{Capacity: 0, Period: storage.BudgetDaily, Epsilon: 0, Delta: 0.999}
			p.Actor = strings.Repeat("a", storage.MaxActorBytes)
			p.Reason = strings.Repeat("r", storage.MaxReasonBytes)
		}))
		noErr(t, "SetBudget at the limits", err)
		err = b.store.DeleteBudget(b.ctx, b.a.ID, testModel, "", "")
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("DeleteBudget without an actor: %v, want a validation error", err)
		}
		_, err = b.store.GetBudget(b.ctx, b.a.ID, testModel)
		noErr(t, "GetBudget after a refused DeleteBudget", err)
	}},
	{"fail/budget/other-tenant", func(t *testing.T, b bundle) {
		mustSetBudget(t, b, b.a.ID, testModel, limit(5))
		mustSubmit(t, b, jobParams(b.a.ID, ""), reservation(plenty))
		_, err := b.store.GetBudget(b.ctx, b.b.ID, testModel)
		wantErr(t, "GetBudget by another tenant", err, storage.ErrNotFound)
		err = b.store.DeleteBudget(b.ctx, b.b.ID, testModel, "cli:b", "")
		wantErr(t, "DeleteBudget by another tenant", err, storage.ErrNotFound)
		u := mustUsage(t, b, b.b.ID, testModel, limit(3))
		if !u.Default || u.Limit != limit(3) || u.Spent != 0 || u.Reserved != 0 || u.TenantID != b.b.ID {
			t.Fatalf("tenant b's usage: %+v", u)
		}
		list, err := b.store.ListBudgetUsage(b.ctx, b.b.ID, plenty)
		noErr(t, "ListBudgetUsage", err)
		equal(t, "tenant b's usage list", list, []storage.BudgetUsage{})
		if l := ledgerOf(t, b, b.b.ID, "", 10); len(l) != 0 {
			t.Fatalf("tenant b's ledger: %+v", l)
		}
		// Tenant a's is untouched.
		wantUsage(t, "tenant a's usage", mustUsage(t, b, b.a.ID, testModel, plenty), 0, 1)
		_, err = b.store.GetBudget(b.ctx, b.a.ID, testModel)
		noErr(t, "GetBudget", err)
	}},
	{"ok/budget/tx-commits-job-and-reservation", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		mustSetBudget(t, b, b.a.ID, testModel, limit(2))
		p := jobParams(b.a.ID, "req-1")
		p.NoiseSigma = 0.75
		var (
			job storage.Job
			u   storage.BudgetUsage
		)
		err := b.store.InTx(b.ctx, func(tx storage.Tx) error {
			var (
				created bool
				err     error
			)
			job, created, err = tx.CreateJob(b.ctx, p)
			if err != nil || !created {
				return fmt.Errorf("CreateJob: created %v, err %w", created, err)
			}
			r := reservation(plenty)
			r.JobID = job.ID
			u, err = tx.ReserveBudget(b.ctx, r)
			return err
		})
		noErr(t, "InTx", err)
		equal(t, "ReserveBudget's usage", u, storage.BudgetUsage{
			Scope: storage.ScopeTenant, TenantID: b.a.ID, Model: testModel, Limit: limit(2),
			PeriodStart: start, PeriodEnd: start.AddDate(0, 1, 0), Reserved: unit,
		})
		equal(t, "BudgetUsage", mustUsage(t, b, b.a.ID, testModel, plenty), u)
		got, err := b.store.GetJob(b.ctx, b.a.ID, job.ID)
		noErr(t, "GetJob", err)
		if got.Status != storage.JobQueued || got.NoiseSigma != 0.75 || got.PrivacyUnits != unit ||
			got.PrivacyState != storage.PrivacyReserved || got.IdempotencyKey != "req-1" {
			t.Fatalf("committed job: %+v", got)
		}
		if job.NoiseSigma != 0.75 || job.PrivacyState != storage.PrivacyNone {
			t.Fatalf("CreateJob returned %+v", job)
		}
		if q := queued(t, b); !slices.Contains(q, job.ID) {
			t.Fatalf("no work item for the committed job %s in %v", job.ID, q)
		}
		entries := ledgerOf(t, b, b.a.ID, testModel, 10)
		for i := range entries {
			entries[i].ID = 0
		}
		now := clk.Now()
		equal(t, "ledger", entries[:2], []storage.LedgerEntry{
			{Scope: storage.ScopeTenant, TenantID: b.a.ID, Model: testModel, PeriodStart: start,
				Kind: storage.LedgerReserve, Units: unit, JobID: job.ID, Actor: "api-key:key_test", CreatedAt: now},
			{Scope: storage.ScopeTenant, TenantID: b.a.ID, Model: testModel, PeriodStart: start,
				Kind: storage.LedgerRenew, Actor: "api-key:key_test", CreatedAt: now},
		})
		checkLedger(t, b, u)

		// Store.CreateJob is the same transaction without a reservation.
		plain, created, err := b.store.CreateJob(b.ctx, p)
		if err != nil || created || plain.ID != job.ID {
			t.Fatalf("CreateJob replay: %+v, created %v, err %v", plain, created, err)
		}
	}},
	{"fail/budget/tx-error-rolls-back", func(t *testing.T, b bundle) {
		mustSetBudget(t, b, b.a.ID, testModel, limit(2))
		var job storage.Job
		err := b.store.InTx(b.ctx, func(tx storage.Tx) error {
			var err error
			job, _, err = tx.CreateJob(b.ctx, jobParams(b.a.ID, "req-1"))
			if err != nil {
				return err
			}
			r := reservation(plenty)
			r.JobID = job.ID
			if _, err := tx.ReserveBudget(b.ctx, r); err != nil {
				return err
			}
			return errBoom
		})
		if err != errBoom { // InTx returns fn's error as it is, not wrapped
			t.Fatalf("InTx returned %v, want fn's error as it is", err)
		}
		wantGone(t, b, job)
		// The idempotency key is free again.
		again := mustSubmit(t, b, jobParams(b.a.ID, "req-1"), reservation(plenty))
		if again.ID == job.ID {
			t.Fatalf("the job after the rollback has the rolled-back job's id %s", job.ID)
		}
	}},
	{"fail/budget/tx-panic-rolls-back", func(t *testing.T, b bundle) {
		var job storage.Job
		recovered := func() (r any) {
			defer func() { r = recover() }()
			_ = b.store.InTx(b.ctx, func(tx storage.Tx) error {
				var err error
				job, _, err = tx.CreateJob(b.ctx, jobParams(b.a.ID, ""))
				if err != nil {
					return err
				}
				r := reservation(plenty)
				r.JobID = job.ID
				if _, err := tx.ReserveBudget(b.ctx, r); err != nil {
					return err
				}
				panic("fn panics")
			})
			return nil
		}()
		if recovered != "fn panics" {
			t.Fatalf("InTx: recovered %v, want the panic to be re-raised", recovered)
		}
		// A transaction left open would block what follows: fail instead.
		ctx, cancel := context.WithTimeout(b.ctx, waitLimit)
		defer cancel()
		b.ctx = ctx
		wantGone(t, b, job)
		// The store still works (on SQLite: its one connection is free).
		mustSubmit(t, b, jobParams(b.a.ID, ""), reservation(plenty))
	}},
	{"fail/budget/exhausted-rolls-back-job", func(t *testing.T, b bundle) {
		b, _ = clocked(t, b)
		mustSetBudget(t, b, b.a.ID, testModel, limit(2))
		mustSubmit(t, b, jobParams(b.a.ID, ""), reservation(plenty))
		mustSubmit(t, b, jobParams(b.a.ID, ""), reservation(plenty))
		before := queued(t, b)
		j, created, err := submit(b, jobParams(b.a.ID, "third"), reservation(plenty))
		if !created {
			t.Fatal("the third job was not created in its transaction")
		}
		wantExhausted(t, "third query", err, storage.ScopeTenant, testModel, 0, time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC))
		_, err = b.store.GetJob(b.ctx, b.a.ID, j.ID)
		wantErr(t, "GetJob of the refused job", err, storage.ErrNotFound)
		if after := queued(t, b); len(after) != len(before) || slices.Contains(after, j.ID) {
			t.Fatalf("work items: %v before, %v after a refused query", before, after)
		}
		u := mustUsage(t, b, b.a.ID, testModel, plenty)
		wantUsage(t, "usage", u, 0, 2)
		if u.Left() != 0 {
			t.Fatalf("Left() = %d", u.Left())
		}
		checkLedger(t, b, u)
		list, err := b.store.ListJobs(b.ctx, b.a.ID, 10)
		noErr(t, "ListJobs", err)
		if len(list) != 2 {
			t.Fatalf("%d jobs, want 2", len(list))
		}
	}},
	{"ok/budget/concurrent-reservations-never-overspend", func(t *testing.T, b bundle) {
		b, _ = clocked(t, b)
		const fits, callers = 57, 200
		renews := time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC)
		mustSetBudget(t, b, b.a.ID, testModel, limit(fits))
		run := func() (ok, refused int, replayed []hegate.JobID) {
			var (
				mu   sync.Mutex
				wg   sync.WaitGroup
				errs []error
			)
			for i := range callers {
				wg.Go(func() {
					j, created, err := submit(b, jobParams(b.a.ID, fmt.Sprintf("k-%d", i)), reservation(plenty))
					mu.Lock()
					defer mu.Unlock()
					var be *storage.BudgetExhaustedError
					switch {
					case err == nil && created:
						ok++
					case err == nil:
						replayed = append(replayed, j.ID)
					case errors.As(err, &be):
						refused++
						if be.Scope != storage.ScopeTenant || be.Left != 0 || be.Cost != unit || !be.RenewsAt.Equal(renews) {
							errs = append(errs, fmt.Errorf("refusal %+v", *be))
						}
					default:
						errs = append(errs, err)
					}
				})
			}
			wg.Wait()
			if len(errs) > 0 {
				t.Fatalf("concurrent submits: %v", errs)
			}
			return ok, refused, replayed
		}
		ok, refused, replayed := run()
		if ok != fits || refused != callers-fits || len(replayed) != 0 {
			t.Fatalf("%d concurrent submits: %d reserved, %d refused, %d replayed; want %d, %d, 0",
				callers, ok, refused, len(replayed), fits, callers-fits)
		}
		u := mustUsage(t, b, b.a.ID, testModel, plenty)
		wantUsage(t, "usage", u, 0, fits)
		checkLedger(t, b, u)
		if s := ledgerSums(t, b, testModel, b.a.ID)[period{storage.ScopeTenant, u.PeriodStart}]; s.reserves != fits {
			t.Fatalf("%d reserve entries, want %d", s.reserves, fits)
		}
		jobs, err := b.store.ListJobs(b.ctx, b.a.ID, 1000)
		noErr(t, "ListJobs", err)
		if len(jobs) != fits || len(queued(t, b)) != fits {
			t.Fatalf("%d jobs and %d work items, want %d", len(jobs), len(queued(t, b)), fits)
		}

		// The same requests again: the 57 that were accepted replay their
		// jobs and pay nothing, the others are refused again.
		ledgerBefore := ledgerOf(t, b, b.a.ID, "", 100)
		ok, refused, replayed = run()
		if ok != 0 || refused != callers-fits || len(replayed) != fits {
			t.Fatalf("replayed submits: %d reserved, %d refused, %d replayed; want 0, %d, %d",
				ok, refused, len(replayed), callers-fits, fits)
		}
		for _, id := range replayed {
			if !slices.ContainsFunc(jobs, func(j storage.Job) bool { return j.ID == id }) {
				t.Fatalf("replay returned job %s, which is not one of the accepted ones", id)
			}
		}
		equal(t, "usage after the replay", mustUsage(t, b, b.a.ID, testModel, plenty), u)
		equal(t, "ledger after the replay", ledgerOf(t, b, b.a.ID, "", 100), ledgerBefore)
	}},
	{"ok/budget/settle-and-refund", func(t *testing.T, b bundle) {
		mustSetBudget(t, b, b.a.ID, testModel, limit(10))
		r := reservation(plenty)
		done := mustSubmit(t, b, jobParams(b.a.ID, ""), r)
		failedQueued := mustSubmit(t, b, jobParams(b.a.ID, ""), r)
		failedRunning := mustSubmit(t, b, jobParams(b.a.ID, ""), r)
		cancelled := mustSubmit(t, b, jobParams(b.a.ID, ""), r)
		open := mustSubmit(t, b, jobParams(b.a.ID, ""), r)
		wantUsage(t, "after 5 reservations", mustUsage(t, b, b.a.ID, testModel, plenty), 0, 5)

		_, err := b.store.StartJob(b.ctx, done.ID)
		noErr(t, "StartJob", err)
		j, err := b.store.CompleteJob(b.ctx, done.ID, "res", 1)
		noErr(t, "CompleteJob", err)
		if j.PrivacyState != storage.PrivacySettled || j.PrivacyUnits != unit {
			t.Fatalf("completed job: %+v", j)
		}
		wantUsage(t, "after CompleteJob", mustUsage(t, b, b.a.ID, testModel, plenty), 1, 4)

		j, err = b.store.FailJob(b.ctx, failedQueued.ID, "bad input")
		noErr(t, "FailJob of a queued job", err)
		if j.PrivacyState != storage.PrivacyRefunded {
			t.Fatalf("failed queued job: %+v", j)
		}
		_, err = b.store.StartJob(b.ctx, failedRunning.ID)
		noErr(t, "StartJob", err)
		j, err = b.store.FailJob(b.ctx, failedRunning.ID, "evaluation failed")
		noErr(t, "FailJob of a running job", err)
		if j.PrivacyState != storage.PrivacyRefunded {
			t.Fatalf("failed running job: %+v", j)
		}
		j, err = b.store.CancelJob(b.ctx, b.a.ID, cancelled.ID)
		noErr(t, "CancelJob", err)
		if j.PrivacyState != storage.PrivacyRefunded {
			t.Fatalf("cancelled job: %+v", j)
		}
		u := mustUsage(t, b, b.a.ID, testModel, plenty)
		wantUsage(t, "after the refunds", u, 1, 1)
		checkLedger(t, b, u)

		// A settled job is never refunded, a refunded one never refunded
		// or settled again.
		_, err = b.store.FailJob(b.ctx, done.ID, "late failure")
		wantErr(t, "FailJob after CompleteJob", err, storage.ErrConflict)
		_, err = b.store.CancelJob(b.ctx, b.a.ID, done.ID)
		wantErr(t, "CancelJob after CompleteJob", err, storage.ErrConflict)
		_, err = b.store.FailJob(b.ctx, cancelled.ID, "x")
		wantErr(t, "FailJob after CancelJob", err, storage.ErrConflict)
		_, err = b.store.CompleteJob(b.ctx, failedRunning.ID, "r", 1)
		wantErr(t, "CompleteJob after FailJob", err, storage.ErrConflict)
		equal(t, "usage after refused transitions", mustUsage(t, b, b.a.ID, testModel, plenty), u)
		checkLedger(t, b, u)

		byJob := map[hegate.JobID][]string{}
		for _, e := range ledgerOf(t, b, b.a.ID, testModel, 100) {
			if e.Kind == storage.LedgerSettle || e.Kind == storage.LedgerRefund {
				byJob[e.JobID] = append(byJob[e.JobID], e.Kind+" by "+e.Actor)
			}
		}
		equal(t, "settlements and refunds", byJob, map[hegate.JobID][]string{
			done.ID:          {"settle by " + storage.ActorWorker},
			failedQueued.ID:  {"refund by " + storage.ActorWorker},
			failedRunning.ID: {"refund by " + storage.ActorWorker},
			cancelled.ID:     {"refund by " + storage.ActorTenant},
		})
		got, err := b.store.GetJob(b.ctx, b.a.ID, open.ID)
		noErr(t, "GetJob", err)
		if got.PrivacyState != storage.PrivacyReserved {
			t.Fatalf("untouched job: %+v", got)
		}
	}},
	{"ok/budget/retry-settles-once", func(t *testing.T, b bundle) {
		j := mustSubmit(t, b, jobParams(b.a.ID, ""), reservation(limit(3)))
		for attempt := 1; attempt <= 2; attempt++ {
			got, err := b.store.StartJob(b.ctx, j.ID)
			noErr(t, "StartJob", err)
			if got.Attempts != attempt || got.PrivacyState != storage.PrivacyReserved || got.PrivacyUnits != unit {
				t.Fatalf("attempt %d: %+v", attempt, got)
			}
			wantUsage(t, "while running", mustUsage(t, b, b.a.ID, testModel, limit(3)), 0, 1)
		}
		_, err := b.store.CompleteJob(b.ctx, j.ID, "res", 1)
		noErr(t, "CompleteJob", err)
		_, err = b.store.CompleteJob(b.ctx, j.ID, "res", 1)
		wantErr(t, "second CompleteJob", err, storage.ErrConflict)
		_, err = b.store.StartJob(b.ctx, j.ID)
		wantErr(t, "StartJob after CompleteJob", err, storage.ErrConflict)
		u := mustUsage(t, b, b.a.ID, testModel, limit(3))
		wantUsage(t, "after CompleteJob", u, 1, 0)
		checkLedger(t, b, u)
		settles := 0
		for _, e := range ledgerOf(t, b, b.a.ID, testModel, 100) {
			if e.Kind == storage.LedgerSettle {
				settles++
			}
		}
		if settles != 1 {
			t.Fatalf("%d settle entries, want 1", settles)
		}
	}},
	{"ok/budget/no-reservation-no-charge", func(t *testing.T, b bundle) {
		mustSetBudget(t, b, b.a.ID, testModel, limit(1))
		for _, how := range []outcome{succeed, fail, cancel} {
			j := finishedJob(t, b, b.a.ID, "in", "res", how)
			if j.PrivacyState != storage.PrivacyNone || j.PrivacyUnits != 0 {
				t.Fatalf("job without a reservation: %+v", j)
			}
		}
		wantUsage(t, "usage", mustUsage(t, b, b.a.ID, testModel, plenty), 0, 0)
		for _, e := range ledgerOf(t, b, b.a.ID, "", 10) {
			if e.Kind != storage.LedgerSet {
				t.Fatalf("ledger entry for jobs without a reservation: %+v", e)
			}
		}
	}},
	{"fail/budget/reserve", func(t *testing.T, b bundle) {
		reserve := func(r storage.ReserveBudgetParams) error {
			return b.store.InTx(b.ctx, func(tx storage.Tx) error {
				_, err := tx.ReserveBudget(b.ctx, r)
				return err
			})
		}
		queuedJob := mustJob(t, b, b.a.ID)
		ok := reservation(plenty)
		ok.JobID = queuedJob.ID
		with := func(f func(r *storage.ReserveBudgetParams)) storage.ReserveBudgetParams {
			r := ok
			f(&r)
			return r
		}
		for name, r := range map[string]storage.ReserveBudgetParams{
			"no job":         with(func(r *storage.ReserveBudgetParams) { r.JobID = "" }),
			"cost 0":         with(func(r *storage.ReserveBudgetParams) { r.Cost = 0 }),
			"negative cost":  with(func(r *storage.ReserveBudgetParams) { r.Cost = -unit }),
			"bad default":    with(func(r *storage.ReserveBudgetParams) { r.Default.Period = "fortnight" }),
			"negative limit": with(func(r *storage.ReserveBudgetParams) { r.Default.Capacity = -1 }),
			"no actor":       with(func(r *storage.ReserveBudgetParams) { r.Actor = "" }),
			"too long actor": with(func(r *storage.ReserveBudgetParams) { r.Actor = strings.Repeat("x", storage.MaxActorBytes+1) }),
			"bad delta":      with(func(r *storage.ReserveBudgetParams) { r.Default.Delta = 2 }),
			"NaN epsilon":    with(func(r *storage.ReserveBudgetParams) { r.Default.Epsilon = math.NaN() }),
			"missing job":    with(func(r *storage.ReserveBudgetParams) { r.JobID = "job_missing" }),
			"empty params":   {},
		} {
			err := reserve(r)
			switch {
			case name == "missing job":
				wantErr(t, "ReserveBudget for a missing job", err, storage.ErrNotFound)
			case err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) ||
				errors.Is(err, storage.ErrBudgetExhausted):
				t.Errorf("ReserveBudget with %q: %v, want a validation error", name, err)
			}
		}
		// A job created before, in another transaction, may be reserved
		// once, while queued.
		noErr(t, "ReserveBudget of an earlier job", reserve(ok))
		wantErr(t, "second ReserveBudget", reserve(ok), storage.ErrConflict)
		running := mustJob(t, b, b.a.ID)
		_, err := b.store.StartJob(b.ctx, running.ID)
		noErr(t, "StartJob", err)
		wantErr(t, "ReserveBudget of a running job", reserve(with(func(r *storage.ReserveBudgetParams) { r.JobID = running.ID })), storage.ErrConflict)
		// Twice in one transaction.
		_, _, err = submit(b, jobParams(b.a.ID, ""), reservation(plenty))
		noErr(t, "submit", err)
		err = b.store.InTx(b.ctx, func(tx storage.Tx) error {
			j, _, err := tx.CreateJob(b.ctx, jobParams(b.a.ID, ""))
			if err != nil {
				return err
			}
			r := reservation(plenty)
			r.JobID = j.ID
			if _, err := tx.ReserveBudget(b.ctx, r); err != nil {
				return err
			}
			_, err = tx.ReserveBudget(b.ctx, r)
			return err
		})
		wantErr(t, "ReserveBudget twice in a transaction", err, storage.ErrConflict)
		u := mustUsage(t, b, b.a.ID, testModel, plenty)
		wantUsage(t, "usage", u, 0, 2)
		checkLedger(t, b, u)
	}},
	{"ok/budget/periods", func(t *testing.T, b bundle) {
		jan := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		feb := jan.AddDate(0, 1, 0)
		b, clk := clockedAt(t, b, time.Date(2030, 1, 31, 23, 0, 0, 0, time.UTC))
		mustSetBudget(t, b, b.a.ID, testModel, limit(2))
		left := mustSubmit(t, b, jobParams(b.a.ID, ""), reservation(plenty))
		settled := mustSubmit(t, b, jobParams(b.a.ID, ""), reservation(plenty))
		_, err := b.store.StartJob(b.ctx, settled.ID)
		noErr(t, "StartJob", err)
		_, err = b.store.CompleteJob(b.ctx, settled.ID, "r", 1)
		noErr(t, "CompleteJob", err)
		_, _, err = submit(b, jobParams(b.a.ID, ""), reservation(plenty))
		wantExhausted(t, "third query in January", err, storage.ScopeTenant, testModel, 0, feb)

		// February: a new period, nothing spent.
		clk.advance(2 * time.Hour)
		u := mustUsage(t, b, b.a.ID, testModel, plenty)
		want := storage.BudgetUsage{
			Scope: storage.ScopeTenant, TenantID: b.a.ID, Model: testModel, Limit: limit(2),
			PeriodStart: feb, PeriodEnd: feb.AddDate(0, 1, 0),
		}
		equal(t, "usage in February", u, want)
		mustSubmit(t, b, jobParams(b.a.ID, ""), reservation(plenty))
		renews := 0
		for _, e := range ledgerOf(t, b, b.a.ID, testModel, 100) {
			if e.Kind == storage.LedgerRenew {
				renews++
				if !e.PeriodStart.Equal(jan) && !e.PeriodStart.Equal(feb) {
					t.Fatalf("renew entry for %v", e.PeriodStart)
				}
			}
		}
		if renews != 2 {
			t.Fatalf("%d renew entries, want 2 (January, February)", renews)
		}

		// January's job settles into January.
		_, err = b.store.StartJob(b.ctx, left.ID)
		noErr(t, "StartJob", err)
		_, err = b.store.CompleteJob(b.ctx, left.ID, "r", 1)
		noErr(t, "CompleteJob", err)
		u = mustUsage(t, b, b.a.ID, testModel, plenty)
		wantUsage(t, "February after January's job settled", u, 0, 1)
		checkLedger(t, b, u)
		mustSubmit(t, b, jobParams(b.a.ID, ""), reservation(plenty))
		_, _, err = submit(b, jobParams(b.a.ID, ""), reservation(plenty))
		wantExhausted(t, "third query in February", err, storage.ScopeTenant, testModel, 0, feb.AddDate(0, 1, 0))

		clk.set(jan.Add(time.Hour))
		u = mustUsage(t, b, b.a.ID, testModel, plenty)
		if !u.PeriodStart.Equal(jan) {
			t.Fatalf("usage with the clock back in January: %+v", u)
		}
		wantUsage(t, "January", u, 2, 0)
		checkLedger(t, b, u)
	}},
	{"ok/budget/period-never", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		never := storage.BudgetLimit{Capacity: unit, Period: storage.BudgetNever}
		mustSubmit(t, b, jobParams(b.a.ID, ""), reservation(never))
		clk.advance(10 * 365 * 24 * time.Hour)
		_, _, err := submit(b, jobParams(b.a.ID, ""), reservation(never))
		wantExhausted(t, "second query ten years later", err, storage.ScopeTenant, testModel, 0, time.Time{})
		u := mustUsage(t, b, b.a.ID, testModel, never)
		if !u.PeriodStart.Equal(time.Unix(0, 0)) || !u.PeriodEnd.IsZero() || !u.Default {
			t.Fatalf("usage of a budget that never renews: %+v", u)
		}
		checkLedger(t, b, u)
	}},
	{"ok/budget/defaults", func(t *testing.T, b bundle) {
		b, _ = clocked(t, b)
		def := limit(2)
		u := mustUsage(t, b, b.a.ID, testModel, def)
		if !u.Default || u.Limit != def || u.NoiseSigma != 0 || u.Spent != 0 || u.Reserved != 0 {
			t.Fatalf("usage without a budget: %+v", u)
		}
		mustSubmit(t, b, jobParams(b.a.ID, ""), reservation(def))
		mustSubmit(t, b, jobParams(b.a.ID, ""), reservation(def))
		_, _, err := submit(b, jobParams(b.a.ID, ""), reservation(def))
		wantExhausted(t, "third query on the default", err, storage.ScopeTenant, testModel, 0,
			time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC))
		u = mustUsage(t, b, b.a.ID, testModel, def)
		if !u.Default {
			t.Fatalf("usage: %+v", u)
		}
		wantUsage(t, "default usage", u, 0, 2)
		checkLedger(t, b, u)

		// A default of capacity 0 refuses every query, and leaves nothing.
		zero := storage.BudgetLimit{Capacity: 0, Period: storage.BudgetDaily}
		_, _, err = submit(b, jobOf(b.a.ID, "closed", ""), reservation(zero))
		wantExhausted(t, "query on a zero default", err, storage.ScopeTenant, "closed", 0,
			time.Date(2030, 1, 3, 0, 0, 0, 0, time.UTC))
		list, err := b.store.ListBudgetUsage(b.ctx, b.a.ID, zero)
		noErr(t, "ListBudgetUsage", err)
		if len(list) != 0 {
			t.Fatalf("usage list after refused queries of a daily default: %+v", list)
		}

		// A budget set later takes over the period's usage.
		mustSetBudget(t, b, b.a.ID, testModel, limit(3))
		u = mustUsage(t, b, b.a.ID, testModel, def)
		if u.Default || u.Limit != limit(3) {
			t.Fatalf("usage once a budget is set: %+v", u)
		}
		wantUsage(t, "usage once a budget is set", u, 0, 2)
		mustSubmit(t, b, jobParams(b.a.ID, ""), reservation(def))
		// A budget set lower than what is used refuses at once.
		mustSetBudget(t, b, b.a.ID, testModel, limit(1))
		_, _, err = submit(b, jobParams(b.a.ID, ""), reservation(plenty))
		wantExhausted(t, "query over a lowered budget", err, storage.ScopeTenant, testModel, 0,
			time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC))
		if u := mustUsage(t, b, b.a.ID, testModel, def); u.Left() != 0 {
			t.Fatalf("Left() of a budget below its usage: %d", u.Left())
		}
	}},
	{"ok/budget/list-usage", func(t *testing.T, b bundle) {
		b, _ = clocked(t, b)
		jan := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		day := time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)
		daily := storage.BudgetLimit{Capacity: 4 * unit, Period: storage.BudgetDaily}
		mustSetBudget(t, b, b.a.ID, "zeta", limit(5))
		mustSetBudget(t, b, b.a.ID, "alpha", daily)
		mustSubmit(t, b, jobOf(b.a.ID, "alpha", ""), reservation(plenty))
		mustSubmit(t, b, jobOf(b.a.ID, "Beta", ""), reservation(plenty)) // default, monthly
		mustSubmit(t, b, jobOf(b.a.ID, "beta", ""), reservation(plenty))
		mustSubmit(t, b, jobOf(b.a.ID, "beta", ""), reservation(plenty))
		mustSubmit(t, b, jobOf(b.b.ID, "gamma", ""), reservation(plenty)) // another tenant's
		got, err := b.store.ListBudgetUsage(b.ctx, b.a.ID, plenty)
		noErr(t, "ListBudgetUsage", err)
		monthly := func(model hegate.ModelID, l storage.BudgetLimit, isDefault bool, reserved int64) storage.BudgetUsage {
			return storage.BudgetUsage{
				Scope: storage.ScopeTenant, TenantID: b.a.ID, Model: model, Limit: l, Default: isDefault,
				PeriodStart: jan, PeriodEnd: jan.AddDate(0, 1, 0), Reserved: reserved * unit,
			}
		}
		equal(t, "ListBudgetUsage", got, []storage.BudgetUsage{
			monthly("Beta", plenty, true, 1),
			{
				Scope: storage.ScopeTenant, TenantID: b.a.ID, Model: "alpha", Limit: daily,
				PeriodStart: day, PeriodEnd: day.AddDate(0, 0, 1), Reserved: unit,
			},
			monthly("beta", plenty, true, 2),
			monthly("zeta", limit(5), false, 0),
		})
		// With a daily default, the monthly rows of Beta and beta are not
		// in its current period.
		got, err = b.store.ListBudgetUsage(b.ctx, b.a.ID, daily)
		noErr(t, "ListBudgetUsage with a daily default", err)
		names := []hegate.ModelID{}
		for _, u := range got {
			names = append(names, u.Model)
		}
		equal(t, "models with a daily default", names, []hegate.ModelID{"alpha", "zeta"})
		_, err = b.store.ListBudgetUsage(b.ctx, b.a.ID, storage.BudgetLimit{Period: "hourly"})
		if err == nil {
			t.Fatal("ListBudgetUsage with an invalid default succeeded")
		}
		_, err = b.store.BudgetUsage(b.ctx, b.a.ID, "alpha", storage.BudgetLimit{Capacity: -1, Period: storage.BudgetDaily})
		if err == nil {
			t.Fatal("BudgetUsage with an invalid default succeeded")
		}
	}},
	{"ok/budget/adjust", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		jan := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		def := limit(10)
		adjust := func(units int64, reason string) (storage.BudgetUsage, error) {
			return b.store.AdjustBudget(b.ctx, storage.AdjustBudgetParams{
				TenantID: b.a.ID, Model: testModel, Units: units, Actor: "cli:ops", Reason: reason,
			}, def)
		}
		u, err := adjust(3*unit, "incident 42: answers released twice")
		noErr(t, "AdjustBudget", err)
		equal(t, "AdjustBudget", u, storage.BudgetUsage{
			Scope: storage.ScopeTenant, TenantID: b.a.ID, Model: testModel, Limit: def, Default: true,
			PeriodStart: jan, PeriodEnd: jan.AddDate(0, 1, 0), Spent: 3 * unit,
		})
		mustSubmit(t, b, jobParams(b.a.ID, ""), reservation(def))
		u, err = adjust(-unit, "refund one")
		noErr(t, "AdjustBudget", err)
		wantUsage(t, "after -1", u, 2, 1)
		_, err = adjust(-3*unit, "too much")
		wantErr(t, "AdjustBudget below 0", err, storage.ErrConflict)
		u = mustUsage(t, b, b.a.ID, testModel, def)
		wantUsage(t, "after a refused adjustment", u, 2, 1)
		checkLedger(t, b, u)
		entries := ledgerOf(t, b, b.a.ID, testModel, 100)
		equal(t, "last entry", entries[0].Kind+" "+entries[0].Reason+" "+entries[0].Actor, "adjust refund one cli:ops")
		if entries[0].Units != -unit || !entries[0].PeriodStart.Equal(jan) || !entries[0].CreatedAt.Equal(clk.Now()) {
			t.Fatalf("adjust entry: %+v", entries[0])
		}
		// Spent can exceed the capacity: nothing is left then.
		u, err = adjust(20*unit, "penalty")
		noErr(t, "AdjustBudget", err)
		if u.Left() != 0 {
			t.Fatalf("Left() = %d after spending over the capacity", u.Left())
		}
		_, _, err = submit(b, jobParams(b.a.ID, ""), reservation(def))
		wantExhausted(t, "query after the penalty", err, storage.ScopeTenant, testModel, 0, jan.AddDate(0, 1, 0))

		for name, p := range map[string]storage.AdjustBudgetParams{
			"no units":    {TenantID: b.a.ID, Model: testModel, Actor: "cli:ops", Reason: "x"},
			"no reason":   {TenantID: b.a.ID, Model: testModel, Units: 1, Actor: "cli:ops"},
			"no actor":    {TenantID: b.a.ID, Model: testModel, Units: 1, Reason: "x"},
			"no tenant":   {Model: testModel, Units: 1, Actor: "cli:ops", Reason: "x"},
			"no model":    {TenantID: b.a.ID, Units: 1, Actor: "cli:ops", Reason: "x"},
			"long reason": {TenantID: b.a.ID, Model: testModel, Units: 1, Actor: "cli:ops", Reason: strings.Repeat("r", storage.MaxReasonBytes+1)},
		} {
			if _, err := b.store.AdjustBudget(b.ctx, p, def); err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) {
				t.Errorf("AdjustBudget with %s: %v, want a validation error", name, err)
			}
		}
		_, err = b.store.AdjustBudget(b.ctx, storage.AdjustBudgetParams{TenantID: b.a.ID, Model: testModel, Units: 1, Actor: "a", Reason: "r"},
			storage.BudgetLimit{Period: "x"})
		if err == nil {
			t.Error("AdjustBudget with an invalid default succeeded")
		}
		_, err = b.store.AdjustBudget(b.ctx, storage.AdjustBudgetParams{TenantID: "ten_missing", Model: testModel, Units: 1, Actor: "a", Reason: "r"}, def)
		wantErr(t, "AdjustBudget of a missing tenant", err, storage.ErrNotFound)
		u = mustUsage(t, b, b.a.ID, testModel, def)
		wantUsage(t, "in the end", u, 22, 1)
		checkLedger(t, b, u)
	}},
	{"ok/budget/global-cap", func(t *testing.T, b bundle) {
		b, _ = clocked(t, b)
		// Eight tenants: each tenant's reservations queue on its own usage
		// row first, so it takes many tenants for many to race on the
		// global one.
		const fits, each = 23, 10
		tenants := []hegate.TenantID{b.a.ID, b.b.ID}
		for i := range 6 {
			tenants = append(tenants, mustTenant(t, b, fmt.Sprintf("tenant-%d", i)).ID)
		}
		daily := storage.BudgetLimit{Capacity: fits * unit, Period: storage.BudgetDaily}
		renews := time.Date(2030, 1, 3, 0, 0, 0, 0, time.UTC)
		g, err := b.store.SetGlobalBudget(b.ctx, storage.SetGlobalBudgetParams{
			Model: testModel, Limit: daily, Actor: "cli:root", Reason: "collusion cap",
		})
		noErr(t, "SetGlobalBudget", err)
		global := reservation(plenty)
		global.Global = true
		var (
			mu   sync.Mutex
			wg   sync.WaitGroup
			ok   = map[hegate.TenantID]int{}
			errs []error
		)
		for i := range len(tenants) * each {
			tenant := tenants[i%len(tenants)]
			wg.Go(func() {
				_, _, err := submit(b, jobParams(tenant, ""), global)
				mu.Lock()
				defer mu.Unlock()
				var be *storage.BudgetExhaustedError
				switch {
				case err == nil:
					ok[tenant]++
				case errors.As(err, &be):
					if be.Scope != storage.ScopeGlobal || be.Left != 0 || !be.RenewsAt.Equal(renews) {
						errs = append(errs, fmt.Errorf("refusal %+v", *be))
					}
				default:
					errs = append(errs, err)
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("concurrent submits: %v", errs)
		}
		total := 0
		for _, n := range ok {
			total += n
		}
		if total != fits {
			t.Fatalf("%d queries reserved by the tenants (%v), want %d in all", total, ok, fits)
		}
		gu, err := b.store.GlobalBudgetUsage(b.ctx, testModel)
		noErr(t, "GlobalBudgetUsage", err)
		equal(t, "GlobalBudgetUsage", gu, storage.BudgetUsage{
			Scope: storage.ScopeGlobal, Model: testModel, Limit: g.BudgetLimit,
			PeriodStart: renews.AddDate(0, 0, -1), PeriodEnd: renews, Reserved: fits * unit,
		})
		checkLedger(t, b, gu, tenants...)
		for _, tn := range tenants {
			u := mustUsage(t, b, tn, testModel, plenty)
			wantUsage(t, "tenant usage", u, 0, int64(ok[tn]))
			checkLedger(t, b, u)
		}

		// Settle one job and refund another: the global usage follows,
		// and the refund makes room for one more query.
		var jobs []storage.Job
		for _, tn := range tenants {
			list, err := b.store.ListJobs(b.ctx, tn, 100)
			noErr(t, "ListJobs", err)
			jobs = append(jobs, list...)
		}
		if len(jobs) != fits {
			t.Fatalf("%d jobs, want %d", len(jobs), fits)
		}
		_, err = b.store.StartJob(b.ctx, jobs[0].ID)
		noErr(t, "StartJob", err)
		_, err = b.store.CompleteJob(b.ctx, jobs[0].ID, "r", 1)
		noErr(t, "CompleteJob", err)
		_, err = b.store.CancelJob(b.ctx, jobs[1].TenantID, jobs[1].ID)
		noErr(t, "CancelJob", err)
		gu, err = b.store.GlobalBudgetUsage(b.ctx, testModel)
		noErr(t, "GlobalBudgetUsage", err)
		wantUsage(t, "global usage", gu, 1, fits-2)
		checkLedger(t, b, gu, tenants...)
		mustSubmit(t, b, jobParams(b.b.ID, ""), global)
		_, _, err = submit(b, jobParams(b.a.ID, ""), global)
		wantExhausted(t, "query over the global cap", err, storage.ScopeGlobal, testModel, 0, renews)

		// Without Global the cap does not apply, and the reservation is
		// not counted in it.
		mustSubmit(t, b, jobParams(b.a.ID, ""), reservation(plenty))
		gu, err = b.store.GlobalBudgetUsage(b.ctx, testModel)
		noErr(t, "GlobalBudgetUsage", err)
		wantUsage(t, "global usage", gu, 1, fits-1)
		// Nor for a model without a global budget.
		other := reservation(plenty)
		other.Global = true
		j := mustSubmit(t, b, jobOf(b.a.ID, "uncapped", ""), other)
		_, err = b.store.StartJob(b.ctx, j.ID)
		noErr(t, "StartJob", err)
		_, err = b.store.CompleteJob(b.ctx, j.ID, "r", 1)
		noErr(t, "CompleteJob of a job without a global reservation", err)
		for _, e := range ledgerOf(t, b, b.a.ID, "uncapped", 100) {
			if e.Scope != storage.ScopeTenant {
				t.Fatalf("global entry for a model without a global budget: %+v", e)
			}
		}
		_, err = b.store.GlobalBudgetUsage(b.ctx, "uncapped")
		wantErr(t, "GlobalBudgetUsage of a model without a global budget", err, storage.ErrNotFound)
	}},
	{"ok/budget/global-set-delete", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		p := storage.SetGlobalBudgetParams{Model: "shared", Limit: limit(9), Actor: "cli:root", Reason: "cap"}
		g, err := b.store.SetGlobalBudget(b.ctx, p)
		noErr(t, "SetGlobalBudget", err)
		equal(t, "SetGlobalBudget", g, storage.GlobalBudget{
			Model: "shared", BudgetLimit: limit(9), UpdatedAt: clk.Now(), UpdatedBy: "cli:root",
		})
		p.Limit = limit(4)
		g, err = b.store.SetGlobalBudget(b.ctx, p)
		noErr(t, "SetGlobalBudget again", err)
		if g.BudgetLimit != limit(4) {
			t.Fatalf("replaced global budget: %+v", g)
		}
		gu, err := b.store.GlobalBudgetUsage(b.ctx, "shared")
		noErr(t, "GlobalBudgetUsage", err)
		if gu.Limit != limit(4) || gu.TenantID != "" || gu.Default || gu.Spent != 0 || gu.Reserved != 0 {
			t.Fatalf("GlobalBudgetUsage: %+v", gu)
		}
		r := reservation(plenty)
		r.Global = true
		j := mustSubmit(t, b, jobOf(b.a.ID, "shared", ""), r)
		noErr(t, "DeleteGlobalBudget", b.store.DeleteGlobalBudget(b.ctx, "shared", "cli:root", "lifted"))
		_, err = b.store.GlobalBudgetUsage(b.ctx, "shared")
		wantErr(t, "GlobalBudgetUsage after DeleteGlobalBudget", err, storage.ErrNotFound)
		wantErr(t, "DeleteGlobalBudget again", b.store.DeleteGlobalBudget(b.ctx, "shared", "cli:root", ""), storage.ErrNotFound)
		// A job reserved under the deleted budget still settles.
		_, err = b.store.StartJob(b.ctx, j.ID)
		noErr(t, "StartJob", err)
		_, err = b.store.CompleteJob(b.ctx, j.ID, "r", 1)
		noErr(t, "CompleteJob", err)
		// The global set and delete entries belong to no tenant.
		for _, e := range ledgerOf(t, b, b.a.ID, "", 100) {
			if e.Kind == storage.LedgerSet || e.Kind == storage.LedgerDelete {
				t.Fatalf("tenant a sees %+v", e)
			}
		}
		for name, p := range map[string]storage.SetGlobalBudgetParams{
			"no model":   {Limit: limit(1), Actor: "a"},
			"no actor":   {Model: "m", Limit: limit(1)},
			"bad period": {Model: "m", Limit: storage.BudgetLimit{Capacity: 1, Period: "hour"}, Actor: "a"},
			"capacity":   {Model: "m", Limit: storage.BudgetLimit{Capacity: -1, Period: storage.BudgetDaily}, Actor: "a"},
		} {
			if _, err := b.store.SetGlobalBudget(b.ctx, p); err == nil {
				t.Errorf("SetGlobalBudget with %s succeeded", name)
			}
		}
		if err := b.store.DeleteGlobalBudget(b.ctx, "m", "", ""); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("DeleteGlobalBudget without an actor: %v, want a validation error", err)
		}
	}},
	{"ok/budget/ledger-paging", func(t *testing.T, b bundle) {
		mustSetBudget(t, b, b.a.ID, "m1", limit(5))
		mustSetBudget(t, b, b.a.ID, "m2", limit(5))
		for range 3 {
			mustSubmit(t, b, jobOf(b.a.ID, "m1", ""), reservation(plenty))
			mustSubmit(t, b, jobOf(b.a.ID, "m2", ""), reservation(plenty))
		}
		mustSubmit(t, b, jobOf(b.b.ID, "m1", ""), reservation(plenty))
		all := ledgerOf(t, b, b.a.ID, "", 1000)
		if len(all) != 2+2+6 { // set, renew and 3 reserves for each model
			t.Fatalf("%d entries, want 10: %+v", len(all), all)
		}
		for _, size := range []int{1, 3, 10} {
			equal(t, fmt.Sprintf("pages of %d", size), ledgerOf(t, b, b.a.ID, "", size), all)
		}
		m1 := ledgerOf(t, b, b.a.ID, "m1", 2)
		want := slices.DeleteFunc(slices.Clone(all), func(e storage.LedgerEntry) bool { return e.Model != "m1" })
		equal(t, "model m1", m1, want)
		page, err := b.store.Ledger(b.ctx, storage.LedgerQuery{TenantID: b.a.ID, BeforeID: all[len(all)-1].ID, Limit: 10})
		noErr(t, "Ledger before the first entry", err)
		equal(t, "before the first entry", page, []storage.LedgerEntry{})
		for name, q := range map[string]storage.LedgerQuery{
			"no tenant":      {Limit: 1},
			"limit 0":        {TenantID: b.a.ID},
			"limit too big":  {TenantID: b.a.ID, Limit: storage.MaxLedgerEntries + 1},
			"negative limit": {TenantID: b.a.ID, Limit: -1},
			"negative id":    {TenantID: b.a.ID, Limit: 1, BeforeID: -1},
		} {
			if got, err := b.store.Ledger(b.ctx, q); err == nil {
				t.Errorf("Ledger with %s: %d entries, want an error", name, len(got))
			}
		}
		if got, err := b.store.Ledger(b.ctx, storage.LedgerQuery{TenantID: b.a.ID, Limit: storage.MaxLedgerEntries}); err != nil || len(got) != len(all) {
			t.Errorf("Ledger with the largest limit: %d entries, %v", len(got), err)
		}
	}},
	{"fail/budget/job-noise-sigma", func(t *testing.T, b bundle) {
		for _, sigma := range []float64{-1, math.NaN(), math.Inf(1)} {
			p := jobParams(b.a.ID, "")
			p.NoiseSigma = sigma
			if _, _, err := b.store.CreateJob(b.ctx, p); err == nil || errors.Is(err, storage.ErrNotFound) {
				t.Errorf("CreateJob with NoiseSigma %v: %v, want a validation error", sigma, err)
			}
		}
		p := jobParams(b.a.ID, "")
		p.NoiseSigma = 2.5
		j, _, err := b.store.CreateJob(b.ctx, p)
		noErr(t, "CreateJob", err)
		list, err := b.store.ListJobs(b.ctx, b.a.ID, 10)
		noErr(t, "ListJobs", err)
		if len(list) != 1 || list[0].NoiseSigma != 2.5 || j.NoiseSigma != 2.5 {
			t.Fatalf("jobs with NoiseSigma 2.5: %+v", list)
		}
	}},
}

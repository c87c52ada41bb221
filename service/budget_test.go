package service_test

import (
	"context"
	"testing"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/service/servicetest"
	"github.com/hegate/hegate/storage"
)

// TestBuiltinBudgetOwnership: a budget a tenant set (through the API or
// the console) for its own model of a name that a built-in model now
// takes is not applied to the built-in: the charge is refused until the
// operator sets it. An operator's budget applies.
func TestBuiltinBudgetOwnership(t *testing.T) {
	ctx := context.Background()
	g := ir.Chain("shadow", []int{4},
		&ir.Node{Op: ir.OpDense, Dense: &ir.Dense{In: 4, Out: 2, Weights: []float64{0.1, 0.2, 0.3, 0.4, -0.1, -0.2, -0.3, -0.4}, Bias: []float64{0, 0}}},
	)
	m, err := he.Compile(ctx, g, he.CompileOptions{Params: "test-n12", AllowInsecure: true, Privacy: he.PrivacyOptions{OutputRange: [2]float64{-4, 4}, Sigma: 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	r := servicetest.New(t, servicetest.Config{Builtin: []*he.Model{m}, AllowInsecure: true})
	model, err := r.Catalog.Lookup(ctx, r.Acme.ID, "shadow", 0)
	if err != nil {
		t.Fatal(err)
	}
	lim, err := service.BudgetLimit(1e6, 1e-6, "day")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		actor  string
		refuse bool
	}{
		{"api-key:key_x", true},
		{"user:usr_alice", true},
		{"device:dev_x", true},
		{"operator:usr_olga", false},
		{"cli:root", false},
	} {
		if _, err := r.Store.SetBudget(ctx, storage.SetBudgetParams{TenantID: r.Acme.ID, Model: "shadow", Limit: lim, Actor: c.actor}); err != nil {
			t.Fatal(err)
		}
		_, err := r.Service.ChargeFor(ctx, "test", r.Acme.ID, model)
		if refused := hegate.KindOf(err) == hegate.KindForbidden; refused != c.refuse {
			t.Errorf("budget set by %s: charge error %v, want refused %v", c.actor, err, c.refuse)
		}
	}
	// And no tenant principal may set it in the first place.
	alice := servicetest.Principal(r.Alice)
	if _, err := r.Service.SetBudget(ctx, alice, service.SetBudgetParams{Model: "shadow", Epsilon: 1, Delta: 1e-6, Period: "day"}); hegate.KindOf(err) != hegate.KindForbidden {
		t.Errorf("a tenant admin setting a built-in's budget: %v", err)
	}
	if r.Service.CanSetBudget(alice, "shadow") || !r.Service.CanSetBudget(service.Principal{Role: service.RoleOperator, Tenant: r.Acme.ID}, "shadow") {
		t.Error("CanSetBudget disagrees with SetBudget")
	}
}

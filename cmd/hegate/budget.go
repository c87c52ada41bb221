package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/dp"
	"github.com/hegate/hegate/gateway"
	"github.com/hegate/hegate/storage"
)

const budgetUsage = `usage:
  operator, on the database (any model, any tenant):
    hegate budget set    --tenant T --model M --epsilon E --delta D --period day|week|month|never [--sigma S] [--reason R]
    hegate budget show   --tenant T [--json]
    hegate budget delete --tenant T --model M [--reason R]
    hegate budget adjust --tenant T --model M --rho R --reason R   (R < 0 gives back)
    hegate budget ledger --tenant T [--model M] [--limit N] [--json]
    hegate budget global --model M --epsilon E --delta D --period P [--reason R]   (cap across tenants, built-in models)
    hegate budget global --model M --show
  device or tenant admin, through the API (--server, HEGATE_API_KEY):
    hegate budget status [--json]`

// runBudget manages privacy budgets.
func runBudget(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, budgetUsage)
		return nil
	}
	if args[0] == "status" {
		return budgetStatus(ctx, args[1:], stdout, stderr)
	}
	fs := newFlags("budget "+args[0], stderr)
	var cfg backendConfig
	cfg.register(fs)
	tenant := fs.String("tenant", "", "tenant name")
	model := fs.String("model", "", "model name")
	epsilon := fs.Float64("epsilon", 0, "epsilon allowed per period")
	delta := fs.Float64("delta", 1e-5, "delta of the budget")
	period := fs.String("period", "month", "renewal period: day, week, month or never")
	sigma := fs.Float64("sigma", 0, "noise standard deviation of each output for this tenant (0: the model's)")
	reason := fs.String("reason", "", "why, for the ledger")
	rho := fs.String("rho", "", "rho to add to this period's spend (exact decimal; negative gives back)")
	limit := fs.Int("limit", 50, "ledger entries")
	asJSON := fs.Bool("json", false, "print JSON")
	show := fs.Bool("show", false, "global: show the model's global usage")
	defSpec := fs.String("default-budget", envOr("HEGATE_DEFAULT_BUDGET", ""), "the server's --default-budget, so that show and adjust see what the gateway enforces for tenants without a budget [HEGATE_DEFAULT_BUDGET]")
	fs.Usage = func() { fmt.Fprintln(stderr, budgetUsage); fs.PrintDefaults() }
	rest, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("budget %s: unexpected arguments %q", args[0], rest)
	}
	def, err := parseBudgetSpec(*defSpec)
	if err != nil {
		return fmt.Errorf("--default-budget: %w", err)
	}
	store, err := cfg.openStore(ctx, cfg.logger(io.Discard))
	if err != nil {
		return err
	}
	defer store.Close()
	actor := operatorActor()
	need := func(names ...string) error {
		for _, n := range names {
			if fs.Lookup(n).Value.String() == "" {
				return fmt.Errorf("budget %s needs --%s", args[0], n)
			}
		}
		return nil
	}
	tenantID := func() (hegate.TenantID, error) {
		if err := need("tenant"); err != nil {
			return "", err
		}
		t, err := store.GetTenantByName(ctx, *tenant)
		if err != nil {
			return "", fmt.Errorf("tenant %q: %w", *tenant, err)
		}
		return t.ID, nil
	}
	switch args[0] {
	case "set":
		tid, err := tenantID()
		if err != nil {
			return err
		}
		if err := need("model"); err != nil {
			return err
		}
		lim, err := gateway.BudgetLimit(*epsilon, *delta, *period)
		if err != nil {
			return err
		}
		if !(*sigma >= 0) || math.IsInf(*sigma, 0) {
			return errors.New("--sigma must be a finite number >= 0")
		}
		b, err := gateway.SetBudgetCarrying(ctx, store, storage.SetBudgetParams{TenantID: tid, Model: hegate.ModelID(*model), Limit: lim, NoiseSigma: *sigma, Actor: actor, Reason: *reason}, def)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "budget of tenant %s for model %s: epsilon %g, delta %g per %s (rho %s)\n", *tenant, b.Model, b.Epsilon, b.Delta, b.Period, dp.Rho(b.Capacity))
		return nil
	case "show":
		tid, err := tenantID()
		if err != nil {
			return err
		}
		us, err := store.ListBudgetUsage(ctx, tid, def)
		if err != nil {
			return err
		}
		return printBudgets(stdout, us, *asJSON)
	case "delete":
		tid, err := tenantID()
		if err != nil {
			return err
		}
		if err := need("model"); err != nil {
			return err
		}
		if err := store.DeleteBudget(ctx, tid, hegate.ModelID(*model), actor, *reason); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "budget of tenant %s for model %s deleted\n", *tenant, *model)
		return nil
	case "adjust":
		tid, err := tenantID()
		if err != nil {
			return err
		}
		if err := need("model", "rho", "reason"); err != nil {
			return err
		}
		units, err := dp.ParseRho(*rho)
		if err != nil {
			return err
		}
		u, err := store.AdjustBudget(ctx, storage.AdjustBudgetParams{TenantID: tid, Model: hegate.ModelID(*model), Units: int64(units), Actor: actor, Reason: *reason}, def)
		if err != nil {
			return err
		}
		return printBudgets(stdout, []storage.BudgetUsage{u}, *asJSON)
	case "ledger":
		tid, err := tenantID()
		if err != nil {
			return err
		}
		es, err := store.Ledger(ctx, storage.LedgerQuery{TenantID: tid, Model: hegate.ModelID(*model), Limit: *limit})
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(es)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTIME\tSCOPE\tMODEL\tKIND\tRHO\tJOB\tACTOR\tREASON")
		for _, e := range es {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.CreatedAt.Format(timeFormat), e.Scope, e.Model, e.Kind, dp.Rho(e.Units), e.JobID, e.Actor, e.Reason)
		}
		return tw.Flush()
	case "global":
		if err := need("model"); err != nil {
			return err
		}
		if *show {
			u, err := store.GlobalBudgetUsage(ctx, hegate.ModelID(*model))
			if err != nil {
				return err
			}
			return printBudgets(stdout, []storage.BudgetUsage{u}, *asJSON)
		}
		lim, err := gateway.BudgetLimit(*epsilon, *delta, *period)
		if err != nil {
			return err
		}
		b, err := store.SetGlobalBudget(ctx, storage.SetGlobalBudgetParams{Model: hegate.ModelID(*model), Limit: lim, Actor: actor, Reason: *reason})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "global budget of model %s: epsilon %g, delta %g per %s (rho %s) across all tenants\n", b.Model, b.Epsilon, b.Delta, b.Period, dp.Rho(b.Capacity))
		return nil
	}
	return fmt.Errorf("unknown budget subcommand %q\n%s", args[0], budgetUsage)
}

// operatorActor names the operator in the ledger.
func operatorActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

func printBudgets(w io.Writer, us []storage.BudgetUsage, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(us)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tSCOPE\tEPSILON\tDELTA\tPERIOD\tSPENT RHO\tRESERVED RHO\tLEFT RHO\tRENEWS")
	for _, u := range us {
		renews := "never"
		if !u.PeriodEnd.IsZero() {
			renews = u.PeriodEnd.Format(timeFormat)
		}
		eps := fmt.Sprintf("%g", u.Limit.Epsilon)
		if u.Default {
			eps = "(default)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%g\t%s\t%s\t%s\t%s\t%s\n", u.Model, u.Scope, eps, u.Limit.Delta, u.Limit.Period, dp.Rho(u.Spent), dp.Rho(u.Reserved), dp.Rho(u.Left()), renews)
	}
	return tw.Flush()
}

// budgetStatus prints the caller's budgets through the API.
func budgetStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("budget status", stderr)
	var cfg deviceConfig
	cfg.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseArgs(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	cl, err := cfg.client()
	if err != nil {
		return err
	}
	bs, err := cl.Budgets(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(api.BudgetList{Budgets: bs})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tEPSILON\tDELTA\tPERIOD\tSPENT EPS\tLEFT RHO\tQUERY EPS\tQUERIES LEFT\tRENEWS")
	for _, b := range bs {
		renews := "never"
		if b.RenewsAt != nil {
			renews = b.RenewsAt.Format(timeFormat)
		}
		qe, ql := "-", "-"
		if b.Query != nil {
			qe, ql = fmt.Sprintf("%.3g", b.Query.Epsilon), fmt.Sprint(b.Query.QueriesLeft)
		}
		eps := fmt.Sprintf("%g", b.Epsilon)
		if b.Default {
			eps += " (default)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%g\t%s\t%.3g\t%s\t%s\t%s\t%s\n", b.Model, eps, b.Delta, b.Period, b.SpentEpsilon, b.LeftRho, qe, ql, renews)
	}
	return tw.Flush()
}

// parseBudgetSpec parses "epsilon=E,delta=D,period=P" ("" is no budget).
func parseBudgetSpec(spec string) (storage.BudgetLimit, error) {
	if spec == "" {
		return storage.BudgetLimit{Period: storage.BudgetNever}, nil
	}
	eps, delta, period := 0.0, 1e-5, "month"
	for _, kv := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return storage.BudgetLimit{}, fmt.Errorf("%q: want key=value", kv)
		}
		var err error
		switch k {
		case "epsilon":
			eps, err = strconv.ParseFloat(v, 64)
		case "delta":
			delta, err = strconv.ParseFloat(v, 64)
		case "period":
			period = v
		default:
			return storage.BudgetLimit{}, fmt.Errorf("unknown key %q (want epsilon, delta, period)", k)
		}
		if err != nil {
			return storage.BudgetLimit{}, fmt.Errorf("%s=%q is not a number", k, v)
		}
	}
	return gateway.BudgetLimit(eps, delta, period)
}

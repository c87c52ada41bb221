package main

import (
	"fmt"
	"io"
	"os/user"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/dp"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// budgetFlags are the operator budget commands' flags (each registers
// those it takes).
type budgetFlags struct {
	tenant, model, period, reason, rho, defSpec string
	epsilon, delta, sigma                       float64
	limit                                       int
	show                                        bool
	out                                         *output
}

func newBudgetCmd() *cobra.Command {
	var set, show, del, adjust, ledger, global budgetFlags
	setCmd := budgetCommand("set --tenant T --model M --epsilon E --delta D --period day|week|month|never [--sigma S] [--reason R]",
		"set (or replace) a tenant's budget for a model, at once", &set, []string{"tenant", "model", "epsilon", "delta", "period", "sigma", "reason", "default-budget"},
		func(cmd *cobra.Command, store storage.Store, f *budgetFlags, def storage.BudgetLimit) error {
			tid, err := f.tenantID(cmd, store)
			if err != nil {
				return err
			}
			if err := need(cmd, "model"); err != nil {
				return err
			}
			svc, p, err := operatorService(store, def)
			if err != nil {
				return err
			}
			p.Tenant = tid
			b, err := svc.SetBudget(cmd.Context(), p, service.SetBudgetParams{
				Model: hegate.ModelID(f.model), Epsilon: f.epsilon, Delta: f.delta, Period: f.period, NoiseSigma: f.sigma, Reason: f.reason,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "budget of tenant %s for model %s: epsilon %g, delta %g per %s (rho %s)\n", f.tenant, b.Model, b.Epsilon, b.Delta, b.Period, dp.Rho(b.Capacity))
			return nil
		})
	showCmd := budgetCommand("show --tenant T", "every budget of a tenant set or used this period: spent, reserved, left (rho), renewal",
		&show, []string{"tenant", "default-budget", "output"},
		func(cmd *cobra.Command, store storage.Store, f *budgetFlags, def storage.BudgetLimit) error {
			tid, err := f.tenantID(cmd, store)
			if err != nil {
				return err
			}
			us, err := store.ListBudgetUsage(cmd.Context(), tid, def)
			if err != nil {
				return err
			}
			return printBudgets(cmd.OutOrStdout(), us, f.out.JSON())
		})
	delCmd := budgetCommand("delete --tenant T --model M [--reason R]", "remove a budget: the default applies again",
		&del, []string{"tenant", "model", "reason"},
		func(cmd *cobra.Command, store storage.Store, f *budgetFlags, _ storage.BudgetLimit) error {
			tid, err := f.tenantID(cmd, store)
			if err != nil {
				return err
			}
			if err := need(cmd, "model"); err != nil {
				return err
			}
			svc, p, err := operatorService(store, storage.BudgetLimit{})
			if err != nil {
				return err
			}
			p.Tenant = tid
			if err := svc.DeleteBudget(cmd.Context(), p, hegate.ModelID(f.model), f.reason); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "budget of tenant %s for model %s deleted\n", f.tenant, f.model)
			return nil
		})
	adjustCmd := budgetCommand("adjust --tenant T --model M --rho R --reason R", "add rho to this period's spend (negative gives back), with the reason in the ledger",
		&adjust, []string{"tenant", "model", "rho", "reason", "default-budget", "output"},
		func(cmd *cobra.Command, store storage.Store, f *budgetFlags, def storage.BudgetLimit) error {
			tid, err := f.tenantID(cmd, store)
			if err != nil {
				return err
			}
			if err := need(cmd, "model", "rho", "reason"); err != nil {
				return err
			}
			units, err := dp.ParseRho(f.rho)
			if err != nil {
				return err
			}
			u, err := store.AdjustBudget(cmd.Context(), storage.AdjustBudgetParams{TenantID: tid, Model: hegate.ModelID(f.model), Units: int64(units), Actor: operatorActor(), Reason: f.reason}, def)
			if err != nil {
				return err
			}
			auditOperator(cmd, store, tid, "budget.adjust", f.model, map[string]any{"rho": f.rho, "reason": f.reason})
			return printBudgets(cmd.OutOrStdout(), []storage.BudgetUsage{u}, f.out.JSON())
		})
	ledgerCmd := budgetCommand("ledger --tenant T [--model M] [--limit N]", "the budget ledger of a tenant, newest first",
		&ledger, []string{"tenant", "model", "limit", "output"},
		func(cmd *cobra.Command, store storage.Store, f *budgetFlags, _ storage.BudgetLimit) error {
			tid, err := f.tenantID(cmd, store)
			if err != nil {
				return err
			}
			es, err := store.Ledger(cmd.Context(), storage.LedgerQuery{TenantID: tid, Model: hegate.ModelID(f.model), Limit: f.limit})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if f.out.JSON() {
				if es == nil {
					es = []storage.LedgerEntry{}
				}
				return printJSON(w, es)
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "ID\tTIME\tSCOPE\tMODEL\tKIND\tRHO\tJOB\tACTOR\tREASON")
			for _, e := range es {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.CreatedAt.Format(timeFormat), e.Scope, e.Model, e.Kind, dp.Rho(e.Units), e.JobID, e.Actor, e.Reason)
			}
			return tw.Flush()
		})
	globalCmd := budgetCommand("global --model M (--epsilon E --delta D --period P [--reason R] | --show)",
		"cap a built-in model's spend across all tenants (against colluding tenants), or --show its usage",
		&global, []string{"model", "epsilon", "delta", "period", "reason", "show", "output"},
		func(cmd *cobra.Command, store storage.Store, f *budgetFlags, _ storage.BudgetLimit) error {
			if err := need(cmd, "model"); err != nil {
				return err
			}
			if f.show {
				u, err := store.GlobalBudgetUsage(cmd.Context(), hegate.ModelID(f.model))
				if err != nil {
					return err
				}
				return printBudgets(cmd.OutOrStdout(), []storage.BudgetUsage{u}, f.out.JSON())
			}
			lim, err := service.BudgetLimit(f.epsilon, f.delta, f.period)
			if err != nil {
				return err
			}
			b, err := store.SetGlobalBudget(cmd.Context(), storage.SetGlobalBudgetParams{Model: hegate.ModelID(f.model), Limit: lim, Actor: operatorActor(), Reason: f.reason})
			if err != nil {
				return err
			}
			auditOperator(cmd, store, "", "budget.global.set", f.model, map[string]any{"epsilon": f.epsilon, "delta": f.delta, "period": f.period, "reason": f.reason})
			fmt.Fprintf(cmd.OutOrStdout(), "global budget of model %s: epsilon %g, delta %g per %s (rho %s) across all tenants\n", b.Model, b.Epsilon, b.Delta, b.Period, dp.Rho(b.Capacity))
			return nil
		})
	return group("budget", "privacy budgets: set | show | delete | adjust | ledger | global (operator); status (API)",
		`Privacy budgets. The operator's commands work on the database (any model,
any tenant); budget status asks the API for the caller's budgets (--server
and a credential: flag, environment or context).`,
		setCmd, showCmd, delCmd, adjustCmd, ledgerCmd, globalCmd, newBudgetStatusCmd())
}

// budgetCommand is an operator budget command with the backend flags and
// the named budget flags.
func budgetCommand(use, short string, f *budgetFlags, flags []string, run func(*cobra.Command, storage.Store, *budgetFlags, storage.BudgetLimit) error) *cobra.Command {
	var cfg backendConfig
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			def, err := parseBudgetSpec(f.defSpec)
			if err != nil {
				return fmt.Errorf("--default-budget: %w", err)
			}
			store, err := cfg.openStore(cmd.Context(), cfg.logger(io.Discard))
			if err != nil {
				return err
			}
			defer store.Close()
			return run(cmd, store, f, def)
		},
	}
	cfg.register(cmd.Flags())
	fs := cmd.Flags()
	for _, name := range flags {
		switch name {
		case "tenant":
			fs.StringVar(&f.tenant, "tenant", "", "tenant name")
		case "model":
			fs.StringVar(&f.model, "model", "", "model name")
		case "epsilon":
			fs.Float64Var(&f.epsilon, "epsilon", 0, "epsilon allowed per period")
		case "delta":
			fs.Float64Var(&f.delta, "delta", 1e-5, "delta of the budget")
		case "period":
			fs.StringVar(&f.period, "period", "month", "renewal period: day, week, month or never")
			_ = cmd.RegisterFlagCompletionFunc("period", cobra.FixedCompletions([]string{"day", "week", "month", "never"}, cobra.ShellCompDirectiveNoFileComp))
		case "sigma":
			fs.Float64Var(&f.sigma, "sigma", 0, "noise standard deviation of each output for this tenant (0: the model's)")
		case "reason":
			fs.StringVar(&f.reason, "reason", "", "why, for the ledger")
		case "rho":
			fs.StringVar(&f.rho, "rho", "", "rho to add to this period's spend (exact decimal; negative gives back)")
		case "limit":
			fs.IntVar(&f.limit, "limit", 50, "ledger entries")
		case "show":
			fs.BoolVar(&f.show, "show", false, "show the model's global usage")
		case "default-budget":
			fs.StringVar(&f.defSpec, "default-budget", envOr("HEGATE_DEFAULT_BUDGET", ""), "the server's --default-budget, so that show and adjust see what the gateway enforces for tenants without a budget [HEGATE_DEFAULT_BUDGET]")
		case "output":
			f.out = addOutputFlags(cmd, true)
		default:
			panic("budget flag " + name)
		}
	}
	return cmd
}

// need fails unless the named flags are set.
func need(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if cmd.Flags().Lookup(n).Value.String() == "" {
			return fmt.Errorf("%s needs --%s", cmd.CommandPath(), n)
		}
	}
	return nil
}

// tenantID is the ID of the tenant --tenant names.
func (f *budgetFlags) tenantID(cmd *cobra.Command, store storage.Store) (hegate.TenantID, error) {
	if err := need(cmd, "tenant"); err != nil {
		return "", err
	}
	t, err := store.GetTenantByName(cmd.Context(), f.tenant)
	if err != nil {
		return "", fmt.Errorf("tenant %q: %w", f.tenant, err)
	}
	return t.ID, nil
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
		if us == nil {
			us = []storage.BudgetUsage{}
		}
		return printJSON(w, us)
	}
	tw := newTable(w)
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

func newBudgetStatusCmd() *cobra.Command {
	var cfg deviceConfig
	var o *output
	cmd := &cobra.Command{
		Use:   "status",
		Short: "the caller's budgets through the API: spent, what one answer costs, when it renews",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(cmd); err != nil {
				return err
			}
			cl, err := cfg.client()
			if err != nil {
				return err
			}
			bs, err := cl.Budgets(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.JSON() {
				if bs == nil {
					bs = []api.Budget{}
				}
				return printJSON(w, api.BudgetList{Budgets: bs})
			}
			tw := newTable(w)
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
		},
	}
	cfg.register(cmd.Flags())
	o = addOutputFlags(cmd, true)
	return cmd
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
	return service.BudgetLimit(eps, delta, period)
}

package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// storeCommand is an operator command on the database: the backend flags,
// and the store opened and migrated before run.
func storeCommand(use, short string, run func(cmd *cobra.Command, store storage.Store, a []string) error) *cobra.Command {
	var cfg backendConfig
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, a []string) error {
			store, err := cfg.openStore(cmd.Context(), cfg.logger(io.Discard))
			if err != nil {
				return err
			}
			defer store.Close()
			return run(cmd, store, a)
		},
	}
	cfg.register(cmd.Flags())
	return cmd
}

func newTenantCmd() *cobra.Command {
	create := storeCommand("create NAME", "create a tenant and print its first API key (admin), once", func(cmd *cobra.Command, store storage.Store, a []string) error {
		svc, p, err := operatorService(store)
		if err != nil {
			return err
		}
		t, secret, err := svc.CreateTenant(cmd.Context(), p, a[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "tenant  %s (%s)\napi key %s (admin)\n", t.Name, t.ID, secret)
		fmt.Fprintln(cmd.ErrOrStderr(), "The API key is shown once; store it now.")
		return nil
	})
	create.Args = args(cobra.ExactArgs(1))

	var role string
	key := storeCommand("key NAME [--role client|admin]", "add an API key to a tenant (role client by default: for devices) and print it, once", func(cmd *cobra.Command, store storage.Store, a []string) error {
		if role != storage.RoleClient && role != storage.RoleAdmin {
			return fmt.Errorf("--role %q: want %s or %s", role, storage.RoleClient, storage.RoleAdmin)
		}
		t, err := store.GetTenantByName(cmd.Context(), a[0])
		if err != nil {
			return fmt.Errorf("tenant %q: %w", a[0], err)
		}
		svc, p, err := operatorService(store)
		if err != nil {
			return err
		}
		p.Tenant = t.ID
		_, secret, err := svc.CreateAPIKey(cmd.Context(), p, service.CreateAPIKeyParams{Name: "cli", Role: role})
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "api key %s (%s)\n", secret, role)
		return nil
	})
	key.Args = args(cobra.ExactArgs(1))
	key.Flags().StringVar(&role, "role", storage.RoleClient, "the key's role: client (devices: keys, inference) or admin (also budgets, policies, trust anchors)")
	_ = key.RegisterFlagCompletionFunc("role", cobra.FixedCompletions([]string{storage.RoleClient, storage.RoleAdmin}, cobra.ShellCompDirectiveNoFileComp))

	var keysOut *output
	keys := storeCommand("keys NAME", "list a tenant's API keys (never the keys themselves: a prefix)", func(cmd *cobra.Command, store storage.Store, a []string) error {
		t, err := store.GetTenantByName(cmd.Context(), a[0])
		if err != nil {
			return fmt.Errorf("tenant %q: %w", a[0], err)
		}
		keys, err := store.ListAPIKeys(cmd.Context(), t.ID)
		if err != nil {
			return err
		}
		type keyView struct {
			ID         hegate.APIKeyID `json:"id"`
			Prefix     string          `json:"prefix"`
			Name       string          `json:"name"`
			Role       string          `json:"role"`
			CreatedAt  time.Time       `json:"created_at"`
			LastUsedAt *time.Time      `json:"last_used_at,omitempty"`
			RevokedAt  *time.Time      `json:"revoked_at,omitempty"`
		}
		w := cmd.OutOrStdout()
		if keysOut.JSON() {
			views := []keyView{}
			for _, k := range keys {
				views = append(views, keyView{k.ID, k.Prefix, k.Name, k.Role, k.CreatedAt, k.LastUsedAt, k.RevokedAt})
			}
			return printJSON(w, views)
		}
		tw := newTable(w)
		fmt.Fprintln(tw, "ID\tPREFIX\tNAME\tROLE\tCREATED\tLAST USED\tREVOKED")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s…\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, k.Name, k.Role, k.CreatedAt.Format(timeFormat), formatTime(k.LastUsedAt), formatTime(k.RevokedAt))
		}
		return tw.Flush()
	})
	keys.Args = args(cobra.ExactArgs(1))
	keysOut = addOutputFlags(keys, false)

	revoke := storeCommand("revoke NAME KEY-ID", "revoke one API key at once: its next request answers 401", func(cmd *cobra.Command, store storage.Store, a []string) error {
		t, err := store.GetTenantByName(cmd.Context(), a[0])
		if err != nil {
			return fmt.Errorf("tenant %q: %w", a[0], err)
		}
		svc, p, err := operatorService(store)
		if err != nil {
			return err
		}
		p.Tenant = t.ID
		if err := svc.RevokeAPIKey(cmd.Context(), p, hegate.APIKeyID(a[1])); err != nil {
			return fmt.Errorf("revoking API key %s of tenant %q: %w", a[1], a[0], err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "api key %s revoked\n", a[1])
		return nil
	})
	revoke.Args = args(cobra.ExactArgs(2))

	var listOut *output
	list := storeCommand("list", "list the tenants", func(cmd *cobra.Command, store storage.Store, _ []string) error {
		ts, err := store.ListTenants(cmd.Context())
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if listOut.JSON() {
			type tenantView struct {
				ID        hegate.TenantID `json:"id"`
				Name      string          `json:"name"`
				CreatedAt time.Time       `json:"created_at"`
			}
			views := []tenantView{}
			for _, t := range ts {
				views = append(views, tenantView{t.ID, t.Name, t.CreatedAt})
			}
			return printJSON(w, views)
		}
		tw := newTable(w)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", t.ID, t.Name, t.CreatedAt.Format(timeFormat))
		}
		return tw.Flush()
	})
	listOut = addOutputFlags(list, false)

	return group("tenant", "manage tenants and their API keys (operator, on the database)",
		`Tenants and their API keys, on the database (operator). An API key is
printed once, when it is made; the database keeps only its hash.`,
		create, list, key, keys, revoke)
}

const timeFormat = "2006-01-02 15:04:05Z"

func formatTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(timeFormat)
}

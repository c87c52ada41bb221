package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/hegate/hegate"

	"github.com/hegate/hegate/gateway"
	"github.com/hegate/hegate/storage"
)

func runTenant(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tenant", stderr)
	var cfg backendConfig
	cfg.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hegate tenant [flags] create NAME | list | key NAME | keys NAME | revoke NAME KEY-ID")
		fs.PrintDefaults()
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		fs.Usage()
		return errors.New("tenant: missing subcommand")
	}
	store, err := cfg.openStore(ctx, cfg.logger(io.Discard))
	if err != nil {
		return err
	}
	defer store.Close()
	switch {
	case rest[0] == "create" && len(rest) == 2:
		t, secret, err := gateway.CreateTenant(ctx, store, rest[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "tenant  %s (%s)\napi key %s (admin)\n", t.Name, t.ID, secret)
		fmt.Fprintln(stderr, "The API key is shown once; store it now.")
		return nil
	case rest[0] == "key" && (len(rest) == 2 || len(rest) == 4 && rest[2] == "--role"):
		role := storage.RoleClient
		if len(rest) == 4 {
			role = rest[3]
		}
		if role != storage.RoleClient && role != storage.RoleAdmin {
			return fmt.Errorf("--role %q: want %s or %s", role, storage.RoleClient, storage.RoleAdmin)
		}
		t, err := store.GetTenantByName(ctx, rest[1])
		if err != nil {
			return fmt.Errorf("tenant %q: %w", rest[1], err)
		}
		secret, err := gateway.CreateAPIKey(ctx, store, t.ID, "cli", role)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "api key %s (%s)\n", secret, role)
		return nil
	case rest[0] == "keys" && len(rest) == 2:
		t, err := store.GetTenantByName(ctx, rest[1])
		if err != nil {
			return fmt.Errorf("tenant %q: %w", rest[1], err)
		}
		keys, err := store.ListAPIKeys(ctx, t.ID)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPREFIX\tNAME\tROLE\tCREATED\tLAST USED\tREVOKED")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s…\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, k.Name, k.Role, k.CreatedAt.Format(timeFormat), formatTime(k.LastUsedAt), formatTime(k.RevokedAt))
		}
		return tw.Flush()
	case rest[0] == "revoke" && len(rest) == 3:
		t, err := store.GetTenantByName(ctx, rest[1])
		if err != nil {
			return fmt.Errorf("tenant %q: %w", rest[1], err)
		}
		if err := store.RevokeAPIKey(ctx, t.ID, hegate.APIKeyID(rest[2])); err != nil {
			return fmt.Errorf("revoking API key %s of tenant %q: %w", rest[2], rest[1], err)
		}
		fmt.Fprintf(stdout, "api key %s revoked\n", rest[2])
		return nil
	case rest[0] == "list" && len(rest) == 1:
		ts, err := store.ListTenants(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", t.ID, t.Name, t.CreatedAt.Format(timeFormat))
		}
		return tw.Flush()
	}
	fs.Usage()
	return fmt.Errorf("tenant: unknown subcommand %q", rest)
}

const timeFormat = "2006-01-02 15:04:05Z"

func formatTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(timeFormat)
}

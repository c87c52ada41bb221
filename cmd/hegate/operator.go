package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// Operator commands change the store through package service, as an
// operator principal named after the login user, so that their changes
// are checked by the same rules and land in the audit log.

// operatorService is the rules over store for an operator on the server.
// It serves no model (none is needed to provision tenants, keys and users).
// def is the default budget the budget commands carry spend from.
func operatorService(store storage.Store, def ...storage.BudgetLimit) (*service.Service, service.Principal, error) {
	cat, err := catalog.New(catalog.Config{Store: store, Blobs: noBlobs{}})
	if err != nil {
		return nil, service.Principal{}, err
	}
	cfg := service.Config{Store: store, Blobs: noBlobs{}, Catalog: cat, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if len(def) > 0 {
		cfg.DefaultBudget = def[0]
	}
	svc, err := service.New(cfg)
	if err != nil {
		return nil, service.Principal{}, err
	}
	name := strings.TrimPrefix(operatorActor(), "cli:")
	if name == "cli" {
		name = "unknown"
	}
	return svc, service.Principal{Role: service.RoleOperator, Operator: name, From: "cli"}, nil
}

// noBlobs is the blob store of an operator command, which reads and
// writes none.
type noBlobs struct{}

var errNoBlobs = errors.New("this command stores no blobs")

func (noBlobs) Put(context.Context, io.Reader, int64) (storage.BlobInfo, error) {
	return storage.BlobInfo{}, errNoBlobs
}
func (noBlobs) Open(context.Context, string) (io.ReadCloser, error) { return nil, errNoBlobs }
func (noBlobs) Stat(context.Context, string) (storage.BlobInfo, error) {
	return storage.BlobInfo{}, errNoBlobs
}
func (noBlobs) Delete(context.Context, string) error { return errNoBlobs }

func newUserCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "console users: create | list | disable | enable | passwd | logout (operator commands on the database)"}
	var tenant, role string
	var passwordStdin bool
	create := storeCommand("create NAME --tenant T --role admin|viewer", "create a console user; the password is read from the terminal, or from stdin with --password-stdin (never a flag)", func(cmd *cobra.Command, store storage.Store, a []string) error {
		svc, p, err := operatorService(store)
		if err != nil {
			return err
		}
		params := service.CreateUserParams{Name: a[0], Role: role}
		if tenant != "" {
			t, err := store.GetTenantByName(cmd.Context(), tenant)
			if err != nil {
				return fmt.Errorf("tenant %q: %w", tenant, err)
			}
			params.Tenant = t.ID
		} else if role != service.RoleOperator {
			return errors.New("name the user's tenant with --tenant, or make an operator with --role operator")
		}
		pw, err := readPassword(cmd, passwordStdin)
		if err != nil {
			return err
		}
		params.Password = pw
		u, err := svc.CreateUser(cmd.Context(), p, params)
		if err != nil {
			return err
		}
		where := "operator of every tenant"
		if tenant != "" {
			where = "tenant " + tenant
		}
		fmt.Fprintf(cmd.OutOrStdout(), "user %s (%s), %s of %s\n", u.Name, u.ID, u.Role, where)
		return nil
	})
	create.Args = args(cobra.ExactArgs(1))
	create.Flags().StringVar(&tenant, "tenant", "", "the user's tenant (by name); none for an operator")
	create.Flags().StringVar(&role, "role", service.RoleAdmin, "admin (manages the tenant), viewer (reads it) or operator (no tenant)")
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	_ = create.RegisterFlagCompletionFunc("role", cobra.FixedCompletions([]string{service.RoleAdmin, service.RoleViewer, service.RoleOperator}, cobra.ShellCompDirectiveNoFileComp))

	var listOut *output
	var listTenant string
	list := storeCommand("list [--tenant T]", "list the console users of a tenant, or the operators", func(cmd *cobra.Command, store storage.Store, _ []string) error {
		var tid = storage.User{}.TenantID
		if listTenant != "" {
			t, err := store.GetTenantByName(cmd.Context(), listTenant)
			if err != nil {
				return fmt.Errorf("tenant %q: %w", listTenant, err)
			}
			tid = t.ID
		}
		us, err := store.ListUsers(cmd.Context(), tid)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if listOut.JSON() {
			type userView struct {
				ID       string `json:"id"`
				Name     string `json:"name"`
				Role     string `json:"role"`
				Disabled bool   `json:"disabled"`
			}
			views := []userView{}
			for _, u := range us {
				views = append(views, userView{string(u.ID), u.Name, u.Role, u.Disabled})
			}
			return printJSON(w, views)
		}
		tw := newTable(w)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tLAST LOGIN\tDISABLED")
		for _, u := range us {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", u.ID, u.Name, u.Role, formatTime(u.LastLoginAt), u.Disabled)
		}
		return tw.Flush()
	})
	list.Flags().StringVar(&listTenant, "tenant", "", "the tenant (by name); none lists the operators")
	listOut = addOutputFlags(list, false)
	// findUser resolves NAME (and --tenant) to a user.
	findUser := func(cmd *cobra.Command, store storage.Store, tenant, name string) (storage.User, error) {
		var tid hegate.TenantID
		if tenant != "" {
			t, err := store.GetTenantByName(cmd.Context(), tenant)
			if err != nil {
				return storage.User{}, fmt.Errorf("tenant %q: %w", tenant, err)
			}
			tid = t.ID
		}
		u, err := store.FindUser(cmd.Context(), tid, service.NormalizeUserName(name))
		if err != nil {
			return storage.User{}, fmt.Errorf("user %q: %w", name, err)
		}
		return u, nil
	}
	userCmd := func(use, short string, do func(cmd *cobra.Command, svc *service.Service, p service.Principal, u storage.User) error) *cobra.Command {
		var tenant string
		c := storeCommand(use, short, func(cmd *cobra.Command, store storage.Store, a []string) error {
			svc, p, err := operatorService(store)
			if err != nil {
				return err
			}
			u, err := findUser(cmd, store, tenant, a[0])
			if err != nil {
				return err
			}
			return do(cmd, svc, p, u)
		})
		c.Args = args(cobra.ExactArgs(1))
		c.Flags().StringVar(&tenant, "tenant", "", "the user's tenant (by name); none for an operator")
		return c
	}
	disable := userCmd("disable NAME [--tenant T]", "disable a console user and end its sessions at once", func(cmd *cobra.Command, svc *service.Service, p service.Principal, u storage.User) error {
		if err := svc.SetUserDisabled(cmd.Context(), p, u.ID, true); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "user %s (%s) disabled; its sessions ended\n", u.Name, u.ID)
		return nil
	})
	enable := userCmd("enable NAME [--tenant T]", "enable a disabled console user again", func(cmd *cobra.Command, svc *service.Service, p service.Principal, u storage.User) error {
		if err := svc.SetUserDisabled(cmd.Context(), p, u.ID, false); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "user %s (%s) enabled\n", u.Name, u.ID)
		return nil
	})
	var pwStdin bool
	passwd := userCmd("passwd NAME [--tenant T] [--password-stdin]", "set a console user's password (read like create's) and end its sessions", func(cmd *cobra.Command, svc *service.Service, p service.Principal, u storage.User) error {
		pw, err := readPassword(cmd, pwStdin)
		if err != nil {
			return err
		}
		if err := svc.SetUserPassword(cmd.Context(), p, u.ID, pw); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "password of user %s (%s) set; its sessions ended\n", u.Name, u.ID)
		return nil
	})
	passwd.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")
	logout := userCmd("logout NAME [--tenant T]", "end every session of a console user", func(cmd *cobra.Command, svc *service.Service, p service.Principal, u storage.User) error {
		if err := svc.EndUserSessions(cmd.Context(), p, u.ID); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "sessions of user %s (%s) ended\n", u.Name, u.ID)
		return nil
	})
	cmd.AddCommand(create, list, disable, enable, passwd, logout)
	return cmd
}

// readPassword reads a new password: twice from a terminal without echo,
// or one line of stdin.
func readPassword(cmd *cobra.Command, fromStdin bool) (string, error) {
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && !fromStdin && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", err
		}
		fmt.Fprint(cmd.ErrOrStderr(), "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on stdin")
	}
	return line, nil
}

// auditOperator records an operator's change made on the store directly
// (the budget commands, whose own trail is the privacy ledger). A failure
// to record is reported on stderr; the change stands.
func auditOperator(cmd *cobra.Command, store storage.Store, tenant hegate.TenantID, action, object string, detail any) {
	svc, p, err := operatorService(store)
	if err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: the audit log did not record %s: %v\n", action, err)
		return
	}
	p.Tenant = tenant
	svc.Audit(cmd.Context(), p, action, object, detail)
}

// Command hegate is the privacy-preserving inference gateway: the server
// (serve, worker, migrate, tenant), the embedded demo, and the device-side
// tools (keygen, keys upload, infer) that a fleet runs.
//
// Run "hegate help" for the list of commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		// One line: run has made it one, without a secret.
		fmt.Fprintln(os.Stderr, "hegate:", err)
		os.Exit(1)
	}
}

// stdin is what commands read standard input from (a test replaces it).
var stdin io.Reader = os.Stdin

// run runs the command line args: hegate's entry point and the tests'. Help
// goes to stdout and succeeds. A failure is one line, without a repeated
// prefix or any secret the run knows of, with a hint where one helps;
// errors.Is and errors.As still see the cause.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	st := &runState{}
	for _, k := range []string{"HEGATE_API_KEY", "HEGATE_CREDENTIAL_KEK"} {
		st.addSecret(os.Getenv(k))
	}
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--api-key="); ok {
			st.addSecret(v)
		} else if (a == "--api-key" || a == "-api-key") && i+1 < len(args) {
			st.addSecret(args[i+1])
		}
	}
	ctx = context.WithValue(ctx, runStateKey{}, st)
	root := newRootCmd()
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(legacyDashes(root, args))
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetIn(stdin)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return nil
	}
	return &cliError{err: err, msg: st.redact(errorLine(err))}
}

// Command groups of the root's help.
const (
	groupRun    = "run"
	groupOps    = "ops"
	groupModels = "models"
	groupDevice = "device"
	groupOther  = "other"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "hegate",
		Short: "the privacy-preserving inference gateway",
		Long: `hegate is the privacy-preserving inference gateway: devices encrypt their
inputs under their own keys (CKKS), the gateway evaluates models on the
ciphertexts, and only the device can decrypt the answer.

One binary: the gateway (serve, worker, migrate), its operator's commands
on the database (tenant, budget, credential), and the device and tenant
commands that go through the API (keygen, keys, infer, devices, policy...).
Device and tenant commands read the gateway and the credential from
--server/--api-key, HEGATE_SERVER/HEGATE_API_KEY, or a context of the
config file (hegate config set-context).`,
		Example: `  hegate demo                                  # everything in one process, on MNIST
  hegate serve --addr 127.0.0.1:8080           # the gateway, SQLite in ./data
  hegate tenant create acme                    # prints the tenant's admin API key once
  hegate config set-context acme --server http://127.0.0.1:8080 --api-key-stdin
  hegate keygen && hegate keys upload && hegate infer --mnist-index 7`,
		Version:       buildVersion(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRunE,
	}
	root.SetVersionTemplate(versionLine() + "\n")
	// A command with subcommands runs only to print its help or refuse an
	// unknown subcommand: its usage is "hegate tenant [command]" alone.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(), "Usage:{{if .Runnable}}", "Usage:{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %q)", err, c.CommandPath()+" --help")
	})
	root.PersistentFlags().String("context", "", "context of the config file that device and tenant commands use (default: $HEGATE_CONTEXT, else the file's current context)")
	_ = root.RegisterFlagCompletionFunc("context", completeContexts)
	root.AddGroup(
		&cobra.Group{ID: groupRun, Title: "Run the gateway:"},
		&cobra.Group{ID: groupOps, Title: "Operate it (on the database):"},
		&cobra.Group{ID: groupModels, Title: "Models:"},
		&cobra.Group{ID: groupDevice, Title: "Devices and tenants (through the API):"},
		&cobra.Group{ID: groupOther, Title: "Settings and other commands:"},
	)
	add := func(group string, cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add(groupRun, newServeCmd(), newWorkerCmd(), newMigrateCmd(), newHealthcheckCmd())
	add(groupOps, newTenantCmd(), newUserCmd(), newBudgetCmd(), newCredentialCmd())
	add(groupModels, newModelCmd(), newDemoCmd(), newBenchCmd())
	add(groupDevice, newKeygenCmd(), newEnrollCmd(), newKeysCmd(), newInferCmd(), newEncryptCmd(), newDecryptCmd(),
		newDevicesCmd(), newPolicyCmd(), newAttestCmd())
	add(groupOther, newConfigCmd(), newVersionCmd())
	root.SetHelpCommandGroupID(groupOther)
	root.SetCompletionCommandGroupID(groupOther)
	return root
}

// group makes a command whose work its subcommands do: alone it prints
// its help; with an unknown subcommand it fails, naming the near ones.
func group(use, short, long string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Long: long, Args: cobra.ArbitraryArgs, RunE: groupRunE}
	c.AddCommand(subs...)
	return c
}

func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	return unknownCommand(cmd, args[0])
}

// unknownCommand is the error for a subcommand cmd does not have, on one
// line, with the names it may have meant.
func unknownCommand(cmd *cobra.Command, name string) error {
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		q := make([]string, len(s))
		for i, n := range s {
			q[i] = fmt.Sprintf("%q", n)
		}
		msg += "; did you mean " + strings.Join(q, " or ") + "?"
	}
	return fmt.Errorf("%s (see %q)", msg, cmd.CommandPath()+" --help")
}

// args checks the positional arguments with check (cobra.ExactArgs and
// the like), naming the command's usage when they are wrong.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return fmt.Errorf("%v (usage: %s)", err, cmd.UseLine())
		}
		return nil
	}
}

// cliError is what run returns: the message main prints, and the cause.
type cliError struct {
	err error
	msg string
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.err }

// errorLine makes err one line: the URL and method that a *url.Error
// repeats after the client's own prefix are dropped, lines are joined,
// a leading "hegate: " (main adds it) is removed, and a connection
// refused says what to check.
func errorLine(err error) string {
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		msg = strings.Replace(msg, ue.Error(), ue.Err.Error(), 1)
	}
	var b strings.Builder
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if b.Len() > 0 {
			if strings.HasSuffix(b.String(), ":") {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		b.WriteString(l)
	}
	msg = b.String()
	for strings.HasPrefix(msg, "hegate: ") {
		msg = strings.TrimPrefix(msg, "hegate: ")
	}
	if ue != nil && errors.Is(err, syscall.ECONNREFUSED) {
		where := "there"
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			where = "at " + u.Scheme + "://" + u.Host
		}
		msg += " (is the gateway running " + where + "? set --server, HEGATE_SERVER or the context's server)"
	}
	return msg
}

// runState is what one run knows that its errors must not print.
type runState struct {
	mu      sync.Mutex
	secrets []string
}

type runStateKey struct{}

// addSecret notes a secret (an API key) that no error may print.
func (s *runState) addSecret(v string) {
	v = strings.TrimSpace(v)
	if len(v) < 6 {
		return // too short to tell from ordinary words
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets = append(s.secrets, v)
}

var (
	// apiKeyPattern is the shape of hegate API keys (gateway.CreateAPIKey).
	apiKeyPattern = regexp.MustCompile(`hgk_[A-Za-z0-9_-]{8,}`)
	// urlPassword is the password of a postgres://user:password@host URL.
	urlPassword = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^/:@\s]*:)[^@\s]+@`)
)

// redact removes the secrets from msg.
func (s *runState) redact(msg string) string {
	s.mu.Lock()
	secrets := append([]string(nil), s.secrets...)
	s.mu.Unlock()
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, v := range secrets {
		msg = strings.ReplaceAll(msg, v, "[redacted]")
	}
	msg = apiKeyPattern.ReplaceAllString(msg, "hgk_[redacted]")
	return urlPassword.ReplaceAllString(msg, "${1}[redacted]@")
}

// addSecret notes a secret of the run in ctx (see run).
func addSecret(ctx context.Context, v string) {
	if st, ok := ctx.Value(runStateKey{}).(*runState); ok {
		st.addSecret(v)
	}
}

// legacyDashes rewrites Go-flag-style single-dash long flags (-data-dir,
// -addr=:8080) to pflag's --data-dir, so that scripts written for hegate's
// earlier flag parsing go on working. Only names of flags hegate has are
// rewritten, and nothing after "--".
func legacyDashes(root *cobra.Command, args []string) []string {
	names := map[string]bool{"help": true, "version": true}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if len(f.Name) > 1 {
					names[f.Name] = true
				}
			})
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range args {
		if a == "--" {
			break
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			if name, _, _ := strings.Cut(a[1:], "="); names[name] {
				out[i] = "-" + a
			}
		}
	}
	return out
}

// envOr returns the environment variable or def.
func envOr(key, def string) string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return v
	}
	return def
}

// versionLine is what hegate version and hegate --version print.
func versionLine() string {
	return fmt.Sprintf("hegate %s (%s, %s/%s)", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// Command hegate is the privacy-preserving inference gateway: the server
// (serve, worker, migrate, tenant), the embedded demo, and the device-side
// tools (keygen, keys upload, infer) that a fleet runs.
//
// Run "hegate help" for the list of commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the gateway (HTTP API and in-process workers)", runServe},
		{"worker", "run job workers only (scale out against PostgreSQL)", runWorker},
		{"migrate", "apply database migrations and exit", runMigrate},
		{"tenant", "manage tenants: tenant create NAME | list | key NAME [--role admin|client] | keys NAME | revoke NAME KEY-ID", runTenant},
		{"budget", "privacy budgets: budget set | show | delete | adjust | ledger | global (operator); budget status (API)", runBudget},
		{"model", "inspect models: model list | model inspect NAME|FILE", runModel},
		{"demo", "run an embedded gateway and a simulated device on MNIST", runDemo},
		{"bench", "measure encrypted inference against raw Lattigo primitives", runBench},
		{"credential", "device credential signing keys: credential rotate | keys (operator)", runCredential},
		{"attest", "attestation: attest verify (offline) | set | show | delete (trust anchors, API)", runAttest},
		{"devices", "enrolled devices: devices list | show ID | revoke ID (API)", runDevices},
		{"policy", "who may run inference: policy show | set | delete [MODEL] (API)", runPolicy},
		{"healthcheck", "probe a URL (container healthchecks)", runHealthcheck},
		{"keygen", "device: make a secret key and the model's evaluation keys", runKeygen},
		{"enroll", "device: attest and get a device credential (native, tpm-simulator, psa-test)", runEnroll},
		{"keys", "device: keys upload | list | delete ID", runKeys},
		{"infer", "device: encrypt an input, infer on the gateway, decrypt", runInfer},
		{"encrypt", "device: encrypt an input to a ciphertext file (to send it by hand, e.g. with curl)", runEncrypt},
		{"decrypt", "device: decrypt a result ciphertext file and print the outputs", runDecrypt},
		{"version", "print the version and build", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		// -h or --help: the help went to standard output; that is success.
	case err != nil:
		fmt.Fprintln(os.Stderr, "hegate:", hint(err))
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	if wantsHelp(args[1:]) {
		// Asked for, help is the answer: on standard output.
		stderr = stdout
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: hegate <command> [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "hegate <command> -h" for a command's flags.`)
}

// newFlags makes a FlagSet that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("hegate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseArgs parses flags that may come before, between or after the
// positional arguments ("tenant create acme --data-dir d") and returns the
// positional ones. A "--" ends the flags.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// envOr returns the environment variable or def.
func envOr(key, def string) string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return v
	}
	return def
}

// wantsHelp reports whether the arguments ask for help (before a "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// hint adds what to do to errors whose cause a user can fix.
func hint(err error) string {
	msg := err.Error()
	if errors.Is(err, syscall.ECONNREFUSED) {
		msg += " (is the gateway running there? set --server or HEGATE_SERVER)"
	}
	return msg
}

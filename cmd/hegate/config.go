package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// The config file holds named contexts: a gateway, a credential, a device
// identity and a model, so that an API key is not pasted into every shell.
// It is $HEGATE_CONFIG, else $XDG_CONFIG_HOME/hegate/config.json, else
// ~/.config/hegate/config.json, written 0600. A file that holds an API key
// and that others may read is refused, as ssh refuses such a key file.

// cliConfig is the config file.
type cliConfig struct {
	CurrentContext string                 `json:"current-context,omitempty"`
	Contexts       map[string]*cliContext `json:"contexts"`

	path     string
	insecure error // why others may read the secrets in it, if they may
}

// cliContext is one named context.
type cliContext struct {
	Server string `json:"server,omitempty"`
	// APIKey is the tenant API key itself; APIKeyFile a file holding it.
	APIKey     string `json:"api_key,omitempty"`
	APIKeyFile string `json:"api_key_file,omitempty"`
	Identity   string `json:"identity,omitempty"` // an enrolled device's directory
	Model      string `json:"model,omitempty"`
}

// configPath is where the config file is.
func configPath() (string, error) {
	if p := envOr("HEGATE_CONFIG", ""); p != "" {
		return p, nil
	}
	if d := envOr("XDG_CONFIG_HOME", ""); d != "" {
		return filepath.Join(d, "hegate", "config.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no config file: set HEGATE_CONFIG (no home directory: %w)", err)
	}
	return filepath.Join(home, ".config", "hegate", "config.json"), nil
}

// loadConfig reads the config file; a missing one is empty. It does not
// refuse an insecure file: cfg.insecure says why it is, and secure()
// refuses it.
func loadConfig() (*cliConfig, error) {
	path, err := configPath()
	if err != nil {
		return nil, err
	}
	cfg := &cliConfig{Contexts: map[string]*cliContext{}, path: path}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := json.Unmarshal(b, cfg); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if cfg.Contexts == nil {
		cfg.Contexts = map[string]*cliContext{}
	}
	for name, cx := range cfg.Contexts {
		if cx == nil {
			cfg.Contexts[name] = &cliContext{}
		} else if cx.APIKey != "" && cfg.insecure == nil {
			cfg.insecure = private(path, st.Mode())
		}
	}
	return cfg, nil
}

// private fails if others than the owner may read or write a file that
// holds a secret.
func private(path string, mode fs.FileMode) error {
	if runtime.GOOS == "windows" {
		return nil // no Unix permissions to judge
	}
	if perm := mode.Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s holds an API key but others may read it (mode %04o): run chmod 600 %s", path, perm, path)
	}
	return nil
}

// secure is cfg, unless others may read the secrets in it.
func (cfg *cliConfig) secure() (*cliConfig, error) {
	if cfg.insecure != nil {
		return nil, cfg.insecure
	}
	return cfg, nil
}

// save writes the file, 0600, creating its directory 0700.
func (cfg *cliConfig) save() error {
	if err := os.MkdirAll(filepath.Dir(cfg.path), 0o700); err != nil {
		return err
	}
	return writeJSONFile(cfg.path, cfg)
}

// names are the contexts' names, sorted.
func (cfg *cliConfig) names() []string {
	var out []string
	for n := range cfg.Contexts {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// contextFor is the context cmd uses: --context, else HEGATE_CONTEXT,
// else the file's current context; nil when none is set. A context named
// but missing is an error.
func contextFor(cmd *cobra.Command) (*cliContext, error) {
	name, _ := cmd.Flags().GetString("context")
	from := "--context"
	if name == "" {
		name, from = envOr("HEGATE_CONTEXT", ""), "HEGATE_CONTEXT"
	}
	all, err := loadConfig()
	if err != nil {
		return nil, err
	}
	if name == "" {
		name, from = all.CurrentContext, "the current context of "+all.path
	}
	if name == "" {
		return nil, nil
	}
	cfg, err := all.secure()
	if err != nil {
		return nil, err
	}
	cx, ok := cfg.Contexts[name]
	if !ok {
		return nil, fmt.Errorf("no context %q (named by %s) in %s: hegate config get-contexts lists them", name, from, cfg.path)
	}
	if cx.APIKey != "" {
		addSecret(cmd.Context(), cx.APIKey)
	}
	return cx, nil
}

// apiKey is the context's API key, from the file or its key file.
func (cx *cliContext) apiKey() (string, error) {
	if cx.APIKey != "" || cx.APIKeyFile == "" {
		return cx.APIKey, nil
	}
	return readKeyFile(cx.APIKeyFile)
}

// readKeyFile reads an API key file, refusing one that others may read.
func readKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("API key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if err := private(path, st.Mode()); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("reading the API key file %s: %w", path, err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" || strings.ContainsAny(key, " \t\r\n") {
		return "", fmt.Errorf("API key file %s: want the key alone on one line", path)
	}
	return key, nil
}

func completeContexts(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return cfg.names(), cobra.ShellCompDirectiveNoFileComp
}

// completeOneContext completes the first argument with a context name.
func completeOneContext(cmd *cobra.Command, a []string, s string) ([]string, cobra.ShellCompDirective) {
	if len(a) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return completeContexts(cmd, a, s)
}

func newConfigCmd() *cobra.Command {
	return group("config", "contexts: named gateways and credentials for device and tenant commands",
		`The config file holds named contexts, each a gateway (server), a tenant
API key (inline, or a file holding it), an enrolled device's identity
directory and a model, and which context is current. Device and tenant
commands (keygen, keys, infer, encrypt, decrypt, enroll, budget status,
devices, policy, attest set|show|delete, model import|versions|delete) take
what they are not given from it: a flag beats its environment variable,
which beats the context, which beats the built-in default. --context NAME
(or HEGATE_CONTEXT) picks another context than the current one.

The file is $HEGATE_CONFIG, else ~/.config/hegate/config.json
($XDG_CONFIG_HOME/hegate/config.json where that is set). hegate writes it
0600 and refuses to read an API key from it, or from a key file, that
others may read. No command prints an API key from it.`,
		newSetContextCmd(), newUseContextCmd(), newGetContextsCmd(), newCurrentContextCmd(), newDeleteContextCmd())
}

func newSetContextCmd() *cobra.Command {
	var (
		server, keyFile, identity, model string
		keyStdin                         bool
	)
	cmd := &cobra.Command{
		Use:   "set-context NAME",
		Short: "create or change a context (only the settings given change)",
		Long: `Create the context NAME, or change the settings given of an existing one.
The API key comes from a file (--api-key-file: the file is named in the
config, and read each time) or from standard input (--api-key-stdin: it
is stored in the config file, which is 0600), never from the command line.
The first context made becomes the current one.`,
		Example: `  hegate config set-context prod --server https://gw.example.com --api-key-file ~/.hegate/prod.key
  printf %s "$KEY" | hegate config set-context dev --server http://127.0.0.1:8080 --api-key-stdin
  hegate config set-context dev1 --identity ./dev1 --model mnist-cryptonets`,
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: completeOneContext,
		RunE: func(cmd *cobra.Command, a []string) error {
			name := a[0]
			if strings.TrimSpace(name) == "" {
				return errors.New("a context needs a name")
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			cx, existed := cfg.Contexts[name]
			if !existed {
				cx = &cliContext{}
				cfg.Contexts[name] = cx
			}
			f := cmd.Flags()
			if f.Changed("server") {
				cx.Server = server
			}
			if f.Changed("model") {
				cx.Model = model
			}
			if f.Changed("identity") {
				if cx.Identity = identity; identity != "" {
					if cx.Identity, err = filepath.Abs(identity); err != nil {
						return err
					}
				}
			}
			switch {
			case f.Changed("api-key-file") && keyFile == "":
				cx.APIKeyFile = ""
			case f.Changed("api-key-file"):
				abs, err := filepath.Abs(keyFile)
				if err != nil {
					return err
				}
				if _, err := readKeyFile(abs); err != nil {
					return err
				}
				cx.APIKey, cx.APIKeyFile = "", abs
			case keyStdin:
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
				if err != nil {
					return fmt.Errorf("reading the API key from standard input: %w", err)
				}
				key := strings.TrimSpace(string(b))
				addSecret(cmd.Context(), key)
				if key == "" || strings.ContainsAny(key, " \t\r\n") {
					return errors.New("--api-key-stdin: want the key alone on one line of standard input")
				}
				cx.APIKey, cx.APIKeyFile = key, ""
			}
			current := ""
			if cfg.CurrentContext == "" {
				cfg.CurrentContext, current = name, " (now the current context)"
			}
			if err := cfg.save(); err != nil {
				return err
			}
			verb := "created"
			if existed {
				verb = "changed"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "context %q %s in %s%s\n", name, verb, cfg.path, current)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "gateway base URL")
	f.StringVar(&keyFile, "api-key-file", "", "file holding the tenant API key (0600; named in the config, read each time; \"\" removes it)")
	f.BoolVar(&keyStdin, "api-key-stdin", false, "read the tenant API key from standard input and store it in the config file")
	f.StringVar(&identity, "identity", "", "enrolled device directory (hegate enroll); its credential replaces the API key")
	f.StringVar(&model, "model", "", "model name")
	cmd.MarkFlagsMutuallyExclusive("api-key-file", "api-key-stdin")
	_ = cmd.MarkFlagFilename("api-key-file")
	_ = cmd.MarkFlagDirname("identity")
	return cmd
}

func newUseContextCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "use-context NAME",
		Short:             "make NAME the current context",
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: completeOneContext,
		RunE: func(cmd *cobra.Command, a []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if _, ok := cfg.Contexts[a[0]]; !ok {
				return fmt.Errorf("no context %q in %s: hegate config get-contexts lists them", a[0], cfg.path)
			}
			cfg.CurrentContext = a[0]
			if err := cfg.save(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "current context %q\n", a[0])
			return nil
		},
	}
}

func newCurrentContextCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "current-context",
		Short: "print the current context's name",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if cfg.CurrentContext == "" {
				return fmt.Errorf("no current context in %s: hegate config use-context NAME sets it", cfg.path)
			}
			fmt.Fprintln(cmd.OutOrStdout(), cfg.CurrentContext)
			return nil
		},
	}
}

func newDeleteContextCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "delete-context NAME",
		Short:             "delete a context (a key file it names stays)",
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: completeOneContext,
		RunE: func(cmd *cobra.Command, a []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if _, ok := cfg.Contexts[a[0]]; !ok {
				return fmt.Errorf("no context %q in %s", a[0], cfg.path)
			}
			delete(cfg.Contexts, a[0])
			if cfg.CurrentContext == a[0] {
				cfg.CurrentContext = ""
			}
			if err := cfg.save(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "context %q deleted\n", a[0])
			return nil
		},
	}
}

// contextView is a context as get-contexts shows it: "set" for an API
// key, never the key.
type contextView struct {
	Name       string `json:"name"`
	Current    bool   `json:"current"`
	Server     string `json:"server,omitempty"`
	APIKey     string `json:"api_key,omitempty"` // "set" or absent
	APIKeyFile string `json:"api_key_file,omitempty"`
	Identity   string `json:"identity,omitempty"`
	Model      string `json:"model,omitempty"`
}

func newGetContextsCmd() *cobra.Command {
	var out *output
	cmd := &cobra.Command{
		Use:   "get-contexts",
		Short: "list the contexts (an API key shows as \"set\")",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if cfg.insecure != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v; until then commands refuse to use it\n", cfg.insecure)
			}
			views := []contextView{}
			for _, n := range cfg.names() {
				cx := cfg.Contexts[n]
				v := contextView{Name: n, Current: n == cfg.CurrentContext, Server: cx.Server, APIKeyFile: cx.APIKeyFile, Identity: cx.Identity, Model: cx.Model}
				if cx.APIKey != "" {
					v.APIKey = "set"
				}
				views = append(views, v)
			}
			w := cmd.OutOrStdout()
			if out.JSON() {
				return printJSON(w, views)
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "CURRENT\tNAME\tSERVER\tAPI KEY\tIDENTITY\tMODEL")
			for _, v := range views {
				cur, key := "", dash(v.APIKey)
				if v.Current {
					cur = "*"
				}
				if v.APIKeyFile != "" {
					key = "file " + v.APIKeyFile
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", cur, v.Name, dash(v.Server), key, dash(v.Identity), dash(v.Model))
			}
			return tw.Flush()
		},
	}
	out = addOutputFlags(cmd, false)
	return cmd
}

// dash is s, or "-" for nothing.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

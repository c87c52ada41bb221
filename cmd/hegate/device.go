package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/he/onnx"
	"github.com/hegate/hegate/internal/mnist"
)

// deviceConfig is what the device-side commands share: the gateway, the
// credential, and the directory that holds the device's key material.
// Each setting comes from its flag, else its environment variable, else
// the context of the config file (config.go), else its default.
type deviceConfig struct {
	Server string
	APIKey string
	Model  string
	Dir    string // default ~/.hegate/<model>
	// Identity is an enrolled device's directory (hegate enroll): when it
	// holds a credential, requests carry it instead of the API key.
	Identity string

	flags    *pflag.FlagSet
	resolved bool
	// Where APIKey and Identity came from (source*): a credential given
	// by a flag or the environment beats one of the context.
	keyFrom, identityFrom int
}

// Sources of a setting, lowest first.
const (
	sourceNone = iota
	sourceContext
	sourceEnv
	sourceFlag
)

const (
	defaultServer = "http://127.0.0.1:8080"
	defaultModel  = "mnist-cryptonets"
)

func (c *deviceConfig) register(fs *pflag.FlagSet) {
	c.registerServer(fs)
	fs.StringVar(&c.Model, "model", envOr("HEGATE_MODEL", defaultModel), "model name [HEGATE_MODEL, else the context's]")
	fs.StringVar(&c.Dir, "dir", envOr("HEGATE_DEVICE_DIR", ""), "directory for the device's secret key, key set and manifest (default ~/.hegate/<model>) [HEGATE_DEVICE_DIR]")
	fs.StringVar(&c.Identity, "identity", envOr("HEGATE_IDENTITY", ""), "enrolled device directory (hegate enroll); its credential replaces the API key [HEGATE_IDENTITY, else the context's]")
}

// registerServer registers --server and --api-key only.
func (c *deviceConfig) registerServer(fs *pflag.FlagSet) {
	c.flags = fs
	fs.StringVar(&c.Server, "server", envOr("HEGATE_SERVER", defaultServer), "gateway base URL [HEGATE_SERVER, else the context's]")
	// No default from the environment: a flag's default is printed by -h,
	// and the key is a secret. resolve reads HEGATE_API_KEY after parsing.
	fs.StringVar(&c.APIKey, "api-key", "", "tenant API key (default: $HEGATE_API_KEY, else the context's; prefer those: a flag shows in ps)")
}

// resolve fills in, after parsing, what neither a flag nor the
// environment gave from the context cmd uses: flag > environment >
// context > default.
func (c *deviceConfig) resolve(cmd *cobra.Command) error {
	if c.resolved {
		return nil
	}
	c.resolved = true
	set := func(name, env string) int {
		if f := c.flags.Lookup(name); f != nil && f.Changed {
			return sourceFlag
		}
		if envOr(env, "") != "" {
			return sourceEnv
		}
		return sourceNone
	}
	c.keyFrom = sourceNone
	if c.APIKey != "" {
		c.keyFrom = sourceFlag
	} else if c.APIKey = envOr("HEGATE_API_KEY", ""); c.APIKey != "" {
		c.keyFrom = sourceEnv
	}
	c.identityFrom = sourceNone
	if c.Identity != "" {
		c.identityFrom = set("identity", "HEGATE_IDENTITY")
	}
	serverFrom, modelFrom := set("server", "HEGATE_SERVER"), set("model", "HEGATE_MODEL")
	hasModel := c.flags.Lookup("model") != nil
	hasIdentity := c.flags.Lookup("identity") != nil
	if serverFrom != sourceNone && c.keyFrom != sourceNone && (!hasModel || modelFrom != sourceNone) {
		return nil // nothing for a context to give
	}
	cx, err := contextFor(cmd)
	if err != nil || cx == nil {
		return err
	}
	if serverFrom == sourceNone && cx.Server != "" {
		c.Server = cx.Server
	}
	if hasModel && modelFrom == sourceNone && cx.Model != "" {
		c.Model = cx.Model
	}
	if hasIdentity && c.Identity == "" && cx.Identity != "" {
		c.Identity, c.identityFrom = cx.Identity, sourceContext
	}
	if c.keyFrom == sourceNone {
		key, err := cx.apiKey()
		switch {
		case err != nil && c.Identity == "":
			return err
		case err == nil && key != "":
			addSecret(cmd.Context(), key)
			c.APIKey, c.keyFrom = key, sourceContext
		}
	}
	return nil
}

// validate resolves the settings and requires a credential.
func (c *deviceConfig) validate(cmd *cobra.Command) error {
	if err := c.validateCredential(cmd); err != nil {
		return err
	}
	return c.validateLocal(cmd)
}

// validateCredential is validate for commands that need no model or
// device directory (devices, policy, attest).
func (c *deviceConfig) validateCredential(cmd *cobra.Command) error {
	if err := c.resolve(cmd); err != nil {
		return err
	}
	if c.APIKey == "" && c.Identity == "" {
		return errors.New("no credential: give --api-key or HEGATE_API_KEY, --identity of an enrolled device, or a context with one (hegate config set-context)")
	}
	return nil
}

// validateLocal is validate for commands that never call the gateway
// (encrypt, decrypt): no credential is needed.
func (c *deviceConfig) validateLocal(cmd *cobra.Command) error {
	if err := c.resolve(cmd); err != nil {
		return err
	}
	if c.Model == "" {
		return errors.New("--model must not be empty")
	}
	if c.Dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return fmt.Errorf("--dir not set and no home directory: %w", err)
		}
		c.Dir = filepath.Join(home, ".hegate", c.Model)
	}
	return nil
}

func (c *deviceConfig) path(name string) string { return filepath.Join(c.Dir, name) }

// client authenticates with the device credential of Identity, unless an
// API key came from a stronger source (a flag beats the context).
func (c *deviceConfig) client() (*client.Client, error) {
	if c.Identity != "" && (c.APIKey == "" || c.identityFrom >= c.keyFrom) {
		cred, err := loadCredential(c.Identity)
		if err != nil {
			return nil, err
		}
		return client.New(c.Server, "", client.WithDeviceCredential(cred))
	}
	return client.New(c.Server, c.APIKey)
}

// apiClient is a client with the API key alone (tenant commands that a
// device credential may not run).
func (c *deviceConfig) apiClient(what string) (*client.Client, error) {
	if c.APIKey == "" {
		return nil, fmt.Errorf("%s needs a tenant API key: give --api-key or HEGATE_API_KEY, or a context with one (hegate config set-context)", what)
	}
	return client.New(c.Server, c.APIKey)
}

// loadDevice reads the saved manifest and secret key.
func (c *deviceConfig) loadDevice() (*he.Device, *he.SecretKey, error) {
	b, err := os.ReadFile(c.path("manifest.json"))
	if err != nil {
		return nil, nil, fmt.Errorf("reading manifest (run hegate keygen first): %w", err)
	}
	var man he.Manifest
	if err := json.Unmarshal(b, &man); err != nil {
		return nil, nil, fmt.Errorf("manifest.json: %w", err)
	}
	dev, err := he.NewDevice(man, false)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(c.path("secret.key"))
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sk, err := dev.ReadSecretKey(f)
	if err != nil {
		return nil, nil, err
	}
	return dev, sk, nil
}

func newKeygenCmd() *cobra.Command {
	var cfg deviceConfig
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "device: make a secret key and the model's evaluation keys",
		Long: `Fetch the model's manifest from the gateway, make a secret key (it never
leaves this device) and the evaluation key set the gateway needs, and write
them to --dir (secret.key, keyset.bin, manifest.json, all 0600). Upload the
key set with hegate keys upload.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(cmd); err != nil {
				return err
			}
			return keygen(cmd, &cfg)
		},
	}
	cfg.register(cmd.Flags())
	return cmd
}

func keygen(cmd *cobra.Command, cfg *deviceConfig) error {
	ctx, stdout := cmd.Context(), cmd.OutOrStdout()
	cl, err := cfg.client()
	if err != nil {
		return err
	}
	man, err := cl.Model(ctx, cfg.Model)
	if err != nil {
		return fmt.Errorf("fetching the manifest of %s: %w", cfg.Model, err)
	}
	dev, err := he.NewDevice(man, false)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return err
	}
	sk, err := dev.GenerateSecretKey()
	if err != nil {
		return err
	}
	if err := writeFileWith(cfg.path("secret.key"), 0o600, func(w io.Writer) error { _, err := he.WriteSecretKey(w, sk); return err }); err != nil {
		return err
	}
	mb, _ := json.MarshalIndent(man, "", "  ")
	if err := os.WriteFile(cfg.path("manifest.json"), mb, 0o600); err != nil {
		return err
	}
	t0 := time.Now()
	bar := byteMeter(cmd, man.KeySetBytes, "key set")
	err = writeFileWith(cfg.path("keyset.bin"), 0o600, func(w io.Writer) error { _, err := dev.WriteKeySet(bar.writer(w), sk); return err })
	bar.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "secret key  %s (never leaves this device)\nkey set     %s (%.1f MB, %d Galois keys, %s)\n",
		cfg.path("secret.key"), cfg.path("keyset.bin"), float64(man.KeySetBytes)/1e6, len(man.GaloisElements), time.Since(t0).Round(time.Millisecond))
	return nil
}

// writeFileWith writes a file atomically through a temporary file.
func writeFileWith(path string, mode os.FileMode, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newKeysCmd() *cobra.Command {
	return group("keys", "device: upload, list and delete the tenant's evaluation key sets",
		"The tenant's evaluation key sets on the gateway: hegate keys upload sends the\none hegate keygen made.",
		newKeysUploadCmd(), newKeysListCmd(), newKeysDeleteCmd())
}

// keyUploadFlags choose between a one-shot and a resumable key-set upload.
type keyUploadFlags struct {
	above  int64  // files larger than this go in chunks
	chunk  int64  // bytes per chunk
	resume string // an upload id to continue
}

func newKeysUploadCmd() *cobra.Command {
	var (
		cfg deviceConfig
		up  keyUploadFlags
	)
	cmd := &cobra.Command{
		Use:   "upload",
		Short: "upload the key set hegate keygen made; its id goes to keyset.id",
		Long: `Upload the key set hegate keygen made; its id goes to keyset.id.

A key set larger than --resumable-above (64 MiB by default: a bootstrapped
model's are 1 to 2.5 GB) goes in chunks of --chunk-size bytes, each checked
against its SHA-256 by the gateway. A lost connection is retried from where
the gateway stands; if the command itself stops, it prints the upload's id,
and --resume ID continues that upload (for 24 hours after its last chunk).`,
		Example: `  hegate keys upload
  hegate keys upload --chunk-size 16777216
  hegate keys upload --resume upl_...`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(cmd); err != nil {
				return err
			}
			if up.chunk < 0 || up.chunk > api.MaxUploadChunk {
				return fmt.Errorf("--chunk-size %d: want 1 to %d bytes (0: the largest)", up.chunk, int64(api.MaxUploadChunk))
			}
			cl, err := cfg.client()
			if err != nil {
				return err
			}
			return uploadKeysWith(cmd, cfg, cl, up)
		},
	}
	cfg.register(cmd.Flags())
	f := cmd.Flags()
	f.Int64Var(&up.above, "resumable-above", api.MaxUploadChunk, "upload key sets larger than this many bytes in resumable chunks")
	f.Int64Var(&up.chunk, "chunk-size", 0, "bytes per chunk of a resumable upload (0: the largest the gateway takes, 64 MiB)")
	f.StringVar(&up.resume, "resume", "", "continue the resumable upload with this id")
	return cmd
}

func newKeysListCmd() *cobra.Command {
	var cfg deviceConfig
	var out *output
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list the tenant's key sets",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(cmd); err != nil {
				return err
			}
			cl, err := cfg.client()
			if err != nil {
				return err
			}
			sets, err := cl.KeySets(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if out.JSON() {
				if sets == nil {
					sets = []api.KeySet{}
				}
				return printJSON(w, sets)
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "ID\tMODEL\tSIZE\tCREATED")
			for _, ks := range sets {
				fmt.Fprintf(tw, "%s\t%s\t%.1f MB\t%s\n", ks.ID, ks.Model, float64(ks.SizeBytes)/1e6, ks.CreatedAt.Format(timeFormat))
			}
			return tw.Flush()
		},
	}
	cfg.register(cmd.Flags())
	out = addOutputFlags(cmd, false)
	return cmd
}

func newKeysDeleteCmd() *cobra.Command {
	var cfg deviceConfig
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: "delete a key set",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := cfg.validate(cmd); err != nil {
				return err
			}
			cl, err := cfg.client()
			if err != nil {
				return err
			}
			if err := cl.DeleteKeySet(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key set %s deleted\n", a[0])
			return nil
		},
	}
	cfg.register(cmd.Flags())
	return cmd
}

func uploadKeys(cmd *cobra.Command, cfg deviceConfig, cl *client.Client) error {
	return uploadKeysWith(cmd, cfg, cl, keyUploadFlags{above: api.MaxUploadChunk})
}

func uploadKeysWith(cmd *cobra.Command, cfg deviceConfig, cl *client.Client, up keyUploadFlags) error {
	f, err := os.Open(cfg.path("keyset.bin"))
	if err != nil {
		return fmt.Errorf("opening key set (run hegate keygen first): %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	t0 := time.Now()
	bar := byteMeter(cmd, st.Size(), "uploading key set")
	var ks api.KeySet
	if up.resume != "" || st.Size() > up.above {
		var id string
		ks, err = cl.UploadKeySetResumable(cmd.Context(), cfg.Model, f, st.Size(), client.ResumableOptions{
			Chunk:    up.chunk,
			UploadID: up.resume,
			Started:  func(s string) { id = s },
			Progress: bar.set,
		})
		if err != nil && id != "" {
			bar.finish()
			return fmt.Errorf("%w\ncontinue with: hegate keys upload --resume %s", err, id)
		}
	} else {
		ks, err = cl.UploadKeySet(cmd.Context(), cfg.Model, bar.reader(f), st.Size())
	}
	bar.finish()
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfg.path("keyset.id"), []byte(ks.ID+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "key set %s uploaded (%.1f MB in %s)\n", ks.ID, float64(st.Size())/1e6, time.Since(t0).Round(time.Millisecond))
	return nil
}

func newInferCmd() *cobra.Command {
	var (
		cfg        deviceConfig
		input      string
		mnistIndex int
		modelFile  string
	)
	cmd := &cobra.Command{
		Use:   "infer",
		Short: "device: encrypt an input, infer on the gateway, decrypt",
		Long: `Encrypt one input under the device's secret key (hegate keygen), run the
model on the gateway with the uploaded key set (hegate keys upload), and
decrypt and print the prediction and the outputs.`,
		Example: `  hegate infer --mnist-index 7
  hegate infer --input x.json --model digits@v1`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(cmd); err != nil {
				return err
			}
			return infer(cmd, &cfg, input, mnistIndex, modelFile)
		},
	}
	cfg.register(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&input, "input", "", "JSON file with the model's input values (row-major, preprocessed), or - for stdin")
	f.IntVar(&mnistIndex, "mnist-index", -1, "use this image of the MNIST test set as input instead (the model's preprocessing is applied)")
	f.StringVar(&modelFile, "model-file", "", "split models: the model file (ONNX or graph JSON) whose head this device runs before encrypting")
	return cmd
}

func infer(cmd *cobra.Command, cfg *deviceConfig, input string, mnistIndex int, modelFile string) error {
	ctx, stdout := cmd.Context(), cmd.OutOrStdout()
	dev, sk, err := cfg.loadDevice()
	if err != nil {
		return err
	}
	idb, err := os.ReadFile(cfg.path("keyset.id"))
	if err != nil {
		return fmt.Errorf("reading keyset.id (run hegate keys upload first): %w", err)
	}
	x, label, err := readInput(input, mnistIndex, dev)
	if err != nil {
		return err
	}
	if s := dev.Split(); s != nil {
		head, err := loadHead(modelFile, s)
		if err != nil {
			return err
		}
		if x, err = head.Run(x); err != nil {
			return fmt.Errorf("running the head: %w", err)
		}
	}
	cl, err := cfg.client()
	if err != nil {
		return err
	}
	t0 := time.Now()
	ct, err := dev.Encrypt(sk, x)
	if err != nil {
		return err
	}
	result, jobID, err := cl.Infer(ctx, cfg.Model, strings.TrimSpace(string(idb)), ct, client.InferOptions{Wait: true})
	if err != nil {
		return err
	}
	out, err := dev.Decrypt(sk, result)
	if err != nil {
		return err
	}
	pred := client.Argmax(dev.Tail(out))
	if len(dev.Tail(out)) == 1 {
		pred = int(dev.Tail(out)[0]) // a model that ends in ArgMax
	}
	fmt.Fprintf(stdout, "job %s: prediction %d", jobID, pred)
	if label >= 0 {
		fmt.Fprintf(stdout, " (label %d)", label)
	}
	fmt.Fprintf(stdout, " in %s\noutputs %s\n", time.Since(t0).Round(time.Millisecond), formatFloats(out))
	return nil
}

// loadHead reads the model file of a split model and returns its head,
// checked against the digest the gateway compiled with.
func loadHead(path string, s *he.SplitInfo) (*ir.Graph, error) {
	if path == "" {
		return nil, fmt.Errorf("this is a split model: the device runs its head up to %q; give the model file with --model-file", s.After)
	}
	var g *ir.Graph
	var err error
	if strings.HasSuffix(path, ".onnx") {
		g, err = onnx.ImportFile(path, onnx.Options{})
	} else {
		g, err = readGraphFile(path)
	}
	if err != nil {
		return nil, err
	}
	head, _, err := ir.Split(g, s.After)
	if err != nil {
		return nil, err
	}
	if head.Digest() != s.HeadDigest {
		return nil, fmt.Errorf("%s: its head up to %q is not the one the gateway compiled (digest %.12s…, want %.12s…)", path, s.After, head.Digest(), s.HeadDigest)
	}
	return head, nil
}

func readInput(path string, mnistIndex int, dev *he.Device) ([]float64, int, error) {
	if mnistIndex >= 0 {
		set, err := mnist.LoadDefault(mnist.Test)
		if err != nil {
			return nil, 0, err
		}
		if mnistIndex >= set.Len() {
			return nil, 0, fmt.Errorf("--mnist-index %d: the test set has %d images", mnistIndex, set.Len())
		}
		raw := make([]float64, len(set.Images[mnistIndex]))
		for i, v := range set.Images[mnistIndex] {
			raw[i] = math.Round(v * 255)
		}
		return dev.Preprocess(raw), set.Labels[mnistIndex], nil
	}
	var r io.Reader
	switch path {
	case "":
		return nil, 0, errors.New("give --input FILE or --mnist-index N")
	case "-":
		r = os.Stdin
	default:
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, err
		}
		defer f.Close()
		r = f
	}
	var x []float64
	if err := json.NewDecoder(io.LimitReader(r, 64<<20)).Decode(&x); err != nil {
		return nil, 0, fmt.Errorf("input must be a JSON array of numbers: %w", err)
	}
	return x, -1, nil
}

func formatFloats(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.3f", x)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

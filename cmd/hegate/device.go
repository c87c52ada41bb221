package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/he/onnx"
	"github.com/hegate/hegate/internal/mnist"
)

// deviceConfig is what the device-side commands share: the gateway, the
// credential, and the directory that holds the device's key material.
type deviceConfig struct {
	Server string
	APIKey string
	Model  string
	Dir    string // default ~/.hegate/<model>
	// Identity is an enrolled device's directory (hegate enroll): when it
	// holds a credential, requests carry it instead of the API key.
	Identity string
}

func (c *deviceConfig) register(fs interface {
	StringVar(*string, string, string, string)
}) {
	fs.StringVar(&c.Server, "server", envOr("HEGATE_SERVER", "http://127.0.0.1:8080"), "gateway base URL [HEGATE_SERVER]")
	// No default from the environment: a flag's default is printed by -h,
	// and the key is a secret. apiKey reads HEGATE_API_KEY after parsing.
	fs.StringVar(&c.APIKey, "api-key", "", "tenant API key (default: $HEGATE_API_KEY)")
	fs.StringVar(&c.Model, "model", envOr("HEGATE_MODEL", "mnist-cryptonets"), "model name [HEGATE_MODEL]")
	fs.StringVar(&c.Dir, "dir", envOr("HEGATE_DEVICE_DIR", ""), "directory for the device's secret key, key set and manifest (default ~/.hegate/<model>) [HEGATE_DEVICE_DIR]")
	fs.StringVar(&c.Identity, "identity", envOr("HEGATE_IDENTITY", ""), "enrolled device directory (hegate enroll); its credential replaces the API key [HEGATE_IDENTITY]")
}

// apiKeyOrEnv is the --api-key given, or HEGATE_API_KEY.
func apiKeyOrEnv(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return envOr("HEGATE_API_KEY", "")
}

func (c *deviceConfig) validate() error {
	c.APIKey = apiKeyOrEnv(c.APIKey)
	if c.APIKey == "" && c.Identity == "" {
		return errors.New("--api-key (or HEGATE_API_KEY), or --identity of an enrolled device, is required")
	}
	return c.validateLocal()
}

// validateLocal is validate for commands that never call the gateway
// (encrypt, decrypt): no credential is needed.
func (c *deviceConfig) validateLocal() error {
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

func (c *deviceConfig) client() (*client.Client, error) {
	if c.Identity != "" {
		cred, err := loadCredential(c.Identity)
		if err != nil {
			return nil, err
		}
		return client.New(c.Server, "", client.WithDeviceCredential(cred))
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

func runKeygen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keygen", stderr)
	var cfg deviceConfig
	cfg.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
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
	if err := writeFileWith(cfg.path("keyset.bin"), 0o600, func(w io.Writer) error { _, err := dev.WriteKeySet(w, sk); return err }); err != nil {
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

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: hegate keys upload | list | delete ID [flags]"
	if len(args) == 0 {
		return errors.New(usage)
	}
	if wantsHelp(args[:1]) {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fs := newFlags("keys "+args[0], stderr)
	var cfg deviceConfig
	cfg.register(fs)
	rest, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	cl, err := cfg.client()
	if err != nil {
		return err
	}
	switch {
	case args[0] == "upload" && len(rest) == 0:
		return uploadKeys(ctx, cfg, cl, stdout)
	case args[0] == "list" && len(rest) == 0:
		sets, err := cl.KeySets(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tMODEL\tSIZE\tCREATED")
		for _, ks := range sets {
			fmt.Fprintf(tw, "%s\t%s\t%.1f MB\t%s\n", ks.ID, ks.Model, float64(ks.SizeBytes)/1e6, ks.CreatedAt.Format("2006-01-02 15:04:05Z"))
		}
		return tw.Flush()
	case args[0] == "delete" && len(rest) == 1:
		if err := cl.DeleteKeySet(ctx, rest[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key set %s deleted\n", rest[0])
		return nil
	}
	return errors.New(usage)
}

func uploadKeys(ctx context.Context, cfg deviceConfig, cl *client.Client, stdout io.Writer) error {
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
	ks, err := cl.UploadKeySet(ctx, cfg.Model, f, st.Size())
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfg.path("keyset.id"), []byte(ks.ID+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key set %s uploaded (%.1f MB in %s)\n", ks.ID, float64(st.Size())/1e6, time.Since(t0).Round(time.Millisecond))
	return nil
}

func runInfer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("infer", stderr)
	var cfg deviceConfig
	cfg.register(fs)
	input := fs.String("input", "", "JSON file with the model's input values (row-major, preprocessed), or - for stdin")
	mnistIndex := fs.Int("mnist-index", -1, "use this image of the MNIST test set as input instead (the model's preprocessing is applied)")
	modelFile := fs.String("model-file", "", "split models: the model file (ONNX or graph JSON) whose head this device runs before encrypting")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	dev, sk, err := cfg.loadDevice()
	if err != nil {
		return err
	}
	idb, err := os.ReadFile(cfg.path("keyset.id"))
	if err != nil {
		return fmt.Errorf("reading keyset.id (run hegate keys upload first): %w", err)
	}
	x, label, err := readInput(*input, *mnistIndex, dev)
	if err != nil {
		return err
	}
	if s := dev.Split(); s != nil {
		head, err := loadHead(*modelFile, s)
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

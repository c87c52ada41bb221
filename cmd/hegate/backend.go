package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/pflag"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/internal/mnist/mnisteval"
	"github.com/hegate/hegate/modelzoo"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/blobfs"
	"github.com/hegate/hegate/storage/postgres"
	"github.com/hegate/hegate/storage/sqlite"
)

// backendConfig is what every server-side command needs: where the
// database and the blobs are, and which models to serve.
type backendConfig struct {
	DatabaseURL string // postgres://... or a SQLite file path; empty: <DataDir>/hegate.db
	Schema      string // PostgreSQL schema for hegate's and River's tables; empty: search_path
	DataDir     string // blobs live in <DataDir>/blobs
	ModelsDir   string // extra model JSON files, optional
	LogLevel    string
	// describeOnly compiles models without their weights, for a process
	// that never evaluates (serve --workers 0): manifests, key-set and
	// ciphertext checks only (he.CompileOptions.DescribeOnly).
	describeOnly bool
}

func (c *backendConfig) register(fs *pflag.FlagSet) {
	// The URL may hold a password: the environment's value is set after
	// the flag is defined, so that -h does not print it as the default.
	fs.StringVar(&c.DatabaseURL, "database-url", "", "postgres://... for PostgreSQL, or a SQLite file path (default <data-dir>/hegate.db) [HEGATE_DATABASE_URL]")
	c.DatabaseURL = envOr("HEGATE_DATABASE_URL", "")
	fs.StringVar(&c.Schema, "database-schema", envOr("HEGATE_DATABASE_SCHEMA", ""), "PostgreSQL only: schema for hegate's and the job queue's tables, created if missing (default: the connection's search_path) [HEGATE_DATABASE_SCHEMA]")
	fs.StringVar(&c.DataDir, "data-dir", envOr("HEGATE_DATA_DIR", "./data"), "directory for the SQLite database and the blob store [HEGATE_DATA_DIR]")
	fs.StringVar(&c.ModelsDir, "models-dir", envOr("HEGATE_MODELS_DIR", ""), "directory of extra model files (*.json graph IR) to serve [HEGATE_MODELS_DIR]")
	fs.StringVar(&c.LogLevel, "log-level", envOr("HEGATE_LOG_LEVEL", "info"), "debug, info, warn or error [HEGATE_LOG_LEVEL]")
}

// Validate names the bad field.
func (c *backendConfig) Validate() error {
	if c.DataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	if c.Schema != "" && !c.isPostgres() {
		return errors.New("--database-schema is for PostgreSQL only")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	return nil
}

func (c *backendConfig) isPostgres() bool {
	return strings.HasPrefix(c.DatabaseURL, "postgres://") || strings.HasPrefix(c.DatabaseURL, "postgresql://")
}

func (c *backendConfig) logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// openStore opens and migrates the database.
func (c *backendConfig) openStore(ctx context.Context, logger *slog.Logger) (storage.Store, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var (
		store storage.Store
		err   error
	)
	if c.isPostgres() {
		store, err = postgres.Open(ctx, postgres.Config{URL: c.DatabaseURL, Schema: c.Schema, Logger: logger})
	} else {
		path := c.DatabaseURL
		if path == "" {
			if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
				return nil, fmt.Errorf("creating data directory: %w", err)
			}
			path = filepath.Join(c.DataDir, "hegate.db")
		}
		store, err = sqlite.Open(ctx, sqlite.Config{Path: path, Logger: logger})
	}
	if err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}
	if err := store.Migrate(ctx); err != nil {
		store.Close()
		return nil, fmt.Errorf("migrating database: %w", err)
	}
	return store, nil
}

func (c *backendConfig) openBlobs() (storage.Blobs, error) {
	b, err := blobfs.New(filepath.Join(c.DataDir, "blobs"))
	if err != nil {
		return nil, fmt.Errorf("opening blob store: %w", err)
	}
	return b, nil
}

// loadGraphs returns the embedded models and those in ModelsDir.
func (c *backendConfig) loadGraphs() ([]*ir.Graph, error) {
	graphs, err := modelzoo.All()
	if err != nil {
		return nil, fmt.Errorf("loading embedded models: %w", err)
	}
	if c.ModelsDir == "" {
		return graphs, nil
	}
	files, err := filepath.Glob(filepath.Join(c.ModelsDir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	for _, f := range files {
		g, err := readGraphFile(f)
		if err != nil {
			return nil, err
		}
		graphs = append(graphs, g)
	}
	return graphs, nil
}

func readGraphFile(path string) (*ir.Graph, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	g, err := ir.Read(f)
	if err != nil {
		return nil, fmt.Errorf("model file %s: %w", path, err)
	}
	return g, nil
}

// builtin is a model the binary serves: a graph and how it is compiled.
type builtin struct {
	name       string
	graph      *ir.Graph
	splitAfter string
}

// builtins returns the embedded models, their variants (modelzoo.Variants)
// and the models in ModelsDir.
func (c *backendConfig) builtins() ([]builtin, error) {
	graphs, err := c.loadGraphs()
	if err != nil {
		return nil, err
	}
	var out []builtin
	byName := map[string]*ir.Graph{}
	for _, g := range graphs {
		out = append(out, builtin{name: g.Name, graph: g})
		byName[g.Name] = g
	}
	for _, v := range modelzoo.Variants() {
		if g, ok := byName[v.Graph]; ok {
			out = append(out, builtin{name: v.Name, graph: g, splitAfter: v.SplitAfter})
		}
	}
	return out, nil
}

// pickBuiltins returns the built-in models named in names, in that order.
func pickBuiltins(all []builtin, names []string) ([]builtin, error) {
	var out []builtin
	for _, name := range names {
		i := slices.IndexFunc(all, func(b builtin) bool { return b.name == name })
		if i < 0 {
			return nil, fmt.Errorf("no model named %q", name)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// compileModels compiles the built-in models, each for the smallest
// 128-bit preset it fits.
func compileModels(ctx context.Context, specs []builtin, cal *calibrator, describeOnly bool) ([]*he.Model, error) {
	seen := map[string]bool{}
	var out []*he.Model
	for _, b := range specs {
		if seen[b.name] {
			return nil, fmt.Errorf("two models are named %q", b.name)
		}
		seen[b.name] = true
		samples, err := cal.samples(b.graph)
		if err != nil {
			return nil, fmt.Errorf("compiling model %s: %w", b.name, err)
		}
		m, err := he.Compile(ctx, b.graph, he.CompileOptions{Name: b.name, SplitAfter: b.splitAfter, Calibration: samples, DescribeOnly: describeOnly})
		if err != nil {
			return nil, fmt.Errorf("compiling model %s: %w", b.name, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// calibrator hands out sample inputs on which the compiler calibrates the
// ranges of approximated activations and of the outputs (the privacy
// mechanism's declared range): for graphs with a 28×28 input, the first
// 512 MNIST training images with the graph's preprocessing. Other graphs
// get none: those with ReLU or max pooling are refused, the others have no
// calibrated output range (their uploader declares one). The images are
// read once.
type calibrator struct {
	once sync.Once
	set  *mnist.Set
	err  error
}

// samples implements catalog.Config.Calibration. A graph whose input is
// not a 28×28 image is the caller's problem (KindInvalid); failing to read
// the images is ours.
func (c *calibrator) samples(g *ir.Graph) ([][]float64, error) {
	need := false
	for _, n := range g.Nodes {
		need = need || n.Op == ir.OpRelu || n.Op == ir.OpMaxPool
	}
	if g.InputSize() != mnist.Pixels && !need {
		return nil, nil
	}
	if g.InputSize() != mnist.Pixels {
		return nil, hegate.E("calibration", hegate.KindInvalid, nil, "model %s has approximated activations (ReLU, max pooling) and a %v input: this gateway has calibration samples only for 28×28 images", g.Name, g.Input.Shape)
	}
	c.once.Do(func() { c.set, c.err = mnist.LoadDefault(mnist.Train) })
	if c.err != nil {
		return nil, fmt.Errorf("loading calibration images: %w", c.err)
	}
	var out [][]float64
	for i := 0; i < 512 && i < c.set.Len(); i++ {
		out = append(out, mnisteval.Input(g, c.set.Images[i]))
	}
	return out, nil
}

// calibrationFor is (&calibrator{}).samples, for one-off commands.
func calibrationFor(g *ir.Graph) ([][]float64, error) { return (&calibrator{}).samples(g) }

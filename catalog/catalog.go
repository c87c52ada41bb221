// Package catalog is the set of models a gateway serves: the built-in ones
// compiled into the binary, and the versioned models tenants upload at run
// time (ONNX or hegate's IR JSON). It holds the rules both the JSON API and
// the console apply: who may see which model, what an upload must be, how a
// compile job turns a source file into a ready version, when a model may be
// deleted.
//
// Every process (gateways and workers) reads model versions from the
// database when it needs them, so a version compiled by any worker is
// served by every gateway without a restart. A compiled version is cached
// in memory: a ready version never changes (a new upload is a new version),
// and a version deleted since is not found again on the next lookup.
package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/he/onnx"
	"github.com/hegate/hegate/storage"
)

// Config is what a Catalog needs.
type Config struct {
	// Store holds model versions. Required.
	Store storage.Store
	// Blobs holds model sources and imported graphs. Required.
	Blobs storage.Blobs
	// Builtin are the models compiled into the binary, visible to every
	// tenant under their names (no versions). Their names cannot be taken
	// by an upload.
	Builtin []*he.Model
	// Lazy are built-in models compiled on first use (compiling a large
	// model at start costs time and memory in every process).
	Lazy []LazyModel
	// Calibration returns sample inputs on which an uploaded graph's
	// approximated activations (ReLU, max pooling) are calibrated; nil
	// means such graphs are refused.
	Calibration func(g *ir.Graph) ([][]float64, error)
	// MaxSourceBytes bounds an upload; 0 means onnx.MaxModelBytes.
	MaxSourceBytes int64
	// MaxCompiled bounds the tenant models kept compiled in memory; 0
	// means 16.
	MaxCompiled int
	// AllowInsecure lets uploads name presets below 128-bit security
	// (tests only).
	AllowInsecure bool
	// Logger receives one line per compile; nil discards.
	Logger *slog.Logger
	// DescribeOnly compiles stored versions without their weights, for a
	// process that never evaluates (he.CompileOptions.DescribeOnly). Such
	// a process runs no compile jobs; if it did, Compile would still
	// compile the upload in full to check it.
	DescribeOnly bool
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return hegate.E("catalog.Config.Validate", hegate.KindInvalid, nil, "catalog: Config."+format, args...)
	}
	switch {
	case c.Store == nil:
		return bad("Store is nil")
	case c.Blobs == nil:
		return bad("Blobs is nil")
	case c.MaxSourceBytes < 0:
		return bad("MaxSourceBytes is negative")
	case c.MaxCompiled < 0:
		return bad("MaxCompiled is negative")
	}
	seen := map[hegate.ModelID]bool{}
	for i, m := range c.Builtin {
		if m == nil {
			return bad("Builtin[%d] is nil", i)
		}
		if seen[m.ID()] {
			return bad("Builtin has two models named %q", m.ID())
		}
		seen[m.ID()] = true
	}
	return nil
}

// LazyModel is a built-in model compiled when it is first needed.
type LazyModel struct {
	Name    hegate.ModelID
	Compile func(ctx context.Context) (*he.Model, error)
}

// builtinModel is a built-in model, compiled or to be compiled once.
type builtinModel struct {
	once    sync.Once
	model   *he.Model
	err     error
	compile func(ctx context.Context) (*he.Model, error)
	// loaded is the model once compiled, for readers that must not wait.
	loaded atomic.Pointer[he.Model]
}

func (b *builtinModel) get(ctx context.Context) (*he.Model, error) {
	b.once.Do(func() {
		if b.model == nil {
			b.model, b.err = b.compile(context.WithoutCancel(ctx))
		}
		if b.err == nil {
			b.loaded.Store(b.model)
		}
	})
	return b.model, b.err
}

// Catalog resolves, uploads, compiles and deletes models. It is safe for
// concurrent use.
type Catalog struct {
	cfg     Config
	builtin map[hegate.ModelID]*builtinModel
	order   []hegate.ModelID
	log     *slog.Logger

	mu       sync.Mutex
	compiled map[versionKey]*compiledEntry
	use      uint64 // clock for LRU eviction
}

type versionKey struct {
	tenant  hegate.TenantID
	name    hegate.ModelID
	version int
}

type compiledEntry struct {
	done    chan struct{} // closed when model or err is set
	model   *he.Model
	err     error
	lastUse uint64
}

// New validates cfg and builds a Catalog.
func New(cfg Config) (*Catalog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxSourceBytes == 0 {
		cfg.MaxSourceBytes = onnx.MaxModelBytes
	}
	if cfg.MaxCompiled == 0 {
		cfg.MaxCompiled = 16
	}
	c := &Catalog{cfg: cfg, builtin: map[hegate.ModelID]*builtinModel{}, compiled: map[versionKey]*compiledEntry{}, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for _, m := range cfg.Builtin {
		b := &builtinModel{model: m}
		b.loaded.Store(m)
		c.builtin[m.ID()] = b
		c.order = append(c.order, m.ID())
	}
	for _, l := range cfg.Lazy {
		if _, dup := c.builtin[l.Name]; dup || l.Compile == nil {
			return nil, hegate.E("catalog.New", hegate.KindInvalid, nil, "catalog: Config.Lazy: model %q is named twice or has no Compile", l.Name)
		}
		c.builtin[l.Name] = &builtinModel{compile: l.Compile}
		c.order = append(c.order, l.Name)
	}
	return c, nil
}

// builtinFor returns the built-in model name, compiling it on first use.
func (c *Catalog) builtinFor(ctx context.Context, name hegate.ModelID) (*he.Model, bool, error) {
	b, ok := c.builtin[name]
	if !ok {
		return nil, false, nil
	}
	m, err := b.get(ctx)
	if err != nil {
		return nil, true, fmt.Errorf("catalog: compiling built-in model %s: %w", name, err)
	}
	return m, true, nil
}

// MaxSourceBytes is the largest upload Upload accepts.
func (c *Catalog) MaxSourceBytes() int64 { return c.cfg.MaxSourceBytes }

// Builtins returns the built-in models, in configured order, compiling
// those not compiled yet.
func (c *Catalog) Builtins(ctx context.Context) ([]*he.Model, error) {
	out := make([]*he.Model, 0, len(c.order))
	for _, id := range c.order {
		m, _, err := c.builtinFor(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Ref names one servable model: a built-in (Tenant "" and Version 0) or a
// version of a tenant's model.
type Ref struct {
	Tenant  hegate.TenantID
	Name    hegate.ModelID
	Version int
}

// Builtin reports whether the ref is a built-in model.
func (r Ref) Builtin() bool { return r.Version == 0 }

// KeyID is the model a key set is validated against: the name of a
// built-in, "name@vN" for a tenant's version (each version has its own key
// requirements).
func (r Ref) KeyID() hegate.ModelID {
	if r.Builtin() {
		return r.Name
	}
	return hegate.ModelID(string(r.Name) + "@v" + strconv.Itoa(r.Version))
}

// Model is a compiled model and what names it.
type Model struct {
	Ref
	*he.Model
}

// Lookup returns the model name visible to tenant: a built-in, or the
// tenant's model at version (0: its latest ready version), compiling it on
// first use. Outcomes: the model; KindNotFound if there is no such model
// or version for this tenant (another tenant's models are not found,
// exactly like missing ones), or the version is not ready yet (the detail
// says which); an internal error if the store or the compile fails.
func (c *Catalog) Lookup(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int) (Model, error) {
	const op = "catalog.Lookup"
	b, v, err := c.resolve(ctx, op, tenant, name, version)
	if err != nil || b != nil {
		return Model{Ref: Ref{Name: name}, Model: b}, err
	}
	m, err := c.compiledVersion(ctx, v)
	if err != nil {
		return Model{}, err
	}
	return Model{Ref: Ref{Tenant: tenant, Name: name, Version: v.Version}, Model: m}, nil
}

// resolve finds what name names for tenant: a built-in model (b), or a
// ready version of the tenant's model (v). Outcomes as for Lookup.
func (c *Catalog) resolve(ctx context.Context, op string, tenant hegate.TenantID, name hegate.ModelID, version int) (b *he.Model, v storage.ModelVersion, err error) {
	if m, ok, err := c.builtinFor(ctx, name); ok {
		if err != nil {
			return nil, v, err
		}
		if version != 0 && version != 1 {
			return nil, v, hegate.E(op, hegate.KindNotFound, nil, "model %q has only version 1", name)
		}
		return m, v, nil
	}
	if tenant == "" || !namePattern.MatchString(string(name)) {
		return nil, v, hegate.E(op, hegate.KindNotFound, nil, "model %q not found", truncate(string(name), 80))
	}
	v, err = c.cfg.Store.GetModelVersion(ctx, tenant, name, version)
	if errors.Is(err, storage.ErrNotFound) {
		c.forget(tenant, name, version)
		if version == 0 {
			return nil, v, hegate.E(op, hegate.KindNotFound, err, "model %q not found (or no version of it is ready yet)", truncate(string(name), 80))
		}
		return nil, v, hegate.E(op, hegate.KindNotFound, err, "model %q has no version %d", truncate(string(name), 80), version)
	}
	if err != nil {
		return nil, v, fmt.Errorf("%s: loading model %s: %w", op, name, err)
	}
	if v.Status != storage.ModelReady {
		return nil, v, hegate.E(op, hegate.KindNotFound, nil, "model %q version %d is %s, not ready", name, v.Version, v.Status)
	}
	return nil, v, nil
}

// Described is a model's manifest without compiling it.
type Described struct {
	Ref
	Manifest he.Manifest
}

// Describe returns the manifest of a model visible to tenant (version 0:
// the latest ready one) from the store, without compiling anything: what
// metadata routes answer. Outcomes as for Lookup.
func (c *Catalog) Describe(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int) (Described, error) {
	const op = "catalog.Describe"
	b, v, err := c.resolve(ctx, op, tenant, name, version)
	if err != nil {
		return Described{}, err
	}
	if b != nil {
		return Described{Ref: Ref{Name: name}, Manifest: b.Manifest()}, nil
	}
	var man he.Manifest
	if err := json.Unmarshal(v.Manifest, &man); err != nil {
		return Described{}, fmt.Errorf("%s: stored manifest of %s v%d: %w", op, name, v.Version, err)
	}
	return Described{Ref: Ref{Tenant: tenant, Name: name, Version: v.Version}, Manifest: man}, nil
}

// forget drops cached versions of a model that the store no longer has.
func (c *Catalog) forget(tenant hegate.TenantID, name hegate.ModelID, version int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.compiled {
		if k.tenant == tenant && k.name == name && (version == 0 || k.version == version) {
			delete(c.compiled, k)
		}
	}
}

// compiledVersion compiles a ready version from its stored graph and
// options, once per process (concurrent callers wait for the first).
func (c *Catalog) compiledVersion(ctx context.Context, v storage.ModelVersion) (*he.Model, error) {
	key := versionKey{v.TenantID, v.Name, v.Version}
	c.mu.Lock()
	c.use++
	e, ok := c.compiled[key]
	if ok {
		e.lastUse = c.use
		c.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return e.model, e.err
	}
	e = &compiledEntry{done: make(chan struct{}), lastUse: c.use}
	c.compiled[key] = e
	c.evictLocked()
	c.mu.Unlock()

	e.model, e.err = c.loadVersion(context.WithoutCancel(ctx), v)
	close(e.done)
	if e.err != nil {
		c.mu.Lock()
		if c.compiled[key] == e {
			delete(c.compiled, key)
		}
		c.mu.Unlock()
	}
	return e.model, e.err
}

// evictLocked drops the least recently used compiled versions above the
// bound (never one still compiling: its waiters hold it).
func (c *Catalog) evictLocked() {
	for len(c.compiled) > c.cfg.MaxCompiled {
		var oldest versionKey
		found := false
		for k, e := range c.compiled {
			select {
			case <-e.done:
			default:
				continue
			}
			if !found || e.lastUse < c.compiled[oldest].lastUse {
				oldest, found = k, true
			}
		}
		if !found {
			return
		}
		delete(c.compiled, oldest)
	}
}

// compiledSource is what a compile job stores as a version's graph blob:
// the imported graph and the ranges it was calibrated on, so that every
// process compiles the very same circuit without the calibration data.
type compiledSource struct {
	Graph  *ir.Graph  `json:"graph"`
	Ranges *he.Ranges `json:"ranges"`
}

// loadVersion compiles a stored, ready version.
func (c *Catalog) loadVersion(ctx context.Context, v storage.ModelVersion) (*he.Model, error) {
	cs, err := c.readCompiled(ctx, v.GraphBlob)
	if err != nil {
		return nil, fmt.Errorf("catalog: model %s v%d: %w", v.Name, v.Version, err)
	}
	opts, err := decodeOptions(v.Options)
	if err != nil {
		return nil, fmt.Errorf("catalog: model %s v%d: %w", v.Name, v.Version, err)
	}
	opts.Ranges = cs.Ranges
	co := opts.compileOptions(c.cfg.AllowInsecure)
	co.DescribeOnly = c.cfg.DescribeOnly
	m, err := he.Compile(ctx, cs.Graph, co)
	if err != nil {
		return nil, fmt.Errorf("catalog: compiling stored model %s v%d: %w", v.Name, v.Version, err)
	}
	return m, nil
}

func (c *Catalog) readCompiled(ctx context.Context, key string) (*compiledSource, error) {
	rc, err := c.cfg.Blobs.Open(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("opening graph %s: %w", key, err)
	}
	defer rc.Close()
	var cs compiledSource
	if err := json.NewDecoder(io.LimitReader(rc, ir.MaxGraphBytes)).Decode(&cs); err != nil {
		return nil, fmt.Errorf("decoding graph %s: %w", key, err)
	}
	if cs.Graph == nil {
		return nil, fmt.Errorf("graph %s holds no graph", key)
	}
	if err := cs.Graph.Validate(); err != nil {
		return nil, fmt.Errorf("graph %s: %w", key, err)
	}
	return &cs, nil
}

// Options are how an upload is imported and compiled. They are stored with
// the version (as JSON), so every process compiles it the same way.
type Options struct {
	// Preprocess is the input preprocessing the client applies (stored in
	// the graph's input).
	Preprocess *ir.Preprocess `json:"preprocess,omitempty"`
	// Preset names the CKKS parameters; "" picks the smallest 128-bit
	// preset the model fits.
	Preset string `json:"preset,omitempty"`
	// ReluDegree, AbsDegree and Margin choose the approximations (0: the
	// defaults of package he).
	Method     string  `json:"approx_method,omitempty"`
	Sign       string  `json:"sign,omitempty"`
	MaxPool    string  `json:"maxpool,omitempty"`
	ReluDegree int     `json:"relu_degree,omitempty"`
	AbsDegree  int     `json:"abs_degree,omitempty"`
	Margin     float64 `json:"margin,omitempty"`
	// SplitAfter cuts the model for split inference (see
	// he.CompileOptions); "auto" picks the latest cut within DeviceMACs.
	SplitAfter string `json:"split_after,omitempty"`
	DeviceMACs int64  `json:"device_macs,omitempty"`
	// OutputRange declares the range of the outputs for the privacy
	// mechanism (otherwise calibrated); NoiseSigma or QueryEpsilon and
	// QueryDelta set its default noise (see he.PrivacyOptions).
	OutputRange  *[2]float64 `json:"output_range,omitempty"`
	Clip         bool        `json:"clip,omitempty"`
	NoiseSigma   float64     `json:"noise_sigma,omitempty"`
	QueryEpsilon float64     `json:"query_epsilon,omitempty"`
	QueryDelta   float64     `json:"query_delta,omitempty"`
	// Ranges are the calibrated ranges: not chosen by the uploader, but
	// recorded by the compile job with the graph (see compiledSource).
	Ranges *he.Ranges `json:"-"`
}

// Validate checks the options an uploader chose.
func (o Options) Validate() error {
	bad := func(format string, args ...any) error {
		return hegate.E("catalog.Options", hegate.KindInvalid, nil, format, args...)
	}
	switch {
	case o.ReluDegree < 0 || o.ReluDegree > 63:
		return bad("relu_degree %d out of range 1..63", o.ReluDegree)
	case o.AbsDegree < 0 || o.AbsDegree > 63:
		return bad("abs_degree %d out of range 1..63", o.AbsDegree)
	case o.Margin != 0 && !(o.Margin >= 1 && o.Margin <= 16):
		return bad("margin %g out of range 1..16", o.Margin)
	case o.Method != "" && o.Method != "composite" && o.Method != "chebyshev":
		return bad("approx_method %q: want composite or chebyshev", o.Method)
	case o.Sign != "" && !slices.Contains(he.SignPresets(), o.Sign):
		return bad("sign %q: want one of %s", o.Sign, strings.Join(he.SignPresets(), ", "))
	case o.MaxPool != "" && o.MaxPool != "max" && o.MaxPool != "average":
		return bad("maxpool %q: want max or average", o.MaxPool)
	case len(o.SplitAfter) > 256:
		return bad("split_after is too long")
	case o.DeviceMACs < 0:
		return bad("device_macs is negative")
	case o.SplitAfter == "auto" && o.DeviceMACs == 0:
		return bad("split_after=auto needs device_macs, the device's budget of multiply-accumulates per input")
	case o.OutputRange != nil && !(o.OutputRange[0] < o.OutputRange[1] && !math.IsInf(o.OutputRange[0], 0) && !math.IsInf(o.OutputRange[1], 0)):
		return bad("output_range must be two finite numbers, low < high")
	case !(o.NoiseSigma >= 0) || math.IsInf(o.NoiseSigma, 0):
		return bad("noise_sigma must be a finite number >= 0")
	case !(o.QueryEpsilon >= 0 && o.QueryEpsilon <= 1e6):
		return bad("query_epsilon must be in 0..1e6")
	case !(o.QueryDelta >= 0 && o.QueryDelta < 1):
		return bad("query_delta must be in [0, 1)")
	}
	if o.Preset != "" {
		known := false
		for _, p := range he.Presets() {
			known = known || p == o.Preset
		}
		if !known {
			return bad("unknown preset %q (known: %s)", o.Preset, strings.Join(he.Presets(), ", "))
		}
	}
	if p := o.Preprocess; p != nil {
		for _, v := range []float64{p.Scale, p.Mean, p.Std} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return bad("preprocessing values must be finite")
			}
		}
		if p.Std == 0 || p.Scale == 0 {
			return bad("preprocessing scale and std must be non-zero")
		}
	}
	return nil
}

func (o Options) compileOptions(allowInsecure bool) he.CompileOptions {
	return he.CompileOptions{
		Params:        o.Preset,
		AllowInsecure: allowInsecure,
		Ranges:        o.Ranges,
		Approx:        he.ApproxOptions{Method: o.Method, Sign: o.Sign, MaxPool: o.MaxPool, ReluDegree: o.ReluDegree, AbsDegree: o.AbsDegree, Margin: o.Margin},
		SplitAfter:    o.SplitAfter,
		DeviceMACs:    o.DeviceMACs,
		Privacy:       o.privacyOptions(),
	}
}

func (o Options) privacyOptions() he.PrivacyOptions {
	p := he.PrivacyOptions{Sigma: o.NoiseSigma, QueryEpsilon: o.QueryEpsilon, QueryDelta: o.QueryDelta, Clip: o.Clip}
	if o.OutputRange != nil {
		p.OutputRange = *o.OutputRange
	}
	return p
}

func decodeOptions(b []byte) (Options, error) {
	var o Options
	if len(b) == 0 {
		return o, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return o, fmt.Errorf("decoding stored options: %w", err)
	}
	return o, nil
}

// Entry describes a model for listings: a built-in, or one version of a
// tenant's model.
type Entry struct {
	Ref
	Status    storage.ModelStatus
	Manifest  json.RawMessage // set when ready
	Error     string          // why compiling failed
	Options   Options
	CreatedAt time.Time
	UpdatedAt time.Time
}

// List returns the built-in models and the latest version of each of
// tenant's models, built-ins first.
func (c *Catalog) List(ctx context.Context, tenant hegate.TenantID) ([]Entry, error) {
	var out []Entry
	for _, id := range c.order {
		e, err := c.builtinEntry(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if tenant == "" {
		return out, nil
	}
	vs, err := c.cfg.Store.ListModels(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("catalog.List: %w", err)
	}
	for _, v := range vs {
		out = append(out, entryOf(v))
	}
	return out, nil
}

// Versions lists the versions of one of tenant's models, newest first;
// KindNotFound if it has none.
func (c *Catalog) Versions(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID) ([]Entry, error) {
	const op = "catalog.Versions"
	if _, ok := c.builtin[name]; ok {
		e, err := c.builtinEntry(ctx, name)
		if err != nil {
			return nil, err
		}
		return []Entry{e}, nil
	}
	if tenant == "" || !namePattern.MatchString(string(name)) {
		// A name no model can have (a NUL would reach SQL) is not found.
		return nil, hegate.E(op, hegate.KindNotFound, nil, "model %q not found", truncate(string(name), 80))
	}
	vs, err := c.cfg.Store.ListModelVersions(ctx, tenant, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var out []Entry
	for _, v := range vs {
		if !v.Deleted() {
			out = append(out, entryOf(v))
		}
	}
	if len(out) == 0 {
		return nil, hegate.E(op, hegate.KindNotFound, nil, "model %q not found", truncate(string(name), 80))
	}
	return out, nil
}

// Version describes one version of tenant's model (any status; 0 means the
// latest ready one); KindNotFound if there is none.
func (c *Catalog) Version(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int) (Entry, error) {
	const op = "catalog.Version"
	if _, ok := c.builtin[name]; ok && (version == 0 || version == 1) {
		return c.builtinEntry(ctx, name)
	}
	if tenant == "" || !namePattern.MatchString(string(name)) {
		return Entry{}, hegate.E(op, hegate.KindNotFound, nil, "model %q not found", truncate(string(name), 80))
	}
	v, err := c.cfg.Store.GetModelVersion(ctx, tenant, name, version)
	if errors.Is(err, storage.ErrNotFound) {
		return Entry{}, hegate.E(op, hegate.KindNotFound, err, "model %q version %d not found", truncate(string(name), 80), version)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("%s: %w", op, err)
	}
	return entryOf(v), nil
}

func (c *Catalog) builtinEntry(ctx context.Context, id hegate.ModelID) (Entry, error) {
	m, _, err := c.builtinFor(ctx, id)
	if err != nil {
		return Entry{}, err
	}
	man, _ := json.Marshal(m.Manifest())
	return Entry{Ref: Ref{Name: id}, Status: storage.ModelReady, Manifest: man}, nil
}

func entryOf(v storage.ModelVersion) Entry {
	o, _ := decodeOptions(v.Options)
	return Entry{Ref: Ref{Tenant: v.TenantID, Name: v.Name, Version: v.Version}, Status: v.Status, Manifest: v.Manifest,
		Error: v.Error, Options: o, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt}
}

// namePattern is what a model name may look like: it appears in URL paths.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Source formats of an upload.
const (
	FormatONNX   = storage.ModelFormatONNX
	FormatIRJSON = storage.ModelFormatIRJSON
)

// UploadParams are the inputs of Upload.
type UploadParams struct {
	Tenant         hegate.TenantID
	Name           hegate.ModelID
	Format         string    // FormatONNX or FormatIRJSON
	Source         io.Reader // read to its end, at most MaxSourceBytes
	Options        Options
	IdempotencyKey string
}

// Upload stores a model source and creates its next version, compiling:
// the compile job is enqueued in the same transaction. The source is
// imported once here, so a file the importer refuses is the caller's
// error at once (KindInvalid, naming the operator or the problem), not a
// failed version later. Outcomes: the new version (created true); the
// version an earlier upload with the same idempotency key created
// (created false); KindInvalid for a bad name, options or file;
// KindTooLarge above MaxSourceBytes; KindConflict for the name of a
// built-in model.
func (c *Catalog) Upload(ctx context.Context, p UploadParams) (Entry, bool, error) {
	const op = "catalog.Upload"
	if !namePattern.MatchString(string(p.Name)) {
		return Entry{}, false, hegate.E(op, hegate.KindInvalid, nil, "model name %q: use 1 to 63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", truncate(string(p.Name), 80))
	}
	if _, ok := c.builtin[p.Name]; ok {
		return Entry{}, false, hegate.E(op, hegate.KindConflict, nil, "model name %q is taken by a built-in model", p.Name)
	}
	if err := p.Options.Validate(); err != nil {
		return Entry{}, false, err
	}
	if p.Format != FormatONNX && p.Format != FormatIRJSON {
		return Entry{}, false, hegate.E(op, hegate.KindInvalid, nil, "format %q: want %s or %s", p.Format, FormatONNX, FormatIRJSON)
	}
	lr := &io.LimitedReader{R: p.Source, N: c.cfg.MaxSourceBytes + 1}
	src, err := io.ReadAll(lr)
	if err != nil {
		return Entry{}, false, fmt.Errorf("%s: reading the upload: %w", op, err)
	}
	if int64(len(src)) > c.cfg.MaxSourceBytes {
		return Entry{}, false, hegate.E(op, hegate.KindTooLarge, nil, "model file exceeds %d bytes", c.cfg.MaxSourceBytes)
	}
	g, err := c.importSource(p.Name, p.Format, src, p.Options)
	if err != nil {
		return Entry{}, false, err
	}
	if err := he.CheckSize(g); err != nil {
		return Entry{}, false, err
	}
	if p.Options.SplitAfter != "" && p.Options.SplitAfter != "auto" {
		if _, _, err := ir.Split(g, p.Options.SplitAfter); err != nil {
			return Entry{}, false, err
		}
	}
	opts, err := json.Marshal(p.Options)
	if err != nil {
		return Entry{}, false, fmt.Errorf("%s: %w", op, err)
	}
	blob, err := c.cfg.Blobs.Put(ctx, bytes.NewReader(src), int64(len(src)))
	if err != nil {
		return Entry{}, false, fmt.Errorf("%s: storing the source: %w", op, err)
	}
	v, created, err := c.cfg.Store.CreateModelVersion(ctx, storage.CreateModelVersionParams{
		TenantID: p.Tenant, Name: p.Name, SourceBlob: blob.Key, SourceBytes: blob.Size,
		SourceFormat: p.Format, Options: opts, IdempotencyKey: p.IdempotencyKey,
	})
	if err != nil {
		c.dropIfUnreferenced(ctx, blob.Key)
		return Entry{}, false, fmt.Errorf("%s: %w", op, err)
	}
	if !created && v.SourceBlob != blob.Key {
		c.dropIfUnreferenced(ctx, blob.Key)
	}
	if !created {
		// A replay must be the same request: same name, same bytes (the
		// blob key is their hash, unless the version was deleted since),
		// same options.
		switch {
		case v.Deleted():
			return Entry{}, false, hegate.E(op, hegate.KindNotFound, nil, "the model version this %s created was deleted", "Idempotency-Key")
		case v.Name != p.Name || v.SourceBlob != blob.Key || !bytes.Equal(v.Options, opts):
			return Entry{}, false, hegate.E(op, hegate.KindConflict, nil, "this Idempotency-Key was already used for a different upload (model %s version %d)", v.Name, v.Version)
		}
	}
	return entryOf(v), created, nil
}

func (c *Catalog) dropIfUnreferenced(ctx context.Context, key string) {
	un, err := c.cfg.Store.UnreferencedBlobs(ctx, []string{key})
	if err != nil {
		return
	}
	for _, k := range un {
		_ = c.cfg.Blobs.Delete(ctx, k)
	}
}

// importSource parses an upload into a graph named name.
func (c *Catalog) importSource(name hegate.ModelID, format string, src []byte, o Options) (*ir.Graph, error) {
	var g *ir.Graph
	var err error
	switch format {
	case FormatONNX:
		g, err = onnx.Import(bytes.NewReader(src), onnx.Options{Name: string(name), Preprocess: o.Preprocess, MaxBytes: c.cfg.MaxSourceBytes})
	default:
		g, err = ir.Read(bytes.NewReader(src))
		if err == nil {
			g.Name = string(name)
			// Free-form records of an uploaded file are not kept: they are
			// unbounded and every process would decode them again.
			g.Source, g.Training = map[string]any{"format": FormatIRJSON}, nil
			if o.Preprocess != nil {
				g.Input.Preprocess = o.Preprocess
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return g, g.Validate()
}

// Compile is the compile job (a storage.CompileHandler): it imports the
// version's source, calibrates and compiles it, stores the imported graph
// and the manifest, and marks the version ready. A model the compiler
// refuses (too deep for the preset, an unsupported construct, a value
// range it cannot hold) marks the version failed with the reason and
// returns nil: retrying would not help. Infrastructure errors are returned
// for the queue to retry.
func (c *Catalog) Compile(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int) error {
	const op = "catalog.Compile"
	start := time.Now()
	v, err := c.cfg.Store.GetModelVersion(ctx, tenant, name, version)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // deleted meanwhile: nothing to do
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if v.Status != storage.ModelCompiling {
		return nil // a retry after the version was settled
	}
	fail := func(err error) error {
		reason := hegate.DetailOf(err)
		if reason == "" {
			reason = "the model could not be compiled"
		}
		c.log.InfoContext(ctx, "model compile refused", "tenant", tenant, "model", name, "version", version, "reason", reason)
		if _, err := c.cfg.Store.MarkModelFailed(ctx, tenant, name, version, reason); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%s: marking failed: %w", op, err)
		}
		return nil
	}
	src, err := c.readBlob(ctx, v.SourceBlob, v.SourceBytes)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	opts, err := decodeOptions(v.Options)
	if err != nil {
		return fail(hegate.E(op, hegate.KindInvalid, err, "stored options do not decode"))
	}
	g, err := c.importSource(name, v.SourceFormat, src, opts)
	if err != nil {
		return fail(err)
	}
	if err := he.CheckSize(g); err != nil {
		return fail(err)
	}
	co := opts.compileOptions(c.cfg.AllowInsecure)
	if c.cfg.Calibration != nil {
		cal, err := c.cfg.Calibration(g)
		if hegate.Is(err, hegate.KindInvalid) {
			return fail(err) // the model's fault (an input calibration data cannot feed)
		}
		if err != nil {
			return fmt.Errorf("%s: calibration samples: %w", op, err) // ours: retry
		}
		co.Calibration = cal
	}
	m, err := he.Compile(ctx, g, co)
	if err != nil {
		if hegate.KindOf(err) == hegate.KindInvalid {
			return fail(err)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	rg := m.Ranges()
	gb, err := json.Marshal(compiledSource{Graph: g, Ranges: &rg})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	blob, err := c.cfg.Blobs.Put(ctx, bytes.NewReader(gb), int64(len(gb)))
	if err != nil {
		return fmt.Errorf("%s: storing the graph: %w", op, err)
	}
	man, err := json.Marshal(m.Manifest())
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if _, err := c.cfg.Store.MarkModelReady(ctx, tenant, name, version, blob.Key, man); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			c.dropIfUnreferenced(ctx, blob.Key)
			return nil
		}
		return fmt.Errorf("%s: marking ready: %w", op, err)
	}
	c.log.InfoContext(ctx, "model compiled", "tenant", tenant, "model", name, "version", version,
		"duration_ms", time.Since(start).Milliseconds(), "levels", m.Manifest().Levels, "key_set_bytes", m.Manifest().KeySetBytes)
	return nil
}

func (c *Catalog) readBlob(ctx context.Context, key string, size int64) ([]byte, error) {
	rc, err := c.cfg.Blobs.Open(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("opening blob %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, size+1))
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", key, err)
	}
	if int64(len(b)) != size {
		return nil, fmt.Errorf("blob %s has %d bytes, recorded %d", key, len(b), size)
	}
	return b, nil
}

// Delete removes all versions of tenant's model. Outcomes: nil;
// KindNotFound if the tenant has no such model; KindConflict while a job
// for it is queued or running, or a version is compiling, and for a
// built-in model.
func (c *Catalog) Delete(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID) error {
	const op = "catalog.Delete"
	if _, ok := c.builtin[name]; ok {
		return hegate.E(op, hegate.KindConflict, nil, "model %q is built in and cannot be deleted", name)
	}
	if !namePattern.MatchString(string(name)) {
		return hegate.E(op, hegate.KindNotFound, nil, "model %q not found", truncate(string(name), 80))
	}
	blobs, err := c.cfg.Store.DeleteModel(ctx, tenant, name)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return hegate.E(op, hegate.KindNotFound, err, "model %q not found", truncate(string(name), 80))
	case errors.Is(err, storage.ErrConflict):
		return hegate.E(op, hegate.KindConflict, err, "model %q has jobs queued or running, or a version still compiling; cancel or wait for them, then delete", name)
	case err != nil:
		return fmt.Errorf("%s: %w", op, err)
	}
	c.forget(tenant, name, 0)
	// The rows are gone: finish the deletes even if the caller hangs up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	for _, b := range blobs {
		if err := c.cfg.Blobs.Delete(ctx, b); err != nil {
			c.log.WarnContext(ctx, "deleting a model blob", "error", err.Error())
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// CheckName reports whether name may name a model.
func CheckName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%q: use 1 to 63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", truncate(name, 80))
	}
	return nil
}

// IsBuiltin reports whether name is a built-in model.
func (c *Catalog) IsBuiltin(name hegate.ModelID) bool {
	_, ok := c.builtin[name]
	return ok
}

// Names lists the models tenant can name, without compiling anything:
// the built-ins in configured order, then the tenant's models (latest
// version of any status) by name.
func (c *Catalog) Names(ctx context.Context, tenant hegate.TenantID) ([]hegate.ModelID, error) {
	out := slices.Clone(c.order)
	vs, err := c.cfg.Store.ListModels(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("catalog.Names: %w", err)
	}
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out, nil
}

// Loaded returns name for tenant (a built-in, or the tenant's latest ready
// version) if it is compiled in this process already, and never compiles:
// for listings that must stay cheap.
func (c *Catalog) Loaded(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID) (Model, bool) {
	if b, ok := c.builtin[name]; ok {
		m := b.loaded.Load()
		if m == nil {
			return Model{}, false
		}
		return Model{Ref: Ref{Name: name}, Model: m}, true
	}
	if !namePattern.MatchString(string(name)) {
		return Model{}, false
	}
	v, err := c.cfg.Store.GetModelVersion(ctx, tenant, name, 0)
	if err != nil {
		return Model{}, false
	}
	c.mu.Lock()
	e, ok := c.compiled[versionKey{tenant, name, v.Version}]
	c.mu.Unlock()
	if !ok {
		return Model{}, false
	}
	select {
	case <-e.done:
	default:
		return Model{}, false
	}
	if e.err != nil || e.model == nil {
		return Model{}, false
	}
	return Model{Ref: Ref{Tenant: tenant, Name: name, Version: v.Version}, Model: e.model}, true
}

package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/blobfs"
	"github.com/hegate/hegate/storage/sqlite"
)

// testGraph is input [16], dense 16→8, 0.5x+0.1x², dense 8→4.
func testGraph(name string, seed uint64) *ir.Graph {
	r := rand.New(rand.NewPCG(seed, 7))
	vec := func(n int, scale float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = (r.Float64()*2 - 1) * scale
		}
		return v
	}
	return ir.Chain(name, []int{16},
		&ir.Node{Op: ir.OpDense, Dense: &ir.Dense{In: 16, Out: 8, Weights: vec(128, 0.5), Bias: vec(8, 0.5)}},
		&ir.Node{Op: ir.OpPoly, Poly: &ir.Poly{Coeffs: []float64{0, 0.5, 0.1}}},
		&ir.Node{Op: ir.OpDense, Dense: &ir.Dense{In: 8, Out: 4, Weights: vec(32, 0.5), Bias: vec(4, 0.5)}},
	)
}

// testPrivacy is the mechanism of the tests' models: a declared output
// range and noise of testSigma, well within resultTolerance.
var testPrivacy = he.PrivacyOptions{OutputRange: [2]float64{-16, 16}, Sigma: testSigma}

const (
	testSigma       = 0.01
	resultTolerance = 10 * testSigma
)

// testUploadOptions are the upload options of the tests' models.
var testUploadOptions = url.Values{"preset": {"test-n12"}, "output_range": {"-16,16"}, "noise_sigma": {"0.01"}}

// testBudget is a default budget no test exhausts by accident.
var testBudget = storage.BudgetLimit{Capacity: math.MaxInt64 / 4, Period: storage.BudgetNever, Epsilon: 1e6, Delta: 1e-5}

func compile(t testing.TB, g *ir.Graph) *he.Model {
	t.Helper()
	m, err := he.Compile(context.Background(), g, he.CompileOptions{Params: "test-n12", AllowInsecure: true, Privacy: testPrivacy})
	if err != nil {
		t.Fatalf("compiling %s: %v", g.Name, err)
	}
	return m
}

// device is one tenant's device: its API key, client and CKKS keys.
type device struct {
	secret string
	client *client.Client
	sk     *he.SecretKey
	keys   []byte // the key set for the bundle's model
}

// bundle is a whole gateway on a real SQLite store and blob directory.
type bundle struct {
	ctx     context.Context
	store   storage.Store
	blobs   storage.Blobs
	blobDir string
	graph   *ir.Graph
	model   *he.Model
	srv     *Server
	runner  *Runner
	ts      *httptest.Server
	a, b    device
}

type setupOptions struct {
	workers bool
	cfg     func(*Config)
	store   func(t *testing.T) storage.Store // nil: SQLite in a temporary folder
}

// withStore runs the gateway on another migrated store.
func withStore(open func(t *testing.T) storage.Store) setupOption {
	return func(o *setupOptions) { o.store = open }
}

// setupOption changes setup.
type setupOption func(*setupOptions)

// withoutWorkers leaves jobs queued: nothing evaluates them.
func withoutWorkers() setupOption { return func(o *setupOptions) { o.workers = false } }

// withConfig edits the gateway Config.
func withConfig(f func(*Config)) setupOption { return func(o *setupOptions) { o.cfg = f } }

func setup(t *testing.T, opts ...setupOption) *bundle {
	t.Helper()
	o := setupOptions{workers: true}
	for _, f := range opts {
		f(&o)
	}
	ctx := t.Context()
	dir := t.TempDir()
	log := slog.New(slog.NewJSONHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))

	var store storage.Store
	if o.store != nil {
		store = o.store(t)
	} else {
		s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "hegate.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		store = s
	}
	blobDir := filepath.Join(dir, "blobs")
	blobs, err := blobfs.New(blobDir)
	if err != nil {
		t.Fatal(err)
	}

	g := testGraph("tiny", 1)
	m := compile(t, g)
	metrics := NewMetrics()
	events := NewJobEvents()
	cat, err := catalog.New(catalog.Config{Store: store, Blobs: blobs, Builtin: []*he.Model{m}, AllowInsecure: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Catalog:            cat,
		JobEvents:          events,
		Store:              store,
		Blobs:              blobs,
		Models:             []*he.Model{m},
		Logger:             log,
		Metrics:            metrics,
		MaxKeySetBytes:     m.Manifest().KeySetBytes,
		MaxCiphertextBytes: m.Manifest().CiphertextBytes,
		WaitTimeout:        20 * time.Second,
		DefaultBudget:      testBudget,
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := NewRunner(RunnerConfig{
		Store:            store,
		Blobs:            blobs,
		Models:           []*he.Model{m},
		Catalog:          cat,
		KeySetCacheBytes: 64 << 20,
		MaxAttempts:      2,
		Logger:           log,
		Metrics:          metrics,
		JobEvents:        events,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every request and answer is checked against openapi.yaml (see
	// openapi_validate_test.go).
	ts := httptest.NewServer(openAPIValidated(t, srv))
	t.Cleanup(ts.Close)
	if o.workers {
		if err := store.StartWorkers(ctx, storage.WorkerConfig{Concurrency: 1, MaxAttempts: 2, Handler: runner.Handle, CompileHandler: cat.Compile}); err != nil {
			t.Fatal(err)
		}
		// Registered after ts.Close and store.Close, so it runs before them.
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := store.StopWorkers(ctx); err != nil {
				t.Errorf("StopWorkers: %v", err)
			}
		})
	}
	bd := &bundle{
		ctx: ctx, store: store, blobs: blobs, blobDir: blobDir,
		graph: g, model: m, srv: srv, runner: runner, ts: ts,
	}
	bd.a = bd.newDevice(t, "tenant-a")
	bd.b = bd.newDevice(t, "tenant-b")
	return bd
}

func (bd *bundle) newDevice(t *testing.T, name string) device {
	t.Helper()
	_, secret, err := CreateTenant(bd.ctx, bd.store, name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(bd.ts.URL, secret, client.WithHTTPClient(bd.ts.Client()),
		client.WithPollInterval(10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := bd.model.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	var keys bytes.Buffer
	if _, err := bd.model.WriteKeySet(&keys, sk); err != nil {
		t.Fatal(err)
	}
	return device{secret: secret, client: c, sk: sk, keys: keys.Bytes()}
}

// upload puts d's key set and returns its id.
func (bd *bundle) upload(t *testing.T, d device) string {
	t.Helper()
	ks, err := d.client.UploadKeySet(bd.ctx, string(bd.model.ID()), bytes.NewReader(d.keys), int64(len(d.keys)))
	if err != nil {
		t.Fatalf("uploading key set: %v", err)
	}
	return ks.ID
}

// input returns a random model input and its encryption under d's key.
func (bd *bundle) input(t *testing.T, d device, seed uint64) ([]float64, []byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 3))
	x := make([]float64, bd.graph.InputSize())
	for i := range x {
		x[i] = r.Float64()*2 - 1
	}
	ct, err := bd.model.Encrypt(d.sk, x)
	if err != nil {
		t.Fatal(err)
	}
	return x, ct
}

// checkResult decrypts result with d's key and compares it with the
// plaintext reference on x.
func (bd *bundle) checkResult(t *testing.T, d device, x []float64, result []byte) {
	t.Helper()
	got, err := bd.model.Decrypt(d.sk, result)
	if err != nil {
		t.Fatalf("decrypting: %v", err)
	}
	want, err := bd.graph.Run(x)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(want) {
		t.Fatalf("decrypted %d values, want %d", len(got), len(want))
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > resultTolerance {
			t.Fatalf("output %d: got %.6f, want %.6f (all: %v vs %v)", i, got[i], want[i], got[:len(want)], want)
		}
	}
}

// blobFiles counts the files in the blob directory.
func (bd *bundle) blobFiles(t *testing.T) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(bd.blobDir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// call sends a raw request with an optional API key.
func (bd *bundle) call(t *testing.T, method, path, key string, body io.Reader, hdr http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(bd.ctx, method, bd.ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := bd.ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// wantProblem checks resp is a problem document with status and a detail
// containing detail, and returns it.
func wantProblem(t *testing.T, resp *http.Response, status int, detail string) api.Problem {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != api.ContentTypeProblem {
		t.Fatalf("Content-Type %q, want %s; body %s", ct, api.ContentTypeProblem, body)
	}
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem document: %v; body %s", err, body)
	}
	if p.Status != status || p.Type == "" || p.Title == "" || p.RequestID == "" {
		t.Fatalf("problem %+v lacks members", p)
	}
	if p.RequestID != resp.Header.Get(api.HeaderRequestID) {
		t.Fatalf("problem request_id %q, header %q", p.RequestID, resp.Header.Get(api.HeaderRequestID))
	}
	if !strings.Contains(p.Detail, detail) {
		t.Fatalf("problem detail %q does not mention %q", p.Detail, detail)
	}
	if strings.HasPrefix(resp.Request.URL.Path, "/v2") && p.Error == "" {
		t.Fatalf("/v2 problem %+v has no OIP error member", p)
	}
	return p
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/gateway"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/internal/telemetry"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/web"
)

// workerFlags configure in-process job workers.
type workerFlags struct {
	Concurrency      int
	MaxAttempts      int
	JobTimeout       time.Duration
	CompileTimeout   time.Duration
	KeySetCacheBytes int64
	MemoryLimit      sizeFlag // bytes; -1: none
	envErr           error    // a HEGATE_MEMORY_LIMIT that does not parse
}

func (w *workerFlags) register(fs *pflag.FlagSet, defConcurrency int) {
	fs.IntVar(&w.Concurrency, "workers", defConcurrency, "jobs evaluated at once by this process (0: none)")
	fs.IntVar(&w.MaxAttempts, "max-attempts", 3, "attempts before a job is failed")
	fs.DurationVar(&w.JobTimeout, "job-timeout", 10*time.Minute, "time limit of one attempt")
	fs.DurationVar(&w.CompileTimeout, "compile-timeout", 30*time.Minute, "time limit of one attempt to compile an uploaded model")
	fs.Int64Var(&w.KeySetCacheBytes, "keyset-cache-bytes", gateway.DefaultKeySetCacheBytes, "memory for parsed key sets kept between jobs")
	w.MemoryLimit = sizeFlag{-1, true}
	if v := envOr("HEGATE_MEMORY_LIMIT", ""); v != "" {
		if err := w.MemoryLimit.Set(v); err != nil {
			w.envErr = fmt.Errorf("HEGATE_MEMORY_LIMIT: %w", err)
		}
	}
	fs.Var(&w.MemoryLimit, "memory-limit", "memory this process's jobs and cached key sets may hold, e.g. 12GiB: a job runs only when its estimated peak fits, others wait; also the Go runtime's soft limit unless GOMEMLIMIT is set (-1: none) [HEGATE_MEMORY_LIMIT]")
}

// memoryLimit is --memory-limit in bytes, 0 for none, and sets the Go
// runtime's soft memory limit to it unless GOMEMLIMIT says otherwise.
func (w *workerFlags) memoryLimit() (int64, error) {
	if w.envErr != nil {
		return 0, w.envErr
	}
	if w.MemoryLimit.n <= 0 {
		return 0, nil
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(w.MemoryLimit.n)
	}
	return w.MemoryLimit.n, nil
}

// defaultRetention is --retention's default.
const defaultRetention = 24 * time.Hour

// retentionFlags configure the retention sweeper of serve and worker.
type retentionFlags struct {
	Retention   time.Duration
	OrphanGrace time.Duration // of the orphan sweeper (orphans.go); 0: none
	envErr      error         // a HEGATE_RETENTION that does not parse
}

func (r *retentionFlags) register(fs *pflag.FlagSet) {
	def := defaultRetention
	if v := envOr("HEGATE_RETENTION", ""); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			r.envErr = fmt.Errorf("HEGATE_RETENTION %q is not a duration such as 24h or 90m", v)
		} else {
			def = d
		}
	}
	fs.DurationVar(&r.Retention, "retention", def, "delete a finished job's input and result ciphertexts this long after it finished (0: keep them forever) [HEGATE_RETENTION]")
	fs.DurationVar(&r.OrphanGrace, "orphan-grace", gateway.DefaultOrphanGrace, "delete blobs that no database row names once they are this old (uploads cut by a database failure; 0: never)")
}

// Validate names the bad setting; call it after parsing fs.
func (r *retentionFlags) Validate(fs *pflag.FlagSet) error {
	set := fs.Changed("retention")
	switch {
	case r.envErr != nil && !set:
		return r.envErr
	case r.Retention < 0:
		return fmt.Errorf("--retention %s is negative (0 disables retention)", r.Retention)
	case r.OrphanGrace < 0:
		return fmt.Errorf("--orphan-grace %s is negative (0 disables the orphan sweeper)", r.OrphanGrace)
	}
	return nil
}

// sweepInterval is how often a process sweeps for a retention: every
// minute, or every quarter of a shorter retention (at least every second).
func sweepInterval(retention time.Duration) time.Duration {
	return min(time.Minute, max(retention/4, time.Second))
}

// backend is an open database, blob store and compiled models: what
// serve, worker and demo share.
type backend struct {
	store     storage.Store
	blobs     storage.Blobs
	models    []*he.Model
	catalog   *catalog.Catalog // built-in and uploaded models, shared by the server and the workers
	logger    *slog.Logger
	metrics   *gateway.Metrics
	retention time.Duration // 0: no sweeper, and the gateway does not quote one
	sweeper   *gateway.Sweeper
	orphans   orphanSweep        // deletes blobs no row names (orphans.go)
	events    *gateway.JobEvents // wakes waiting requests when a job finishes (here, or anywhere with PostgreSQL)
	// stopEvents ends the cross-process job notifications (shareEvents).
	stopEvents func()
	// stopTracing flushes and stops trace export (a no-op unless
	// OTEL_EXPORTER_OTLP_ENDPOINT is set).
	stopTracing func(context.Context) error
	// defaultBudget applies to tenants and models without a budget
	// (capacity 0: none, such inferences are refused).
	defaultBudget storage.BudgetLimit
	// credentials configures device credentials (hegate serve's flags).
	credentials credentialFlags
	// limits are hegate serve's rate limits, admission caps and quotas
	// (quota_flags.go); nil: the gateway's defaults.
	limits *limitFlags
	// insecureCookies drops Secure from the console's cookies
	// (--console-insecure-cookies).
	insecureCookies bool
}

// openBackend opens and migrates the database, opens the blobs, and
// compiles the models (only: all of them when nil).
func openBackend(ctx context.Context, cfg backendConfig, logger *slog.Logger, only []string) (*backend, error) {
	specs, err := cfg.builtins()
	if err != nil {
		return nil, err
	}
	if only != nil {
		specs, err = pickBuiltins(specs, only)
		if err != nil {
			return nil, err
		}
	}
	cal := &calibrator{}
	// Models the caller named (the demo) compile now; otherwise every
	// built-in compiles when it is first used, so a process does not pay
	// for models nobody asks it for.
	var models []*he.Model
	var lazy []catalog.LazyModel
	if only != nil {
		if models, err = compileModels(ctx, specs, cal, cfg.describeOnly); err != nil {
			return nil, err
		}
	} else {
		seen := map[string]bool{}
		for _, spec := range specs {
			if seen[spec.name] {
				return nil, fmt.Errorf("two models are named %q", spec.name)
			}
			seen[spec.name] = true
			lazy = append(lazy, catalog.LazyModel{Name: hegate.ModelID(spec.name), Compile: func(ctx context.Context) (*he.Model, error) {
				ms, err := compileModels(ctx, []builtin{spec}, cal, cfg.describeOnly)
				if err != nil {
					return nil, err
				}
				logger.Info("compiled built-in model", "model", spec.name)
				return ms[0], nil
			}})
		}
	}
	blobs, err := cfg.openBlobs()
	if err != nil {
		return nil, err
	}
	store, err := cfg.openStore(ctx, logger)
	if err != nil {
		return nil, err
	}
	cat, err := catalog.New(catalog.Config{
		Store: store, Blobs: blobs, Builtin: models, Lazy: lazy, Calibration: cal.samples, Logger: logger,
		DescribeOnly: cfg.describeOnly,
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	b := &backend{store: store, blobs: blobs, models: models, catalog: cat, logger: logger, metrics: gateway.NewMetrics(), events: gateway.NewJobEvents()}
	b.shareEvents(ctx)
	if b.stopTracing, err = telemetry.Setup(ctx, "hegate", buildVersion()); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// startWorkers runs the store's workers with a Runner over b's models.
func (b *backend) startWorkers(ctx context.Context, wf workerFlags) error {
	if wf.Concurrency <= 0 {
		return nil
	}
	limit, err := wf.memoryLimit()
	if err != nil {
		return err
	}
	cacheBytes := wf.KeySetCacheBytes
	if limit > 0 && (cacheBytes == 0 || cacheBytes > limit) {
		cacheBytes = limit
	}
	runner, err := gateway.NewRunner(gateway.RunnerConfig{
		Store: b.store, Blobs: b.blobs, Models: b.models, Catalog: b.catalog, KeySetCacheBytes: cacheBytes,
		MemoryLimit: limit, MaxAttempts: wf.MaxAttempts, Logger: b.logger, Metrics: b.metrics, JobEvents: b.events,
	})
	if err != nil {
		return err
	}
	// Not ctx: cancelling River's start context stops running jobs
	// abruptly. close() stops the workers gracefully instead.
	return b.store.StartWorkers(context.WithoutCancel(ctx), storage.WorkerConfig{
		Concurrency: wf.Concurrency, MaxAttempts: wf.MaxAttempts, JobTimeout: wf.JobTimeout, Handler: runner.Handle,
		CompileHandler: b.catalog.Compile, CompileTimeout: wf.CompileTimeout,
	})
}

// startSweeper runs the retention sweeper in this process, unless
// b.retention is 0. On PostgreSQL every serve and worker process sweeps;
// the store lets them do so concurrently.
func (b *backend) startSweeper(ctx context.Context) error {
	if err := b.orphans.start(ctx, b); err != nil {
		return err
	}
	if b.retention == 0 {
		b.logger.Info("retention disabled: finished jobs keep their ciphertexts")
		return nil
	}
	sw, err := gateway.NewSweeper(gateway.SweeperConfig{
		Store: b.store, Blobs: b.blobs, Retention: b.retention, Interval: sweepInterval(b.retention),
		Logger: b.logger, Metrics: b.metrics,
	})
	if err != nil {
		return err
	}
	if err := sw.Start(ctx); err != nil {
		return err
	}
	b.sweeper = sw
	return nil
}

// server builds the HTTP gateway over b.
func (b *backend) server() (*gateway.Server, error) {
	cfg := gateway.Config{
		Store: b.store, Blobs: b.blobs, Models: b.models, Catalog: b.catalog, Logger: b.logger, Metrics: b.metrics,
		Retention: b.retention, JobEvents: b.events, DefaultBudget: b.defaultBudget, Version: buildVersion(),
		PublicURL: b.credentials.PublicURL, CredentialTTL: b.credentials.TTL, ChallengeTTL: b.credentials.ChallengeTTL,
		CredentialIssuer: b.credentials.Issuer, CredentialAudience: b.credentials.Audience, CredentialKEK: b.credentials.KEK,
		// Uploaded models have their own, larger, exact sizes.
		MaxKeySetBytes: maxUploadedKeySetBytes, MaxCiphertextBytes: maxUploadedCiphertextBytes,
	}
	b.limits.apply(&cfg)
	cfg.Console = b.console
	return gateway.New(cfg)
}

// Upper bounds of key-set and ciphertext uploads for any model (each model
// bounds its own uploads to its exact sizes): a logN 15 leveled key set
// with many rotations is hundreds of MB, a ciphertext a few MB.
const (
	maxUploadedKeySetBytes     = 4 << 30
	maxUploadedCiphertextBytes = 64 << 20
)

// close stops the sweeper and the workers and closes the store.
// shareEvents makes job finishes known across processes when the store is
// shared (PostgreSQL LISTEN/NOTIFY), so that "Prefer: wait" and the events
// stream in this process wake for jobs other processes' workers finish.
func (b *backend) shareEvents(ctx context.Context) {
	n, ok := b.store.(storage.JobNotifier)
	if !ok {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.events.Share(ctx, n)
	}()
	// The listener holds a connection: it must end before the pool closes.
	b.stopEvents = func() { cancel(); <-done }
}

func (b *backend) close() {
	if b.sweeper != nil {
		b.sweeper.Stop()
	}
	b.orphans.stop()
	if b.stopEvents != nil {
		b.stopEvents()
	}
	if b.stopTracing != nil {
		flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = b.stopTracing(flush)
		cancel()
	}
	stop, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.store.StopWorkers(stop); err != nil {
		b.logger.Error("stopping workers", "err", err)
	}
	b.store.Close()
}

func newServeCmd() *cobra.Command {
	var (
		cfg       backendConfig
		addr      string
		wf        workerFlags
		rf        retentionFlags
		defBudget string
		cf        credentialFlags
		qf        limitFlags
		lf        listenFlags

		insecureCookies bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "run the gateway (HTTP API and in-process workers)",
		Long: `Run the gateway: the HTTP API, and --workers in-process job workers (0 for
the API only, with hegate worker processes on PostgreSQL). SQLite in
--data-dir by default; --database-url postgres://... for PostgreSQL.`,
		Example: "  hegate serve --addr 127.0.0.1:8080\n  hegate serve --workers 0 --database-url postgres://hegate@db/hegate",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fs := cmd.Flags()
			if err := rf.Validate(fs); err != nil {
				return err
			}
			if err := lf.Validate(fs); err != nil {
				return err
			}
			if err := qf.Validate(); err != nil {
				return err
			}
			def, err := parseBudgetSpec(defBudget)
			if err != nil {
				return fmt.Errorf("--default-budget: %w", err)
			}
			ctx := cmd.Context()
			// An API-only process evaluates nothing: its models need no
			// weights (a bootstrapped model's are GBs).
			cfg.describeOnly = wf.Concurrency == 0
			b, err := openBackend(ctx, cfg, cfg.logger(cmd.ErrOrStderr()), nil)
			if err != nil {
				return err
			}
			defer b.close()
			b.retention, b.orphans.grace = rf.Retention, rf.OrphanGrace
			b.defaultBudget = def
			if err := cf.load(); err != nil {
				return err
			}
			b.credentials = cf
			b.limits = &qf
			b.insecureCookies = insecureCookies
			srv, err := b.server()
			if err != nil {
				return err
			}
			if err := b.startWorkers(ctx, wf); err != nil {
				return err
			}
			if err := b.startSweeper(ctx); err != nil {
				return err
			}
			// Resumable key-set uploads left unfinished expire (24 h after
			// their last chunk); the API's processes remove them.
			us, err := gateway.NewUploadSweeper(gateway.UploadSweeperConfig{Uploads: srv.Service(), Interval: 10 * time.Minute, Logger: b.logger})
			if err != nil {
				return err
			}
			if err := us.Start(ctx); err != nil {
				return err
			}
			defer us.Stop()
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listening on %s: %w", addr, err)
			}
			b.logger.Info("hegate serving", "addr", ln.Addr().String(), "engine", b.store.Engine(), "models", len(b.models), "workers", wf.Concurrency, "retention", b.retention.String())
			return serveHTTP(ctx, ln, srv.Handler(), lf.limit(b.logger))
		},
	}
	fs := cmd.Flags()
	cfg.register(fs)
	fs.StringVar(&addr, "addr", envOr("HEGATE_ADDR", "127.0.0.1:8080"), "listen address [HEGATE_ADDR]")
	fs.BoolVar(&insecureCookies, "console-insecure-cookies", false, "send the console's cookies without Secure, for a console reached over plain HTTP at a host that is not a loopback one (never behind a TLS proxy); a browser at http://localhost or 127.0.0.1 gets a plain cookie without it")
	wf.register(fs, 1)
	rf.register(fs)
	fs.StringVar(&defBudget, "default-budget", envOr("HEGATE_DEFAULT_BUDGET", ""), "privacy budget of every tenant and model without one, as epsilon=E,delta=D,period=day|week|month|never (empty: none, such inferences are refused until a budget is set) [HEGATE_DEFAULT_BUDGET]")
	cf.register(fs)
	qf.register(fs)
	lf.register(fs)
	return cmd
}

// credentialFlags are hegate serve's device-credential settings.
type credentialFlags struct {
	PublicURL        string
	Issuer, Audience string
	TTL              time.Duration
	ChallengeTTL     time.Duration
	// KEK seals the signing keys in the database; from
	// HEGATE_CREDENTIAL_KEK only, never a flag (flags show in ps).
	KEK []byte
}

// load reads the key-encryption key from the environment.
func (c *credentialFlags) load() error {
	kek, err := gateway.ParseKEK(os.Getenv("HEGATE_CREDENTIAL_KEK"))
	c.KEK = kek
	return err
}

func (c *credentialFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.PublicURL, "public-url", envOr("HEGATE_PUBLIC_URL", ""), "scheme://host[:port] devices reach this gateway at, which their DPoP proofs name (empty: each request's own scheme and Host; set it behind a proxy) [HEGATE_PUBLIC_URL]")
	fs.StringVar(&c.Issuer, "credential-issuer", envOr("HEGATE_CREDENTIAL_ISSUER", ""), "iss of device credentials; the same on every replica (default \"hegate\") [HEGATE_CREDENTIAL_ISSUER]")
	fs.StringVar(&c.Audience, "credential-audience", envOr("HEGATE_CREDENTIAL_AUDIENCE", ""), "aud of device credentials; the same on every replica (default \"hegate\") [HEGATE_CREDENTIAL_AUDIENCE]")
	fs.DurationVar(&c.TTL, "credential-ttl", gateway.DefaultCredentialTTL, "lifetime of a device credential, at most 1h; renewing means attesting again")
	fs.DurationVar(&c.ChallengeTTL, "challenge-ttl", gateway.DefaultChallengeTTL, "how long an enrollment challenge may be redeemed")
}

// serveHTTP serves until ctx ends, then shuts down gracefully.
// At most maxConns connections are served at once (0: derived from the
// open-file limit, see connectionLimit); more wait to be accepted.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, maxConns int) error {
	ln = limitListener(ln, maxConns)
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// The gateway answers heads over gateway.MaxHeaderBytes with a 431
		// problem; net/http refuses those over this, in plain text.
		MaxHeaderBytes: gateway.ServerMaxHeaderBytes,
		// Bodies have their own idle deadline and minimum rate
		// (gateway.Config.BodyIdleTimeout, BodyMinRate), so a large key-set
		// upload is not cut off; responses are small or wait at most
		// gateway.DefaultWaitTimeout.
		WriteTimeout: gateway.ResponseWindow,
		IdleTimeout:  120 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func newWorkerCmd() *cobra.Command {
	var (
		cfg         backendConfig
		wf          workerFlags
		rf          retentionFlags
		metricsAddr string
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "run job workers only (scale out against PostgreSQL)",
		Long: `Run job workers only: they evaluate inferences and compile uploaded models
from the database's queue. On PostgreSQL any number of them share it with
hegate serve --workers 0 and each other (and the blob directory).`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wf.Concurrency < 1 {
				return errors.New("--workers must be at least 1")
			}
			if err := rf.Validate(cmd.Flags()); err != nil {
				return err
			}
			ctx := cmd.Context()
			b, err := openBackend(ctx, cfg, cfg.logger(cmd.ErrOrStderr()), nil)
			if err != nil {
				return err
			}
			defer b.close()
			b.retention, b.orphans.grace = rf.Retention, rf.OrphanGrace
			if err := b.startWorkers(ctx, wf); err != nil {
				return err
			}
			if err := b.startSweeper(ctx); err != nil {
				return err
			}
			b.logger.Info("hegate worker running", "engine", b.store.Engine(), "workers", wf.Concurrency, "retention", b.retention.String())
			if metricsAddr == "" {
				<-ctx.Done()
				return nil
			}
			ln, err := net.Listen("tcp", metricsAddr)
			if err != nil {
				return err
			}
			return serveHTTP(ctx, ln, workerMux(b), 0)
		},
	}
	fs := cmd.Flags()
	cfg.register(fs)
	wf.register(fs, 1)
	rf.register(fs)
	fs.StringVar(&metricsAddr, "metrics-addr", envOr("HEGATE_METRICS_ADDR", ""), "serve /metrics and /healthz on this address (optional) [HEGATE_METRICS_ADDR]")
	return cmd
}

// workerMux is a worker's HTTP surface: /metrics, and /healthz, which
// answers 200 only while the database does (the container healthcheck),
// since a worker that cannot reach it runs no job.
func workerMux(b *backend) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", b.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := b.store.Ping(ctx); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

func newMigrateCmd() *cobra.Command {
	var cfg backendConfig
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "apply database migrations and exit",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := cfg.openStore(cmd.Context(), cfg.logger(cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			defer store.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "migrations applied (%s)\n", store.Engine())
			return nil
		},
	}
	cfg.register(cmd.Flags())
	return cmd
}

// console makes the web console over the gateway's rules.
func (b *backend) console(svc *service.Service, hooks gateway.ConsoleHooks) (http.Handler, error) {
	c, err := web.New(web.Config{
		Service:         svc,
		GuardUpload:     hooks.GuardModelUpload,
		InsecureCookies: b.insecureCookies,
		Logger:          b.logger,
		ClientAddress:   func(r *http.Request) string { return gateway.ClientAddressFromContext(r.Context()) },
		RequestID:       gateway.RequestIDFromContext,
		Health:          func(ctx context.Context) error { return b.store.Ping(ctx) },
	})
	if err != nil {
		return nil, err
	}
	return c.Handler(), nil
}

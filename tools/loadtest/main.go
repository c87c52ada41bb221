// Command loadtest drives a real hegate deployment on PostgreSQL with
// simulated devices and reports latency, outcomes and the resources of the
// gateway and worker processes.
//
//	go run ./tools/loadtest -database-url 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	    [-devices 200] [-tenants 2] [-duration 5m] [-scenario steady|flood|soak] [-workers N] [-b-rate 1.4]
//
// It builds cmd/hegate (or runs -hegate PATH), creates a fresh schema in
// the database (hegate's --database-schema), runs `hegate migrate`, creates
// the tenants, one client API key per device and a budget per tenant with
// the CLI, and starts `hegate worker` and `hegate serve --workers 0` as
// separate processes, so that the resident memory, descriptors, goroutines
// and metric series it samples are theirs. Each tenant makes one secret key
// and uploads one key set that its devices share (a real fleet has one per
// device; 200 key sets of 60 MB would measure the disk), and encrypts a few
// MNIST test images. Then every device loops: infer and wait for the
// answer, decrypt it, think, again. A refusal (429, 503) is followed by its
// Retry-After.
//
// Scenarios:
//
//	steady  every tenant paced: -warmup, then -duration measured
//	flood   tenant B (the second) paced alone for -baseline, then tenant A
//	        (the first) floods: no think time, -flood-backoff after a
//	        refusal; B's latency with A flooding is compared with B alone.
//	        B (and any further tenant) has modest demand that does not
//	        saturate the workers on its own: its devices together offer
//	        -b-rate requests/s (default 1.4, about 40% of the ~3.6
//	        evaluations/s of mnist-cryptonets on 2 cores), each thinking
//	        devices/-b-rate seconds on average; -b-rate 0 paces B with
//	        -think like the other scenarios
//	soak    every tenant paced for -warmup (5 min) and -duration (25 min),
//	        sampled every 30 s: RSS flat within 10% after the warm-up, no
//	        growth in goroutines, descriptors or metric series
//
// The schema is dropped and the temporary directory removed at the end
// unless -keep. The exit status is 0 when every verdict passes, 1 when one
// fails, 2 when the run itself failed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/internal/mnist"
)

type config struct {
	databaseURL  string
	hegate       string
	scenario     string
	devices      int
	tenants      int
	workers      int
	duration     time.Duration
	warmup       time.Duration
	baseline     time.Duration
	settle       time.Duration
	sample       time.Duration
	think        time.Duration
	bRate        float64
	floodBackoff time.Duration
	drain        time.Duration
	rest         time.Duration
	ciphertexts  int
	sigma        float64
	sharedKey    bool
	model        string
	serveArgs    string
	workerArgs   string
	jsonOut      string
	keep         bool
	seed         uint64
	flat         float64
	growth       float64
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, cfg, os.Stderr)
	if rep != nil {
		rep.print(os.Stdout)
		if cfg.jsonOut != "" {
			if werr := writeJSON(cfg.jsonOut, rep); werr != nil {
				fmt.Fprintln(os.Stderr, "loadtest:", werr)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	if !rep.passed() {
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.databaseURL, "database-url", os.Getenv("HEGATE_TEST_DATABASE_URL"), "PostgreSQL URL; the run makes (and drops) a schema of its own in this database [HEGATE_TEST_DATABASE_URL]")
	fs.StringVar(&c.hegate, "hegate", "", "hegate binary to run (default: go build ./cmd/hegate into the temporary directory)")
	fs.StringVar(&c.scenario, "scenario", "steady", "steady, flood or soak")
	fs.IntVar(&c.devices, "devices", 200, "simulated devices, split evenly between the tenants")
	fs.IntVar(&c.tenants, "tenants", 2, "tenants (flood: the first floods, the second is measured)")
	fs.IntVar(&c.workers, "workers", runtime.NumCPU(), "hegate worker --workers: jobs evaluated at once (default: the core count)")
	fs.DurationVar(&c.duration, "duration", 0, "measured phase (steady, flood: 5m; soak: 25m after the warm-up)")
	fs.DurationVar(&c.warmup, "warmup", 0, "warm-up before the measured phases, not counted (steady, flood: 30s; soak: 5m)")
	fs.DurationVar(&c.baseline, "baseline", 0, "flood: how long tenant B runs alone (default -duration)")
	fs.DurationVar(&c.settle, "settle", 30*time.Second, "flood: time after tenant A starts that is not counted")
	fs.DurationVar(&c.sample, "sample", 0, "interval of the RSS, descriptor, goroutine and series samples (soak: 30s, else 10s)")
	fs.DurationVar(&c.think, "think", time.Second, "a paced device's mean pause after an answer (uniform in [0.5, 1.5] times this)")
	fs.Float64Var(&c.bRate, "b-rate", 1.4, "flood: requests/s that tenant B's devices offer together (each thinks devices/rate on average, uniform in [0.5, 1.5] times that); 0: B thinks -think like A in the other scenarios")
	fs.DurationVar(&c.floodBackoff, "flood-backoff", 100*time.Millisecond, "flood: pause after a refusal (Retry-After ignored)")
	fs.DurationVar(&c.drain, "drain", 2*time.Minute, "at the end, how long to wait for the requests in progress")
	fs.DurationVar(&c.rest, "rest", 15*time.Second, "pause after the load before the at-rest sample")
	fs.IntVar(&c.ciphertexts, "ciphertexts", 8, "ciphertexts each tenant encrypts (MNIST test images) and its devices send in turn")
	fs.Float64Var(&c.sigma, "sigma", 4, "noise sigma of the tenants' budgets (hegate budget set --sigma), small enough for the answers to be checked against the labels")
	fs.BoolVar(&c.sharedKey, "shared-key", false, "one client API key per tenant shared by its devices, instead of one per device (the rate limits are per key)")
	fs.StringVar(&c.model, "model", "mnist-cryptonets", "model the devices infer")
	fs.StringVar(&c.serveArgs, "serve-args", "", "extra flags for hegate serve, space-separated (e.g. \"--max-inferences-per-tenant 8\")")
	fs.StringVar(&c.workerArgs, "worker-args", "", "extra flags for hegate worker, space-separated")
	fs.StringVar(&c.jsonOut, "json", "", "also write the report as JSON to this file")
	fs.BoolVar(&c.keep, "keep", false, "keep the schema, the temporary directory and the logs")
	fs.Uint64Var(&c.seed, "seed", uint64(time.Now().UnixNano()), "seed of the devices' think times and ciphertext choices")
	fs.Float64Var(&c.flat, "flat", 0.10, "soak: the RSS band allowed after the warm-up ((max-min)/min)")
	fs.Float64Var(&c.growth, "growth", 0.05, "soak: the growth allowed in goroutines and descriptors under load (last third of the samples against the first)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	def := func(d *time.Duration, name string, v time.Duration) {
		if !set[name] {
			*d = v
		}
	}
	switch c.scenario {
	case "steady", "flood":
		def(&c.duration, "duration", 5*time.Minute)
		def(&c.warmup, "warmup", 30*time.Second)
		def(&c.sample, "sample", 10*time.Second)
	case "soak":
		def(&c.duration, "duration", 25*time.Minute)
		def(&c.warmup, "warmup", 5*time.Minute)
		def(&c.sample, "sample", 30*time.Second)
	default:
		return c, fmt.Errorf("-scenario %q: want steady, flood or soak", c.scenario)
	}
	def(&c.baseline, "baseline", c.duration)
	switch {
	case !strings.HasPrefix(c.databaseURL, "postgres://") && !strings.HasPrefix(c.databaseURL, "postgresql://"):
		return c, errors.New("-database-url postgres://... is required (the load test runs on PostgreSQL)")
	case c.tenants < 1 || c.scenario == "flood" && c.tenants < 2:
		return c, fmt.Errorf("-tenants %d: want at least 1 (flood: 2)", c.tenants)
	case c.devices < c.tenants:
		return c, fmt.Errorf("-devices %d: want at least one per tenant", c.devices)
	case c.workers < 1:
		return c, errors.New("-workers: want at least 1")
	case c.duration <= 0 || c.sample <= 0 || c.warmup < 0 || c.baseline <= 0 || c.settle < 0:
		return c, errors.New("-duration, -sample and -baseline must be positive, -warmup and -settle not negative")
	case c.bRate < 0:
		return c, errors.New("-b-rate: want at least 0")
	case c.ciphertexts < 1:
		return c, errors.New("-ciphertexts: want at least 1")
	}
	return c, nil
}

// phaseSpec is one phase of a scenario: how long, whether its requests
// are counted, and what each tenant's devices do.
type phaseSpec struct {
	name     string
	dur      time.Duration
	measured bool
	modes    []mode
}

func phases(c config) []phaseSpec {
	all := func(m mode) []mode {
		ms := make([]mode, c.tenants)
		for i := range ms {
			ms[i] = m
		}
		return ms
	}
	with := func(a mode) []mode { ms := all(paced); ms[0] = a; return ms }
	var ps []phaseSpec
	switch c.scenario {
	case "steady":
		ps = []phaseSpec{{"warm-up", c.warmup, false, all(paced)}, {"steady", c.duration, true, all(paced)}}
	case "soak":
		ps = []phaseSpec{{"warm-up", c.warmup, false, all(paced)}, {"soak", c.duration, true, all(paced)}}
	case "flood":
		ps = []phaseSpec{
			{"warm-up", c.warmup, false, with(idle)},
			{"B alone", c.baseline, true, with(idle)},
			{"A ramping", c.settle, false, with(flood)},
			{"A flooding", c.duration, true, with(flood)},
		}
	}
	out := ps[:0]
	for _, p := range ps {
		if p.dur > 0 {
			out = append(out, p)
		}
	}
	return out
}

// pacedThink is the mean think time of the n devices of tenant i when
// paced: in the flood scenario, the measured tenants (all but A) offer
// -b-rate requests/s together; else -think.
func pacedThink(c config, i, n int) time.Duration {
	if c.scenario != "flood" || i == 0 || c.bRate <= 0 {
		return c.think
	}
	return time.Duration(float64(n) / c.bRate * float64(time.Second))
}

// tenantName is "loadtest-a", "loadtest-b", ...
func tenantName(i int) string {
	if i < 26 {
		return "loadtest-" + string(rune('a'+i))
	}
	return fmt.Sprintf("loadtest-%d", i)
}

// letter is the tenant's short name in the report: A, B, ...
func letter(i int) string {
	if i < 26 {
		return string(rune('A' + i))
	}
	return fmt.Sprint(i)
}

func run(ctx context.Context, cfg config, logw io.Writer) (rep *Report, err error) {
	logf := func(format string, args ...any) {
		fmt.Fprintf(logw, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	rep = newReport(cfg)
	tmp, err := os.MkdirTemp("", "hegate-loadtest-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if cfg.keep {
			logf("kept %s", tmp)
		} else {
			os.RemoveAll(tmp)
		}
	}()

	// The hegate binary and the MNIST images.
	bin := cfg.hegate
	if bin == "" {
		logf("building cmd/hegate")
		if bin, err = buildHegate(ctx, tmp); err != nil {
			return nil, err
		}
	}
	mnistDir, err := mnist.Dir()
	if err != nil {
		return nil, err
	}
	set, err := mnist.Load(mnistDir, mnist.Test)
	if err != nil {
		return nil, err
	}
	schema := fmt.Sprintf("loadtest_%s_%d", time.Now().UTC().Format("20060102_150405"), os.Getpid())
	h := &hegateEnv{bin: bin, databaseURL: cfg.databaseURL, schema: schema, dataDir: tmp + "/data", env: []string{mnist.EnvDir + "=" + mnistDir}}
	rep.Hegate = hegateVersion(ctx, bin, cfg.hegate == "")
	rep.Schema = schema
	defer func() {
		if cfg.keep {
			logf("kept schema %s", schema)
			return
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := dropSchema(dctx, cfg.databaseURL, schema); derr != nil {
			logf("dropping schema %s: %v", schema, derr)
		}
	}()

	// Database, tenants, keys, budgets: through the CLI, as an operator.
	logf("hegate migrate (schema %s)", schema)
	if _, err := h.run(ctx, "migrate"); err != nil {
		return rep, err
	}
	tenants := make([]*tenantRig, cfg.tenants)
	for i := range tenants {
		t := &tenantRig{idx: i, name: tenantName(i)}
		out, err := h.run(ctx, "tenant", "create", t.name)
		if err != nil {
			return rep, err
		}
		if t.adminKey, err = parseAPIKey(out); err != nil {
			return rep, err
		}
		n := cfg.devices / cfg.tenants
		if i < cfg.devices%cfg.tenants {
			n++
		}
		t.keys = make([]string, n)
		t.think = pacedThink(cfg, i, n)
		tenants[i] = t
		if _, err := h.run(ctx, "budget", "set", "--tenant", t.name, "--model", cfg.model,
			"--epsilon", "1e9", "--delta", "1e-5", "--period", "never", "--sigma", fmt.Sprint(cfg.sigma), "--reason", "load test"); err != nil {
			return rep, err
		}
	}
	logf("hegate tenant key: %d client keys", map[bool]int{true: cfg.tenants, false: cfg.devices}[cfg.sharedKey])
	for _, t := range tenants {
		nkeys := len(t.keys)
		if cfg.sharedKey {
			nkeys = 1
		}
		if err := parallel(nkeys, 8, func(i int) error {
			out, err := h.run(ctx, "tenant", "key", t.name)
			if err != nil {
				return err
			}
			t.keys[i], err = parseAPIKey(out)
			return err
		}); err != nil {
			return rep, err
		}
		if cfg.sharedKey {
			for i := range t.keys {
				t.keys[i] = t.keys[0]
			}
		}
	}

	// The processes.
	gwAddr, err := freeAddr()
	if err != nil {
		return rep, err
	}
	wkAddr, err := freeAddr()
	if err != nil {
		return rep, err
	}
	base := "http://" + gwAddr
	wargs := append([]string{"worker", "--workers", fmt.Sprint(cfg.workers), "--metrics-addr", wkAddr}, strings.Fields(cfg.workerArgs)...)
	worker, err := h.start("worker", tmp+"/worker.log", "http://"+wkAddr+"/metrics", "http://"+wkAddr+"/healthz", wargs...)
	if err != nil {
		return rep, err
	}
	procs := []*proc{worker}
	defer func() {
		for _, p := range procs {
			if serr := p.stop(3 * time.Minute); serr != nil && !strings.Contains(serr.Error(), "signal: terminated") {
				logf("stopping %s: %v", p.name, serr)
			}
		}
	}()
	sargs := append([]string{"serve", "--workers", "0", "--addr", gwAddr}, strings.Fields(cfg.serveArgs)...)
	gateway, err := h.start("gateway", tmp+"/gateway.log", base+"/metrics", base+"/v2/health/ready", sargs...)
	if err != nil {
		return rep, err
	}
	procs = append([]*proc{gateway}, procs...)
	rep.Commands = []string{"hegate " + strings.Join(sargs, " "), "hegate " + strings.Join(wargs, " ")}
	hc := &http.Client{Timeout: 30 * time.Second}
	for _, p := range procs {
		if err := p.waitReady(ctx, hc, 2*time.Minute); err != nil {
			return rep, err
		}
	}
	logf("gateway %s (pid %d), worker metrics %s (pid %d)", base, gateway.pid(), wkAddr, worker.pid())

	// Each tenant's key set and ciphertexts; one inference each warms the
	// worker (model compile, key-set parse) outside the figures.
	for _, t := range tenants {
		up, err := t.setup(ctx, base, cfg.model, set, cfg.ciphertexts, t.idx*cfg.ciphertexts)
		if err != nil {
			return rep, err
		}
		rep.Setup = append(rep.Setup, fmt.Sprintf("tenant %s: key set %.12s… uploaded in %s", letter(t.idx), t.ksID, up.Round(time.Millisecond)))
	}
	for _, t := range tenants {
		cl, err := client.New(base, t.keys[0])
		if err != nil {
			return rep, err
		}
		t0 := time.Now()
		res, _, err := cl.Infer(ctx, cfg.model, t.ksID, t.cts[0], client.InferOptions{Wait: true})
		if err != nil {
			return rep, fmt.Errorf("tenant %s: first inference: %w", t.name, err)
		}
		if err := t.check(0, res); err != nil {
			return rep, fmt.Errorf("tenant %s: first result: %w", t.name, err)
		}
		rep.Setup = append(rep.Setup, fmt.Sprintf("tenant %s: first inference (worker loads the model and the key set) %s", letter(t.idx), time.Since(t0).Round(time.Millisecond)))
	}
	for _, t := range tenants {
		t.decrypted.Store(0)
		t.correct.Store(0)
	}
	time.Sleep(2 * time.Second)
	rep.RestBefore = map[string]procSample{}
	for _, p := range procs {
		s, _ := p.sample(ctx, hc)
		rep.RestBefore[p.name] = s
	}

	// The load.
	f := newFleet(base, cfg.model, cfg.floodBackoff, cfg.devices)
	devCtx, cancelDevices := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDevices()
	specs := phases(cfg)
	f.setPhase(0, tenants, make([]mode, len(tenants))) // idle until the first phase
	f.start(devCtx, tenants, cfg.seed)
	t0 := time.Now()
	phaseName := make(chan string, 1)
	phaseName <- specs[0].name
	samplerDone := make(chan struct{})
	stopSampler := make(chan struct{})
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(cfg.sample)
		defer tick.Stop()
		name := <-phaseName
		take := func() {
			s := Sample{T: time.Since(t0).Seconds(), Phase: name, InFlight: f.inflight.Load(), Load1: loadAvg1(), Procs: map[string]procSample{}}
			for _, p := range procs {
				ps, snap := p.sample(ctx, hc)
				s.Procs[p.name] = ps
				// Series are compared over the last phase when it is measured
				// (the soak after its warm-up).
				if last := specs[len(specs)-1]; name == last.name && last.measured && len(snap.Series) > 0 {
					if rep.firstSeries[p.name] == nil {
						rep.firstSeries[p.name] = snap.Series
					}
					rep.lastSeries[p.name] = snap.Series
				}
			}
			rep.Samples = append(rep.Samples, s)
		}
		take()
		for {
			select {
			case <-stopSampler:
				take()
				return
			case n := <-phaseName:
				name = n
			case <-tick.C:
				take()
			}
		}
	}()
	var runErr error
phasesLoop:
	for i, p := range specs {
		if i > 0 {
			phaseName <- p.name
		}
		logf("phase %q for %s: %s", p.name, p.dur, modesText(p.modes))
		start := time.Since(t0)
		f.setPhase(i, tenants, p.modes)
		timer := time.NewTimer(p.dur)
		select {
		case <-ctx.Done():
			timer.Stop()
			runErr = ctx.Err()
			rep.Phases = append(rep.Phases, PhaseReport{Name: p.name, Measured: p.measured, Start: start.Seconds(), Seconds: (time.Since(t0) - start).Seconds(), modes: p.modes, idx: i})
			break phasesLoop
		case <-timer.C:
		}
		for _, q := range procs {
			if q.exited() {
				runErr = fmt.Errorf("hegate %s exited during the run (%v): %s", q.name, q.waitErr, tailFile(q.logPath, 10))
				break phasesLoop
			}
		}
		rep.Phases = append(rep.Phases, PhaseReport{Name: p.name, Measured: p.measured, Start: start.Seconds(), Seconds: (time.Since(t0) - start).Seconds(), modes: p.modes, idx: i})
	}
	logf("stopping the devices (%d requests in progress)", f.inflight.Load())
	f.stop(cancelDevices, cfg.drain)
	rep.Abandoned = f.abandoned.Load()
	close(stopSampler)
	<-samplerDone
	logf("at rest for %s", cfg.rest)
	time.Sleep(cfg.rest)
	rep.RestAfter = map[string]procSample{}
	finals := map[string]metricsSnapshot{}
	for _, p := range procs {
		s, snap := p.sample(context.WithoutCancel(ctx), hc)
		rep.RestAfter[p.name] = s
		finals[p.name] = snap
	}
	rep.collect(cfg, f, tenants, finals)
	for _, p := range procs {
		pr := rep.Processes[p.name]
		pr.PID = p.pid()
		rep.Processes[p.name] = pr
	}
	for _, p := range procs {
		rep.Logs[p.name] = summarizeLog(p.logPath)
	}
	if cfg.keep {
		rep.Setup = append(rep.Setup, "logs: "+gateway.logPath+", "+worker.logPath)
	}
	rep.judge(cfg)
	return rep, runErr
}

func modesText(ms []mode) string {
	var parts []string
	for i, m := range ms {
		parts = append(parts, letter(i)+" "+m.String())
	}
	return strings.Join(parts, ", ")
}

func writeJSON(path string, rep *Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// machine describes where the run happened.
func machine() string {
	return fmt.Sprintf("%d CPUs (%s), %.0f GB, %s/%s, %s", runtime.NumCPU(), cpuModel(), float64(memTotal())/1e9, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

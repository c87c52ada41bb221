package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything a run measured; it is printed as a table and
// written as JSON.
type Report struct {
	Scenario   string                    `json:"scenario"`
	Started    time.Time                 `json:"started"`
	Machine    string                    `json:"machine"`
	Hegate     string                    `json:"hegate_version"`
	Schema     string                    `json:"schema"`
	Config     map[string]string         `json:"config"`
	Commands   []string                  `json:"commands"`
	Setup      []string                  `json:"setup"`
	Phases     []PhaseReport             `json:"phases"`
	Checks     []CheckReport             `json:"answers_checked"`
	Errors     map[string]map[string]int `json:"error_messages,omitempty"`
	Abandoned  int64                     `json:"abandoned_at_stop"`
	Processes  map[string]ProcReport     `json:"processes"`
	RestBefore map[string]procSample     `json:"at_rest_before"`
	RestAfter  map[string]procSample     `json:"at_rest_after"`
	Samples    []Sample                  `json:"samples"`
	Drift      map[string]DriftReport    `json:"drift_after_warmup,omitempty"`
	Comparison *Comparison               `json:"flood_comparison,omitempty"`
	Server     ServerReport              `json:"server_side"`
	Logs       map[string]logSummary     `json:"logs"`
	Verdicts   []Verdict                 `json:"verdicts"`

	firstSeries, lastSeries map[string]map[string]bool
}

// PhaseReport is one phase: per tenant, its outcomes and latencies.
type PhaseReport struct {
	Name     string           `json:"name"`
	Measured bool             `json:"measured"`
	Start    float64          `json:"start_s"`
	Seconds  float64          `json:"seconds"`
	Tenants  []TenantPhase    `json:"tenants"`
	All      TenantPhase      `json:"all"`
	MaxRSS   map[string]int64 `json:"max_sampled_rss_bytes"`
	// Load is the machine's 1-minute load average over the phase's
	// samples: mean and max.
	LoadMean float64 `json:"loadavg_1m_mean"`
	LoadMax  float64 `json:"loadavg_1m_max"`

	modes []mode
	idx   int
}

// TenantPhase is one tenant in one phase.
type TenantPhase struct {
	Tenant         string         `json:"tenant"`
	Mode           string         `json:"mode"`
	Requests       int            `json:"requests"`
	RequestsPerSec float64        `json:"requests_per_s"`
	OK             int            `json:"ok"`
	OKPerSec       float64        `json:"ok_per_s"`
	Refused        int            `json:"refused"`
	Other503       int            `json:"other_503"`
	Failures       int            `json:"failures"`
	Outcomes       map[string]int `json:"outcomes"`
	Latency        Summary        `json:"latency_ok"`
	// WithRetries is the time to each answer from the device's first
	// attempt: the refusals before it and the Retry-After waits included.
	WithRetries Summary            `json:"latency_ok_with_retries"`
	ByOutcome   map[string]Summary `json:"latency_by_outcome"`
}

// CheckReport counts the answers a tenant decrypted.
type CheckReport struct {
	Tenant        string `json:"tenant"`
	Decrypted     int64  `json:"decrypted"`
	MatchLabel    int64  `json:"prediction_equals_label"`
	DecryptFailed int64  `json:"decryption_failed"`
}

// ProcReport is one process over the run.
type ProcReport struct {
	PID     int   `json:"pid"`
	PeakRSS int64 `json:"peak_rss_bytes"` // VmHWM at the end
}

// Sample is one look at the processes.
type Sample struct {
	T        float64               `json:"t_s"`
	Phase    string                `json:"phase"`
	InFlight int64                 `json:"inferences_in_flight"`
	Load1    float64               `json:"loadavg_1m"`
	Procs    map[string]procSample `json:"procs"`
}

// DriftReport is a process's quantities over the soak after its warm-up.
type DriftReport struct {
	RSS        Flatness `json:"rss_bytes"`
	Goroutines Flatness `json:"goroutines"`
	FDs        Flatness `json:"fds"`
	Series     Flatness `json:"metric_series"`
	NewSeries  []string `json:"new_series,omitempty"`
	GoneSeries []string `json:"gone_series,omitempty"`
}

// Comparison is tenant B alone against B while A floods.
type Comparison struct {
	AloneLatency          Summary `json:"b_alone"`
	FloodedLatency        Summary `json:"b_with_a_flooding"`
	P50Ratio              float64 `json:"p50_ratio"`
	P99Ratio              float64 `json:"p99_ratio"`
	AloneWithRetries      Summary `json:"b_alone_with_retries"`
	FloodedWithRetries    Summary `json:"b_with_a_flooding_with_retries"`
	P50RatioWithRetries   float64 `json:"p50_ratio_with_retries"`
	P99RatioWithRetries   float64 `json:"p99_ratio_with_retries"`
	AloneOKPerSec         float64 `json:"b_alone_ok_per_s"`
	FloodedOKPerSec       float64 `json:"b_flooded_ok_per_s"`
	FloodOKPerSec         float64 `json:"a_ok_per_s"`
	FloodRequestsPerSec   float64 `json:"a_requests_per_s"`
	AloneRequestsPerSec   float64 `json:"b_alone_requests_per_s"`
	FloodedRequestsPerSec float64 `json:"b_flooded_requests_per_s"`
	AloneRefusedShare     float64 `json:"b_alone_refused_share"`
	FloodedRefusedShare   float64 `json:"b_flooded_refused_share"`
}

// ServerReport is what the processes' own metrics say at the end (setup
// requests included).
type ServerReport struct {
	InferByCode  map[string]float64 `json:"gateway_infer_answers_by_code"`
	Gateway5xx   map[string]float64 `json:"gateway_5xx_by_route_code"`
	RefusedBy    map[string]float64 `json:"gateway_refused_by_reason"`
	Jobs         map[string]float64 `json:"worker_jobs_by_outcome"`
	EvalMeanSecs float64            `json:"worker_evaluation_mean_s"`
	EvalCount    float64            `json:"worker_evaluations"`
	KeySetMisses float64            `json:"worker_keyset_cache_misses"`
}

// Verdict is one criterion.
type Verdict struct {
	Criterion string `json:"criterion"`
	Pass      bool   `json:"pass"`
	Detail    string `json:"detail"`
}

func newReport(c config) *Report {
	nb := c.devices / max(c.tenants, 1)
	if 1 < c.devices%max(c.tenants, 1) {
		nb++
	}
	r := &Report{
		Scenario: c.scenario,
		Started:  time.Now().UTC(),
		Machine:  machine(),
		Config: map[string]string{
			"devices": fmt.Sprint(c.devices), "tenants": fmt.Sprint(c.tenants), "workers": fmt.Sprint(c.workers),
			"duration": c.duration.String(), "warmup": c.warmup.String(), "baseline": c.baseline.String(), "settle": c.settle.String(),
			"sample": c.sample.String(), "think": c.think.String(), "flood_backoff": c.floodBackoff.String(),
			"ciphertexts": fmt.Sprint(c.ciphertexts), "sigma": fmt.Sprint(c.sigma), "shared_key": fmt.Sprint(c.sharedKey),
			"model": c.model, "serve_args": c.serveArgs, "worker_args": c.workerArgs, "seed": fmt.Sprint(c.seed),
		},
		Processes:   map[string]ProcReport{},
		Logs:        map[string]logSummary{},
		firstSeries: map[string]map[string]bool{},
		lastSeries:  map[string]map[string]bool{},
	}
	if c.scenario == "flood" {
		r.Config["b_rate"] = fmt.Sprint(c.bRate)
		r.Config["b_think"] = pacedThink(c, 1, nb).Round(time.Millisecond).String()
	}
	return r
}

// tenantPhase summarises one tenant's (or, with tenant -1, everyone's)
// requests in a phase.
func tenantPhase(name string, m mode, cells map[string][]time.Duration, secs float64) TenantPhase {
	tp := TenantPhase{Tenant: name, Mode: m.String(), Outcomes: map[string]int{}, ByOutcome: map[string]Summary{}}
	for out, lat := range cells {
		n := len(lat)
		tp.Outcomes[out] = n
		tp.Requests += n
		tp.ByOutcome[out] = summarize(lat)
		switch kindOf(out) {
		case kindOK:
			tp.OK += n
			tp.Latency = summarize(lat)
		case kindRefused:
			tp.Refused += n
		case kindDeadline:
			tp.Other503 += n
		default:
			tp.Failures += n
		}
	}
	if secs > 0 {
		tp.RequestsPerSec = float64(tp.Requests) / secs
		tp.OKPerSec = float64(tp.OK) / secs
	}
	return tp
}

// collect fills the report from the recorder, the samples and the final
// metrics.
func (r *Report) collect(c config, f *fleet, tenants []*tenantRig, finals map[string]metricsSnapshot) {
	for i := range r.Phases {
		ph := &r.Phases[i]
		all := map[string][]time.Duration{}
		var allE2E []time.Duration
		for _, t := range tenants {
			cells := f.rec.cell(ph.idx, t.idx)
			tp := tenantPhase(letter(t.idx), ph.modes[t.idx], cells, ph.Seconds)
			e2e := f.e2e.cell(ph.idx, t.idx)[outOK]
			tp.WithRetries = summarize(e2e)
			allE2E = append(allE2E, e2e...)
			ph.Tenants = append(ph.Tenants, tp)
			for k, v := range cells {
				all[k] = append(all[k], v...)
			}
		}
		ph.All = tenantPhase("all", paced, all, ph.Seconds)
		ph.All.Mode = ""
		ph.All.WithRetries = summarize(allE2E)
		ph.MaxRSS = map[string]int64{}
		var loads []float64
		for _, s := range r.Samples {
			if s.Phase == ph.Name {
				for name, ps := range s.Procs {
					ph.MaxRSS[name] = max(ph.MaxRSS[name], ps.RSS)
				}
				if s.Load1 >= 0 {
					loads = append(loads, s.Load1)
				}
			}
		}
		for _, l := range loads {
			ph.LoadMean += l / float64(len(loads))
			ph.LoadMax = max(ph.LoadMax, l)
		}
	}
	r.Errors = f.rec.allNotes()
	for _, t := range tenants {
		r.Checks = append(r.Checks, CheckReport{Tenant: letter(t.idx), Decrypted: t.decrypted.Load(), MatchLabel: t.correct.Load(), DecryptFailed: t.decryptFailed.Load()})
	}
	for name, ps := range r.RestAfter {
		r.Processes[name] = ProcReport{PeakRSS: ps.HWM}
	}

	// Server side.
	gw, wk := finals["gateway"], finals["worker"]
	r.Server.InferByCode = map[string]float64{}
	r.Server.Gateway5xx = map[string]float64{}
	for _, p := range gw.Points {
		if p.Name != "hegate_http_requests_total" {
			continue
		}
		if strings.HasSuffix(p.Labels["route"], "/infer") {
			r.Server.InferByCode[p.Labels["code"]] += p.Value
		}
		if strings.HasPrefix(p.Labels["code"], "5") {
			r.Server.Gateway5xx[p.Labels["method"]+" "+p.Labels["route"]+" "+p.Labels["code"]] += p.Value
		}
	}
	r.Server.RefusedBy = gw.sum("hegate_requests_refused_total", nil, "reason")
	r.Server.Jobs = wk.sum("hegate_jobs_total", nil, "outcome")
	sum, _ := wk.value("hegate_evaluation_seconds_sum", map[string]string{"model": c.model})
	cnt, _ := wk.value("hegate_evaluation_seconds_count", map[string]string{"model": c.model})
	if cnt > 0 {
		r.Server.EvalMeanSecs, r.Server.EvalCount = sum/cnt, cnt
	}
	r.Server.KeySetMisses, _ = wk.value("hegate_keyset_cache_misses_total", nil)

	// Flood: B alone against B with A flooding.
	if c.scenario == "flood" {
		var alone, flooded *PhaseReport
		for i := range r.Phases {
			switch r.Phases[i].Name {
			case "B alone":
				alone = &r.Phases[i]
			case "A flooding":
				flooded = &r.Phases[i]
			}
		}
		if alone != nil && flooded != nil {
			b0, b1, a1 := alone.Tenants[1], flooded.Tenants[1], flooded.Tenants[0]
			cmp := &Comparison{AloneLatency: b0.Latency, FloodedLatency: b1.Latency,
				AloneWithRetries: b0.WithRetries, FloodedWithRetries: b1.WithRetries,
				AloneOKPerSec: b0.OKPerSec, FloodedOKPerSec: b1.OKPerSec, FloodOKPerSec: a1.OKPerSec, FloodRequestsPerSec: a1.RequestsPerSec,
				AloneRequestsPerSec: b0.RequestsPerSec, FloodedRequestsPerSec: b1.RequestsPerSec,
				AloneRefusedShare: share(b0.Refused, b0.Requests), FloodedRefusedShare: share(b1.Refused, b1.Requests)}
			if b0.Latency.P50 > 0 {
				cmp.P50Ratio = b1.Latency.P50 / b0.Latency.P50
			}
			if b0.Latency.P99 > 0 {
				cmp.P99Ratio = b1.Latency.P99 / b0.Latency.P99
			}
			if b0.WithRetries.P50 > 0 && b0.WithRetries.P99 > 0 {
				cmp.P50RatioWithRetries = b1.WithRetries.P50 / b0.WithRetries.P50
				cmp.P99RatioWithRetries = b1.WithRetries.P99 / b0.WithRetries.P99
			}
			r.Comparison = cmp
		}
	}

	// Soak: drift after the warm-up.
	if c.scenario == "soak" {
		r.Drift = map[string]DriftReport{}
		for _, name := range []string{"gateway", "worker"} {
			var t, rss, gor, fds, ser []float64
			for _, s := range r.Samples {
				ps, ok := s.Procs[name]
				if s.Phase != "soak" || !ok || ps.Err != "" {
					continue
				}
				t = append(t, s.T)
				rss = append(rss, float64(ps.RSS))
				gor = append(gor, float64(ps.Goroutines))
				fds = append(fds, float64(ps.FDs))
				ser = append(ser, float64(ps.Series))
			}
			d := DriftReport{RSS: flatness(t, rss), Goroutines: flatness(t, gor), FDs: flatness(t, fds), Series: flatness(t, ser)}
			d.NewSeries, d.GoneSeries = seriesDiff(r.firstSeries[name], r.lastSeries[name])
			r.Drift[name] = d
		}
	}
}

func share(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// seriesDiff lists the series in b but not a, and in a but not b.
func seriesDiff(a, b map[string]bool) (added, gone []string) {
	for s := range b {
		if !a[s] {
			added = append(added, s)
		}
	}
	for s := range a {
		if !b[s] {
			gone = append(gone, s)
		}
	}
	sort.Strings(added)
	sort.Strings(gone)
	return added, gone
}

// judge sets the verdicts.
func (r *Report) judge(c config) {
	var ok, refused, other503, failures int
	failing := map[string]int{}
	deadline := map[string]int{}
	for _, ph := range r.Phases {
		for _, tp := range ph.Tenants {
			ok += tp.OK
			refused += tp.Refused
			other503 += tp.Other503
			failures += tp.Failures
			for out, n := range tp.Outcomes {
				switch kindOf(out) {
				case kindFailure:
					failing[out] += n
				case kindDeadline:
					deadline[out] += n
				}
			}
		}
	}
	var decryptFailed int64
	for _, ch := range r.Checks {
		decryptFailed += ch.DecryptFailed
	}
	server5xx := 0.0
	for k, v := range r.Server.Gateway5xx {
		if !strings.HasSuffix(k, " 503") {
			server5xx += v
		}
	}
	detail := fmt.Sprintf("%d answered, %d refused by documented limits (429 rate limits and active-jobs quota, 503 admission caps)", ok, refused)
	if len(failing) > 0 {
		detail += "; failures: " + countsText(failing)
	}
	if server5xx > 0 {
		detail += fmt.Sprintf("; the gateway's metrics count %g 5xx other than 503", server5xx)
	}
	r.Verdicts = append(r.Verdicts, Verdict{"no 5xx other than documented 503s, no other failure", failures == 0 && server5xx == 0 && decryptFailed == 0, detail})
	if other503 > 0 {
		r.Verdicts = append(r.Verdicts, Verdict{"no 503 from the request deadline or the store", false, countsText(deadline)})
	}
	if r.Comparison != nil {
		cmp := r.Comparison
		r.Verdicts = append(r.Verdicts, Verdict{"tenant B's p99 with A flooding within 2x of B alone", cmp.P99Ratio > 0 && cmp.P99Ratio <= 2,
			fmt.Sprintf("p99 %s alone, %s with A flooding: %.2fx (p50 %.2fx; counting retries after refusals, p99 %.2fx, p50 %.2fx)",
				dur(cmp.AloneLatency.P99), dur(cmp.FloodedLatency.P99), cmp.P99Ratio, cmp.P50Ratio, cmp.P99RatioWithRetries, cmp.P50RatioWithRetries)})
	}
	if r.Drift != nil {
		for _, name := range []string{"gateway", "worker"} {
			d := r.Drift[name]
			r.Verdicts = append(r.Verdicts, Verdict{name + " RSS flat within " + pct(c.flat) + " after the warm-up", d.RSS.N > 1 && d.RSS.Spread <= c.flat,
				fmt.Sprintf("%s..%s over %d samples (band %s, last third vs first %+.1f%%)", mb(d.RSS.Min), mb(d.RSS.Max), d.RSS.N, pct(d.RSS.Spread), 100*d.RSS.Growth)})
			for _, q := range []struct {
				what string
				f    Flatness
			}{{"goroutines", d.Goroutines}, {"file descriptors", d.FDs}} {
				r.Verdicts = append(r.Verdicts, Verdict{name + " " + q.what + ": no growth under load", q.f.N > 1 && q.f.Growth <= c.growth,
					fmt.Sprintf("%g..%g, last third vs first %+.1f%% (allowed %s), slope %+.1f/h", q.f.Min, q.f.Max, 100*q.f.Growth, pct(c.growth), q.f.SlopePerHour)})
			}
			sd := fmt.Sprintf("%g at the end of the warm-up, %g at the end", d.Series.First, d.Series.Last)
			if len(d.NewSeries) > 0 {
				sd += "; new: " + strings.Join(clip(d.NewSeries, 8), ", ")
			}
			r.Verdicts = append(r.Verdicts, Verdict{name + " metric series: no growth", d.Series.N > 1 && len(d.NewSeries) == 0, sd})
			b, a := r.RestBefore[name], r.RestAfter[name]
			// At rest the gateway may keep up to its pool's connections
			// (pgx: 4 on this machine) more than before the load.
			const slack = 8
			r.Verdicts = append(r.Verdicts, Verdict{name + " back to rest after the load (goroutines, descriptors)", a.Goroutines <= b.Goroutines+slack && a.FDs <= b.FDs+slack,
				fmt.Sprintf("goroutines %d before, %d after; descriptors %d before, %d after (allowed +%d)", b.Goroutines, a.Goroutines, b.FDs, a.FDs, slack)})
		}
	}
}

func (r *Report) passed() bool {
	for _, v := range r.Verdicts {
		if !v.Pass {
			return false
		}
	}
	return true
}

func countsText(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func clip(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(slices.Clone(s[:n]), fmt.Sprintf("… %d more", len(s)-n))
}

// dur prints milliseconds as a duration a person reads.
func dur(msv float64) string {
	switch {
	case msv == 0:
		return "-"
	case msv < 1000:
		return fmt.Sprintf("%.0fms", msv)
	case msv < 100_000:
		return fmt.Sprintf("%.2fs", msv/1000)
	}
	return fmt.Sprintf("%.0fs", msv/1000)
}

func mb(b float64) string { return fmt.Sprintf("%.0f MB", b/1e6) }

func pct(x float64) string {
	if math.IsInf(x, 1) {
		return "inf"
	}
	return fmt.Sprintf("%.1f%%", 100*x)
}

// print writes the report as plain-text tables.
func (r *Report) print(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "hegate load test, scenario %s: %s devices of %s tenants, model %s, hegate worker --workers %s, think %s\n",
		r.Scenario, c["devices"], c["tenants"], c["model"], c["workers"], c["think"])
	if r.Scenario == "flood" {
		fmt.Fprintf(w, "flood     tenant B's devices think %s on average (-b-rate %s requests/s for B)\n", c["b_think"], c["b_rate"])
	}
	fmt.Fprintf(w, "machine   %s\nhegate    %s (PostgreSQL schema %s)\n", r.Machine, r.Hegate, r.Schema)
	for _, cmd := range r.Commands {
		fmt.Fprintf(w, "process   %s\n", cmd)
	}
	for _, s := range r.Setup {
		fmt.Fprintf(w, "setup     %s\n", s)
	}

	fmt.Fprintln(w, "\nRequests, and latency of the answered ones (encrypted input sent, result received), per tenant and phase;")
	fmt.Fprintln(w, "with retries: from a device's first attempt to its answer, the refusals and Retry-After waits before it included:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\ttenant\tmode\tseconds\trequests\treq/s\tanswered\tanswers/s\trefused\t503 other\tfailed\tp50\tp90\tp99\tmax\twith retries p50\tp99\t")
	for _, ph := range r.Phases {
		name := ph.Name
		if !ph.Measured {
			name += " (not counted)"
		}
		rows := append(slices.Clone(ph.Tenants), ph.All)
		for _, tp := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%d\t%.1f\t%d\t%.2f\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, tp.Tenant, tp.Mode, ph.Seconds,
				tp.Requests, tp.RequestsPerSec, tp.OK, tp.OKPerSec, tp.Refused, tp.Other503, tp.Failures,
				dur(tp.Latency.P50), dur(tp.Latency.P90), dur(tp.Latency.P99), dur(tp.Latency.Max),
				dur(tp.WithRetries.P50), dur(tp.WithRetries.P99))
		}
	}
	tw.Flush()

	fmt.Fprintln(w, "\nOutcomes (count, p50 and max latency):")
	for _, ph := range r.Phases {
		for _, tp := range ph.Tenants {
			if tp.Requests == 0 {
				continue
			}
			var parts []string
			for _, out := range sortedKeys(tp.Outcomes) {
				s := tp.ByOutcome[out]
				parts = append(parts, fmt.Sprintf("%s: %d (%s, max %s)", out, tp.Outcomes[out], dur(s.P50), dur(s.Max)))
			}
			fmt.Fprintf(w, "  %-14s %s  %s\n", ph.Name, tp.Tenant, strings.Join(parts, "; "))
		}
	}
	var checks []string
	for _, ch := range r.Checks {
		checks = append(checks, fmt.Sprintf("%s %d decrypted, %d predictions equal the label, %d failed to decrypt", ch.Tenant, ch.Decrypted, ch.MatchLabel, ch.DecryptFailed))
	}
	fmt.Fprintf(w, "  answers   %s\n", strings.Join(checks, "; "))
	for _, out := range sortedKeys(r.Errors) {
		fmt.Fprintf(w, "  %s: %s\n", out, countsText(r.Errors[out]))
	}
	if r.Abandoned > 0 {
		fmt.Fprintf(w, "  %d requests were still waiting at the end of the drain and were cancelled (not counted)\n", r.Abandoned)
	}

	if cmp := r.Comparison; cmp != nil {
		fmt.Fprintf(w, "\nFlood: tenant B alone p50 %s p99 %s (%.2f requests/s, %.2f answers/s, %s refused); with A flooding p50 %s p99 %s (%.2f requests/s, %.2f answers/s, %s refused)\n",
			dur(cmp.AloneLatency.P50), dur(cmp.AloneLatency.P99), cmp.AloneRequestsPerSec, cmp.AloneOKPerSec, pct(cmp.AloneRefusedShare),
			dur(cmp.FloodedLatency.P50), dur(cmp.FloodedLatency.P99), cmp.FloodedRequestsPerSec, cmp.FloodedOKPerSec, pct(cmp.FloodedRefusedShare))
		fmt.Fprintf(w, "       ratio p50 %.2fx, p99 %.2fx; A sent %.1f requests/s and got %.2f answers/s\n", cmp.P50Ratio, cmp.P99Ratio, cmp.FloodRequestsPerSec, cmp.FloodOKPerSec)
		fmt.Fprintf(w, "       with retries: B alone p50 %s p99 %s, with A flooding p50 %s p99 %s: ratio p50 %.2fx, p99 %.2fx\n",
			dur(cmp.AloneWithRetries.P50), dur(cmp.AloneWithRetries.P99), dur(cmp.FloodedWithRetries.P50), dur(cmp.FloodedWithRetries.P99),
			cmp.P50RatioWithRetries, cmp.P99RatioWithRetries)
	}

	var loads []string
	for _, ph := range r.Phases {
		loads = append(loads, fmt.Sprintf("%s %.1f (max %.1f)", ph.Name, ph.LoadMean, ph.LoadMax))
	}
	fmt.Fprintf(w, "\nMachine load (1-minute load average, mean of the samples, on %d cores; the load test's processes and anything else on the machine): %s\n",
		runtime.NumCPU(), strings.Join(loads, ", "))

	fmt.Fprintln(w, "\nProcesses:")
	for _, name := range []string{"gateway", "worker"} {
		b, a := r.RestBefore[name], r.RestAfter[name]
		var perPhase []string
		for _, ph := range r.Phases {
			perPhase = append(perPhase, fmt.Sprintf("%s %s", ph.Name, mb(float64(ph.MaxRSS[name]))))
		}
		fmt.Fprintf(w, "  %-8s peak RSS (VmHWM) %s; largest sampled RSS by phase: %s\n", name, mb(float64(r.Processes[name].PeakRSS)), strings.Join(perPhase, ", "))
		fmt.Fprintf(w, "  %-8s at rest before the load: RSS %s, %d goroutines, %d fds, %d series; after: RSS %s, %d goroutines, %d fds, %d series\n", "",
			mb(float64(b.RSS)), b.Goroutines, b.FDs, b.Series, mb(float64(a.RSS)), a.Goroutines, a.FDs, a.Series)
	}

	fmt.Fprintf(w, "\nSamples (every %s):\n", c["sample"])
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "t\tphase\tin flight\tload\tgw RSS\tgw gorout.\tgw fds\tgw series\twk RSS\twk gorout.\twk fds\twk series\t")
	for _, s := range r.Samples {
		g, k := s.Procs["gateway"], s.Procs["worker"]
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%s\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t\n", (time.Duration(s.T) * time.Second).String(), s.Phase, s.InFlight, s.Load1,
			mb(float64(g.RSS)), g.Goroutines, g.FDs, g.Series, mb(float64(k.RSS)), k.Goroutines, k.FDs, k.Series)
	}
	tw.Flush()

	if r.Drift != nil {
		fmt.Fprintln(w, "\nAfter the warm-up (min..max, band (max-min)/min, last third of the samples against the first):")
		for _, name := range []string{"gateway", "worker"} {
			d := r.Drift[name]
			fmt.Fprintf(w, "  %-8s RSS %s..%s (%s, %+.1f%%); goroutines %g..%g (%+.1f%%); fds %g..%g (%+.1f%%); series %g..%g (%+.1f%%)\n", name,
				mb(d.RSS.Min), mb(d.RSS.Max), pct(d.RSS.Spread), 100*d.RSS.Growth,
				d.Goroutines.Min, d.Goroutines.Max, 100*d.Goroutines.Growth, d.FDs.Min, d.FDs.Max, 100*d.FDs.Growth,
				d.Series.Min, d.Series.Max, 100*d.Series.Growth)
		}
	}

	s := r.Server
	fmt.Fprintln(w, "\nServer side (the processes' metrics at the end, setup included):")
	fmt.Fprintf(w, "  gateway  inference answers by status: %s\n", floatCounts(s.InferByCode))
	fmt.Fprintf(w, "  gateway  refusals by reason: %s\n", floatCounts(s.RefusedBy))
	if len(s.Gateway5xx) > 0 {
		fmt.Fprintf(w, "  gateway  5xx: %s\n", floatCounts(s.Gateway5xx))
	}
	fmt.Fprintf(w, "  worker   jobs by outcome: %s; mean evaluation %.3f s over %g; key-set cache misses %g\n", floatCounts(s.Jobs), s.EvalMeanSecs, s.EvalCount, s.KeySetMisses)
	for _, name := range []string{"gateway", "worker"} {
		l := r.Logs[name]
		fmt.Fprintf(w, "  %-8s log: %d error lines, %d warnings", name, l.Errors, l.Warnings)
		if len(l.Messages) > 0 {
			fmt.Fprintf(w, ": %s", countsText(l.Messages))
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "\nVerdicts:")
	for _, v := range r.Verdicts {
		mark := "PASS"
		if !v.Pass {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", mark, v.Criterion, v.Detail)
	}
}

func floatCounts(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		label := k
		if label == "" {
			label = "(none)"
		}
		parts = append(parts, fmt.Sprintf("%s: %g", label, m[k]))
	}
	return strings.Join(parts, ", ")
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
)

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose: summarize sorts
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	s := summarize(lat)
	want := Summary{N: 100, Mean: 50.5, P50: 50, P90: 90, P99: 99, Max: 100}
	if s != want {
		t.Errorf("summarize(1..100 ms) = %+v, want %+v", s, want)
	}
	if lat[0] != 100*time.Millisecond {
		t.Error("summarize sorted its argument in place")
	}
	sorted := []time.Duration{10, 20, 30}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{1, 10}, {33, 10}, {34, 20}, {50, 20}, {67, 30}, {99, 30}, {100, 30}} {
		if got := percentile(sorted, c.p); got != c.want {
			t.Errorf("percentile(10,20,30; %g) = %d, want %d", c.p, got, c.want)
		}
	}
	if percentile(nil, 50) != 0 || summarize(nil) != (Summary{}) {
		t.Error("no values: want zeros")
	}
	if got := summarize([]time.Duration{7 * time.Millisecond}); got.P50 != 7 || got.P99 != 7 || got.Max != 7 {
		t.Errorf("one value: %+v", got)
	}
}

func TestFlatness(t *testing.T) {
	ts := func(n int) []float64 {
		var t []float64
		for i := range n {
			t = append(t, float64(30*i))
		}
		return t
	}
	flat := []float64{100, 104, 98, 101, 103, 99}
	f := flatness(ts(6), flat)
	if f.N != 6 || f.Min != 98 || f.Max != 104 || f.First != 100 || f.Last != 99 {
		t.Errorf("flatness = %+v", f)
	}
	if math.Abs(f.Spread-6.0/98) > 1e-12 {
		t.Errorf("spread %g, want %g", f.Spread, 6.0/98)
	}
	// Thirds: mean(100, 104) = 102, mean(103, 99) = 101.
	if math.Abs(f.Growth-(101.0-102)/102) > 1e-12 {
		t.Errorf("growth %g", f.Growth)
	}

	// A leak: +1 per sample of 30 s is +120 per hour.
	var leak []float64
	for i := range 12 {
		leak = append(leak, 100+float64(i))
	}
	f = flatness(ts(12), leak)
	if math.Abs(f.SlopePerHour-120) > 1e-9 {
		t.Errorf("slope %g/h, want 120", f.SlopePerHour)
	}
	// First third 100..103 (mean 101.5), last 108..111 (mean 109.5).
	if math.Abs(f.Growth-8/101.5) > 1e-12 || f.Spread != 0.11 {
		t.Errorf("leak: growth %g spread %g", f.Growth, f.Spread)
	}

	if f := flatness(ts(3), []float64{5, 5, 5}); f.Spread != 0 || f.Growth != 0 || f.SlopePerHour != 0 {
		t.Errorf("constant: %+v", f)
	}
	if f := flatness(ts(2), []float64{0, 3}); !math.IsInf(f.Spread, 1) || !math.IsInf(f.Growth, 1) {
		t.Errorf("from zero: %+v", f)
	}
	if f := flatness(nil, nil); f != (Flatness{}) {
		t.Errorf("empty: %+v", f)
	}
	if f := flatness([]float64{1}, []float64{1, 2}); f != (Flatness{}) {
		t.Errorf("mismatched lengths: %+v", f)
	}
}

const statusText = `Name:	hegate
Umask:	0022
State:	S (sleeping)
Tgid:	4242
VmPeak:	 3456789 kB
VmSize:	 3456000 kB
VmHWM:	 1946112 kB
VmRSS:	  996000 kB
RssAnon:	  990000 kB
Threads:	14
SigQ:	0/94787
`

func TestParseStatus(t *testing.T) {
	st, err := parseStatus(strings.NewReader(statusText))
	if err != nil {
		t.Fatal(err)
	}
	if want := (procStatus{RSS: 996000 << 10, HWM: 1946112 << 10, Threads: 14}); st != want {
		t.Errorf("parseStatus = %+v, want %+v", st, want)
	}
	for name, text := range map[string]string{
		"no VmHWM (a kernel thread)": "Name:\tkthreadd\nThreads:\t1\n",
		"bad number":                 "VmHWM:\tx kB\nVmRSS:\t1 kB\nThreads:\t1\n",
		"bad unit":                   "VmHWM:\t1 GB\nVmRSS:\t1 kB\nThreads:\t1\n",
		"no value":                   "VmHWM:\nVmRSS:\t1 kB\nThreads:\t1\n",
	} {
		if _, err := parseStatus(strings.NewReader(text)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestProcSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	st, err := readStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.RSS <= 0 || st.HWM < st.RSS || st.Threads < 1 {
		t.Errorf("own status %+v", st)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	open, err := countFDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	closed, err := countFDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if closed < 3 || open != closed+1 {
		t.Errorf("descriptors: %d with one more file open, %d after closing it", open, closed)
	}
}

const metricsText = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 37
# HELP hegate_http_requests_total Requests.
# TYPE hegate_http_requests_total counter
hegate_http_requests_total{code="200",method="POST",route="/v2/models/{model}/infer"} 102
hegate_http_requests_total{code="503",method="POST",route="/v2/models/{model}/infer"} 7
hegate_http_requests_total{code="200",method="GET",route="/metrics"} 3 1733068800000

# TYPE hegate_evaluation_seconds histogram
hegate_evaluation_seconds_bucket{model="mnist-cryptonets",le="0.5"} 90
hegate_evaluation_seconds_bucket{model="mnist-cryptonets",le="+Inf"} 102
hegate_evaluation_seconds_sum{model="mnist-cryptonets"} 41.6
hegate_evaluation_seconds_count{model="mnist-cryptonets"} 102
odd_labels{a="x, y}",b="say \"hi\"\\",c="line\nbreak"} +Inf
go_info{version="go1.26.8"} 1
`

func TestParseLoadAvg(t *testing.T) {
	if got := parseLoadAvg("2.52 1.58 0.59 3/123 4567\n"); got != 2.52 {
		t.Errorf("parseLoadAvg = %v, want 2.52", got)
	}
	if got := parseLoadAvg(""); got != -1 {
		t.Errorf("parseLoadAvg of nothing = %v, want -1", got)
	}
}

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(metricsText))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Series) != 10 || len(m.Points) != 10 {
		t.Errorf("%d series, %d points, want 10", len(m.Series), len(m.Points))
	}
	if g, ok := m.value("go_goroutines", nil); !ok || g != 37 {
		t.Errorf("go_goroutines = %g, %v", g, ok)
	}
	byCode := m.sum("hegate_http_requests_total", map[string]string{"method": "POST"}, "code")
	if len(byCode) != 2 || byCode["200"] != 102 || byCode["503"] != 7 {
		t.Errorf("POST requests by code %v", byCode)
	}
	if all := m.sum("hegate_http_requests_total", nil, ""); all[""] != 112 {
		t.Errorf("all requests %v", all)
	}
	if s, _ := m.value("hegate_evaluation_seconds_sum", map[string]string{"model": "mnist-cryptonets"}); s != 41.6 {
		t.Errorf("evaluation sum %g", s)
	}
	if _, ok := m.value("hegate_evaluation_seconds_sum", map[string]string{"model": "other"}); ok {
		t.Error("found a sample of another model")
	}
	var odd metricPoint
	for _, p := range m.Points {
		if p.Name == "odd_labels" {
			odd = p
		}
	}
	if odd.Labels["a"] != "x, y}" || odd.Labels["b"] != `say "hi"\` || odd.Labels["c"] != "line\nbreak" || !math.IsInf(odd.Value, 1) {
		t.Errorf("odd labels parsed as %q = %g", odd.Labels, odd.Value)
	}
	if !m.Series[`hegate_http_requests_total{code="200",method="GET",route="/metrics"}`] {
		t.Error("a sample with a timestamp is not its own series")
	}

	for _, bad := range []string{
		"no_value\n",
		`unterminated{a="x"` + "\n",
		`unquoted{a=x} 1` + "\n",
		`open_value{a="x} 1` + "\n",
		"name 1 2 3\n",
		"name one\n",
	} {
		if _, err := parseMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestSeriesDiff(t *testing.T) {
	a := map[string]bool{"x": true, "y": true}
	b := map[string]bool{"y": true, "z": true, "w": true}
	added, gone := seriesDiff(a, b)
	if !slices.Equal(added, []string{"w", "z"}) || !slices.Equal(gone, []string{"x"}) {
		t.Errorf("seriesDiff = %v, %v", added, gone)
	}
	if added, gone := seriesDiff(nil, nil); added != nil || gone != nil {
		t.Error("empty sets differ")
	}
}

func TestClassify(t *testing.T) {
	problem := func(status int, typ, reason string) error {
		return fmt.Errorf("client: wrapped: %w", &client.Error{StatusCode: status, Problem: api.Problem{Type: typ, Reason: reason}})
	}
	for _, c := range []struct {
		err     error
		out     string
		refused bool
		kind    string
	}{
		{nil, "200", false, kindOK},
		{problem(429, api.ProblemRateLimited, api.ReasonRateInfer), "429 rate-infer", true, kindRefused},
		{problem(429, api.ProblemQuotaExceeded, api.ReasonQuotaActiveJobs), "429 quota-active-jobs", true, kindRefused},
		{problem(503, api.ProblemUnavailable, api.ReasonConcurrencyTenant), "503 concurrency-tenant", true, kindRefused},
		{problem(503, api.ProblemUnavailable, api.ReasonConcurrencyProcess), "503 concurrency-process", true, kindRefused},
		{problem(403, api.ProblemQuotaExceeded, api.ReasonQuotaBlobs), "403 quota-blobs", false, kindRefused},
		{problem(503, api.ProblemUnavailable, ""), "503 unavailable", true, kindDeadline},
		{problem(500, api.ProblemInternal, ""), "500 internal", false, kindFailure},
		{problem(403, api.ProblemBudgetExhausted, ""), "403 budget-exhausted", false, kindFailure},
		{problem(409, api.ProblemConflict, ""), "409 conflict", false, kindFailure},
		{&client.Error{StatusCode: 502}, "502", false, kindFailure},
		{fmt.Errorf("client: POST /v2: %w", io.ErrUnexpectedEOF), outTransport, false, kindFailure},
		{fmt.Errorf("client: %w", errors.Join(errors.New("x"), contextCanceled())), outAbandoned, false, kindFailure},
	} {
		out, refused := classify(c.err)
		if out != c.out || refused != c.refused {
			t.Errorf("classify(%v) = %q, %v; want %q, %v", c.err, out, refused, c.out, c.refused)
		}
		if out != outAbandoned {
			if k := kindOf(out); k != c.kind {
				t.Errorf("kindOf(%q) = %q, want %q", out, k, c.kind)
			}
		}
	}
	if kindOf(outDecryptFailed) != kindFailure {
		t.Error("a result that does not decrypt is not a failure")
	}
}

func contextCanceled() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx.Err()
}

func TestParseAPIKey(t *testing.T) {
	k, err := parseAPIKey("tenant  acme (ten_x)\napi key hgk_abc-DEF_123 (admin)\n")
	if err != nil || k != "hgk_abc-DEF_123" {
		t.Errorf("parseAPIKey = %q, %v", k, err)
	}
	if _, err := parseAPIKey("api key shown once\n"); err == nil {
		t.Error("no key: no error")
	}
}

func TestPhases(t *testing.T) {
	// The flag's default comes from the environment, which CI sets.
	t.Setenv("HEGATE_TEST_DATABASE_URL", "")
	cfg, err := parseFlags([]string{"-database-url", "postgres://x/y", "-scenario", "flood", "-tenants", "3", "-devices", "9"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.duration != 5*time.Minute || cfg.baseline != 5*time.Minute || cfg.warmup != 30*time.Second || cfg.sample != 10*time.Second {
		t.Errorf("flood defaults: %+v", cfg)
	}
	ps := phases(cfg)
	var names []string
	for _, p := range ps {
		names = append(names, p.name+"="+modesText(p.modes))
	}
	want := []string{"warm-up=A idle, B paced, C paced", "B alone=A idle, B paced, C paced", "A ramping=A flood, B paced, C paced", "A flooding=A flood, B paced, C paced"}
	if !slices.Equal(names, want) {
		t.Errorf("flood phases %q, want %q", names, want)
	}
	if !ps[1].measured || ps[2].measured || !ps[3].measured || ps[0].measured {
		t.Error("flood: wrong phases measured")
	}
	// B's 3 devices offer -b-rate (1.4/s) together; A floods.
	if got, want := pacedThink(cfg, 1, 3), time.Duration(float64(3)/cfg.bRate*float64(time.Second)); got != want || pacedThink(cfg, 0, 3) != cfg.think {
		t.Errorf("flood think: B %v (want %v), A %v", got, want, pacedThink(cfg, 0, 3))
	}
	if cfg.bRate = 0; pacedThink(cfg, 1, 3) != cfg.think {
		t.Error("-b-rate 0: B does not think -think")
	}

	cfg, err = parseFlags([]string{"-database-url", "postgres://x/y", "-scenario", "soak", "-warmup", "0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.duration != 25*time.Minute || cfg.sample != 30*time.Second {
		t.Errorf("soak defaults: %+v", cfg)
	}
	if ps := phases(cfg); len(ps) != 1 || ps[0].name != "soak" {
		t.Errorf("a zero warm-up is still a phase: %v", ps)
	}

	for _, args := range [][]string{
		{"-scenario", "steady"}, // no database
		{"-database-url", "x.db"},
		{"-database-url", "postgres://x/y", "-scenario", "burst"},
		{"-database-url", "postgres://x/y", "-scenario", "flood", "-tenants", "1"},
		{"-database-url", "postgres://x/y", "-devices", "1"},
		{"-database-url", "postgres://x/y", "-duration", "-1s"},
		{"-database-url", "postgres://x/y", "extra"},
		{"-database-url", "postgres://x/y", "-scenario", "flood", "-b-rate", "-1"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q): no error", args)
		}
	}
}

func TestParallel(t *testing.T) {
	var n atomic.Int64
	if err := parallel(100, 7, func(i int) error { n.Add(int64(i)); return nil }); err != nil || n.Load() != 4950 {
		t.Errorf("parallel: %v, sum %d", err, n.Load())
	}
	boom := errors.New("boom")
	if err := parallel(100, 3, func(i int) error {
		if i == 10 {
			return boom
		}
		return nil
	}); err != boom {
		t.Errorf("parallel error = %v", err)
	}
}

func TestTenantPhase(t *testing.T) {
	cells := map[string][]time.Duration{
		"200":                    {time.Second, 3 * time.Second},
		"503 concurrency-tenant": {time.Millisecond, time.Millisecond, time.Millisecond},
		"503 unavailable":        {15 * time.Second},
		"500 internal":           {time.Millisecond},
	}
	tp := tenantPhase("B", paced, cells, 2)
	if tp.Requests != 7 || tp.OK != 2 || tp.Refused != 3 || tp.Other503 != 1 || tp.Failures != 1 {
		t.Errorf("counts %+v", tp)
	}
	if tp.RequestsPerSec != 3.5 || tp.OKPerSec != 1 || tp.Latency.P50 != 1000 || tp.Latency.Max != 3000 {
		t.Errorf("rates and latency %+v", tp)
	}
}

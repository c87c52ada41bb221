package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/storage"
)

// Tests of what an unauthenticated, hostile client can make the gateway
// spend: metric series, log bytes, header bytes, and time on a body.

// lockedBuffer is a log sink safe for concurrent handlers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

// randomToken is n random upper-case letters: a valid HTTP method.
func randomToken(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('A' + r.IntN(26))
	}
	return string(b)
}

// metricSeries counts the hegate_http_* samples of /metrics, and returns
// the size of the whole page.
func metricSeries(t *testing.T, bd *bundle) (series, size int) {
	t.Helper()
	resp := bd.call(t, http.MethodGet, "/metrics", "", nil, nil)
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: status %d, %v", resp.StatusCode, err)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(line, "hegate_http_") {
			series++
		}
	}
	return series, len(body)
}

// TestMetricsLabelsBounded: requests with made-up methods and paths, from
// a client without a key, do not add metric series: methods other than the
// standard ones count as "other", and paths by their route pattern (one
// "unmatched" for all that match none).
func TestMetricsLabelsBounded(t *testing.T) {
	t.Parallel()
	// Without rate limits: they would refuse most of the traffic (and
	// /metrics) from one address; the labels must stay bounded without.
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) { c.RateLimits.Disabled = true }))
	r := rand.New(rand.NewPCG(1, 2))
	paths := []func() string{
		func() string { return "/" + randomToken(r, 12) },
		func() string { return "/v1/jobs/" + randomToken(r, 12) },
		func() string { return "/v2/models/" + randomToken(r, 12) + "/infer" },
		func() string {
			return "/v2/models/" + randomToken(r, 8) + "/" + randomToken(r, 8) + "/" + randomToken(r, 8)
		},
	}
	methods := []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodHead, http.MethodOptions}
	send := func(n int) {
		for i := range n {
			method := methods[i%len(methods)]
			if i%2 == 0 {
				method = randomToken(r, 10)
			}
			resp := bd.call(t, method, paths[i%len(paths)](), "", nil, nil)
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	}
	send(200)
	before, beforeSize := metricSeries(t, bd)
	send(2000)
	after, afterSize := metricSeries(t, bd)
	t.Logf("hegate_http_* samples: %d after 200 requests, %d after 2,200 (/metrics %d -> %d bytes)", before, after, beforeSize, afterSize)
	// Every label set of the duration histogram is 17 samples; a handful
	// of routes, methods and codes is all the traffic may make.
	if after > before+60 || after > 1000 {
		t.Fatalf("%d hegate_http_* samples after 2,200 hostile requests (%d after 200): labels grow with the input", after, before)
	}
	if afterSize > 2*beforeSize {
		t.Fatalf("/metrics grew from %d to %d bytes", beforeSize, afterSize)
	}
}

// TestMetricLabelValues: the label values themselves.
func TestMetricLabelValues(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"GET": "GET", "POST": "POST", "DELETE": "DELETE", "PATCH": "PATCH", "HEAD": "HEAD",
		"OPTIONS": "OPTIONS", "PUT": "PUT", "CONNECT": "CONNECT", "TRACE": "TRACE",
		"get": "other", "PROPFIND": "other", strings.Repeat("X", 5000): "other", "": "other",
	} {
		if got := methodLabel(in); got != want {
			t.Errorf("methodLabel(%.20q) = %q, want %q", in, got, want)
		}
	}
}

// accessLine finds the access-log line of a request by its id.
func accessLine(t *testing.T, logs *lockedBuffer, id string) string {
	t.Helper()
	for _, line := range logs.lines() {
		var rec struct {
			Msg       string `json:"msg"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "http request" && rec.RequestID == id {
			return line
		}
	}
	t.Fatalf("no access log line for request %s", id)
	return ""
}

// TestAccessLogBounded: what the client controls in the request line (the
// method, the path) is logged truncated, so a request with a 1 MB path
// writes a log line of a bounded size, whatever it was answered.
func TestAccessLogBounded(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}))
	// httptest's server reads heads up to net/http's default of 1 MiB, so
	// this path reaches the handler (hegate serve refuses it sooner: see
	// cmd/hegate's TestServeHeaderLimits).
	long := "/v2/models/" + strings.Repeat("a", 1_000_000)
	tests := []struct {
		name, method, path string
	}{
		{"fail/long-path", http.MethodGet, long},
		{"fail/long-path-post", http.MethodPost, long + "/infer"},
		{"fail/long-method", strings.Repeat("M", 60_000), "/v2"},
		{"fail/invalid-utf8-path", http.MethodGet, "/" + strings.Repeat("%FF", 30_000)},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := "hostile-" + strconv.Itoa(i)
			resp := bd.call(t, tc.method, tc.path, "", nil, http.Header{api.HeaderRequestID: {id}})
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode < 400 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			line := accessLine(t, logs, id)
			t.Logf("status %d, access log line of %d bytes", resp.StatusCode, len(line))
			if len(line) > 2048 {
				t.Fatalf("access log line of %d bytes for a %d-byte request line: %.200s...", len(line), len(tc.method)+len(tc.path), line)
			}
		})
	}
	total := 0
	for _, line := range logs.lines() {
		total = max(total, len(line))
	}
	if total > 4096 {
		t.Fatalf("a log line of %d bytes", total)
	}
}

// TestHeaderLimits: a request whose header or request target exceeds the
// gateway's limits is answered 431 or 414 with a problem document, and its
// connection closed; one within them is served.
func TestHeaderLimits(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	tests := []struct {
		name   string
		path   string
		header http.Header
		status int
	}{
		{"ok/large-header", "/v2", http.Header{"X-Pad": {strings.Repeat("p", MaxHeaderBytes-4096)}}, http.StatusOK},
		{"ok/long-path", "/v2/models/" + strings.Repeat("m", MaxRequestTargetBytes-100), nil, http.StatusNotFound},
		{"fail/header", "/v2", http.Header{"X-Pad": {strings.Repeat("p", MaxHeaderBytes)}}, http.StatusRequestHeaderFieldsTooLarge},
		{"fail/many-headers", "/v2/health/live", func() http.Header {
			h := http.Header{}
			for i := range 2000 {
				h.Set("X-H"+strconv.Itoa(i), strings.Repeat("v", 30))
			}
			return h
		}(), http.StatusRequestHeaderFieldsTooLarge},
		{"fail/path", "/v2/models/" + strings.Repeat("m", MaxRequestTargetBytes), nil, http.StatusRequestURITooLong},
		{"fail/query", "/v1/jobs?x=" + strings.Repeat("q", MaxRequestTargetBytes), nil, http.StatusRequestURITooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := bd.call(t, http.MethodGet, tc.path, "", nil, tc.header)
			if tc.status < 400 || tc.status == http.StatusNotFound {
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tc.status, body)
				}
				return
			}
			p := wantProblem(t, resp, tc.status, "")
			if len(p.Instance) > 300 || len(p.Detail) > 300 {
				t.Errorf("problem echoes the input: instance of %d bytes, detail of %d", len(p.Instance), len(p.Detail))
			}
			if !resp.Close {
				t.Error("no Connection: close")
			}
		})
	}
}

// trickle sends head and then body one byte every pause over one TCP
// connection, until the server answers or the writes fail, and returns the
// answer and how long it took. It fails the test if none comes within wait.
func trickle(t *testing.T, addr, head string, body []byte, pause, wait time.Duration) (*http.Response, []byte, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := io.WriteString(conn, head+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := range body {
			select {
			case <-stop:
				return
			case <-time.After(pause):
			}
			if _, err := conn.Write(body[i : i+1]); err != nil {
				return
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", wait, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b, time.Since(start)
}

// TestBodyMinRate: a body that keeps trickling in, never idle for
// BodyIdleTimeout but slower than BodyMinRate once BodyRateGrace has
// passed, is refused with a 400 problem and its connection closed, on an
// upload route and on inference; a body at a good rate goes through.
func TestBodyMinRate(t *testing.T) {
	t.Parallel()
	const (
		idle  = 2 * time.Second
		rate  = 200 // bytes/s
		grace = 500 * time.Millisecond
		pause = 50 * time.Millisecond // 20 bytes/s: never idle, far too slow
	)
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) {
		c.BodyIdleTimeout, c.BodyMinRate, c.BodyRateGrace = idle, rate, grace
		c.RateLimits.Disabled = true // four uploads at once
	}))
	addr := bd.ts.Listener.Addr().String()
	auth := "Authorization: Bearer " + bd.a.secret
	tests := []struct {
		name string
		head string
		body []byte
	}{
		{"fail/keys", "POST /v1/keys?model=tiny HTTP/1.1\r\nHost: hegate\r\n" + auth + "\r\nContent-Length: " + strconv.Itoa(len(bd.a.keys)), bd.a.keys},
		{"fail/keys-chunked", "POST /v1/keys?model=tiny HTTP/1.1\r\nHost: hegate\r\n" + auth + "\r\nTransfer-Encoding: chunked",
			fmt.Appendf(nil, "%x\r\n%s\r\n", 4000, bd.a.keys[:4000])},
		{"fail/infer", "POST /v2/models/tiny/infer HTTP/1.1\r\nHost: hegate\r\n" + auth + "\r\nContent-Type: application/json\r\nContent-Length: 5000",
			[]byte(`{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":["` + strings.Repeat("A", 4900) + `"]}]}`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body, took := trickle(t, addr, tc.head, tc.body, pause, 10*time.Second)
			t.Logf("answered %d after %s", resp.StatusCode, took.Round(time.Millisecond))
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != api.ContentTypeProblem ||
				!bytes.Contains(body, []byte("too slowly")) {
				t.Fatalf("status %d %s: %s; want 400 naming the rate", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if !resp.Close {
				t.Error("no Connection: close")
			}
			// Refused once the bytes fall behind grace + n/rate: about
			// 0.7 s here, well before the body would have ended.
			if took > 3*time.Second {
				t.Errorf("answered after %s", took)
			}
		})
	}
	t.Run("ok/fast-enough", func(t *testing.T) {
		t.Parallel()
		// 4 pieces, 300 ms apart: well above the rate on average, though
		// the grace passes during the upload.
		keys := bd.b.keys
		var pieces [][]byte
		step := (len(keys) + 3) / 4
		for off := 0; off < len(keys); off += step {
			pieces = append(pieces, keys[off:min(off+step, len(keys))])
		}
		resp, body := rawRequest(t, addr, "POST /v1/keys?model=tiny HTTP/1.1\r\nHost: hegate\r\nAuthorization: Bearer "+bd.b.secret+
			"\r\nContent-Length: "+strconv.Itoa(len(keys)), 300*time.Millisecond, 10*time.Second, pieces...)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
}

// TestBodyRateConfig: the rate's settings default, and validate.
func TestBodyRateConfig(t *testing.T) {
	t.Parallel()
	c := Config{}.withDefaults()
	if c.BodyMinRate != DefaultBodyMinRate || c.BodyRateGrace != DefaultBodyRateGrace {
		t.Fatalf("defaults %d, %s", c.BodyMinRate, c.BodyRateGrace)
	}
	if c := (Config{BodyMinRate: -1}).withDefaults(); c.BodyMinRate != -1 {
		t.Fatalf("a negative BodyMinRate (off) became %d", c.BodyMinRate)
	}
	br := bodyRate{min: -1}
	if !br.due(time.Now()).IsZero() {
		t.Fatal("no minimum rate still sets a deadline")
	}
	start := time.Now()
	br = bodyRate{min: 1000, grace: time.Second, n: 500}
	if got := br.due(start); got.Sub(start) != 1500*time.Millisecond {
		t.Fatalf("due after %s, want 1.5s", got.Sub(start))
	}
	br = bodyRate{min: 1, grace: time.Second, n: 1 << 62}
	if !br.due(start).IsZero() {
		t.Fatal("an overflowing deadline")
	}
	type store struct{ storage.Store }
	type blobs struct{ storage.Blobs }
	err := Config{Store: store{}, Blobs: blobs{}, BodyRateGrace: -time.Second}.Validate()
	if err == nil || !strings.Contains(err.Error(), "BodyRateGrace") {
		t.Fatalf("Validate: %v", err)
	}
}

package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
)

// withoutLimits turns off the rate limits, the admission caps and the
// quotas, for tests that load the gateway on purpose. It keeps an earlier
// withConfig.
func withoutLimits() setupOption {
	return func(o *setupOptions) {
		prev := o.cfg
		o.cfg = func(c *Config) {
			if prev != nil {
				prev(c)
			}
			c.RateLimits.Disabled = true
			c.Concurrency = Concurrency{InferPerTenant: -1, InferPerProcess: -1, UploadPerTenant: -1, UploadPerProcess: -1}
			c.Quota = Quota{KeySets: -1, KeySetBytes: -1, Blobs: -1, BlobBytes: -1, ActiveJobs: -1}
		}
	}
}

// perHour is a rate so slow that no token comes back during a test.
const perHour = 1.0 / 3600

// sfMember is one member of a structured-field List (RFC 9651): its bare
// item and its parameters.
type sfMember struct {
	item   string
	params map[string]string
}

var (
	sfKey     = `[a-z*][a-z0-9_.*-]*`
	sfBare    = `"(?:[^"\\]|\\.)*"|-?[0-9]{1,15}(?:\.[0-9]{1,3})?|[A-Za-z*][A-Za-z0-9:/!#$%&'*+.^_` + "`" + `|~-]*|:[A-Za-z0-9+/=]*:|\?[01]`
	sfParam   = regexp.MustCompile(`^;\s*(` + sfKey + `)(?:=(` + sfBare + `))?`)
	sfItemRex = regexp.MustCompile(`^(` + sfBare + `)`)
)

// parseSFList parses a List of Items with parameters strictly, failing t
// on anything the grammar does not allow.
func parseSFList(t *testing.T, field, s string) []sfMember {
	t.Helper()
	var out []sfMember
	rest := strings.TrimLeft(s, " ")
	for {
		m := sfItemRex.FindStringSubmatch(rest)
		if m == nil {
			t.Fatalf("%s %q: no item at %q", field, s, rest)
		}
		mem := sfMember{item: m[1], params: map[string]string{}}
		rest = rest[len(m[0]):]
		for strings.HasPrefix(rest, ";") {
			p := sfParam.FindStringSubmatch(rest)
			if p == nil {
				t.Fatalf("%s %q: bad parameter at %q", field, s, rest)
			}
			mem.params[p[1]] = p[2]
			rest = rest[len(p[0]):]
		}
		out = append(out, mem)
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			return out
		}
		if !strings.HasPrefix(rest, ",") {
			t.Fatalf("%s %q: want , at %q", field, s, rest)
		}
		rest = strings.TrimLeft(rest[1:], " \t")
		if rest == "" {
			t.Fatalf("%s %q: trailing comma", field, s)
		}
	}
}

// rateState is a policy of RateLimit-Policy with its RateLimit state.
type rateState struct {
	q, w, r, t int64
	unit       string
}

// rateHeaders parses RateLimit-Policy and RateLimit, checking that every
// policy has a state and the draft's required parameters are integers.
func rateHeaders(t *testing.T, h http.Header) map[string]rateState {
	t.Helper()
	pol, cur := h.Get(api.HeaderRateLimitPolicy), h.Get(api.HeaderRateLimit)
	if pol == "" || cur == "" {
		t.Fatalf("RateLimit-Policy %q, RateLimit %q: want both", pol, cur)
	}
	num := func(field, name, v string, required bool) int64 {
		t.Helper()
		if v == "" && !required {
			return -1
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			t.Fatalf("%s: %s=%q is not a non-negative integer", field, name, v)
		}
		return n
	}
	out := map[string]rateState{}
	for _, m := range parseSFList(t, "RateLimit-Policy", pol) {
		name, err := strconv.Unquote(m.item)
		if err != nil {
			t.Fatalf("RateLimit-Policy: policy %s is not a String", m.item)
		}
		st := rateState{q: num("RateLimit-Policy", "q", m.params["q"], true), w: num("RateLimit-Policy", "w", m.params["w"], false)}
		if u := m.params["qu"]; u != "" {
			st.unit, _ = strconv.Unquote(u)
		}
		if st.w == 0 {
			t.Fatalf("RateLimit-Policy %q: w must not be 0", pol)
		}
		out[name] = st
	}
	for _, m := range parseSFList(t, "RateLimit", cur) {
		name, err := strconv.Unquote(m.item)
		if err != nil {
			t.Fatalf("RateLimit: policy %s is not a String", m.item)
		}
		st, ok := out[name]
		if !ok {
			t.Fatalf("RateLimit names %q, which RateLimit-Policy %q does not", name, pol)
		}
		st.r = num("RateLimit", "r", m.params["r"], true)
		st.t = num("RateLimit", "t", m.params["t"], false)
		out[name] = st
	}
	return out
}

// wantRetryAfter reads a Retry-After of delay-seconds, at least 1.
func wantRetryAfter(t *testing.T, resp *http.Response) int {
	t.Helper()
	v := resp.Header.Get("Retry-After")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s %s answered %d with Retry-After %q: want seconds >= 1", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, v)
	}
	return n
}

// uploadRaw posts a key set with key.
func (bd *bundle) uploadRaw(t *testing.T, key string, keys []byte) *http.Response {
	t.Helper()
	return bd.call(t, http.MethodPost, "/v1/keys?model=tiny", key, bytes.NewReader(keys), http.Header{"Content-Type": {api.ContentTypeKeySet}})
}

// TestRateLimitHeaders: every authenticated answer carries RateLimit-Policy
// and RateLimit in the draft's syntax, with the policy of its route (and
// the tenant's concurrency cap on inferences and uploads); r counts down.
// Unauthenticated answers carry the anonymous policy.
func TestRateLimitHeaders(t *testing.T) {
	t.Parallel()
	// A default policy that refills too slowly for a token to come back
	// between the requests; the others are the defaults.
	d := RateLimit{PerSecond: 0.5, Burst: 200}
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) { c.RateLimits.Default = d }))
	var last int64 = -1
	for i := range 3 {
		resp := bd.call(t, http.MethodGet, "/v1/keys", bd.a.secret, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/keys: %d", resp.StatusCode)
		}
		st := rateHeaders(t, resp.Header)["default"]
		if st.q != int64(d.Burst) || st.w != 400 || st.t < 1 {
			t.Fatalf("default policy q=%d w=%d t=%d, want q=%d w=400 t>=1", st.q, st.w, st.t, d.Burst)
		}
		if st.r >= int64(d.Burst) || (last >= 0 && st.r >= last) {
			t.Fatalf("request %d: r=%d after r=%d: want it to count down from %d", i, st.r, last, d.Burst)
		}
		last = st.r
	}
	// A refusal of an authenticated request carries them too.
	resp := bd.call(t, http.MethodGet, "/v1/keys/nothex", bd.a.secret, nil, nil)
	wantProblem(t, resp, http.StatusBadRequest, "")
	rateHeaders(t, resp.Header)

	// An upload: the upload policy and the tenant's concurrency cap.
	resp = bd.uploadRaw(t, bd.a.secret, bd.a.keys)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	states := rateHeaders(t, resp.Header)
	if st := states["upload"]; st.q != int64(DefaultRateLimits.Upload.Burst) || st.r != st.q-1 || st.t < 1 {
		t.Fatalf("upload policy %+v: want q=%d, r=q-1, t>=1", st, DefaultRateLimits.Upload.Burst)
	}
	if st := states["upload-concurrency"]; st.unit != "concurrent-requests" || st.q != DefaultUploadPerTenant || st.r != DefaultUploadPerTenant-1 {
		t.Fatalf("upload-concurrency policy %+v: want q=%d r=%d in concurrent-requests", st, DefaultUploadPerTenant, DefaultUploadPerTenant-1)
	}
	if _, ok := states["default"]; ok {
		t.Fatal("an upload is also counted in the default policy")
	}

	// An inference.
	var ks api.KeySet
	if err := json.NewDecoder(resp.Body).Decode(&ks); err != nil {
		t.Fatal(err)
	}
	_, ct := bd.input(t, bd.a, 1)
	body, hdr := binaryInfer(t, ks.ID, ct, "")
	hdr.Set("Prefer", "respond-async")
	resp = bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(body), hdr)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("infer: %d", resp.StatusCode)
	}
	states = rateHeaders(t, resp.Header)
	if st := states["infer"]; st.q != int64(DefaultRateLimits.Infer.Burst) || st.r != st.q-1 {
		t.Fatalf("infer policy %+v", st)
	}
	if st := states["infer-concurrency"]; st.q != DefaultInferPerTenant {
		t.Fatalf("infer-concurrency policy %+v", st)
	}

	// Anonymous requests: the client address's policy.
	resp = bd.call(t, http.MethodGet, "/v2/models", "", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/models: %d", resp.StatusCode)
	}
	if st := rateHeaders(t, resp.Header)["anonymous"]; st.q != int64(DefaultRateLimits.Anonymous.Burst) {
		t.Fatalf("anonymous policy %+v", st)
	}
	// With a key, the same public route is the principal's.
	resp = bd.call(t, http.MethodGet, "/v2/models", bd.a.secret, nil, nil)
	if _, ok := rateHeaders(t, resp.Header)["default"]; !ok {
		t.Fatal("GET /v2/models with a key: no default policy")
	}
}

// TestRateLimitUploadBurst reproduces "10 key sets uploaded in 7 s": with
// an upload policy of 4 at once, a burst of 10 uploads from one key gets 4
// through and 6 answered 429 rate-limited, with Retry-After, the headers
// at r=0, and nothing stored. Another tenant's uploads are not affected.
func TestRateLimitUploadBurst(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) {
		c.RateLimits.Upload = RateLimit{PerSecond: perHour, Burst: 4}
	}))
	variants := keySetVariants(t, bd.a.keys, 10)
	blobs := bd.blobFiles(t)
	var ok, refused int
	for i, ks := range variants {
		resp := bd.uploadRaw(t, bd.a.secret, ks)
		switch resp.StatusCode {
		case http.StatusCreated:
			ok++
		case http.StatusTooManyRequests:
			refused++
			p := wantProblem(t, resp, http.StatusTooManyRequests, `rate limit "upload"`)
			if p.Type != api.ProblemRateLimited || p.Reason != api.ReasonRateUpload {
				t.Fatalf("upload %d: problem %+v", i, p)
			}
			if s := wantRetryAfter(t, resp); s < 3000 {
				t.Fatalf("Retry-After %d s; one token of a per-hour rate takes about 3600", s)
			}
			if st := rateHeaders(t, resp.Header)["upload"]; st.r != 0 || st.q != 4 {
				t.Fatalf("refused upload's state %+v: want r=0 of q=4", st)
			}
		default:
			t.Fatalf("upload %d: status %d", i, resp.StatusCode)
		}
	}
	if ok != 4 || refused != 6 {
		t.Fatalf("%d uploads accepted, %d refused: want 4 and 6", ok, refused)
	}
	if got := bd.blobFiles(t); got != blobs+4 {
		t.Fatalf("blob files %d -> %d: want 4 new ones, the refused uploads stored nothing", blobs, got)
	}
	// Tenant B has its own buckets.
	for i := range 4 {
		if resp := bd.uploadRaw(t, bd.b.secret, bd.b.keys); resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			t.Fatalf("tenant B upload %d: %d", i, resp.StatusCode)
		}
	}
	// Reads use another policy: tenant A still lists its key sets.
	if list, err := bd.a.client.KeySets(bd.ctx); err != nil || len(list) != 4 {
		t.Fatalf("tenant A's key sets: %d, %v", len(list), err)
	}
}

// enrollDevice enrolls a native device for tenant A and returns its client.
func enrollDevice(t *testing.T, bd *bundle) *client.Client {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ev := nativeDevice(key, []byte("app-v1"))
	endorse(t, bd.ctx, bd.a.client, ev)
	_, cred, err := bd.a.client.Enroll(bd.ctx, ev, key)
	if err != nil {
		t.Fatalf("enrolling: %v", err)
	}
	return bd.deviceClient(t, cred)
}

// wantStatus checks err is a gateway answer with status and reason.
func wantRefusal(t *testing.T, what string, err error, status int, reason string) {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) || ce.StatusCode != status || ce.Problem.Reason != reason {
		t.Fatalf("%s: %v, want %d with reason %s", what, err, status, reason)
	}
}

// TestRateLimitPerDevice: a device's requests have their own buckets,
// apart from the API key that enrolled it (and from other tenants): the key
// exhausting its default policy leaves the device's untouched, and the
// reverse.
func TestRateLimitPerDevice(t *testing.T) {
	t.Parallel()
	const burst = 6
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) {
		c.RateLimits.Default = RateLimit{PerSecond: perHour, Burst: burst}
	}))
	dev := enrollDevice(t, bd) // two attestation documents: 2 default requests of the key
	exhaust := func(who string, c *client.Client) {
		t.Helper()
		for i := range burst + 1 {
			_, err := c.KeySets(bd.ctx)
			if err == nil {
				continue
			}
			wantRefusal(t, who, err, http.StatusTooManyRequests, api.ReasonRateDefault)
			if i == 0 {
				t.Fatalf("%s refused at once", who)
			}
			return
		}
		t.Fatalf("%s: %d reads allowed with a burst of %d", who, burst+1, burst)
	}
	exhaust("API key", bd.a.client)
	if _, err := bd.a.client.KeySets(bd.ctx); err == nil {
		t.Fatal("the exhausted key is allowed again")
	}
	// The device of the same tenant is not limited by its key...
	for i := range burst {
		if _, err := dev.KeySets(bd.ctx); err != nil {
			t.Fatalf("device read %d after its key was limited: %v", i, err)
		}
	}
	if _, err := dev.KeySets(bd.ctx); client.StatusOf(err) != http.StatusTooManyRequests {
		t.Fatalf("device read %d: %v, want 429", burst+1, err)
	}
	// ...nor tenant B by tenant A.
	if _, err := bd.b.client.KeySets(bd.ctx); err != nil {
		t.Fatalf("tenant B: %v", err)
	}
	// Stricter routes have their own buckets: the limited key still
	// uploads.
	if _, err := bd.a.client.UploadKeySet(bd.ctx, "tiny", bytes.NewReader(bd.a.keys), int64(len(bd.a.keys))); err != nil {
		t.Fatalf("upload after the default policy was exhausted: %v", err)
	}
}

// TestRateLimitAnonymous: requests without credentials are limited per
// client address, and so are failed authentications, which past the limit
// are refused before their key is looked up. A valid key is not limited by
// the anonymous requests of its address.
func TestRateLimitAnonymous(t *testing.T) {
	t.Parallel()
	const burst = 3
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) {
		c.RateLimits.Anonymous = RateLimit{PerSecond: perHour, Burst: burst}
		c.ClientIPHeader = "X-Forwarded-For"
	}))
	from := func(addr string) http.Header { return http.Header{"X-Forwarded-For": {"203.0.113.9, " + addr}} }
	for range burst {
		if resp := bd.call(t, http.MethodGet, "/v2/health/live", "", nil, from("198.51.100.1")); resp.StatusCode != http.StatusOK {
			t.Fatalf("anonymous request: %d", resp.StatusCode)
		}
	}
	resp := bd.call(t, http.MethodGet, "/v2/health/live", "", nil, from("198.51.100.1"))
	p := wantProblem(t, resp, http.StatusTooManyRequests, `rate limit "anonymous"`)
	if p.Reason != api.ReasonRateAnonymous || p.Error == "" {
		t.Fatalf("problem %+v: want reason %s and the OIP error member", p, api.ReasonRateAnonymous)
	}
	wantRetryAfter(t, resp)
	if st := rateHeaders(t, resp.Header)["anonymous"]; st.r != 0 {
		t.Fatalf("anonymous state %+v", st)
	}
	// Another address (the last of X-Forwarded-For counts), and the IPv6
	// /64 as one address.
	if resp := bd.call(t, http.MethodGet, "/v2/health/live", "", nil, from("198.51.100.2")); resp.StatusCode != http.StatusOK {
		t.Fatalf("another address: %d", resp.StatusCode)
	}
	for i := range burst + 1 {
		resp := bd.call(t, http.MethodGet, "/v2/health/live", "", nil, from(fmt.Sprintf("2001:db8:1:2::%x", i+1)))
		if want := http.StatusOK; i == burst {
			wantProblem(t, resp, http.StatusTooManyRequests, "")
		} else if resp.StatusCode != want {
			t.Fatalf("IPv6 request %d: %d", i, resp.StatusCode)
		}
	}
	// A valid key from the limited address: its own policy.
	if resp := bd.call(t, http.MethodGet, "/v1/keys", bd.a.secret, nil, from("198.51.100.1")); resp.StatusCode != http.StatusOK {
		t.Fatalf("valid key from a limited address: %d", resp.StatusCode)
	}
	// A valid key used from the address before it is locked out.
	if resp := bd.call(t, http.MethodGet, "/v1/keys", bd.a.secret, nil, from("198.51.100.3")); resp.StatusCode != http.StatusOK {
		t.Fatalf("valid key before the lockout: %d", resp.StatusCode)
	}
	// Bad keys: 401 until the address's failures use up the bucket, then
	// 429 without looking the key up, for any key from that address that
	// did not authenticate from it lately.
	bad := "hgk_" + strings.Repeat("A", 43)
	for i := range burst {
		resp := bd.call(t, http.MethodGet, "/v1/keys", bad, nil, from("198.51.100.3"))
		wantProblem(t, resp, http.StatusUnauthorized, "")
		if i == 0 && resp.Header.Get(api.HeaderRateLimit) != "" {
			t.Fatal("a 401 carries the principal's RateLimit header")
		}
	}
	resp = bd.call(t, http.MethodGet, "/v1/keys", bad, nil, from("198.51.100.3"))
	if p := wantProblem(t, resp, http.StatusTooManyRequests, ""); p.Reason != api.ReasonRateFailedAuth {
		t.Fatalf("bad key past the limit: %+v", p)
	}
	resp = bd.call(t, http.MethodGet, "/v1/keys", bd.b.secret, nil, from("198.51.100.3"))
	wantProblem(t, resp, http.StatusTooManyRequests, "")
	// The key that authenticated from there lately is not locked out: one
	// client guessing behind a NAT does not stop its neighbours.
	if resp := bd.call(t, http.MethodGet, "/v1/keys", bd.a.secret, nil, from("198.51.100.3")); resp.StatusCode != http.StatusOK {
		t.Fatalf("known valid key during the lockout: %d", resp.StatusCode)
	}
	// The address's anonymous requests have their own bucket.
	if resp := bd.call(t, http.MethodGet, "/v2/health/live", "", nil, from("198.51.100.3")); resp.StatusCode != http.StatusOK {
		t.Fatalf("anonymous request from the address of the bad keys: %d", resp.StatusCode)
	}
}

// TestRateLimitsDisabled: with RateLimits.Disabled no policy applies and
// no header is sent.
func TestRateLimitsDisabled(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) {
		c.RateLimits = RateLimits{Disabled: true, Default: RateLimit{PerSecond: perHour, Burst: 1}}
	}))
	for range 5 {
		resp := bd.call(t, http.MethodGet, "/v1/keys", bd.a.secret, nil, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get(api.HeaderRateLimit) != "" {
			t.Fatalf("status %d, RateLimit %q", resp.StatusCode, resp.Header.Get(api.HeaderRateLimit))
		}
	}
}

// TestRateLimitConfig: bad rates are refused by New, naming the field.
func TestRateLimitConfig(t *testing.T) {
	t.Parallel()
	for _, l := range []RateLimit{{PerSecond: 1, Burst: -1}} {
		err := (Config{RateLimits: RateLimits{Infer: l}}).RateLimits.withDefaults().validate()
		if err == nil || !strings.Contains(err.Error(), "RateLimits.Infer") {
			t.Errorf("%+v: %v", l, err)
		}
	}
	if err := (RateLimits{}).withDefaults().validate(); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, for at most ten seconds: a state the
// test waits to set up, not an outcome it asserts on.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waited 10 s for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// heldUpload starts an upload of keys by key whose body stops after a few
// bytes, so that it holds an admission slot; the returned function sends
// the rest and returns the answer's status.
func heldUpload(t *testing.T, bd *bundle, key string, keys []byte) func() int {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(bd.ctx, http.MethodPost, bd.ts.URL+"/v1/keys?model=tiny", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(keys))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", api.ContentTypeKeySet)
	done := make(chan int, 1)
	go func() {
		resp, err := bd.ts.Client().Do(req)
		if err != nil {
			done <- -1
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	if _, err := pw.Write(keys[:16]); err != nil {
		t.Fatal(err)
	}
	return func() int {
		_, _ = pw.Write(keys[16:])
		_ = pw.Close()
		return <-done
	}
}

// TestAdmissionControl: with one upload per tenant and two per process, a
// second upload of a tenant while its first is in progress answers 503
// concurrency-tenant with Retry-After, at once; another tenant's upload
// goes through; once the process holds two, a third tenant gets 503
// concurrency-process. Slots come back when the uploads end.
func TestAdmissionControl(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) {
		c.Concurrency = Concurrency{UploadPerTenant: 1, UploadPerProcess: 2}
	}))
	a, b := tenantOf(t, bd, "tenant-a"), tenantOf(t, bd, "tenant-b")
	uploads := bd.srv.limits.uploads
	finishA := heldUpload(t, bd, bd.a.secret, bd.a.keys)
	waitFor(t, "tenant A's upload to be admitted", func() bool { return uploads.inUse(a) == 1 })

	resp := bd.uploadRaw(t, bd.a.secret, bd.a.keys)
	p := wantProblem(t, resp, http.StatusServiceUnavailable, "in progress")
	if p.Reason != api.ReasonConcurrencyTenant || p.Type != api.ProblemUnavailable {
		t.Fatalf("second upload of tenant A: %+v", p)
	}
	wantRetryAfter(t, resp)
	if st := rateHeaders(t, resp.Header)["upload-concurrency"]; st.r != 0 || st.q != 1 {
		t.Fatalf("upload-concurrency state %+v: want r=0 of 1", st)
	}

	finishB := heldUpload(t, bd, bd.b.secret, bd.b.keys)
	waitFor(t, "tenant B's upload to be admitted", func() bool { return uploads.inUse(b) == 1 })
	c := bd.newDevice(t, "tenant-c")
	resp = bd.uploadRaw(t, c.secret, c.keys)
	if p := wantProblem(t, resp, http.StatusServiceUnavailable, "this server"); p.Reason != api.ReasonConcurrencyProcess {
		t.Fatalf("tenant C while the process is full: %+v", p)
	}
	wantRetryAfter(t, resp)

	if s := finishA(); s != http.StatusCreated {
		t.Fatalf("tenant A's held upload: %d", s)
	}
	if s := finishB(); s != http.StatusCreated {
		t.Fatalf("tenant B's held upload: %d", s)
	}
	waitFor(t, "the slots to come back", func() bool { return uploads.total() == 0 })
	if resp := bd.uploadRaw(t, c.secret, c.keys); resp.StatusCode != http.StatusCreated {
		t.Fatalf("tenant C once the uploads ended: %d", resp.StatusCode)
	}
}

// TestAnonymousLimitWithAnyAuthorization: a request that carries an
// Authorization header of any value on a public route or an unmatched
// path is counted by the anonymous limit all the same (a header used to
// lift it); and looking at the failed-authentication bucket makes none.
func TestAnonymousLimitWithAnyAuthorization(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	burst := DefaultRateLimits.Anonymous.Burst
	for _, path := range []string{"/v2/health/live", "/nope"} {
		refused := 0
		for range burst + 20 {
			resp := bd.call(t, http.MethodGet, path, "", nil, http.Header{"Authorization": {"x"}})
			if resp.StatusCode == http.StatusTooManyRequests {
				refused++
			}
		}
		if refused == 0 {
			t.Fatalf("%s: %d requests with a bogus Authorization header, none refused", path, burst+20)
		}
	}
	pol := bd.srv.limits.failedAuth
	pol.peek("auth:203.0.113.9", time.Now())
	pol.mu.Lock()
	n := len(pol.buckets)
	_, made := pol.buckets["auth:203.0.113.9"]
	pol.mu.Unlock()
	if made || n > 1 {
		t.Fatalf("peek made a bucket (%d buckets)", n)
	}
}

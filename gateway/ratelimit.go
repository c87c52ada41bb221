package gateway

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
)

// RateLimit is a token bucket: Burst requests at once, refilled at
// PerSecond requests per second. In RateLimits a zero field takes the
// default's value; a negative PerSecond turns the policy off.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// RateLimits are the request rates the gateway allows, per principal (an
// API key or an enrolled device: each has its own buckets, so a device is
// not limited by the key that enrolled it, nor the key by its devices) and
// per client address for requests without a valid credential. They live
// in the process: with N replicas behind a load balancer a principal gets
// up to N times these rates.
type RateLimits struct {
	// Disabled turns every rate limit off (a proxy in front does it).
	Disabled bool
	// Default applies to every authenticated route without a stricter
	// policy below: reads, deletes, budgets, policies, devices.
	Default RateLimit
	// Infer applies to POST /v2/models/{model}[/versions/{version}]/infer.
	Infer RateLimit
	// Upload applies to POST /v1/keys (key sets) and POST /v1/models.
	Upload RateLimit
	// Enroll applies to POST /v1/enroll/challenge and POST /v1/enroll.
	Enroll RateLimit
	// Anonymous applies per client address (IPv4 address, IPv6 /64) to
	// requests without an Authorization header (health probes, metrics,
	// model metadata, anything unauthenticated) and to failed
	// authentications: once an address's bucket is empty, its requests
	// with credentials are refused before the credential is looked up.
	Anonymous RateLimit
}

// DefaultRateLimits are the defaults of RateLimits' zero fields.
var DefaultRateLimits = RateLimits{
	Default:   RateLimit{PerSecond: 50, Burst: 200},
	Infer:     RateLimit{PerSecond: 5, Burst: 20},
	Upload:    RateLimit{PerSecond: 0.1, Burst: 20}, // one per 10 s after a burst of 20; the quotas bound the bytes
	Enroll:    RateLimit{PerSecond: 5, Burst: 50},   // devices of a fleet may share the key that enrolls them
	Anonymous: RateLimit{PerSecond: 10, Burst: 50},
}

func (l RateLimit) withDefault(d RateLimit) RateLimit {
	if l.PerSecond == 0 {
		l.PerSecond = d.PerSecond
	}
	if l.Burst == 0 {
		l.Burst = d.Burst
	}
	return l
}

func (r RateLimits) withDefaults() RateLimits {
	d := DefaultRateLimits
	r.Default = r.Default.withDefault(d.Default)
	r.Infer = r.Infer.withDefault(d.Infer)
	r.Upload = r.Upload.withDefault(d.Upload)
	r.Enroll = r.Enroll.withDefault(d.Enroll)
	r.Anonymous = r.Anonymous.withDefault(d.Anonymous)
	return r
}

// validate names the first bad policy (after withDefaults).
func (r RateLimits) validate() error {
	for _, p := range []struct {
		name string
		l    RateLimit
	}{{"Default", r.Default}, {"Infer", r.Infer}, {"Upload", r.Upload}, {"Enroll", r.Enroll}, {"Anonymous", r.Anonymous}} {
		switch {
		case math.IsNaN(p.l.PerSecond) || math.IsInf(p.l.PerSecond, 0):
			return fmt.Errorf("RateLimits.%s.PerSecond is %v", p.name, p.l.PerSecond)
		case p.l.PerSecond > 0 && p.l.Burst < 1:
			return fmt.Errorf("RateLimits.%s.Burst is %d; want at least 1", p.name, p.l.Burst)
		}
	}
	return nil
}

// Route classes: which rate-limit policy, admission pool and quota apply.
type routeClass int

const (
	classDefault routeClass = iota
	classInfer
	classKeySet // the upload policy, the upload pool, the key-set quota
	classModel  // the upload policy, the upload pool, the blob quota
	classEnroll
)

// Limits on the memory the rate limiters use.
const (
	// maxBuckets bounds the buckets of one policy; keys beyond it (a flood
	// of client addresses) share one overflow bucket until idle buckets
	// are swept.
	maxBuckets = 100_000
	// bucketSweep is how often full (idle) buckets are dropped: a full
	// bucket is what a new one would be, so nothing is forgotten.
	bucketSweep = time.Minute
)

// policy is one rate limit, with a bucket per key (principal or client
// address), from golang.org/x/time/rate.
type policy struct {
	name   string // in RateLimit-Policy, GET /v1/quota and the reason code
	limit  rate.Limit
	perSec float64
	burst  int

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	overflow  *rate.Limiter
	nextSweep time.Time
}

// newPolicy returns nil for a policy that is off.
func newPolicy(name string, l RateLimit) *policy {
	if l.PerSecond <= 0 {
		return nil
	}
	return &policy{
		name: name, limit: rate.Limit(l.PerSecond), perSec: l.PerSecond, burst: l.Burst,
		buckets:  make(map[string]*rate.Limiter),
		overflow: rate.NewLimiter(rate.Limit(l.PerSecond), l.Burst),
	}
}

// bucket returns key's bucket, made full if it is new.
func (p *policy) bucket(key string, now time.Time) *rate.Limiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !now.Before(p.nextSweep) {
		for k, b := range p.buckets {
			if b.TokensAt(now) >= float64(p.burst) {
				delete(p.buckets, k)
			}
		}
		p.nextSweep = now.Add(bucketSweep)
	}
	if b, ok := p.buckets[key]; ok {
		return b
	}
	if len(p.buckets) >= maxBuckets {
		return p.overflow
	}
	b := rate.NewLimiter(p.limit, p.burst)
	p.buckets[key] = b
	return b
}

// verdict is what taking one request from a bucket decided.
type verdict struct {
	ok         bool
	remaining  int64         // requests left now
	reset      time.Duration // until the bucket is full again
	retryAfter time.Duration // until one request is allowed, when !ok
}

// take spends one request of key's bucket, if it has one.
func (p *policy) take(key string, now time.Time) verdict {
	b := p.bucket(key, now)
	ok := b.AllowN(now, 1)
	return p.state(b.TokensAt(now), ok)
}

// peek reports key's bucket without spending from it and without making
// one: a key with no bucket has a full one (so that merely looking cannot
// fill the map, nor land a newcomer on the overflow bucket).
func (p *policy) peek(key string, now time.Time) verdict {
	p.mu.Lock()
	b, ok := p.buckets[key]
	p.mu.Unlock()
	tokens := float64(p.burst)
	if ok {
		tokens = b.TokensAt(now)
	}
	return p.state(tokens, tokens >= 1)
}

func (p *policy) state(tokens float64, ok bool) verdict {
	v := verdict{ok: ok, remaining: max(0, int64(math.Floor(tokens)))}
	v.reset = p.seconds(float64(p.burst) - tokens)
	if !ok {
		v.retryAfter = max(p.seconds(1-tokens), time.Second)
	}
	return v
}

// seconds is how long the bucket takes to gain n tokens.
func (p *policy) seconds(n float64) time.Duration {
	if n <= 0 {
		return 0
	}
	return time.Duration(n / p.perSec * float64(time.Second))
}

// window is the policy's w: the seconds an empty bucket takes to fill.
func (p *policy) window() int64 {
	return max(1, int64(math.Ceil(float64(p.burst)/p.perSec)))
}

// policyItem is the policy's member of RateLimit-Policy.
func (p *policy) policyItem() string {
	return `"` + p.name + `";q=` + strconv.Itoa(p.burst) + ";w=" + strconv.FormatInt(p.window(), 10)
}

// limitItem is the policy's member of RateLimit.
func (p *policy) limitItem(v verdict) string {
	return `"` + p.name + `";r=` + strconv.FormatInt(v.remaining, 10) + ";t=" + strconv.FormatInt(ceilSeconds(v.reset), 10)
}

func (p *policy) reason() string { return "rate-" + p.name }

// ceilSeconds rounds d up to whole seconds.
func ceilSeconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}

// limits is a Server's rate limiters, admission pools and quota gate.
type limits struct {
	policies  map[routeClass]*policy // nil entries: off
	anonymous *policy
	// failedAuth counts failed authentications per address, with the
	// anonymous limits, in a map of its own (see limitClients).
	failedAuth *policy
	good       knownGood
	infers     *pool
	uploads    *pool
	quota      *quotaGate
	refused    *prometheus.CounterVec
}

func newLimits(cfg Config, reg *prometheus.Registry) *limits {
	l := &limits{
		policies: map[routeClass]*policy{},
		infers:   newPool("infer", cfg.Concurrency.InferPerTenant, cfg.Concurrency.InferPerProcess),
		uploads:  newPool("upload", cfg.Concurrency.UploadPerTenant, cfg.Concurrency.UploadPerProcess),
		quota:    newQuotaGate(cfg.Store, cfg.Quota),
	}
	if rl := cfg.RateLimits; !rl.Disabled {
		upload := newPolicy("upload", rl.Upload)
		l.policies[classDefault] = newPolicy("default", rl.Default)
		l.policies[classInfer] = newPolicy("infer", rl.Infer)
		l.policies[classKeySet] = upload
		l.policies[classModel] = upload
		l.policies[classEnroll] = newPolicy("enroll", rl.Enroll)
		l.anonymous = newPolicy("anonymous", rl.Anonymous)
		l.failedAuth = newPolicy("failed-auth", rl.Anonymous)
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hegate_requests_refused_total",
		Help: "Requests refused by a rate limit, the admission control or a quota, by reason (rate-*, concurrency-*, quota-*).",
	}, []string{"reason"})
	if err := reg.Register(refused); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			refused, _ = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	l.refused = refused
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hegate_admitted_in_flight",
		Help: "Inferences and uploads in progress in this process (what the per-process admission caps bound).",
	}, func() float64 { return float64(l.infers.total() + l.uploads.total()) })
	_ = reg.Register(inFlight) // a second Server on the same Metrics: the first one's gauge stays
	return l
}

// pool returns the admission pool of a route class, or nil.
func (l *limits) pool(c routeClass) *pool {
	switch c {
	case classInfer:
		return l.infers
	case classKeySet, classModel:
		return l.uploads
	}
	return nil
}

// bucketKey names a principal's buckets: an API key and a device never
// share one.
func bucketKey(p Principal) string {
	if p.Device != "" {
		return "device:" + string(p.Device)
	}
	return "key:" + string(p.APIKey)
}

// clientAddress is the key of a request's client in the anonymous policy:
// the IPv4 address, or the /64 of an IPv6 address (one host's share), taken
// from Config.ClientIPHeader when set and well-formed, else from the
// connection.
func (s *Server) clientAddress(r *http.Request) string {
	if h := s.cfg.ClientIPHeader; h != "" {
		if vs := r.Header.Values(h); len(vs) > 0 {
			last := vs[len(vs)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a, ok := parseAddr(strings.TrimSpace(last)); ok {
				return addrKey(a)
			}
		}
	}
	if a, ok := parseAddr(r.RemoteAddr); ok {
		return addrKey(a)
	}
	return truncate(r.RemoteAddr, 64)
}

func parseAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, true
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		a, err := netip.ParseAddr(host)
		return a, err == nil
	}
	return netip.Addr{}, false
}

func addrKey(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// limitClients applies the anonymous policy, per client address, to
// requests without an Authorization header, and, in a second bucket of the
// address, to the failed authentications of requests with one: once that
// bucket is empty, the address's requests with credentials get 429 before
// the credential is even looked up, except credentials that authenticated
// recently (knownGood): so that one client guessing keys behind a NAT does
// not lock out the valid keys of everyone else behind it. A valid key that
// had not been used lately from that address waits like the guesses, since
// it cannot be told apart without the lookup. It runs on every route,
// before the route's own middleware.
func (s *Server) limitClients(next http.Handler) http.Handler {
	pol, failed := s.limits.anonymous, s.limits.failedAuth
	if pol == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := s.cfg.Clock()
		addr := s.clientAddress(r)
		if _, has := r.Header["Authorization"]; !has {
			v := pol.take("anon:"+addr, now)
			h := w.Header()
			h.Set(api.HeaderRateLimitPolicy, pol.policyItem())
			h.Set(api.HeaderRateLimit, pol.limitItem(v))
			if !v.ok {
				s.refuseRate(w, r, pol, v)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		// Failed authentications have buckets of their own, in a map of
		// their own, so that neither the address's anonymous requests nor
		// a flood of anonymous addresses locks out its valid keys.
		key := "auth:" + addr
		cred := goodKey(addr, r.Header.Get("Authorization"))
		if v := failed.peek(key, now); !v.ok && !s.limits.good.seen(cred, now) {
			h := w.Header()
			h.Set(api.HeaderRateLimitPolicy, failed.policyItem())
			h.Set(api.HeaderRateLimit, failed.limitItem(v))
			s.refuseRate(w, r, failed, v)
			return
		}
		rec := &statusHook{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		switch {
		case rec.status == http.StatusUnauthorized:
			failed.take(key, s.cfg.Clock())
		case principalSeen(r):
			s.limits.good.add(cred, addr, s.cfg.Clock())
		}
	})
}

// limitPublic applies the anonymous policy to requests that carry an
// Authorization header on routes that never authenticate (the public
// ones, and unmatched paths): limitClients counts such requests only when
// they fail to authenticate, which these never do, so without this a
// header of any value would lift the anonymous limit. Requests without
// the header were counted by limitClients already.
func (s *Server) limitPublic(next http.Handler) http.Handler {
	pol := s.limits.anonymous
	if pol == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, has := r.Header["Authorization"]; has {
			v := pol.take("anon:"+s.clientAddress(r), s.cfg.Clock())
			h := w.Header()
			h.Set(api.HeaderRateLimitPolicy, pol.policyItem())
			h.Set(api.HeaderRateLimit, pol.limitItem(v))
			if !v.ok {
				s.refuseRate(w, r, pol, v)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// guard applies a route class's rate-limit policy to the authenticated
// principal, then, for inferences and uploads, the admission control and
// the tenant's quota. It sets RateLimit-Policy and RateLimit on every
// answer to an authenticated request. A request without a principal (an
// anonymous one on a route where authentication is optional) passes: the
// anonymous policy already counted it.
func (s *Server) guard(c routeClass) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := PrincipalFromContext(r.Context())
			if !ok {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			var policies, states []string
			now := s.cfg.Clock()
			if pol := s.limits.policies[c]; pol != nil {
				v := pol.take(bucketKey(p), now)
				policies, states = append(policies, pol.policyItem()), append(states, pol.limitItem(v))
				if !v.ok {
					setRateHeaders(h, policies, states)
					s.refuseRate(w, r, pol, v)
					return
				}
			}
			if pl := s.limits.pool(c); pl != nil {
				left, reason := pl.acquire(p.Tenant)
				if pl.perTenant > 0 {
					policies = append(policies, pl.policyItem())
					states = append(states, pl.limitItem(left))
				}
				setRateHeaders(h, policies, states)
				if reason != "" {
					s.refuseBusy(w, r, pl, reason)
					return
				}
				defer pl.release(p.Tenant)
			} else {
				setRateHeaders(h, policies, states)
			}
			if d, ok := s.demandOf(c, r); ok {
				release, err := s.limits.quota.reserve(r.Context(), p.Tenant, d)
				if err != nil {
					s.refuseQuota(w, r, err)
					return
				}
				defer release()
				// The handler has recorded (or given up) what it stores by
				// the time it answers, or earlier when it says so
				// (releaseQuota, after the job is created): the reservation
				// ends then, so that a waiting inference holds none.
				w = &statusHook{ResponseWriter: w, onHeader: release}
				r = r.WithContext(context.WithValue(r.Context(), quotaReleaseKey, release))
			}
			next.ServeHTTP(w, r)
		})
	}
}

func setRateHeaders(h http.Header, policies, states []string) {
	if len(policies) == 0 {
		return
	}
	h.Set(api.HeaderRateLimitPolicy, strings.Join(policies, ", "))
	h.Set(api.HeaderRateLimit, strings.Join(states, ", "))
}

// refuseRate answers 429 for an exhausted rate limit.
func (s *Server) refuseRate(w http.ResponseWriter, r *http.Request, pol *policy, v verdict) {
	detail := fmt.Sprintf("rate limit %q exceeded: %d requests at once, then %s; retry after %d s",
		pol.name, pol.burst, perSecondText(pol.perSec), ceilSeconds(v.retryAfter))
	s.refuse(w, r, http.StatusTooManyRequests, api.ProblemRateLimited, "Too many requests", pol.reason(), detail, v.retryAfter)
}

// perSecondText says a rate the way a person would.
func perSecondText(perSec float64) string {
	switch {
	case perSec >= 1:
		return strconv.FormatFloat(perSec, 'f', -1, 64) + " per second"
	case perSec*60 >= 1:
		return strconv.FormatFloat(perSec*60, 'f', -1, 64) + " per minute"
	default:
		return strconv.FormatFloat(perSec*3600, 'f', -1, 64) + " per hour"
	}
}

// refuse writes a problem document for a limit, with Retry-After when
// retryAfter > 0, counts it and logs it at debug level.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, typ, title, reason, detail string, retryAfter time.Duration) {
	if retryAfter > 0 {
		w.Header().Set(api.HeaderRetryAfter, strconv.FormatInt(max(1, ceilSeconds(retryAfter)), 10))
	}
	if s.limits.refused != nil {
		s.limits.refused.WithLabelValues(reason).Inc()
	}
	p := api.Problem{
		Type:      typ,
		Title:     title,
		Status:    status,
		Detail:    detail,
		Instance:  r.URL.Path,
		RequestID: RequestIDFromContext(r.Context()),
		Reason:    reason,
	}
	if isOIP(r) {
		p.Error = p.Title + ": " + p.Detail
	}
	attrs := []slog.Attr{
		slog.String("request_id", p.RequestID),
		slog.Int("status", status),
		slog.String("reason", reason),
	}
	if pr, ok := PrincipalFromContext(r.Context()); ok {
		attrs = append(attrs, slog.String("tenant", string(pr.Tenant)))
	}
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "request refused by a limit", attrs...)
	writeProblem(w, p)
}

// statusHook records the status of the answer and calls onHeader, once,
// when the handler starts it. Unwrap keeps http.ResponseController (read
// and write deadlines, Flush) working through it.
type statusHook struct {
	http.ResponseWriter
	status   int
	onHeader func()
}

func (h *statusHook) WriteHeader(code int) {
	if h.status == 0 && code >= 200 {
		h.status = code
		if h.onHeader != nil {
			h.onHeader()
		}
	}
	h.ResponseWriter.WriteHeader(code)
}

func (h *statusHook) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.WriteHeader(http.StatusOK)
	}
	return h.ResponseWriter.Write(b)
}

func (h *statusHook) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// busyRetryAfter is the Retry-After of a 503 from the admission control.
const busyRetryAfter = 2 * time.Second

// refuseBusy answers 503 when an admission pool is full.
func (s *Server) refuseBusy(w http.ResponseWriter, r *http.Request, pl *pool, reason string) {
	var detail string
	if reason == api.ReasonConcurrencyTenant {
		detail = fmt.Sprintf("your tenant already has %d %s in progress on this server, the most it may; retry when one ends", pl.perTenant, pl.what())
	} else {
		detail = fmt.Sprintf("this server already has %d %s in progress, the most it takes; retry shortly", pl.perProcess, pl.what())
	}
	s.refuse(w, r, http.StatusServiceUnavailable, api.ProblemUnavailable, "Service unavailable", reason, detail, busyRetryAfter)
}

// pool is an admission cap: how many requests of one kind (inferences,
// uploads) may be in progress per tenant and in the whole process. It
// refuses rather than queues: a request over a cap is answered 503 at once.
type pool struct {
	name                  string
	perTenant, perProcess int // <= 0: no cap

	mu      sync.Mutex
	all     int
	tenants map[hegate.TenantID]int
}

// Defaults of Concurrency's zero fields.
const (
	DefaultInferPerTenant   = 16
	DefaultInferPerProcess  = 128
	DefaultUploadPerTenant  = 4
	DefaultUploadPerProcess = 16
)

// Concurrency caps the inferences and uploads (key sets, models) in
// progress at once, per tenant and in the process; a request over a cap is
// refused with 503 and Retry-After, never queued. A zero field selects its
// Default*, a negative one means no cap. Like the rate limits, the caps
// are per replica.
type Concurrency struct {
	InferPerTenant, InferPerProcess   int
	UploadPerTenant, UploadPerProcess int
}

func (c Concurrency) withDefaults() Concurrency {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.InferPerTenant, DefaultInferPerTenant)
	def(&c.InferPerProcess, DefaultInferPerProcess)
	def(&c.UploadPerTenant, DefaultUploadPerTenant)
	def(&c.UploadPerProcess, DefaultUploadPerProcess)
	return c
}

func newPool(name string, perTenant, perProcess int) *pool {
	return &pool{name: name, perTenant: perTenant, perProcess: perProcess, tenants: make(map[hegate.TenantID]int)}
}

func (p *pool) what() string {
	if p.name == "infer" {
		return "inferences"
	}
	return "uploads"
}

// acquire takes a slot for tenant; reason is "" when it did, else the
// cap that refused. left is what the tenant has left afterwards.
func (p *pool) acquire(t hegate.TenantID) (left int, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.tenants[t]
	switch {
	case p.perTenant > 0 && n >= p.perTenant:
		return 0, api.ReasonConcurrencyTenant
	case p.perProcess > 0 && p.all >= p.perProcess:
		return max(0, p.perTenant-n), api.ReasonConcurrencyProcess
	}
	p.tenants[t] = n + 1
	p.all++
	return max(0, p.perTenant-n-1), ""
}

func (p *pool) release(t hegate.TenantID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := p.tenants[t] - 1; n > 0 {
		p.tenants[t] = n
	} else {
		delete(p.tenants, t)
	}
	p.all--
}

// inUse is how many slots tenant holds.
func (p *pool) inUse(t hegate.TenantID) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tenants[t]
}

func (p *pool) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.all
}

// policyItem is the per-tenant cap as a RateLimit-Policy member, in the
// draft's concurrent-requests unit.
func (p *pool) policyItem() string {
	return `"` + p.name + `-concurrency";q=` + strconv.Itoa(p.perTenant) + `;qu="concurrent-requests"`
}

func (p *pool) limitItem(left int) string {
	return `"` + p.name + `-concurrency";r=` + strconv.Itoa(left)
}

// quotaReleaseKey holds, in a guarded request's context, the function that
// ends its quota reservation.
type quotaReleaseCtxKey struct{}

var quotaReleaseKey quotaReleaseCtxKey

// releaseQuota ends the request's quota reservation now (idempotent; a
// no-op without one): call it once what the request stores is recorded.
func releaseQuota(r *http.Request) {
	if f, ok := r.Context().Value(quotaReleaseKey).(func()); ok {
		f()
	}
}

// knownGood remembers the credentials that authenticated from an address
// in the last knownGoodTTL, so that a lockout of the address for failed
// authentications spares them. An entry is the SHA-256 of the address and
// the credential in canonical form (the scheme in lower case, the token
// trimmed), so that one key spelled many ways is one entry. It holds at
// most knownGoodPerAddress entries per address and knownGoodMax in all,
// forgetting the least recently used: one client cannot evict the others'
// entries from its own address, and many addresses need many valid
// credentials to.
type knownGood struct {
	mu     sync.Mutex
	lru    list.List // of *goodEntry, most recent first
	byKey  map[[32]byte]*list.Element
	byAddr map[string]int
}

type goodEntry struct {
	key  [32]byte
	addr string
	at   time.Time
}

const (
	knownGoodTTL        = 10 * time.Minute
	knownGoodMax        = 10000
	knownGoodPerAddress = 16
)

// goodKey is the entry of a credential from an address.
func goodKey(addr, authorization string) [32]byte {
	scheme, token, _ := strings.Cut(strings.TrimSpace(authorization), " ")
	return sha256.Sum256([]byte(addr + "\x00" + strings.ToLower(scheme) + " " + strings.TrimSpace(token)))
}

func (g *knownGood) seen(h [32]byte, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	el, ok := g.byKey[h]
	return ok && now.Sub(el.Value.(*goodEntry).at) < knownGoodTTL
}

func (g *knownGood) add(h [32]byte, addr string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byKey == nil {
		g.byKey, g.byAddr = map[[32]byte]*list.Element{}, map[string]int{}
	}
	if el, ok := g.byKey[h]; ok {
		el.Value.(*goodEntry).at = now
		g.lru.MoveToFront(el)
		return
	}
	if g.byAddr[addr] >= knownGoodPerAddress {
		// Forget the address's least recent entry.
		for el := g.lru.Back(); el != nil; el = el.Prev() {
			if el.Value.(*goodEntry).addr == addr {
				g.remove(el)
				break
			}
		}
	}
	if g.lru.Len() >= knownGoodMax {
		g.remove(g.lru.Back())
	}
	g.byKey[h] = g.lru.PushFront(&goodEntry{key: h, addr: addr, at: now})
	g.byAddr[addr]++
}

func (g *knownGood) remove(el *list.Element) {
	e := el.Value.(*goodEntry)
	g.lru.Remove(el)
	delete(g.byKey, e.key)
	if g.byAddr[e.addr]--; g.byAddr[e.addr] <= 0 {
		delete(g.byAddr, e.addr)
	}
}

// principalSeen reports whether the request authenticated (authenticate
// noted its tenant for the access log).
func principalSeen(r *http.Request) bool {
	info, ok := r.Context().Value(accessKey).(*accessInfo)
	return ok && info.tenant != ""
}

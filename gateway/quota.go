package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/storage"
)

// Quota is what one tenant may hold, checked in the store before an
// upload or an inference is accepted. A zero field selects its default
// below, a negative one means no limit. Counts and bytes are the tenant's
// references (storage.TenantUsage): a key set uploaded by two tenants
// counts for both, one with a single coefficient changed is a new key set
// and counts in full.
type Quota struct {
	// KeySets and KeySetBytes bound the tenant's key sets.
	KeySets     int64
	KeySetBytes int64
	// Blobs and BlobBytes bound everything the tenant stores: key sets,
	// the input and result ciphertexts of its jobs until retention expires
	// them, and uploaded models (their source sizes).
	Blobs     int64
	BlobBytes int64
	// ActiveJobs bounds the tenant's queued and running jobs.
	ActiveJobs int64
}

// Defaults of Quota's zero fields: room for the key sets of every
// built-in model many times over (an MNIST key set is about 60 MB, a
// ResNet one about 420 MB), and a day of steady use at the default
// retention.
const (
	DefaultQuotaKeySets     = 32
	DefaultQuotaKeySetBytes = 4 << 30  // 4 GiB: 68 MNIST or 9 ResNet key sets
	DefaultQuotaBlobs       = 50_000   // key sets, job inputs and results, models
	DefaultQuotaBlobBytes   = 16 << 30 // 16 GiB
	DefaultQuotaActiveJobs  = 64
)

func (q Quota) withDefaults() Quota {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&q.KeySets, DefaultQuotaKeySets)
	def(&q.KeySetBytes, DefaultQuotaKeySetBytes)
	def(&q.Blobs, DefaultQuotaBlobs)
	def(&q.BlobBytes, DefaultQuotaBlobBytes)
	def(&q.ActiveJobs, DefaultQuotaActiveJobs)
	return q
}

// demand is what one request may add to a tenant's usage.
type demand struct {
	keySets, keySetBytes, blobs, blobBytes, jobs int64
}

func (d demand) add(e demand, sign int64) demand {
	return demand{
		keySets:     d.keySets + sign*e.keySets,
		keySetBytes: d.keySetBytes + sign*e.keySetBytes,
		blobs:       d.blobs + sign*e.blobs,
		blobBytes:   d.blobBytes + sign*e.blobBytes,
		jobs:        d.jobs + sign*e.jobs,
	}
}

// demandOf is what a request of class c may store, from its announced
// length or, when it announces none, the exact size its model fixes (or
// the route's largest body); false for a class that stores nothing
// counted.
func (s *Server) demandOf(c routeClass, r *http.Request) (demand, bool) {
	size := func(limit int64) int64 {
		if r.ContentLength > 0 {
			return min(r.ContentLength, limit)
		}
		return limit
	}
	// modelSize is what the request's model fixes, or 0 when the model
	// is not found (the handler answers that).
	modelSize := func(name, version string, keySet bool) int64 {
		if r.ContentLength > 0 || name == "" {
			return 0
		}
		m, err := s.model(r, "gateway.quota", name, version)
		if err != nil {
			return 0
		}
		if keySet {
			return m.Manifest().KeySetBytes
		}
		return m.Manifest().CiphertextBytes
	}
	switch c {
	case classKeySet:
		if r.Method == http.MethodPatch {
			// A chunk of a resumable upload: the last one stores the
			// whole key set, so every chunk must fit the whole of it.
			if p, err := principal(r); err == nil {
				if u, err := s.svc.UploadStatus(r.Context(), p, storage.UploadID(chi.URLParam(r, "id"))); err == nil {
					return demand{keySets: 1, keySetBytes: u.Size, blobs: 1, blobBytes: u.Size}, true
				}
			}
			n := size(api.MaxUploadChunk)
			return demand{keySets: 1, keySetBytes: n, blobs: 1, blobBytes: n}, true
		}
		name := r.URL.Query().Get(api.QueryModel)
		if name == "" {
			name = r.Header.Get(api.HeaderModel)
		}
		n := size(s.cfg.MaxKeySetBytes)
		if want := modelSize(name, r.URL.Query().Get(api.QueryVersion), true); want > 0 {
			n = min(n, want)
		}
		return demand{keySets: 1, keySetBytes: n, blobs: 1, blobBytes: n}, true
	case classInfer:
		// The input ciphertext, and room for a result of the same size
		// (results have fewer levels, so they are smaller).
		n := size(maxInferHeaderBytes + 16 + (s.cfg.MaxCiphertextBytes+2)/3*4)
		if want := modelSize(chi.URLParam(r, "model"), chi.URLParam(r, "version"), false); want > 0 {
			n = min(n, maxInferHeaderBytes+16+(want+2)/3*4)
		}
		return demand{jobs: 1, blobs: 2, blobBytes: 2 * n}, true
	case classModel:
		// The source, and its compiled graph.
		n := size(s.catalog.MaxSourceBytes())
		return demand{blobs: 2, blobBytes: n}, true
	}
	return demand{}, false
}

// quotaReadTimeout bounds the usage read of one admission.
const quotaReadTimeout = 5 * time.Second

// quotaGate checks a request's demand against its tenant's quota: the
// usage the store reports, plus what the requests this process admitted
// and that have not answered yet may still add (pending). A tenant's
// checks are serialised (one usage read at a time per tenant; other
// tenants never wait for it), and a request's pending demand is kept until
// it answers, when what it stored is in the store. So within one process
// no interleaving of concurrent requests exceeds a quota. Across R
// replicas, each admits without seeing the others' pending requests: a
// tenant may exceed a quota by what the other replicas have in progress,
// at most × Concurrency.*PerTenant requests' demands.
type quotaGate struct {
	store storage.Quotas
	quota Quota

	mu      sync.Mutex
	tenants map[hegate.TenantID]*tenantQuota
}

// tenantQuota is one tenant's pending demand. lock, a one-slot semaphore
// (so that waiting for it honours the request's context), serialises the
// tenant's admissions; mu guards pending, which a request releases
// without waiting for an admission in progress.
type tenantQuota struct {
	lock    chan struct{}
	refs    int // guarded by quotaGate.mu
	mu      sync.Mutex
	pending demand
}

func (tq *tenantQuota) snapshot() demand {
	tq.mu.Lock()
	defer tq.mu.Unlock()
	return tq.pending
}

func (tq *tenantQuota) change(d demand, sign int64) {
	tq.mu.Lock()
	defer tq.mu.Unlock()
	tq.pending = tq.pending.add(d, sign)
}

func newQuotaGate(store storage.Quotas, q Quota) *quotaGate {
	return &quotaGate{store: store, quota: q, tenants: make(map[hegate.TenantID]*tenantQuota)}
}

func (g *quotaGate) ref(t hegate.TenantID) *tenantQuota {
	g.mu.Lock()
	defer g.mu.Unlock()
	tq := g.tenants[t]
	if tq == nil {
		tq = &tenantQuota{lock: make(chan struct{}, 1)}
		g.tenants[t] = tq
	}
	tq.refs++
	return tq
}

func (g *quotaGate) unref(t hegate.TenantID, tq *tenantQuota) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if tq.refs--; tq.refs == 0 {
		delete(g.tenants, t)
	}
}

// quotaError is a refusal by a quota.
type quotaError struct {
	reason string
	detail string
	status int
}

func (e *quotaError) Error() string { return e.detail }

// reserve admits d for tenant or says which quota refuses it. release,
// which may be called any number of times, ends the reservation.
func (g *quotaGate) reserve(ctx context.Context, tenant hegate.TenantID, d demand) (release func(), err error) {
	tq := g.ref(tenant)
	select {
	case tq.lock <- struct{}{}:
	case <-ctx.Done():
		g.unref(tenant, tq)
		return nil, ctx.Err()
	}
	unlock := func() { <-tq.lock }
	// Pending first, then the store: a request released in between had
	// recorded what it stored before it released, so the read sees it.
	// Either way nothing is missed; at worst something counts twice.
	pending := tq.snapshot()
	rctx, cancel := context.WithTimeout(ctx, quotaReadTimeout)
	u, err := g.store.TenantUsage(rctx, tenant)
	cancel()
	if err == nil {
		err = g.check(u, pending, d)
	}
	if err != nil {
		unlock()
		g.unref(tenant, tq)
		return nil, err
	}
	tq.change(d, 1)
	unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			tq.change(d, -1)
			g.unref(tenant, tq)
		})
	}, nil
}

// check compares usage plus pending plus d with the quota.
func (g *quotaGate) check(u storage.TenantUsage, pending, d demand) error {
	q := g.quota
	over := func(limit, used, pend, want int64) bool {
		return want > 0 && limit >= 0 && used+pend+want > limit
	}
	switch {
	case over(q.ActiveJobs, u.ActiveJobs, pending.jobs, d.jobs):
		return &quotaError{api.ReasonQuotaActiveJobs, fmt.Sprintf(
			"your tenant has %d jobs queued or running (with those being submitted: %d), the most it may: retry when some finish",
			u.ActiveJobs, u.ActiveJobs+pending.jobs), http.StatusTooManyRequests}
	case over(q.KeySets, u.KeySets, pending.keySets, d.keySets):
		return &quotaError{api.ReasonQuotaKeySets, fmt.Sprintf(
			"your tenant has %d key sets (with uploads in progress: %d) and may have %d: delete one (DELETE /v1/keys/{id}) before uploading another",
			u.KeySets, u.KeySets+pending.keySets, q.KeySets), http.StatusForbidden}
	case over(q.KeySetBytes, u.KeySetBytes, pending.keySetBytes, d.keySetBytes):
		return &quotaError{api.ReasonQuotaKeySetBytes, fmt.Sprintf(
			"your tenant's key sets hold %d bytes (with uploads in progress: %d); %d more would exceed its quota of %d bytes: delete a key set first",
			u.KeySetBytes, u.KeySetBytes+pending.keySetBytes, d.keySetBytes, q.KeySetBytes), http.StatusForbidden}
	case over(q.Blobs, u.Blobs(), pending.blobs, d.blobs):
		return &quotaError{api.ReasonQuotaBlobs, fmt.Sprintf(
			"your tenant stores %d blobs (key sets, job ciphertexts, models; with requests in progress: %d) and may store %d: delete key sets or models, or wait for retention to expire finished jobs",
			u.Blobs(), u.Blobs()+pending.blobs, q.Blobs), http.StatusForbidden}
	case over(q.BlobBytes, u.BlobBytes(), pending.blobBytes, d.blobBytes):
		return &quotaError{api.ReasonQuotaBlobBytes, fmt.Sprintf(
			"your tenant stores %d bytes (key sets, job ciphertexts, models; with requests in progress: %d); %d more would exceed its quota of %d bytes: delete key sets or models, or wait for retention to expire finished jobs",
			u.BlobBytes(), u.BlobBytes()+pending.blobBytes, d.blobBytes, q.BlobBytes), http.StatusForbidden}
	}
	return nil
}

// refuseQuota answers a failed reservation: the quota's refusal, or 503
// when the usage could not be read (or 499 when the client left).
func (s *Server) refuseQuota(w http.ResponseWriter, r *http.Request, err error) {
	var qe *quotaError
	if !errors.As(err, &qe) {
		s.fail(w, r, hegate.E("gateway.quota", hegate.KindUnavailable, fmt.Errorf("checking the tenant's quota: %w", err), ""))
		return
	}
	var retry time.Duration
	if qe.status == http.StatusTooManyRequests {
		retry = retryAfterSeconds * time.Second
	}
	s.refuse(w, r, qe.status, api.ProblemQuotaExceeded, "Quota exceeded", qe.reason, qe.detail, retry)
}

// getQuota answers GET /v1/quota: the caller's tenant's usage and quotas,
// its admissions in progress on this replica, and the caller's rate limits.
func (s *Server) getQuota(w http.ResponseWriter, r *http.Request) {
	const op = "quota.get"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	u, err := s.cfg.Store.TenantUsage(r.Context(), p.Tenant)
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindInternal, fmt.Errorf("reading usage: %w", err), ""))
		return
	}
	q := s.cfg.Quota
	item := func(used, limit int64) api.QuotaItem {
		it := api.QuotaItem{Used: used}
		if limit >= 0 {
			it.Limit = &limit
		}
		return it
	}
	out := api.Quota{
		KeySets:     item(u.KeySets, q.KeySets),
		KeySetBytes: item(u.KeySetBytes, q.KeySetBytes),
		Blobs:       item(u.Blobs(), q.Blobs),
		BlobBytes:   item(u.BlobBytes(), q.BlobBytes),
		ActiveJobs:  item(u.ActiveJobs, q.ActiveJobs),
		Usage: api.QuotaUsage{
			KeySets: u.KeySets, KeySetBytes: u.KeySetBytes,
			JobBlobs: u.JobBlobs, JobBlobBytes: u.JobBlobBytes,
			ModelBlobs: u.ModelBlobs, ModelBytes: u.ModelBytes,
		},
		Concurrency: api.QuotaConcurrency{
			Inferences: item(int64(s.limits.infers.inUse(p.Tenant)), int64(capOrNone(s.limits.infers.perTenant))),
			Uploads:    item(int64(s.limits.uploads.inUse(p.Tenant)), int64(capOrNone(s.limits.uploads.perTenant))),
		},
		RateLimits: []api.RateLimitState{},
	}
	now := s.cfg.Clock()
	seen := map[*policy]bool{}
	for _, c := range []routeClass{classDefault, classInfer, classKeySet, classEnroll} {
		pol := s.limits.policies[c]
		if pol == nil || seen[pol] {
			continue
		}
		seen[pol] = true
		v := pol.peek(bucketKey(p), now)
		out.RateLimits = append(out.RateLimits, api.RateLimitState{
			Policy: pol.name, Quota: int64(pol.burst), WindowSeconds: pol.window(), PerSecond: pol.perSec, Remaining: v.remaining,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// capOrNone maps "no cap" (<= 0) to the wire's absent limit (< 0).
func capOrNone(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

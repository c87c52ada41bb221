package gateway

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/storage"
)

// keySetVariants returns keys and n-1 copies of it, each with one more
// coefficient (the last ones) changed by one: valid key sets, a new blob
// each, as a client that alters one coefficient makes them.
func keySetVariants(t *testing.T, keys []byte, n int) [][]byte {
	t.Helper()
	out := [][]byte{keys}
	for i := 1; i < n; i++ {
		v := bytes.Clone(keys)
		off := len(v) - 8*i
		c := binary.LittleEndian.Uint64(v[off:])
		if c > 0 {
			c--
		} else {
			c++
		}
		binary.LittleEndian.PutUint64(v[off:], c)
		out = append(out, v)
	}
	return out
}

// getQuota reads GET /v1/quota with key.
func (bd *bundle) getQuota(t *testing.T, key string) api.Quota {
	t.Helper()
	resp := bd.call(t, http.MethodGet, api.PathQuota, key, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/quota: %d", resp.StatusCode)
	}
	rateHeaders(t, resp.Header)
	var q api.Quota
	if err := json.NewDecoder(resp.Body).Decode(&q); err != nil {
		t.Fatal(err)
	}
	return q
}

func wantItem(t *testing.T, what string, it api.QuotaItem, used, limit int64) {
	t.Helper()
	if it.Used != used || it.Limit == nil || *it.Limit != limit {
		got := "none"
		if it.Limit != nil {
			got = fmt.Sprint(*it.Limit)
		}
		t.Fatalf("%s: used %d of %s, want %d of %d", what, it.Used, got, used, limit)
	}
}

// TestQuotaKeySetBytes: a key set with one coefficient changed is a new
// key set and counts in full toward the tenant's key-set bytes; once they
// would exceed the quota the upload answers 403 quota-key-set-bytes before
// its body is stored, GET /v1/quota shows why, and deleting a key set
// makes room again. Another tenant is not affected.
func TestQuotaKeySetBytes(t *testing.T) {
	t.Parallel()
	var size int64
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) {
		size = c.MaxKeySetBytes
		c.Quota.KeySetBytes = 2*size + size/2
	}))
	variants := keySetVariants(t, bd.a.keys, 3)
	var ids []string
	for i, ks := range variants[:2] {
		resp := bd.uploadRaw(t, bd.a.secret, ks)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("upload %d: %d", i, resp.StatusCode)
		}
		var v api.KeySet
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.ID)
	}
	if ids[0] == ids[1] {
		t.Fatal("a key set with a coefficient changed has the same id")
	}
	blobs := bd.blobFiles(t)
	resp := bd.uploadRaw(t, bd.a.secret, variants[2])
	p := wantProblem(t, resp, http.StatusForbidden, "key sets hold")
	if p.Type != api.ProblemQuotaExceeded || p.Reason != api.ReasonQuotaKeySetBytes {
		t.Fatalf("third key set: %+v", p)
	}
	if n := bd.blobFiles(t); n != blobs {
		t.Fatalf("the refused upload left %d blob files", n-blobs)
	}
	q := bd.getQuota(t, bd.a.secret)
	wantItem(t, "key_set_bytes", q.KeySetBytes, 2*size, 2*size+size/2)
	wantItem(t, "key_sets", q.KeySets, 2, DefaultQuotaKeySets)
	wantItem(t, "blob_bytes", q.BlobBytes, 2*size, DefaultQuotaBlobBytes)
	if q.Usage.KeySetBytes != 2*size || q.Usage.JobBlobs != 0 {
		t.Fatalf("usage %+v", q.Usage)
	}
	// Tenant B has its own quota.
	if _, err := bd.b.client.UploadKeySet(bd.ctx, "tiny", bytes.NewReader(bd.b.keys), int64(len(bd.b.keys))); err != nil {
		t.Fatalf("tenant B: %v", err)
	}
	if err := bd.a.client.DeleteKeySet(bd.ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	// Chunked (no Content-Length): counted at the model's exact size.
	resp = bd.call(t, http.MethodPost, "/v1/keys?model=tiny", bd.a.secret, io.MultiReader(bytes.NewReader(variants[2])),
		http.Header{"Content-Type": {api.ContentTypeKeySet}})
	if resp.StatusCode != http.StatusCreated || resp.Request.ContentLength > 0 {
		t.Fatalf("chunked upload after a delete: %d (Content-Length %d)", resp.StatusCode, resp.Request.ContentLength)
	}
}

// TestQuotaKeySetsConcurrent: ten uploads of distinct key sets at once,
// with no admission cap, against a quota of three key sets: exactly three
// are stored, the others answer 403 quota-key-sets. The check and the
// insert let no interleaving overshoot within a process.
func TestQuotaKeySetsConcurrent(t *testing.T) {
	t.Parallel()
	const quota, uploads = 3, 10
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) {
		c.Quota.KeySets = quota
		c.Concurrency.UploadPerTenant, c.Concurrency.UploadPerProcess = -1, -1
	}))
	variants := keySetVariants(t, bd.a.keys, uploads)
	codes := make([]int, uploads)
	reasons := make([]string, uploads)
	var wg sync.WaitGroup
	for i, ks := range variants {
		wg.Go(func() {
			_, err := bd.a.client.UploadKeySet(bd.ctx, "tiny", bytes.NewReader(ks), int64(len(ks)))
			codes[i] = http.StatusCreated
			if err != nil {
				var ce *client.Error
				if errors.As(err, &ce) {
					codes[i], reasons[i] = ce.StatusCode, ce.Problem.Reason
				} else {
					codes[i] = -1
				}
			}
		})
	}
	wg.Wait()
	created := 0
	for i, c := range codes {
		switch {
		case c == http.StatusCreated:
			created++
		case c == http.StatusForbidden && reasons[i] == api.ReasonQuotaKeySets:
		default:
			t.Errorf("upload %d: %d %s", i, c, reasons[i])
		}
	}
	list, err := bd.a.client.KeySets(bd.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if created != quota || len(list) != quota {
		t.Fatalf("%d uploads created, %d key sets stored: want exactly %d", created, len(list), quota)
	}
}

// TestQuotaActiveJobs reproduces "queued jobs are unbounded": with no
// worker and a quota of three active jobs, ten inferences get three jobs
// and seven answers 429 quota-active-jobs with Retry-After (and the OIP
// error member); cancelling a job makes room for one more. Tenant B is not
// affected.
func TestQuotaActiveJobs(t *testing.T) {
	t.Parallel()
	const quota = 3
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) { c.Quota.ActiveJobs = quota }))
	ksA, ksB := bd.upload(t, bd.a), bd.upload(t, bd.b)
	infer := func(d device, ks string, seed uint64) *http.Response {
		_, ct := bd.input(t, d, seed)
		body, hdr := binaryInfer(t, ks, ct, "")
		hdr.Set("Prefer", "respond-async")
		return bd.call(t, http.MethodPost, "/v2/models/tiny/infer", d.secret, bytes.NewReader(body), hdr)
	}
	var jobs []api.Job
	for i := range 10 {
		resp := infer(bd.a, ksA, uint64(i))
		if i < quota {
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("inference %d: %d", i, resp.StatusCode)
			}
			var j api.Job
			if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
				t.Fatal(err)
			}
			jobs = append(jobs, j)
			continue
		}
		p := wantProblem(t, resp, http.StatusTooManyRequests, "queued or running")
		if p.Type != api.ProblemQuotaExceeded || p.Reason != api.ReasonQuotaActiveJobs {
			t.Fatalf("inference %d: %+v", i, p)
		}
		wantRetryAfter(t, resp)
	}
	stored, err := bd.store.ListJobs(bd.ctx, tenantOf(t, bd, "tenant-a"), 100)
	if err != nil || len(stored) != quota {
		t.Fatalf("%d jobs stored (%v), want %d", len(stored), err, quota)
	}
	wantItem(t, "active_jobs", bd.getQuota(t, bd.a.secret).ActiveJobs, quota, quota)
	if resp := infer(bd.b, ksB, 99); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("tenant B: %d", resp.StatusCode)
	}
	if _, err := bd.a.client.CancelJob(bd.ctx, jobs[0].ID); err != nil {
		t.Fatal(err)
	}
	if resp := infer(bd.a, ksA, 100); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("after a cancel: %d", resp.StatusCode)
	}
}

// TestQuotaBlobs: job inputs (and room for their results) count toward the
// tenant's stored bytes with its key sets: once an inference would exceed
// them it answers 403 quota-blob-bytes.
func TestQuotaBlobs(t *testing.T) {
	t.Parallel()
	var keySet, ciphertext int64
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) {
		keySet, ciphertext = c.MaxKeySetBytes, c.MaxCiphertextBytes
		// The key set and about two inferences (each reserves twice its
		// body while it runs, for the result to come).
		c.Quota.BlobBytes = keySet + 5*ciphertext
	}))
	ks := bd.upload(t, bd.a)
	refused := false
	for i := range 6 {
		_, ct := bd.input(t, bd.a, uint64(i))
		body, hdr := binaryInfer(t, ks, ct, "")
		hdr.Set("Prefer", "respond-async")
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(body), hdr)
		if resp.StatusCode == http.StatusAccepted {
			continue
		}
		p := wantProblem(t, resp, http.StatusForbidden, "more would exceed")
		if p.Reason != api.ReasonQuotaBlobBytes {
			t.Fatalf("inference %d: %+v", i, p)
		}
		refused = true
		break
	}
	if !refused {
		t.Fatal("no inference was refused by the blob-bytes quota")
	}
	u, err := bd.store.TenantUsage(bd.ctx, tenantOf(t, bd, "tenant-a"))
	if err != nil {
		t.Fatal(err)
	}
	if u.BlobBytes() > keySet+5*ciphertext {
		t.Fatalf("stored %d bytes, over the quota of %d", u.BlobBytes(), keySet+5*ciphertext)
	}
	q := bd.getQuota(t, bd.a.secret)
	if q.Usage.JobBlobs != u.JobBlobs || q.BlobBytes.Used != u.BlobBytes() {
		t.Fatalf("GET /v1/quota %+v, store %+v", q, u)
	}
}

// TestTenantFlood: tenant A floods the gateway with inferences from many
// goroutines at once; the per-tenant caps (rate, concurrency, active jobs)
// refuse most of them, while every inference of tenant B, made meanwhile,
// is accepted and its job succeeds. A's flood costs B nothing but the
// worker time of A's admitted jobs, which the active-jobs quota bounds.
func TestTenantFlood(t *testing.T) {
	t.Parallel()
	const flood, activeJobs = 60, 4
	bd := setup(t, withConfig(func(c *Config) {
		c.Quota.ActiveJobs = activeJobs
		c.Concurrency.InferPerTenant = 4
	}))
	ksA, ksB := bd.upload(t, bd.a), bd.upload(t, bd.b)
	_, ctA := bd.input(t, bd.a, 1)
	start := make(chan struct{})
	codes := make(chan int, flood)
	var wg sync.WaitGroup
	for i := range flood {
		wg.Go(func() {
			body, hdr := binaryInfer(t, ksA, ctA, fmt.Sprintf("flood-%d", i))
			req, _ := http.NewRequestWithContext(bd.ctx, http.MethodPost, bd.ts.URL+"/v2/models/tiny/infer", bytes.NewReader(body))
			req.Header = hdr
			req.Header.Set("Authorization", "Bearer "+bd.a.secret)
			req.Header.Set("Prefer", "wait=2")
			<-start
			resp, err := bd.ts.Client().Do(req)
			if err != nil {
				codes <- -1
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	close(start)
	for i := range 5 {
		x, ct := bd.input(t, bd.b, uint64(10+i))
		_, jobID, err := bd.b.client.Infer(bd.ctx, "tiny", ksB, ct, client.InferOptions{})
		if err != nil {
			t.Fatalf("tenant B's inference %d during A's flood: %v", i, err)
		}
		job, err := bd.b.client.WaitJob(bd.ctx, jobID)
		if err != nil || job.Status != api.JobSucceeded {
			t.Fatalf("tenant B's job %d: %+v, %v", i, job, err)
		}
		res, err := bd.b.client.Result(bd.ctx, jobID)
		if err != nil {
			t.Fatal(err)
		}
		bd.checkResult(t, bd.b, x, res)
	}
	wg.Wait()
	close(codes)
	seen := map[int]int{}
	for c := range codes {
		seen[c]++
	}
	if seen[http.StatusTooManyRequests]+seen[http.StatusServiceUnavailable] == 0 {
		t.Fatalf("tenant A's flood of %d was never refused: %v", flood, seen)
	}
	for c := range seen {
		switch c {
		case http.StatusOK, http.StatusAccepted, http.StatusTooManyRequests, http.StatusServiceUnavailable:
		default:
			t.Errorf("tenant A's flood got %d %d times: %v", c, seen[c], seen)
		}
	}
	t.Logf("tenant A's flood of %d: %v", flood, seen)
}

// TestQuotaConfigDefaults: the zero Quota and Concurrency select the
// defaults, negative fields none, and GET /v1/quota says so.
func TestQuotaConfigDefaults(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers(), withoutLimits())
	q, err := bd.a.client.Quota(bd.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if q.KeySets.Limit != nil || q.BlobBytes.Limit != nil || q.ActiveJobs.Limit != nil || q.Concurrency.Inferences.Limit != nil {
		t.Fatalf("no limits configured, GET /v1/quota shows %+v", q)
	}
	if len(q.RateLimits) != 0 {
		t.Fatalf("rate limits off, GET /v1/quota shows %+v", q.RateLimits)
	}
	d := (Config{}).withDefaults()
	if d.Quota != (Quota{DefaultQuotaKeySets, DefaultQuotaKeySetBytes, DefaultQuotaBlobs, DefaultQuotaBlobBytes, DefaultQuotaActiveJobs}) {
		t.Fatalf("default quota %+v", d.Quota)
	}
	if d.Concurrency != (Concurrency{DefaultInferPerTenant, DefaultInferPerProcess, DefaultUploadPerTenant, DefaultUploadPerProcess}) {
		t.Fatalf("default concurrency %+v", d.Concurrency)
	}
	if d.RateLimits != DefaultRateLimits {
		t.Fatalf("default rate limits %+v", d.RateLimits)
	}
	// With the defaults, GET /v1/quota shows them and the rate limits.
	bd2 := setup(t, withoutWorkers())
	q = bd2.getQuota(t, bd2.a.secret)
	wantItem(t, "key_sets", q.KeySets, 0, DefaultQuotaKeySets)
	wantItem(t, "inferences", q.Concurrency.Inferences, 0, DefaultInferPerTenant)
	if len(q.RateLimits) != 4 {
		t.Fatalf("rate limits %+v: want default, infer, upload, enroll", q.RateLimits)
	}
	for _, rl := range q.RateLimits {
		if rl.Policy == "default" && rl.Remaining != int64(DefaultRateLimits.Default.Burst-1) {
			t.Fatalf("default policy %+v: want the GET itself counted", rl)
		}
	}
	var _ storage.Quotas = bd.store // the store answers usage
}

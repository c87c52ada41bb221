package gateway

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/storage"
)

// routeCall is one request of TestOpenAPIEveryRoute.
type routeCall struct {
	method, path string
	key          string // API key, or "" for none
	body         []byte
	hdr          http.Header
	status       int
}

// TestOpenAPIEveryRoute exercises every route of the router with a
// success and an error, all through the OpenAPI validator (see
// openAPIValidated), so that no route's document goes unchecked. An
// operation that documents no 4xx answer is exercised with a wrong
// method on its path instead (405).
func TestOpenAPIEveryRoute(t *testing.T) {
	t.Parallel()
	bd := setup(t, withConfig(bigLimits))
	queued := setup(t, withoutWorkers()) // jobs stay queued: cancel works
	a := bd.a.secret
	ksID := bd.upload(t, bd.a)
	qKS := queued.upload(t, queued.a)
	_, ct := bd.input(t, bd.a, 1)
	_, qct := queued.input(t, queued.a, 1)
	bd.uploadAndWait(t, bd.a, "mine", testGraph("mine", 5))

	var calls []string // "METHOD status path" sent, for the report
	call := func(b *bundle, c routeCall) []byte {
		t.Helper()
		var body io.Reader
		if c.body != nil {
			body = bytes.NewReader(c.body)
		}
		resp := b.call(t, c.method, c.path, c.key, body, c.hdr)
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: status %d, want %d: %.300s", c.method, c.path, resp.StatusCode, c.status, got)
		}
		calls = append(calls, c.method+" "+c.path)
		return got
	}
	jsonHdr := http.Header{"Content-Type": {api.ContentTypeJSON}}
	textHdr := http.Header{"Content-Type": {"text/plain"}}
	async := http.Header{"Content-Type": {api.ContentTypeJSON}, "Prefer": {"respond-async"}}
	idOf := func(b []byte) string {
		var v struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(b, &v)
		if v.ID == "" {
			t.Fatalf("no id in %.300s", b)
		}
		return v.ID
	}

	// OIP.
	for _, p := range []string{"/metrics", "/openapi.yaml", "/v2", "/v2/health/live", "/v2/health/ready", "/.well-known/jwks.json"} {
		call(bd, routeCall{method: "GET", path: p, status: 200})
		call(bd, routeCall{method: "POST", path: p, status: 405})
	}
	call(bd, routeCall{method: "GET", path: "/v2/models", status: 200})
	call(bd, routeCall{method: "GET", path: "/v2/models", key: "hgk_not-a-key", status: 401})
	call(bd, routeCall{method: "GET", path: "/v2/models/tiny", status: 200})
	call(bd, routeCall{method: "GET", path: "/v2/models/nope", status: 404})
	call(bd, routeCall{method: "GET", path: "/v2/models/tiny/ready", status: 200})
	call(bd, routeCall{method: "GET", path: "/v2/models/nope/ready", status: 404})
	call(bd, routeCall{method: "GET", path: "/v2/models/mine/versions/1", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v2/models/tiny/versions/abc", status: 400})
	call(bd, routeCall{method: "GET", path: "/v2/models/mine/versions/1/ready", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v2/models/tiny/versions/2/ready", status: 404})
	call(bd, routeCall{method: "POST", path: "/v2/models/tiny/infer", key: a, body: jsonInferBody(t, "r1", ksID, ct), hdr: jsonHdr, status: 200})
	call(bd, routeCall{method: "POST", path: "/v2/models/tiny/infer", key: a, body: jsonInferBody(t, "", ksID, ct), hdr: textHdr, status: 415})
	job := idOf(call(bd, routeCall{method: "POST", path: "/v2/models/tiny/versions/1/infer", key: a, body: jsonInferBody(t, "", ksID, ct), hdr: async, status: 202}))
	call(bd, routeCall{method: "POST", path: "/v2/models/tiny/versions/9/infer", key: a, body: jsonInferBody(t, "", ksID, ct), hdr: jsonHdr, status: 404})

	// Key sets.
	call(bd, routeCall{method: "POST", path: "/v1/keys?model=tiny", key: a, body: bd.a.keys, hdr: http.Header{"Content-Type": {api.ContentTypeKeySet}}, status: 200})
	call(bd, routeCall{method: "POST", path: "/v1/keys?model=tiny", key: a, body: bd.a.keys, hdr: textHdr, status: 415})
	call(bd, routeCall{method: "GET", path: "/v1/keys", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/keys", status: 401})
	call(bd, routeCall{method: "GET", path: "/v1/keys/" + ksID, key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/keys/" + strings.Repeat("0", 64), key: a, status: 404})
	bKS := bd.upload(t, bd.b)
	call(bd, routeCall{method: "DELETE", path: "/v1/keys/" + bKS, key: bd.b.secret, status: 204})
	call(bd, routeCall{method: "DELETE", path: "/v1/keys/" + bKS, key: bd.b.secret, status: 404})

	// Resumable key-set uploads.
	size := len(bd.a.keys)
	upl := idOf(call(bd, routeCall{method: "POST", path: "/v1/keys/uploads", key: a, body: fmt.Appendf(nil, `{"model":"tiny","size":%d}`, size), hdr: jsonHdr, status: 201}))
	call(bd, routeCall{method: "POST", path: "/v1/keys/uploads", key: a, body: []byte(`{"model":"tiny","size":1}`), hdr: jsonHdr, status: 400})
	call(bd, routeCall{method: "HEAD", path: "/v1/keys/uploads/" + upl, key: a, status: 200})
	call(bd, routeCall{method: "HEAD", path: "/v1/keys/uploads/" + upl, key: bd.b.secret, status: 404})
	call(bd, routeCall{method: "GET", path: "/v1/keys/uploads/" + upl, key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/keys/uploads/" + upl, key: bd.b.secret, status: 404})
	half := bd.a.keys[:size/2]
	call(bd, routeCall{method: "PATCH", path: "/v1/keys/uploads/" + upl, key: a, body: half, hdr: chunkHeader(0, half), status: 204})
	call(bd, routeCall{method: "PATCH", path: "/v1/keys/uploads/" + upl, key: a, body: half, hdr: chunkHeader(0, half), status: 409})
	call(bd, routeCall{method: "PATCH", path: "/v1/keys/uploads/" + upl, key: a, body: bd.a.keys[size/2:], hdr: chunkHeader(int64(size/2), bd.a.keys[size/2:]), status: 200})
	upl = idOf(call(bd, routeCall{method: "POST", path: "/v1/keys/uploads", key: a, body: fmt.Appendf(nil, `{"model":"tiny","size":%d}`, size), hdr: jsonHdr, status: 201}))
	call(bd, routeCall{method: "DELETE", path: "/v1/keys/uploads/" + upl, key: a, status: 204})
	call(bd, routeCall{method: "DELETE", path: "/v1/keys/uploads/" + upl, key: a, status: 404})

	// Jobs.
	if _, err := bd.a.client.WaitJob(bd.ctx, job); err != nil {
		t.Fatal(err)
	}
	call(bd, routeCall{method: "GET", path: "/v1/jobs", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/jobs?limit=0", key: a, status: 400})
	call(bd, routeCall{method: "GET", path: "/v1/jobs/" + job, key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/jobs/job_nope", key: a, status: 404})
	call(bd, routeCall{method: "GET", path: "/v1/jobs/" + job + "/result", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/jobs/job_nope/result", key: a, status: 404})
	call(bd, routeCall{method: "GET", path: "/v1/jobs/" + job + "/events", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/jobs/job_nope/events", key: a, status: 404})
	qJob := idOf(call(queued, routeCall{method: "POST", path: "/v2/models/tiny/infer", key: queued.a.secret, body: jsonInferBody(t, "", qKS, qct), hdr: async, status: 202}))
	call(queued, routeCall{method: "POST", path: "/v1/jobs/" + qJob + "/cancel", key: queued.a.secret, status: 200})
	call(bd, routeCall{method: "POST", path: "/v1/jobs/" + job + "/cancel", key: a, status: 409})

	// Uploaded models.
	call(bd, routeCall{method: "POST", path: "/v1/models?name=other&" + testUploadOptions.Encode(), key: a, body: graphJSON(t, testGraph("other", 6)), hdr: http.Header{"Content-Type": {api.ContentTypeIRJSON}}, status: 202})
	call(bd, routeCall{method: "POST", path: "/v1/models?name=other", key: a, body: []byte("{}"), hdr: textHdr, status: 415})
	call(bd, routeCall{method: "GET", path: "/v1/models", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/models", status: 401})
	call(bd, routeCall{method: "GET", path: "/v1/models/mine", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/models/nope", key: a, status: 404})
	call(bd, routeCall{method: "GET", path: "/v1/models/mine/versions/1", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/models/mine/versions/9", key: a, status: 404})

	// Budgets.
	budget := []byte(`{"epsilon":1e6,"delta":1e-5,"period":"month","reason":"test"}`)
	call(bd, routeCall{method: "GET", path: "/v1/budget", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/budget", status: 401})
	call(bd, routeCall{method: "GET", path: "/v1/budget/tiny", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/budget/tiny", status: 401})
	call(bd, routeCall{method: "PUT", path: "/v1/budgets/mine", key: a, body: budget, hdr: jsonHdr, status: 200})
	call(bd, routeCall{method: "PUT", path: "/v1/budgets/tiny", key: a, body: budget, hdr: jsonHdr, status: 403})
	call(bd, routeCall{method: "GET", path: "/v1/budget/ledger", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/budget/ledger?limit=0", key: a, status: 400})
	call(bd, routeCall{method: "DELETE", path: "/v1/budgets/mine", key: a, status: 204})
	call(bd, routeCall{method: "DELETE", path: "/v1/budgets/mine", key: a, status: 404})
	call(bd, routeCall{method: "GET", path: "/v1/quota", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/quota", status: 401})

	// Policies.
	policy := []byte(`{"allow_api_key":true,"formats":["native"],"statuses":["affirming"]}`)
	call(bd, routeCall{method: "GET", path: "/v1/policy", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/policy", status: 401})
	call(bd, routeCall{method: "PUT", path: "/v1/policy", key: a, body: policy, hdr: jsonHdr, status: 200})
	call(bd, routeCall{method: "PUT", path: "/v1/policy", key: a, body: []byte(`{}`), hdr: jsonHdr, status: 400})
	call(bd, routeCall{method: "GET", path: "/v1/policies/tiny", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/policies/tiny", status: 401})
	call(bd, routeCall{method: "PUT", path: "/v1/policies/tiny", key: a, body: policy, hdr: jsonHdr, status: 200})
	call(bd, routeCall{method: "PUT", path: "/v1/policies/tiny", key: a, body: policy, hdr: textHdr, status: 415})
	call(bd, routeCall{method: "GET", path: "/v1/policies", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/policies", status: 401})
	call(bd, routeCall{method: "DELETE", path: "/v1/policies/tiny", key: a, status: 204})
	call(bd, routeCall{method: "DELETE", path: "/v1/policies/tiny", key: a, status: 404})
	call(bd, routeCall{method: "DELETE", path: "/v1/policy", key: a, status: 204})
	call(bd, routeCall{method: "DELETE", path: "/v1/policy", key: a, status: 404})

	// Trust anchors, enrollment, devices.
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ev := nativeDevice(key, bytes.Repeat([]byte{7}, 32))
	endorse(t, bd.ctx, bd.a.client, ev) // PUT /v1/attestation/native/{kind}, twice
	call(bd, routeCall{method: "PUT", path: "/v1/attestation/native/endorsements", key: a, body: []byte(`{"keys":[{"public_key":"not pem"}]}`), hdr: jsonHdr, status: 400})
	call(bd, routeCall{method: "GET", path: "/v1/attestation", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/attestation", status: 401})
	call(bd, routeCall{method: "GET", path: "/v1/attestation/native/endorsements", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/attestation/sgx/endorsements", key: a, status: 404})
	call(bd, routeCall{method: "POST", path: "/v1/enroll/challenge", key: a, status: 201})
	call(bd, routeCall{method: "POST", path: "/v1/enroll/challenge", status: 401})
	_, devKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dev, _, err := bd.a.client.Enroll(bd.ctx, ev, devKey) // POST /v1/enroll
	if err != nil {
		t.Fatalf("enrolling: %v", err)
	}
	call(bd, routeCall{method: "POST", path: "/v1/enroll", key: a, body: []byte(`{}`), hdr: jsonHdr, status: 400})
	call(bd, routeCall{method: "GET", path: "/v1/devices", key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/devices", status: 401})
	call(bd, routeCall{method: "GET", path: "/v1/devices/" + dev.ID, key: a, status: 200})
	call(bd, routeCall{method: "GET", path: "/v1/devices/dev_nope", key: a, status: 404})
	call(bd, routeCall{method: "POST", path: "/v1/devices/" + dev.ID + "/revoke", key: a, status: 200})
	call(bd, routeCall{method: "POST", path: "/v1/devices/dev_nope/revoke", key: a, status: 404})
	call(bd, routeCall{method: "DELETE", path: "/v1/attestation/native/" + storage.DocReferenceValues, key: a, status: 204})
	call(bd, routeCall{method: "DELETE", path: "/v1/attestation/native/" + storage.DocReferenceValues, key: a, status: 404})
	_ = attest.FormatNative

	// Deleting a model (once its compile job is done).
	if _, err := bd.a.client.WaitModel(bd.ctx, "other", 1); err != nil {
		t.Fatal(err)
	}
	call(bd, routeCall{method: "DELETE", path: "/v1/models/other", key: a, status: 204})
	call(bd, routeCall{method: "DELETE", path: "/v1/models/other", key: a, status: 404})

	// Every route of the router saw a success and an error.
	var routes []string
	if err := chi.Walk(bd.srv.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, method+" "+route)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	oa, err := openAPI()
	if err != nil {
		t.Fatal(err)
	}
	covs := []*openAPICoverage{coverageOf(bd.srv), coverageOf(queued.srv)}
	for _, r := range routes {
		method, path, _ := strings.Cut(r, " ")
		var success, failure bool
		for _, c := range covs {
			s, f := c.get(r)
			success, failure = success || s, failure || f
		}
		if !failure && !documentsClientError(oa, method, path) && slices.Contains(calls, "POST "+path) && method != http.MethodPost {
			failure = true // a 405 stands in for the error of an operation that documents none
		}
		if !success || !failure {
			t.Errorf("route %s was exercised with success %v and error %v: give TestOpenAPIEveryRoute a request for each", r, success, failure)
		}
	}
}

// documentsClientError reports whether the operation documents a 4xx.
func documentsClientError(oa *openAPIDoc, method, path string) bool {
	item := oa.doc.Paths.Value(path)
	if item == nil {
		return false
	}
	op := item.GetOperation(method)
	if op == nil {
		return false
	}
	for code := range op.Responses.Map() {
		if strings.HasPrefix(code, "4") {
			return true
		}
	}
	return false
}

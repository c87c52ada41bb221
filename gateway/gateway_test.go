package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/storage"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	ksID := bd.upload(t, bd.a)
	model := string(bd.model.ID())

	t.Run("ok/wait", func(t *testing.T) {
		x, ct := bd.input(t, bd.a, 1)
		result, jobID, err := bd.a.client.Infer(bd.ctx, model, ksID, ct, client.InferOptions{Wait: true})
		if err != nil {
			t.Fatal(err)
		}
		if jobID == "" {
			t.Fatal("no job id")
		}
		bd.checkResult(t, bd.a, x, result)
	})
	t.Run("ok/async", func(t *testing.T) {
		x, ct := bd.input(t, bd.a, 2)
		result, jobID, err := bd.a.client.Infer(bd.ctx, model, ksID, ct, client.InferOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if result != nil || jobID == "" {
			t.Fatalf("async infer: result %d bytes, job %q", len(result), jobID)
		}
		job, err := bd.a.client.WaitJob(bd.ctx, jobID)
		if err != nil {
			t.Fatal(err)
		}
		if job.Status != api.JobSucceeded || job.Result == "" || job.Attempts != 1 {
			t.Fatalf("job %+v", job)
		}
		result, err = bd.a.client.Result(bd.ctx, jobID)
		if err != nil {
			t.Fatal(err)
		}
		bd.checkResult(t, bd.a, x, result)
	})
	t.Run("ok/async-then-wait", func(t *testing.T) {
		// Prefer: respond-async on the wire, then the client polls.
		x, ct := bd.input(t, bd.a, 3)
		_, jobID, err := bd.a.client.Infer(bd.ctx, model, ksID, ct, client.InferOptions{})
		if err != nil {
			t.Fatal(err)
		}
		resp := bd.call(t, http.MethodGet, "/v1/jobs/"+jobID, bd.a.secret, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET job: %d", resp.StatusCode)
		}
		if _, err := bd.a.client.WaitJob(bd.ctx, jobID); err != nil {
			t.Fatal(err)
		}
		result, err := bd.a.client.Result(bd.ctx, jobID)
		if err != nil {
			t.Fatal(err)
		}
		bd.checkResult(t, bd.a, x, result)
	})
	t.Run("ok/json-base64", func(t *testing.T) {
		x, ct := bd.input(t, bd.a, 4)
		body, _ := json.Marshal(api.InferRequest{
			ID: "req-1",
			Inputs: []api.Tensor{{
				Name: api.InputName, Shape: []int64{1}, Datatype: api.DatatypeBytes,
				Parameters: api.Parameters{
					api.ParamContentType: api.ContentTypeCiphertext,
					api.ParamKeySetID:    ksID,
					api.ParamBinaryData:  false,
				},
				Data: mustJSON(t, []string{base64.StdEncoding.EncodeToString(ct)}),
			}},
		})
		resp := bd.call(t, http.MethodPost, "/v2/models/"+model+"/infer", bd.a.secret, bytes.NewReader(body),
			http.Header{"Prefer": {"wait=10"}, "Content-Type": {api.ContentTypeJSON}})
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if got := resp.Header.Get(api.HeaderPreferenceApplied); got != "wait=10" {
			t.Errorf("Preference-Applied %q", got)
		}
		var ir api.InferResponse
		if err := json.NewDecoder(resp.Body).Decode(&ir); err != nil {
			t.Fatal(err)
		}
		if ir.ID != "req-1" || ir.ModelName != model || len(ir.Outputs) != 1 {
			t.Fatalf("response %+v", ir)
		}
		var data []string
		if err := json.Unmarshal(ir.Outputs[0].Data, &data); err != nil || len(data) != 1 {
			t.Fatalf("output data %s: %v", ir.Outputs[0].Data, err)
		}
		result, err := base64.StdEncoding.DecodeString(data[0])
		if err != nil {
			t.Fatal(err)
		}
		bd.checkResult(t, bd.a, x, result)
	})
	t.Run("ok/lists", func(t *testing.T) {
		jobs, err := bd.a.client.Jobs(bd.ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) < 3 {
			t.Fatalf("%d jobs listed", len(jobs))
		}
		keys, err := bd.a.client.KeySets(bd.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || keys[0].ID != ksID || keys[0].Model != model {
			t.Fatalf("key sets %+v", keys)
		}
	})
	t.Run("ok/upload-again", func(t *testing.T) {
		resp := bd.call(t, http.MethodPost, "/v1/keys?model="+model, bd.a.secret, bytes.NewReader(bd.a.keys), nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("second upload: status %d, want 200", resp.StatusCode)
		}
		if loc := resp.Header.Get("Location"); loc != "/v1/keys/"+ksID {
			t.Fatalf("Location %q", loc)
		}
	})
	t.Run("ok/metrics", func(t *testing.T) {
		resp := bd.call(t, http.MethodGet, "/metrics", "", nil, nil)
		b, _ := io.ReadAll(resp.Body)
		for _, want := range []string{
			`hegate_http_requests_total{code="201",method="POST",route="/v1/keys"}`,
			`hegate_jobs_total{model="tiny",outcome="succeeded"}`,
			`hegate_evaluation_seconds_count{model="tiny"}`,
			"hegate_keyset_cache_hits_total", "hegate_keyset_cache_misses_total 1", "hegate_keyset_cache_bytes",
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
	t.Run("ok/delete-key-set", func(t *testing.T) {
		if err := bd.a.client.DeleteKeySet(bd.ctx, ksID); err != nil {
			t.Fatal(err)
		}
		_, ct := bd.input(t, bd.a, 5)
		_, _, err := bd.a.client.Infer(bd.ctx, model, ksID, ct, client.InferOptions{Wait: true})
		if client.StatusOf(err) != http.StatusNotFound {
			t.Fatalf("infer with a deleted key set: %v", err)
		}
	})
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMetadataAndHealth(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	c, err := client.New(bd.ts.URL, "", client.WithHTTPClient(bd.ts.Client()))
	if err != nil {
		t.Fatal(err)
	}
	srvMeta, err := c.Server(bd.ctx)
	if err != nil || srvMeta.Name != "hegate" || len(srvMeta.Extensions) == 0 {
		t.Fatalf("server metadata %+v, %v", srvMeta, err)
	}
	man, err := c.Model(bd.ctx, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if want := bd.model.Manifest(); man.KeySetBytes != want.KeySetBytes || man.Params.Fingerprint != want.Params.Fingerprint {
		t.Fatalf("served manifest %+v, want %+v", man, want)
	}
	// A device can work from the served manifest alone.
	if _, err := c.Device(bd.ctx, "tiny", true); err != nil {
		t.Fatal(err)
	}
	models, err := c.Models(bd.ctx)
	if err != nil || len(models) != 1 || models[0].Name != "tiny" {
		t.Fatalf("models %+v, %v", models, err)
	}
	for path, want := range map[string]string{
		"/v2/health/live":       `"live":true`,
		"/v2/health/ready":      `"ready":true`,
		"/v2/models/tiny/ready": `"ready":true`,
	} {
		resp := bd.call(t, http.MethodGet, path, "", nil, nil)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	t.Run("fail/unknown-model", func(t *testing.T) {
		resp := bd.call(t, http.MethodGet, "/v2/models/nope", "", nil, nil)
		wantProblem(t, resp, http.StatusNotFound, `model "nope" not found`)
	})
	t.Run("fail/unknown-route", func(t *testing.T) {
		resp := bd.call(t, http.MethodGet, "/v1/nothing", "", nil, nil)
		wantProblem(t, resp, http.StatusNotFound, "no route")
	})
	t.Run("fail/method-not-allowed", func(t *testing.T) {
		resp := bd.call(t, http.MethodPut, "/v1/keys", "", nil, nil)
		p := wantProblem(t, resp, http.StatusMethodNotAllowed, "PUT")
		if p.Type != api.ProblemMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST" {
			t.Fatalf("type %q, Allow %q", p.Type, resp.Header.Get("Allow"))
		}
	})
	t.Run("ok/openapi", func(t *testing.T) {
		resp := bd.call(t, http.MethodGet, "/openapi.yaml", "", nil, nil)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(b, []byte("openapi: 3.1")) {
			t.Fatalf("GET /openapi.yaml: %d", resp.StatusCode)
		}
	})
}

func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	const id = "0000000000000000000000000000000000000000000000000000000000000000"
	routes := []struct{ method, path string }{
		{http.MethodPost, "/v1/keys?model=tiny"},
		{http.MethodGet, "/v1/keys"},
		{http.MethodGet, "/v1/keys/" + id},
		{http.MethodDelete, "/v1/keys/" + id},
		{http.MethodGet, "/v1/jobs"},
		{http.MethodGet, "/v1/jobs/job1"},
		{http.MethodGet, "/v1/jobs/job1/result"},
		{http.MethodPost, "/v1/jobs/job1/cancel"},
		{http.MethodPost, "/v2/models/tiny/infer"},
	}
	unknownSecret, _, _, err := NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]string{
		"none":      "",
		"malformed": "Bearer hgk_short",
		"basic":     "Basic dXNlcjpwYXNz",
		"unknown":   "Bearer " + unknownSecret,
	}
	for _, r := range routes {
		for name, cred := range creds {
			t.Run("fail/"+name+r.method+r.path, func(t *testing.T) {
				hdr := http.Header{}
				if cred != "" {
					hdr.Set("Authorization", cred)
				}
				resp := bd.call(t, r.method, r.path, "", strings.NewReader("{}"), hdr)
				p := wantProblem(t, resp, http.StatusUnauthorized, "")
				if p.Type != api.ProblemUnauthenticated {
					t.Fatalf("problem type %q", p.Type)
				}
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Fatal("no WWW-Authenticate")
				}
			})
		}
	}
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	ksA := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 1)
	_, jobA, err := bd.a.client.Infer(bd.ctx, "tiny", ksA, ct, client.InferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := bd.b.client
	for name, call := range map[string]func() error{
		"get-key-set":    func() error { _, err := b.KeySet(bd.ctx, ksA); return err },
		"delete-key-set": func() error { return b.DeleteKeySet(bd.ctx, ksA) },
		"get-job":        func() error { _, err := b.Job(bd.ctx, jobA); return err },
		"job-result":     func() error { _, err := b.Result(bd.ctx, jobA); return err },
		"cancel-job":     func() error { _, err := b.CancelJob(bd.ctx, jobA); return err },
		"infer-with-a-key-set": func() error {
			_, ctB := bd.input(t, bd.b, 2)
			_, _, err := b.Infer(bd.ctx, "tiny", ksA, ctB, client.InferOptions{Wait: true})
			return err
		},
	} {
		t.Run("fail/"+name, func(t *testing.T) {
			err := call()
			var ce *client.Error
			if !errors.As(err, &ce) || ce.StatusCode != http.StatusNotFound || ce.Problem.Type != api.ProblemNotFound {
				t.Fatalf("tenant B: %v, want 404", err)
			}
		})
	}
	t.Run("ok/lists-are-scoped", func(t *testing.T) {
		keys, err := b.KeySets(bd.ctx)
		if err != nil || len(keys) != 0 {
			t.Fatalf("tenant B key sets %+v, %v", keys, err)
		}
		jobs, err := b.Jobs(bd.ctx, 0)
		if err != nil || len(jobs) != 0 {
			t.Fatalf("tenant B jobs %+v, %v", jobs, err)
		}
		// A's objects are intact.
		if _, err := bd.a.client.KeySet(bd.ctx, ksA); err != nil {
			t.Fatal(err)
		}
		if job, err := bd.a.client.Job(bd.ctx, jobA); err != nil || job.Status != api.JobQueued {
			t.Fatalf("A's job %+v, %v", job, err)
		}
	})
}

func TestKeySetUploadRejected(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	good := bd.a.keys
	size := int64(len(good))
	garbage := bytes.Repeat([]byte{0x5a}, len(good))
	badMagic := append([]byte("XXXX"), good[4:]...)
	// A key set for another model (other weights, same parameters) has the
	// same size; a model with other Galois keys would differ in count.
	corrupt := bytes.Clone(good)
	for i := len(corrupt) - 64; i < len(corrupt); i++ {
		corrupt[i] = 0xff // coefficients above the modulus
	}
	tests := []struct {
		name   string
		path   string
		body   []byte
		size   int64 // -1: chunked
		hdr    http.Header
		status int
		detail string
	}{
		{"fail/garbage", "/v1/keys?model=tiny", garbage, size, nil, 400, "bad magic"},
		{"fail/bad-magic-chunked", "/v1/keys?model=tiny", badMagic, -1, nil, 400, "bad magic"},
		{"fail/truncated", "/v1/keys?model=tiny", good[:size/2], size / 2, nil, 400, "needs exactly"},
		{"fail/truncated-chunked", "/v1/keys?model=tiny", good[:size/2], -1, nil, 400, "the upload ends after"},
		{"fail/empty", "/v1/keys?model=tiny", nil, 0, nil, 400, ""},
		{"fail/oversized", "/v1/keys?model=tiny", append(bytes.Clone(good), 0), size + 1, nil, 413, "exceeds the limit"},
		{"fail/oversized-chunked", "/v1/keys?model=tiny", append(bytes.Clone(good), 1, 2, 3), -1, nil, 413, ""},
		{"fail/corrupt-coefficients", "/v1/keys?model=tiny", corrupt, size, nil, 400, "key set"},
		{"fail/no-model", "/v1/keys", good, size, nil, 400, "name the model"},
		{"fail/unknown-model", "/v1/keys?model=nope", good, size, nil, 404, `model "nope" not found`},
		{"fail/content-type", "/v1/keys?model=tiny", good, size, http.Header{"Content-Type": {"text/plain"}}, 415, "Content-Type"},
	}
	before := bd.blobFiles(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(tc.body)
			if tc.size < 0 {
				body = io.MultiReader(body) // hides the length: chunked
			}
			req, err := http.NewRequestWithContext(bd.ctx, http.MethodPost, bd.ts.URL+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.size >= 0 {
				req.ContentLength = tc.size
			}
			for k, v := range tc.hdr {
				req.Header[k] = v
			}
			req.Header.Set("Authorization", "Bearer "+bd.a.secret)
			resp, err := bd.ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			wantProblem(t, resp, tc.status, tc.detail)
			if n := bd.blobFiles(t); n != before {
				t.Fatalf("%d blob files after a rejected upload, %d before", n, before)
			}
		})
	}
	keys, err := bd.a.client.KeySets(bd.ctx)
	if err != nil || len(keys) != 0 {
		t.Fatalf("key sets after rejected uploads: %+v, %v", keys, err)
	}
}

// inferBody builds a binary-extension request around one BYTES element. It
// asks for the job at once (Prefer: respond-async): without it the gateway
// would wait for the result.
func inferBody(t *testing.T, req api.InferRequest, elem []byte) ([]byte, http.Header) {
	t.Helper()
	hdr := mustJSON(t, req)
	body := append(bytes.Clone(hdr), api.AppendBytesElement(nil, elem)...)
	return body, http.Header{
		api.HeaderInferenceContentLength: {strconv.Itoa(len(hdr))},
		"Content-Type":                   {api.ContentTypeOctetStream},
		api.HeaderPrefer:                 {"respond-async"},
	}
}

func bytesInput(params api.Parameters) api.InferRequest {
	return api.InferRequest{Inputs: []api.Tensor{{
		Name: api.InputName, Shape: []int64{1}, Datatype: api.DatatypeBytes, Parameters: params,
	}}}
}

func TestInferRejected(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	ksID := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 1)
	params := func(size int, edit func(api.Parameters)) api.Parameters {
		p := api.Parameters{
			api.ParamContentType:    api.ContentTypeCiphertext,
			api.ParamKeySetID:       ksID,
			api.ParamBinaryDataSize: api.BytesElementOverhead + size,
		}
		if edit != nil {
			edit(p)
		}
		return p
	}
	garbage := bytes.Repeat([]byte{0xa5}, len(ct))
	maxCT := bd.model.Manifest().CiphertextBytes
	type tcase struct {
		name   string
		model  string
		body   []byte
		hdr    http.Header
		status int
		detail string
	}
	binary := func(name string, req api.InferRequest, elem []byte, status int, detail string) tcase {
		body, hdr := inferBody(t, req, elem)
		return tcase{name, "tiny", body, hdr, status, detail}
	}
	twoInputs := bytesInput(params(len(ct), nil))
	twoInputs.Inputs = append(twoInputs.Inputs, twoInputs.Inputs[0])
	fp32 := bytesInput(params(len(ct), nil))
	fp32.Inputs[0].Datatype = "FP32"
	shape2 := bytesInput(params(len(ct), nil))
	shape2.Inputs[0].Shape = []int64{2}
	tests := []tcase{
		binary("fail/garbage-ciphertext", bytesInput(params(len(garbage), nil)), garbage, 400, "ciphertext"),
		binary("fail/truncated-ciphertext", bytesInput(params(len(ct)/2, nil)), ct[:len(ct)/2], 400, "ciphertext"),
		binary("fail/oversized-ciphertext", bytesInput(params(int(maxCT)+1, nil)), make([]byte, maxCT+1), 413, ""),
		binary("fail/two-inputs", twoInputs, ct, 400, "2 inputs"),
		binary("fail/datatype", fp32, ct, 400, "datatype"),
		binary("fail/shape", shape2, ct, 400, "shape"),
		binary("fail/no-content-type", bytesInput(params(len(ct), func(p api.Parameters) { delete(p, api.ParamContentType) })), ct, 400, "content_type"),
		binary("fail/wrong-content-type", bytesInput(params(len(ct), func(p api.Parameters) { p[api.ParamContentType] = "image/png" })), ct, 400, "content_type"),
		binary("fail/no-key-set", bytesInput(params(len(ct), func(p api.Parameters) { delete(p, api.ParamKeySetID) })), ct, 400, "key_set_id"),
		binary("fail/malformed-key-set", bytesInput(params(len(ct), func(p api.Parameters) { p[api.ParamKeySetID] = "../etc" })), ct, 400, "key_set_id"),
		binary("fail/unknown-key-set", bytesInput(params(len(ct), func(p api.Parameters) { p[api.ParamKeySetID] = strings.Repeat("ab", 32) })), ct, 404, "key set"),
		binary("fail/size-mismatch", bytesInput(params(len(ct)+9, nil)), ct, 400, "binary_data_size"),
		binary("fail/no-size", bytesInput(params(len(ct), func(p api.Parameters) { delete(p, api.ParamBinaryDataSize) })), ct, 400, "binary_data_size"),
		{"fail/unknown-model", "nope", nil, nil, 404, `model "nope" not found`},
		{"fail/header-past-body", "tiny", []byte(`{"inputs":[]}`), http.Header{api.HeaderInferenceContentLength: {"100"}}, 400, "ends inside"},
		{"fail/header-not-json", "tiny", []byte(`not json at all`), http.Header{api.HeaderInferenceContentLength: {"15"}}, 400, "not a valid JSON"},
		{"fail/header-length", "tiny", []byte(`{}`), http.Header{api.HeaderInferenceContentLength: {"-3"}}, 400, api.HeaderInferenceContentLength},
		{"fail/plain-json-without-data", "tiny", mustJSON(t, bytesInput(api.Parameters{
			api.ParamContentType: api.ContentTypeCiphertext, api.ParamKeySetID: ksID,
		})), nil, 400, "no data"},
		{"fail/plain-json-bad-base64", "tiny", mustJSON(t, api.InferRequest{Inputs: []api.Tensor{{
			Name: api.InputName, Shape: []int64{1}, Datatype: api.DatatypeBytes,
			Parameters: api.Parameters{api.ParamContentType: api.ContentTypeCiphertext, api.ParamKeySetID: ksID, api.ParamBinaryData: false},
			Data:       json.RawMessage(`["!!!"]`),
		}}}), nil, 400, "base64"},
	}
	before := bd.blobFiles(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := bd.call(t, http.MethodPost, "/v2/models/"+tc.model+"/infer", bd.a.secret, bytes.NewReader(tc.body), tc.hdr)
			wantProblem(t, resp, tc.status, tc.detail)
		})
	}
	if n := bd.blobFiles(t); n != before {
		t.Fatalf("%d blob files after rejected inferences, %d before", n, before)
	}
	if jobs, err := bd.a.client.Jobs(bd.ctx, 0); err != nil || len(jobs) != 0 {
		t.Fatalf("jobs after rejected inferences: %d, %v", len(jobs), err)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	ksID := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 1)
	opts := client.InferOptions{IdempotencyKey: "retry-me-1"}
	_, first, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, ct, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("ok/same-request", func(t *testing.T) {
		_, again, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, ct, opts)
		if err != nil {
			t.Fatal(err)
		}
		if again != first {
			t.Fatalf("retry made job %s, want %s", again, first)
		}
		jobs, err := bd.a.client.Jobs(bd.ctx, 0)
		if err != nil || len(jobs) != 1 || jobs[0].IdempotencyKey != opts.IdempotencyKey {
			t.Fatalf("jobs %+v, %v", jobs, err)
		}
	})
	t.Run("ok/other-tenant-same-key", func(t *testing.T) {
		ksB := bd.upload(t, bd.b)
		_, ctB := bd.input(t, bd.b, 2)
		_, jobB, err := bd.b.client.Infer(bd.ctx, "tiny", ksB, ctB, opts)
		if err != nil {
			t.Fatal(err)
		}
		if jobB == first {
			t.Fatal("tenants share an idempotency key space")
		}
	})
	t.Run("fail/different-request", func(t *testing.T) {
		_, other := bd.input(t, bd.a, 3)
		_, _, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, other, opts)
		var ce *client.Error
		if !errors.As(err, &ce) || ce.StatusCode != http.StatusConflict {
			t.Fatalf("reused key for another ciphertext: %v, want 409", err)
		}
	})
	t.Run("fail/key-too-long", func(t *testing.T) {
		_, _, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, ct, client.InferOptions{IdempotencyKey: strings.Repeat("k", 300)})
		if client.StatusOf(err) != http.StatusBadRequest {
			t.Fatalf("long key: %v", err)
		}
	})
}

func TestJobLifecycle(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	ksID := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 1)
	_, jobID, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, ct, client.InferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp := bd.call(t, http.MethodGet, "/v1/jobs/"+jobID+"/result", bd.a.secret, nil, nil)
	wantProblem(t, resp, http.StatusConflict, "is queued")

	job, err := bd.a.client.CancelJob(bd.ctx, jobID)
	if err != nil || job.Status != api.JobCancelled {
		t.Fatalf("cancel: %+v, %v", job, err)
	}
	resp = bd.call(t, http.MethodPost, "/v1/jobs/"+jobID+"/cancel", bd.a.secret, nil, nil)
	wantProblem(t, resp, http.StatusConflict, "can no longer be cancelled")
	resp = bd.call(t, http.MethodGet, "/v1/jobs/"+jobID+"/result", bd.a.secret, nil, nil)
	wantProblem(t, resp, http.StatusConflict, "was cancelled")

	// A cancelled job is skipped by the runner.
	if err := bd.runner.Handle(bd.ctx, hegate.JobID(jobID)); err != nil {
		t.Fatalf("Handle on a cancelled job: %v", err)
	}

	t.Run("fail/key-set-deleted-before-run", func(t *testing.T) {
		_, jobID, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, ct, client.InferOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := bd.a.client.DeleteKeySet(bd.ctx, ksID); err != nil {
			t.Fatal(err)
		}
		if err := bd.runner.Handle(bd.ctx, hegate.JobID(jobID)); err != nil {
			t.Fatalf("Handle: %v (a client fault must not be retried)", err)
		}
		job, err := bd.a.client.Job(bd.ctx, jobID)
		if err != nil || job.Status != api.JobFailed || !strings.Contains(job.Error, "was deleted") {
			t.Fatalf("job %+v, %v", job, err)
		}
		resp := bd.call(t, http.MethodGet, "/v1/jobs/"+jobID+"/result", bd.a.secret, nil, nil)
		wantProblem(t, resp, http.StatusConflict, "was deleted")
	})
	t.Run("fail/bad-limit", func(t *testing.T) {
		resp := bd.call(t, http.MethodGet, "/v1/jobs?limit=0", bd.a.secret, nil, nil)
		wantProblem(t, resp, http.StatusBadRequest, "limit")
	})
}

func TestRunnerRetriesInfrastructureErrors(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	ksID := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 1)
	_, jobID, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, ct, client.InferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Remove the input blob: an infrastructure fault, retried, then failed
	// on the last attempt (MaxAttempts 2) with a reason that says nothing
	// internal.
	jobs, _ := bd.store.ListJobs(bd.ctx, mustTenant(t, bd), 1)
	if err := bd.blobs.Delete(bd.ctx, jobs[0].InputBlob); err != nil {
		t.Fatal(err)
	}
	if err := bd.runner.Handle(bd.ctx, hegate.JobID(jobID)); err == nil {
		t.Fatal("first attempt: want an error so the queue retries")
	}
	if err := bd.runner.Handle(bd.ctx, hegate.JobID(jobID)); err != nil {
		t.Fatalf("last attempt: %v, want nil after failing the job", err)
	}
	got, err := bd.a.client.Job(bd.ctx, jobID)
	if err != nil || got.Status != api.JobFailed || got.Error != failedInternally {
		t.Fatalf("job %+v, %v", got, err)
	}
}

func mustTenant(t *testing.T, bd *bundle) hegate.TenantID {
	t.Helper()
	tn, err := bd.store.GetTenantByName(bd.ctx, "tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	return tn.ID
}

func TestPanicBecomes500(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	bd.srv.router.Get("/panic", func(http.ResponseWriter, *http.Request) { panic("secret internals") })
	resp := bd.call(t, http.MethodGet, "/panic", "", nil, nil)
	p := wantProblem(t, resp, http.StatusInternalServerError, "request id")
	if strings.Contains(p.Detail, "secret") {
		t.Fatalf("500 detail leaks the panic: %q", p.Detail)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	ok := Config{Store: bd.store, Blobs: bd.blobs, Models: []*he.Model{bd.model}}
	tests := map[string]struct {
		edit  func(*Config)
		field string
	}{
		"ok/defaults":          {func(*Config) {}, ""},
		"fail/store":           {func(c *Config) { c.Store = nil }, "Config.Store"},
		"fail/blobs":           {func(c *Config) { c.Blobs = nil }, "Config.Blobs"},
		"fail/no-models":       {func(c *Config) { c.Models = nil }, "Config.Models"},
		"fail/nil-model":       {func(c *Config) { c.Models = []*he.Model{nil} }, "Config.Models[0]"},
		"fail/duplicate-model": {func(c *Config) { c.Models = []*he.Model{bd.model, bd.model} }, "Config.Models[0] and Models[1]"},
		"fail/key-set-limit":   {func(c *Config) { c.MaxKeySetBytes = 10 }, "Config.MaxKeySetBytes"},
		"fail/ciphertext":      {func(c *Config) { c.MaxCiphertextBytes = 10 }, "Config.MaxCiphertextBytes"},
		"fail/negative-wait":   {func(c *Config) { c.WaitTimeout = -1 }, "Config.WaitTimeout"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Validate: %v, want an error naming %s", err, tc.field)
			}
		})
	}
	if _, err := NewRunner(RunnerConfig{Store: bd.store, Blobs: bd.blobs}); err == nil || !strings.Contains(err.Error(), "RunnerConfig.Models") {
		t.Fatalf("NewRunner without models: %v", err)
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		err    error
		status int
	}{
		"ok/invalid":         {hegate.E("x", hegate.KindInvalid, nil, "bad"), 400},
		"ok/wrapped-kind":    {errors.Join(errors.New("ctx"), hegate.E("x", hegate.KindTooLarge, nil, "")), 413},
		"ok/storage-404":     {storage.ErrNotFound, 404},
		"ok/storage-409":     {storage.ErrConflict, 409},
		"ok/storage-413":     {storage.ErrTooLarge, 413},
		"ok/max-bytes":       {&http.MaxBytesError{Limit: 1}, 413},
		"ok/unavailable":     {hegate.E("x", hegate.KindUnavailable, nil, ""), 503},
		"ok/budget":          {hegate.E("x", hegate.KindBudgetExhausted, nil, ""), 429},
		"ok/unknown":         {errors.New("disk on fire"), 500},
		"ok/internal-kind":   {hegate.E("x", hegate.KindInternal, nil, "db password is hunter2"), 500},
		"ok/unauthenticate":  {hegate.E("x", hegate.KindUnauthenticated, nil, ""), 401},
		"ok/expired":         {hegate.E("x", hegate.KindGone, nil, "the result expired"), 410},
		"ok/expired-wrapped": {errors.Join(errors.New("serving result"), hegate.E("x", hegate.KindGone, nil, "the result expired")), 410},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := classify(tc.err).status; got != tc.status {
				t.Fatalf("status %d, want %d", got, tc.status)
			}
			r, _ := http.NewRequest(http.MethodGet, "/v1/x", nil)
			p, _ := problemFor(r, tc.err)
			if tc.status >= 500 && (strings.Contains(p.Detail, "fire") || strings.Contains(p.Detail, "hunter2")) {
				t.Fatalf("5xx detail leaks the cause: %q", p.Detail)
			}
		})
	}
}

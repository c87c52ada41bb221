package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/sqlite"
)

// The Open Inference Protocol (KServe v2 REST) as a KServe or Triton user
// meets it: plain HTTP, no hegate SDK. What the protocol says is quoted
// from its REST specification (required_api.md); where hegate departs from
// it, the test says so.

// oipJSON decodes resp's body as JSON into a generic map, checking the
// media type is JSON (application/json, or a +json type for errors).
func oipJSON(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || (mt != api.ContentTypeJSON && !strings.HasSuffix(mt, "+json")) {
		t.Fatalf("%s %s: Content-Type %q is not JSON; body %.300s", resp.Request.Method, resp.Request.URL.Path, resp.Header.Get("Content-Type"), body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s %s: body is not a JSON object: %v; %.300s", resp.Request.Method, resp.Request.URL.Path, err, body)
	}
	return m
}

// wantOIPStatus checks the status of resp and returns its JSON object.
func wantOIPStatus(t *testing.T, resp *http.Response, status int) map[string]any {
	t.Helper()
	m := oipJSON(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %v", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, m)
	}
	return m
}

// wantOIPError checks an OIP error answer: "A failed ... request must be
// indicated by an HTTP error status (typically 400). The HTTP body must
// contain the $..._error_response object": {"error": $string}.
func wantOIPError(t *testing.T, resp *http.Response, status int, mentions string) map[string]any {
	t.Helper()
	m := wantOIPStatus(t, resp, status)
	msg, ok := m["error"].(string)
	if !ok || msg == "" {
		t.Fatalf("%s %s: error answer has no string member \"error\": %v", resp.Request.Method, resp.Request.URL.Path, m)
	}
	if !strings.Contains(msg, mentions) {
		t.Fatalf("error %q does not mention %q", msg, mentions)
	}
	return m
}

// wantMembers checks that m has each member, of the JSON type given
// ("string", "array", "object", "bool", "number").
func wantMembers(t *testing.T, what string, m map[string]any, members map[string]string) {
	t.Helper()
	for name, typ := range members {
		v, ok := m[name]
		if !ok {
			t.Errorf("%s: no member %q in %v", what, name, m)
			continue
		}
		var good bool
		switch typ {
		case "string":
			_, good = v.(string)
		case "array":
			_, good = v.([]any)
		case "object":
			_, good = v.(map[string]any)
		case "bool":
			_, good = v.(bool)
		case "number":
			_, good = v.(float64)
		}
		if !good {
			t.Errorf("%s: member %q is %T, want a JSON %s", what, name, v, typ)
		}
	}
}

// wantTensorMetadata checks $metadata_tensor objects: name, datatype, shape.
func wantTensorMetadata(t *testing.T, what string, v any) {
	t.Helper()
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		t.Fatalf("%s: %v is not a non-empty array", what, v)
	}
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			t.Fatalf("%s[%d]: %v is not an object", what, i, e)
		}
		wantMembers(t, what+"["+strconv.Itoa(i)+"]", m, map[string]string{"name": "string", "datatype": "string", "shape": "array"})
	}
}

// wantModelMetadata checks a $metadata_model_response.
func wantModelMetadata(t *testing.T, m map[string]any, name string, versions ...string) {
	t.Helper()
	wantMembers(t, "model metadata", m, map[string]string{"name": "string", "platform": "string", "inputs": "array", "outputs": "array"})
	if m["name"] != name {
		t.Errorf("model metadata name %v, want %q", m["name"], name)
	}
	wantTensorMetadata(t, "inputs", m["inputs"])
	wantTensorMetadata(t, "outputs", m["outputs"])
	if versions != nil {
		var got []string
		vs, _ := m["versions"].([]any)
		for _, v := range vs {
			s, _ := v.(string)
			got = append(got, s)
		}
		if !slices.Equal(got, versions) {
			t.Errorf("model %s: versions %v, want %v", name, m["versions"], versions)
		}
	}
}

// jsonInferBody is an inference request as a KServe user writes it: plain
// JSON, the BYTES element a base64 string, no binary_data parameter.
func jsonInferBody(t *testing.T, id, ksID string, ct []byte) []byte {
	t.Helper()
	return mustJSON(t, api.InferRequest{
		ID: id,
		Inputs: []api.Tensor{{
			Name: api.InputName, Shape: []int64{1}, Datatype: api.DatatypeBytes,
			Parameters: api.Parameters{api.ParamContentType: api.ContentTypeCiphertext, api.ParamKeySetID: ksID},
			Data:       mustJSON(t, []string{base64.StdEncoding.EncodeToString(ct)}),
		}},
	})
}

var jsonHeader = http.Header{"Content-Type": {api.ContentTypeJSON}}

// wantInferResponse checks a JSON $inference_response and returns the
// result ciphertext of its one output.
func wantInferResponse(t *testing.T, m map[string]any, model, version, id string) []byte {
	t.Helper()
	wantMembers(t, "inference response", m, map[string]string{"model_name": "string", "outputs": "array"})
	if m["model_name"] != model {
		t.Errorf("model_name %v, want %q", m["model_name"], model)
	}
	// "model_version: The specific model version used for inference."
	if m["model_version"] != version {
		t.Errorf("model_version %v, want %q", m["model_version"], version)
	}
	// "id: The "id" identifier given in the request, if any."
	if id != "" && m["id"] != id {
		t.Errorf("id %v, want %q", m["id"], id)
	}
	outs := m["outputs"].([]any)
	if len(outs) != 1 {
		t.Fatalf("%d outputs, want 1", len(outs))
	}
	out, _ := outs[0].(map[string]any)
	wantMembers(t, "output", out, map[string]string{"name": "string", "shape": "array", "datatype": "string", "data": "array"})
	if out["name"] != api.OutputName || out["datatype"] != api.DatatypeBytes {
		t.Fatalf("output %v", out)
	}
	data, _ := out["data"].([]any)
	if len(data) != 1 {
		t.Fatalf("output data %v: want one element", out["data"])
	}
	s, _ := data[0].(string)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		t.Fatalf("output data is not base64: %v", err)
	}
	return b
}

// readBinaryInferResponse splits a binary-extension answer into its JSON
// header and the one BYTES element.
func readBinaryInferResponse(t *testing.T, resp *http.Response) (map[string]any, []byte) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200: %.300s", resp.StatusCode, body)
	}
	n, err := strconv.Atoi(resp.Header.Get(api.HeaderInferenceContentLength))
	if err != nil || n <= 0 || n > len(body) {
		t.Fatalf("%s %q with a body of %d bytes", api.HeaderInferenceContentLength, resp.Header.Get(api.HeaderInferenceContentLength), len(body))
	}
	var m map[string]any
	if err := json.Unmarshal(body[:n], &m); err != nil {
		t.Fatal(err)
	}
	elems, err := api.SplitBytesElements(body[n:], 1)
	if err != nil {
		t.Fatal(err)
	}
	return m, elems[0]
}

// TestOIPInferAnswersWithOutputs: "A successful inference request is
// indicated by a 200 HTTP status code. The inference response object ...
// is returned in the HTTP body." Without any Prefer header the gateway
// waits for the job and answers 200 with the outputs.
func TestOIPInferAnswersWithOutputs(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	ksID := bd.upload(t, bd.a)

	t.Run("ok/binary-no-prefer", func(t *testing.T) {
		x, ct := bd.input(t, bd.a, 11)
		body, hdr := binaryInfer(t, ksID, ct, "")
		hdr.Del(api.HeaderPrefer)
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(body), hdr)
		m, result := readBinaryInferResponse(t, resp)
		if m["model_name"] != "tiny" || m["model_version"] != "1" {
			t.Errorf("response header %v", m)
		}
		if got := resp.Header.Get(api.HeaderPreferenceApplied); got != "" {
			t.Errorf("Preference-Applied %q without a Prefer header", got)
		}
		bd.checkResult(t, bd.a, x, result)
	})
	t.Run("ok/json-no-prefer", func(t *testing.T) {
		x, ct := bd.input(t, bd.a, 12)
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(jsonInferBody(t, "42", ksID, ct)), jsonHeader)
		m := wantOIPStatus(t, resp, http.StatusOK)
		bd.checkResult(t, bd.a, x, wantInferResponse(t, m, "tiny", "1", "42"))
	})
	t.Run("ok/json-no-content-type", func(t *testing.T) {
		// curl --data-binary without -H: no Content-Type is JSON.
		x, ct := bd.input(t, bd.a, 13)
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/versions/1/infer", bd.a.secret, bytes.NewReader(jsonInferBody(t, "", ksID, ct)), nil)
		m := wantOIPStatus(t, resp, http.StatusOK)
		bd.checkResult(t, bd.a, x, wantInferResponse(t, m, "tiny", "1", ""))
	})
	t.Run("ok/binary-data-false-still-accepted", func(t *testing.T) {
		x, ct := bd.input(t, bd.a, 14)
		req := api.InferRequest{Inputs: []api.Tensor{{
			Name: api.InputName, Shape: []int64{1}, Datatype: api.DatatypeBytes,
			Parameters: api.Parameters{api.ParamContentType: api.ContentTypeCiphertext, api.ParamKeySetID: ksID, api.ParamBinaryData: false},
			Data:       mustJSON(t, []string{base64.StdEncoding.EncodeToString(ct)}),
		}}}
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(mustJSON(t, req)), jsonHeader)
		bd.checkResult(t, bd.a, x, wantInferResponse(t, wantOIPStatus(t, resp, http.StatusOK), "tiny", "1", ""))
	})
	t.Run("ok/wait-applied", func(t *testing.T) {
		_, ct := bd.input(t, bd.a, 15)
		hdr := jsonHeader.Clone()
		hdr.Set("Prefer", "wait=10")
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(jsonInferBody(t, "", ksID, ct)), hdr)
		wantOIPStatus(t, resp, http.StatusOK)
		if got := resp.Header.Get(api.HeaderPreferenceApplied); got != "wait=10" {
			t.Errorf("Preference-Applied %q, want wait=10", got)
		}
	})
	t.Run("ok/respond-async-with-wait-finishes-in-time", func(t *testing.T) {
		// RFC 7240: "respond-async, wait=10" asks for 202 only if the
		// answer takes longer than 10 s.
		_, ct := bd.input(t, bd.a, 16)
		hdr := jsonHeader.Clone()
		hdr.Set("Prefer", "respond-async, wait=10")
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(jsonInferBody(t, "", ksID, ct)), hdr)
		wantOIPStatus(t, resp, http.StatusOK)
		if got := resp.Header.Get(api.HeaderPreferenceApplied); got != "wait=10" {
			t.Errorf("Preference-Applied %q, want wait=10", got)
		}
	})
	t.Run("fail/bytes-data-not-base64", func(t *testing.T) {
		// KServe sends BYTES as text; a ciphertext is binary, so hegate
		// reads BYTES data in JSON as base64 and says so.
		body := []byte(`{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","parameters":{"content_type":"` + api.ContentTypeCiphertext + `","key_set_id":"` + ksID + `"},"data":["raw text, not base64"]}]}`)
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(body), jsonHeader)
		wantOIPError(t, resp, http.StatusBadRequest, "base64")
	})
	t.Run("fail/binary-data-true-without-binary-data", func(t *testing.T) {
		req := api.InferRequest{Inputs: []api.Tensor{{
			Name: api.InputName, Shape: []int64{1}, Datatype: api.DatatypeBytes,
			Parameters: api.Parameters{api.ParamContentType: api.ContentTypeCiphertext, api.ParamKeySetID: ksID, api.ParamBinaryData: true},
		}}}
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(mustJSON(t, req)), jsonHeader)
		wantOIPError(t, resp, http.StatusBadRequest, api.HeaderInferenceContentLength)
	})
}

// TestOIPInferAsync: "Prefer: respond-async" answers 202 at once with the
// job and its Location; an inference whose job does not finish within the
// wait answers 202 too.
func TestOIPInferAsync(t *testing.T) {
	t.Parallel()
	const wait = 300 * time.Millisecond
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) { c.WaitTimeout = wait }))
	ksID := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 1)

	wantJob := func(t *testing.T, resp *http.Response) {
		t.Helper()
		m := wantOIPStatus(t, resp, http.StatusAccepted)
		id, _ := m["id"].(string)
		if id == "" || m["status"] != string(storage.JobQueued) {
			t.Fatalf("202 body %v is not a queued job", m)
		}
		if loc := resp.Header.Get("Location"); loc != jobPath(hegate.JobID(id)) {
			t.Fatalf("Location %q, want %q", loc, jobPath(hegate.JobID(id)))
		}
	}
	t.Run("ok/respond-async", func(t *testing.T) {
		hdr := jsonHeader.Clone()
		hdr.Set("Prefer", "respond-async")
		start := time.Now()
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(jsonInferBody(t, "", ksID, ct)), hdr)
		wantJob(t, resp)
		if d := time.Since(start); d >= wait {
			t.Errorf("respond-async answered after %s: it waited", d)
		}
		if got := resp.Header.Get(api.HeaderPreferenceApplied); got != "respond-async" {
			t.Errorf("Preference-Applied %q, want respond-async", got)
		}
	})
	t.Run("ok/wait-times-out", func(t *testing.T) {
		start := time.Now()
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(jsonInferBody(t, "", ksID, ct)), jsonHeader)
		wantJob(t, resp)
		if d := time.Since(start); d < wait {
			t.Errorf("answered 202 after %s, before the wait of %s", d, wait)
		}
	})
	t.Run("ok/wait-zero", func(t *testing.T) {
		hdr := jsonHeader.Clone()
		hdr.Set("Prefer", "wait=0")
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(jsonInferBody(t, "", ksID, ct)), hdr)
		wantJob(t, resp)
	})
}

// TestUnsupportedMediaType: a body in a media type the route does not take
// is 415, with the accepted types in Accept (and Accept-Post on POST).
func TestUnsupportedMediaType(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	ksID := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 1)
	infer := jsonInferBody(t, "", ksID, ct)
	tests := []struct {
		method, path, ct string
		body             []byte
		accept           string // a type Accept must list
	}{
		{http.MethodPost, "/v2/models/tiny/infer", "text/plain", infer, api.ContentTypeJSON},
		{http.MethodPost, "/v2/models/tiny/infer", "application/x-www-form-urlencoded", infer, api.ContentTypeOctetStream},
		{http.MethodPost, "/v2/models/tiny/versions/1/infer", "text/plain", infer, api.ContentTypeJSON},
		{http.MethodPost, "/v1/keys?model=tiny", "text/plain", bd.a.keys, api.ContentTypeKeySet},
		{http.MethodPost, "/v1/models?name=m1", "text/plain", []byte("{}"), api.ContentTypeIRJSON},
		{http.MethodPost, "/v1/enroll", "text/plain", []byte("{}"), api.ContentTypeJSON},
		{http.MethodPut, "/v1/budgets/tiny", "text/plain", []byte("{}"), api.ContentTypeJSON},
		{http.MethodPut, "/v1/policy", "application/xml", []byte("{}"), api.ContentTypeJSON},
		{http.MethodPut, "/v1/policies/tiny", "text/plain", []byte("{}"), api.ContentTypeJSON},
		{http.MethodPut, "/v1/attestation/native/endorsements", "text/plain", []byte("{}"), api.ContentTypeJSON},
	}
	for _, tc := range tests {
		t.Run("fail"+tc.method+tc.path+"/"+tc.ct, func(t *testing.T) {
			resp := bd.call(t, tc.method, tc.path, bd.a.secret, bytes.NewReader(tc.body), http.Header{"Content-Type": {tc.ct}})
			p := wantProblem(t, resp, http.StatusUnsupportedMediaType, tc.ct)
			if p.Type != api.ProblemUnsupportedMediaType {
				t.Errorf("problem type %q", p.Type)
			}
			if got := resp.Header.Get("Accept"); !strings.Contains(got, tc.accept) {
				t.Errorf("Accept %q does not list %s", got, tc.accept)
			}
			if got := resp.Header.Get("Accept-Post"); (tc.method == http.MethodPost) != (got != "") || got != "" && got != resp.Header.Get("Accept") {
				t.Errorf("Accept-Post %q on %s (Accept %q)", got, tc.method, resp.Header.Get("Accept"))
			}
		})
	}
	t.Run("ok/parameters-and-case", func(t *testing.T) {
		hdr := http.Header{"Content-Type": {"Application/JSON; charset=utf-8"}, "Prefer": {"respond-async"}}
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(infer), hdr)
		wantOIPStatus(t, resp, http.StatusAccepted)
	})
	t.Run("fail/malformed-content-type-is-400", func(t *testing.T) {
		resp := bd.call(t, http.MethodPut, "/v1/policy", bd.a.secret, strings.NewReader("{}"), http.Header{"Content-Type": {"a/b; ="}})
		wantProblem(t, resp, http.StatusBadRequest, "Content-Type")
	})
	if jobs, err := bd.a.client.Jobs(bd.ctx, 0); err != nil || len(jobs) != 1 {
		t.Fatalf("jobs after refused inferences: %d, %v (want the one accepted)", len(jobs), err)
	}
}

// TestOIPVersionedPaths: "GET v2/models/${MODEL_NAME}[/versions/${MODEL_VERSION}]",
// ".../ready" and ".../infer", for a built-in model (version 1 only) and an
// uploaded one with two versions.
func TestOIPVersionedPaths(t *testing.T) {
	t.Parallel()
	bd := setup(t, withConfig(bigLimits))
	ksID := bd.upload(t, bd.a)
	a := bd.a.secret

	t.Run("built-in", func(t *testing.T) {
		for _, path := range []string{"/v2/models/tiny", "/v2/models/tiny/versions/1"} {
			wantModelMetadata(t, wantOIPStatus(t, bd.call(t, http.MethodGet, path, "", nil, nil), http.StatusOK), "tiny", "1")
		}
		for _, path := range []string{"/v2/models/tiny/ready", "/v2/models/tiny/versions/1/ready"} {
			m := wantOIPStatus(t, bd.call(t, http.MethodGet, path, "", nil, nil), http.StatusOK)
			if m["name"] != "tiny" || m["ready"] != true {
				t.Errorf("GET %s: %v", path, m)
			}
		}
		for _, path := range []string{"/v2/models/tiny/versions/2", "/v2/models/tiny/versions/2/ready"} {
			wantOIPError(t, bd.call(t, http.MethodGet, path, "", nil, nil), http.StatusNotFound, "version")
		}
		for _, v := range []string{"0", "-1", "abc", "1.0"} {
			wantOIPError(t, bd.call(t, http.MethodGet, "/v2/models/tiny/versions/"+v, "", nil, nil), http.StatusBadRequest, "version")
		}
		x, ct := bd.input(t, bd.a, 2)
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/versions/1/infer", a, bytes.NewReader(jsonInferBody(t, "v1", ksID, ct)), jsonHeader)
		bd.checkResult(t, bd.a, x, wantInferResponse(t, wantOIPStatus(t, resp, http.StatusOK), "tiny", "1", "v1"))
		resp = bd.call(t, http.MethodPost, "/v2/models/tiny/versions/2/infer", a, bytes.NewReader(jsonInferBody(t, "", ksID, ct)), jsonHeader)
		wantOIPError(t, resp, http.StatusNotFound, "version")
	})

	t.Run("uploaded", func(t *testing.T) {
		g := testGraph("mine", 7)
		bd.uploadAndWait(t, bd.a, "mine", g)
		bd.uploadAndWait(t, bd.a, "mine", g)
		// "versions: The model versions that may be explicitly requested."
		for _, path := range []string{"/v2/models/mine", "/v2/models/mine/versions/1", "/v2/models/mine/versions/2"} {
			wantModelMetadata(t, wantOIPStatus(t, bd.call(t, http.MethodGet, path, a, nil, nil), http.StatusOK), "mine", "1", "2")
		}
		list := wantOIPStatus(t, bd.call(t, http.MethodGet, "/v2/models", a, nil, nil), http.StatusOK)
		found := false
		for _, e := range list["models"].([]any) {
			if m := e.(map[string]any); m["name"] == "mine" {
				found = true
				wantModelMetadata(t, m, "mine", "1", "2")
			}
		}
		if !found {
			t.Errorf("GET /v2/models does not list mine: %v", list)
		}
		for _, path := range []string{"/v2/models/mine/ready", "/v2/models/mine/versions/1/ready", "/v2/models/mine/versions/2/ready"} {
			m := wantOIPStatus(t, bd.call(t, http.MethodGet, path, a, nil, nil), http.StatusOK)
			if m["name"] != "mine" || m["ready"] != true {
				t.Errorf("GET %s: %v", path, m)
			}
		}
		for _, path := range []string{"/v2/models/mine/versions/3", "/v2/models/mine/versions/3/ready"} {
			wantOIPError(t, bd.call(t, http.MethodGet, path, a, nil, nil), http.StatusNotFound, "version 3")
		}
		// Another tenant, or nobody, sees no such model.
		wantOIPError(t, bd.call(t, http.MethodGet, "/v2/models/mine/versions/1", bd.b.secret, nil, nil), http.StatusNotFound, `"mine"`)
		wantOIPError(t, bd.call(t, http.MethodGet, "/v2/models/mine/versions/1/ready", "", nil, nil), http.StatusNotFound, `"mine"`)

		// Each version has its own keys; infer answers with the version used.
		x := make([]float64, g.InputSize())
		for _, v := range []string{"1", "2"} {
			dev, err := bd.a.client.Device(bd.ctx, "mine@v"+v, true)
			if err != nil {
				t.Fatal(err)
			}
			sk, err := dev.GenerateSecretKey()
			if err != nil {
				t.Fatal(err)
			}
			var keys bytes.Buffer
			if _, err := dev.WriteKeySet(&keys, sk); err != nil {
				t.Fatal(err)
			}
			ks, err := bd.a.client.UploadKeySet(bd.ctx, "mine@v"+v, bytes.NewReader(keys.Bytes()), int64(keys.Len()))
			if err != nil {
				t.Fatal(err)
			}
			ct, err := dev.Encrypt(sk, x)
			if err != nil {
				t.Fatal(err)
			}
			path := "/v2/models/mine/versions/" + v + "/infer"
			if v == "2" {
				path = "/v2/models/mine/infer" // the latest
			}
			resp := bd.call(t, http.MethodPost, path, a, bytes.NewReader(jsonInferBody(t, "", ks.ID, ct)), jsonHeader)
			result := wantInferResponse(t, wantOIPStatus(t, resp, http.StatusOK), "mine", v, "")
			if _, err := dev.Decrypt(sk, result); err != nil {
				t.Errorf("version %s: decrypting: %v", v, err)
			}
			// The key set of one version does not serve the other.
			other := map[string]string{"1": "/v2/models/mine/versions/2/infer", "2": "/v2/models/mine/versions/1/infer"}[v]
			resp = bd.call(t, http.MethodPost, other, a, bytes.NewReader(jsonInferBody(t, "", ks.ID, ct)), jsonHeader)
			wantOIPError(t, resp, http.StatusNotFound, "key set")
		}
	})
}

// TestOIPVersionNotReady: a version that is still compiling exists but is
// not ready: "A 200 status code indicates true and a 4xx status code
// indicates false."
func TestOIPVersionNotReady(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers(), withConfig(bigLimits))
	body := graphJSON(t, testGraph("slow", 3))
	resp := bd.call(t, http.MethodPost, "/v1/models?name=slow&"+testUploadOptions.Encode(), bd.a.secret, bytes.NewReader(body), http.Header{"Content-Type": {api.ContentTypeIRJSON}})
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	for _, path := range []string{"/v2/models/slow/versions/1/ready", "/v2/models/slow/versions/1", "/v2/models/slow/ready"} {
		resp := bd.call(t, http.MethodGet, path, bd.a.secret, nil, nil)
		if resp.StatusCode < 400 || resp.StatusCode > 499 {
			t.Errorf("GET %s: %d, want a 4xx", path, resp.StatusCode)
		}
		wantOIPError(t, resp, resp.StatusCode, "slow")
	}
	resp = bd.call(t, http.MethodPost, "/v2/models/slow/versions/1/infer", bd.a.secret, strings.NewReader("{}"), jsonHeader)
	wantOIPError(t, resp, http.StatusNotFound, "not ready")
}

// TestOIPConformance walks the OIP REST endpoints: health, server
// metadata, model metadata and readiness, inference, with and without
// versions, checking status, media type and the members the protocol
// requires, and that every error is {"error": "..."}.
func TestOIPConformance(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	ksID := bd.upload(t, bd.a)
	get := func(path string) *http.Response { return bd.call(t, http.MethodGet, path, "", nil, nil) }

	t.Run("ok/server-live", func(t *testing.T) {
		m := wantOIPStatus(t, get("/v2/health/live"), http.StatusOK)
		if m["live"] != true {
			t.Errorf("live %v", m)
		}
	})
	t.Run("ok/server-ready", func(t *testing.T) {
		m := wantOIPStatus(t, get("/v2/health/ready"), http.StatusOK)
		if m["ready"] != true {
			t.Errorf("ready %v", m)
		}
	})
	t.Run("ok/server-metadata", func(t *testing.T) {
		m := wantOIPStatus(t, get("/v2"), http.StatusOK)
		wantMembers(t, "server metadata", m, map[string]string{"name": "string", "version": "string", "extensions": "array"})
		if !slices.Contains(m["extensions"].([]any), any(extBinaryTensorData)) {
			t.Errorf("extensions %v lack %s", m["extensions"], extBinaryTensorData)
		}
	})
	for _, path := range []string{"/v2/models/tiny", "/v2/models/tiny/versions/1"} {
		t.Run("ok/model-metadata"+path, func(t *testing.T) {
			wantModelMetadata(t, wantOIPStatus(t, get(path), http.StatusOK), "tiny", "1")
		})
	}
	for _, path := range []string{"/v2/models/tiny/ready", "/v2/models/tiny/versions/1/ready"} {
		t.Run("ok/model-ready"+path, func(t *testing.T) {
			m := wantOIPStatus(t, get(path), http.StatusOK)
			if m["ready"] != true || m["name"] != "tiny" {
				t.Errorf("%v", m)
			}
		})
	}
	for _, path := range []string{"/v2/models/tiny/infer", "/v2/models/tiny/versions/1/infer"} {
		t.Run("ok/infer"+path, func(t *testing.T) {
			x, ct := bd.input(t, bd.a, 5)
			resp := bd.call(t, http.MethodPost, path, bd.a.secret, bytes.NewReader(jsonInferBody(t, "req-9", ksID, ct)), jsonHeader)
			bd.checkResult(t, bd.a, x, wantInferResponse(t, wantOIPStatus(t, resp, http.StatusOK), "tiny", "1", "req-9"))
		})
	}

	// Errors: every one carries {"error": $string}.
	errs := []struct {
		name, method, path, key string
		body                    string
		hdr                     http.Header
		status                  int
		mentions                string
	}{
		{"model-metadata-unknown", http.MethodGet, "/v2/models/nope", "", "", nil, 404, "nope"},
		{"model-metadata-unknown-version", http.MethodGet, "/v2/models/tiny/versions/9", "", "", nil, 404, "version"},
		{"model-metadata-bad-version", http.MethodGet, "/v2/models/tiny/versions/x", "", "", nil, 400, "version"},
		{"model-ready-unknown", http.MethodGet, "/v2/models/nope/ready", "", "", nil, 404, "nope"},
		{"model-ready-unknown-version", http.MethodGet, "/v2/models/tiny/versions/9/ready", "", "", nil, 404, "version"},
		{"infer-unauthenticated", http.MethodPost, "/v2/models/tiny/infer", "", "{}", jsonHeader, 401, "API key"},
		{"infer-unknown-model", http.MethodPost, "/v2/models/nope/infer", bd.a.secret, "{}", jsonHeader, 404, "nope"},
		{"infer-unknown-version", http.MethodPost, "/v2/models/tiny/versions/9/infer", bd.a.secret, "{}", jsonHeader, 404, "version"},
		{"infer-not-json", http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, "{", jsonHeader, 400, "JSON"},
		{"infer-no-inputs", http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, `{"inputs":[]}`, jsonHeader, 400, "0 inputs"},
		{"infer-unsupported-media-type", http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, "{}", http.Header{"Content-Type": {"text/csv"}}, 415, "text/csv"},
		{"unknown-route", http.MethodGet, "/v2/models/tiny/explain", "", "", nil, 404, "no route"},
		{"method-not-allowed", http.MethodGet, "/v2/models/tiny/infer", "", "", nil, 405, "GET"},
	}
	for _, tc := range errs {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			wantOIPError(t, bd.call(t, tc.method, tc.path, tc.key, body, tc.hdr), tc.status, tc.mentions)
		})
	}

	t.Run("fail/server-not-ready", func(t *testing.T) {
		// hegate answers 503, not the 4xx the protocol names, so that
		// load balancers and Kubernetes probes treat it as unavailable
		// (any status outside 200-399 fails a probe).
		down := setup(t, withoutWorkers(), withStore(func(t *testing.T) storage.Store {
			s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "hegate.db")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			return pingFails{Store: s}
		}))
		m := wantOIPStatus(t, down.call(t, http.MethodGet, "/v2/health/ready", "", nil, nil), http.StatusServiceUnavailable)
		if m["ready"] != false {
			t.Errorf("ready %v", m)
		}
		// Liveness does not depend on the store.
		wantOIPStatus(t, down.call(t, http.MethodGet, "/v2/health/live", "", nil, nil), http.StatusOK)
	})
}

// pingFails is a store whose Ping fails.
type pingFails struct{ storage.Store }

func (pingFails) Ping(context.Context) error { return errors.New("database unreachable") }

package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/storage"
)

// TestAuthenticateBeforeBodyLimit: a caller without a valid key gets 401 on
// every authenticated route, whatever body it announces; the body limits
// are not revealed to it.
func TestAuthenticateBeforeBodyLimit(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	keyLimit := bd.srv.cfg.MaxKeySetBytes
	tests := []struct {
		name   string
		method string
		path   string
		size   int64
	}{
		{"fail/upload-over-the-key-set-limit", http.MethodPost, "/v1/keys?model=tiny", keyLimit + 1},
		{"fail/list-with-a-large-body", http.MethodGet, "/v1/keys", maxSmallBody + 1},
		{"fail/cancel-with-a-large-body", http.MethodPost, "/v1/jobs/job_x/cancel", maxSmallBody + 1},
		{"fail/infer-with-a-large-body", http.MethodPost, "/v2/models/tiny/infer", 8 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := bd.call(t, tc.method, tc.path, "", bytes.NewReader(make([]byte, tc.size)), nil)
			p := wantProblem(t, resp, http.StatusUnauthorized, "API key")
			if p.Type != api.ProblemUnauthenticated || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("type %q, WWW-Authenticate %q", p.Type, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

// TestRevokedAPIKey: a revoked key is refused like an unknown one; the
// tenant's other keys keep working.
func TestRevokedAPIKey(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	tenant := mustTenant(t, bd)
	second, err := CreateAPIKey(bd.ctx, bd.store, tenant, "second", storage.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := bd.store.ListAPIKeys(bd.ctx, tenant)
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %+v, %v", keys, err)
	}
	if err := bd.store.RevokeAPIKey(bd.ctx, tenant, keys[0].ID); err != nil { // "default", bd.a.secret
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		key    string
		status int
	}{
		"fail/revoked":  {bd.a.secret, http.StatusUnauthorized},
		"ok/other-key":  {second, http.StatusOK},
		"ok/other-user": {bd.b.secret, http.StatusOK},
	} {
		t.Run(name, func(t *testing.T) {
			resp := bd.call(t, http.MethodGet, "/v1/keys", tc.key, nil, nil)
			if tc.status != http.StatusOK {
				wantProblem(t, resp, tc.status, "revoked")
				return
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d", resp.StatusCode)
			}
		})
	}
}

// TestLimitsDefaultToTheModels: without explicit limits the gateway reads
// no more than the largest model needs, and each request no more than its
// own model needs; over-size is 413 naming the limit.
func TestLimitsDefaultToTheModels(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) {
		c.MaxKeySetBytes, c.MaxCiphertextBytes = 0, 0
	}))
	man := bd.model.Manifest()
	if bd.srv.cfg.MaxKeySetBytes != man.KeySetBytes || bd.srv.cfg.MaxCiphertextBytes != man.CiphertextBytes {
		t.Fatalf("default limits %d/%d, want the model's %d/%d",
			bd.srv.cfg.MaxKeySetBytes, bd.srv.cfg.MaxCiphertextBytes, man.KeySetBytes, man.CiphertextBytes)
	}
	ksID := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 1)
	twice := append(bytes.Clone(ct), ct...)
	elem := func(b []byte) api.InferRequest {
		return bytesInput(api.Parameters{
			api.ParamContentType:    api.ContentTypeCiphertext,
			api.ParamKeySetID:       ksID,
			api.ParamBinaryDataSize: api.BytesElementOverhead + len(b),
		})
	}
	limit := strconv.FormatInt(man.CiphertextBytes, 10)
	t.Run("fail/ciphertext-twice-the-model-size", func(t *testing.T) {
		body, hdr := inferBody(t, elem(twice), twice)
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(body), hdr)
		wantProblem(t, resp, http.StatusRequestEntityTooLarge, "exceeds the limit")
	})
	t.Run("fail/ciphertext-one-byte-over", func(t *testing.T) {
		over := append(bytes.Clone(ct), 0)
		body, hdr := inferBody(t, elem(over), over)
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(body), hdr)
		wantProblem(t, resp, http.StatusRequestEntityTooLarge, limit)
	})
	t.Run("fail/ciphertext-twice-chunked", func(t *testing.T) {
		body, hdr := inferBody(t, elem(twice), twice)
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, io.MultiReader(bytes.NewReader(body)), hdr)
		wantProblem(t, resp, http.StatusRequestEntityTooLarge, "limit")
	})
	t.Run("fail/key-set-one-byte-over", func(t *testing.T) {
		resp := bd.call(t, http.MethodPost, "/v1/keys?model=tiny", bd.a.secret, bytes.NewReader(append(bytes.Clone(bd.a.keys), 0)), nil)
		wantProblem(t, resp, http.StatusRequestEntityTooLarge, strconv.FormatInt(man.KeySetBytes, 10))
	})
	t.Run("ok/exact-size", func(t *testing.T) {
		if _, _, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, ct, client.InferOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestInferContentTypeAndStrictJSON: an inference names a JSON or binary
// body type, and its JSON holds only members OIP defines.
func TestInferContentTypeAndStrictJSON(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	ksID := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 1)
	req := bytesInput(api.Parameters{
		api.ParamContentType:    api.ContentTypeCiphertext,
		api.ParamKeySetID:       ksID,
		api.ParamBinaryDataSize: api.BytesElementOverhead + len(ct),
	})
	binaryBody, bh := inferBody(t, req, ct)
	hdrLen := bh.Get(api.HeaderInferenceContentLength)
	// The same header JSON with an extra member, spliced in by hand.
	withMember := func(member string) ([]byte, string) {
		hdr := mustJSON(t, req)
		spliced := append([]byte(`{`+member+`,`), hdr[1:]...)
		return append(spliced, api.AppendBytesElement(nil, ct)...), strconv.Itoa(len(spliced))
	}
	typoBody, typoLen := withMember(`"outputz":[]`)
	tensorBody, tensorLen := withMember(`"inputs_extra":1`)
	tests := []struct {
		name   string
		body   []byte
		hdr    http.Header
		status int
		detail string
	}{
		{"ok/octet-stream", binaryBody, http.Header{"Content-Type": {"application/octet-stream"}, api.HeaderInferenceContentLength: {hdrLen}, api.HeaderPrefer: {"respond-async"}}, 202, ""},
		{"ok/no-content-type", binaryBody, http.Header{api.HeaderInferenceContentLength: {hdrLen}, api.HeaderPrefer: {"respond-async"}}, 202, ""},
		{"ok/json-with-parameters", binaryBody, http.Header{"Content-Type": {"application/json; charset=utf-8"}, api.HeaderInferenceContentLength: {hdrLen}, api.HeaderPrefer: {"respond-async"}}, 202, ""},
		{"fail/text-plain", binaryBody, http.Header{"Content-Type": {"text/plain"}, api.HeaderInferenceContentLength: {hdrLen}}, 415, "Content-Type"},
		{"fail/form", binaryBody, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, api.HeaderInferenceContentLength: {hdrLen}}, 415, "Content-Type"},
		{"fail/malformed-content-type", binaryBody, http.Header{"Content-Type": {"a/b; ="}, api.HeaderInferenceContentLength: {hdrLen}}, 400, "Content-Type"},
		{"fail/octet-stream-without-binary-header", binaryBody, http.Header{"Content-Type": {"application/octet-stream"}}, 400, api.HeaderInferenceContentLength},
		{"fail/unknown-member", typoBody, http.Header{api.HeaderInferenceContentLength: {typoLen}}, 400, `unknown field "outputz"`},
		{"fail/unknown-member-2", tensorBody, http.Header{api.HeaderInferenceContentLength: {tensorLen}}, 400, `unknown field "inputs_extra"`},
		{"fail/unknown-tensor-member", []byte(`{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","parameters":{"binary_data":false},"data":["AA=="],"dtype":"x"}]}`), http.Header{"Content-Type": {"application/json"}}, 400, `unknown field "dtype"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(tc.body), tc.hdr)
			if tc.status < 400 {
				if resp.StatusCode != tc.status {
					b, _ := io.ReadAll(resp.Body)
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
				}
				return
			}
			wantProblem(t, resp, tc.status, tc.detail)
		})
	}
}

// rawRequest writes head (a request line and headers, without the blank
// line) and then body pieces over one TCP connection, pausing between the
// pieces, and returns the answer. It fails the test if none comes within
// wait.
func rawRequest(t *testing.T, addr, head string, pause, wait time.Duration, body ...[]byte) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, head+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	for i, b := range body {
		if i > 0 {
			time.Sleep(pause)
		}
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", wait, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestUnreadableBodies: a body that is malformed on the wire, or stalls,
// is the client's fault (400 naming it), never a 500 or a hung request, and
// leaves no blob and no key set behind.
func TestUnreadableBodies(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) { c.BodyIdleTimeout = idle }))
	addr := bd.ts.Listener.Addr().String()
	auth := "Authorization: Bearer " + bd.a.secret
	keysHead := func(framing string) string {
		return "POST /v1/keys?model=tiny HTTP/1.1\r\nHost: hegate\r\n" + auth + "\r\n" + framing
	}
	bd.upload(t, bd.b) // ok/slow-but-moving sends it again: no new blob
	inferHead := func(framing string) string {
		return "POST /v2/models/tiny/infer HTTP/1.1\r\nHost: hegate\r\n" + auth + "\r\nInference-Header-Content-Length: 100\r\n" + framing
	}
	keys := bd.a.keys
	before := bd.blobFiles(t)
	tests := []struct {
		name   string
		head   string
		body   [][]byte
		detail string
	}{
		{"fail/keys-malformed-chunked", keysHead("Transfer-Encoding: chunked"),
			[][]byte{[]byte("4\r\nHGKS\r\nzz\r\n")}, "could not be read"},
		{"fail/keys-stalled", keysHead("Content-Length: " + strconv.Itoa(len(keys))),
			[][]byte{keys[:1000]}, "stalled"},
		{"fail/keys-stalled-chunked", keysHead("Transfer-Encoding: chunked"),
			[][]byte{fmt.Appendf(nil, "%x\r\n%s\r\n", 100, keys[:100])}, "stalled"},
		{"fail/infer-malformed-chunked", inferHead("Transfer-Encoding: chunked"),
			[][]byte{[]byte("4\r\n{\"in\r\nzz\r\n")}, "could not be read"},
		{"fail/infer-stalled", inferHead("Content-Length: 5000"),
			[][]byte{[]byte(`{"inputs":`)}, "stalled"},
	}
	t.Run("group", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				resp, body := rawRequest(t, addr, tc.head, 0, 10*time.Second, tc.body...)
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != api.ContentTypeProblem ||
					!bytes.Contains(body, []byte(tc.detail)) {
					t.Fatalf("status %d %s: %s; want 400 naming %q", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.detail)
				}
				if !resp.Close {
					t.Error("no Connection: close: a connection with a broken body must not be reused")
				}
			})
		}
		t.Run("ok/slow-but-moving", func(t *testing.T) {
			t.Parallel()
			// Pieces arrive more slowly than the idle limit in total, but
			// never idle for that long: the upload goes through.
			keys := bd.b.keys
			var pieces [][]byte
			step := (len(keys) + 3) / 4
			for off := 0; off < len(keys); off += step {
				pieces = append(pieces, keys[off:min(off+step, len(keys))])
			}
			resp, body := rawRequest(t, addr, "POST /v1/keys?model=tiny HTTP/1.1\r\nHost: hegate\r\nAuthorization: Bearer "+bd.b.secret+
				"\r\nContent-Length: "+strconv.Itoa(len(keys)), idle/3, 10*time.Second, pieces...)
			if resp.StatusCode/100 != 2 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
		})
	})
	if n := bd.blobFiles(t); n != before {
		t.Errorf("%d blob files after unreadable uploads, %d before", n, before)
	}
	if keys, err := bd.store.ListKeySets(bd.ctx, mustTenant(t, bd)); err != nil || len(keys) != 0 {
		t.Errorf("key sets after unreadable uploads: %+v, %v", keys, err)
	}
}

// TestWaitOutlivesBodyDeadline: the read deadline of a body is cleared
// once the body is read, so a long "Prefer: wait" is not cut short by it.
func TestWaitOutlivesBodyDeadline(t *testing.T) {
	t.Parallel()
	const idle = 200 * time.Millisecond
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) { c.BodyIdleTimeout = idle }))
	ksID := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 1)
	body, hdr := inferBody(t, bytesInput(api.Parameters{
		api.ParamContentType:    api.ContentTypeCiphertext,
		api.ParamKeySetID:       ksID,
		api.ParamBinaryDataSize: api.BytesElementOverhead + len(ct),
	}), ct)
	hdr.Set("Prefer", "wait=1")
	start := time.Now()
	resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(body), hdr)
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("answered after %s: the wait was cut short", d)
	}
}

// recordingHandler keeps the level and message of every log record.
type recordingHandler struct {
	mu      sync.Mutex
	records []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Level.String()+" "+r.Message)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

// TestClientGone: when the client went away (its request context was
// cancelled) the failure is not a server error: no error-level log line,
// no 5xx in the access log and metrics.
func TestClientGone(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		cancel bool
		err    error
		status int
		level  string
	}{
		"ok/client-gone":           {true, fmt.Errorf("polling job: %w", context.Canceled), statusClientClosedRequest, "INFO"},
		"ok/still-there-cancelled": {false, context.Canceled, http.StatusInternalServerError, "ERROR"},
		"ok/gone-other-error":      {true, errors.New("disk on fire"), http.StatusInternalServerError, "ERROR"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v2/models/m/infer", nil)
			w := httptest.NewRecorder()
			h := &recordingHandler{}
			writeError(w, r, slog.New(h), tc.err)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			if len(h.records) != 1 || !strings.HasPrefix(h.records[0], tc.level+" ") {
				t.Fatalf("log %q, want one %s record", h.records, tc.level)
			}
		})
	}
}

func TestMaxBytesDetailNamesTheLimit(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodPost, "/v1/keys", nil)
	p, _ := problemFor(r, fmt.Errorf("reading: %w", &http.MaxBytesError{Limit: 12345}))
	if p.Status != http.StatusRequestEntityTooLarge || !strings.Contains(p.Detail, "12345") {
		t.Fatalf("problem %+v", p)
	}
}

// TestEchoedInputIsBounded: a detail quotes at most a bounded part of what
// the client sent, so neither answers nor logs grow with it.
func TestEchoedInputIsBounded(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	long := strings.Repeat("m", 4000)
	for name, path := range map[string]string{
		"fail/model-metadata": "/v2/models/" + long,
		"fail/model-ready":    "/v2/models/" + long + "/ready",
		"fail/infer":          "/v2/models/" + long + "/infer",
		"fail/key-set":        "/v1/keys/" + long,
		"fail/job":            "/v1/jobs/" + long,
	} {
		t.Run(name, func(t *testing.T) {
			method := http.MethodGet
			if strings.HasSuffix(path, "/infer") {
				method = http.MethodPost
			}
			resp := bd.call(t, method, path, bd.a.secret, nil, nil)
			body, _ := io.ReadAll(resp.Body)
			var p api.Problem
			if err := json.Unmarshal(body, &p); err != nil || resp.StatusCode < 400 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if len(p.Detail) > 300 || len(p.Error) > 400 {
				t.Fatalf("detail of %d bytes echoes the input: %.100s...", len(p.Detail), p.Detail)
			}
		})
	}
}

// TestUnreadBodyStalls: a request refused before its body is read (no key,
// unknown route) still gets its answer, and its connection is closed, when
// the body never arrives; the server does not wait for it forever.
func TestUnreadBodyStalls(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) { c.BodyIdleTimeout = idle }))
	addr := bd.ts.Listener.Addr().String()
	tests := []struct {
		name   string
		head   string
		status int
	}{
		{"fail/no-key", "POST /v1/keys?model=tiny HTTP/1.1\r\nHost: hegate\r\nContent-Length: 1000", http.StatusUnauthorized},
		{"fail/no-key-chunked", "POST /v2/models/tiny/infer HTTP/1.1\r\nHost: hegate\r\nTransfer-Encoding: chunked", http.StatusUnauthorized},
		{"fail/unknown-route", "POST /v1/nothing HTTP/1.1\r\nHost: hegate\r\nContent-Length: 1000", http.StatusNotFound},
		{"fail/unknown-model", "POST /v2/models/nope/infer HTTP/1.1\r\nHost: hegate\r\nAuthorization: Bearer " + bd.a.secret + "\r\nContent-Length: 1000", http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := rawRequest(t, addr, tc.head, 0, 5*time.Second, []byte("0123456789"))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
		})
	}
}

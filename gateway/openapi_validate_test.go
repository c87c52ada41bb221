package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/hegate/hegate/api"
)

// The gateway's traffic in tests is checked against openapi.yaml, so that
// the document cannot drift from what the server does: setup wraps every
// test server's handler in openAPIValidated, which validates each request
// and its response with kin-openapi.
//
//   - Every response must be documented for its operation: status, media
//     type, body schema, documented headers. 429, 500 and 503 problem
//     documents are allowed on every route (the document's description
//     says so).
//   - A request the document refuses (a parameter, header or body off its
//     schema, a security requirement not met) must be refused by the
//     server too (4xx), and a request that meets no security requirement
//     must be answered 401.
//   - A request on no documented path is 404, on a documented path with
//     another method 405, both problem documents.

// openAPI is the parsed and validated document and its router, and the
// same document with closed objects for responses (see closeObjects).
var openAPI = sync.OnceValues(func() (*openAPIDoc, error) {
	load := func() (*openapi3.T, routers.Router, error) {
		doc, err := openapi3.NewLoader().LoadFromData(openAPIDocument)
		if err != nil {
			return nil, nil, fmt.Errorf("loading openapi.yaml: %w", err)
		}
		if err := doc.Validate(context.Background()); err != nil {
			return nil, nil, fmt.Errorf("openapi.yaml is not a valid OpenAPI document: %w", err)
		}
		router, err := gorillamux.NewRouter(doc)
		if err != nil {
			return nil, nil, fmt.Errorf("routing openapi.yaml: %w", err)
		}
		return doc, router, nil
	}
	doc, router, err := load()
	if err != nil {
		return nil, err
	}
	closed, closedRouter, err := load()
	if err != nil {
		return nil, err
	}
	closeObjects(closed)
	return &openAPIDoc{doc: doc, router: router, closedRouter: closedRouter}, nil
})

type openAPIDoc struct {
	doc    *openapi3.T
	router routers.Router
	// closedRouter routes to the closed document: responses are checked
	// against it, so that a member the server sends but the document does
	// not name is drift too.
	closedRouter routers.Router
}

// openObjects are the schemas whose undocumented members are meant: their
// description says other members are ignored or kept.
var openObjects = map[string]bool{"DeviceKey": true}

// closeObjects gives every object schema of doc that lists properties and
// says nothing of others additionalProperties false.
func closeObjects(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var visit func(ref *openapi3.SchemaRef)
	visit = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if name := strings.TrimPrefix(ref.Ref, "#/components/schemas/"); openObjects[name] {
			return
		}
		if len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil && len(s.PatternProperties) == 0 {
			closed := false
			s.AdditionalProperties.Has = &closed
		}
		for _, p := range s.Properties {
			visit(p)
		}
		visit(s.Items)
		visit(s.AdditionalProperties.Schema)
		for _, l := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
			for _, r := range l {
				visit(r)
			}
		}
	}
	for name, ref := range doc.Components.Schemas {
		if !openObjects[name] {
			visit(ref)
		}
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, resp := range op.Responses.Map() {
				if resp.Value == nil {
					continue
				}
				for _, mt := range resp.Value.Content {
					visit(mt.Schema)
				}
			}
		}
	}
	for _, resp := range doc.Components.Responses {
		if resp.Value != nil {
			for _, mt := range resp.Value.Content {
				visit(mt.Schema)
			}
		}
	}
}

func init() {
	// Media types the document uses that kin-openapi does not decode by
	// itself: all are opaque bytes to it.
	for _, mt := range []string{
		api.ContentTypeKeySet, api.ContentTypeCiphertext, api.ContentTypeONNX,
		"application/jwk-set+json",
	} {
		if mt == "application/jwk-set+json" {
			openapi3filter.RegisterBodyDecoder(mt, openapi3filter.JSONBodyDecoder)
			continue
		}
		openapi3filter.RegisterBodyDecoder(mt, openapi3filter.FileBodyDecoder)
	}
	openapi3filter.RegisterBodyDecoder(api.ContentTypeIRJSON, openapi3filter.JSONBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
}

// statusesEverywhere may answer any request, as the document's description
// says: request framing limits, a rate limit, server faults and an
// unavailable store or overload, always as problem documents.
var statusesEverywhere = []int{
	http.StatusRequestURITooLong, http.StatusRequestHeaderFieldsTooLarge, http.StatusTooManyRequests,
	http.StatusInternalServerError, http.StatusServiceUnavailable,
}

// openAPICoverage records, per documented operation ("GET /v2/models/{model}"),
// whether a success (status < 400) and an error were seen.
type openAPICoverage struct {
	mu   sync.Mutex
	seen map[string][2]bool // [success, error]
}

func (c *openAPICoverage) add(op string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.seen[op]
	v[boolIndex(status >= 400)] = true
	c.seen[op] = v
}

func (c *openAPICoverage) get(op string) (success, failure bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.seen[op]
	return v[0], v[1]
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// coverages holds each validated server's coverage.
var coverages sync.Map // *Server -> *openAPICoverage

func coverageOf(s *Server) *openAPICoverage {
	c, _ := coverages.Load(s)
	cov, _ := c.(*openAPICoverage)
	return cov
}

// openAPIValidated wraps srv's handler so that each request and response is
// checked against openapi.yaml, failures reported on t.
func openAPIValidated(t *testing.T, srv *Server) http.Handler {
	t.Helper()
	oa, err := openAPI()
	if err != nil {
		t.Fatal(err)
	}
	cov := &openAPICoverage{seen: map[string][2]bool{}}
	coverages.Store(srv, cov)
	t.Cleanup(func() { coverages.Delete(srv) })
	h := srv.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var tee *teeBody
		if r.Body != nil && r.Body != http.NoBody {
			tee = &teeBody{ReadCloser: r.Body}
			r.Body = tee
		}
		rec := &recordingWriter{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if err := oa.check(r, tee, rec, cov); err != nil {
			t.Errorf("openapi.yaml and the server disagree on %s %s -> %d: %v", r.Method, truncate(r.URL.RequestURI(), 200), rec.statusCode(), err)
		}
	})
}

// teeBody keeps what the handler read of a request body.
type teeBody struct {
	io.ReadCloser
	buf bytes.Buffer
	eof bool
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.buf.Write(p[:n])
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// recordingWriter keeps the status, headers and body of a response.
type recordingWriter struct {
	http.ResponseWriter
	status int
	header http.Header
	body   bytes.Buffer
}

func (w *recordingWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		w.header = w.ResponseWriter.Header().Clone()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.body.Write(p)
	return w.ResponseWriter.Write(p)
}

func (w *recordingWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *recordingWriter) statusCode() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// check validates one exchange.
func (oa *openAPIDoc) check(r *http.Request, tee *teeBody, rec *recordingWriter, cov *openAPICoverage) error {
	status := rec.statusCode()
	header := rec.header
	if header == nil {
		header = rec.ResponseWriter.Header()
	}
	if r.Method == http.MethodHead {
		// No body to validate; the route and status still count.
		req := r.Clone(context.Background())
		req.Body = http.NoBody
		route, _, err := oa.router.FindRoute(req)
		if err != nil {
			return nil // a path or method openapi.yaml leaves out: no body to check
		}
		if route.Operation.Responses.Status(status) == nil && !slices.Contains(statusesEverywhere, status) {
			return fmt.Errorf("HEAD %s answered %d, which openapi.yaml does not document", route.Path, status)
		}
		cov.add(r.Method+" "+route.Path, status)
		return nil
	}
	if status == statusClientClosedRequest {
		return nil
	}
	if r.Context().Err() != nil && status >= 500 {
		return nil // the client went away
	}
	// The request as the handler received it, its body what it read.
	req := r.Clone(context.Background())
	req.Body = http.NoBody
	if tee != nil {
		req.Body = io.NopCloser(bytes.NewReader(tee.buf.Bytes()))
	}
	global := slices.Contains(statusesEverywhere, status)
	route, params, err := oa.router.FindRoute(req)
	switch {
	case err != nil && global:
		return wantProblemStatus(status, header, rec.body.Bytes(), status, "")
	case errors.Is(err, routers.ErrPathNotFound) && status == http.StatusMethodNotAllowed:
		// A method the router knows on no path (chi answers 405 to any
		// method it has no route for).
		return wantProblemStatus(status, header, rec.body.Bytes(), status, "")
	case errors.Is(err, routers.ErrPathNotFound):
		return wantProblemStatus(status, header, rec.body.Bytes(), http.StatusNotFound, "a path openapi.yaml does not document")
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return wantProblemStatus(status, header, rec.body.Bytes(), http.StatusMethodNotAllowed, "a method openapi.yaml does not document on this path")
	case err != nil:
		return fmt.Errorf("finding the route: %w", err)
	}
	cov.add(r.Method+" "+route.Path, status)
	if tee != nil && req.Header.Get("Content-Type") == "" && route.Operation.RequestBody != nil {
		// The server reads a body without Content-Type as its route's
		// default type (docs/api.md); OpenAPI cannot say so.
		req.Header.Set("Content-Type", defaultBodyType(route, req))
	}

	opts := &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		AuthenticationFunc:    authenticateForSpec,
		ExcludeRequestBody:    tee != nil && !tee.eof, // not read to its end
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	var secErr *openapi3filter.SecurityRequirementsError
	switch {
	case reqErr == nil:
	case errors.As(reqErr, &secErr) && status != http.StatusUnauthorized && !global:
		return fmt.Errorf("the request meets none of the operation's security requirements, yet the answer is not 401: %v", reqErr)
	case status < 400:
		return fmt.Errorf("the server accepted a request that openapi.yaml refuses: %v", reqErr)
	}

	if global && route.Operation.Responses.Status(status) == nil {
		return wantProblemStatus(status, header, rec.body.Bytes(), status, "")
	}
	closedRoute, closedParams, err := oa.closedRouter.FindRoute(req)
	if err != nil {
		return fmt.Errorf("finding the route in the closed document: %w", err)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: closedParams, Route: closedRoute, Options: opts},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		Options:                opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("response: %w; body %.300s", err, rec.body.Bytes())
	}
	return nil
}

// defaultBodyType is the media type the server takes a body without
// Content-Type to be.
func defaultBodyType(route *routers.Route, req *http.Request) string {
	switch {
	case strings.HasSuffix(route.Path, "/infer") && req.Header.Get(api.HeaderInferenceContentLength) != "":
		return api.ContentTypeOctetStream
	case strings.HasSuffix(route.Path, "/infer"):
		return api.ContentTypeJSON
	case route.Path == api.PathKeys:
		return api.ContentTypeKeySet
	case route.Path == api.PathModels:
		return api.ContentTypeONNX
	}
	return api.ContentTypeJSON
}

// wantProblemStatus checks a response is a problem document of status want.
func wantProblemStatus(status int, h http.Header, body []byte, want int, why string) error {
	if status != want {
		return fmt.Errorf("%s is answered %d, want %d", why, status, want)
	}
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt != api.ContentTypeProblem {
		return fmt.Errorf("a %d is %q, not a problem document", status, h.Get("Content-Type"))
	}
	if !bytes.Contains(body, []byte(`"status":`)) {
		return fmt.Errorf("a %d problem document has no status: %.200s", status, body)
	}
	return nil
}

// authenticateForSpec checks a request carries what a security scheme
// names; the server checks the credential itself.
func authenticateForSpec(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header
	scheme, _, _ := strings.Cut(h.Get("Authorization"), " ")
	switch in.SecuritySchemeName {
	case "apiKey":
		if strings.EqualFold(scheme, "Bearer") {
			return nil
		}
	case "deviceCredential":
		if strings.EqualFold(scheme, "DPoP") {
			return nil
		}
	case "dpopProof":
		if h.Get("DPoP") != "" {
			return nil
		}
	default:
		return fmt.Errorf("openapi.yaml names security scheme %q, unknown to the test", in.SecuritySchemeName)
	}
	return in.NewError(nil)
}

func TestOpenAPIDocumentValid(t *testing.T) {
	t.Parallel()
	oa, err := openAPI()
	if err != nil {
		t.Fatal(err)
	}
	if !oa.doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi.yaml is OpenAPI %s, want 3.1", oa.doc.OpenAPI)
	}
}

// TestOpenAPIValidatorCatchesDrift: the checks above do fail on drift.
func TestOpenAPIValidatorCatchesDrift(t *testing.T) {
	t.Parallel()
	oa, err := openAPI()
	if err != nil {
		t.Fatal(err)
	}
	problem := `{"type":"https://hegate.dev/problems/not-found","title":"Not found","status":404,"detail":"x","error":"x"}`
	tests := []struct {
		name               string
		method, path, auth string
		status             int
		contentType, body  string
		wantErr            string // "" for none
	}{
		{"ok/live", "GET", "/v2/health/live", "", 200, "application/json", `{"live":true}`, ""},
		{"ok/problem", "GET", "/v2/models/nope", "", 404, api.ContentTypeProblem, problem, ""},
		{"fail/undocumented-member", "GET", "/v2/health/live", "", 200, "application/json", `{"live":true,"uptime":3}`, "uptime"},
		{"fail/wrong-member-type", "GET", "/v2/health/live", "", 200, "application/json", `{"live":"yes"}`, "live"},
		{"fail/undocumented-status", "GET", "/v2/models/tiny", "", 418, api.ContentTypeProblem, problem, "status is not supported"},
		{"fail/undocumented-media-type", "GET", "/v2/health/live", "", 200, "text/plain", `live`, "Content-Type"},
		{"fail/accepted-without-credential", "GET", "/v1/keys", "", 200, "application/json", `{"key_sets":[]}`, "security"},
		{"fail/accepted-invalid-parameter", "GET", "/v2/models/tiny/versions/abc", "", 200, "application/json", `{"name":"tiny","platform":"p","inputs":[],"outputs":[]}`, "accepted a request"},
		{"fail/undocumented-path", "GET", "/v2/nowhere", "", 200, "application/json", `{}`, "does not document"},
		{"fail/undocumented-method", "PATCH", "/v2/health/live", "", 200, "application/json", `{}`, "does not document"},
		{"ok/undocumented-path-404", "GET", "/v2/nowhere", "", 404, api.ContentTypeProblem, problem, ""},
		{"ok/server-fault-anywhere", "GET", "/v2/health/live", "", 500, api.ContentTypeProblem, `{"type":"t","title":"t","status":500}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := &recordingWriter{ResponseWriter: httptest.NewRecorder()}
			rec.ResponseWriter.Header().Set("Content-Type", tc.contentType)
			rec.WriteHeader(tc.status)
			_, _ = rec.Write([]byte(tc.body))
			err := oa.check(req, nil, rec, &openAPICoverage{seen: map[string][2]bool{}})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("flagged a faithful exchange: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatal("did not flag it")
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("flagged it as %v; want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

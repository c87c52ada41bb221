// Package client is the Go SDK that devices and the hegate CLI use to talk
// to a gateway: model manifests, key-set uploads, encrypted inference and
// jobs. It shares the wire types of package api with the gateway and never
// imports the server.
//
// The cryptography stays on the device and lives in package he: build a
// he.Device from the served manifest (Client.Device), generate the secret
// key, write the key set for UploadKeySet, Encrypt the input for Infer, and
// Decrypt the result. The secret key never leaves the device.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/he"
)

// Defaults.
const (
	// DefaultMaxResultBytes bounds a result ciphertext the client accepts.
	DefaultMaxResultBytes int64 = 1 << 30
	// maxJSONBytes bounds a JSON answer.
	maxJSONBytes = 16 << 20
	// maxErrorBytes bounds the part of an error answer that is read.
	maxErrorBytes = 64 << 10
)

// Client talks to one gateway as one tenant (the API key's). It is safe for
// concurrent use.
type Client struct {
	base           *url.URL
	apiKey         string
	hc             *http.Client
	userAgent      string
	pollMin        time.Duration
	pollMax        time.Duration
	maxResultBytes int64
	device         *DeviceCredential
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (timeouts, TLS, proxies). The default
// is a client without a global timeout: bound calls with their context.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithPollInterval sets how often WaitJob polls: first after first, then
// backing off up to max.
func WithPollInterval(first, max time.Duration) Option {
	return func(c *Client) { c.pollMin, c.pollMax = first, max }
}

// WithMaxResultBytes bounds the result ciphertexts the client accepts.
func WithMaxResultBytes(n int64) Option { return func(c *Client) { c.maxResultBytes = n } }

// New makes a client for the gateway at baseURL (e.g. "https://gw:8443")
// that authenticates with apiKey ("hgk_..."). An empty apiKey is allowed
// for the public routes (metadata, health).
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: base URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q: want http(s)://host[:port]", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	c := &Client{
		base:           u,
		apiKey:         apiKey,
		hc:             &http.Client{},
		userAgent:      "hegate-client",
		pollMin:        50 * time.Millisecond,
		pollMax:        2 * time.Second,
		maxResultBytes: DefaultMaxResultBytes,
	}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		return nil, errors.New("client: WithHTTPClient(nil)")
	}
	if c.pollMin <= 0 || c.pollMax < c.pollMin {
		return nil, fmt.Errorf("client: poll interval %s..%s: want 0 < first <= max", c.pollMin, c.pollMax)
	}
	return c, nil
}

// Error is an error answer from the gateway: its HTTP status and problem
// document (on /v2 the OIP error message too).
type Error struct {
	StatusCode int
	Problem    api.Problem
}

// Error describes the answer: status, detail and request id.
func (e *Error) Error() string {
	msg := e.Problem.Detail
	if msg == "" {
		msg = e.Problem.Error
	}
	if msg == "" {
		msg = e.Problem.Title
	}
	s := fmt.Sprintf("gateway answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if msg != "" {
		s += ": " + msg
	}
	if e.Problem.RequestID != "" {
		s += " (request id " + e.Problem.RequestID + ")"
	}
	return s
}

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// request builds an authenticated request for path (which may hold a query).
func (c *Client) request(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	ref, err := url.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("client: path %q: %w", path, err)
	}
	u := *c.base
	u.RawPath = c.base.EscapedPath() + ref.EscapedPath() // keeps escapes such as %2F
	u.Path += ref.Path
	u.RawQuery = ref.RawQuery
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	switch {
	case c.device != nil:
		if err := c.device.authorize(req); err != nil {
			return nil, err
		}
	case c.apiKey != "":
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	req.Header.Set("User-Agent", c.userAgent)
	return req, nil
}

// do sends req and returns the response if its status is one of ok; any
// other status becomes an *Error and the body is closed.
func (c *Client) do(req *http.Request, ok ...int) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", req.Method, req.URL.Path, err)
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			return resp, nil
		}
	}
	defer resp.Body.Close()
	return nil, readError(resp)
}

// readError turns an error answer into an *Error.
func readError(resp *http.Response) error {
	e := &Error{StatusCode: resp.StatusCode}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if (mt == api.ContentTypeProblem || mt == api.ContentTypeJSON) && json.Unmarshal(body, &e.Problem) == nil {
		if e.Problem.Status == 0 {
			e.Problem.Status = resp.StatusCode
		}
	} else {
		e.Problem = api.Problem{Status: resp.StatusCode, Detail: strings.TrimSpace(string(body))}
	}
	if e.Problem.RequestID == "" {
		e.Problem.RequestID = resp.Header.Get(api.HeaderRequestID)
	}
	return e
}

// getJSON GETs path and decodes a 200 answer into v.
func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	req, err := c.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeJSON(resp, v)
}

func decodeJSON(resp *http.Response, v any) error {
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJSONBytes)).Decode(v); err != nil {
		return fmt.Errorf("client: decoding answer of %s %s: %w", resp.Request.Method, resp.Request.URL.Path, err)
	}
	return nil
}

// Server returns the gateway's OIP server metadata.
func (c *Client) Server(ctx context.Context) (api.ServerMetadata, error) {
	var v api.ServerMetadata
	return v, c.getJSON(ctx, "/v2", &v)
}

// Models lists the models the gateway serves.
func (c *Client) Models(ctx context.Context) ([]api.ModelMetadata, error) {
	var v api.ModelList
	return v.Models, c.getJSON(ctx, "/v2/models", &v)
}

// ModelMetadata returns a model's OIP metadata, with its manifest. model
// is a name (a built-in model, or the latest ready version of an uploaded
// one) or "name@vN" (version N).
func (c *Client) ModelMetadata(ctx context.Context, model string) (api.ModelMetadata, error) {
	var v api.ModelMetadata
	return v, c.getJSON(ctx, modelPath(model), &v)
}

// SplitModelRef splits "name@vN" into name and N; a plain name has version 0.
func SplitModelRef(model string) (string, int) {
	name, v, ok := strings.Cut(model, "@v")
	if !ok {
		return model, 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return model, 0
	}
	return name, n
}

// modelPath is the OIP path of a model reference.
func modelPath(model string) string {
	name, v := SplitModelRef(model)
	if v == 0 {
		return "/v2/models/" + url.PathEscape(name)
	}
	return "/v2/models/" + url.PathEscape(name) + "/versions/" + strconv.Itoa(v)
}

// ModelUpload says how UploadModel sends a model.
type ModelUpload struct {
	Name        string
	ContentType string // api.ContentTypeONNX (default) or api.ContentTypeIRJSON
	// Options are sent as query parameters (preset, relu_degree,
	// abs_degree, margin, split_after, scale, mean, std, layout).
	Options        url.Values
	IdempotencyKey string
}

// UploadModel uploads a model file; it compiles in a job (poll
// ModelVersion, or WaitModel).
func (c *Client) UploadModel(ctx context.Context, up ModelUpload, r io.Reader, size int64) (api.ModelVersion, error) {
	q := url.Values{}
	for k, v := range up.Options {
		q[k] = v
	}
	q.Set(api.QueryName, up.Name)
	req, err := c.request(ctx, http.MethodPost, api.PathModels+"?"+q.Encode(), io.NopCloser(r))
	if err != nil {
		return api.ModelVersion{}, err
	}
	req.ContentLength = size
	ct := up.ContentType
	if ct == "" {
		ct = api.ContentTypeONNX
	}
	req.Header.Set("Content-Type", ct)
	if up.IdempotencyKey != "" {
		req.Header.Set(api.HeaderIdempotencyKey, up.IdempotencyKey)
	}
	resp, err := c.do(req, http.StatusAccepted, http.StatusOK)
	if err != nil {
		return api.ModelVersion{}, err
	}
	defer resp.Body.Close()
	var v api.ModelVersion
	return v, decodeJSON(resp, &v)
}

// ModelVersion returns one version of a model, any status.
func (c *Client) ModelVersion(ctx context.Context, name string, version int) (api.ModelVersion, error) {
	var v api.ModelVersion
	return v, c.getJSON(ctx, api.PathModels+"/"+url.PathEscape(name)+"/versions/"+strconv.Itoa(version), &v)
}

// ModelVersions lists the versions of a model, newest first.
func (c *Client) ModelVersions(ctx context.Context, name string) ([]api.ModelVersion, error) {
	var v api.ModelVersionList
	return v.Models, c.getJSON(ctx, api.PathModels+"/"+url.PathEscape(name), &v)
}

// TenantModels lists the built-in models and the latest version of each of
// the caller's models.
func (c *Client) TenantModels(ctx context.Context) ([]api.ModelVersion, error) {
	var v api.ModelVersionList
	return v.Models, c.getJSON(ctx, api.PathModels, &v)
}

// DeleteModel deletes every version of one of the caller's models.
func (c *Client) DeleteModel(ctx context.Context, name string) error {
	req, err := c.request(ctx, http.MethodDelete, api.PathModels+"/"+url.PathEscape(name), nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req, http.StatusNoContent)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// WaitModel polls a version until it is ready or failed.
func (c *Client) WaitModel(ctx context.Context, name string, version int) (api.ModelVersion, error) {
	delay := c.pollMin
	for {
		v, err := c.ModelVersion(ctx, name, version)
		if err != nil || v.Status != api.ModelStatusCompiling {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, c.pollMax)
	}
}

// Model returns a model's manifest as the gateway serves it: what a device
// needs to generate keys and encrypt.
func (c *Client) Model(ctx context.Context, model string) (he.Manifest, error) {
	md, err := c.ModelMetadata(ctx, model)
	if err != nil {
		return he.Manifest{}, err
	}
	if md.Hegate == nil {
		return he.Manifest{}, fmt.Errorf("client: model %s: the gateway sent no hegate manifest", model)
	}
	return *md.Hegate, nil
}

// Device fetches a model's manifest and builds the device side of the
// model from it (he.NewDevice). allowInsecure admits test-only parameters.
func (c *Client) Device(ctx context.Context, model string, allowInsecure bool) (*he.Device, error) {
	man, err := c.Model(ctx, model)
	if err != nil {
		return nil, err
	}
	d, err := he.NewDevice(man, allowInsecure)
	if err != nil {
		return nil, fmt.Errorf("client: model %s: %w", model, err)
	}
	return d, nil
}

// UploadKeySet streams a key set of size bytes (the manifest's
// key_set_bytes; -1 if unknown) for model. The gateway validates it against
// the model while storing it. Uploading the same key set again returns the
// existing record.
func (c *Client) UploadKeySet(ctx context.Context, model string, r io.Reader, size int64) (api.KeySet, error) {
	name, version := SplitModelRef(model)
	q := url.Values{api.QueryModel: {name}}
	if version > 0 {
		q.Set(api.QueryVersion, strconv.Itoa(version))
	}
	path := api.PathKeys + "?" + q.Encode()
	req, err := c.request(ctx, http.MethodPost, path, io.NopCloser(r))
	if err != nil {
		return api.KeySet{}, err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", api.ContentTypeKeySet)
	resp, err := c.do(req, http.StatusCreated, http.StatusOK)
	if err != nil {
		return api.KeySet{}, err
	}
	defer resp.Body.Close()
	var ks api.KeySet
	return ks, decodeJSON(resp, &ks)
}

// KeySets lists the tenant's key sets, newest first.
func (c *Client) KeySets(ctx context.Context) ([]api.KeySet, error) {
	var v api.KeySetList
	return v.KeySets, c.getJSON(ctx, api.PathKeys, &v)
}

// KeySet returns one of the tenant's key sets.
func (c *Client) KeySet(ctx context.Context, id string) (api.KeySet, error) {
	var v api.KeySet
	return v, c.getJSON(ctx, api.PathKeys+"/"+url.PathEscape(id), &v)
}

// DeleteKeySet forgets one of the tenant's key sets.
func (c *Client) DeleteKeySet(ctx context.Context, id string) error {
	req, err := c.request(ctx, http.MethodDelete, api.PathKeys+"/"+url.PathEscape(id), nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req, http.StatusNoContent)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Job returns one of the tenant's jobs.
func (c *Client) Job(ctx context.Context, id string) (api.Job, error) {
	var v api.Job
	return v, c.getJSON(ctx, api.PathJobs+"/"+url.PathEscape(id), &v)
}

// Jobs lists the tenant's most recent jobs, newest first; limit <= 0 means
// the gateway's default.
func (c *Client) Jobs(ctx context.Context, limit int) ([]api.Job, error) {
	path := api.PathJobs
	if limit > 0 {
		path += "?" + api.QueryLimit + "=" + strconv.Itoa(limit)
	}
	var v api.JobList
	return v.Jobs, c.getJSON(ctx, path, &v)
}

// CancelJob cancels one of the tenant's queued jobs.
func (c *Client) CancelJob(ctx context.Context, id string) (api.Job, error) {
	req, err := c.request(ctx, http.MethodPost, api.PathJobs+"/"+url.PathEscape(id)+"/cancel", nil)
	if err != nil {
		return api.Job{}, err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return api.Job{}, err
	}
	defer resp.Body.Close()
	var v api.Job
	return v, decodeJSON(resp, &v)
}

// WaitJob polls a job, backing off, until it is terminal or ctx ends.
func (c *Client) WaitJob(ctx context.Context, id string) (api.Job, error) {
	delay := c.pollMin
	for {
		job, err := c.Job(ctx, id)
		if err != nil {
			return api.Job{}, err
		}
		if job.Status.Terminal() {
			return job, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return job, fmt.Errorf("client: waiting for job %s: %w", id, ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, c.pollMax)
	}
}

// Result returns a succeeded job's result ciphertext. For a job that is not
// finished, or failed, the gateway answers 409 and the *Error's detail says
// why.
func (c *Client) Result(ctx context.Context, id string) ([]byte, error) {
	req, err := c.request(ctx, http.MethodGet, api.PathJobs+"/"+url.PathEscape(id)+"/result", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", api.ContentTypeCiphertext)
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return readBounded(resp.Body, c.maxResultBytes, "result of job "+id)
}

func readBounded(r io.Reader, limit int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("client: reading %s: %w", what, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("client: %s exceeds %d bytes", what, limit)
	}
	return b, nil
}

// Argmax returns the index of the largest value (the predicted class of a
// decrypted logit vector), or -1 for an empty slice.
func Argmax(x []float64) int {
	best := -1
	for i, v := range x {
		if best < 0 || v > x[best] {
			best = i
		}
	}
	return best
}

// Budgets returns the caller's privacy budgets in their current periods.
func (c *Client) Budgets(ctx context.Context) ([]api.Budget, error) {
	var v api.BudgetList
	return v.Budgets, c.getJSON(ctx, api.PathBudget, &v)
}

// Budget returns the caller's budget for one model.
func (c *Client) Budget(ctx context.Context, model string) (api.Budget, error) {
	var v api.Budget
	return v, c.getJSON(ctx, api.PathBudget+"/"+url.PathEscape(model), &v)
}

// SetBudget sets the tenant's budget for one of its uploaded models; it
// needs an admin key.
func (c *Client) SetBudget(ctx context.Context, model string, b api.SetBudgetRequest) (api.Budget, error) {
	body, err := json.Marshal(b)
	if err != nil {
		return api.Budget{}, err
	}
	req, err := c.request(ctx, http.MethodPut, api.PathBudgets+"/"+url.PathEscape(model), bytes.NewReader(body))
	if err != nil {
		return api.Budget{}, err
	}
	req.Header.Set("Content-Type", api.ContentTypeJSON)
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return api.Budget{}, err
	}
	defer resp.Body.Close()
	var v api.Budget
	return v, decodeJSON(resp, &v)
}

// Ledger returns a page of the tenant's budget ledger, newest first:
// model "" for every model, before 0 for the newest entries.
func (c *Client) Ledger(ctx context.Context, model string, before int64, limit int) (api.Ledger, error) {
	q := url.Values{}
	if model != "" {
		q.Set("model", model)
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := api.PathBudget + "/ledger"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var v api.Ledger
	return v, c.getJSON(ctx, path, &v)
}

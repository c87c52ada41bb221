package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/attest/credential"
	"github.com/hegate/hegate/storage"
)

// problemClass is what an error becomes on the wire.
type problemClass struct {
	status int
	typ    string
	title  string
	kind   hegate.Kind
	detail string // stands in when a client-fault error carries no detail
}

// problemClasses is the one table from Kind to HTTP status, problem type,
// title and default detail. A Kind missing here is internal.
var problemClasses = map[hegate.Kind]problemClass{
	hegate.KindInvalid:         {http.StatusBadRequest, api.ProblemInvalid, "Invalid request", hegate.KindInvalid, "the request is invalid"},
	hegate.KindNotFound:        {http.StatusNotFound, api.ProblemNotFound, "Not found", hegate.KindNotFound, "not found"},
	hegate.KindGone:            {http.StatusGone, api.ProblemGone, "Gone", hegate.KindGone, "this content was removed by the retention policy"},
	hegate.KindUnauthenticated: {http.StatusUnauthorized, api.ProblemUnauthenticated, "Unauthenticated", hegate.KindUnauthenticated, "a valid API key is required"},
	hegate.KindForbidden:       {http.StatusForbidden, api.ProblemForbidden, "Forbidden", hegate.KindForbidden, "not allowed"},
	hegate.KindConflict:        {http.StatusConflict, api.ProblemConflict, "Conflict", hegate.KindConflict, "the request conflicts with the current state"},
	hegate.KindTooLarge:        {http.StatusRequestEntityTooLarge, api.ProblemTooLarge, "Content too large", hegate.KindTooLarge, "the request body is too large"},
	hegate.KindUnavailable:     {http.StatusServiceUnavailable, api.ProblemUnavailable, "Service unavailable", hegate.KindUnavailable, "the service is unavailable; try again later"},
	hegate.KindBudgetExhausted: {http.StatusTooManyRequests, api.ProblemBudgetExhausted, "Privacy budget exhausted", hegate.KindBudgetExhausted, "the privacy budget cannot pay for this request"},
	hegate.KindRejected:        {http.StatusForbidden, api.ProblemRejected, "Rejected", hegate.KindRejected, "the evidence or policy check rejected this request"},
}

var internalProblem = problemClass{http.StatusInternalServerError, api.ProblemInternal, "Internal server error", hegate.KindInternal, ""}

// classify is the one place where errors become HTTP statuses and problem
// types (through problemClasses). A *hegate.Error's Kind wins; storage's
// domain errors and the HTTP body limit are recognised when nothing
// classified them; anything else is internal. KindGone (content the
// retention policy removed) is 410, so a client knows not to ask again.
//
// A failure of the store (storage.ErrUnavailable: it cannot be reached,
// timed out, a table is locked or missing) or the request's deadline
// (context.DeadlineExceeded) is 503, even where a handler wrapped it as
// internal: it is not a bug of the request's, and trying again later may
// work (writeError adds Retry-After).
func classify(err error) problemClass {
	var he *hegate.Error
	kind := hegate.KindInternal
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		kind = he.Kind
	case errors.As(err, &mbe), errors.Is(err, storage.ErrTooLarge):
		kind = hegate.KindTooLarge
	case errors.Is(err, storage.ErrNotFound):
		kind = hegate.KindNotFound
	case errors.Is(err, storage.ErrConflict):
		kind = hegate.KindConflict
	}
	if kind == hegate.KindInternal && unavailable(err) {
		kind = hegate.KindUnavailable
	}
	if c, ok := problemClasses[kind]; ok {
		return c
	}
	return internalProblem
}

// unavailable reports whether err is the store failing or the request's
// deadline passing.
func unavailable(err error) bool {
	return errors.Is(err, storage.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// problemFor builds the problem document for err. Only client-fault errors
// reveal their detail.
func problemFor(r *http.Request, err error) (api.Problem, problemClass) {
	c := classify(err)
	reqID := RequestIDFromContext(r.Context())
	p := api.Problem{
		Type:      c.typ,
		Title:     c.title,
		Status:    c.status,
		Instance:  r.URL.Path,
		RequestID: reqID,
	}
	if c.status >= 500 {
		p.Detail = "the server could not complete the request; quote request id " + reqID
		if c.kind == hegate.KindUnavailable {
			p.Detail = "the service is unavailable, try again later; request id " + reqID
		}
	} else {
		p.Detail = hegate.DetailOf(err)
		var mbe *http.MaxBytesError
		if p.Detail == "" && errors.As(err, &mbe) {
			p.Detail = "the request body exceeds the limit of " + strconv.FormatInt(mbe.Limit, 10) + " bytes"
		}
		if p.Detail == "" {
			p.Detail = c.detail
		}
	}
	if c.status < 500 {
		p.Reason = reasonOf(err)
	}
	if isOIP(r) {
		p.Error = p.Title + ": " + p.Detail
	}
	return p, c
}

// isOIP reports whether the request is on the Open Inference Protocol side.
func isOIP(r *http.Request) bool {
	return r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/")
}

// writeError answers err as a problem document (on /v2 with the OIP "error"
// member too) and logs it: the cause of a 5xx at error level with the
// request id, client faults at debug level.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	if clientGone(r, err) {
		// Nobody will read the answer: not a server fault, so neither an
		// error-level log line nor a 5xx in the metrics.
		log.InfoContext(r.Context(), "request abandoned by the client",
			slog.String("request_id", RequestIDFromContext(r.Context())),
			slog.String("error", err.Error()))
		w.WriteHeader(statusClientClosedRequest)
		return
	}
	p, c := problemFor(r, err)
	attrs := []any{
		slog.String("request_id", p.RequestID),
		slog.Int("status", c.status),
		slog.String("error", err.Error()),
	}
	switch {
	case c.status >= 500 && c.kind != hegate.KindUnavailable:
		log.ErrorContext(r.Context(), "request failed", attrs...)
	case c.status >= 500:
		log.WarnContext(r.Context(), "request failed", attrs...)
	default:
		log.DebugContext(r.Context(), "request rejected", attrs...)
	}
	h := w.Header()
	switch c.status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", authChallenge(r, err))
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	case http.StatusTooManyRequests:
		// An exhausted privacy budget can be retried when it renews; one
		// that never renews has no Retry-After.
		if c.kind != hegate.KindBudgetExhausted {
			h.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		}
		setRetryAfter(w, err, time.Now())
	}
	writeProblem(w, p)
}

// authChallenge is the WWW-Authenticate of a 401. A request that came with
// a device credential (Authorization: DPoP) gets the DPoP challenge of RFC
// 9449 section 7.1, with its error code (invalid_dpop_proof when the proof
// was at fault, invalid_token otherwise) and the proof algorithms accepted,
// so that a DPoP client can tell a bad proof from a bad token; anything
// else gets the Bearer challenge of API keys.
func authChallenge(r *http.Request, err error) string {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "DPoP") {
		return `Bearer realm="hegate"`
	}
	code := "invalid_token"
	if strings.HasPrefix(string(credential.ReasonOf(err)), "proof-") {
		code = "invalid_dpop_proof"
	}
	return `DPoP realm="hegate", error="` + code + `", algs="EdDSA ES256"`
}

// statusClientClosedRequest is the status the access log and the metrics
// record for a request whose client went away (nginx's 499).
const statusClientClosedRequest = 499

// clientGone reports whether err is the request's own context ending
// because the client closed the connection.
func clientGone(r *http.Request, err error) bool {
	return r.Context().Err() != nil && errors.Is(err, context.Canceled)
}

// writeMethodNotAllowed answers 405: a routing answer, not an error Kind.
func writeMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	p := api.Problem{
		Type:      api.ProblemMethodNotAllowed,
		Title:     "Method not allowed",
		Status:    http.StatusMethodNotAllowed,
		Detail:    "method " + truncate(r.Method, 20) + " is not allowed on " + truncate(r.URL.Path, 200),
		Instance:  r.URL.Path,
		RequestID: RequestIDFromContext(r.Context()),
	}
	if isOIP(r) {
		p.Error = p.Title + ": " + p.Detail
	}
	writeProblem(w, p)
}

// retryAfterSeconds is the Retry-After of a 429 or 503.
const retryAfterSeconds = 5

func writeProblem(w http.ResponseWriter, p api.Problem) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", api.ContentTypeProblem)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeJSON answers v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", api.ContentTypeJSON)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// Principal is who made an authenticated request (see service.Principal).
// The tenant comes only from the credential (an API key, or a device
// credential the gateway signed), never from the path or body.
type Principal = service.Principal

type ctxKey int

const (
	requestIDKey ctxKey = iota
	principalKey
	accessKey
	clientAddressKey
)

// RequestIDFromContext returns the request id the gateway assigned, or "".
func RequestIDFromContext(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

// PrincipalFromContext returns the authenticated caller, if any.
func PrincipalFromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey).(Principal)
	return p, ok
}

// accessInfo collects what inner handlers learn for the access log.
type accessInfo struct {
	tenant hegate.TenantID
}

// requestID accepts a well-formed X-Request-Id from the client or makes
// one, puts it in the context and echoes it in the response.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(api.HeaderRequestID)
		if !wellFormedRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(api.HeaderRequestID, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

func wellFormedRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// accessLog writes one JSON log line per request and feeds the request
// metrics. It logs no bodies, no headers, no query: nothing secret.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.cfg.Clock()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		info := &accessInfo{}
		r = r.WithContext(context.WithValue(r.Context(), accessKey, info))
		defer func() {
			d := s.cfg.Clock().Sub(start)
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			route := routeUnmatched
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			s.metrics.observeRequest(route, r.Method, status, d)
			attrs := []slog.Attr{
				slog.String("request_id", RequestIDFromContext(r.Context())),
				// The client chooses the method and path: bounded, and the
				// path percent-encoded (ASCII, as sent), so that neither
				// their length nor their bytes size the line.
				slog.String("method", truncate(r.Method, maxLoggedMethod)),
				slog.String("route", route),
				slog.String("path", truncate(r.URL.EscapedPath(), maxLoggedPath)),
				slog.Int("status", status),
				slog.Int64("bytes_in", r.ContentLength),
				slog.Int("bytes_out", ww.BytesWritten()),
				millis("duration_ms", d),
				slog.String("remote", r.RemoteAddr),
			}
			if info.tenant != "" {
				attrs = append(attrs, slog.String("tenant", string(info.tenant)))
			}
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request", attrs...)
		}()
		next.ServeHTTP(ww, r)
	})
}

// recoverer turns a panic into a 500 problem and logs it with the stack.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as documented
				panic(p)
			}
			s.log.ErrorContext(r.Context(), "panic serving request",
				slog.String("request_id", RequestIDFromContext(r.Context())),
				slog.String("panic", fmt.Sprint(p)),
				slog.String("stack", string(debug.Stack())))
			if ww, ok := w.(middleware.WrapResponseWriter); ok && ww.Status() != 0 {
				return // too late for a problem document
			}
			writeError(w, r, s.log, errors.New("panic"))
		}()
		next.ServeHTTP(w, r)
	})
}

// bodyDeadline gives a request that announces a body a read deadline of
// Config.BodyIdleTimeout from its start. A route that reads the body moves
// it along as bytes arrive (see clientBody); one that answers without
// reading it (401, 404, ...) still has net/http read and discard the rest
// of a small body before answering, and without a deadline a client that
// never sends it would hold the connection and its goroutine forever.
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyIdleTimeout))
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody bounds the request body; reading past n fails with
// *http.MaxBytesError, which becomes 413. Every other failure to read the
// body is the client's (400, see clientBody), including a body that stops
// arriving for Config.BodyIdleTimeout.
func (s *Server) limitBody(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				s.fail(w, r, hegate.E("gateway.limitBody", hegate.KindTooLarge, nil,
					"request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, n))
				return
			}
			b := &clientBody{
				body: http.MaxBytesReader(w, r.Body, n),
				rc:   http.NewResponseController(w),
				idle: s.cfg.BodyIdleTimeout,
				rate: bodyRate{min: s.cfg.BodyMinRate, grace: s.cfg.BodyRateGrace},
			}
			if r.ProtoMajor == 1 {
				b.header = w.Header()
			}
			r.Body = b
			next.ServeHTTP(w, r)
		})
	}
}

// clientBody is a request body that the client controls:
//
//   - Before each read it sets the connection's read deadline idle ahead, so
//     a body that stalls (a slow-loris upload holding a goroutine, a pipe
//     and a temporary file) fails after idle without a byte, while a large
//     upload that keeps moving is never cut off. At the end of the body the
//     deadline is cleared: net/http's background read after the body would
//     otherwise hit it and cancel the request's context mid-handler.
//   - The deadline comes sooner when the body falls behind its minimum
//     rate (Config.BodyMinRate after BodyRateGrace, see bodyRate), so a
//     body that trickles a byte at a time, never quite stalling, fails too.
//   - A read error other than the size limit (a truncated body, a malformed
//     chunked encoding, a deadline) becomes a KindInvalid error with
//     a detail, so it answers 400 instead of surfacing as a 500. The
//     HTTP/1 connection is then closed after the answer, and its read
//     deadline left in the past, so that net/http does not wait for the
//     rest of a broken body after the handler. (On HTTP/2 a Connection
//     header would shut down every stream of the connection: not sent.)
type clientBody struct {
	body   io.ReadCloser
	rc     *http.ResponseController // nil once deadlines proved unsupported
	header http.Header              // the response's, on HTTP/1; nil on HTTP/2
	idle   time.Duration
	rate   bodyRate
	slow   bool // the deadline armed is the rate's, not idle's
	armed  bool
	failed error // sticky: the verdict on a body that could not be read
}

func (b *clientBody) Read(p []byte) (int, error) {
	if b.failed != nil {
		return 0, b.failed
	}
	if b.rc != nil {
		now := time.Now()
		deadline := now.Add(b.idle)
		due := b.rate.due(now)
		if b.slow = !due.IsZero() && due.Before(deadline); b.slow {
			deadline = due
		}
		if err := b.rc.SetReadDeadline(deadline); err != nil {
			b.rc = nil // e.g. httptest.ResponseRecorder: no idle limit
		} else {
			b.armed = true
			// http.Server.WriteTimeout counts from the request's headers,
			// so a long upload would leave no time for its answer: the
			// handler gets ResponseWindow from the last byte read instead.
			_ = b.rc.SetWriteDeadline(now.Add(b.idle + ResponseWindow))
		}
	}
	n, err := b.body.Read(p)
	b.rate.n += int64(n)
	switch {
	case err == nil:
	case err == io.EOF:
		b.disarm()
	case isMaxBytes(err):
		b.disarm() // http.MaxBytesReader closes the connection itself
	case b.slow && errors.Is(err, os.ErrDeadlineExceeded):
		b.broken()
		err = b.rate.tooSlow(err, time.Now())
		b.failed = err
	default:
		b.broken()
		err = bodyReadError(err, b.idle)
		b.failed = err
	}
	return n, err
}

// Close clears the read deadline and closes the body.
func (b *clientBody) Close() error {
	b.disarm()
	return b.body.Close()
}

func (b *clientBody) disarm() {
	if b.armed {
		_ = b.rc.SetReadDeadline(time.Time{})
		b.armed = false
	}
}

// broken gives up on the connection after a body that could not be read.
func (b *clientBody) broken() {
	if b.armed {
		_ = b.rc.SetReadDeadline(time.Now()) // later reads fail at once
		b.armed = false
	}
	if b.header != nil {
		b.header.Set("Connection", "close")
	}
}

// bodyReadError classifies a failure to read the request body.
func bodyReadError(err error, idle time.Duration) error {
	const op = "gateway.body"
	switch {
	case isMaxBytes(err):
		return err // 413, naming the limit
	case errors.Is(err, os.ErrDeadlineExceeded):
		return hegate.E(op, hegate.KindInvalid, err, "the request body stalled: no byte arrived for %s", idle)
	default:
		return hegate.E(op, hegate.KindInvalid, err, "the request body could not be read: it is truncated or its transfer encoding is malformed")
	}
}

// authenticate requires "Authorization: Bearer hgk_..." and puts the key's
// principal in the context.
func (s *Server) authenticate(next http.Handler) http.Handler {
	const op = "gateway.authenticate"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		token = strings.TrimSpace(token)
		if ok && strings.EqualFold(scheme, "DPoP") {
			p, err := s.authenticateDevice(r, token)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			p.From, p.RequestID = s.clientAddress(r), RequestIDFromContext(r.Context())
			if info, ok := r.Context().Value(accessKey).(*accessInfo); ok {
				info.tenant = p.Tenant
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
			return
		}
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			s.fail(w, r, hegate.E(op, hegate.KindUnauthenticated, nil, "send an API key as Authorization: Bearer hgk_..., or a device credential as Authorization: DPoP <token> with a DPoP proof header"))
			return
		}
		if !wellFormedAPIKey(token) {
			s.fail(w, r, hegate.E(op, hegate.KindUnauthenticated, nil, "malformed API key"))
			return
		}
		key, err := s.cfg.Store.LookupAPIKey(r.Context(), hashAPIKey(token))
		switch {
		case errors.Is(err, storage.ErrNotFound):
			s.fail(w, r, hegate.E(op, hegate.KindUnauthenticated, nil, "unknown or revoked API key"))
			return
		case err != nil:
			s.fail(w, r, hegate.E(op, hegate.KindUnavailable, fmt.Errorf("looking up API key: %w", err), ""))
			return
		}
		if info, ok := r.Context().Value(accessKey).(*accessInfo); ok {
			info.tenant = key.TenantID
		}
		p := Principal{Tenant: key.TenantID, APIKey: key.ID, Role: key.Role, From: s.clientAddress(r), RequestID: RequestIDFromContext(r.Context())}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
	})
}

// optionalAuthenticate authenticates a request that carries an
// Authorization header (and refuses a bad one, as authenticate does); a
// request without one goes on anonymously.
func (s *Server) optionalAuthenticate(next http.Handler) http.Handler {
	auth := s.authenticate(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, present := r.Header["Authorization"]; !present {
			next.ServeHTTP(w, r)
			return
		}
		auth.ServeHTTP(w, r)
	})
}

// principal returns the caller of an authenticated route.
func principal(r *http.Request) (Principal, error) {
	p, ok := PrincipalFromContext(r.Context())
	if !ok {
		return Principal{}, errors.New("gateway: route is not behind authenticate")
	}
	return p, nil
}

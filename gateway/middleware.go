package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/storage"
)

// Principal is who made an authenticated request. The tenant comes only
// from the API key, never from the path or body.
type Principal struct {
	Tenant hegate.TenantID
	APIKey hegate.APIKeyID
}

type ctxKey int

const (
	requestIDKey ctxKey = iota
	principalKey
	accessKey
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
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			s.metrics.observeRequest(route, r.Method, status, d)
			attrs := []slog.Attr{
				slog.String("request_id", RequestIDFromContext(r.Context())),
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.String("path", r.URL.Path),
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

// limitBody bounds the request body; reading past n fails with
// *http.MaxBytesError, which becomes 413.
func (s *Server) limitBody(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				s.fail(w, r, hegate.E("gateway.limitBody", hegate.KindTooLarge, nil,
					"request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, n))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, n)
			next.ServeHTTP(w, r)
		})
	}
}

// authenticate requires "Authorization: Bearer hgk_..." and puts the key's
// principal in the context.
func (s *Server) authenticate(next http.Handler) http.Handler {
	const op = "gateway.authenticate"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			s.fail(w, r, hegate.E(op, hegate.KindUnauthenticated, nil, "send an API key as Authorization: Bearer hgk_..."))
			return
		}
		token = strings.TrimSpace(token)
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
		p := Principal{Tenant: key.TenantID, APIKey: key.ID}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
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

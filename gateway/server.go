package gateway

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he"
)

// Limits on small request parts.
const (
	// maxSmallBody bounds the body of routes that take none or a little.
	maxSmallBody = 64 << 10
	// maxInferHeaderBytes bounds the JSON part of an inference request.
	maxInferHeaderBytes = 64 << 10
)

// Server is the HTTP API. It is safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	models  map[hegate.ModelID]*he.Model
	order   []hegate.ModelID // as configured, for listings
	router  chi.Router
}

// New validates cfg and builds the server.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: cfg.Metrics,
		models:  make(map[hegate.ModelID]*he.Model, len(cfg.Models)),
	}
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	for _, m := range cfg.Models {
		s.models[m.ID()] = m
		s.order = append(s.order, m.ID())
	}
	s.router = s.routes()
	return s, nil
}

// Handler returns the HTTP handler of the whole API.
func (s *Server) Handler() http.Handler { return s.router }

// Metrics returns the metrics the server reports at /metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(requestID, s.accessLog, s.recoverer, s.bodyDeadline)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, hegate.E("gateway.route", hegate.KindNotFound, nil, "no route for %s %s", truncate(r.Method, 20), truncate(r.URL.Path, 200)))
	})
	r.MethodNotAllowed(s.methodNotAllowed)

	small := s.limitBody(maxSmallBody)
	// The largest infer body: the JSON header plus the ciphertext, in
	// binary or base64 (4/3 of it).
	inferLimit := maxInferHeaderBytes + 16 + (s.cfg.MaxCiphertextBytes+2)/3*4

	// On authenticated routes authenticate runs before limitBody: a caller
	// without a valid key gets 401, whatever body it announces, and learns
	// nothing about the limits.
	r.Group(func(r chi.Router) {
		r.Use(small)
		r.Get("/metrics", s.metrics.Handler().ServeHTTP)
		r.Get("/openapi.yaml", serveOpenAPI)
		r.Get("/v2", s.serverMetadata)
		r.Get("/v2/health/live", s.live)
		r.Get("/v2/health/ready", s.ready)
		r.Get("/v2/models", s.listModels)
		r.Get("/v2/models/{model}", s.modelMetadata)
		r.Get("/v2/models/{model}/ready", s.modelReady)
	})
	r.With(s.authenticate, s.limitBody(inferLimit)).Post("/v2/models/{model}/infer", s.infer)
	r.With(s.authenticate, s.limitBody(s.cfg.MaxKeySetBytes)).Post("/v1/keys", s.uploadKeySet)
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate, small)
		r.Get("/v1/keys", s.listKeySets)
		r.Get("/v1/keys/{id}", s.getKeySet)
		r.Delete("/v1/keys/{id}", s.deleteKeySet)
		r.Get("/v1/jobs", s.listJobs)
		r.Get("/v1/jobs/{id}", s.getJob)
		r.Get("/v1/jobs/{id}/result", s.jobResult)
		r.Post("/v1/jobs/{id}/cancel", s.cancelJob)
	})
	return r
}

// methodNotAllowed answers 405 with the Allow header.
func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if s.router.Match(chi.NewRouteContext(), m, r.URL.Path) {
			allow = append(allow, m)
		}
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeMethodNotAllowed(w, r)
}

// fail answers err (see classify) and logs it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, r, s.log, err)
}

// model returns the named model or a not-found error.
func (s *Server) model(op, name string) (*he.Model, error) {
	m, ok := s.models[hegate.ModelID(name)]
	if !ok {
		return nil, hegate.E(op, hegate.KindNotFound, nil, "model %q not found", truncate(name, 80))
	}
	return m, nil
}

// wrap adds context to err without losing its Kind.
func wrap(err error, format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, err)...)
}

package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/credential"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/service"
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
	catalog *catalog.Catalog
	router  chi.Router

	svc          *service.Service
	console      http.Handler // nil: no console
	streams      streams      // open job event streams
	credKeys     *SigningKeys
	credIssuer   *credential.Issuer
	credVerifier *credential.Verifier
	limits       *limits
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
		catalog: cfg.Catalog,
	}
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	if s.catalog == nil {
		cat, err := catalog.New(catalog.Config{Store: cfg.Store, Blobs: cfg.Blobs, Builtin: cfg.Models, MaxSourceBytes: cfg.MaxModelBytes})
		if err != nil {
			return nil, err
		}
		s.catalog = cat
	}
	keys, err := NewSigningKeys(cfg.Store, cfg.Clock, cfg.CredentialKEK)
	if err != nil {
		return nil, hegate.E("gateway.New", hegate.KindInvalid, err, "gateway: Config.CredentialKEK: %v", err)
	}
	if !keys.Encrypted() {
		s.log.Warn("credential signing keys are stored in clear in the database: set a key-encryption key (HEGATE_CREDENTIAL_KEK) so that a copy of the database mints no device credential")
	}
	s.credKeys = keys
	s.credIssuer = &credential.Issuer{Issuer: cfg.CredentialIssuer, Audience: cfg.CredentialAudience, TTL: cfg.CredentialTTL, Keys: s.credKeys, Now: cfg.Clock}
	s.credVerifier = &credential.Verifier{Issuer: cfg.CredentialIssuer, Audience: cfg.CredentialAudience, Keys: s.credKeys, Replay: storeReplay{store: cfg.Store, now: cfg.Clock, uses: new(atomic.Uint64)}, Now: cfg.Clock}
	svc, err := service.New(service.Config{
		Store:         cfg.Store,
		Blobs:         cfg.Blobs,
		Catalog:       s.catalog,
		DefaultBudget: cfg.DefaultBudget,
		Verifiers:     cfg.Verifiers,
		Credentials:   s.credIssuer,
		ChallengeTTL:  cfg.ChallengeTTL,
		Logger:        s.log,
		Clock:         cfg.Clock,
		DeleteBlobs: func(ctx context.Context, reason string, keys []string) {
			log := s.log.With("request_id", RequestIDFromContext(ctx))
			_, _ = deleteBlobs(ctx, cfg.Blobs, s.metrics, log, reason, keys)
		},
		JobFinished: cfg.JobEvents.finished,
	})
	if err != nil {
		return nil, err
	}
	s.svc = svc
	if cfg.Console != nil {
		if s.console, err = cfg.Console(svc, ConsoleHooks{GuardModelUpload: s.guardModelUpload}); err != nil {
			return nil, fmt.Errorf("gateway: making the console: %w", err)
		}
	}
	s.limits = newLimits(cfg, s.metrics.reg)
	s.router = s.routes()
	return s, nil
}

// Handler returns the HTTP handler of the whole API.
func (s *Server) Handler() http.Handler { return s.router }

// Service returns the rules the server's handlers call, for the console
// to share.
func (s *Server) Service() *service.Service { return s.svc }

// Metrics returns the metrics the server reports at /metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(requestID, s.accessLog, s.trace, limitHeader, s.recoverer, s.bodyDeadline, s.limitClients, s.requestDeadline)
	r.NotFound(s.limitPublic(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, hegate.E("gateway.route", hegate.KindNotFound, nil, "no route for %s %s", truncate(r.Method, 20), truncate(r.URL.Path, 200)))
	})).ServeHTTP)
	r.MethodNotAllowed(s.limitPublic(http.HandlerFunc(s.methodNotAllowed)).ServeHTTP)

	small := s.limitBody(maxSmallBody)
	// The largest infer body: the JSON header plus the ciphertext, in
	// binary or base64 (4/3 of it).
	inferLimit := maxInferHeaderBytes + 16 + (s.cfg.MaxCiphertextBytes+2)/3*4

	// On authenticated routes authenticate runs before limitBody: a caller
	// without a valid key gets 401, whatever body it announces, and learns
	// nothing about the limits.
	r.Group(func(r chi.Router) {
		r.Use(s.limitPublic, small)
		r.Get("/metrics", s.metrics.Handler().ServeHTTP)
		r.Get("/openapi.yaml", serveOpenAPI)
		r.Get("/v2", s.serverMetadata)
		r.Get("/v2/health/live", s.live)
		r.Get("/v2/health/ready", s.ready)
		r.Get("/.well-known/jwks.json", s.jwks)
	})
	if s.console != nil {
		console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := context.WithValue(r.Context(), clientAddressKey, s.clientAddress(r))
			s.console.ServeHTTP(w, r.WithContext(ctx))
		})
		r.With(s.limitPublic).Handle("/console", console)
		r.With(s.limitPublic).Handle("/console/*", console)
	}
	// Model metadata: built-in models for anyone; with an API key, the
	// caller's own uploaded models too.
	r.Group(func(r chi.Router) {
		r.Use(s.optionalAuthenticate, s.guard(classDefault), small)
		r.Get("/v2/models", s.listModels)
		r.Get("/v2/models/{model}", s.modelMetadata)
		r.Get("/v2/models/{model}/ready", s.modelReady)
		r.Get("/v2/models/{model}/versions/{version}", s.modelMetadata)
		r.Get("/v2/models/{model}/versions/{version}/ready", s.modelReady)
	})
	r.With(s.authenticate, s.guard(classInfer), s.limitBody(inferLimit), s.accepts(inferTypes...)).Post("/v2/models/{model}/infer", s.infer)
	r.With(s.authenticate, s.guard(classInfer), s.limitBody(inferLimit), s.accepts(inferTypes...)).Post("/v2/models/{model}/versions/{version}/infer", s.infer)
	r.With(s.authenticate, s.guard(classKeySet), s.limitBody(s.cfg.MaxKeySetBytes), s.accepts(keySetTypes...)).Post("/v1/keys", s.uploadKeySet)
	r.With(s.authenticate, s.guard(classKeySet), s.limitBody(api.MaxUploadChunk), s.accepts(api.ContentTypeOffsetOctetStream)).Patch(api.PathKeyUploads+"/{id}", s.patchUpload)
	r.With(s.authenticate, s.guard(classModel), s.limitBody(s.catalog.MaxSourceBytes()+1), s.accepts(modelTypes...)).Post("/v1/models", s.uploadModel)
	r.With(s.authenticate, s.guard(classEnroll), s.limitBody(maxEnrollBody), s.accepts(jsonTypes...)).Post("/v1/enroll", s.postEnroll)
	r.With(s.authenticate, s.guard(classDefault), s.limitBody(attest.MaxDocumentBytes), s.accepts(jsonTypes...)).Put("/v1/attestation/{format}/{kind}", s.putAttestationDoc)
	r.With(s.authenticate, s.guard(classEnroll), small).Post("/v1/enroll/challenge", s.postChallenge)
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate, s.guard(classDefault), small)
		r.Get("/v1/keys", s.listKeySets)
		r.Get("/v1/keys/{id}", s.getKeySet)
		r.Delete("/v1/keys/{id}", s.deleteKeySet)
		r.With(s.accepts(jsonTypes...)).Post(api.PathKeyUploads, s.createUpload)
		r.Head(api.PathKeyUploads+"/{id}", s.uploadStatus)
		r.Get(api.PathKeyUploads+"/{id}", s.uploadStatus)
		r.Delete(api.PathKeyUploads+"/{id}", s.abortUpload)
		r.Get("/v1/budget", s.getBudget)
		r.Get("/v1/budget/ledger", s.getLedger)
		r.Get("/v1/budget/{model}", s.getModelBudget)
		r.Get("/v1/quota", s.getQuota)
		r.With(s.accepts(jsonTypes...)).Put("/v1/budgets/{model}", s.putBudget)
		r.Delete("/v1/budgets/{model}", s.deleteBudget)
		r.Get("/v1/jobs", s.listJobs)
		r.Get("/v1/jobs/{id}", s.getJob)
		r.Get("/v1/jobs/{id}/result", s.jobResult)
		r.Get("/v1/jobs/{id}/events", s.jobStream)
		r.Post("/v1/jobs/{id}/cancel", s.cancelJob)
		r.Get("/v1/models", s.listTenantModels)
		r.Get("/v1/models/{model}", s.modelVersions)
		r.Delete("/v1/models/{model}", s.deleteModel)
		r.Get("/v1/models/{model}/versions/{version}", s.modelVersion)
		r.Get("/v1/devices", s.listDevices)
		r.Get("/v1/devices/{id}", s.deviceRoute("devices.get", s.svc.GetDevice))
		r.Post("/v1/devices/{id}/revoke", s.deviceRoute("devices.revoke", s.svc.RevokeDevice))
		r.Get("/v1/attestation", s.listAttestationDocs)
		r.Get("/v1/attestation/{format}/{kind}", s.getAttestationDoc)
		r.Delete("/v1/attestation/{format}/{kind}", s.deleteAttestationDoc)
		r.Get("/v1/policies", s.listPolicies)
		r.Get("/v1/policy", s.getPolicy)
		r.With(s.accepts(jsonTypes...)).Put("/v1/policy", s.putPolicy)
		r.Delete("/v1/policy", s.deletePolicy)
		r.Get("/v1/policies/{model}", s.getPolicy)
		r.With(s.accepts(jsonTypes...)).Put("/v1/policies/{model}", s.putPolicy)
		r.Delete("/v1/policies/{model}", s.deletePolicy)
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

// describe is model without compiling: for metadata routes.
func (s *Server) describe(r *http.Request, op, name, version string) (catalog.Described, error) {
	v, err := versionParam(op, version)
	if err != nil {
		return catalog.Described{}, err
	}
	d, err := s.catalog.Describe(r.Context(), callerTenant(r), hegate.ModelID(name), v)
	if err != nil {
		return catalog.Described{}, wrap(err, "%s", op)
	}
	return d, nil
}

// callerTenant is the authenticated caller's tenant, or "" for an
// anonymous request (which sees built-in models only).
func callerTenant(r *http.Request) hegate.TenantID {
	if p, ok := PrincipalFromContext(r.Context()); ok {
		return p.Tenant
	}
	return ""
}

// versionParam parses a {version} path segment; "" is 0 (the latest).
func versionParam(op, version string) (int, error) {
	if version == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(version)
	if err != nil || n < 1 || n > 1<<30 {
		return 0, hegate.E(op, hegate.KindInvalid, nil, "version %q is not a positive integer", truncate(version, 20))
	}
	return n, nil
}

// model resolves the model a request names: {model} and, on versioned
// paths, {version} (or the ?version= of a key-set upload), as the caller
// (if authenticated) sees it.
func (s *Server) model(r *http.Request, op, name, version string) (catalog.Model, error) {
	v, err := versionParam(op, version)
	if err != nil {
		return catalog.Model{}, err
	}
	m, err := s.catalog.Lookup(r.Context(), callerTenant(r), hegate.ModelID(name), v)
	if err != nil {
		return catalog.Model{}, wrap(err, "%s", op)
	}
	return m, nil
}

// wrap adds context to err without losing its Kind.
func wrap(err error, format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// ClientAddressFromContext is the client address the gateway worked out
// for a console request (honouring a configured client-IP header), or "".
func ClientAddressFromContext(ctx context.Context) string {
	a, _ := ctx.Value(clientAddressKey).(string)
	return a
}

// guardModelUpload is ConsoleHooks.GuardModelUpload.
func (s *Server) guardModelUpload(p service.Principal, next http.Handler) http.Handler {
	guarded := s.guard(classModel)(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		guarded.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
	})
}

// Package service holds hegate's business rules: who may do what to which
// of a tenant's objects, what an inference costs and whether a policy
// admits it, what enrollment accepts, and the audit record of every
// change. Each rule is a method of the form (ctx, principal, params) ->
// (result, error) that both front doors call: the JSON API (package
// gateway) and the web console (package web). Neither front door checks a
// tenant, a role, a budget or a policy itself.
//
// Errors are *hegate.Error values whose Kind the front doors turn into a
// status: KindNotFound for another tenant's object as for a missing one,
// KindForbidden for a role that may not, KindUnavailable for a storage
// failure.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/credential"
	"github.com/hegate/hegate/attest/verifiers"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/storage"
)

const (
	// DefaultChallengeTTL is how long a challenge nonce may be redeemed.
	DefaultChallengeTTL = 5 * time.Minute
	// MaxChallengeTTL bounds Config.ChallengeTTL: a challenge is freshness,
	// and every one is stored until it expires.
	MaxChallengeTTL = time.Hour
)

// Config is what a Service needs.
type Config struct {
	// Store holds everything. Required.
	Store storage.Store
	// Blobs holds key sets, models and ciphertexts. Required.
	Blobs storage.Blobs
	// Catalog resolves built-in and uploaded models. Required.
	Catalog *catalog.Catalog
	// DefaultBudget is the privacy budget of a tenant and model for which
	// none was set; capacity 0 sets none (such inferences are refused).
	DefaultBudget storage.BudgetLimit
	// Verifiers appraise enrollment evidence, one per format; nil means
	// verifiers.All(Clock).
	Verifiers []attest.Verifier
	// Credentials issues device credentials. Nil refuses enrollment.
	Credentials *credential.Issuer
	// ChallengeTTL is how long an enrollment challenge may be redeemed; 0
	// means DefaultChallengeTTL.
	ChallengeTTL time.Duration
	// Parts holds the bytes of resumable key-set uploads; nil means Blobs
	// if it is a storage.Parts too, else no resumable uploads.
	Parts storage.Parts
	// DeleteBlobs deletes blobs a rule freed (a deleted key set's), with
	// the reason for metrics; nil deletes them from Blobs, logging a
	// failure (the orphan sweeper removes what is left).
	DeleteBlobs func(ctx context.Context, reason string, keys []string)
	// JobFinished is told when a rule finished a job (a cancel), to wake
	// its waiters; nil tells nobody.
	JobFinished func(hegate.JobID)
	// Logger receives what the rules log (never a secret). Nil discards.
	Logger *slog.Logger
	// Clock tells the time; nil means time.Now.
	Clock func() time.Time
}

// Service is the set of rules over one store. It is safe for concurrent
// use.
type Service struct {
	store     storage.Store
	blobs     storage.Blobs
	catalog   *catalog.Catalog
	defBudget storage.BudgetLimit
	verifiers map[attest.Format]attest.Verifier
	issuer    *credential.Issuer
	challTTL  time.Duration
	log       *slog.Logger
	now       func() time.Time

	deleteBlobs func(ctx context.Context, reason string, keys []string)
	jobFinished func(hegate.JobID)
	logins      loginLimiter
	parts       storage.Parts
	uploads     uploadLocks
}

// New checks cfg and makes the service.
func New(cfg Config) (*Service, error) {
	const op = "service.New"
	switch {
	case cfg.Store == nil:
		return nil, hegate.E(op, hegate.KindInvalid, nil, "service: Config.Store is nil")
	case cfg.Blobs == nil:
		return nil, hegate.E(op, hegate.KindInvalid, nil, "service: Config.Blobs is nil")
	case cfg.Catalog == nil:
		return nil, hegate.E(op, hegate.KindInvalid, nil, "service: Config.Catalog is nil")
	case cfg.ChallengeTTL < 0 || cfg.ChallengeTTL > MaxChallengeTTL:
		return nil, hegate.E(op, hegate.KindInvalid, nil, "service: Config.ChallengeTTL (%s) is not between 0 and %s", cfg.ChallengeTTL, MaxChallengeTTL)
	}
	s := &Service{
		store:     cfg.Store,
		blobs:     cfg.Blobs,
		catalog:   cfg.Catalog,
		defBudget: cfg.DefaultBudget,
		issuer:    cfg.Credentials,
		challTTL:  cfg.ChallengeTTL,
		log:       cfg.Logger,
		now:       cfg.Clock,

		deleteBlobs: cfg.DeleteBlobs,
		jobFinished: cfg.JobFinished,
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.parts = cfg.Parts
	if s.parts == nil {
		s.parts, _ = cfg.Blobs.(storage.Parts)
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.deleteBlobs == nil {
		s.deleteBlobs = s.deleteBlobsDirect
	}
	if s.jobFinished == nil {
		s.jobFinished = func(hegate.JobID) {}
	}
	if s.challTTL == 0 {
		s.challTTL = DefaultChallengeTTL
	}
	if s.defBudget.Period == "" {
		s.defBudget.Period = storage.BudgetNever
	}
	vs := cfg.Verifiers
	if vs == nil {
		vs = verifiers.All(s.now)
	}
	s.verifiers = make(map[attest.Format]attest.Verifier, len(vs))
	for _, v := range vs {
		s.verifiers[v.Format()] = v
	}
	return s, nil
}

// Tenant is the principal's own tenant (its name for the pages).
func (s *Service) Tenant(ctx context.Context, p Principal) (storage.Tenant, error) {
	const op = "tenant.get"
	if err := p.requireTenant(op); err != nil {
		return storage.Tenant{}, err
	}
	t, err := s.store.GetTenant(ctx, p.Tenant)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Tenant{}, notFound(op, err, "no tenant %s", p.Tenant)
	}
	if err != nil {
		return storage.Tenant{}, unavailable(op, err)
	}
	return t, nil
}

// Catalog is the service's model catalog.
func (s *Service) Catalog() *catalog.Catalog { return s.catalog }

// DefaultBudget is the budget that applies where none is set.
func (s *Service) DefaultBudget() storage.BudgetLimit { return s.defBudget }

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.now() }

// unavailable is a storage failure: 503, its cause logged, not shown.
func unavailable(op string, err error) error {
	return hegate.E(op, hegate.KindUnavailable, err, "")
}

// notFound is a 404 that keeps the storage error in its chain.
func notFound(op string, err error, format string, args ...any) error {
	return hegate.E(op, hegate.KindNotFound, err, format, args...)
}

// wrap adds context to err without losing its Kind.
func wrap(err error, format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// logAttrs are the attributes every rule's log line carries.
func logAttrs(p Principal, attrs ...any) []any {
	return append([]any{"request_id", p.RequestID, "tenant", string(p.Tenant), "by", p.Actor()}, attrs...)
}

func (s *Service) info(ctx context.Context, p Principal, msg string, attrs ...any) {
	s.log.InfoContext(ctx, msg, logAttrs(p, attrs...)...)
}

func (s *Service) deleteBlobsDirect(ctx context.Context, reason string, keys []string) {
	for _, k := range keys {
		if err := s.blobs.Delete(ctx, k); err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.log.ErrorContext(ctx, "deleting a freed blob failed; the orphan sweeper will", "blob_key", k, "reason", reason, "error", err.Error())
		}
	}
}

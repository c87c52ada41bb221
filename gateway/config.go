package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// Defaults for the zero values of Config.
// ResponseWindow is how long a handler has to answer once it has read the
// request body; a server's http.Server.WriteTimeout should be this long
// (hegate serve sets it). It covers the longest "Prefer: wait".
const ResponseWindow = 2 * time.Minute

const (
	// DefaultWaitTimeout is the longest an inference with "Prefer: wait"
	// waits for its job before answering 202.
	DefaultWaitTimeout = 30 * time.Second
	// DefaultBodyIdleTimeout is how long a request body may go without a
	// single byte arriving before the request is rejected.
	DefaultBodyIdleTimeout = 30 * time.Second
)

// Config is what a Server needs. The zero values of the optional fields
// select the defaults documented on each.
type Config struct {
	// Store holds tenants, API keys, key sets and jobs. Required.
	Store storage.Store
	// Blobs holds key sets and ciphertexts. Required.
	Blobs storage.Blobs
	// Models are the built-in compiled models the gateway serves, by their
	// IDs (unique). At least one unless Catalog is set.
	Models []*he.Model
	// Catalog resolves built-in and uploaded models; nil makes one over
	// Models with uploads stored in Store and Blobs (shared by the Runner
	// of the same process).
	Catalog *catalog.Catalog
	// DefaultBudget is the privacy budget of a tenant and model for which
	// none was set. The zero value (capacity 0) sets none: such inferences
	// are refused until an administrator sets a budget. Every tenant gets
	// the whole default, per model.
	DefaultBudget storage.BudgetLimit
	// MaxModelBytes bounds a model upload; 0 means the Catalog's limit.
	MaxModelBytes int64
	// Logger receives the access log and errors. Nil discards them.
	// Use a slog.JSONHandler in production.
	Logger *slog.Logger
	// Metrics collects the hegate_* metrics served at /metrics. Nil makes a
	// fresh set; share one with the Runner of the same process.
	Metrics *Metrics
	// MaxKeySetBytes bounds a key-set upload; 0 means the largest key set
	// of the Models (each model's key set has an exact size, which bounds
	// its own uploads in any case). It must admit every model's key set.
	MaxKeySetBytes int64
	// MaxCiphertextBytes bounds an input ciphertext; 0 means the largest
	// input ciphertext of the Models (each model's own exact size bounds
	// its inferences in any case). It must admit every model's ciphertext.
	MaxCiphertextBytes int64
	// JobEvents, shared with the Runner of the same process, wakes
	// "Prefer: wait" requests the moment their job finishes; nil means
	// they poll the store only.
	JobEvents *JobEvents
	// WaitTimeout caps "Prefer: wait"; 0 means DefaultWaitTimeout. The
	// http.Server's WriteTimeout must be longer.
	WaitTimeout time.Duration
	// BodyIdleTimeout rejects a request whose body stops arriving for this
	// long (a stalled or trickling upload); 0 means DefaultBodyIdleTimeout.
	// It works per read, so a large upload that keeps moving is not cut
	// off; the http.Server's ReadTimeout, if any, still applies on top.
	BodyIdleTimeout time.Duration
	// RequestTimeout is the deadline of a request, counted in the
	// server's own time: not while the handler reads the request body,
	// plus WaitTimeout for an inference. A request whose store does not
	// answer in time answers 503 with Retry-After. 0 means
	// DefaultRequestTimeout; negative means none. Streams (job events)
	// have limits of their own.
	RequestTimeout time.Duration
	// BodyMinRate, in bytes per second, rejects a request body that keeps
	// trickling in without ever stalling for BodyIdleTimeout: once
	// BodyRateGrace has passed since the first read, the body must have
	// delivered BodyMinRate bytes for every second beyond it. 0 means
	// DefaultBodyMinRate; negative turns the check off. BodyRateGrace 0
	// means DefaultBodyRateGrace.
	BodyMinRate   int64
	BodyRateGrace time.Duration
	// Retention is how long finished jobs keep their input and result
	// blobs (what the Sweepers of the deployment apply). The gateway only
	// quotes it: a request for an expired result is answered 410 Gone,
	// "expired after <Retention>". 0 means not stated.
	Retention time.Duration
	// Verifiers appraise enrollment evidence, one per format; nil means
	// every format hegate knows (attest/verifiers.All).
	Verifiers []attest.Verifier
	// ChallengeTTL is how long an enrollment challenge may be redeemed; 0
	// means DefaultChallengeTTL.
	ChallengeTTL time.Duration
	// CredentialTTL is how long a device credential lives, at most
	// MaxCredentialTTL; 0 means DefaultCredentialTTL.
	CredentialTTL time.Duration
	// CredentialIssuer and CredentialAudience are the iss and aud of the
	// device credentials this gateway issues and accepts; "" means
	// "hegate". Replicas of one deployment share them (and the signing
	// keys, which live in the store).
	CredentialIssuer   string
	CredentialAudience string
	// CredentialKEK, 32 bytes, seals the credential signing keys' private
	// seeds in the store (AES-256-GCM); nil stores them in clear. Every
	// replica and "hegate credential" need the same one.
	CredentialKEK []byte
	// PublicURL is the scheme and host clients reach the gateway at
	// ("https://gw.example.com"), which DPoP proofs name; "" means the
	// scheme and Host header of each request. Set it behind a proxy.
	PublicURL string
	// RateLimits are the request rates allowed per API key, per device
	// and per client address; zero fields select DefaultRateLimits.
	RateLimits RateLimits
	// Concurrency caps the inferences and uploads in progress per tenant
	// and per process (503 over a cap); zero fields select the Default*
	// caps, negative ones mean none.
	Concurrency Concurrency
	// Quota is what each tenant may store and have queued, checked before
	// an upload or an inference is accepted; zero fields select the
	// DefaultQuota* values, negative ones mean no limit.
	Quota Quota
	// ClientIPHeader names the request header in which a trusted reverse
	// proxy puts the client's address (X-Forwarded-For, X-Real-IP): the
	// last address in it keys the rate limit of unauthenticated requests.
	// "" means the connection's remote address. Set it only behind a proxy
	// that sets the header, or clients choose their own address.
	ClientIPHeader string
	// Clock tells the time for logs, metrics and rate limits; nil means
	// time.Now.
	Clock func() time.Time
	// Version is reported by GET /v2; empty means "dev".
	Version string
	// Console, if set, makes the web console from the rules the API uses;
	// the server serves it under /console/ behind its request id, access
	// log, recovery, client limits and public rate limit (but not its API
	// authentication: the console has its own sessions).
	Console func(*service.Service, ConsoleHooks) (http.Handler, error)
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if c.MaxKeySetBytes == 0 || c.MaxCiphertextBytes == 0 {
		var keySet, ciphertext int64
		for _, m := range c.Models {
			if m == nil {
				continue // Validate reports it
			}
			man := m.Manifest()
			keySet = max(keySet, man.KeySetBytes)
			ciphertext = max(ciphertext, man.CiphertextBytes)
		}
		if c.MaxKeySetBytes == 0 {
			c.MaxKeySetBytes = keySet
		}
		if c.MaxCiphertextBytes == 0 {
			c.MaxCiphertextBytes = ciphertext
		}
	}
	if c.DefaultBudget.Period == "" {
		c.DefaultBudget.Period = storage.BudgetNever
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = DefaultWaitTimeout
	}
	if c.BodyIdleTimeout == 0 {
		c.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.BodyMinRate == 0 {
		c.BodyMinRate = DefaultBodyMinRate
	}
	if c.BodyRateGrace == 0 {
		c.BodyRateGrace = DefaultBodyRateGrace
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.ChallengeTTL == 0 {
		c.ChallengeTTL = DefaultChallengeTTL
	}
	if c.CredentialTTL == 0 {
		c.CredentialTTL = DefaultCredentialTTL
	}
	if c.CredentialIssuer == "" {
		c.CredentialIssuer = "hegate"
	}
	if c.CredentialAudience == "" {
		c.CredentialAudience = "hegate"
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	c.RateLimits = c.RateLimits.withDefaults()
	c.Concurrency = c.Concurrency.withDefaults()
	c.Quota = c.Quota.withDefaults()
	return c
}

// Validate reports the first problem with the configuration, naming the
// field. Zero optional fields are valid (they select defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return hegate.E("gateway.Config.Validate", hegate.KindInvalid, nil, "gateway: Config."+format, args...)
	}
	switch {
	case c.Store == nil:
		return bad("Store is nil")
	case c.Blobs == nil:
		return bad("Blobs is nil")
	case c.MaxKeySetBytes < 0:
		return bad("MaxKeySetBytes is negative (%d)", c.MaxKeySetBytes)
	case c.MaxCiphertextBytes < 0:
		return bad("MaxCiphertextBytes is negative (%d)", c.MaxCiphertextBytes)
	case c.MaxCiphertextBytes > api.MaxBytesElement:
		return bad("MaxCiphertextBytes (%d) exceeds what a BYTES tensor element can carry (%d)", c.MaxCiphertextBytes, api.MaxBytesElement)
	case c.WaitTimeout < 0:
		return bad("WaitTimeout is negative (%s)", c.WaitTimeout)
	case c.BodyIdleTimeout < 0:
		return bad("BodyIdleTimeout is negative (%s)", c.BodyIdleTimeout)
	case c.BodyRateGrace < 0:
		return bad("BodyRateGrace is negative (%s)", c.BodyRateGrace)
	case c.Retention < 0:
		return bad("Retention is negative (%s)", c.Retention)
	case c.ChallengeTTL < 0 || c.ChallengeTTL > MaxChallengeTTL:
		return bad("ChallengeTTL (%s) is not between 0 and %s", c.ChallengeTTL, MaxChallengeTTL)
	case c.CredentialTTL < 0 || c.CredentialTTL > MaxCredentialTTL:
		return bad("CredentialTTL (%s) is not between 0 and %s", c.CredentialTTL, MaxCredentialTTL)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return bad("PublicURL %q is not scheme://host[:port]", c.PublicURL)
		}
	}
	if err := c.RateLimits.validate(); err != nil {
		return bad("%v", err)
	}
	if err := validateModels(c.Models, "Models", c.Catalog != nil); err != nil {
		return bad("%v", err)
	}
	if c.MaxModelBytes < 0 {
		return bad("MaxModelBytes is negative (%d)", c.MaxModelBytes)
	}
	for i, m := range c.Models {
		man := m.Manifest()
		if man.KeySetBytes > c.MaxKeySetBytes {
			return bad("MaxKeySetBytes (%d) is smaller than the key set of Models[%d] %q (%d bytes)", c.MaxKeySetBytes, i, m.ID(), man.KeySetBytes)
		}
		if man.CiphertextBytes > c.MaxCiphertextBytes {
			return bad("MaxCiphertextBytes (%d) is smaller than the ciphertext of Models[%d] %q (%d bytes)", c.MaxCiphertextBytes, i, m.ID(), man.CiphertextBytes)
		}
	}
	return nil
}

// validateModels checks a model list: at least one (unless empty is
// allowed), none nil, IDs unique. The error names the field.
func validateModels(models []*he.Model, field string, emptyOK bool) error {
	if len(models) == 0 && !emptyOK {
		return fmt.Errorf("%s is empty", field)
	}
	seen := make(map[hegate.ModelID]int, len(models))
	for i, m := range models {
		if m == nil {
			return fmt.Errorf("%s[%d] is nil", field, i)
		}
		if j, dup := seen[m.ID()]; dup {
			return fmt.Errorf("%s[%d] and %s[%d] are both model %q", field, j, field, i, m.ID())
		}
		seen[m.ID()] = i
	}
	return nil
}

// ConsoleHooks are what the gateway lends the console it serves.
type ConsoleHooks struct {
	// GuardModelUpload runs next behind the rate limit, admission cap and
	// quota of a model upload, charged to p's tenant, as POST /v1/models is.
	GuardModelUpload func(p service.Principal, next http.Handler) http.Handler
}

package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// API keys and tenant provisioning.

// API key format: "hgk_" then 32 random bytes in unpadded base64url.
const (
	apiKeyPrefix    = "hgk_"
	apiKeyRandBytes = 32
	// APIKeyLen is the length of every API key secret.
	APIKeyLen = len(apiKeyPrefix) + 43 // base64url of 32 bytes, unpadded
	// apiKeyShownPrefix is how much of a secret is stored in clear so
	// people can recognise their keys in lists.
	apiKeyShownPrefix = len(apiKeyPrefix) + 8
	// maxKeyNameBytes bounds an API key's name.
	maxKeyNameBytes = 64
)

// NewAPIKey makes a fresh API key. The secret is shown to its owner once and
// never stored; hash (SHA-256 of the secret) is what the store keeps and
// searches by; prefix is the first characters of the secret, to recognise it.
func NewAPIKey() (secret string, hash []byte, prefix string, err error) {
	var b [apiKeyRandBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, "", fmt.Errorf("generating API key: %w", err)
	}
	secret = apiKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashAPIKey(secret), secret[:apiKeyShownPrefix], nil
}

// HashAPIKey is the SHA-256 of the whole secret, prefix included.
func HashAPIKey(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// WellFormedAPIKey reports whether s looks like a key NewAPIKey made, so
// that garbage is refused without touching the store.
func WellFormedAPIKey(s string) bool {
	if len(s) != APIKeyLen || !strings.HasPrefix(s, apiKeyPrefix) {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(s[len(apiKeyPrefix):])
	return err == nil
}

// CreateTenant creates a tenant named name with one admin API key, named
// "default", in one transaction, and returns the tenant and the key's
// secret. The secret is not stored anywhere: show it to the operator once.
// It is the provisioning step under Service.CreateTenant, for tools that
// hold a store and no service (tests, the demo).
func CreateTenant(ctx context.Context, store storage.Store, name string) (storage.Tenant, string, error) {
	const op = "tenant.create"
	if name == "" {
		return storage.Tenant{}, "", hegate.E(op, hegate.KindInvalid, nil, "tenant name is empty")
	}
	secret, hash, prefix, err := NewAPIKey()
	if err != nil {
		return storage.Tenant{}, "", err
	}
	// One transaction: a failure leaves neither the tenant nor its key,
	// so that a retry can take the name.
	t, err := store.CreateTenant(ctx, storage.CreateTenantParams{Name: name, FirstKey: &storage.CreateAPIKeyParams{
		Name: "default", Prefix: prefix, Hash: hash, Role: storage.RoleAdmin,
	}})
	if err != nil {
		return storage.Tenant{}, "", err // the store's error names the tenant
	}
	return t, secret, nil
}

// CreateAPIKey adds a named API key with a role (storage.RoleAdmin or
// storage.RoleClient) to an existing tenant and returns its secret, which
// is not stored anywhere. It is the step under Service.CreateAPIKey.
func CreateAPIKey(ctx context.Context, store storage.APIKeys, tenant hegate.TenantID, name, role string) (storage.APIKey, string, error) {
	secret, hash, prefix, err := NewAPIKey()
	if err != nil {
		return storage.APIKey{}, "", err
	}
	k, err := store.CreateAPIKey(ctx, storage.CreateAPIKeyParams{
		TenantID: tenant,
		Name:     name,
		Prefix:   prefix,
		Hash:     hash,
		Role:     role,
	})
	if err != nil {
		return storage.APIKey{}, "", fmt.Errorf("creating API key %q for tenant %s: %w", name, tenant, err)
	}
	return k, secret, nil
}

// CreateTenant provisions a tenant with its first admin key (operators
// only); see the function CreateTenant.
func (s *Service) CreateTenant(ctx context.Context, p Principal, name string) (storage.Tenant, string, error) {
	const op = "tenant.create"
	if p.Role != RoleOperator {
		return storage.Tenant{}, "", s.denied(ctx, p, op, name, hegate.E(op, hegate.KindForbidden, nil, "only an operator creates tenants"))
	}
	t, secret, err := CreateTenant(ctx, s.store, name)
	if err != nil {
		return storage.Tenant{}, "", err
	}
	p.Tenant = t.ID
	s.audit(ctx, p, op, string(t.ID), map[string]any{"name": name})
	return t, secret, nil
}

// CreateAPIKeyParams are the inputs of Service.CreateAPIKey.
type CreateAPIKeyParams struct {
	Name string
	Role string // RoleAdmin or RoleClient
}

// CheckKeyName refuses an API key name that is empty, too long or not
// printable.
func CheckKeyName(name string) error {
	switch {
	case name == "":
		return errors.New("name the key")
	case len(name) > maxKeyNameBytes:
		return fmt.Errorf("a key name is at most %d bytes", maxKeyNameBytes)
	case !utf8.ValidString(name):
		return errors.New("a key name is UTF-8 text")
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f {
			return errors.New("a key name holds no control characters")
		}
	}
	return nil
}

// CreateAPIKey adds an API key to the tenant (admins and operators) and
// returns its secret, which is shown once and never stored.
func (s *Service) CreateAPIKey(ctx context.Context, p Principal, params CreateAPIKeyParams) (storage.APIKey, string, error) {
	const op = "apikey.create"
	if err := p.requireAdmin(op); err != nil {
		return storage.APIKey{}, "", s.denied(ctx, p, op, params.Name, err)
	}
	if err := p.requireTenant(op); err != nil {
		return storage.APIKey{}, "", err
	}
	if err := CheckKeyName(params.Name); err != nil {
		return storage.APIKey{}, "", &FieldError{Field: "name", Err: hegate.E(op, hegate.KindInvalid, nil, "%v", err)}
	}
	if params.Role != RoleAdmin && params.Role != RoleClient {
		return storage.APIKey{}, "", &FieldError{Field: "role", Err: hegate.E(op, hegate.KindInvalid, nil, "role %q: want admin or client", truncate(params.Role, 20))}
	}
	k, secret, err := CreateAPIKey(ctx, s.store, p.Tenant, params.Name, params.Role)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.APIKey{}, "", notFound(op, err, "no tenant %s", p.Tenant)
	}
	if err != nil {
		return storage.APIKey{}, "", unavailable(op, err)
	}
	s.audit(ctx, p, op, string(k.ID), map[string]any{"name": params.Name, "role": params.Role, "prefix": k.Prefix})
	return k, secret, nil
}

// ListAPIKeys lists the tenant's keys, revoked ones included (admins and
// viewers); no secret is in them.
func (s *Service) ListAPIKeys(ctx context.Context, p Principal) ([]storage.APIKey, error) {
	const op = "apikey.list"
	if err := p.requireReader(op); err != nil {
		return nil, err
	}
	keys, err := s.store.ListAPIKeys(ctx, p.Tenant)
	if err != nil {
		return nil, unavailable(op, err)
	}
	return keys, nil
}

// RevokeAPIKey revokes one of the tenant's keys (admins and operators):
// it stops working on its next request.
func (s *Service) RevokeAPIKey(ctx context.Context, p Principal, id hegate.APIKeyID) error {
	const op = "apikey.revoke"
	if err := p.requireAdmin(op); err != nil {
		return s.denied(ctx, p, op, string(id), err)
	}
	if !idChars(string(id)) || len(id) > maxJobIDLen {
		return hegate.E(op, hegate.KindNotFound, nil, "no API key %s", truncate(string(id), 40))
	}
	err := s.store.RevokeAPIKey(ctx, p.Tenant, id)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound(op, err, "no API key %s", id)
	}
	if err != nil {
		return unavailable(op, err)
	}
	s.audit(ctx, p, op, string(id), nil)
	return nil
}

// FieldError is a refusal that names the input field at fault, so that a
// form can say what is wrong next to it.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

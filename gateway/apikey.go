package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// API key format: "hgk_" then 32 random bytes in unpadded base64url.
const (
	apiKeyPrefix    = "hgk_"
	apiKeyRandBytes = 32
	apiKeyLen       = len(apiKeyPrefix) + 43 // base64url of 32 bytes, unpadded
	// apiKeyShownPrefix is how much of a secret is stored in clear so
	// people can recognise their keys in lists.
	apiKeyShownPrefix = len(apiKeyPrefix) + 8
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
	return secret, hashAPIKey(secret), secret[:apiKeyShownPrefix], nil
}

// hashAPIKey is the SHA-256 of the whole secret, prefix included.
func hashAPIKey(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// wellFormedAPIKey reports whether s looks like a key NewAPIKey made, so
// that garbage is refused without touching the store.
func wellFormedAPIKey(s string) bool {
	if len(s) != apiKeyLen || !strings.HasPrefix(s, apiKeyPrefix) {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(s[len(apiKeyPrefix):])
	return err == nil
}

// CreateTenant creates a tenant named name with one API key, named
// "default", and returns the tenant and the key's secret. The secret is not
// stored anywhere: show it to the operator once.
func CreateTenant(ctx context.Context, store storage.Store, name string) (storage.Tenant, string, error) {
	const op = "gateway.CreateTenant"
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
// is not stored anywhere.
func CreateAPIKey(ctx context.Context, store storage.APIKeys, tenant hegate.TenantID, name, role string) (string, error) {
	secret, hash, prefix, err := NewAPIKey()
	if err != nil {
		return "", err
	}
	if _, err := store.CreateAPIKey(ctx, storage.CreateAPIKeyParams{
		TenantID: tenant,
		Name:     name,
		Prefix:   prefix,
		Hash:     hash,
		Role:     role,
	}); err != nil {
		return "", fmt.Errorf("creating API key %q for tenant %s: %w", name, tenant, err)
	}
	return secret, nil
}

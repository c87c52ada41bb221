package gateway

import (
	"context"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// API keys are made and checked by package service; the gateway looks
// their hashes up.

var (
	hashAPIKey       = service.HashAPIKey
	wellFormedAPIKey = service.WellFormedAPIKey
)

const apiKeyLen = service.APIKeyLen

// NewAPIKey makes a fresh API key (see service.NewAPIKey).
func NewAPIKey() (secret string, hash []byte, prefix string, err error) { return service.NewAPIKey() }

// CreateTenant creates a tenant with its first admin key and returns the
// key's secret (see service.CreateTenant).
func CreateTenant(ctx context.Context, store storage.Store, name string) (storage.Tenant, string, error) {
	return service.CreateTenant(ctx, store, name)
}

// CreateAPIKey adds an API key to a tenant and returns its secret (see
// service.CreateAPIKey).
func CreateAPIKey(ctx context.Context, store storage.APIKeys, tenant hegate.TenantID, name, role string) (string, error) {
	_, secret, err := service.CreateAPIKey(ctx, store, tenant, name, role)
	return secret, err
}

// Package validate checks the inputs of storage's operations before an
// engine runs any SQL, so that storage/postgres and storage/sqlite accept
// and refuse the same things. Each function names what is wrong; the engine
// wraps the error with its operation ("creating tenant: ...").
package validate

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/hegate/hegate/storage"
)

// CreateTenant checks the params of Tenants.CreateTenant: a name is required.
func CreateTenant(p storage.CreateTenantParams) error {
	if p.Name == "" {
		return errors.New("name is required")
	}
	return nil
}

// CreateAPIKey checks the params of APIKeys.CreateAPIKey: the hash must be
// a SHA-256, 32 bytes.
func CreateAPIKey(p storage.CreateAPIKeyParams) error {
	if len(p.Hash) != sha256.Size {
		return fmt.Errorf("hash is %d bytes, want %d", len(p.Hash), sha256.Size)
	}
	return nil
}

// LookupAPIKey checks the hash given to APIKeys.LookupAPIKey. One that is
// not 32 bytes matches no stored key, so it is storage.ErrNotFound (the
// caller presented a bad credential), not an invalid input.
func LookupAPIKey(hash []byte) error {
	if len(hash) != sha256.Size {
		return storage.ErrNotFound
	}
	return nil
}

// PutKeySet checks the key set given to KeySets.PutKeySet: ID and TenantID
// are required.
func PutKeySet(ks storage.KeySet) error {
	if ks.ID == "" || ks.TenantID == "" {
		return errors.New("ID and TenantID are required")
	}
	return nil
}

// ExpireJobs checks the params of Jobs.ExpireJobs: FinishedBefore is
// required and Limit must be 1 to storage.MaxExpireJobs.
func ExpireJobs(p storage.ExpireJobsParams) error {
	switch {
	case p.FinishedBefore.IsZero():
		return errors.New("FinishedBefore is required")
	case p.Limit < 1 || p.Limit > storage.MaxExpireJobs:
		return fmt.Errorf("Limit is %d, want 1 to %d", p.Limit, storage.MaxExpireJobs)
	}
	return nil
}

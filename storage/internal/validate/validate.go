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

// CreateJob checks the params of Jobs.CreateJob: ModelVersion is never
// negative.
func CreateJob(p storage.CreateJobParams) error {
	if p.ModelVersion < 0 {
		return fmt.Errorf("ModelVersion is %d, want 0 (built-in) or a stored version >= 1", p.ModelVersion)
	}
	return nil
}

// CreateModelVersion checks the params of Models.CreateModelVersion:
// TenantID, Name and SourceBlob are required, SourceBytes is not negative,
// SourceFormat is a known format, and Options is at most
// storage.MaxModelOptionsBytes (storage.ErrTooLarge otherwise).
func CreateModelVersion(p storage.CreateModelVersionParams) error {
	switch {
	case p.TenantID == "" || p.Name == "" || p.SourceBlob == "":
		return errors.New("TenantID, Name and SourceBlob are required")
	case p.SourceBytes < 0:
		return fmt.Errorf("SourceBytes is %d, want >= 0", p.SourceBytes)
	case p.SourceFormat != storage.ModelFormatONNX && p.SourceFormat != storage.ModelFormatIRJSON:
		return fmt.Errorf("SourceFormat is %q, want %q or %q", p.SourceFormat, storage.ModelFormatONNX, storage.ModelFormatIRJSON)
	case len(p.Options) > storage.MaxModelOptionsBytes:
		return fmt.Errorf("%w: Options is %d bytes, at most %d", storage.ErrTooLarge, len(p.Options), storage.MaxModelOptionsBytes)
	}
	return nil
}

// MarkModelReady checks the inputs of Models.MarkModelReady: a graph blob
// is required and the manifest is at most storage.MaxModelManifestBytes
// (storage.ErrTooLarge otherwise).
func MarkModelReady(graphBlob string, manifest []byte) error {
	switch {
	case graphBlob == "":
		return errors.New("graph blob is required")
	case len(manifest) > storage.MaxModelManifestBytes:
		return fmt.Errorf("%w: manifest is %d bytes, at most %d", storage.ErrTooLarge, len(manifest), storage.MaxModelManifestBytes)
	}
	return nil
}

// MarkModelFailed checks the reason given to Models.MarkModelFailed: it is
// required.
func MarkModelFailed(reason string) error {
	if reason == "" {
		return errors.New("reason is required")
	}
	return nil
}

// ModelsChangedSince checks the limit of Models.ModelsChangedSince: 1 to
// storage.MaxModelChanges.
func ModelsChangedSince(limit int) error {
	if limit < 1 || limit > storage.MaxModelChanges {
		return fmt.Errorf("limit is %d, want 1 to %d", limit, storage.MaxModelChanges)
	}
	return nil
}

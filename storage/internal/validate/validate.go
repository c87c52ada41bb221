// Package validate checks the inputs of storage's operations before an
// engine runs any SQL, so that storage/postgres and storage/sqlite accept
// and refuse the same things. Each function names what is wrong; the engine
// wraps the error with its operation ("creating tenant: ...").
package validate

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hegate/hegate/storage"
)

// CreateTenant checks the params of Tenants.CreateTenant: a name is required.
func CreateTenant(p storage.CreateTenantParams) error {
	if p.Name == "" {
		return errors.New("name is required")
	}
	if p.FirstKey != nil {
		if err := CreateAPIKey(*p.FirstKey); err != nil {
			return fmt.Errorf("first key: %w", err)
		}
	}
	return nil
}

// CreateAPIKey checks the params of APIKeys.CreateAPIKey: the hash must be
// a SHA-256, 32 bytes.
func CreateAPIKey(p storage.CreateAPIKeyParams) error {
	if len(p.Hash) != sha256.Size {
		return fmt.Errorf("hash is %d bytes, want %d", len(p.Hash), sha256.Size)
	}
	if p.Role != "" && p.Role != storage.RoleAdmin && p.Role != storage.RoleClient {
		return fmt.Errorf("role %q: want %q or %q", p.Role, storage.RoleAdmin, storage.RoleClient)
	}
	return nil
}

// Role is the role CreateAPIKey stores: "" means storage.RoleClient.
func Role(r string) string {
	if r == "" {
		return storage.RoleClient
	}
	return r
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
// negative and NoiseSigma is finite and >= 0.
func CreateJob(p storage.CreateJobParams) error {
	if p.ModelVersion < 0 {
		return fmt.Errorf("ModelVersion is %d, want 0 (built-in) or a stored version >= 1", p.ModelVersion)
	}
	return nonNegative("NoiseSigma", p.NoiseSigma)
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

// nonNegative checks that the float field is finite and >= 0.
func nonNegative(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("%s is %v, want a finite number >= 0", field, v)
	}
	return nil
}

// BudgetLimit checks a storage.BudgetLimit, the field named field:
// Capacity >= 0, a valid Period, Epsilon finite and >= 0, 0 <= Delta < 1.
func BudgetLimit(field string, l storage.BudgetLimit) error {
	switch {
	case l.Capacity < 0:
		return fmt.Errorf("%s.Capacity is %d, want >= 0", field, l.Capacity)
	case !l.Period.Valid():
		return fmt.Errorf("%s.Period is %q, want %q, %q, %q or %q", field, string(l.Period),
			storage.BudgetDaily, storage.BudgetWeekly, storage.BudgetMonthly, storage.BudgetNever)
	case !(l.Delta >= 0 && l.Delta < 1): // also refuses NaN
		return fmt.Errorf("%s.Delta is %v, want 0 <= Delta < 1", field, l.Delta)
	}
	return nonNegative(field+".Epsilon", l.Epsilon)
}

// Actor checks the actor of a budget change: required, at most
// storage.MaxActorBytes.
func Actor(actor string) error {
	switch {
	case actor == "":
		return errors.New("Actor is required")
	case len(actor) > storage.MaxActorBytes:
		return fmt.Errorf("Actor is %d bytes, at most %d", len(actor), storage.MaxActorBytes)
	}
	return nil
}

// Reason checks the reason of a budget change: at most
// storage.MaxReasonBytes and, if required, not empty.
func Reason(reason string, required bool) error {
	switch {
	case required && reason == "":
		return errors.New("Reason is required")
	case len(reason) > storage.MaxReasonBytes:
		return fmt.Errorf("Reason is %d bytes, at most %d", len(reason), storage.MaxReasonBytes)
	}
	return nil
}

// SetBudget checks the params of Budgets.SetBudget: TenantID and Model are
// required, Limit is valid, NoiseSigma is finite and >= 0, Actor is
// required, and Actor and Reason are not too long.
func SetBudget(p storage.SetBudgetParams) error {
	if p.TenantID == "" || p.Model == "" {
		return errors.New("TenantID and Model are required")
	}
	return errors.Join(BudgetLimit("Limit", p.Limit), nonNegative("NoiseSigma", p.NoiseSigma),
		Actor(p.Actor), Reason(p.Reason, false))
}

// SetGlobalBudget checks the params of Budgets.SetGlobalBudget: Model is
// required, Limit is valid, Actor is required, and Actor and Reason are not
// too long.
func SetGlobalBudget(p storage.SetGlobalBudgetParams) error {
	if p.Model == "" {
		return errors.New("Model is required")
	}
	return errors.Join(BudgetLimit("Limit", p.Limit), Actor(p.Actor), Reason(p.Reason, false))
}

// DeleteBudget checks the actor and reason of Budgets.DeleteBudget and
// DeleteGlobalBudget.
func DeleteBudget(actor, reason string) error {
	return errors.Join(Actor(actor), Reason(reason, false))
}

// AdjustBudget checks the params of Budgets.AdjustBudget and its default:
// TenantID and Model are required, Units is not 0, Actor and Reason are
// required and not too long, and def is a valid limit.
func AdjustBudget(p storage.AdjustBudgetParams, def storage.BudgetLimit) error {
	if p.TenantID == "" || p.Model == "" {
		return errors.New("TenantID and Model are required")
	}
	var units error
	if p.Units == 0 {
		units = errors.New("Units is 0, want a charge (> 0) or a refund (< 0)")
	}
	return errors.Join(units, Actor(p.Actor), Reason(p.Reason, true), BudgetLimit("default", def))
}

// ReserveBudget checks the params of Tx.ReserveBudget: JobID is required,
// Cost > 0, Default is a valid limit and Actor is required and not too
// long.
func ReserveBudget(p storage.ReserveBudgetParams) error {
	if p.JobID == "" {
		return errors.New("JobID is required")
	}
	var cost error
	if p.Cost <= 0 {
		cost = fmt.Errorf("Cost is %d, want > 0", p.Cost)
	}
	return errors.Join(cost, BudgetLimit("Default", p.Default), Actor(p.Actor))
}

// Ledger checks a storage.LedgerQuery: TenantID is required, BeforeID >= 0
// and Limit 1 to storage.MaxLedgerEntries.
func Ledger(q storage.LedgerQuery) error {
	switch {
	case q.TenantID == "":
		return errors.New("TenantID is required")
	case q.BeforeID < 0:
		return fmt.Errorf("BeforeID is %d, want >= 0", q.BeforeID)
	case q.Limit < 1 || q.Limit > storage.MaxLedgerEntries:
		return fmt.Errorf("Limit is %d, want 1 to %d", q.Limit, storage.MaxLedgerEntries)
	}
	return nil
}

// CreateKeySetUpload checks the params of KeySetUploads.CreateKeySetUpload.
func CreateKeySetUpload(p storage.CreateKeySetUploadParams) error {
	switch {
	case p.TenantID == "" || p.Model == "":
		return errors.New("TenantID and Model are required")
	case p.ModelVersion < 0:
		return fmt.Errorf("ModelVersion is %d, want >= 0", p.ModelVersion)
	case p.Size <= 0:
		return fmt.Errorf("Size is %d, want > 0", p.Size)
	case p.ExpiresAt.IsZero():
		return errors.New("ExpiresAt is required")
	}
	return nil
}

// AdvanceKeySetUpload checks the offsets of KeySetUploads.AdvanceKeySetUpload.
func AdvanceKeySetUpload(from, to int64, expiresAt time.Time) error {
	switch {
	case from < 0 || to < from:
		return fmt.Errorf("offsets from %d to %d: want 0 <= from <= to", from, to)
	case expiresAt.IsZero():
		return errors.New("expiresAt is required")
	}
	return nil
}

// ListExpiredKeySetUploads checks the params of
// KeySetUploads.ListExpiredKeySetUploads.
func ListExpiredKeySetUploads(before time.Time, limit int) error {
	switch {
	case before.IsZero():
		return errors.New("before is required")
	case limit < 1 || limit > storage.MaxListExpiredUploads:
		return fmt.Errorf("limit is %d, want 1 to %d", limit, storage.MaxListExpiredUploads)
	}
	return nil
}

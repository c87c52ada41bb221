package validate

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hegate/hegate/storage"
)

// CreateUser checks the params of Users.CreateUser: a valid name and
// password hash, and a role that fits the tenant: UserOperator without a
// tenant, UserAdmin or UserViewer with one.
func CreateUser(p storage.CreateUserParams) error {
	var role error
	switch {
	case p.TenantID == "" && p.Role != storage.UserOperator:
		role = fmt.Errorf("Role is %q, want %q for a user without a tenant", p.Role, storage.UserOperator)
	case p.TenantID != "" && p.Role != storage.UserAdmin && p.Role != storage.UserViewer:
		role = fmt.Errorf("Role is %q, want %q or %q for a tenant's user", p.Role, storage.UserAdmin, storage.UserViewer)
	}
	return errors.Join(UserName(p.Name), role, PasswordHash(p.PasswordHash))
}

// UserName checks a login name: required, valid UTF-8 without control
// characters, at most storage.MaxUserNameBytes.
func UserName(name string) error {
	switch {
	case name == "":
		return errors.New("Name is required")
	case len(name) > storage.MaxUserNameBytes:
		return fmt.Errorf("Name is %d bytes, at most %d", len(name), storage.MaxUserNameBytes)
	case !utf8.ValidString(name):
		return errors.New("Name is not valid UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("Name contains the control character %U", r)
		}
	}
	return nil
}

// PasswordHash checks a stored password hash: required, at most
// storage.MaxPasswordHashBytes. Its format is internal/password's, not
// storage's.
func PasswordHash(hash string) error {
	switch {
	case hash == "":
		return errors.New("PasswordHash is required")
	case len(hash) > storage.MaxPasswordHashBytes:
		return fmt.Errorf("PasswordHash is %d bytes, at most %d", len(hash), storage.MaxPasswordHashBytes)
	}
	return nil
}

// RecordLogin checks the time given to Users.RecordLogin: required.
func RecordLogin(at time.Time) error {
	if at.IsZero() {
		return errors.New("the login time is required")
	}
	return nil
}

// CreateSession checks the params of Sessions.CreateSession: a 32-byte
// SHA-256, a user, an expiry, and a client address of at most
// storage.MaxFromBytes.
func CreateSession(p storage.CreateSessionParams) error {
	switch {
	case len(p.ID) != sha256.Size:
		return fmt.Errorf("ID is %d bytes, want %d", len(p.ID), sha256.Size)
	case p.UserID == "":
		return errors.New("UserID is required")
	case p.ExpiresAt.IsZero():
		return errors.New("ExpiresAt is required")
	}
	return from(p.From)
}

// SessionHash checks a session token hash given to GetSession or
// TouchSession. One that is not 32 bytes matches no stored session, so it
// is storage.ErrNotFound (a bad cookie), not an invalid input.
func SessionHash(hash []byte) error {
	if len(hash) != sha256.Size {
		return storage.ErrNotFound
	}
	return nil
}

// TouchSession checks the times given to Sessions.TouchSession: both are
// required.
func TouchSession(now, newExpiry time.Time) error {
	if now.IsZero() || newExpiry.IsZero() {
		return errors.New("now and newExpiry are required")
	}
	return nil
}

// AuditEvent checks an event given to Audit.RecordAudit: Actor, Action and
// a known Outcome are required, every text field is within its limit, and
// Detail, if set, is valid JSON of at most storage.MaxAuditDetailBytes
// (storage.ErrTooLarge otherwise).
func AuditEvent(e storage.AuditEvent) error {
	var errs []error
	errs = append(errs, Actor(e.Actor))
	switch {
	case e.Action == "":
		errs = append(errs, errors.New("Action is required"))
	case len(e.Action) > storage.MaxAuditActionBytes:
		errs = append(errs, fmt.Errorf("Action is %d bytes, at most %d", len(e.Action), storage.MaxAuditActionBytes))
	}
	if len(e.Object) > storage.MaxAuditObjectBytes {
		errs = append(errs, fmt.Errorf("Object is %d bytes, at most %d", len(e.Object), storage.MaxAuditObjectBytes))
	}
	if len(e.RequestID) > storage.MaxAuditRequestIDBytes {
		errs = append(errs, fmt.Errorf("RequestID is %d bytes, at most %d", len(e.RequestID), storage.MaxAuditRequestIDBytes))
	}
	switch e.Outcome {
	case storage.AuditOK, storage.AuditDenied, storage.AuditFailed:
	default:
		errs = append(errs, fmt.Errorf("Outcome is %q, want %q, %q or %q", e.Outcome, storage.AuditOK, storage.AuditDenied, storage.AuditFailed))
	}
	switch {
	case len(e.Detail) > storage.MaxAuditDetailBytes:
		errs = append(errs, fmt.Errorf("%w: Detail is %d bytes, at most %d", storage.ErrTooLarge, len(e.Detail), storage.MaxAuditDetailBytes))
	case len(e.Detail) > 0 && !json.Valid(e.Detail):
		errs = append(errs, errors.New("Detail is not valid JSON"))
	}
	errs = append(errs, from(e.From))
	return errors.Join(errs...)
}

// AuditFilter checks a filter given to Audit.ListAudit and returns its
// page size: Limit and Before are not negative, and AllTenants comes
// without a Tenant.
func AuditFilter(f storage.AuditFilter) (limit int, err error) {
	switch {
	case f.AllTenants && f.Tenant != "":
		return 0, errors.New("AllTenants and Tenant are exclusive")
	case f.Before < 0:
		return 0, fmt.Errorf("Before is %d, want >= 0", f.Before)
	}
	return PageLimit(f.Limit)
}

// JobFilter checks a filter given to Jobs.ListJobsPage and returns its
// page size: Status is "" or a job status, and Limit is not negative.
func JobFilter(f storage.JobFilter) (limit int, err error) {
	switch f.Status {
	case "", storage.JobQueued, storage.JobRunning, storage.JobSucceeded, storage.JobFailed, storage.JobCancelled:
	default:
		return 0, fmt.Errorf("Status is %q, not a job status", f.Status)
	}
	return PageLimit(f.Limit)
}

// PageLimit returns the page size of a listing's Limit: 0 is
// storage.DefaultPageLimit, more than storage.MaxPageLimit is
// storage.MaxPageLimit, negative is an error.
func PageLimit(limit int) (int, error) {
	switch {
	case limit < 0:
		return 0, fmt.Errorf("Limit is %d, want >= 0", limit)
	case limit == 0:
		return storage.DefaultPageLimit, nil
	}
	return min(limit, storage.MaxPageLimit), nil
}

// DeleteAuditBefore checks the cutoff of Audit.DeleteAuditBefore:
// required (a zero time is a caller's mistake, such as an unset retention
// period, not a request to delete nothing).
func DeleteAuditBefore(t time.Time) error {
	if t.IsZero() {
		return errors.New("the cutoff time is required")
	}
	return nil
}

// from checks a client address.
func from(addr string) error {
	if len(addr) > storage.MaxFromBytes {
		return fmt.Errorf("From is %d bytes, at most %d", len(addr), storage.MaxFromBytes)
	}
	return nil
}

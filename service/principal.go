package service

import (
	"strings"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/storage"
)

// Roles a principal can have. API keys are admin or client; console
// users are admin or viewer of one tenant, or operators across tenants.
const (
	RoleAdmin    = storage.RoleAdmin
	RoleClient   = storage.RoleClient
	RoleViewer   = "viewer"
	RoleOperator = "operator"
)

// Principal is who makes a request, as a front door authenticated it. The
// tenant comes from the credential, never from the request.
type Principal struct {
	Tenant hegate.TenantID
	// APIKey is the key that authenticated, "" otherwise.
	APIKey hegate.APIKeyID
	// User is the console user whose session authenticated, "" otherwise.
	User hegate.UserID
	// Role is one of the Role constants.
	Role string
	// Device is the enrolled device whose credential made the request, with
	// the format and status of its last accepted evidence; "" otherwise.
	Device       storage.DeviceID
	DeviceFormat attest.Format
	DeviceStatus attest.Status
	// Operator names the operator acting on the server (the CLI run where
	// the store is), "" otherwise.
	Operator string
	// From is the client's address and RequestID the request's id, for the
	// audit log.
	From      string
	RequestID string
}

// Actor names the principal in the ledger and the audit log.
func (p Principal) Actor() string {
	switch {
	case p.Device != "":
		return "device:" + string(p.Device)
	case p.User != "" && p.Role == RoleOperator:
		return "operator:" + string(p.User)
	case p.User != "":
		return "user:" + string(p.User)
	case p.Operator != "":
		return "cli:" + p.Operator
	}
	return ActorAPIKeyPrefix + string(p.APIKey)
}

// ActorAPIKeyPrefix starts the actor of an API-key principal.
const ActorAPIKeyPrefix = "api-key:"

// tenantActor reports whether an actor (of a ledger or budget row) acted
// for a tenant: an API key, a tenant's console user or a device, not an
// operator ("cli:", "operator:") or the demo.
func tenantActor(actor string) bool {
	for _, prefix := range []string{ActorAPIKeyPrefix, "user:", "device:"} {
		if strings.HasPrefix(actor, prefix) {
			return true
		}
	}
	return false
}

// CanChange reports whether the principal may change the tenant's
// settings (an admin key, an admin user or an operator), for a front door
// that hides the forms of those who may not; the rules check it anyway.
func (p Principal) CanChange() bool { return p.canChange() }

// canChange reports whether the principal may change the tenant's
// settings: an admin key, an admin user or an operator.
func (p Principal) canChange() bool {
	return p.Role == RoleAdmin || p.Role == RoleOperator
}

// canRead reports whether the principal may read the tenant's settings
// and registry: those who may change them, and viewers.
func (p Principal) canRead() bool {
	return p.canChange() || p.Role == RoleViewer
}

// requireAdmin refuses a principal that may not change the tenant's
// settings.
func (p Principal) requireAdmin(op string) error {
	if p.Role == RoleOperator && p.Tenant == "" {
		return errNoTenant(op)
	}
	if !p.canChange() {
		if p.Role == RoleViewer {
			return hegate.E(op, hegate.KindForbidden, nil, "a viewer may look but not change anything: ask an administrator of the tenant")
		}
		return hegate.E(op, hegate.KindForbidden, nil, "this needs an admin API key of the tenant (hegate tenant key --role admin)")
	}
	return nil
}

// requireReader refuses a principal that may not read the tenant's
// settings and registry (a client key).
func (p Principal) requireReader(op string) error {
	if p.Role == RoleOperator && p.Tenant == "" {
		return errNoTenant(op)
	}
	if !p.canRead() {
		return hegate.E(op, hegate.KindForbidden, nil, "this needs an admin API key of the tenant (hegate tenant key --role admin)")
	}
	return nil
}

// requireTenant refuses a principal without a tenant (an operator that
// named none).
func (p Principal) requireTenant(op string) error {
	if p.Tenant == "" {
		return errNoTenant(op)
	}
	return nil
}

func errNoTenant(op string) error {
	return hegate.E(op, hegate.KindInvalid, nil, "an operator acts on one tenant at a time: pick the tenant first (the console's Tenant field in the top bar, or --tenant)")
}

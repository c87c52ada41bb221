package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/storage"
)

// The device registry, the tenant's trust anchors (endorsements and
// reference values per format) and its inference policies.

// ListDevices lists the tenant's devices (admins and viewers).
func (s *Service) ListDevices(ctx context.Context, p Principal) ([]storage.Device, error) {
	const op = "devices.list"
	if err := p.requireReader(op); err != nil {
		return nil, err
	}
	ds, err := s.store.ListDevices(ctx, p.Tenant)
	if err != nil {
		return nil, unavailable(op, err)
	}
	return ds, nil
}

// GetDevice returns one of the tenant's devices, to an admin or viewer or
// to the device itself.
func (s *Service) GetDevice(ctx context.Context, p Principal, id storage.DeviceID) (storage.Device, error) {
	const op = "devices.get"
	if !WellFormedID(string(id), "dev_") {
		return storage.Device{}, notFound(op, nil, "no device %s", truncate(string(id), 40))
	}
	if p.Device != id {
		if err := p.requireReader(op); err != nil {
			return storage.Device{}, err
		}
	}
	d, err := s.store.GetDevice(ctx, p.Tenant, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Device{}, notFound(op, err, "no device %s", id)
	}
	if err != nil {
		return storage.Device{}, unavailable(op, err)
	}
	return d, nil
}

// RevokeDevice revokes a device: its credential stops working on its next
// request, on every replica, and it cannot enroll again.
func (s *Service) RevokeDevice(ctx context.Context, p Principal, id storage.DeviceID) (storage.Device, error) {
	const op = "device.revoke"
	if err := p.requireAdmin(op); err != nil {
		return storage.Device{}, s.denied(ctx, p, op, string(id), err)
	}
	if !WellFormedID(string(id), "dev_") {
		return storage.Device{}, notFound(op, nil, "no device %s", truncate(string(id), 40))
	}
	d, err := s.store.RevokeDevice(ctx, p.Tenant, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Device{}, notFound(op, err, "no device %s", id)
	}
	if err != nil {
		return storage.Device{}, unavailable(op, err)
	}
	s.audit(ctx, p, op, string(id), map[string]any{"format": d.Format, "instance_id": d.InstanceID})
	return d, nil
}

// TrustAnchorDoc names one trust-anchor document: a format's endorsements
// or reference values.
type TrustAnchorDoc struct {
	Format attest.Format
	Kind   string // storage.DocEndorsements or storage.DocReferenceValues
}

// check refuses a document name that does not exist (404).
func (d TrustAnchorDoc) check(op string) error {
	if !d.Format.Valid() {
		return hegate.E(op, hegate.KindNotFound, nil, "no evidence format %q (tpm, psa, native)", d.Format)
	}
	if d.Kind != storage.DocEndorsements && d.Kind != storage.DocReferenceValues {
		return hegate.E(op, hegate.KindNotFound, nil, "no document kind %q (endorsements, reference-values)", d.Kind)
	}
	return nil
}

// ListAttestationDocs lists the tenant's trust-anchor documents.
func (s *Service) ListAttestationDocs(ctx context.Context, p Principal) ([]storage.AttestationDoc, error) {
	const op = "attestation.list"
	if err := p.requireReader(op); err != nil {
		return nil, err
	}
	docs, err := s.store.ListAttestationDocs(ctx, p.Tenant)
	if err != nil {
		return nil, unavailable(op, err)
	}
	return docs, nil
}

// GetAttestationDoc returns one of the tenant's trust-anchor documents.
func (s *Service) GetAttestationDoc(ctx context.Context, p Principal, d TrustAnchorDoc) (storage.AttestationDoc, error) {
	const op = "attestation.get"
	if err := p.requireReader(op); err != nil {
		return storage.AttestationDoc{}, err
	}
	if err := d.check(op); err != nil {
		return storage.AttestationDoc{}, err
	}
	doc, err := s.store.GetAttestationDoc(ctx, p.Tenant, string(d.Format), d.Kind)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.AttestationDoc{}, notFound(op, err, "no %s %s are set", d.Format, d.Kind)
	}
	if err != nil {
		return storage.AttestationDoc{}, unavailable(op, err)
	}
	return doc, nil
}

// SetAttestationDoc validates and stores one of the tenant's trust-anchor
// documents (admins only).
func (s *Service) SetAttestationDoc(ctx context.Context, p Principal, d TrustAnchorDoc, doc []byte) (storage.AttestationDoc, error) {
	const op = "attestation.set"
	if err := p.requireAdmin(op); err != nil {
		return storage.AttestationDoc{}, s.denied(ctx, p, op, d.name(), err)
	}
	if err := d.check(op); err != nil {
		return storage.AttestationDoc{}, err
	}
	var err error
	if d.Kind == storage.DocEndorsements {
		_, err = attest.ParseEndorsements(doc)
	} else {
		_, err = attest.ParseReferenceValues(doc)
	}
	if err != nil {
		return storage.AttestationDoc{}, hegate.E(op, hegate.KindInvalid, err, "%v", err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil {
		return storage.AttestationDoc{}, hegate.E(op, hegate.KindInvalid, err, "not JSON: %v", err)
	}
	stored, err := s.store.PutAttestationDoc(ctx, storage.AttestationDoc{
		TenantID: p.Tenant, Format: string(d.Format), Kind: d.Kind, Document: compact.Bytes(), UpdatedBy: p.Actor(),
	})
	if err != nil {
		return storage.AttestationDoc{}, unavailable(op, err)
	}
	s.audit(ctx, p, op, d.name(), map[string]any{"bytes": compact.Len()})
	return stored, nil
}

// DeleteAttestationDoc deletes one of the tenant's trust-anchor documents
// (admins only).
func (s *Service) DeleteAttestationDoc(ctx context.Context, p Principal, d TrustAnchorDoc) error {
	const op = "attestation.delete"
	if err := p.requireAdmin(op); err != nil {
		return s.denied(ctx, p, op, d.name(), err)
	}
	if err := d.check(op); err != nil {
		return err
	}
	err := s.store.DeleteAttestationDoc(ctx, p.Tenant, string(d.Format), d.Kind)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound(op, err, "no %s %s are set", d.Format, d.Kind)
	}
	if err != nil {
		return unavailable(op, err)
	}
	s.audit(ctx, p, op, d.name(), nil)
	return nil
}

func (d TrustAnchorDoc) name() string { return string(d.Format) + "/" + d.Kind }

// PolicyFor is the policy that applies to inference on model: the model's
// own, else the tenant's default, else attest.DefaultPolicy. The bool says
// whether it was set (false for attest.DefaultPolicy). It is a read of the
// tenant's own settings, open to every principal of the tenant: a device
// may learn what it must prove.
func (s *Service) PolicyFor(ctx context.Context, tenant hegate.TenantID, model hegate.ModelID) (attest.Policy, storage.Policy, bool, error) {
	for _, m := range []hegate.ModelID{model, ""} {
		sp, err := s.store.GetPolicy(ctx, tenant, m)
		switch {
		case err == nil:
			pol, err := attest.ParsePolicy(sp.Document)
			if err != nil {
				return attest.Policy{}, sp, true, fmt.Errorf("stored policy of model %q no longer parses: %w", m, err)
			}
			return pol, sp, true, nil
		case !errors.Is(err, storage.ErrNotFound):
			return attest.Policy{}, storage.Policy{}, false, fmt.Errorf("reading policy: %w", err)
		}
	}
	return attest.DefaultPolicy(), storage.Policy{TenantID: tenant, Model: model}, false, nil
}

// Policy is PolicyFor with the principal's tenant, as a rule: a storage
// failure is KindUnavailable.
func (s *Service) Policy(ctx context.Context, p Principal, model hegate.ModelID) (attest.Policy, storage.Policy, bool, error) {
	pol, sp, set, err := s.PolicyFor(ctx, p.Tenant, model)
	if err != nil {
		return attest.Policy{}, storage.Policy{}, false, unavailable("policy.get", err)
	}
	return pol, sp, set, nil
}

// ListPolicies lists the policies the tenant has set, parsed.
func (s *Service) ListPolicies(ctx context.Context, p Principal) ([]storage.Policy, []attest.Policy, error) {
	const op = "policy.list"
	if err := p.requireReader(op); err != nil {
		return nil, nil, err
	}
	ps, err := s.store.ListPolicies(ctx, p.Tenant)
	if err != nil {
		return nil, nil, unavailable(op, err)
	}
	parsed := make([]attest.Policy, len(ps))
	for i, sp := range ps {
		if parsed[i], err = attest.ParsePolicy(sp.Document); err != nil {
			return nil, nil, hegate.E(op, hegate.KindInternal, fmt.Errorf("stored policy of model %q no longer parses: %w", sp.Model, err), "")
		}
	}
	return ps, parsed, nil
}

// checkInferPolicy refuses an inference the model's policy does not admit:
// an API key where the policy requires an attested device, or a device
// whose format or attestation status it does not accept.
func (s *Service) checkInferPolicy(ctx context.Context, op string, p Principal, model hegate.ModelID) error {
	pol, _, _, err := s.PolicyFor(ctx, p.Tenant, model)
	if err != nil {
		return unavailable(op, err)
	}
	if p.Device == "" {
		if !pol.AllowAPIKey {
			return hegate.E(op, hegate.KindForbidden, attest.Errorf(attest.ReasonPolicyAPIKey, ""),
				"the policy of model %s requires an attested device: enroll one (hegate enroll) and send its credential", model)
		}
		return nil
	}
	if err := pol.AdmitsDevice(p.DeviceFormat, p.DeviceStatus); err != nil {
		return hegate.E(op, hegate.KindForbidden, attest.Errorf(attest.ReasonPolicyDevice, ""), "model %s: %v", model, err)
	}
	return nil
}

// SetPolicy stores a policy for a model, or the tenant's default when
// model is "" (admins only).
func (s *Service) SetPolicy(ctx context.Context, p Principal, model hegate.ModelID, doc []byte) (storage.Policy, error) {
	const op = "policy.set"
	if err := p.requireAdmin(op); err != nil {
		return storage.Policy{}, s.denied(ctx, p, op, policyObject(model), err)
	}
	if model != "" {
		if err := CheckModelName(op, string(model)); err != nil {
			return storage.Policy{}, &FieldError{Field: "model", Err: err}
		}
	}
	pol, err := attest.ParsePolicy(doc)
	if err != nil {
		return storage.Policy{}, hegate.E(op, hegate.KindInvalid, err, "%v", err)
	}
	b, err := json.Marshal(pol)
	if err != nil {
		return storage.Policy{}, hegate.E(op, hegate.KindInternal, err, "")
	}
	sp, err := s.store.PutPolicy(ctx, storage.Policy{TenantID: p.Tenant, Model: model, Document: b, UpdatedBy: p.Actor()})
	if err != nil {
		return storage.Policy{}, unavailable(op, err)
	}
	s.audit(ctx, p, op, policyObject(model), json.RawMessage(b))
	return sp, nil
}

// DeletePolicy deletes the policy of a model, or the tenant's default when
// model is "" (admins only).
func (s *Service) DeletePolicy(ctx context.Context, p Principal, model hegate.ModelID) error {
	const op = "policy.delete"
	if err := p.requireAdmin(op); err != nil {
		return s.denied(ctx, p, op, policyObject(model), err)
	}
	if model != "" {
		if err := CheckModelName(op, string(model)); err != nil {
			return &FieldError{Field: "model", Err: err}
		}
	}
	err := s.store.DeletePolicy(ctx, p.Tenant, model)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound(op, err, "no policy is set for %s", PolicyName(model))
	}
	if err != nil {
		return unavailable(op, err)
	}
	s.audit(ctx, p, op, policyObject(model), nil)
	return nil
}

// PolicyName says which policy model names: "" is the tenant's default.
func PolicyName(m hegate.ModelID) string {
	if m == "" {
		return "the tenant's default"
	}
	return "model " + string(m)
}

func policyObject(m hegate.ModelID) string {
	if m == "" {
		return "policy:default"
	}
	return "policy:" + string(m)
}

// WellFormedID reports whether s is prefix and 26 base32 characters, the
// shape of every stored id, so that garbage never reaches SQL.
func WellFormedID(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) != 26 {
		return false
	}
	for _, c := range []byte(rest) {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

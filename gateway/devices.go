package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/storage"
)

// The device registry, the tenant's trust anchors (endorsements and
// reference values per format) and its inference policies. Rules are
// functions of (ctx, principal, params), shared with the console.

// ListDevices lists the tenant's devices (admin keys only).
func (s *Server) ListDevices(ctx context.Context, p Principal) ([]storage.Device, error) {
	const op = "devices.list"
	if err := p.requireAdmin(op); err != nil {
		return nil, err
	}
	ds, err := s.cfg.Store.ListDevices(ctx, p.Tenant)
	if err != nil {
		return nil, hegate.E(op, hegate.KindUnavailable, err, "")
	}
	return ds, nil
}

// GetDevice returns one of the tenant's devices, to an admin key or to
// the device itself.
func (s *Server) GetDevice(ctx context.Context, p Principal, id storage.DeviceID) (storage.Device, error) {
	const op = "devices.get"
	if p.Device != id {
		if err := p.requireAdmin(op); err != nil {
			return storage.Device{}, err
		}
	}
	d, err := s.cfg.Store.GetDevice(ctx, p.Tenant, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Device{}, hegate.E(op, hegate.KindNotFound, err, "no device %s", id)
	}
	if err != nil {
		return storage.Device{}, hegate.E(op, hegate.KindUnavailable, err, "")
	}
	return d, nil
}

// RevokeDevice revokes a device: its credential stops working on its next
// request, on every replica, and it cannot enroll again.
func (s *Server) RevokeDevice(ctx context.Context, p Principal, id storage.DeviceID) (storage.Device, error) {
	const op = "devices.revoke"
	if err := p.requireAdmin(op); err != nil {
		return storage.Device{}, err
	}
	d, err := s.cfg.Store.RevokeDevice(ctx, p.Tenant, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Device{}, hegate.E(op, hegate.KindNotFound, err, "no device %s", id)
	}
	if err != nil {
		return storage.Device{}, hegate.E(op, hegate.KindUnavailable, err, "")
	}
	s.log.InfoContext(ctx, "device revoked", "request_id", RequestIDFromContext(ctx), "tenant", string(p.Tenant), "device", string(id), "by", p.actor())
	return d, nil
}

// SetAttestationDoc validates and stores one of the tenant's trust-anchor
// documents (admin keys only).
func (s *Server) SetAttestationDoc(ctx context.Context, p Principal, f attest.Format, kind string, doc []byte) (storage.AttestationDoc, error) {
	const op = "attestation.set"
	if err := p.requireAdmin(op); err != nil {
		return storage.AttestationDoc{}, err
	}
	if err := checkDocTarget(op, f, kind); err != nil {
		return storage.AttestationDoc{}, err
	}
	var err error
	if kind == storage.DocEndorsements {
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
	d, err := s.cfg.Store.PutAttestationDoc(ctx, storage.AttestationDoc{
		TenantID: p.Tenant, Format: string(f), Kind: kind, Document: compact.Bytes(), UpdatedBy: p.actor(),
	})
	if err != nil {
		return storage.AttestationDoc{}, hegate.E(op, hegate.KindUnavailable, err, "")
	}
	s.log.InfoContext(ctx, "attestation document set", "request_id", RequestIDFromContext(ctx), "tenant", string(p.Tenant), "format", string(f), "kind", kind, "by", p.actor())
	return d, nil
}

func checkDocTarget(op string, f attest.Format, kind string) error {
	if !f.Valid() {
		return hegate.E(op, hegate.KindNotFound, nil, "no evidence format %q (tpm, psa, native)", f)
	}
	if kind != storage.DocEndorsements && kind != storage.DocReferenceValues {
		return hegate.E(op, hegate.KindNotFound, nil, "no document kind %q (endorsements, reference-values)", kind)
	}
	return nil
}

// PolicyFor is the policy that applies to inference on model: the model's
// own, else the tenant's default, else attest.DefaultPolicy. The bool says
// whether it was set (false for attest.DefaultPolicy).
func (s *Server) PolicyFor(ctx context.Context, tenant hegate.TenantID, model hegate.ModelID) (attest.Policy, storage.Policy, bool, error) {
	for _, m := range []hegate.ModelID{model, ""} {
		sp, err := s.cfg.Store.GetPolicy(ctx, tenant, m)
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

// checkInferPolicy refuses an inference the model's policy does not admit:
// an API key where the policy requires an attested device, or a device
// whose format or attestation status it does not accept.
func (s *Server) checkInferPolicy(ctx context.Context, op string, p Principal, model hegate.ModelID) error {
	pol, _, _, err := s.PolicyFor(ctx, p.Tenant, model)
	if err != nil {
		return hegate.E(op, hegate.KindUnavailable, err, "")
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
// model is "" (admin keys only).
func (s *Server) SetPolicy(ctx context.Context, p Principal, model hegate.ModelID, doc []byte) (storage.Policy, error) {
	const op = "policy.set"
	if err := p.requireAdmin(op); err != nil {
		return storage.Policy{}, err
	}
	pol, err := attest.ParsePolicy(doc)
	if err != nil {
		return storage.Policy{}, hegate.E(op, hegate.KindInvalid, err, "%v", err)
	}
	b, err := json.Marshal(pol)
	if err != nil {
		return storage.Policy{}, hegate.E(op, hegate.KindInternal, err, "")
	}
	sp, err := s.cfg.Store.PutPolicy(ctx, storage.Policy{TenantID: p.Tenant, Model: model, Document: b, UpdatedBy: p.actor()})
	if err != nil {
		return storage.Policy{}, hegate.E(op, hegate.KindUnavailable, err, "")
	}
	s.log.InfoContext(ctx, "policy set", "request_id", RequestIDFromContext(ctx), "tenant", string(p.Tenant), "model", string(model), "by", p.actor())
	return sp, nil
}

// The HTTP side.

func deviceIDParam(r *http.Request) storage.DeviceID {
	return storage.DeviceID(chi.URLParam(r, "id"))
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ds, err := s.ListDevices(r.Context(), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.DeviceList{Devices: make([]api.Device, 0, len(ds))}
	for _, d := range ds {
		out.Devices = append(out.Devices, deviceView(d))
	}
	writeJSON(w, http.StatusOK, out)
}

// deviceRoute serves a route on one device: {id} is checked for the
// shape of a device id (anything else is 404 before SQL), then do runs.
func (s *Server) deviceRoute(op string, do func(ctx context.Context, p Principal, id storage.DeviceID) (storage.Device, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := principal(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		id := deviceIDParam(r)
		if !wellFormedID(string(id), "dev_") {
			s.fail(w, r, hegate.E(op, hegate.KindNotFound, nil, "no device %s", truncate(string(id), 40)))
			return
		}
		d, err := do(r.Context(), p, id)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, deviceView(d))
	}
}

func attestationDocView(d storage.AttestationDoc) api.AttestationDoc {
	return api.AttestationDoc{Format: d.Format, Kind: d.Kind, Document: json.RawMessage(d.Document), UpdatedAt: d.UpdatedAt.UTC(), UpdatedBy: d.UpdatedBy}
}

func (s *Server) listAttestationDocs(w http.ResponseWriter, r *http.Request) {
	const op = "attestation.list"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := p.requireAdmin(op); err != nil {
		s.fail(w, r, err)
		return
	}
	docs, err := s.cfg.Store.ListAttestationDocs(r.Context(), p.Tenant)
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindUnavailable, err, ""))
		return
	}
	out := api.AttestationDocList{Documents: make([]api.AttestationDoc, 0, len(docs))}
	for _, d := range docs {
		out.Documents = append(out.Documents, attestationDocView(d))
	}
	writeJSON(w, http.StatusOK, out)
}

// docRoute is the admin principal and the {format}/{kind} a
// trust-anchor route names, checked.
func docRoute(r *http.Request, op string) (Principal, attest.Format, string, error) {
	p, err := principal(r)
	if err != nil {
		return Principal{}, "", "", err
	}
	if err := p.requireAdmin(op); err != nil {
		return Principal{}, "", "", err
	}
	f, kind := attest.Format(chi.URLParam(r, "format")), chi.URLParam(r, "kind")
	if err := checkDocTarget(op, f, kind); err != nil {
		return Principal{}, "", "", err
	}
	return p, f, kind, nil
}

func (s *Server) getAttestationDoc(w http.ResponseWriter, r *http.Request) {
	const op = "attestation.get"
	p, f, kind, err := docRoute(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := s.cfg.Store.GetAttestationDoc(r.Context(), p.Tenant, string(f), kind)
	if errors.Is(err, storage.ErrNotFound) {
		s.fail(w, r, hegate.E(op, hegate.KindNotFound, err, "no %s %s are set", f, kind))
		return
	}
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindUnavailable, err, ""))
		return
	}
	writeJSON(w, http.StatusOK, attestationDocView(d))
}

func (s *Server) putAttestationDoc(w http.ResponseWriter, r *http.Request) {
	const op = "attestation.set"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := readSmallBody(r, op, attest.MaxDocumentBytes)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := s.SetAttestationDoc(r.Context(), p, attest.Format(chi.URLParam(r, "format")), chi.URLParam(r, "kind"), b)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, attestationDocView(d))
}

func (s *Server) deleteAttestationDoc(w http.ResponseWriter, r *http.Request) {
	const op = "attestation.delete"
	p, f, kind, err := docRoute(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	err = s.cfg.Store.DeleteAttestationDoc(r.Context(), p.Tenant, string(f), kind)
	if errors.Is(err, storage.ErrNotFound) {
		s.fail(w, r, hegate.E(op, hegate.KindNotFound, err, "no %s %s are set", f, kind))
		return
	}
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindUnavailable, err, ""))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func policyView(pol attest.Policy, sp storage.Policy, set bool) api.Policy {
	v := api.Policy{Model: string(sp.Model), AllowAPIKey: pol.AllowAPIKey, Formats: []string{}, Statuses: []string{}, Default: !set}
	for _, f := range pol.Formats {
		v.Formats = append(v.Formats, string(f))
	}
	for _, st := range pol.Statuses {
		v.Statuses = append(v.Statuses, string(st))
	}
	if set {
		t := sp.UpdatedAt.UTC()
		v.UpdatedAt, v.UpdatedBy = &t, sp.UpdatedBy
	}
	return v
}

// policyModel is the model a policy route names: "" for /v1/policy.
func policyModel(r *http.Request, op string) (hegate.ModelID, error) {
	if chi.URLParam(r, "model") == "" {
		return "", nil
	}
	return modelParam(r, op)
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request) {
	const op = "policy.list"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := p.requireAdmin(op); err != nil {
		s.fail(w, r, err)
		return
	}
	ps, err := s.cfg.Store.ListPolicies(r.Context(), p.Tenant)
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindUnavailable, err, ""))
		return
	}
	out := api.PolicyList{Policies: []api.Policy{}}
	for _, sp := range ps {
		pol, err := attest.ParsePolicy(sp.Document)
		if err != nil {
			s.fail(w, r, hegate.E(op, hegate.KindInternal, err, ""))
			return
		}
		out.Policies = append(out.Policies, policyView(pol, sp, true))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) {
	const op = "policy.get"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	model, err := policyModel(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	pol, sp, set, err := s.PolicyFor(r.Context(), p.Tenant, model)
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindUnavailable, err, ""))
		return
	}
	writeJSON(w, http.StatusOK, policyView(pol, sp, set))
}

func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request) {
	const op = "policy.set"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	model, err := policyModel(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := readSmallBody(r, op, maxSmallBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sp, err := s.SetPolicy(r.Context(), p, model, b)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	pol, _ := attest.ParsePolicy(sp.Document)
	writeJSON(w, http.StatusOK, policyView(pol, sp, true))
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request) {
	const op = "policy.delete"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := p.requireAdmin(op); err != nil {
		s.fail(w, r, err)
		return
	}
	model, err := policyModel(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	err = s.cfg.Store.DeletePolicy(r.Context(), p.Tenant, model)
	if errors.Is(err, storage.ErrNotFound) {
		s.fail(w, r, hegate.E(op, hegate.KindNotFound, err, "no policy is set for %s", policyName(model)))
		return
	}
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindUnavailable, err, ""))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func policyName(m hegate.ModelID) string {
	if m == "" {
		return "the tenant's default"
	}
	return "model " + string(m)
}

// readSmallBody reads a whole body of at most limit bytes.
func readSmallBody(r *http.Request, op string, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, bodyTooLarge(op, hegate.E(op, hegate.KindInvalid, err, "reading the body: %v", err))
	}
	if int64(len(b)) > limit {
		return nil, hegate.E(op, hegate.KindTooLarge, nil, "the body is larger than %d bytes", limit)
	}
	return b, nil
}

// bodyTooLarge makes err, a failure to read a request body, 413 when the
// route's body limit (limitBody) cut the body short: a body that announced
// no length (chunked) only meets the limit while it is read, and the
// reader's error must not then pass for a malformed body (400).
func bodyTooLarge(op string, err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return hegate.E(op, hegate.KindTooLarge, err, "the request body exceeds the limit of %d bytes", mbe.Limit)
	}
	return err
}

// wellFormedID reports whether s is prefix and 26 base32 characters, the
// shape of every stored id, so that garbage never reaches SQL.
func wellFormedID(s, prefix string) bool {
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

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// The device registry, the tenant's trust anchors (endorsements and
// reference values per format) and its inference policies: HTTP over the
// rules in package service.

func deviceIDParam(r *http.Request) storage.DeviceID {
	return storage.DeviceID(chi.URLParam(r, "id"))
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ds, err := s.svc.ListDevices(r.Context(), p)
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
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	docs, err := s.svc.ListAttestationDocs(r.Context(), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.AttestationDocList{Documents: make([]api.AttestationDoc, 0, len(docs))}
	for _, d := range docs {
		out.Documents = append(out.Documents, attestationDocView(d))
	}
	writeJSON(w, http.StatusOK, out)
}

// docRoute is the principal and the {format}/{kind} a trust-anchor route
// names.
func docRoute(r *http.Request) (Principal, service.TrustAnchorDoc, error) {
	p, err := principal(r)
	if err != nil {
		return Principal{}, service.TrustAnchorDoc{}, err
	}
	return p, service.TrustAnchorDoc{Format: attest.Format(chi.URLParam(r, "format")), Kind: chi.URLParam(r, "kind")}, nil
}

func (s *Server) getAttestationDoc(w http.ResponseWriter, r *http.Request) {
	p, doc, err := docRoute(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := s.svc.GetAttestationDoc(r.Context(), p, doc)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, attestationDocView(d))
}

func (s *Server) putAttestationDoc(w http.ResponseWriter, r *http.Request) {
	const op = "attestation.set"
	p, doc, err := docRoute(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := readSmallBody(r, op, attest.MaxDocumentBytes)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := s.svc.SetAttestationDoc(r.Context(), p, doc, b)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, attestationDocView(d))
}

func (s *Server) deleteAttestationDoc(w http.ResponseWriter, r *http.Request) {
	p, doc, err := docRoute(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.svc.DeleteAttestationDoc(r.Context(), p, doc); err != nil {
		s.fail(w, r, err)
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
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ps, parsed, err := s.svc.ListPolicies(r.Context(), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.PolicyList{Policies: []api.Policy{}}
	for i, sp := range ps {
		out.Policies = append(out.Policies, policyView(parsed[i], sp, true))
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
	pol, sp, set, err := s.svc.Policy(r.Context(), p, model)
	if err != nil {
		s.fail(w, r, err)
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
	sp, err := s.svc.SetPolicy(r.Context(), p, model, b)
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
	model, err := policyModel(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.svc.DeletePolicy(r.Context(), p, model); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
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

// wellFormedID reports whether s has the shape of a stored id (see
// service.WellFormedID).
var wellFormedID = service.WellFormedID

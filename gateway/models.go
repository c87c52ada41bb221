package gateway

import (
	"encoding/json"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/he"
)

// The /v1/models routes: a tenant uploads ONNX (or hegate IR JSON), a
// compile job turns it into a ready version, and every gateway and worker
// serves it from then on. The rules live in package catalog; these
// handlers only translate HTTP.

func modelVersionPath(name hegate.ModelID, version int) string {
	return api.PathModels + "/" + string(name) + "/versions/" + strconv.Itoa(version)
}

func modelVersionView(e catalog.Entry) api.ModelVersion {
	v := api.ModelVersion{
		Name:     string(e.Name),
		Version:  e.Version,
		BuiltIn:  e.Builtin(),
		Status:   api.ModelStatus(e.Status),
		Error:    e.Error,
		KeyModel: string(e.KeyID()),
		Self:     modelVersionPath(e.Name, max(e.Version, 1)),
	}
	if e.Builtin() {
		v.Version = 1
		v.Self = "/v2/models/" + string(e.Name)
	} else {
		created, updated := e.CreatedAt, e.UpdatedAt
		v.CreatedAt, v.UpdatedAt = &created, &updated
		v.Options = e.Options
	}
	if len(e.Manifest) > 0 {
		var man he.Manifest
		if err := json.Unmarshal(e.Manifest, &man); err == nil {
			v.Manifest = &man
		}
	}
	return v
}

// uploadModel stores an uploaded model and enqueues its compile job.
func (s *Server) uploadModel(w http.ResponseWriter, r *http.Request) {
	const op = "models.upload"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	name := q.Get(api.QueryName)
	if name == "" {
		s.fail(w, r, hegate.E(op, hegate.KindInvalid, nil, "name the model with ?%s=", api.QueryName))
		return
	}
	format := catalog.FormatONNX
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err != nil:
			s.fail(w, r, hegate.E(op, hegate.KindInvalid, err, "Content-Type %q does not parse", truncate(ct, 80)))
			return
		case mt == api.ContentTypeONNX || mt == api.ContentTypeOctetStream:
		case mt == api.ContentTypeIRJSON || mt == "application/json":
			format = catalog.FormatIRJSON
		default:
			s.fail(w, r, hegate.E(op, hegate.KindInvalid, nil, "Content-Type %q: want %s or %s", truncate(ct, 80), api.ContentTypeONNX, api.ContentTypeIRJSON))
			return
		}
	}
	if r.ContentLength > s.catalog.MaxSourceBytes() {
		s.fail(w, r, hegate.E(op, hegate.KindTooLarge, nil, "model file of %d bytes exceeds the limit of %d bytes", r.ContentLength, s.catalog.MaxSourceBytes()))
		return
	}
	opts, err := uploadOptions(op, q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	idem, err := idempotencyKey(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	e, created, err := s.svc.UploadModel(r.Context(), p, catalog.UploadParams{
		Name: hegate.ModelID(name), Format: format, Source: r.Body, Options: opts, IdempotencyKey: idem,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", modelVersionPath(e.Name, e.Version))
	status := http.StatusAccepted
	if !created {
		status = http.StatusOK
	}
	writeJSON(w, status, modelVersionView(e))
}

// uploadOptions reads the compile options of an upload from its query.
func uploadOptions(op string, q map[string][]string) (catalog.Options, error) {
	o, errs := catalog.ParseOptions(func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	})
	for _, k := range slices.Sorted(maps.Keys(errs)) {
		return o, hegate.E(op, hegate.KindInvalid, nil, "query %s: %s", k, errs[k])
	}
	if err := o.Validate(); err != nil {
		return o, err
	}
	return o, nil
}

// listTenantModels lists the built-in models and the latest version of
// each of the caller's models, any status.
func (s *Server) listTenantModels(w http.ResponseWriter, r *http.Request) {
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	entries, err := s.svc.ListModels(r.Context(), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list := api.ModelVersionList{Models: make([]api.ModelVersion, 0, len(entries))}
	for _, e := range entries {
		list.Models = append(list.Models, modelVersionView(e))
	}
	writeJSON(w, http.StatusOK, list)
}

// modelVersions lists the versions of one model, newest first.
func (s *Server) modelVersions(w http.ResponseWriter, r *http.Request) {
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	entries, err := s.svc.ModelVersions(r.Context(), p, hegate.ModelID(chi.URLParam(r, "model")))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list := api.ModelVersionList{Models: make([]api.ModelVersion, 0, len(entries))}
	for _, e := range entries {
		list.Models = append(list.Models, modelVersionView(e))
	}
	writeJSON(w, http.StatusOK, list)
}

// modelVersion describes one version, any status.
func (s *Server) modelVersion(w http.ResponseWriter, r *http.Request) {
	const op = "models.version"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := strconv.Atoi(chi.URLParam(r, "version"))
	if err != nil || v < 1 {
		s.fail(w, r, hegate.E(op, hegate.KindInvalid, nil, "version %q is not a positive integer", truncate(chi.URLParam(r, "version"), 20)))
		return
	}
	e, err := s.svc.ModelVersion(r.Context(), p, hegate.ModelID(chi.URLParam(r, "model")), v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, modelVersionView(e))
}

// deleteModel deletes every version of one of the caller's models.
func (s *Server) deleteModel(w http.ResponseWriter, r *http.Request) {
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.svc.DeleteModel(r.Context(), p, hegate.ModelID(chi.URLParam(r, "model"))); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

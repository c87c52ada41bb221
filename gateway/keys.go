package gateway

import (
	"mime"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

func keySetView(ks storage.KeySet) api.KeySet {
	return api.KeySet{
		ID:        string(ks.ID),
		Model:     string(ks.Model),
		ParamsID:  ks.ParamsID,
		SizeBytes: ks.SizeBytes,
		CreatedAt: ks.CreatedAt,
	}
}

func keySetPath(id hegate.KeySetID) string { return api.PathKeys + "/" + string(id) }

// uploadKeySet streams a key set into the blob store while the model checks
// it; only a key set that passed the check is stored and recorded.
func (s *Server) uploadKeySet(w http.ResponseWriter, r *http.Request) {
	const op = "keys.upload"
	ctx := r.Context()
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	name := r.URL.Query().Get(api.QueryModel)
	if name == "" {
		name = r.Header.Get(api.HeaderModel)
	}
	if name == "" {
		s.fail(w, r, hegate.E(op, hegate.KindInvalid, nil, "name the model with ?%s= or the %s header", api.QueryModel, api.HeaderModel))
		return
	}
	m, err := s.model(r, op, name, r.URL.Query().Get(api.QueryVersion))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != api.ContentTypeKeySet && mt != api.ContentTypeOctetStream) {
			s.fail(w, r, hegate.E(op, hegate.KindInvalid, err, "Content-Type %q: want %s", truncate(ct, 80), api.ContentTypeKeySet))
			return
		}
	}
	// The model fixes the exact size of its key set: read no more.
	limit, want := s.cfg.MaxKeySetBytes, m.Manifest().KeySetBytes
	if want > 0 {
		limit = min(limit, want)
	}
	switch {
	case r.ContentLength > limit:
		s.fail(w, r, hegate.E(op, hegate.KindTooLarge, nil, "key set of %d bytes exceeds the limit of %d bytes (model %s needs exactly %d)", r.ContentLength, limit, m.ID(), want))
		return
	case r.ContentLength >= 0 && want > 0 && r.ContentLength != want:
		s.fail(w, r, hegate.E(op, hegate.KindInvalid, nil, "key set is %d bytes; model %s needs exactly %d", r.ContentLength, m.ID(), want))
		return
	}

	ks, created, err := s.svc.UploadKeySet(ctx, p, service.UploadKeySetParams{Model: m, Body: r.Body, Limit: limit})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", keySetPath(ks.ID))
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, keySetView(ks))
}

func (s *Server) listKeySets(w http.ResponseWriter, r *http.Request) {
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list, err := s.svc.ListKeySets(r.Context(), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.KeySetList{KeySets: make([]api.KeySet, 0, len(list))}
	for _, ks := range list {
		out.KeySets = append(out.KeySets, keySetView(ks))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getKeySet(w http.ResponseWriter, r *http.Request) {
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ks, err := s.svc.GetKeySet(r.Context(), p, hegate.KeySetID(chi.URLParam(r, "id")))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, keySetView(ks))
}

func (s *Server) deleteKeySet(w http.ResponseWriter, r *http.Request) {
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.svc.DeleteKeySet(r.Context(), p, hegate.KeySetID(chi.URLParam(r, "id"))); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

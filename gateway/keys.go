package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime/debug"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/he"
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

	info, blob, err := storeKeySet(ctx, s.cfg.Blobs, m.Model, r.Body, limit)
	if err != nil {
		s.fail(w, r, wrap(err, "uploading key set for model %s", m.ID()))
		return
	}
	ks, created, err := s.cfg.Store.PutKeySet(ctx, storage.KeySet{
		ID:        hegate.KeySetID(blob.Key),
		TenantID:  p.Tenant,
		Model:     m.KeyID(),
		ParamsID:  info.ParamsID,
		SizeBytes: blob.Size,
		BlobKey:   blob.Key,
	})
	if err != nil {
		dropUnrecorded(ctx, s.cfg.Store, s.cfg.Blobs, s.metrics, s.log, blob.Key)
		s.fail(w, r, hegate.E(op, hegate.KindInternal, fmt.Errorf("recording key set %s: %w", blob.Key, err), ""))
		return
	}
	if ks.Model != m.KeyID() {
		s.fail(w, r, hegate.E(op, hegate.KindConflict, nil, "key set %s is already registered for model %s", ks.ID, ks.Model))
		return
	}
	w.Header().Set("Location", keySetPath(ks.ID))
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, keySetView(ks))
}

// storeKeySet tees body into blobs.Put and into m.CheckKeySet, which runs in
// a goroutine behind an io.Pipe. The reader Put consumes returns the
// checker's verdict before it returns EOF, so a key set the checker rejects
// never becomes a stored blob. The checker's rejection wins over Put's error.
func storeKeySet(ctx context.Context, blobs storage.Blobs, m *he.Model, body io.Reader, limit int64) (he.KeySetInfo, storage.BlobInfo, error) {
	pr, pw := io.Pipe()
	v := &checkingReader{src: body, pw: pw, done: make(chan struct{})}
	go func() {
		defer close(v.done)
		defer func() {
			// A checker bug must not take the gateway down with it.
			if p := recover(); p != nil {
				v.err = fmt.Errorf("key-set checker panicked: %v\n%s", p, debug.Stack())
				pr.CloseWithError(errCheckerDone)
			}
		}()
		v.info, v.err = m.CheckKeySet(pr)
		// Unblock a pending Write: later writes fail.
		pr.CloseWithError(errCheckerDone)
	}()
	blob, putErr := blobs.Put(ctx, v, limit)
	pw.CloseWithError(errUploadEnded) // stops the checker if it still reads
	<-v.done
	if v.rejected != nil {
		return he.KeySetInfo{}, storage.BlobInfo{}, v.rejected
	}
	if putErr != nil {
		if isMaxBytes(putErr) || errors.Is(putErr, storage.ErrTooLarge) {
			return he.KeySetInfo{}, storage.BlobInfo{}, hegate.E("keys.upload", hegate.KindTooLarge, putErr, "key set exceeds the limit of %d bytes", limit)
		}
		return he.KeySetInfo{}, storage.BlobInfo{}, fmt.Errorf("storing key set: %w", putErr)
	}
	if v.err != nil || v.final != io.EOF {
		// Unreachable: Put only succeeds after the reader saw the checker
		// accept. Keep the invariant anyway.
		_ = blobs.Delete(context.WithoutCancel(ctx), blob.Key)
		return he.KeySetInfo{}, storage.BlobInfo{}, fmt.Errorf("key-set check did not complete: %w", v.err)
	}
	return v.info, blob, nil
}

// Pipe close reasons of a key-set upload.
var (
	// errUploadEnded stops a checker that still reads when the upload is over.
	errUploadEnded = errors.New("key-set upload ended")
	// errCheckerDone fails writes after the checker returned.
	errCheckerDone = errors.New("key-set checker returned")
)

// checkingReader feeds what it reads from src to a checker through pw, and
// returns the checker's verdict instead of EOF.
type checkingReader struct {
	src io.Reader
	pw  *io.PipeWriter

	done chan struct{} // closed when the checker returned
	info he.KeySetInfo // valid after done
	err  error         // the checker's verdict, valid after done

	rejected error // the verdict this reader returned to Put, if it was a rejection
	final    error // what every later Read returns
}

// Read reads from src and feeds the checker; at the end of src it returns
// the checker's rejection, or EOF once the checker accepted.
func (v *checkingReader) Read(p []byte) (int, error) {
	if v.final != nil {
		return 0, v.final
	}
	n, err := v.src.Read(p)
	if n > 0 {
		if _, werr := v.pw.Write(p[:n]); werr != nil {
			// The checker stopped reading: it rejected the key set, or
			// accepted it before its end.
			<-v.done
			if v.err == nil {
				return 0, v.reject(hegate.E("keys.upload", hegate.KindInvalid, nil, "key set has bytes after its end"))
			}
			return 0, v.reject(v.err)
		}
	}
	switch {
	case err == io.EOF:
		_ = v.pw.Close()
		<-v.done
		if v.err != nil {
			return 0, v.reject(v.err)
		}
		v.final = io.EOF
		return n, io.EOF
	case err != nil:
		v.pw.CloseWithError(err)
		v.final = err
		return n, err
	}
	return n, nil
}

// reject records the checker's verdict as the reader's final error. A
// verdict of KindInternal (the checker failed for a reason that is not in
// the key set) is not the client's fault and is left to Put's error.
func (v *checkingReader) reject(verdict error) error {
	v.final = verdict
	if hegate.KindOf(verdict) != hegate.KindInternal {
		v.rejected = verdict
	}
	return verdict
}

func (s *Server) listKeySets(w http.ResponseWriter, r *http.Request) {
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list, err := s.cfg.Store.ListKeySets(r.Context(), p.Tenant)
	if err != nil {
		s.fail(w, r, hegate.E("keys.list", hegate.KindInternal, fmt.Errorf("listing key sets: %w", err), ""))
		return
	}
	out := api.KeySetList{KeySets: make([]api.KeySet, 0, len(list))}
	for _, ks := range list {
		out.KeySets = append(out.KeySets, keySetView(ks))
	}
	writeJSON(w, http.StatusOK, out)
}

// keySetTarget returns the caller's tenant and the checked {id} of a
// key-set route.
func keySetTarget(r *http.Request, op string) (hegate.TenantID, hegate.KeySetID, error) {
	p, err := principal(r)
	if err != nil {
		return "", "", err
	}
	id := chi.URLParam(r, "id")
	if !validKeySetID(id) {
		return "", "", hegate.E(op, hegate.KindInvalid, nil, "key set id %q is not 64 lowercase hex digits", truncate(id, 80))
	}
	return p.Tenant, hegate.KeySetID(id), nil
}

func (s *Server) getKeySet(w http.ResponseWriter, r *http.Request) {
	const op = "keys.get"
	tenant, id, err := keySetTarget(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ks, err := s.cfg.Store.GetKeySet(r.Context(), tenant, id)
	if err != nil {
		s.fail(w, r, notFound(op, err, "key set %s not found", id))
		return
	}
	writeJSON(w, http.StatusOK, keySetView(ks))
}

func (s *Server) deleteKeySet(w http.ResponseWriter, r *http.Request) {
	const op = "keys.delete"
	tenant, id, err := keySetTarget(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	free, err := s.cfg.Store.DeleteKeySet(r.Context(), tenant, id)
	if err != nil {
		s.fail(w, r, notFound(op, err, "key set %s not found", id))
		return
	}
	if free != "" {
		// No other tenant's key set shares the blob: delete it, even if
		// the client goes away now, since nothing else will. A failure
		// is logged and counted; the record is gone either way.
		ctx := context.WithoutCancel(r.Context())
		log := s.log.With("request_id", RequestIDFromContext(ctx), "key_set_id", id)
		_, _ = deleteBlobs(ctx, s.cfg.Blobs, s.metrics, log, reasonKeySetDeleted, []string{free})
	}
	w.WriteHeader(http.StatusNoContent)
}

// notFound gives storage.ErrNotFound a client-safe detail and marks any
// other store error internal.
func notFound(op string, err error, format string, args ...any) error {
	if errors.Is(err, storage.ErrNotFound) {
		return hegate.E(op, hegate.KindNotFound, err, format, args...)
	}
	return hegate.E(op, hegate.KindInternal, err, "")
}

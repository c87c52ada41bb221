package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"unicode/utf8"

	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/he"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// ReasonKeySetDeleted is the DeleteBlobs reason of a deleted key set's blob.
const ReasonKeySetDeleted = "key_set_deleted"

// ValidKeySetID reports whether id is a key-set id (64 lowercase hex
// digits: a SHA-256), so that garbage never reaches SQL.
func ValidKeySetID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ListKeySets lists the tenant's key sets. Every principal of the tenant
// may: devices upload and use them.
func (s *Service) ListKeySets(ctx context.Context, p Principal) ([]storage.KeySet, error) {
	const op = "keys.list"
	list, err := s.store.ListKeySets(ctx, p.Tenant)
	if err != nil {
		return nil, unavailable(op, err)
	}
	return list, nil
}

// GetKeySet returns one of the tenant's key sets.
func (s *Service) GetKeySet(ctx context.Context, p Principal, id hegate.KeySetID) (storage.KeySet, error) {
	const op = "keys.get"
	if !ValidKeySetID(string(id)) {
		return storage.KeySet{}, hegate.E(op, hegate.KindInvalid, nil, "key set id %q is not 64 lowercase hex digits", truncate(string(id), 80))
	}
	ks, err := s.store.GetKeySet(ctx, p.Tenant, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.KeySet{}, notFound(op, err, "key set %s not found", id)
	}
	if err != nil {
		return storage.KeySet{}, unavailable(op, err)
	}
	return ks, nil
}

// DeleteKeySet deletes one of the tenant's key sets, and its blob when no
// other tenant's key set shares it. A viewer may not.
func (s *Service) DeleteKeySet(ctx context.Context, p Principal, id hegate.KeySetID) error {
	const op = "keys.delete"
	if !ValidKeySetID(string(id)) {
		return hegate.E(op, hegate.KindInvalid, nil, "key set id %q is not 64 lowercase hex digits", truncate(string(id), 80))
	}
	if p.Role == RoleViewer {
		return s.denied(ctx, p, "keyset.delete", string(id), p.requireAdmin(op))
	}
	free, err := s.store.DeleteKeySet(ctx, p.Tenant, id)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound(op, err, "key set %s not found", id)
	}
	if err != nil {
		return unavailable(op, err)
	}
	s.audit(ctx, p, "keyset.delete", string(id), nil)
	if free != "" {
		// Nothing else names the blob: delete it even if the client goes
		// away now. The record is gone either way.
		s.deleteBlobs(context.WithoutCancel(ctx), ReasonKeySetDeleted, []string{free})
	}
	return nil
}

// truncate cuts s to at most n bytes (and "..."), at a character
// boundary, for a message or a bounded field.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// UploadKeySetParams are the inputs of UploadKeySet.
type UploadKeySetParams struct {
	Model catalog.Model
	Body  io.Reader
	// Limit bounds the bytes read from Body.
	Limit int64
}

// UploadKeySet streams a key set into the blob store while the model
// checks it; only a key set that passed the check is stored and recorded.
// created is false when the tenant already had it. A viewer may not.
func (s *Service) UploadKeySet(ctx context.Context, p Principal, in UploadKeySetParams) (storage.KeySet, bool, error) {
	const op = "keys.upload"
	m := in.Model
	if p.Role == RoleViewer {
		return storage.KeySet{}, false, s.denied(ctx, p, "keyset.upload", string(m.KeyID()), p.requireAdmin(op))
	}
	return s.putKeySet(ctx, p, m, in.Body, in.Limit)
}

// putKeySet is UploadKeySet after the role check: the key set streamed
// from body, checked, stored and recorded, audited as "keyset.upload".
func (s *Service) putKeySet(ctx context.Context, p Principal, m catalog.Model, body io.Reader, limit int64) (storage.KeySet, bool, error) {
	const op = "keys.upload"
	info, blob, err := storeKeySet(ctx, s.blobs, m.Model, body, limit)
	if err != nil {
		return storage.KeySet{}, false, wrap(err, "uploading key set for model %s", m.ID())
	}
	ks, created, err := s.store.PutKeySet(ctx, storage.KeySet{
		ID:        hegate.KeySetID(blob.Key),
		TenantID:  p.Tenant,
		Model:     m.KeyID(),
		ParamsID:  info.ParamsID,
		SizeBytes: blob.Size,
		BlobKey:   blob.Key,
	})
	if err != nil {
		s.dropUnrecorded(ctx, blob.Key)
		return storage.KeySet{}, false, hegate.E(op, hegate.KindInternal, fmt.Errorf("recording key set %s: %w", blob.Key, err), "")
	}
	if ks.Model != m.KeyID() {
		return storage.KeySet{}, false, hegate.E(op, hegate.KindConflict, nil, "key set %s is already registered for model %s", ks.ID, ks.Model)
	}
	if created {
		s.audit(ctx, p, "keyset.upload", string(ks.ID), map[string]any{"model": ks.Model, "bytes": ks.SizeBytes})
	}
	return ks, created, nil
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

// isMaxBytes reports whether err is net/http's body-limit error: the
// front door's limit cut the upload short.
func isMaxBytes(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

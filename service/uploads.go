package service

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/storage"
)

// Resumable key-set uploads: a key set of a bootstrapped model is 1 to
// 2.5 GB, too much to send again from the start when a connection drops.
// CreateUpload records an upload of the model's exact key-set size;
// AppendUpload adds one chunk at the recorded offset, checked against the
// SHA-256 its sender announced, and at the last byte validates the whole
// file through the same path as UploadKeySet (the model's CheckKeySet, a
// content-addressed blob, the key-set record). The bytes wait in a
// storage.Parts store, never in memory or in the database.

const (
	// UploadTTL is how long an upload lives without a chunk.
	UploadTTL = 24 * time.Hour
	// MaxUploadChunk bounds the bytes of one AppendUpload.
	MaxUploadChunk = api.MaxUploadChunk
	// sweepUploadsBatch is how many expired uploads one listing returns.
	sweepUploadsBatch = 100
	// uploadSweepEvery is how often CreateUpload sweeps expired uploads
	// itself, so that they go even where no UploadSweeper runs.
	uploadSweepEvery = time.Hour
)

// MaxOpenUploads bounds the resumable uploads a tenant has open at once:
// their partial bytes count against no quota until they complete.
const MaxOpenUploads = 4

// CreateUploadParams are the inputs of CreateUpload.
type CreateUploadParams struct {
	Model catalog.Model
	// Size is the key set's size in bytes: exactly the model's
	// Manifest().KeySetBytes (when the manifest states it), at most Limit.
	Size  int64
	Limit int64
}

// CreateUpload starts a resumable upload of a key set for in.Model. A
// viewer may not. Outcomes: the upload at offset 0; KindInvalid if the
// size is not the model's key-set size; KindTooLarge beyond Limit;
// KindUnavailable if this gateway keeps no partial uploads.
func (s *Service) CreateUpload(ctx context.Context, p Principal, in CreateUploadParams) (storage.KeySetUpload, error) {
	const op = "keys.upload.create"
	m := in.Model
	if p.Role == RoleViewer {
		return storage.KeySetUpload{}, s.denied(ctx, p, "keyset.upload.create", string(m.KeyID()), p.requireAdmin(op))
	}
	if err := p.requireTenant(op); err != nil {
		return storage.KeySetUpload{}, err
	}
	if s.parts == nil {
		return storage.KeySetUpload{}, hegate.E(op, hegate.KindUnavailable, nil, "resumable uploads are not available on this gateway: upload the key set in one request")
	}
	s.sweepUploadsNow(ctx)
	want := m.Manifest().KeySetBytes
	switch {
	case in.Size <= 0:
		return storage.KeySetUpload{}, hegate.E(op, hegate.KindInvalid, nil, "size is %d bytes; want the key set's size in bytes (model %s needs exactly %d)", in.Size, m.ID(), want)
	case want > 0 && in.Size != want:
		return storage.KeySetUpload{}, hegate.E(op, hegate.KindInvalid, nil, "size is %d bytes; model %s needs a key set of exactly %d bytes", in.Size, m.ID(), want)
	case in.Limit > 0 && in.Size > in.Limit:
		return storage.KeySetUpload{}, hegate.E(op, hegate.KindTooLarge, nil, "key set of %d bytes exceeds the limit of %d bytes", in.Size, in.Limit)
	}
	// Partial bytes count against no quota: bound how many a tenant keeps.
	switch open, err := s.store.CountKeySetUploads(ctx, p.Tenant); {
	case err != nil:
		return storage.KeySetUpload{}, unavailable(op, err)
	case open >= MaxOpenUploads:
		return storage.KeySetUpload{}, hegate.E(op, hegate.KindConflict, nil, "the tenant has %d resumable uploads open, the most it may: finish or abort one (DELETE %s/{id}) or let it expire", open, api.PathKeyUploads)
	}
	u, err := s.store.CreateKeySetUpload(ctx, storage.CreateKeySetUploadParams{
		TenantID: p.Tenant, Model: m.Name, ModelVersion: m.Version, Size: in.Size, ExpiresAt: s.now().Add(UploadTTL),
	})
	if err != nil {
		return storage.KeySetUpload{}, unavailable(op, err)
	}
	if err := s.parts.CreatePart(ctx, u.ID); err != nil {
		_ = s.store.DeleteKeySetUpload(context.WithoutCancel(ctx), p.Tenant, u.ID)
		return storage.KeySetUpload{}, hegate.E(op, hegate.KindInternal, fmt.Errorf("creating the part of upload %s: %w", u.ID, err), "")
	}
	s.audit(ctx, p, "keyset.upload.create", string(u.ID), map[string]any{"model": m.KeyID(), "bytes": u.Size})
	return u, nil
}

// AppendUploadParams are the inputs of AppendUpload.
type AppendUploadParams struct {
	ID storage.UploadID
	// Offset is where the sender believes the upload stands; it must be
	// the recorded offset.
	Offset int64
	// SHA256 is the digest the sender announced for Body (32 bytes).
	SHA256 []byte
	// Body is the chunk, at most MaxUploadChunk bytes and no more than
	// the upload still lacks.
	Body io.Reader
}

// AppendResult is what AppendUpload did.
type AppendResult struct {
	// Upload is the upload after the chunk. When it completed, its Offset
	// is its Size and it no longer exists.
	Upload storage.KeySetUpload
	// KeySet is the stored key set once the upload completed, nil before.
	KeySet *storage.KeySet
	// Created is false when the tenant already had that key set.
	Created bool
}

// AppendUpload appends one chunk to one of the tenant's uploads, and at
// the last byte validates and stores the key set. A viewer may not.
// Outcomes:
//   - the new offset (and the key set, when complete);
//   - KindNotFound for a missing, expired or another tenant's upload;
//   - KindConflict if in.Offset is not the recorded offset (the detail
//     names it) or another chunk of the upload is being written;
//   - KindInvalid if the chunk's digest does not match what arrived, the
//     body ended early or would pass the upload's size: the bytes of this
//     chunk are dropped and the offset stays;
//   - at completion, the key-set check's verdict (KindInvalid naming the
//     bad record): the upload is removed and nothing is stored.
func (s *Service) AppendUpload(ctx context.Context, p Principal, in AppendUploadParams) (AppendResult, error) {
	const op = "keys.upload.append"
	if p.Role == RoleViewer {
		return AppendResult{}, s.denied(ctx, p, "keyset.upload.append", string(in.ID), p.requireAdmin(op))
	}
	if len(in.SHA256) != sha256.Size {
		return AppendResult{}, hegate.E(op, hegate.KindInvalid, nil, "a chunk needs its SHA-256 digest (Content-Digest: sha-256=:<base64>:)")
	}
	// The tenant's own upload first: another tenant's id answers 404,
	// busy or not.
	if _, err := s.liveUpload(ctx, op, p, in.ID); err != nil {
		return AppendResult{}, err
	}
	unlock, err := s.lockUpload(op, in.ID)
	if err != nil {
		return AppendResult{}, err
	}
	defer unlock()
	u, err := s.liveUpload(ctx, op, p, in.ID)
	if err != nil {
		return AppendResult{}, err
	}
	if in.Offset != u.Offset {
		return AppendResult{Upload: u}, hegate.E(op, hegate.KindConflict, nil, "Upload-Offset is %d but upload %s stands at offset %d: resume from %d", in.Offset, u.ID, u.Offset, u.Offset)
	}
	if u.Offset == u.Size {
		// Every byte arrived before, but the check did not finish (the
		// process stopped, or the store failed): an empty chunk finishes it.
		if n, _ := io.Copy(io.Discard, io.LimitReader(in.Body, 1)); n > 0 {
			return AppendResult{Upload: u}, hegate.E(op, hegate.KindInvalid, nil, "upload %s already has all its %d bytes: send an empty chunk at offset %d to finish it", u.ID, u.Size, u.Size)
		}
		return s.finishUpload(ctx, p, u)
	}

	limit := min(u.Size-u.Offset, MaxUploadChunk)
	h := sha256.New()
	n, err := s.parts.AppendPart(ctx, u.ID, u.Offset, io.TeeReader(in.Body, h), limit)
	switch {
	case errors.Is(err, storage.ErrTooLarge):
		return AppendResult{Upload: u}, hegate.E(op, hegate.KindInvalid, err, "the chunk at offset %d has more than the %d bytes upload %s still takes (size %d, chunks of at most %d bytes); nothing was kept, the offset stays %d", u.Offset, limit, u.ID, u.Size, int64(MaxUploadChunk), u.Offset)
	case isMaxBytes(err):
		return AppendResult{Upload: u}, hegate.E(op, hegate.KindTooLarge, err, "a chunk is at most %d bytes; nothing was kept, the offset stays %d", int64(MaxUploadChunk), u.Offset)
	case err != nil && hegate.KindOf(err) == hegate.KindInvalid:
		// The body could not be read whole (it ended early, stalled).
		return AppendResult{Upload: u}, hegate.E(op, hegate.KindInvalid, err, "the chunk at offset %d did not arrive whole, so its digest cannot match; nothing was kept, the offset stays %d", u.Offset, u.Offset)
	case errors.Is(err, storage.ErrConflict):
		// The partial holds fewer bytes than the record says (another
		// replica truncated it, or the disk lost them): the upload cannot
		// continue. Remove it so the sender starts again at once rather
		// than failing until it expires.
		s.removeUpload(ctx, p.Tenant, u.ID)
		return AppendResult{}, hegate.E(op, hegate.KindConflict, err, "upload %s lost bytes it had accepted (its partial is shorter than offset %d) and is removed: start the upload again", u.ID, u.Offset)
	case err != nil:
		return AppendResult{Upload: u}, hegate.E(op, hegate.KindInternal, fmt.Errorf("appending to upload %s: %w", u.ID, err), "")
	}
	if sum := h.Sum(nil); subtle.ConstantTimeCompare(sum, in.SHA256) != 1 {
		if err := s.parts.TruncatePart(context.WithoutCancel(ctx), u.ID, u.Offset); err != nil {
			// The next chunk truncates to the recorded offset first.
			s.log.ErrorContext(ctx, "dropping a refused chunk", logAttrs(p, "upload", string(u.ID), "error", err.Error())...)
		}
		return AppendResult{Upload: u}, hegate.E(op, hegate.KindInvalid, nil,
			"the chunk's digest does not match: Content-Digest says sha-256=:%s: but the %d bytes received at offset %d hash to sha-256=:%s:; nothing was kept, the offset stays %d",
			base64.StdEncoding.EncodeToString(in.SHA256), n, u.Offset, base64.StdEncoding.EncodeToString(sum), u.Offset)
	}
	if n == 0 {
		// It would only push the expiry back, keeping the partial alive
		// without progress.
		return AppendResult{Upload: u}, hegate.E(op, hegate.KindInvalid, nil, "an empty chunk at offset %d adds nothing: upload %s still lacks %d bytes", u.Offset, u.ID, u.Size-u.Offset)
	}
	next, err := s.store.AdvanceKeySetUpload(ctx, p.Tenant, u.ID, u.Offset, u.Offset+n, s.now().Add(UploadTTL))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return AppendResult{}, notFound(op, err, "upload %s not found (it was aborted or expired)", u.ID)
	case errors.Is(err, storage.ErrConflict):
		// Another gateway moved it meanwhile: its bytes are the part's now.
		return AppendResult{Upload: u}, hegate.E(op, hegate.KindConflict, err, "upload %s moved on while this chunk arrived: ask for its offset and resume", u.ID)
	case err != nil:
		_ = s.parts.TruncatePart(context.WithoutCancel(ctx), u.ID, u.Offset)
		return AppendResult{Upload: u}, unavailable(op, err)
	}
	if next.Offset < next.Size {
		return AppendResult{Upload: next}, nil
	}
	return s.finishUpload(ctx, p, next)
}

// finishUpload validates and stores the assembled key set of u. A key
// set the check refuses removes the upload; a failure that is not the key
// set's (the store, the blob store) keeps it, to be finished by an empty
// chunk at its last offset.
func (s *Service) finishUpload(ctx context.Context, p Principal, u storage.KeySetUpload) (AppendResult, error) {
	const op = "keys.upload.complete"
	m, err := s.catalog.Lookup(ctx, p.Tenant, u.Model, u.ModelVersion)
	if err != nil {
		if hegate.KindOf(err) == hegate.KindNotFound {
			s.removeUpload(ctx, p.Tenant, u.ID)
		}
		return AppendResult{Upload: u}, wrap(err, "completing upload %s", u.ID)
	}
	rc, err := s.parts.OpenPart(ctx, u.ID)
	if err != nil {
		return AppendResult{Upload: u}, hegate.E(op, hegate.KindInternal, fmt.Errorf("opening the part of upload %s: %w", u.ID, err), "")
	}
	ks, created, err := s.putKeySet(ctx, p, m, rc, u.Size)
	_ = rc.Close()
	if err != nil {
		switch hegate.KindOf(err) {
		case hegate.KindInternal, hegate.KindUnavailable:
		default:
			// The key set is bad: nothing of it stays.
			s.removeUpload(ctx, p.Tenant, u.ID)
			return AppendResult{}, wrap(err, "upload %s is complete but its key set was refused, and the upload is removed", u.ID)
		}
		return AppendResult{Upload: u}, wrap(err, "completing upload %s", u.ID)
	}
	s.removeUpload(ctx, p.Tenant, u.ID)
	return AppendResult{Upload: u, KeySet: &ks, Created: created}, nil
}

// removeUpload deletes an upload's record, then its bytes; false when the
// record could not be deleted.
func (s *Service) removeUpload(ctx context.Context, tenant hegate.TenantID, id storage.UploadID) bool {
	ctx = context.WithoutCancel(ctx)
	if err := s.store.DeleteKeySetUpload(ctx, tenant, id); err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.log.ErrorContext(ctx, "deleting an upload record; the upload sweeper will", "upload", string(id), "error", err.Error())
		return false
	}
	if err := s.parts.RemovePart(ctx, id); err != nil {
		s.log.ErrorContext(ctx, "removing an upload's part", "upload", string(id), "error", err.Error())
	}
	return true
}

// UploadStatus returns one of the tenant's uploads: its offset is where a
// sender resumes. Every principal of the tenant may. KindNotFound for a
// missing, expired or another tenant's upload.
func (s *Service) UploadStatus(ctx context.Context, p Principal, id storage.UploadID) (storage.KeySetUpload, error) {
	return s.liveUpload(ctx, "keys.upload.status", p, id)
}

// AbortUpload removes one of the tenant's uploads and its bytes. A viewer
// may not. KindNotFound for a missing or another tenant's upload.
func (s *Service) AbortUpload(ctx context.Context, p Principal, id storage.UploadID) error {
	const op = "keys.upload.abort"
	if p.Role == RoleViewer {
		return s.denied(ctx, p, "keyset.upload.abort", string(id), p.requireAdmin(op))
	}
	if _, err := s.liveUpload(ctx, op, p, id); err != nil {
		return err // another tenant's id answers 404, busy or not
	}
	unlock, err := s.lockUpload(op, id)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.liveUpload(ctx, op, p, id); err != nil {
		return err
	}
	s.removeUpload(ctx, p.Tenant, id)
	s.audit(ctx, p, "keyset.upload.abort", string(id), nil)
	return nil
}

// SweepUploads removes the uploads that expired before now (no chunk for
// UploadTTL), of every tenant, with their bytes, and returns how many. An
// upload a request is writing is left for the next sweep.
func (s *Service) SweepUploads(ctx context.Context, now time.Time) (int, error) {
	if s.parts == nil {
		return 0, nil
	}
	n := 0
	skipped := map[storage.UploadID]bool{}
	for {
		list, err := s.store.ListExpiredKeySetUploads(ctx, now, sweepUploadsBatch)
		if err != nil {
			return n, fmt.Errorf("listing expired uploads: %w", err)
		}
		progress := false
		for _, u := range list {
			if skipped[u.ID] {
				continue
			}
			unlock, err := s.lockUpload("keys.upload.sweep", u.ID)
			if err != nil {
				skipped[u.ID] = true
				continue
			}
			removed := s.removeUpload(ctx, u.TenantID, u.ID)
			unlock()
			if !removed {
				// Counting it as progress would list it again forever.
				skipped[u.ID] = true
				continue
			}
			n++
			progress = true
		}
		if len(list) < sweepUploadsBatch || !progress {
			return n, nil
		}
	}
}

// sweepUploadsNow runs SweepUploads at most once per uploadSweepEvery, on
// the way to creating an upload: what expired goes before more comes.
func (s *Service) sweepUploadsNow(ctx context.Context) {
	now := s.now()
	s.uploads.mu.Lock()
	due := now.Sub(s.uploads.swept) >= uploadSweepEvery
	if due {
		s.uploads.swept = now
	}
	s.uploads.mu.Unlock()
	if !due {
		return
	}
	if n, err := s.SweepUploads(context.WithoutCancel(ctx), now); err != nil {
		s.log.ErrorContext(ctx, "sweeping expired uploads", "error", err.Error())
	} else if n > 0 {
		s.log.InfoContext(ctx, "swept expired uploads", "uploads", n)
	}
}

// liveUpload reads one of the tenant's uploads that has not expired.
func (s *Service) liveUpload(ctx context.Context, op string, p Principal, id storage.UploadID) (storage.KeySetUpload, error) {
	if !storage.ValidUploadID(id) {
		return storage.KeySetUpload{}, hegate.E(op, hegate.KindNotFound, nil, "upload %q not found", truncate(string(id), 40))
	}
	u, err := s.store.GetKeySetUpload(ctx, p.Tenant, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.KeySetUpload{}, notFound(op, err, "upload %s not found", id)
	}
	if err != nil {
		return storage.KeySetUpload{}, unavailable(op, err)
	}
	if !s.now().Before(u.ExpiresAt) {
		return storage.KeySetUpload{}, hegate.E(op, hegate.KindNotFound, nil, "upload %s expired at %s (no chunk for %s): start again", id, u.ExpiresAt.UTC().Format(time.RFC3339), UploadTTL)
	}
	return u, nil
}

// uploadLocks holds the uploads a request of this process is writing.
type uploadLocks struct {
	mu    sync.Mutex
	busy  map[storage.UploadID]bool
	swept time.Time // the last sweepUploadsNow
}

// lockUpload claims an upload for one request of this process, or is
// KindConflict if another has it. (Across processes the conditional
// update of AdvanceKeySetUpload keeps the record right.)
func (s *Service) lockUpload(op string, id storage.UploadID) (func(), error) {
	l := &s.uploads
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.busy[id] {
		return nil, hegate.E(op, hegate.KindConflict, nil, "another request is writing upload %s: wait for it, then ask for the offset", id)
	}
	if l.busy == nil {
		l.busy = map[storage.UploadID]bool{}
	}
	l.busy[id] = true
	return func() {
		l.mu.Lock()
		delete(l.busy, id)
		l.mu.Unlock()
	}, nil
}

package blobfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hegate/hegate/storage"
)

// partsDir is the directory of the partial uploads, under the root. Its
// name is not a blob directory's (two hex digits), so ListBlobs skips it,
// and RemoveTemp leaves it alone.
const partsDir = ".uploads"

var _ storage.Parts = (*Store)(nil)

// partPath is where the part of a checked id lives.
func (s *Store) partPath(id storage.UploadID) string {
	return filepath.Join(s.root, partsDir, string(id))
}

func checkPart(id storage.UploadID) error {
	if !storage.ValidUploadID(id) {
		return fmt.Errorf("malformed upload id: %w", storage.ErrNotFound)
	}
	return nil
}

// CreatePart makes an empty part (mode 0600); ErrConflict if it exists.
func (s *Store) CreatePart(ctx context.Context, id storage.UploadID) error {
	if err := checkPart(id); err != nil {
		return fmt.Errorf("creating part: %w", err)
	}
	dir := filepath.Join(s.root, partsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating part %s: %w", id, err)
	}
	f, err := os.OpenFile(s.partPath(id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating part %s: %w", id, storage.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("creating part %s: %w", id, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("creating part %s: %w", id, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("creating part %s: syncing directory: %w", id, err)
	}
	return nil
}

// partCopyBuffer is the one buffer an append copies through.
const partCopyBuffer = 256 << 10

// AppendPart truncates the part to offset, appends at most limit bytes of
// r and syncs them; see storage.Parts. On any error the part is cut back
// to offset.
func (s *Store) AppendPart(ctx context.Context, id storage.UploadID, offset int64, r io.Reader, limit int64) (n int64, err error) {
	if err := checkPart(id); err != nil {
		return 0, fmt.Errorf("appending to part: %w", err)
	}
	if offset < 0 || limit < 0 {
		return 0, fmt.Errorf("appending to part %s: negative offset %d or limit %d", id, offset, limit)
	}
	f, err := os.OpenFile(s.partPath(id), os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("appending to part %s: %w", id, notFound(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("appending to part %s: %w", id, err)
	}
	if fi.Size() < offset {
		return 0, fmt.Errorf("appending to part %s: it has %d bytes, fewer than offset %d: %w", id, fi.Size(), offset, storage.ErrConflict)
	}
	if fi.Size() > offset {
		// A request that died mid-chunk left bytes the record never counted.
		if err := f.Truncate(offset); err != nil {
			return 0, fmt.Errorf("appending to part %s: truncating to %d: %w", id, offset, err)
		}
	}
	defer func() {
		if err != nil {
			n = 0
			_ = f.Truncate(offset)
			_ = f.Sync()
		}
	}()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, fmt.Errorf("appending to part %s: %w", id, err)
	}
	buf := make([]byte, partCopyBuffer)
	// Read one byte past the limit to tell "exactly limit" from "more".
	n, err = io.CopyBuffer(onlyWriter{f}, &ctxReader{ctx: ctx, r: io.LimitReader(r, limit+1)}, buf)
	if err != nil {
		return 0, fmt.Errorf("appending to part %s: %w", id, err)
	}
	if n > limit {
		return 0, fmt.Errorf("appending to part %s: more than %d bytes: %w", id, limit, storage.ErrTooLarge)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("appending to part %s: syncing: %w", id, err)
	}
	return n, nil
}

// onlyWriter hides *os.File's ReadFrom, so that io.CopyBuffer uses the
// bounded buffer it is given.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// TruncatePart cuts the part to size and syncs it.
func (s *Store) TruncatePart(ctx context.Context, id storage.UploadID, size int64) error {
	if err := checkPart(id); err != nil {
		return fmt.Errorf("truncating part: %w", err)
	}
	f, err := os.OpenFile(s.partPath(id), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("truncating part %s: %w", id, notFound(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("truncating part %s: %w", id, err)
	}
	if fi.Size() < size {
		return fmt.Errorf("truncating part %s: it has %d bytes, fewer than %d: %w", id, fi.Size(), size, storage.ErrConflict)
	}
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("truncating part %s: %w", id, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("truncating part %s: syncing: %w", id, err)
	}
	return nil
}

// OpenPart returns the part's content or ErrNotFound.
func (s *Store) OpenPart(ctx context.Context, id storage.UploadID) (io.ReadCloser, error) {
	if err := checkPart(id); err != nil {
		return nil, fmt.Errorf("opening part: %w", err)
	}
	f, err := os.Open(s.partPath(id))
	if err != nil {
		return nil, fmt.Errorf("opening part %s: %w", id, notFound(err))
	}
	return f, nil
}

// PartSize returns the part's length or ErrNotFound.
func (s *Store) PartSize(ctx context.Context, id storage.UploadID) (int64, error) {
	if err := checkPart(id); err != nil {
		return 0, fmt.Errorf("stat part: %w", err)
	}
	fi, err := os.Stat(s.partPath(id))
	if err != nil {
		return 0, fmt.Errorf("stat part %s: %w", id, notFound(err))
	}
	return fi.Size(), nil
}

// RemovePart removes the part; a missing part is not an error.
func (s *Store) RemovePart(ctx context.Context, id storage.UploadID) error {
	if err := checkPart(id); err != nil {
		return fmt.Errorf("removing part: %w", err)
	}
	if err := os.Remove(s.partPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing part %s: %w", id, err)
	}
	return nil
}

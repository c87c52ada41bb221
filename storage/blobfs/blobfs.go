// Package blobfs implements storage.Blobs on a local file system.
//
// Blobs are content-addressed: the key is the lowercase hex SHA-256 of the
// content and the file lives at root/ab/cd/<key>, where ab and cd are the
// key's first two and next two hex digits. A Put streams the content into a
// temporary file under root, hashing as it writes, fsyncs it and renames it
// into place; the rename is atomic, so a reader sees a whole blob or none.
// Temporary files are named ".put-*" at root and are removed on any error,
// including ctx cancellation and ErrTooLarge.
//
// Keys that are not 64 lowercase hex digits are answered with ErrNotFound,
// so no key can name a path outside the layout.
package blobfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hegate/hegate/storage"
)

// Store is a storage.Blobs in a directory.
type Store struct {
	root string
}

var _ storage.Blobs = (*Store)(nil)

// New returns a Store rooted at dir, creating the directory (mode 0700) if
// it does not exist.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("blobfs: directory is required")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blobfs: resolving %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("blobfs: creating %s: %w", abs, err)
	}
	return &Store{root: abs}, nil
}

// Put streams at most limit bytes from r into a new blob. If r has more,
// it returns an error wrapping storage.ErrTooLarge and stores nothing.
// Content that is already stored is not written again.
func (s *Store) Put(ctx context.Context, r io.Reader, limit int64) (info storage.BlobInfo, err error) {
	if limit < 0 {
		return storage.BlobInfo{}, fmt.Errorf("putting blob: negative limit %d", limit)
	}
	tmp, err := os.CreateTemp(s.root, ".put-*")
	if err != nil {
		return storage.BlobInfo{}, fmt.Errorf("putting blob: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()

	h := sha256.New()
	// Read one byte past the limit to tell "exactly limit" from "more".
	n, err := io.Copy(io.MultiWriter(tmp, h), &ctxReader{ctx: ctx, r: io.LimitReader(r, limit+1)})
	if err != nil {
		return storage.BlobInfo{}, fmt.Errorf("putting blob: %w", err)
	}
	if n > limit {
		return storage.BlobInfo{}, fmt.Errorf("putting blob: more than %d bytes: %w", limit, storage.ErrTooLarge)
	}
	if err := tmp.Sync(); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("putting blob: syncing: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("putting blob: closing: %w", err)
	}

	info = infoOf(h, n)
	final := s.path(info.Key)
	if _, err := os.Stat(final); err == nil {
		// Same content already stored: keep the existing file.
		_ = os.Remove(tmpName)
		return info, nil
	}
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("putting blob %s: %w", info.Key, err)
	}
	if err := ctx.Err(); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("putting blob %s: %w", info.Key, err)
	}
	if err := os.Rename(tmpName, final); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("putting blob %s: %w", info.Key, err)
	}
	if err := syncDir(dir); err != nil {
		// The blob is complete and visible; only its durability across a
		// crash is in doubt. Report it rather than remove a good blob.
		return storage.BlobInfo{}, fmt.Errorf("putting blob %s: syncing directory: %w", info.Key, err)
	}
	return info, nil
}

// Open returns the blob's content or ErrNotFound.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("opening blob: %w", err)
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, fmt.Errorf("opening blob %s: %w", key, notFound(err))
	}
	return f, nil
}

// Stat returns the blob's size and hash or ErrNotFound.
func (s *Store) Stat(ctx context.Context, key string) (storage.BlobInfo, error) {
	if err := checkKey(key); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("stat blob: %w", err)
	}
	fi, err := os.Stat(s.path(key))
	if err != nil {
		return storage.BlobInfo{}, fmt.Errorf("stat blob %s: %w", key, notFound(err))
	}
	info := storage.BlobInfo{Key: key, Size: fi.Size()}
	_, _ = hex.Decode(info.SHA256[:], []byte(key)) // checkKey vouches for it
	return info, nil
}

// Delete removes a blob; a missing blob is not an error. A malformed key is
// ErrNotFound.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("deleting blob: %w", err)
	}
	if err := os.Remove(s.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting blob %s: %w", key, err)
	}
	return nil
}

// path is where the blob with a checked key lives.
func (s *Store) path(key string) string {
	return filepath.Join(s.root, key[0:2], key[2:4], key)
}

func infoOf(h hash.Hash, n int64) storage.BlobInfo {
	info := storage.BlobInfo{Size: n}
	h.Sum(info.SHA256[:0])
	info.Key = hex.EncodeToString(info.SHA256[:])
	return info
}

// checkKey accepts exactly 64 lowercase hex digits.
func checkKey(key string) error {
	if len(key) != 2*sha256.Size {
		return fmt.Errorf("malformed key: %w", storage.ErrNotFound)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("malformed key: %w", storage.ErrNotFound)
		}
	}
	return nil
}

// notFound turns "no such file" into storage.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return storage.ErrNotFound
	}
	return err
}

// syncDir fsyncs a directory so a rename into it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

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
//
// ListBlobs lists the blobs with their modification times and RemoveTemp the
// temporary files a killed process left, for a sweeper of blobs that no
// database row names (gateway.OrphanSweeper). A Put of content that is
// already stored sets the blob's modification time to now, so that its
// modification time is always at least the time of the last Put of it.
package blobfs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	// Same content already stored: keep the existing file, but make it as
	// young as this Put, whose row is yet to be written (a sweeper of
	// unreferenced blobs leaves young blobs alone). If it went meanwhile,
	// this copy takes its place.
	now := time.Now()
	switch err := os.Chtimes(final, now, now); {
	case err == nil:
		_ = os.Remove(tmpName)
		return info, nil
	case !errors.Is(err, fs.ErrNotExist):
		return storage.BlobInfo{}, fmt.Errorf("putting blob %s: touching the stored copy: %w", info.Key, err)
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

var _ storage.BlobLister = (*Store)(nil)

// DeleteIfOlder deletes the blob if it was last written (or re-Put)
// before cutoff, and reports whether it did. It is safe against a Put of
// the same content at the same moment: the file is first renamed aside,
// so a Put from then on finds no file and stores its own copy; a Put that
// touched it before the rename made it young, and it is put back.
func (s *Store) DeleteIfOlder(ctx context.Context, key string, cutoff time.Time) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, fmt.Errorf("deleting blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	final := s.path(key)
	var b [8]byte
	_, _ = rand.Read(b[:])
	aside := filepath.Join(s.root, ".put-del-"+key+"-"+hex.EncodeToString(b[:]))
	if err := os.Rename(final, aside); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("deleting blob %s: %w", key, err)
	}
	st, err := os.Stat(aside)
	if err == nil && !st.ModTime().Before(cutoff) {
		// Re-Put meanwhile: restore it, unless that Put (or a later one)
		// has already stored a fresh copy in its place.
		if err := os.Link(aside, final); err != nil && !errors.Is(err, fs.ErrExist) {
			return false, fmt.Errorf("restoring blob %s: %w", key, err)
		}
		_ = os.Remove(aside)
		return false, nil
	}
	if err := os.Remove(aside); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("deleting blob %s: %w", key, err)
	}
	return true, nil
}

// ListBlobs calls fn for every stored blob, in no particular order, until
// fn returns an error (returned as is) or ctx ends; fn may delete blobs.
// Files that are not blobs in their place of the layout (temporary files
// included) are skipped; a blob deleted or added during the walk may or
// may not be listed.
func (s *Store) ListBlobs(ctx context.Context, fn func(storage.StoredBlob) error) error {
	err := filepath.WalkDir(s.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			rel, _ := filepath.Rel(s.root, path)
			if rel != "." && (len(d.Name()) != 2 || strings.Count(rel, string(filepath.Separator)) > 1) {
				return fs.SkipDir
			}
			return nil
		}
		key := d.Name()
		if checkKey(key) != nil || path != s.path(key) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(storage.StoredBlob{Key: key, Size: fi.Size(), Modified: fi.ModTime()}); err != nil {
			return &fnError{err}
		}
		return nil
	})
	var fe *fnError
	if errors.As(err, &fe) {
		return fe.err
	}
	if err != nil {
		return fmt.Errorf("listing blobs: %w", err)
	}
	return nil
}

// fnError carries an error of ListBlobs' fn out of the walk, unwrapped.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// BlobModTime returns a blob's modification time (see ListBlobs) or
// ErrNotFound.
func (s *Store) BlobModTime(ctx context.Context, key string) (time.Time, error) {
	if err := checkKey(key); err != nil {
		return time.Time{}, fmt.Errorf("stat blob: %w", err)
	}
	fi, err := os.Stat(s.path(key))
	if err != nil {
		return time.Time{}, fmt.Errorf("stat blob %s: %w", key, notFound(err))
	}
	return fi.ModTime(), nil
}

// RemoveTemp removes the temporary files of Puts (".put-*" at the root)
// last written before before, which only a process killed during a Put
// leaves behind, and returns how many it removed and their bytes.
func (s *Store) RemoveTemp(ctx context.Context, before time.Time) (n int, bytes int64, err error) {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return 0, 0, fmt.Errorf("listing temporary files: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return n, bytes, err
		}
		if e.IsDir() || !strings.HasPrefix(e.Name(), ".put-") {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(before) {
			continue
		}
		if err := os.Remove(filepath.Join(s.root, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		n++
		bytes += fi.Size()
	}
	if len(errs) > 0 {
		return n, bytes, fmt.Errorf("removing temporary files: %w", errors.Join(errs...))
	}
	return n, bytes, nil
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

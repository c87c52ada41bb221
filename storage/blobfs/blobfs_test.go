package blobfs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/blobfs"
	"github.com/hegate/hegate/storage/storagetest"
)

func TestBlobs(t *testing.T) {
	t.Parallel()
	storagetest.ExerciseBlobs(t, func(t *testing.T) storage.Blobs {
		dir := t.TempDir()
		s, err := blobfs.New(dir)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		// Whatever the test did, no temporary file may be left behind.
		t.Cleanup(func() { assertNoTemp(t, dir) })
		return s
	})
}

// assertNoTemp fails if any file under dir is not a blob at its place.
func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		name := d.Name()
		if len(name) != 64 || rel != filepath.Join(name[0:2], name[2:4], name) {
			t.Errorf("stray file %s", rel)
		}
		return nil
	})
	if err != nil {
		t.Errorf("walking %s: %v", dir, err)
	}
}

func TestLayout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := blobfs.New(dir)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	info, err := s.Put(t.Context(), strings.NewReader("hello"), 5)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	const want = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	if info.Key != want {
		t.Fatalf("key %s, want %s", info.Key, want)
	}
	b, err := os.ReadFile(filepath.Join(dir, "2c", "f2", want))
	if err != nil || string(b) != "hello" {
		t.Fatalf("file at root/2c/f2/<key>: %q, %v", b, err)
	}
}

func TestNewFails(t *testing.T) {
	t.Parallel()
	if _, err := blobfs.New(""); err == nil {
		t.Fatal("New(\"\") succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := blobfs.New(filepath.Join(file, "sub")); err == nil {
		t.Fatal("New under a regular file succeeded")
	}
}

// TestListBlobsAndTemp: ListBlobs lists the blobs with their modification times and
// nothing else; a Put of stored content makes it young again; RemoveTemp
// removes old temporary files only.
func TestListBlobsAndTemp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	s, err := blobfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	put := func(content string) storage.BlobInfo {
		t.Helper()
		info, err := s.Put(ctx, strings.NewReader(content), 100)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	a, b := put("a"), put("b")
	old := time.Now().Add(-2 * time.Hour)
	pathOf := func(key string) string { return filepath.Join(dir, key[0:2], key[2:4], key) }
	if err := os.Chtimes(pathOf(a.Key), old, old); err != nil {
		t.Fatal(err)
	}
	// Not blobs: a temporary file, old and new, and a stray file.
	for name, mod := range map[string]time.Time{".put-old": old, ".put-new": time.Now(), "stray": old} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	list := func() map[string]time.Time {
		t.Helper()
		got := map[string]time.Time{}
		if err := s.ListBlobs(ctx, func(f storage.StoredBlob) error {
			if f.Size != 1 {
				t.Errorf("blob %s: size %d", f.Key, f.Size)
			}
			got[f.Key] = f.Modified
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	got := list()
	if len(got) != 2 || !got[a.Key].Before(time.Now().Add(-time.Hour)) || got[b.Key].Before(time.Now().Add(-time.Minute)) {
		t.Fatalf("ListBlobs: %v; want %s two hours old and %s new", got, a.Key, b.Key)
	}
	put("a") // the same content again: young again
	if m := list()[a.Key]; m.Before(time.Now().Add(-time.Minute)) {
		t.Errorf("a blob Put again keeps its old modification time %v", m)
	}
	if mt, err := s.BlobModTime(ctx, a.Key); err != nil || mt.Before(time.Now().Add(-time.Minute)) {
		t.Errorf("BlobModTime = %v, %v", mt, err)
	}
	n, size, err := s.RemoveTemp(ctx, time.Now().Add(-time.Hour))
	if err != nil || n != 1 || size != int64(len("partial")) {
		t.Fatalf("RemoveTemp = %d, %d, %v; want 1, 7, nil", n, size, err)
	}
	for name, want := range map[string]bool{".put-old": false, ".put-new": true, "stray": true} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", name, err == nil, want)
		}
	}
}

// TestDeleteIfOlderRacesPut: whatever the interleaving of a Put of the
// same content and a DeleteIfOlder of its old copy, once Put has returned
// the blob is there (it was made young, or stored anew).
func TestDeleteIfOlderRacesPut(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := blobfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	content := []byte("a key set that two tenants upload")
	old := time.Now().Add(-2 * time.Hour)
	for i := range 200 {
		info, err := s.Put(ctx, strings.NewReader(string(content)), 1<<10)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(dir, info.Key[:2], info.Key[2:4], info.Key), old, old); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := s.Put(ctx, strings.NewReader(string(content)), 1<<10)
			done <- err
		}()
		if _, err := s.DeleteIfOlder(ctx, info.Key, time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, info.Key); err != nil {
			t.Fatalf("round %d: the blob a Put just stored is gone: %v", i, err)
		}
	}
	// Without a Put, an old blob goes and a young one stays.
	info, _ := s.Put(ctx, strings.NewReader("old"), 1<<10)
	_ = os.Chtimes(filepath.Join(dir, info.Key[:2], info.Key[2:4], info.Key), old, old)
	if gone, err := s.DeleteIfOlder(ctx, info.Key, time.Now().Add(-time.Hour)); err != nil || !gone {
		t.Fatalf("old blob: deleted %v, %v", gone, err)
	}
	info, _ = s.Put(ctx, strings.NewReader("young"), 1<<10)
	if gone, err := s.DeleteIfOlder(ctx, info.Key, time.Now().Add(-time.Hour)); err != nil || gone {
		t.Fatalf("young blob: deleted %v, %v", gone, err)
	}
}

func TestParts(t *testing.T) {
	t.Parallel()
	storagetest.ExerciseParts(t, func(t *testing.T) storage.Parts {
		dir := t.TempDir()
		s, err := blobfs.New(dir)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return s
	})
}

// TestPartsAreNotBlobs checks that a partial upload is neither listed as a
// blob nor removed as a Put's temporary file.
func TestPartsAreNotBlobs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := blobfs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const id storage.UploadID = "upl_bbbbbbbbbbbbbbbbbbbbbbbbbb"
	if err := s.CreatePart(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendPart(ctx, id, 0, strings.NewReader("partial"), 100); err != nil {
		t.Fatal(err)
	}
	if err := s.ListBlobs(ctx, func(b storage.StoredBlob) error {
		t.Errorf("ListBlobs listed %+v", b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n, _, err := s.RemoveTemp(ctx, time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("RemoveTemp = %d, %v; want 0, nil", n, err)
	}
	if n, err := s.PartSize(ctx, id); err != nil || n != 7 {
		t.Fatalf("PartSize = %d, %v; want 7", n, err)
	}
}

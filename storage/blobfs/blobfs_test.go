package blobfs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

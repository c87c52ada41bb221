package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hegate/hegate/storage"
)

// blobTest is one blob conformance test.
type blobTest struct {
	name string
	run  func(t *testing.T, ctx context.Context, blobs storage.Blobs)
}

// ExerciseBlobs runs the blob conformance suite. open must return a fresh,
// empty Blobs for each call; it is called once per subtest, from parallel
// subtests.
func ExerciseBlobs(t *testing.T, open func(t *testing.T) storage.Blobs) {
	t.Helper()
	for _, tc := range blobTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, t.Context(), open(t))
		})
	}
}

func keyOf(content []byte) string {
	h := sha256.Sum256(content)
	return hex.EncodeToString(h[:])
}

func readBlob(t *testing.T, ctx context.Context, blobs storage.Blobs, key string) []byte {
	t.Helper()
	rc, err := blobs.Open(ctx, key)
	noErr(t, "Open", err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	noErr(t, "reading blob", err)
	return b
}

// failingReader returns some bytes, then an error.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset")
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

var blobTests = []blobTest{
	{"ok/blob/round-trip", func(t *testing.T, ctx context.Context, blobs storage.Blobs) {
		content := bytes.Repeat([]byte("ciphertext "), 10_000)
		info, err := blobs.Put(ctx, bytes.NewReader(content), int64(len(content)))
		noErr(t, "Put", err)
		want := storage.BlobInfo{Key: keyOf(content), Size: int64(len(content)), SHA256: sha256.Sum256(content)}
		equal(t, "Put", info, want)
		st, err := blobs.Stat(ctx, info.Key)
		noErr(t, "Stat", err)
		equal(t, "Stat", st, want)
		if got := readBlob(t, ctx, blobs, info.Key); !bytes.Equal(got, content) {
			t.Fatalf("Open returned %d bytes, want the %d put", len(got), len(content))
		}
	}},
	{"ok/blob/empty", func(t *testing.T, ctx context.Context, blobs storage.Blobs) {
		info, err := blobs.Put(ctx, strings.NewReader(""), 0)
		noErr(t, "Put", err)
		if info.Key != keyOf(nil) || info.Size != 0 {
			t.Fatalf("Put(empty) = %+v", info)
		}
	}},
	{"ok/blob/dedup", func(t *testing.T, ctx context.Context, blobs storage.Blobs) {
		first, err := blobs.Put(ctx, strings.NewReader("same"), 100)
		noErr(t, "Put", err)
		second, err := blobs.Put(ctx, strings.NewReader("same"), 100)
		noErr(t, "second Put", err)
		equal(t, "second Put", second, first)
		if got := readBlob(t, ctx, blobs, first.Key); string(got) != "same" {
			t.Fatalf("Open = %q", got)
		}
	}},
	{"ok/blob/exactly-limit", func(t *testing.T, ctx context.Context, blobs storage.Blobs) {
		_, err := blobs.Put(ctx, strings.NewReader("12345"), 5)
		noErr(t, "Put of exactly limit bytes", err)
	}},
	{"ok/blob/delete", func(t *testing.T, ctx context.Context, blobs storage.Blobs) {
		info, err := blobs.Put(ctx, strings.NewReader("doomed"), 100)
		noErr(t, "Put", err)
		noErr(t, "Delete", blobs.Delete(ctx, info.Key))
		_, err = blobs.Stat(ctx, info.Key)
		wantErr(t, "Stat after Delete", err, storage.ErrNotFound)
		_, err = blobs.Open(ctx, info.Key)
		wantErr(t, "Open after Delete", err, storage.ErrNotFound)
		noErr(t, "second Delete", blobs.Delete(ctx, info.Key))
	}},
	{"fail/blob/too-large", func(t *testing.T, ctx context.Context, blobs storage.Blobs) {
		_, err := blobs.Put(ctx, strings.NewReader("123456"), 5)
		wantErr(t, "Put of limit+1 bytes", err, storage.ErrTooLarge)
		_, err = blobs.Stat(ctx, keyOf([]byte("123456")))
		wantErr(t, "Stat of the whole content", err, storage.ErrNotFound)
		_, err = blobs.Stat(ctx, keyOf([]byte("12345")))
		wantErr(t, "Stat of the first limit bytes", err, storage.ErrNotFound)
	}},
	{"fail/blob/reader-error", func(t *testing.T, ctx context.Context, blobs storage.Blobs) {
		if _, err := blobs.Put(ctx, &failingReader{n: 10}, 100); err == nil {
			t.Fatal("Put from a failing reader succeeded")
		}
		_, err := blobs.Stat(ctx, keyOf(make([]byte, 10)))
		wantErr(t, "Stat of the partial content", err, storage.ErrNotFound)
	}},
	{"fail/blob/cancelled", func(t *testing.T, ctx context.Context, blobs storage.Blobs) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := blobs.Put(cctx, strings.NewReader("late"), 100)
		wantErr(t, "Put with a cancelled context", err, context.Canceled)
		_, err = blobs.Stat(ctx, keyOf([]byte("late")))
		wantErr(t, "Stat", err, storage.ErrNotFound)
	}},
	{"fail/blob/missing", func(t *testing.T, ctx context.Context, blobs storage.Blobs) {
		key := keyOf([]byte("never stored"))
		_, err := blobs.Open(ctx, key)
		wantErr(t, "Open", err, storage.ErrNotFound)
		_, err = blobs.Stat(ctx, key)
		wantErr(t, "Stat", err, storage.ErrNotFound)
		noErr(t, "Delete of a missing blob", blobs.Delete(ctx, key))
	}},
	{"fail/blob/bad-key", func(t *testing.T, ctx context.Context, blobs storage.Blobs) {
		info, err := blobs.Put(ctx, strings.NewReader("x"), 10)
		noErr(t, "Put", err)
		for _, key := range []string{
			"",
			"abc",
			strings.ToUpper(info.Key),
			info.Key + "0",
			info.Key[:62] + "zz",
			"../../../../../../../../etc/passwd",
			"../" + info.Key[3:],
			info.Key[:2] + "/" + info.Key[3:],
		} {
			_, err := blobs.Open(ctx, key)
			wantErr(t, "Open("+key+")", err, storage.ErrNotFound)
			_, err = blobs.Stat(ctx, key)
			wantErr(t, "Stat("+key+")", err, storage.ErrNotFound)
			err = blobs.Delete(ctx, key)
			wantErr(t, "Delete("+key+")", err, storage.ErrNotFound)
		}
		_, err = blobs.Stat(ctx, info.Key)
		noErr(t, "Stat after bad deletes", err)
	}},
}

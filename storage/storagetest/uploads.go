package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate/storage"
)

func uploadParams(b bundle, size int64, expires time.Time) storage.CreateKeySetUploadParams {
	return storage.CreateKeySetUploadParams{TenantID: b.a.ID, Model: "mnist", ModelVersion: 0, Size: size, ExpiresAt: expires}
}

var uploadTests = []test{
	{"ok/upload/create-get-advance-delete", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		exp := clk.Now().Add(24 * time.Hour)
		u, err := b.store.CreateKeySetUpload(b.ctx, uploadParams(b, 100, exp))
		noErr(t, "CreateKeySetUpload", err)
		if !storage.ValidUploadID(u.ID) {
			t.Fatalf("id %q is not an upload id", u.ID)
		}
		want := storage.KeySetUpload{ID: u.ID, TenantID: b.a.ID, Model: "mnist", Size: 100, CreatedAt: clk.Now(), UpdatedAt: clk.Now(), ExpiresAt: exp}
		equal(t, "CreateKeySetUpload", u, want)
		got, err := b.store.GetKeySetUpload(b.ctx, b.a.ID, u.ID)
		noErr(t, "GetKeySetUpload", err)
		equal(t, "GetKeySetUpload", got, want)

		now := clk.advance(time.Minute)
		exp2 := now.Add(24 * time.Hour)
		got, err = b.store.AdvanceKeySetUpload(b.ctx, b.a.ID, u.ID, 0, 60, exp2)
		noErr(t, "AdvanceKeySetUpload", err)
		want.Offset, want.UpdatedAt, want.ExpiresAt = 60, now, exp2
		equal(t, "AdvanceKeySetUpload", got, want)
		got, err = b.store.AdvanceKeySetUpload(b.ctx, b.a.ID, u.ID, 60, 100, exp2)
		noErr(t, "AdvanceKeySetUpload to the end", err)
		equal(t, "offset at the end", got.Offset, int64(100))

		noErr(t, "DeleteKeySetUpload", b.store.DeleteKeySetUpload(b.ctx, b.a.ID, u.ID))
		_, err = b.store.GetKeySetUpload(b.ctx, b.a.ID, u.ID)
		wantErr(t, "GetKeySetUpload after delete", err, storage.ErrNotFound)
		wantErr(t, "second DeleteKeySetUpload", b.store.DeleteKeySetUpload(b.ctx, b.a.ID, u.ID), storage.ErrNotFound)
	}},
	{"fail/upload/other-tenant", func(t *testing.T, b bundle) {
		u, err := b.store.CreateKeySetUpload(b.ctx, uploadParams(b, 10, time.Now().Add(time.Hour)))
		noErr(t, "CreateKeySetUpload", err)
		_, err = b.store.GetKeySetUpload(b.ctx, b.b.ID, u.ID)
		wantErr(t, "GetKeySetUpload of another tenant", err, storage.ErrNotFound)
		_, err = b.store.AdvanceKeySetUpload(b.ctx, b.b.ID, u.ID, 0, 5, time.Now().Add(time.Hour))
		wantErr(t, "AdvanceKeySetUpload of another tenant", err, storage.ErrNotFound)
		wantErr(t, "DeleteKeySetUpload of another tenant", b.store.DeleteKeySetUpload(b.ctx, b.b.ID, u.ID), storage.ErrNotFound)
		got, err := b.store.GetKeySetUpload(b.ctx, b.a.ID, u.ID)
		noErr(t, "GetKeySetUpload by its tenant", err)
		equal(t, "offset untouched", got.Offset, int64(0))
	}},
	{"fail/upload/advance-conflict", func(t *testing.T, b bundle) {
		exp := time.Now().Add(time.Hour)
		u, err := b.store.CreateKeySetUpload(b.ctx, uploadParams(b, 10, exp))
		noErr(t, "CreateKeySetUpload", err)
		_, err = b.store.AdvanceKeySetUpload(b.ctx, b.a.ID, u.ID, 3, 5, exp)
		wantErr(t, "AdvanceKeySetUpload from a wrong offset", err, storage.ErrConflict)
		_, err = b.store.AdvanceKeySetUpload(b.ctx, b.a.ID, u.ID, 0, 11, exp)
		wantErr(t, "AdvanceKeySetUpload past the size", err, storage.ErrConflict)
		_, err = b.store.AdvanceKeySetUpload(b.ctx, b.a.ID, u.ID, 0, -1, exp)
		if err == nil {
			t.Fatal("AdvanceKeySetUpload backwards: no error")
		}
		got, err := b.store.GetKeySetUpload(b.ctx, b.a.ID, u.ID)
		noErr(t, "GetKeySetUpload", err)
		equal(t, "offset after refused advances", got.Offset, int64(0))
	}},
	{"ok/upload/advance-once-of-two-racing", func(t *testing.T, b bundle) {
		exp := time.Now().Add(time.Hour)
		u, err := b.store.CreateKeySetUpload(b.ctx, uploadParams(b, 10, exp))
		noErr(t, "CreateKeySetUpload", err)
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			ok, confl int
		)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := b.store.AdvanceKeySetUpload(b.ctx, b.a.ID, u.ID, 0, int64(1+i), exp)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, storage.ErrConflict):
					confl++
				default:
					t.Errorf("AdvanceKeySetUpload: %v", err)
				}
			}()
		}
		wg.Wait()
		if ok != 1 || confl != 7 {
			t.Fatalf("%d advances won and %d conflicted; want 1 and 7", ok, confl)
		}
	}},
	{"fail/upload/create-invalid", func(t *testing.T, b bundle) {
		exp := time.Now().Add(time.Hour)
		for _, p := range []storage.CreateKeySetUploadParams{
			{TenantID: b.a.ID, Model: "", Size: 1, ExpiresAt: exp},
			{TenantID: b.a.ID, Model: "m", Size: 0, ExpiresAt: exp},
			{TenantID: b.a.ID, Model: "m", Size: 1, ModelVersion: -1, ExpiresAt: exp},
			{TenantID: b.a.ID, Model: "m", Size: 1},
		} {
			if _, err := b.store.CreateKeySetUpload(b.ctx, p); err == nil {
				t.Errorf("CreateKeySetUpload(%+v): no error", p)
			}
		}
		p := uploadParams(b, 1, exp)
		p.TenantID = "ten_missing"
		_, err := b.store.CreateKeySetUpload(b.ctx, p)
		wantErr(t, "CreateKeySetUpload for a missing tenant", err, storage.ErrNotFound)
	}},
	{"ok/upload/list-expired", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		now := clk.Now()
		late, err := b.store.CreateKeySetUpload(b.ctx, uploadParams(b, 1, now.Add(2*time.Hour)))
		noErr(t, "CreateKeySetUpload", err)
		early, err := b.store.CreateKeySetUpload(b.ctx, uploadParams(b, 1, now.Add(time.Hour)))
		noErr(t, "CreateKeySetUpload", err)
		pb := uploadParams(b, 1, now.Add(90*time.Minute))
		pb.TenantID = b.b.ID
		mid, err := b.store.CreateKeySetUpload(b.ctx, pb)
		noErr(t, "CreateKeySetUpload of tenant b", err)

		got, err := b.store.ListExpiredKeySetUploads(b.ctx, now.Add(time.Hour), 10)
		noErr(t, "ListExpiredKeySetUploads at the first expiry", err)
		equal(t, "expired strictly before", len(got), 0)
		got, err = b.store.ListExpiredKeySetUploads(b.ctx, now.Add(3*time.Hour), 10)
		noErr(t, "ListExpiredKeySetUploads", err)
		var ids []storage.UploadID
		for _, u := range got {
			ids = append(ids, u.ID)
		}
		equal(t, "expired, oldest first", ids, []storage.UploadID{early.ID, mid.ID, late.ID})
		got, err = b.store.ListExpiredKeySetUploads(b.ctx, now.Add(3*time.Hour), 1)
		noErr(t, "ListExpiredKeySetUploads limit 1", err)
		equal(t, "limit 1", len(got), 1)
		if _, err := b.store.ListExpiredKeySetUploads(b.ctx, now, 0); err == nil {
			t.Fatal("ListExpiredKeySetUploads limit 0: no error")
		}
	}},
}

// partTest is one Parts conformance test.
type partTest struct {
	name string
	run  func(t *testing.T, ctx context.Context, parts storage.Parts)
}

// ExerciseParts runs the partial-upload conformance suite. open must
// return a fresh, empty Parts for each call, from parallel subtests.
func ExerciseParts(t *testing.T, open func(t *testing.T) storage.Parts) {
	t.Helper()
	for _, tc := range partTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, t.Context(), open(t))
		})
	}
}

const partID storage.UploadID = "upl_aaaaaaaaaaaaaaaaaaaaaaaaaa"

func readPart(t *testing.T, ctx context.Context, parts storage.Parts, id storage.UploadID) string {
	t.Helper()
	rc, err := parts.OpenPart(ctx, id)
	noErr(t, "OpenPart", err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	noErr(t, "reading part", err)
	return string(b)
}

var partTests = []partTest{
	{"ok/part/append-resume", func(t *testing.T, ctx context.Context, parts storage.Parts) {
		noErr(t, "CreatePart", parts.CreatePart(ctx, partID))
		wantErr(t, "second CreatePart", parts.CreatePart(ctx, partID), storage.ErrConflict)
		n, err := parts.AppendPart(ctx, partID, 0, strings.NewReader("hello "), 100)
		noErr(t, "AppendPart", err)
		equal(t, "appended", n, int64(6))
		// A crashed request left bytes past the recorded offset 6.
		n, err = parts.AppendPart(ctx, partID, 6, strings.NewReader("junk"), 100)
		noErr(t, "AppendPart", err)
		equal(t, "appended", n, int64(4))
		n, err = parts.AppendPart(ctx, partID, 6, strings.NewReader("world"), 5)
		noErr(t, "AppendPart over the junk", err)
		equal(t, "appended", n, int64(5))
		equal(t, "content", readPart(t, ctx, parts, partID), "hello world")
		size, err := parts.PartSize(ctx, partID)
		noErr(t, "PartSize", err)
		equal(t, "PartSize", size, int64(11))
		noErr(t, "TruncatePart", parts.TruncatePart(ctx, partID, 5))
		equal(t, "truncated", readPart(t, ctx, parts, partID), "hello")
		wantErr(t, "TruncatePart beyond", parts.TruncatePart(ctx, partID, 6), storage.ErrConflict)
		noErr(t, "RemovePart", parts.RemovePart(ctx, partID))
		noErr(t, "second RemovePart", parts.RemovePart(ctx, partID))
		_, err = parts.OpenPart(ctx, partID)
		wantErr(t, "OpenPart after remove", err, storage.ErrNotFound)
	}},
	{"fail/part/append-error-rolls-back", func(t *testing.T, ctx context.Context, parts storage.Parts) {
		noErr(t, "CreatePart", parts.CreatePart(ctx, partID))
		_, err := parts.AppendPart(ctx, partID, 0, strings.NewReader("abc"), 10)
		noErr(t, "AppendPart", err)
		broken := io.MultiReader(strings.NewReader("defgh"), &failingReader{})
		n, err := parts.AppendPart(ctx, partID, 3, broken, 10)
		if err == nil || n != 0 {
			t.Fatalf("AppendPart of a failing reader = %d, %v; want 0 and an error", n, err)
		}
		equal(t, "content after a failed append", readPart(t, ctx, parts, partID), "abc")
		n, err = parts.AppendPart(ctx, partID, 3, bytes.NewReader(make([]byte, 11)), 10)
		wantErr(t, "AppendPart over the limit", err, storage.ErrTooLarge)
		equal(t, "n over the limit", n, int64(0))
		equal(t, "content after a too large append", readPart(t, ctx, parts, partID), "abc")
		_, err = parts.AppendPart(ctx, partID, 4, strings.NewReader("x"), 10)
		wantErr(t, "AppendPart past the end", err, storage.ErrConflict)
	}},
	{"fail/part/bad-id", func(t *testing.T, ctx context.Context, parts storage.Parts) {
		for _, id := range []storage.UploadID{"", "../x", "upl_../../../../etc/passwdxxxx", "upl_AAAAAAAAAAAAAAAAAAAAAAAAAA"} {
			wantErr(t, "CreatePart("+string(id)+")", parts.CreatePart(ctx, id), storage.ErrNotFound)
			_, err := parts.OpenPart(ctx, id)
			wantErr(t, "OpenPart("+string(id)+")", err, storage.ErrNotFound)
		}
		_, err := parts.AppendPart(ctx, partID, 0, strings.NewReader("x"), 1)
		wantErr(t, "AppendPart of a missing part", err, storage.ErrNotFound)
	}},
}

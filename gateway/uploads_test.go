package gateway

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// chunkHeader is the headers of a PATCH of chunk at offset.
func chunkHeader(offset int64, chunk []byte) http.Header {
	sum := sha256.Sum256(chunk)
	return http.Header{
		"Content-Type":   {api.ContentTypeOffsetOctetStream},
		"Upload-Offset":  {strconv.FormatInt(offset, 10)},
		"Content-Digest": {"sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"},
	}
}

// createUpload starts an upload of size bytes for the bundle's model.
func (bd *bundle) createUpload(t *testing.T, key string, size int) api.KeySetUpload {
	t.Helper()
	body := fmt.Sprintf(`{"model":%q,"size":%d}`, bd.model.ID(), size)
	resp := bd.call(t, http.MethodPost, api.PathKeyUploads, key, strings.NewReader(body), http.Header{"Content-Type": {api.ContentTypeJSON}})
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", api.PathKeyUploads, resp.StatusCode, b)
	}
	var u api.KeySetUpload
	if err := json.Unmarshal(b, &u); err != nil {
		t.Fatal(err)
	}
	if loc := resp.Header.Get("Location"); loc != api.PathKeyUploads+"/"+u.ID || u.Offset != 0 || u.Size != int64(size) || u.ExpiresAt.IsZero() {
		t.Fatalf("created upload %+v at %q", u, loc)
	}
	return u
}

// uploadOffset asks HEAD for where the upload stands.
func (bd *bundle) uploadOffset(t *testing.T, key, id string) int64 {
	t.Helper()
	resp := bd.call(t, http.MethodHead, api.PathKeyUploads+"/"+id, key, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD upload: %d", resp.StatusCode)
	}
	n, err := strconv.ParseInt(resp.Header.Get(api.HeaderUploadOffset), 10, 64)
	if err != nil {
		t.Fatalf("Upload-Offset %q: %v", resp.Header.Get(api.HeaderUploadOffset), err)
	}
	return n
}

func (bd *bundle) patch(t *testing.T, key, id string, offset int64, chunk []byte, hdr http.Header) *http.Response {
	t.Helper()
	if hdr == nil {
		hdr = chunkHeader(offset, chunk)
	}
	return bd.call(t, http.MethodPatch, api.PathKeyUploads+"/"+id, key, bytes.NewReader(chunk), hdr)
}

// partFiles lists the partial uploads left on disk.
func (bd *bundle) partFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(bd.blobDir, ".uploads"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// halfAndHang sends the headers of a PATCH of chunk and half of its bytes,
// then closes the connection: a client that lost its network mid-chunk.
func (bd *bundle) halfAndHang(t *testing.T, key, id string, offset int64, chunk []byte) {
	t.Helper()
	u, err := url.Parse(bd.ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "PATCH %s/%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n", api.PathKeyUploads, id, u.Host, key, len(chunk))
	for k, vs := range chunkHeader(offset, chunk) {
		fmt.Fprintf(w, "%s: %s\r\n", k, vs[0])
	}
	w.WriteString("\r\n")
	w.Write(chunk[:len(chunk)/2])
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
}

// TestUploadResumes: a key set in four chunks, the connection lost in the
// middle of the third; HEAD says where to resume (the end of the second),
// the rest completes it, and the key set is the one a one-shot upload of
// the same bytes makes, listed and usable for an inference.
func TestUploadResumes(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	keys, key := bd.a.keys, bd.a.secret
	u := bd.createUpload(t, key, len(keys))
	chunk := (len(keys) + 3) / 4
	var off int64
	for i := 0; i < 2; i++ {
		c := keys[off : off+int64(chunk)]
		resp := bd.patch(t, key, u.ID, off, c, nil)
		if resp.StatusCode != http.StatusNoContent {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("chunk %d: %d %s", i, resp.StatusCode, b)
		}
		off += int64(chunk)
		if got := resp.Header.Get(api.HeaderUploadOffset); got != strconv.FormatInt(off, 10) {
			t.Fatalf("chunk %d: Upload-Offset %q, want %d", i, got, off)
		}
	}
	bd.halfAndHang(t, key, u.ID, off, keys[off:off+int64(chunk)])
	// The server may still be reading the broken body: HEAD until it let go.
	var got int64 = -1
	for range 100 {
		if got = bd.uploadOffset(t, key, u.ID); got == off {
			break
		}
	}
	if got != off {
		t.Fatalf("offset after the lost chunk %d, want %d", got, off)
	}
	// A PATCH that retries while the broken one may still hold the upload
	// is 409 or goes through: loop over what HEAD says.
	for off < int64(len(keys)) {
		end := min(off+int64(chunk), int64(len(keys)))
		resp := bd.patch(t, key, u.ID, off, keys[off:end], nil)
		b, _ := io.ReadAll(resp.Body)
		switch resp.StatusCode {
		case http.StatusNoContent:
			off = end
		case http.StatusConflict:
			off = bd.uploadOffset(t, key, u.ID)
		case http.StatusCreated:
			var ks api.KeySet
			if err := json.Unmarshal(b, &ks); err != nil {
				t.Fatal(err)
			}
			want := sha256.Sum256(keys)
			if ks.ID != fmt.Sprintf("%x", want) || ks.SizeBytes != int64(len(keys)) || ks.Model != string(bd.model.ID()) {
				t.Fatalf("completed key set %+v", ks)
			}
			off = end
		default:
			t.Fatalf("PATCH at %d: %d %s", off, resp.StatusCode, b)
		}
	}
	list, err := bd.a.client.KeySets(bd.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("key sets after the upload: %+v", list)
	}
	// The one-shot upload of the same bytes finds it (200, same id).
	if id := bd.upload(t, bd.a); id != list[0].ID {
		t.Fatalf("one-shot upload id %s, resumable %s", id, list[0].ID)
	}
	if parts := bd.partFiles(t); len(parts) != 0 {
		t.Fatalf("partial files left: %v", parts)
	}
	resp := bd.call(t, http.MethodHead, api.PathKeyUploads+"/"+u.ID, key, nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD of a completed upload: %d, want 404", resp.StatusCode)
	}
	// The key set works.
	x, ct := bd.input(t, bd.a, 7)
	res, _, err := bd.a.client.Infer(bd.ctx, string(bd.model.ID()), list[0].ID, ct, client.InferOptions{Wait: true})
	if err != nil {
		t.Fatalf("inference with the resumed key set: %v", err)
	}
	bd.checkResult(t, bd.a, x, res)
}

// TestUploadCorruptChunk: a chunk with one byte flipped under the digest
// of the original is refused (400 naming the digest), the offset stays,
// and after an abort nothing of the upload is left.
func TestUploadCorruptChunk(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	keys, key := bd.a.keys, bd.a.secret
	u := bd.createUpload(t, key, len(keys))
	half := len(keys) / 2
	if resp := bd.patch(t, key, u.ID, 0, keys[:half], nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first chunk: %d", resp.StatusCode)
	}
	bad := bytes.Clone(keys[half:])
	bad[len(bad)/2] ^= 0x01
	resp := bd.patch(t, key, u.ID, int64(half), bad, chunkHeader(int64(half), keys[half:]))
	p := wantProblem(t, resp, http.StatusBadRequest, "digest does not match")
	if !strings.Contains(p.Detail, "Content-Digest") || !strings.Contains(p.Detail, fmt.Sprintf("offset stays %d", half)) {
		t.Fatalf("detail %q names neither the digest nor the offset", p.Detail)
	}
	if got := bd.uploadOffset(t, key, u.ID); got != int64(half) {
		t.Fatalf("offset after a corrupt chunk %d, want %d", got, half)
	}
	// The part holds only what was accepted.
	if fi, err := os.Stat(filepath.Join(bd.blobDir, ".uploads", u.ID)); err != nil || fi.Size() != int64(half) {
		t.Fatalf("part after a corrupt chunk: %v, %v; want %d bytes", fi, err, half)
	}
	// A body that passes the size is refused the same way.
	long := append(bytes.Clone(keys[half:]), 0)
	wantProblem(t, bd.patch(t, key, u.ID, int64(half), long, nil), http.StatusBadRequest, "nothing was kept")
	if got := bd.uploadOffset(t, key, u.ID); got != int64(half) {
		t.Fatalf("offset after a too long chunk %d, want %d", got, half)
	}

	if resp := bd.call(t, http.MethodDelete, api.PathKeyUploads+"/"+u.ID, key, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	bd.wantNothingStored(t, bd.a)
}

// wantNothingStored checks that d's tenant has no key set, no blob and no
// partial upload.
func (bd *bundle) wantNothingStored(t *testing.T, d device) {
	t.Helper()
	list, err := d.client.KeySets(bd.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("key sets stored: %+v", list)
	}
	if n := bd.blobFiles(t); n != 0 {
		t.Fatalf("%d files in the blob directory", n)
	}
	if parts := bd.partFiles(t); len(parts) != 0 {
		t.Fatalf("partial files left: %v", parts)
	}
}

// TestUploadInvalidKeySet: every chunk's digest is right but a coefficient
// of the key set is not below its modulus: the last chunk is refused with
// the checker's detail, and nothing is stored.
func TestUploadInvalidKeySet(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	keys := bytes.Clone(bd.a.keys)
	for i := len(keys) - 8; i < len(keys); i++ {
		keys[i] = 0xff // the last coefficient: far above any modulus
	}
	key := bd.a.secret
	u := bd.createUpload(t, key, len(keys))
	half := len(keys) / 2
	if resp := bd.patch(t, key, u.ID, 0, keys[:half], nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first chunk: %d", resp.StatusCode)
	}
	// The checker's detail names the record and the coefficient.
	wantProblem(t, bd.patch(t, key, u.ID, int64(half), keys[half:], nil), http.StatusBadRequest, "is not below its modulus")
	if resp := bd.call(t, http.MethodHead, api.PathKeyUploads+"/"+u.ID, key, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD after a refused key set: %d, want 404", resp.StatusCode)
	}
	bd.wantNothingStored(t, bd.a)
}

// TestUploadRefusals: the rules around an upload.
func TestUploadRefusals(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	keys, key := bd.a.keys, bd.a.secret
	size := len(keys)
	jsonHdr := http.Header{"Content-Type": {api.ContentTypeJSON}}

	t.Run("fail/size-not-the-manifest", func(t *testing.T) {
		body := fmt.Sprintf(`{"model":%q,"size":%d}`, bd.model.ID(), size-1)
		wantProblem(t, bd.call(t, http.MethodPost, api.PathKeyUploads, key, strings.NewReader(body), jsonHdr),
			http.StatusBadRequest, fmt.Sprintf("size is %d bytes; model %s needs a key set of exactly %d bytes", size-1, bd.model.ID(), size))
	})
	t.Run("fail/unknown-model", func(t *testing.T) {
		wantProblem(t, bd.call(t, http.MethodPost, api.PathKeyUploads, key, strings.NewReader(`{"model":"nope","size":10}`), jsonHdr), http.StatusNotFound, "nope")
	})
	t.Run("fail/no-key", func(t *testing.T) {
		body := fmt.Sprintf(`{"model":%q,"size":%d}`, bd.model.ID(), size)
		wantProblem(t, bd.call(t, http.MethodPost, api.PathKeyUploads, "", strings.NewReader(body), jsonHdr), http.StatusUnauthorized, "")
	})
	u := bd.createUpload(t, key, size)
	t.Run("fail/offset-mismatch", func(t *testing.T) {
		wantProblem(t, bd.patch(t, key, u.ID, 5, keys[5:10], nil), http.StatusConflict, "stands at offset 0: resume from 0")
	})
	t.Run("fail/other-tenant", func(t *testing.T) {
		wantProblem(t, bd.patch(t, bd.b.secret, u.ID, 0, keys[:10], nil), http.StatusNotFound, "not found")
		wantProblem(t, bd.call(t, http.MethodGet, api.PathKeyUploads+"/"+u.ID, bd.b.secret, nil, nil), http.StatusNotFound, "not found")
		wantProblem(t, bd.call(t, http.MethodDelete, api.PathKeyUploads+"/"+u.ID, bd.b.secret, nil, nil), http.StatusNotFound, "not found")
	})
	t.Run("fail/no-digest", func(t *testing.T) {
		hdr := chunkHeader(0, keys[:10])
		hdr.Del("Content-Digest")
		wantProblem(t, bd.patch(t, key, u.ID, 0, keys[:10], hdr), http.StatusBadRequest, "Content-Digest: sha-256=")
	})
	t.Run("fail/bad-offset-header", func(t *testing.T) {
		hdr := chunkHeader(0, keys[:10])
		hdr.Set("Upload-Offset", "-1")
		wantProblem(t, bd.patch(t, key, u.ID, 0, keys[:10], hdr), http.StatusBadRequest, "Upload-Offset")
	})
	t.Run("fail/media-type", func(t *testing.T) {
		hdr := chunkHeader(0, keys[:10])
		hdr.Set("Content-Type", api.ContentTypeKeySet)
		wantProblem(t, bd.patch(t, key, u.ID, 0, keys[:10], hdr), http.StatusUnsupportedMediaType, "")
	})
	t.Run("fail/viewer", func(t *testing.T) {
		svc := bd.srv.Service()
		tenant := tenantOf(t, bd, "tenant-a")
		viewer := service.Principal{Tenant: tenant, Role: service.RoleViewer, User: "usr_viewer"}
		_, err := svc.CreateUpload(bd.ctx, viewer, service.CreateUploadParams{Size: int64(size)})
		if hegate.KindOf(err) != hegate.KindForbidden {
			t.Fatalf("CreateUpload by a viewer: %v, want forbidden", err)
		}
		_, err = svc.AppendUpload(bd.ctx, viewer, service.AppendUploadParams{ID: storage.UploadID(u.ID), SHA256: make([]byte, 32), Body: bytes.NewReader(keys[:10])})
		if hegate.KindOf(err) != hegate.KindForbidden {
			t.Fatalf("AppendUpload by a viewer: %v, want forbidden", err)
		}
		if err := svc.AbortUpload(bd.ctx, viewer, storage.UploadID(u.ID)); hegate.KindOf(err) != hegate.KindForbidden {
			t.Fatalf("AbortUpload by a viewer: %v, want forbidden", err)
		}
		if got, err := svc.UploadStatus(bd.ctx, viewer, storage.UploadID(u.ID)); err != nil || got.Offset != 0 {
			t.Fatalf("UploadStatus by a viewer: %+v, %v", got, err)
		}
	})
	t.Run("ok/client-key-uploads", func(t *testing.T) {
		// As for POST /v1/keys, a client key uploads key sets.
		ck, err := CreateAPIKey(bd.ctx, bd.store, tenantOf(t, bd, "tenant-a"), "device", storage.RoleClient)
		if err != nil {
			t.Fatal(err)
		}
		cu := bd.createUpload(t, ck, size)
		if resp := bd.patch(t, ck, cu.ID, 0, keys, nil); resp.StatusCode != http.StatusCreated {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("client-key PATCH: %d %s", resp.StatusCode, b)
		}
	})
}

// FuzzParseUploadOffset: any header parses to a non-negative offset that
// prints back as the header's digits, or is refused.
func FuzzParseUploadOffset(f *testing.F) {
	for _, s := range []string{"0", "123", " 7 ", "-1", "1e3", "999999999999999", "9999999999999999", "", "+5", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseUploadOffset([]string{s})
		if err != nil {
			return
		}
		if n < 0 || strconv.FormatInt(n, 10) != strings.TrimLeft(strings.TrimSpace(s), "0") && n != 0 {
			t.Fatalf("parseUploadOffset(%q) = %d", s, n)
		}
	})
}

// FuzzParseContentDigest: any header either yields a 32-byte digest that
// the header carries in base64, or is refused; never a panic.
func FuzzParseContentDigest(f *testing.F) {
	sum := sha256.Sum256([]byte("x"))
	good := base64.StdEncoding.EncodeToString(sum[:])
	for _, s := range []string{"sha-256=:" + good + ":", "sha-512=:AA==:, sha-256=:" + good + ":", "sha-256=" + good, "sha-256=::", "sha-256=:" + good + ":;p=1", "SHA-256=:" + good + ":", ",,,", "sha-256"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseContentDigest([]string{s})
		if err != nil {
			return
		}
		if len(got) != sha256.Size || !strings.Contains(s, base64.StdEncoding.EncodeToString(got)) {
			t.Fatalf("parseContentDigest(%q) = %x", s, got)
		}
	})
}

// breakingTransport cuts the body of the nth PATCH in half, once: the
// connection a laptop loses mid-chunk.
type breakingTransport struct {
	base    http.RoundTripper
	n, seen int
}

type halfBody struct {
	r    io.Reader
	left int64
}

func (h *halfBody) Read(p []byte) (int, error) {
	if h.left <= 0 {
		return 0, errors.New("network is unreachable")
	}
	if int64(len(p)) > h.left {
		p = p[:h.left]
	}
	n, err := h.r.Read(p)
	h.left -= int64(n)
	return n, err
}

func (h *halfBody) Close() error { return nil }

func (b *breakingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPatch {
		b.seen++
		if b.seen == b.n {
			req = req.Clone(req.Context())
			req.Body = &halfBody{r: req.Body, left: req.ContentLength / 2}
		}
	}
	return b.base.RoundTrip(req)
}

// TestClientUploadResumable: the SDK's resumable upload survives a chunk
// cut in half by the network and stores the same key set as a one-shot
// upload.
func TestClientUploadResumable(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	keys := bd.a.keys
	hc := &http.Client{Transport: &breakingTransport{base: bd.ts.Client().Transport, n: 2}}
	c, err := client.New(bd.ts.URL, bd.a.secret, client.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	var seen []int64
	ks, err := c.UploadKeySetResumable(bd.ctx, string(bd.model.ID()), bytes.NewReader(keys), int64(len(keys)), client.ResumableOptions{
		Chunk: int64(len(keys)/3 + 1), Backoff: time.Millisecond, Progress: func(n int64) { seen = append(seen, n) },
	})
	if err != nil {
		t.Fatalf("UploadKeySetResumable: %v", err)
	}
	if want := sha256.Sum256(keys); ks.ID != fmt.Sprintf("%x", want) {
		t.Fatalf("key set %s, want the hash of the bytes", ks.ID)
	}
	if id := bd.upload(t, bd.a); id != ks.ID {
		t.Fatalf("one-shot id %s, resumable %s", id, ks.ID)
	}
	// 0, the end of the first chunk, again (HEAD after the cut; more than
	// once if the retry met the cut request still holding the upload:
	// 409), then the second and third chunks.
	repeats := 0
	for _, n := range seen[2:] {
		if n == seen[1] {
			repeats++
		}
	}
	if last := seen[len(seen)-1]; last != int64(len(keys)) || repeats == 0 || seen[1] != int64(len(keys)/3+1) {
		t.Fatalf("progress %v: want the cut chunk resumed from the offset HEAD gave", seen)
	}
	if parts := bd.partFiles(t); len(parts) != 0 {
		t.Fatalf("partial files left: %v", parts)
	}
}

// TestUploadLimits: a tenant keeps at most service.MaxOpenUploads uploads
// open (their partial bytes count against no quota); an empty chunk
// before the end is refused (it would only push the expiry back); and
// every chunk must fit the whole key set in the tenant's key-set quota,
// since the last one stores all of it.
func TestUploadLimits(t *testing.T) {
	t.Parallel()
	var size int64
	bd := setup(t, withoutWorkers(), withConfig(func(c *Config) {
		size = c.MaxKeySetBytes
		c.Quota.KeySetBytes = size + size/2 // one key set, not two
	}))
	keys, key := bd.a.keys, bd.a.secret
	if int64(len(keys)) != size {
		t.Fatalf("test key set %d bytes, limit %d", len(keys), size)
	}
	var open []api.KeySetUpload
	for range service.MaxOpenUploads {
		open = append(open, bd.createUpload(t, key, len(keys)))
	}
	body := fmt.Sprintf(`{"model":%q,"size":%d}`, bd.model.ID(), len(keys))
	wantProblem(t, bd.call(t, http.MethodPost, api.PathKeyUploads, key, strings.NewReader(body), http.Header{"Content-Type": {api.ContentTypeJSON}}),
		http.StatusConflict, "resumable uploads open, the most it may")
	// Another tenant is not limited by this one's uploads.
	bd.createUpload(t, bd.b.secret, len(keys))

	u := open[0]
	wantProblem(t, bd.patch(t, key, u.ID, 0, nil, nil), http.StatusBadRequest, "an empty chunk at offset 0 adds nothing")
	if got := bd.uploadOffset(t, key, u.ID); got != 0 {
		t.Fatalf("offset %d after an empty chunk", got)
	}

	// One whole key set fits the quota: the first upload completes.
	half := len(keys) / 2
	if resp := bd.patch(t, key, u.ID, 0, keys[:half], nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first half: %d", resp.StatusCode)
	}
	if resp := bd.patch(t, key, u.ID, int64(half), keys[half:], nil); resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("second half: %d %s", resp.StatusCode, b)
	}
	// A second key set would exceed it: already its first small chunk is
	// refused, as the upload would end storing the whole of it.
	other := append([]byte(nil), keys...)
	other[len(other)-1] ^= 1
	u2 := open[1]
	wantProblem(t, bd.patch(t, key, u2.ID, 0, other[:16], nil), http.StatusForbidden, "would exceed its quota")
}

// TestUploadLostBytes: when the partial file holds fewer bytes than the
// recorded offset (another replica truncated it, a disk lost them), the
// next chunk answers 409 saying so and the upload is removed, instead of
// a 500 on every chunk until it expires.
func TestUploadLostBytes(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	keys, key := bd.a.keys, bd.a.secret
	u := bd.createUpload(t, key, len(keys))
	half := len(keys) / 2
	if resp := bd.patch(t, key, u.ID, 0, keys[:half], nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first half: %d", resp.StatusCode)
	}
	parts := bd.partFiles(t)
	if len(parts) != 1 {
		t.Fatalf("part files %v", parts)
	}
	if err := os.Truncate(filepath.Join(bd.blobDir, ".uploads", parts[0]), 10); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, bd.patch(t, key, u.ID, int64(half), keys[half:], nil), http.StatusConflict, "lost bytes it had accepted")
	wantProblem(t, bd.call(t, http.MethodGet, api.PathKeyUploads+"/"+u.ID, key, nil, nil), http.StatusNotFound, "")
	if left := bd.partFiles(t); len(left) != 0 {
		t.Fatalf("part files left: %v", left)
	}
	bd.wantNothingStored(t, bd.a)
}

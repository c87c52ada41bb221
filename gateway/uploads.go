package gateway

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// Resumable key-set uploads: the HTTP of service.CreateUpload and friends.
// The protocol (in openapi.yaml and docs/api.md) borrows the headers of the
// IETF resumable-uploads draft (Upload-Offset, application/offset+octet-
// stream) and RFC 9530's Content-Digest for each chunk.

func uploadView(u storage.KeySetUpload) api.KeySetUpload {
	return api.KeySetUpload{
		ID:        string(u.ID),
		Model:     string(u.Model),
		Size:      u.Size,
		Offset:    u.Offset,
		CreatedAt: u.CreatedAt,
		ExpiresAt: u.ExpiresAt,
	}
}

func uploadPath(id storage.UploadID) string { return api.PathKeyUploads + "/" + string(id) }

// maxCreateUploadBody bounds the JSON of POST /v1/keys/uploads.
const maxCreateUploadBody = 4 << 10

// createUpload starts a resumable key-set upload of the model's exact
// key-set size.
func (s *Server) createUpload(w http.ResponseWriter, r *http.Request) {
	const op = "keys.upload.create"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in api.CreateKeySetUpload
	if err := decodeBody(r, op, maxCreateUploadBody, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if in.Model == "" {
		s.fail(w, r, hegate.E(op, hegate.KindInvalid, nil, "name the model in \"model\""))
		return
	}
	version := ""
	if in.Version != 0 {
		version = strconv.Itoa(in.Version)
	}
	m, err := s.model(r, op, in.Model, version)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	u, err := s.svc.CreateUpload(r.Context(), p, service.CreateUploadParams{Model: m, Size: in.Size, Limit: s.cfg.MaxKeySetBytes})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Location", uploadPath(u.ID))
	h.Set(api.HeaderUploadOffset, "0")
	writeJSON(w, http.StatusCreated, uploadView(u))
}

// patchUpload appends one chunk; at the last byte it answers the stored
// key set as POST /v1/keys does.
func (s *Server) patchUpload(w http.ResponseWriter, r *http.Request) {
	const op = "keys.upload.append"
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	offset, err := parseUploadOffset(r.Header.Values(api.HeaderUploadOffset))
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindInvalid, err, "%v", err))
		return
	}
	if r.Header.Get("Content-Type") == "" {
		s.fail(w, r, hegate.E(op, hegate.KindInvalid, nil, "a chunk is sent as Content-Type: %s", api.ContentTypeOffsetOctetStream))
		return
	}
	sum, err := parseContentDigest(r.Header.Values(api.HeaderContentDigest))
	if err != nil {
		s.fail(w, r, hegate.E(op, hegate.KindInvalid, err, "%v", err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	res, err := s.svc.AppendUpload(r.Context(), p, service.AppendUploadParams{
		ID: storage.UploadID(chi.URLParam(r, "id")), Offset: offset, SHA256: sum, Body: r.Body,
	})
	if err != nil {
		if res.Upload.ID != "" {
			w.Header().Set(api.HeaderUploadOffset, strconv.FormatInt(res.Upload.Offset, 10))
		}
		s.fail(w, r, err)
		return
	}
	w.Header().Set(api.HeaderUploadOffset, strconv.FormatInt(res.Upload.Offset, 10))
	if res.KeySet == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Location", keySetPath(res.KeySet.ID))
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, keySetView(*res.KeySet))
}

// uploadStatus answers HEAD (headers only) and GET (JSON) of an upload:
// where a sender resumes.
func (s *Server) uploadStatus(w http.ResponseWriter, r *http.Request) {
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	u, err := s.svc.UploadStatus(r.Context(), p, storage.UploadID(chi.URLParam(r, "id")))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set(api.HeaderUploadOffset, strconv.FormatInt(u.Offset, 10))
	h.Set(api.HeaderUploadLength, strconv.FormatInt(u.Size, 10))
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	writeJSON(w, http.StatusOK, uploadView(u))
}

// abortUpload removes an upload and its bytes.
func (s *Server) abortUpload(w http.ResponseWriter, r *http.Request) {
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.svc.AbortUpload(r.Context(), p, storage.UploadID(chi.URLParam(r, "id"))); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// maxUploadOffsetDigits is the most digits of an RFC 9651 sf-integer.
const maxUploadOffsetDigits = 15

// parseUploadOffset reads the one Upload-Offset header of a chunk: an
// RFC 9651 sf-integer >= 0 (digits only, at most 15).
func parseUploadOffset(values []string) (int64, error) {
	switch len(values) {
	case 0:
		return 0, fmt.Errorf("a chunk needs an %s header: the offset it starts at (HEAD the upload to learn it)", api.HeaderUploadOffset)
	case 1:
	default:
		return 0, fmt.Errorf("send one %s header, not %d", api.HeaderUploadOffset, len(values))
	}
	v := strings.TrimSpace(values[0])
	if v == "" || len(v) > maxUploadOffsetDigits {
		return 0, fmt.Errorf("%s %q is not a non-negative integer of at most %d digits", api.HeaderUploadOffset, truncate(v, 40), maxUploadOffsetDigits)
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%s %q is not a non-negative integer of at most %d digits", api.HeaderUploadOffset, truncate(v, 40), maxUploadOffsetDigits)
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// parseContentDigest finds the sha-256 digest in the Content-Digest
// headers of a chunk (RFC 9530: a dictionary of algorithm=:base64:).
// Other algorithms are ignored; sha-256 is required, once.
func parseContentDigest(values []string) ([]byte, error) {
	const want = "a chunk needs Content-Digest: sha-256=:<base64 of the chunk's SHA-256>: (RFC 9530)"
	var sum []byte
	for _, v := range values {
		for _, member := range strings.Split(v, ",") {
			member = strings.Trim(member, " \t")
			if member == "" {
				continue
			}
			key, val, ok := strings.Cut(member, "=")
			if !ok {
				return nil, fmt.Errorf("Content-Digest member %q has no value; %s", truncate(member, 40), want)
			}
			if !validDictKey(key) {
				return nil, fmt.Errorf("Content-Digest key %q is not a structured-field key; %s", truncate(key, 40), want)
			}
			if key != "sha-256" {
				continue
			}
			if sum != nil {
				return nil, fmt.Errorf("Content-Digest names sha-256 twice")
			}
			if i := strings.IndexByte(val, ';'); i >= 0 {
				val = val[:i] // parameters: none defined
			}
			if len(val) < 2 || val[0] != ':' || val[len(val)-1] != ':' {
				return nil, fmt.Errorf("Content-Digest sha-256 value %q is not a byte sequence (:base64:); %s", truncate(val, 60), want)
			}
			b, err := base64.StdEncoding.Strict().DecodeString(val[1 : len(val)-1])
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("Content-Digest sha-256 value %q is not the base64 of %d bytes; %s", truncate(val, 60), sha256.Size, want)
			}
			sum = b
		}
	}
	if sum == nil {
		return nil, fmt.Errorf("%s", want)
	}
	return sum, nil
}

// validDictKey reports whether k is an RFC 9651 dictionary key.
func validDictKey(k string) bool {
	if k == "" || !(k[0] >= 'a' && k[0] <= 'z' || k[0] == '*') {
		return false
	}
	for i := 1; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*') {
			return false
		}
	}
	return true
}

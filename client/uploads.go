package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/hegate/hegate/api"
)

// Defaults of ResumableOptions.
const (
	// DefaultUploadChunk is the chunk size when ResumableOptions.Chunk is 0.
	DefaultUploadChunk = api.MaxUploadChunk
	// DefaultUploadRetries is how often a chunk is tried again after a
	// network error or a 5xx before the upload gives up.
	DefaultUploadRetries = 5
)

// ResumableOptions tune UploadKeySetResumable.
type ResumableOptions struct {
	// Chunk is the bytes sent per request: 0 means DefaultUploadChunk; at
	// most api.MaxUploadChunk.
	Chunk int64
	// UploadID resumes an upload started earlier (by this or another
	// process) instead of starting one.
	UploadID string
	// Started, if set, is told the upload's id once it exists, so that a
	// caller can resume it after a crash.
	Started func(id string)
	// Progress, if set, is told the bytes the gateway holds after each
	// chunk (and where a resumed upload stands).
	Progress func(done int64)
	// Retries bounds the retries of one chunk: 0 means
	// DefaultUploadRetries, a negative value none.
	Retries int
	// Backoff is the first wait before a retry, doubled each time: 0
	// means one second.
	Backoff time.Duration
}

// UploadKeySetResumable uploads a key set of size bytes (exactly the
// manifest's key_set_bytes) for model in chunks, each with its SHA-256 in
// Content-Digest. After a network error, a 5xx or a 409 it asks the
// gateway where the upload stands and continues from there, a few times
// with a doubling backoff. It returns the stored key set. A refusal of the
// key set itself (400) ends the upload: the gateway has removed it.
func (c *Client) UploadKeySetResumable(ctx context.Context, model string, r io.ReaderAt, size int64, opts ResumableOptions) (api.KeySet, error) {
	chunk := opts.Chunk
	switch {
	case chunk == 0:
		chunk = DefaultUploadChunk
	case chunk < 0 || chunk > api.MaxUploadChunk:
		return api.KeySet{}, fmt.Errorf("client: chunk of %d bytes: want 1 to %d", chunk, int64(api.MaxUploadChunk))
	}
	retries := opts.Retries
	if retries == 0 {
		retries = DefaultUploadRetries
	}
	backoff := opts.Backoff
	if backoff == 0 {
		backoff = time.Second
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(int64) {}
	}

	id := opts.UploadID
	var offset int64
	if id == "" {
		u, err := c.CreateKeySetUpload(ctx, model, size)
		if err != nil {
			return api.KeySet{}, err
		}
		id = u.ID
	} else {
		u, err := c.KeySetUpload(ctx, id)
		if err != nil {
			return api.KeySet{}, err
		}
		if u.Size != size {
			return api.KeySet{}, fmt.Errorf("client: upload %s is of %d bytes, the file has %d", id, u.Size, size)
		}
		offset = u.Offset
	}
	if opts.Started != nil {
		opts.Started(id)
	}
	progress(offset)

	failures := 0
	for {
		n := min(chunk, size-offset)
		ks, next, err := c.appendChunk(ctx, id, offset, io.NewSectionReader(r, offset, n), n)
		if err == nil {
			failures = 0
			offset = next
			progress(offset)
			if ks != nil {
				return *ks, nil
			}
			continue
		}
		if !retryable(err) || ctx.Err() != nil {
			return api.KeySet{}, fmt.Errorf("client: upload %s at offset %d: %w", id, offset, err)
		}
		failures++
		if failures > retries {
			return api.KeySet{}, fmt.Errorf("client: upload %s at offset %d, after %d retries (resume it with its id): %w", id, offset, retries, err)
		}
		select {
		case <-ctx.Done():
			return api.KeySet{}, ctx.Err()
		case <-time.After(backoff << (failures - 1)):
		}
		u, herr := c.KeySetUpload(ctx, id)
		switch {
		case StatusOf(herr) == http.StatusNotFound && offset+n == size:
			// The last chunk arrived and completed the upload, but its
			// answer was lost: the key set is stored under its hash.
			return c.keySetOf(ctx, r, size)
		case herr != nil:
			if !retryable(herr) {
				return api.KeySet{}, fmt.Errorf("client: upload %s: %w", id, herr)
			}
			continue // try the same chunk again
		}
		offset = u.Offset
		progress(offset)
	}
}

// retryable reports whether an upload goes on after err: a network
// failure, a 5xx, a 409 (another request, or the offset moved) or 429.
func retryable(err error) bool {
	switch s := StatusOf(err); {
	case s == 0:
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	case s >= 500, s == http.StatusConflict, s == http.StatusTooManyRequests:
		return true
	}
	return false
}

// appendChunk sends n bytes of sr at offset, reading them twice (the
// digest, then the body) rather than holding them.
func (c *Client) appendChunk(ctx context.Context, id string, offset int64, sr *io.SectionReader, n int64) (*api.KeySet, int64, error) {
	h := sha256.New()
	if _, err := io.Copy(h, sr); err != nil {
		return nil, 0, fmt.Errorf("client: reading the key set at %d: %w", offset, err)
	}
	if _, err := sr.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	var body io.Reader = io.NopCloser(sr)
	req, err := c.request(ctx, http.MethodPatch, api.PathKeyUploads+"/"+id, body)
	if err != nil {
		return nil, 0, err
	}
	req.ContentLength = n
	if n == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", api.ContentTypeOffsetOctetStream)
	req.Header.Set(api.HeaderUploadOffset, strconv.FormatInt(offset, 10))
	req.Header.Set(api.HeaderContentDigest, "sha-256=:"+base64.StdEncoding.EncodeToString(h.Sum(nil))+":")
	resp, err := c.do(req, http.StatusNoContent, http.StatusCreated, http.StatusOK)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	next, err := strconv.ParseInt(resp.Header.Get(api.HeaderUploadOffset), 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("client: PATCH of upload %s answered Upload-Offset %q", id, resp.Header.Get(api.HeaderUploadOffset))
	}
	if resp.StatusCode == http.StatusNoContent {
		return nil, next, nil
	}
	var ks api.KeySet
	if err := decodeJSON(resp, &ks); err != nil {
		return nil, 0, err
	}
	return &ks, next, nil
}

// keySetOf finds the stored key set of the whole file by its hash.
func (c *Client) keySetOf(ctx context.Context, r io.ReaderAt, size int64) (api.KeySet, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
		return api.KeySet{}, fmt.Errorf("client: hashing the key set: %w", err)
	}
	return c.KeySet(ctx, hex.EncodeToString(h.Sum(nil)))
}

// CreateKeySetUpload starts a resumable upload of a key set of size bytes
// for model ("name" or "name@vN").
func (c *Client) CreateKeySetUpload(ctx context.Context, model string, size int64) (api.KeySetUpload, error) {
	name, version := SplitModelRef(model)
	b, err := json.Marshal(api.CreateKeySetUpload{Model: name, Version: version, Size: size})
	if err != nil {
		return api.KeySetUpload{}, err
	}
	req, err := c.request(ctx, http.MethodPost, api.PathKeyUploads, bytes.NewReader(b))
	if err != nil {
		return api.KeySetUpload{}, err
	}
	req.Header.Set("Content-Type", api.ContentTypeJSON)
	resp, err := c.do(req, http.StatusCreated)
	if err != nil {
		return api.KeySetUpload{}, err
	}
	defer resp.Body.Close()
	var u api.KeySetUpload
	return u, decodeJSON(resp, &u)
}

// KeySetUpload returns where a resumable upload stands.
func (c *Client) KeySetUpload(ctx context.Context, id string) (api.KeySetUpload, error) {
	var u api.KeySetUpload
	return u, c.getJSON(ctx, api.PathKeyUploads+"/"+id, &u)
}

// AbortKeySetUpload removes a resumable upload and its bytes.
func (c *Client) AbortKeySetUpload(ctx context.Context, id string) error {
	req, err := c.request(ctx, http.MethodDelete, api.PathKeyUploads+"/"+id, nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req, http.StatusNoContent)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

package api

import "time"

// Resumable key-set uploads (POST /v1/keys/uploads, then PATCH chunks).
const (
	// PathKeyUploads is the collection of the tenant's resumable key-set
	// uploads; PathKeyUploads/{id} is one.
	PathKeyUploads = "/v1/keys/uploads"
	// ContentTypeOffsetOctetStream is the media type of a chunk (PATCH).
	ContentTypeOffsetOctetStream = "application/offset+octet-stream"
	// HeaderUploadOffset is the offset a chunk starts at (PATCH), and the
	// bytes received so far (the answers of PATCH and HEAD).
	HeaderUploadOffset = "Upload-Offset"
	// HeaderUploadLength is the size of the whole key set (HEAD).
	HeaderUploadLength = "Upload-Length"
	// HeaderContentDigest is the RFC 9530 digest of a chunk:
	// "sha-256=:<base64>:".
	HeaderContentDigest = "Content-Digest"
	// MaxUploadChunk is the largest chunk a PATCH takes.
	MaxUploadChunk = 64 << 20
)

// CreateKeySetUpload is the body of POST /v1/keys/uploads.
type CreateKeySetUpload struct {
	Model string `json:"model"`
	// Version is a version of the tenant's model; 0 or absent means the
	// latest ready one (a built-in model has only version 1).
	Version int `json:"version,omitempty"`
	// Size is the key set's size in bytes: exactly the KeySetBytes of the
	// model's manifest.
	Size int64 `json:"size"`
}

// KeySetUpload is the JSON view of a resumable key-set upload.
type KeySetUpload struct {
	ID        string    `json:"id"`
	Model     string    `json:"model"`
	Size      int64     `json:"size"`
	Offset    int64     `json:"offset"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

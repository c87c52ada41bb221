package storage

import (
	"context"
	"io"
	"time"

	"github.com/hegate/hegate"
)

// UploadID names one resumable key-set upload: "upl_" and 26 base32
// characters (lowercase RFC 4648 alphabet).
type UploadID string

// ValidUploadID reports whether id has the shape of an UploadID, so that
// garbage never reaches SQL or a file name.
func ValidUploadID(id UploadID) bool {
	const prefix = "upl_"
	if len(id) != len(prefix)+26 || id[:len(prefix)] != prefix {
		return false
	}
	for _, c := range []byte(id[len(prefix):]) {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// KeySetUpload is a resumable key-set upload in progress: its bytes, up to
// Offset, are in a Parts store under ID; the record says how far it got.
type KeySetUpload struct {
	ID       UploadID
	TenantID hegate.TenantID
	// Model and ModelVersion name the model the key set is for (version 0
	// for a built-in), as catalog.Lookup takes them.
	Model        hegate.ModelID
	ModelVersion int
	Size         int64 // the exact size of the whole key set, > 0
	Offset       int64 // the bytes received and recorded, 0 <= Offset <= Size
	CreatedAt    time.Time
	UpdatedAt    time.Time // the last change of Offset (CreatedAt at first)
	ExpiresAt    time.Time // after it, SweepUploads removes the upload
}

// CreateKeySetUploadParams are the inputs of KeySetUploads.CreateKeySetUpload.
type CreateKeySetUploadParams struct {
	TenantID     hegate.TenantID
	Model        hegate.ModelID // required
	ModelVersion int            // >= 0
	Size         int64          // > 0
	ExpiresAt    time.Time      // required
}

// MaxListExpiredUploads caps the limit of ListExpiredKeySetUploads.
const MaxListExpiredUploads = 1000

// KeySetUploads stores the records of resumable key-set uploads. The bytes
// are never in the database: see Parts.
type KeySetUploads interface {
	// CreateKeySetUpload records a new upload at offset 0 with a fresh id.
	// ErrNotFound if the tenant does not exist; an error naming the field
	// for invalid params.
	CreateKeySetUpload(ctx context.Context, p CreateKeySetUploadParams) (KeySetUpload, error)
	// GetKeySetUpload returns the tenant's upload or ErrNotFound (another
	// tenant's upload included).
	GetKeySetUpload(ctx context.Context, tenant hegate.TenantID, id UploadID) (KeySetUpload, error)
	// AdvanceKeySetUpload moves the tenant's upload from offset from to
	// offset to (from <= to <= Size) and sets its ExpiresAt, in one
	// conditional update: ErrConflict if its offset is not from (another
	// request moved it first), ErrNotFound if there is no such upload.
	AdvanceKeySetUpload(ctx context.Context, tenant hegate.TenantID, id UploadID, from, to int64, expiresAt time.Time) (KeySetUpload, error)
	// DeleteKeySetUpload removes the tenant's upload record or returns
	// ErrNotFound. It does not touch the partial bytes.
	DeleteKeySetUpload(ctx context.Context, tenant hegate.TenantID, id UploadID) error
	// CountKeySetUploads returns how many uploads the tenant has open
	// (expired ones not yet swept included).
	CountKeySetUploads(ctx context.Context, tenant hegate.TenantID) (int, error)
	// ListExpiredKeySetUploads returns at most limit (1 to
	// MaxListExpiredUploads) uploads of any tenant whose ExpiresAt is
	// strictly before before, oldest expiry first.
	ListExpiredKeySetUploads(ctx context.Context, before time.Time, limit int) ([]KeySetUpload, error)
}

// Parts holds the partial bytes of resumable uploads, one append-only file
// per UploadID, outside the database and outside the content-addressed
// blobs. An id that is not a ValidUploadID is ErrNotFound, so no id can
// name a path outside the store. Callers serialise the writes to one part
// (one request at a time per upload).
type Parts interface {
	// CreatePart makes an empty part; ErrConflict if it exists.
	CreatePart(ctx context.Context, id UploadID) error
	// AppendPart truncates the part to offset (bytes past the recorded
	// offset that a crashed request left), then copies at most limit bytes
	// from r to its end, through a small buffer, and syncs them. It
	// returns the bytes written; on an error (r's, ErrTooLarge wrapped if
	// r has more than limit bytes, or the file system's) the part is
	// truncated back to offset and n is 0. ErrNotFound if there is no such
	// part; ErrConflict if the part is shorter than offset.
	AppendPart(ctx context.Context, id UploadID, offset int64, r io.Reader, limit int64) (n int64, err error)
	// TruncatePart cuts the part to size bytes (ErrConflict if it is
	// shorter) and syncs it.
	TruncatePart(ctx context.Context, id UploadID, size int64) error
	// OpenPart returns the part's content or ErrNotFound.
	OpenPart(ctx context.Context, id UploadID) (io.ReadCloser, error)
	// PartSize returns the part's length or ErrNotFound.
	PartSize(ctx context.Context, id UploadID) (int64, error)
	// RemovePart removes the part; a missing part is not an error.
	RemovePart(ctx context.Context, id UploadID) error
}

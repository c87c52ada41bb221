// Package ids makes the random identifiers of hegate's stored objects.
//
// An id is a short type prefix, an underscore and 26 characters of
// lowercase, unpadded base32 (RFC 4648 alphabet) encoding 16 bytes from
// crypto/rand: "job_5x3kq7...". 128 random bits make collisions negligible
// and ids unguessable; the prefix tells a reader what an id names.
package ids

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// Prefixes of the stored objects' ids.
const (
	Tenant = "ten"
	APIKey = "key"
	Job    = "job"
	Device = "dev"
	User   = "usr"
	Upload = "upl"
)

var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// New returns prefix + "_" + 26 random base32 characters.
func New(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead.
	var sb strings.Builder
	sb.Grow(len(prefix) + 1 + encoding.EncodedLen(len(b)))
	sb.WriteString(prefix)
	sb.WriteByte('_')
	sb.WriteString(encoding.EncodeToString(b[:]))
	return sb.String()
}

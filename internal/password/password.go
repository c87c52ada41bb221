// Package password hashes and checks the web console's passwords with
// Argon2id (RFC 9106), in the PHC string format that every Argon2
// implementation reads:
//
//	$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>
//
// where salt and hash are unpadded standard base64. The parameters are
// RFC 9106's second recommended option (section 4: "If much less memory
// is available, a uniformly safe option is Argon2id with t=3 iterations,
// p=4 lanes, m=2^(16) (64 MiB of RAM), 128-bit salt, and 256-bit tag
// size"): the first one takes 2 GiB per hash, too much for a gateway that
// checks logins beside its real work.
//
// A stored hash is input too: Verify refuses a string that is malformed
// or whose parameters are absurd (more than MaxMemoryKiB of memory,
// MaxTime passes or MaxThreads lanes), so that a tampered row cannot make
// the gateway allocate unbounded memory or spin. At most MaxConcurrent
// hashes run at once in the process (the others wait), which bounds the
// memory that a burst of logins takes to MaxConcurrent times a hash's.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Parameters of new hashes (RFC 9106 section 4, second recommended
// option).
const (
	Memory   = 64 * 1024 // KiB: 64 MiB
	Time     = 3         // passes
	Threads  = 4         // lanes
	SaltSize = 16        // bytes: 128 bits
	KeySize  = 32        // bytes: a 256-bit tag
)

// Limits on what Verify accepts from a stored hash.
const (
	MaxMemoryKiB = 1 << 20 // 1 GiB
	MaxTime      = 10
	MaxThreads   = 16
	MinSaltSize  = 8 // RFC 9106 section 3.1
	MaxSaltSize  = 64
	MinKeySize   = 16
	MaxKeySize   = 64
	// MaxEncodedBytes bounds an encoded hash: far more than the largest
	// valid one needs, so that parsing never handles much.
	MaxEncodedBytes = 256
)

// MaxPasswordBytes is the longest password Hash accepts.
const MaxPasswordBytes = 1024

// MaxConcurrent is how many hashes (Hash, Verify, Dummy) run at once in
// the process; more wait their turn.
const MaxConcurrent = 4

const (
	algorithm = "argon2id"
	version   = argon2.Version // 0x13: 19
)

// Errors; the ones of a malformed hash wrap ErrMalformed.
var (
	ErrEmpty     = errors.New("password: the password is empty")
	ErrTooLong   = fmt.Errorf("password: the password is longer than %d bytes", MaxPasswordBytes)
	ErrMalformed = errors.New("password: malformed hash")
)

var (
	b64   = base64.RawStdEncoding.Strict()
	slots = make(chan struct{}, MaxConcurrent)
)

// params are the parameters of one hash.
type params struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
}

// current are the parameters of new hashes.
var current = params{memory: Memory, time: Time, threads: Threads}

// key runs Argon2id, waiting for one of the MaxConcurrent slots.
func key(pw string, salt []byte, p params, size int) []byte {
	slots <- struct{}{}
	defer func() { <-slots }()
	return argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, uint32(size))
}

// Hash returns the PHC string of pw with a fresh random salt and the
// current parameters. ErrEmpty or ErrTooLong if pw is empty or longer than
// MaxPasswordBytes. pw is hashed byte for byte: no Unicode normalisation.
func Hash(pw string) (string, error) {
	switch {
	case pw == "":
		return "", ErrEmpty
	case len(pw) > MaxPasswordBytes:
		return "", ErrTooLong
	}
	salt := make([]byte, SaltSize)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead.
	return encode(current, salt, key(pw, salt, current, KeySize)), nil
}

// Verify reports whether pw is the password of encoded, comparing in
// constant time. An error (wrapping ErrMalformed) only if encoded is not
// a hash this package accepts: malformed, another algorithm or version,
// or parameters beyond the limits above; nothing is computed then. An
// empty password, or one longer than MaxPasswordBytes, is never the
// password of any hash (Hash refuses them): false, at once.
func Verify(encoded, pw string) (bool, error) {
	p, salt, want, err := decode(encoded)
	if err != nil {
		return false, err
	}
	if pw == "" || len(pw) > MaxPasswordBytes {
		return false, nil
	}
	got := key(pw, salt, p, len(want))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// NeedsRehash reports whether encoded should be replaced by a fresh Hash
// of the password (after a successful Verify): it is malformed, or its
// parameters, salt or key size are not the current ones.
func NeedsRehash(encoded string) bool {
	p, salt, k, err := decode(encoded)
	return err != nil || p != current || len(salt) != SaltSize || len(k) != KeySize
}

// dummy is the hash that Dummy returns, made once.
var dummy = sync.OnceValue(func() string {
	var pw [32]byte
	_, _ = rand.Read(pw[:])
	h, err := Hash(b64.EncodeToString(pw[:]))
	if err != nil {
		panic("password: hashing the dummy password: " + err.Error()) // unreachable: the password is 43 bytes
	}
	return h
})

// Dummy returns a valid hash, with the current parameters, of a random
// password nobody knows. A login for a user that does not exist verifies
// the given password against it, and fails, in the time a wrong password
// takes:
//
//	u, err := store.FindUser(ctx, tenant, name)
//	if errors.Is(err, storage.ErrNotFound) {
//		password.Verify(password.Dummy(), pw)
//		return errLoginRefused
//	}
//
// The first call hashes once.
func Dummy() string { return dummy() }

// encode formats a PHC string.
func encode(p params, salt, k []byte) string {
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s",
		algorithm, version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(k))
}

// decode parses a PHC string of Argon2id version 19 with exactly the
// parameters m, t and p in that order, in canonical form (decimal without
// sign or leading zeros, unpadded base64 without stray bits), and checks
// them against the limits.
func decode(encoded string) (p params, salt, k []byte, err error) {
	malformed := func(format string, args ...any) (params, []byte, []byte, error) {
		return params{}, nil, nil, fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	if len(encoded) > MaxEncodedBytes {
		return malformed("%d bytes, at most %d", len(encoded), MaxEncodedBytes)
	}
	fields := strings.Split(encoded, "$")
	if len(fields) != 6 || fields[0] != "" {
		return malformed("want $%s$v=%d$m=..,t=..,p=..$salt$hash", algorithm, version)
	}
	if fields[1] != algorithm {
		return malformed("algorithm %q, want %q", truncate(fields[1]), algorithm)
	}
	if v, ok := strings.CutPrefix(fields[2], "v="); !ok {
		return malformed("no version")
	} else if n, ok := number(v, version); !ok || n != version {
		return malformed("version %q, want %d", truncate(v), version)
	}
	var m, t, par uint64
	for i, kv := range strings.Split(fields[3], ",") {
		if i >= 3 {
			return malformed("parameters %q, want m, t and p", truncate(fields[3]))
		}
		name, val, _ := strings.Cut(kv, "=")
		want := [...]string{"m", "t", "p"}[i]
		limit := [...]uint64{MaxMemoryKiB, MaxTime, MaxThreads}[i]
		n, ok := number(val, limit)
		switch {
		case name != want:
			return malformed("parameter %q, want %q", truncate(name), want)
		case !ok:
			return malformed("%s=%q, want 1 to %d", want, truncate(val), limit)
		}
		switch i {
		case 0:
			m = n
		case 1:
			t = n
		case 2:
			par = n
		}
	}
	if par == 0 || m < 8*par { // parsed all three (zeros are refused by number)
		return malformed("parameters %q, want m, t and p with m >= 8p", truncate(fields[3]))
	}
	if !isBase64(fields[4]) || !isBase64(fields[5]) {
		return malformed("salt and hash: want unpadded standard base64")
	}
	if salt, err = b64.DecodeString(fields[4]); err != nil || len(salt) < MinSaltSize || len(salt) > MaxSaltSize {
		return malformed("salt: want %d to %d bytes of unpadded base64", MinSaltSize, MaxSaltSize)
	}
	if k, err = b64.DecodeString(fields[5]); err != nil || len(k) < MinKeySize || len(k) > MaxKeySize {
		return malformed("hash: want %d to %d bytes of unpadded base64", MinKeySize, MaxKeySize)
	}
	return params{memory: uint32(m), time: uint32(t), threads: uint8(par)}, salt, k, nil
}

// number parses a canonical decimal from 1 to limit: digits only, no
// leading zero.
func number(s string, limit uint64) (uint64, bool) {
	if s == "" || len(s) > 10 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > limit {
		return 0, false
	}
	return n, true
}

// isBase64 reports whether s has only characters of the standard base64
// alphabet: the decoder would skip CR and LF, which makes a string that
// is not canonical.
func isBase64(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// truncate shortens s for an error message.
func truncate(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}

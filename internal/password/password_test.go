package password

import (
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"
)

// phcRE is the documented shape of a new hash.
var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=65536,t=3,p=4\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

// cheap returns a valid hash of pw with small parameters, so that tests
// of the parser do not spend 64 MiB each.
func cheap(t testing.TB, pw string, p params, salt []byte, size int) string {
	t.Helper()
	return encode(p, salt, argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, uint32(size)))
}

var (
	small     = params{memory: 64, time: 1, threads: 1}
	smallSalt = []byte("0123456789abcdef")
)

func TestHashVerify(t *testing.T) {
	t.Parallel()
	h, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	if !phcRE.MatchString(h) {
		t.Fatalf("Hash = %q, want match %s", h, phcRE)
	}
	for pw, want := range map[string]bool{
		"correct horse battery staple":  true,
		"correct horse battery staple ": false,
		"Correct horse battery staple":  false,
		"x":                             false,
	} {
		ok, err := Verify(h, pw)
		if err != nil || ok != want {
			t.Errorf("Verify(%q) = %v, %v; want %v, nil", pw, ok, err, want)
		}
	}
	if NeedsRehash(h) {
		t.Errorf("NeedsRehash of a fresh hash")
	}
	h2, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatalf("Hash again: %v", err)
	}
	if h2 == h {
		t.Fatalf("two hashes of one password are equal: the salt is not random")
	}
}

// TestReferenceVector checks that an encoded hash from another
// implementation verifies: a test vector of the reference
// implementation (phc-winner-argon2's test.c: "password", "somesalt",
// t=2, m=64 MiB, p=1, 32-byte tag).
func TestReferenceVector(t *testing.T) {
	t.Parallel()
	const enc = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	// The reference implementation's output for these inputs.
	const want = "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7"
	p, salt, k, err := decode(enc)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if p != (params{memory: 65536, time: 2, threads: 1}) || string(salt) != "somesalt" || hex.EncodeToString(k) != want {
		t.Fatalf("decode = %+v, %q, %d bytes", p, salt, len(k))
	}
	if got := hex.EncodeToString(argon2.IDKey([]byte("password"), []byte("somesalt"), 2, 65536, 1, 32)); got != want {
		t.Fatalf("argon2.IDKey = %s, want %s", got, want)
	}
	for pw, want := range map[string]bool{"password": true, "passwore": false} {
		if ok, err := Verify(enc, pw); err != nil || ok != want {
			t.Errorf("Verify(vector, %q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	if !NeedsRehash(enc) {
		t.Errorf("NeedsRehash of a t=2, p=1 hash is false")
	}
}

func TestHashRefuses(t *testing.T) {
	t.Parallel()
	if _, err := Hash(""); !errors.Is(err, ErrEmpty) {
		t.Errorf("Hash(\"\"): %v, want ErrEmpty", err)
	}
	if _, err := Hash(strings.Repeat("a", MaxPasswordBytes+1)); !errors.Is(err, ErrTooLong) {
		t.Errorf("Hash of %d bytes: %v, want ErrTooLong", MaxPasswordBytes+1, err)
	}
	long := strings.Repeat("é", MaxPasswordBytes/2) // exactly MaxPasswordBytes
	h, err := Hash(long)
	if err != nil {
		t.Fatalf("Hash of %d bytes: %v", len(long), err)
	}
	if ok, err := Verify(h, long); !ok || err != nil {
		t.Fatalf("Verify of the longest password: %v, %v", ok, err)
	}
}

func TestVerifyNeverMatchingPasswords(t *testing.T) {
	t.Parallel()
	h := cheap(t, "pw", small, smallSalt, 32)
	for _, pw := range []string{"", strings.Repeat("a", MaxPasswordBytes+1)} {
		if ok, err := Verify(h, pw); ok || err != nil {
			t.Errorf("Verify of a %d-byte password = %v, %v; want false, nil", len(pw), ok, err)
		}
	}
	if ok, err := Verify(h, "pw"); !ok || err != nil {
		t.Fatalf("Verify = %v, %v", ok, err)
	}
}

func TestVerifyRefusesMalformed(t *testing.T) {
	t.Parallel()
	good := cheap(t, "pw", small, smallSalt, 32)
	parts := strings.Split(good, "$") // "", alg, v, params, salt, hash
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	for name, enc := range map[string]string{
		"empty":            "",
		"garbage":          "not a hash",
		"too long":         good + strings.Repeat("A", MaxEncodedBytes),
		"bcrypt":           "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"argon2i":          with(1, "argon2i"),
		"argon2d":          with(1, "argon2d"),
		"no version":       strings.Join(append([]string{"", "argon2id"}, parts[3:]...), "$"),
		"version 16":       with(2, "v=16"),
		"version 019":      with(2, "v=019"),
		"version word":     with(2, "ver=19"),
		"m over 1 GiB":     with(3, "m=1048577,t=1,p=1"),
		"m huge":           with(3, "m=99999999999999999999,t=1,p=1"),
		"t over 10":        with(3, "m=64,t=11,p=1"),
		"p over 16":        with(3, "m=256,t=1,p=17"),
		"m zero":           with(3, "m=0,t=1,p=1"),
		"t zero":           with(3, "m=64,t=0,p=1"),
		"p zero":           with(3, "m=64,t=1,p=0"),
		"m below 8p":       with(3, "m=31,t=1,p=4"),
		"negative":         with(3, "m=-64,t=1,p=1"),
		"plus sign":        with(3, "m=+64,t=1,p=1"),
		"leading zero":     with(3, "m=064,t=1,p=1"),
		"spaces":           with(3, "m=64, t=1, p=1"),
		"hex":              with(3, "m=0x40,t=1,p=1"),
		"order":            with(3, "t=1,m=64,p=1"),
		"missing p":        with(3, "m=64,t=1"),
		"extra param":      with(3, "m=64,t=1,p=1,keyid=a"),
		"no params":        with(3, ""),
		"salt padded":      with(4, parts[4]+"=="),
		"salt not base64":  with(4, "!!!!!!!!!!!!!!!!!!!!!!"),
		"salt short":       with(4, "c29tZQ"),
		"salt long":        with(4, strings.Repeat("A", 88)),
		"salt stray bits":  with(4, parts[4][:len(parts[4])-1]+"B"),
		"hash short":       with(5, "c29tZXNhbHQ"),
		"hash url base64":  with(5, strings.ReplaceAll(strings.ReplaceAll(parts[5], "+", "-"), "/", "_")+"-_"),
		"hash empty":       with(5, ""),
		"extra field":      good + "$x",
		"no leading $":     strings.TrimPrefix(good, "$"),
		"trailing newline": good + "\n",
		"newline in salt":  with(4, parts[4][:4]+"\r\n"+parts[4][4:]),
	} {
		if enc == good {
			continue // a substitution that changed nothing (e.g. no + or / to replace)
		}
		ok, err := Verify(enc, "pw")
		if ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Verify(%q) = %v, %v; want false, ErrMalformed", name, enc, ok, err)
		}
		if !NeedsRehash(enc) {
			t.Errorf("%s: NeedsRehash(%q) = false", name, enc)
		}
	}
	// The limits themselves are accepted.
	for _, p := range []string{"m=1048576,t=1,p=1", "m=128,t=10,p=16", "m=8,t=1,p=1"} {
		if _, _, _, err := decode(with(3, p)); err != nil {
			t.Errorf("decode with %s: %v", p, err)
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		enc  string
		want bool
	}{
		"current":    {cheap(t, "pw", current, smallSalt, KeySize), false},
		"weaker m":   {cheap(t, "pw", params{memory: 32 * 1024, time: Time, threads: Threads}, smallSalt, KeySize), true},
		"other t":    {cheap(t, "pw", params{memory: Memory, time: 2, threads: Threads}, smallSalt, KeySize), true},
		"other p":    {cheap(t, "pw", params{memory: Memory, time: Time, threads: 2}, smallSalt, KeySize), true},
		"short salt": {cheap(t, "pw", current, smallSalt[:8], KeySize), true},
		"short key":  {cheap(t, "pw", current, smallSalt, 16), true},
		"malformed":  {"$argon2id$", true},
	} {
		if got := NeedsRehash(tc.enc); got != tc.want {
			t.Errorf("%s: NeedsRehash = %v, want %v", name, got, tc.want)
		}
	}
}

func TestDummy(t *testing.T) {
	t.Parallel()
	d := Dummy()
	if !phcRE.MatchString(d) {
		t.Fatalf("Dummy() = %q, want a current hash", d)
	}
	if Dummy() != d {
		t.Fatal("Dummy changes between calls")
	}
	if NeedsRehash(d) {
		t.Fatal("NeedsRehash(Dummy())")
	}
	for _, pw := range []string{"password", "", d} {
		if ok, err := Verify(d, pw); ok || err != nil {
			t.Errorf("Verify(Dummy(), %q) = %v, %v; want false, nil", pw, ok, err)
		}
	}
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	h := cheap(t, "pw", small, smallSalt, 32)
	var wg sync.WaitGroup
	for range 4 * MaxConcurrent {
		wg.Go(func() {
			if ok, err := Verify(h, "pw"); !ok || err != nil {
				t.Errorf("Verify = %v, %v", ok, err)
			}
		})
	}
	wg.Wait()
}

// FuzzDecode checks that the parser never panics, accepts only what is
// within the limits, and that what it accepts is canonical: encoding it
// again gives the same string.
func FuzzDecode(f *testing.F) {
	f.Add(cheap(f, "pw", small, smallSalt, 32))
	f.Add("$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$c29tZXNhbHRzb21lc2FsdA\n")
	f.Add("$argon2id$v=19$m=65536,t=3,p=4$MDEyMzQ1Njc4OWFiY2RlZg$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=1048577,t=1,p=1$c29tZXNhbHQ$c29tZXNhbHRzb21lc2FsdA")
	f.Add("$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHQ$c29tZXNhbHRzb21lc2FsdA")
	f.Add("$argon2id$v=19$m=64,t=1,p=1,keyid=x$c29tZXNhbHQ$c29tZXNhbHRzb21lc2FsdA")
	f.Add("$$$$$")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, k, err := decode(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode(%q): %v, not ErrMalformed", s, err)
			}
			if !NeedsRehash(s) {
				t.Fatalf("NeedsRehash(%q) = false for a malformed hash", s)
			}
			return
		}
		switch {
		case p.memory < 8*uint32(p.threads) || p.memory > MaxMemoryKiB:
			t.Fatalf("decode(%q): memory %d accepted", s, p.memory)
		case p.time < 1 || p.time > MaxTime:
			t.Fatalf("decode(%q): time %d accepted", s, p.time)
		case p.threads < 1 || p.threads > MaxThreads:
			t.Fatalf("decode(%q): threads %d accepted", s, p.threads)
		case len(salt) < MinSaltSize || len(salt) > MaxSaltSize:
			t.Fatalf("decode(%q): %d-byte salt accepted", s, len(salt))
		case len(k) < MinKeySize || len(k) > MaxKeySize:
			t.Fatalf("decode(%q): %d-byte key accepted", s, len(k))
		}
		if again := encode(p, salt, k); again != s {
			t.Fatalf("decode(%q) is not canonical: encodes back as %q", s, again)
		}
	})
}

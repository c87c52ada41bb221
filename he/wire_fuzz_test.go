package he

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/hegate/hegate"
)

// The wire-format fuzz targets do not take whole ciphertexts or key sets as
// inputs: those are 131 KB and megabytes, and the fuzzer minimises every
// input that finds new coverage for up to -fuzzminimizetime (60 s by
// default), so inputs that large left it minimising nearly all the time
// (about 2,400 executions in a minute). An input is instead a small recipe
// (see derive) applied to the fixture's valid encoding: the corpus stays a
// few bytes per entry, minimisation is cheap, and mutations still reach the
// checks deep in a well-formed encoding, which random bytes never get past
// the header to.

// derive is the bytes an input stands for (deriveReader's too). raw: head itself. Otherwise a
// copy of valid with its first len(head) bytes replaced by head, then each
// 4-byte patch applied (a 24-bit little-endian offset, modulo the length,
// and a byte XORed there), then resize bytes appended (zeros) or, when
// negative, removed from the end.
func derive(valid []byte, raw bool, head, patches []byte, resize int32) []byte {
	if raw {
		return head
	}
	b := bytes.Clone(valid)
	copy(b, head)
	for ; len(patches) >= 4 && len(b) > 0; patches = patches[4:] {
		off := int(patches[0]) | int(patches[1])<<8 | int(patches[2])<<16
		b[off%len(b)] ^= patches[3]
	}
	switch {
	case resize < 0:
		b = b[:len(b)-min(int(-int64(resize)), len(b))]
	case resize > 0:
		b = append(b, make([]byte, min(int(resize), 1<<16))...)
	}
	return b
}

// deriveReader is derive(valid, ...) as a reader, without copying valid:
// for key sets, megabytes that CheckKeySet streams anyway.
func deriveReader(valid []byte, raw bool, head, patches []byte, resize int32) (io.Reader, int) {
	if raw {
		return bytes.NewReader(head), len(head)
	}
	n := len(valid)
	switch {
	case resize < 0:
		n -= min(int(-int64(resize)), n)
	case resize > 0:
		n += min(int(resize), 1<<16)
	}
	pr := &patchedReader{valid: valid, head: head, n: n, xor: map[int]byte{}}
	for ; len(patches) >= 4 && len(valid) > 0; patches = patches[4:] {
		off := (int(patches[0]) | int(patches[1])<<8 | int(patches[2])<<16) % len(valid)
		pr.xor[off] ^= patches[3]
	}
	return pr, n
}

// patchedReader reads derive's bytes: head over valid, XOR patches,
// cut at n or padded with zeros to it.
type patchedReader struct {
	valid, head []byte
	xor         map[int]byte
	n, off      int
}

func (r *patchedReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	p = p[:min(len(p), r.n-r.off)]
	clear(p)
	copy(p, r.valid[min(r.off, len(r.valid)):])
	if r.off < len(r.head) {
		copy(p, r.head[r.off:min(len(r.head), len(r.valid))])
	}
	for off, x := range r.xor {
		if off >= r.off && off < r.off+len(p) {
			p[off-r.off] ^= x
		}
	}
	r.off += len(p)
	return len(p), nil
}

// untouched reports whether a recipe stands for valid itself.
func untouched(valid []byte, raw bool, head, patches []byte, resize int32) bool {
	if raw || resize != 0 || !bytes.HasPrefix(valid, head) {
		return false
	}
	for ; len(patches) >= 4; patches = patches[4:] {
		if patches[3] != 0 {
			return false
		}
	}
	return true
}

// patch is a 4-byte patch of derive.
func patch(off int, xor byte) []byte {
	return []byte{byte(off), byte(off >> 8), byte(off >> 16), xor}
}

func FuzzCiphertext(f *testing.F) {
	fx := setup(f)
	n := len(fx.input)
	scale := make([]byte, 24)
	copy(scale, fx.input[:16])
	binary.LittleEndian.PutUint64(scale[16:], 0x7ff8000000000001)            // NaN
	f.Add(true, fx.input[:headerSize], []byte(nil), int32(0))                // a header alone
	f.Add(true, []byte("HGCT"), []byte(nil), int32(0))                       // a magic alone
	f.Add(false, []byte(nil), []byte(nil), int32(0))                         // the valid ciphertext
	f.Add(false, []byte(nil), []byte(nil), int32(-1))                        // truncated
	f.Add(false, []byte(nil), []byte(nil), int32(8))                         // too long
	f.Add(false, []byte(nil), patch(5, 3), int32(0))                         // kind
	f.Add(false, []byte(nil), patch(9, 1), int32(0))                         // flags
	f.Add(false, []byte(nil), patch(30, 1), int32(0))                        // parameters
	f.Add(false, scale, []byte(nil), int32(0))                               // scale
	f.Add(false, []byte(nil), patch(headerSize+seedSize+15, 0xff), int32(0)) // a coefficient
	f.Add(false, []byte(nil), append(patch(headerSize+3, 0x80), patch(n-1, 0x40)...), int32(0))
	f.Fuzz(func(t *testing.T, raw bool, head, patches []byte, resize int32) {
		b := derive(fx.input, raw, head, patches, resize)
		err := fx.m.CheckCiphertext(b)
		switch {
		case err == nil:
			// An input ciphertext that passes is still no result.
			if _, err := fx.m.Decrypt(fx.sk, b); err == nil {
				t.Fatal("an input ciphertext decrypted as a result")
			}
		case !hegate.Is(err, hegate.KindInvalid):
			t.Fatalf("%d bytes: %v, want an invalid-input error", len(b), err)
		case untouched(fx.input, raw, head, patches, resize):
			t.Fatalf("the valid ciphertext was refused: %v", err)
		}
	})
}

func FuzzKeySet(f *testing.F) {
	fx := setup(f)
	n := len(fx.keys)
	f.Add(true, fx.keys[:headerSize], []byte(nil), int32(0))            // a header alone
	f.Add(true, fx.keys[:headerSize+recordHead], []byte(nil), int32(0)) // and a record head
	f.Add(false, []byte(nil), []byte(nil), int32(0))                    // the valid key set
	f.Add(false, []byte(nil), []byte(nil), int32(-100))                 // truncated
	f.Add(false, []byte(nil), []byte(nil), int32(3))                    // too long
	f.Add(false, []byte(nil), patch(8, 1), int32(0))                    // key count
	f.Add(false, []byte(nil), patch(20, 1), int32(0))                   // parameters
	f.Add(false, []byte(nil), patch(headerSize+8, 1), int32(0))         // a key's level
	f.Add(false, []byte(nil), patch(headerSize+recordHead+seedSize+7, 0xff), int32(0))
	f.Add(false, []byte(nil), patch(n-2, 0x80), int32(0))
	f.Fuzz(func(t *testing.T, raw bool, head, patches []byte, resize int32) {
		r, size := deriveReader(fx.keys, raw, head, patches, resize)
		_, err := fx.m.CheckKeySet(r)
		switch {
		case err == nil && int64(size) != fx.m.Manifest().KeySetBytes:
			t.Fatalf("accepted %d bytes", size)
		case err != nil && !hegate.Is(err, hegate.KindInvalid) && !hegate.Is(err, hegate.KindTooLarge):
			t.Fatalf("%d bytes: %v, want an invalid or too-large error", size, err)
		case err != nil && untouched(fx.keys, raw, head, patches, resize):
			t.Fatalf("the valid key set was refused: %v", err)
		}
	})
}

// TestDeriveReader: deriveReader reads what derive makes.
func TestDeriveReader(t *testing.T) {
	valid := make([]byte, 1000)
	for i := range valid {
		valid[i] = byte(i * 7)
	}
	for _, tc := range []struct {
		raw           bool
		head, patches []byte
		resize        int32
	}{
		{false, nil, nil, 0},
		{true, []byte("raw bytes"), patch(3, 1), 5},
		{false, []byte("head"), nil, 0},
		{false, bytes.Repeat([]byte{9}, 2000), nil, 10},
		{false, nil, append(patch(0, 1), append(patch(999, 2), append(patch(1500, 3), patch(500, 4)...)...)...), -3},
		{false, nil, patch(10, 0xff), -2000},
		{false, []byte("hd"), patch(998, 1), 700},
	} {
		want := derive(valid, tc.raw, tc.head, tc.patches, tc.resize)
		r, n := deriveReader(valid, tc.raw, tc.head, tc.patches, tc.resize)
		got, err := io.ReadAll(io.LimitReader(r, 1<<20))
		if err != nil || !bytes.Equal(got, want) || n != len(want) {
			t.Errorf("%+v: read %d bytes (said %d), want %d, equal %v, %v", tc, len(got), n, len(want), bytes.Equal(got, want), err)
		}
	}
}

package he

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/hegate/hegate"
)

// fixture is a compiled tiny model with a key set and one input ciphertext.
type fixture struct {
	m     *Model
	sk    *SecretKey
	keys  []byte
	input []byte
}

var (
	fixtureOnce sync.Once
	fixtureVal  fixture
)

func setup(t testing.TB) fixture {
	t.Helper()
	fixtureOnce.Do(func() {
		r := rand.New(rand.NewPCG(5, 6))
		m, err := Compile(context.Background(), tinyDense(r), CompileOptions{Params: "test-n12", AllowInsecure: true})
		if err != nil {
			panic(err)
		}
		sk, _ := m.GenerateSecretKey()
		var keys bytes.Buffer
		if _, err := m.WriteKeySet(&keys, sk); err != nil {
			panic(err)
		}
		in, err := m.Encrypt(sk, randVec(r, 16, 1))
		if err != nil {
			panic(err)
		}
		fixtureVal = fixture{m: m, sk: sk, keys: keys.Bytes(), input: in}
	})
	return fixtureVal
}

func mutate(b []byte, f func([]byte)) []byte {
	c := append([]byte(nil), b...)
	f(c)
	return c
}

func TestCiphertextRejected(t *testing.T) {
	f := setup(t)
	other, err := Compile(context.Background(), tinyCNN(rand.New(rand.NewPCG(7, 8))), CompileOptions{Params: "test-n12", AllowInsecure: true})
	if err != nil {
		t.Fatal(err)
	}
	otherSK, _ := other.GenerateSecretKey()
	otherCT, _ := other.Encrypt(otherSK, make([]float64, 100))
	n := len(f.input)
	tests := []struct {
		name, want string
		b          []byte
	}{
		{"fail/empty", "shorter than", nil},
		{"fail/garbage", "bad magic", bytes.Repeat([]byte{0x41}, n)},
		{"fail/truncated", "want exactly", f.input[:n-1]},
		{"fail/too-long", "want exactly", append(append([]byte(nil), f.input...), 0)},
		{"fail/version", "version", mutate(f.input, func(b []byte) { b[4] = 9 })},
		{"fail/not-seeded", "flags", mutate(f.input, func(b []byte) { b[9] = 0 })},
		{"fail/kind", "kind", mutate(f.input, func(b []byte) { b[5] = byte(ctResult) })},
		{"fail/params", "other CKKS parameters", mutate(f.input, func(b []byte) { b[30] ^= 1 })},
		{"fail/scale", "scale", mutate(f.input, func(b []byte) { binary.LittleEndian.PutUint64(b[16:], 0x7ff8000000000001) })},
		{"fail/level", "level", otherCT},
		{"fail/coefficient", "not below its modulus", mutate(f.input, func(b []byte) {
			binary.LittleEndian.PutUint64(b[headerSize+seedSize+8:], ^uint64(0))
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := f.m.CheckCiphertext(tc.b)
			if err == nil {
				_, _, err = f.m.Evaluate(context.Background(), &KeySet{k: &keySet{}}, tc.b, testRelease)
			}
			if !hegate.Is(err, hegate.KindInvalid) || !strings.Contains(hegate.DetailOf(err), tc.want) {
				t.Fatalf("got %v, want invalid mentioning %q", err, tc.want)
			}
		})
	}
}

func TestKeySetRejected(t *testing.T) {
	f := setup(t)
	n := len(f.keys)
	tests := []struct {
		name, want string
		kind       hegate.Kind
		b          []byte
	}{
		{"fail/empty", "ends after 0 bytes", hegate.KindInvalid, nil},
		{"fail/garbage", "bad magic", hegate.KindInvalid, bytes.Repeat([]byte{7}, 4096)},
		{"fail/truncated", "ends after", hegate.KindInvalid, f.keys[:n-100]},
		{"fail/too-long", "larger than", hegate.KindTooLarge, append(append([]byte(nil), f.keys...), 1, 2, 3)},
		{"fail/params", "other CKKS parameters", hegate.KindInvalid, mutate(f.keys, func(b []byte) { b[20] ^= 1 })},
		{"fail/count", "Galois keys, model", hegate.KindInvalid, mutate(f.keys, func(b []byte) { b[8]++ })},
		{"fail/uncompressed", "compressed", hegate.KindInvalid, mutate(f.keys, func(b []byte) { b[5] = 0 })},
		{"fail/galois-element", "is for element", hegate.KindInvalid, mutate(f.keys, func(b []byte) {
			off := headerSize + int(f.m.c.keySize(f.m.c.relinLevel).recordBytes())
			binary.LittleEndian.PutUint64(b[off:], 3)
		})},
		{"fail/key-level", "needs it at level", hegate.KindInvalid, mutate(f.keys, func(b []byte) { b[headerSize+8]++ })},
		{"fail/coefficient", "not below its modulus", hegate.KindInvalid, mutate(f.keys, func(b []byte) {
			binary.LittleEndian.PutUint64(b[headerSize+recordHead+seedSize:], ^uint64(0))
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, read := range []func(io.Reader) error{
				func(r io.Reader) error { _, err := f.m.CheckKeySet(r); return err },
				func(r io.Reader) error { _, err := f.m.ReadKeySet(r); return err },
			} {
				err := read(bytes.NewReader(tc.b))
				if !hegate.Is(err, tc.kind) || !strings.Contains(hegate.DetailOf(err), tc.want) {
					t.Fatalf("got %v, want %v mentioning %q", err, tc.kind, tc.want)
				}
			}
		})
	}
	t.Run("fail/reader-error", func(t *testing.T) {
		boom := errors.New("connection reset")
		_, err := f.m.CheckKeySet(io.MultiReader(bytes.NewReader(f.keys[:1000]), iotestErr{boom}))
		if !errors.Is(err, boom) || hegate.KindOf(err) != hegate.KindInternal {
			t.Fatalf("got %v, want the reader's error", err)
		}
	})
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

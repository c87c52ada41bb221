package cosesig

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"io"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/hegate/hegate/attest"
)

func TestRawHelpers(t *testing.T) {
	enc := func(v any) []byte {
		b, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if b, err := RawBytes(enc([]byte{1, 2}), "b"); err != nil || !bytes.Equal(b, []byte{1, 2}) {
		t.Errorf("RawBytes: %x %v", b, err)
	}
	if s, err := RawText(enc("hi"), "s"); err != nil || s != "hi" {
		t.Errorf("RawText: %q %v", s, err)
	}
	if n, err := RawInt(enc(-75000), "n"); err != nil || n != -75000 {
		t.Errorf("RawInt: %d %v", n, err)
	}
	if a, err := RawArray(enc([]int{1, 2, 3}), "a"); err != nil || len(a) != 3 {
		t.Errorf("RawArray: %v %v", a, err)
	}
	if m, err := RawIntMap(enc(map[int]string{-1: "x"}), "m"); err != nil || len(m) != 1 {
		t.Errorf("RawIntMap: %v %v", m, err)
	}
	if m, err := RawTextMap(enc(map[string]int{"k": 1}), "m"); err != nil || len(m) != 1 {
		t.Errorf("RawTextMap: %v %v", m, err)
	}
	for name, err := range map[string]error{
		"bytes of text": func() error { _, err := RawBytes(enc("x"), "b"); return err }(),
		"text of bytes": func() error { _, err := RawText(enc([]byte{1}), "s"); return err }(),
		"int of text":   func() error { _, err := RawInt(enc("1"), "n"); return err }(),
		"int too big": func() error {
			_, err := RawInt([]byte{0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "n")
			return err
		}(),
		"array of map":      func() error { _, err := RawArray(enc(map[int]int{}), "a"); return err }(),
		"int map of text":   func() error { _, err := RawIntMap(enc(map[string]int{"k": 1}), "m"); return err }(),
		"text map of int":   func() error { _, err := RawTextMap(enc(map[int]int{1: 1}), "m"); return err }(),
		"int map of array":  func() error { _, err := RawIntMap(enc([]int{}), "m"); return err }(),
		"text map of array": func() error { _, err := RawTextMap(enc([]int{}), "m"); return err }(),
		"duplicate key":     func() error { _, err := RawTextMap([]byte{0xa2, 0x61, 'k', 0x01, 0x61, 'k', 0x02}, "m"); return err }(),
		"empty":             func() error { _, err := RawBytes(nil, "b"); return err }(),
	} {
		if attest.ReasonOf(err) != attest.ReasonMalformed {
			t.Errorf("%s: %v; want malformed", name, err)
		}
	}
	if err := Unmarshal(make([]byte, attest.MaxEvidenceBytes+1), new(any), "x"); attest.ReasonOf(err) != attest.ReasonTooLarge {
		t.Errorf("oversized: %v", err)
	}
}

// opaqueSigner hides an ML-DSA-65 key behind crypto.Signer, as an HSM
// would.
type opaqueSigner struct{ k *mldsa65.PrivateKey }

func (s opaqueSigner) Public() crypto.PublicKey { return s.k.Public() }
func (s opaqueSigner) Sign(r io.Reader, msg []byte, o crypto.SignerOpts) ([]byte, error) {
	return s.k.Sign(r, msg, o)
}

func TestMLDSAOpaqueSigner(t *testing.T) {
	pk, sk, err := mldsa65.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(opaqueSigner{sk})
	if err != nil {
		t.Fatal(err)
	}
	if s.Algorithm() != AlgorithmMLDSA65 {
		t.Fatalf("alg %v", s.Algorithm())
	}
	b, err := Sign(rand.Reader, opaqueSigner{sk}, []byte("k"), []byte("p"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(pk); err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(pk)
	if err != nil || v.Algorithm() != AlgorithmMLDSA65 {
		t.Fatalf("NewVerifier: %v", err)
	}
	if _, err := NewSigner(nil); err == nil {
		t.Error("NewSigner(nil)")
	}
}

package cosesig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	cose "github.com/veraison/go-cose"

	"github.com/hegate/hegate/attest"
)

func keys(t *testing.T) map[string]crypto.Signer {
	t.Helper()
	out := map[string]crypto.Signer{}
	for name, c := range map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = k
	}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	out["Ed25519"] = ed
	_, ml, _ := mldsa65.GenerateKey(rand.Reader)
	out["ML-DSA-65"] = ml
	return out
}

func wantReason(t *testing.T, err error, want attest.Reason) {
	t.Helper()
	if got := attest.ReasonOf(err); got != want {
		t.Fatalf("reason %q (%v); want %q", got, err, want)
	}
}

func TestSignVerify(t *testing.T) {
	wantAlg := map[string]cose.Algorithm{"P-256": cose.AlgorithmES256, "P-384": cose.AlgorithmES384,
		"P-521": cose.AlgorithmES512, "Ed25519": cose.AlgorithmEdDSA, "ML-DSA-65": AlgorithmMLDSA65}
	payload := []byte("payload")
	for name, k := range keys(t) {
		t.Run(name, func(t *testing.T) {
			b, err := Sign(rand.Reader, k, []byte("kid"), payload)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !m.Tagged || m.Alg != wantAlg[name] || !bytes.Equal(m.KID, []byte("kid")) || !bytes.Equal(m.Payload, payload) {
				t.Fatalf("message %+v", m)
			}
			if err := m.Verify(k.Public()); err != nil {
				t.Fatal(err)
			}
			// go-cose agrees, for the algorithms it knows.
			if m.Alg != AlgorithmMLDSA65 {
				var gm cose.Sign1Message
				if err := gm.UnmarshalCBOR(b); err != nil {
					t.Fatal(err)
				}
				v, err := cose.NewVerifier(m.Alg, k.Public())
				if err != nil {
					t.Fatal(err)
				}
				if err := gm.Verify(nil, v); err != nil {
					t.Fatalf("go-cose: %v", err)
				}
			}
			// Untagged decodes too.
			if m2, err := Decode(b[1:]); err != nil || m2.Tagged {
				t.Fatalf("untagged: %v", err)
			}
			// Another key of the same type does not verify.
			other := keys(t)[name]
			wantReason(t, m.Verify(other.Public()), attest.ReasonBadSignature)
			// A tampered payload does not verify.
			m.Payload = []byte("payloae")
			wantReason(t, m.Verify(k.Public()), attest.ReasonBadSignature)
		})
	}
}

func TestAlgorithmPinned(t *testing.T) {
	ks := keys(t)
	b, err := Sign(rand.Reader, ks["P-256"], nil, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"P-384", "P-521", "Ed25519", "ML-DSA-65"} {
		wantReason(t, m.Verify(ks[name].Public()), attest.ReasonAlgMismatch)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	wantReason(t, m.Verify(&rk.PublicKey), attest.ReasonAlgUnsupported)
	wantReason(t, m.Verify(nil), attest.ReasonAlgUnsupported)
	wantReason(t, m.Verify(ed25519.PublicKey(make([]byte, 5))), attest.ReasonAlgUnsupported)
	if _, err := NewSigner(rk); err == nil {
		t.Error("NewSigner accepted an RSA key")
	}
}

func TestECDSARange(t *testing.T) {
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, _ := ecdsa.GenerateKey(c, rand.Reader)
		alg, _ := AlgorithmFor(&k.PublicKey)
		n := c.Params().N
		size := (c.Params().BitSize + 7) / 8
		protected := ProtectedHeader(alg, nil)
		msg := func(r, s *big.Int) *Message {
			sig := make([]byte, 2*size)
			r.FillBytes(sig[:size])
			s.FillBytes(sig[size:])
			m, err := Decode(Assemble(protected, nil, []byte("x"), sig, false))
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		one, zero := big.NewInt(1), big.NewInt(0)
		nMinus1 := new(big.Int).Sub(n, one)
		maxV := new(big.Int).Sub(new(big.Int).Lsh(one, uint(8*size)), one)
		for _, rs := range [][2]*big.Int{{zero, zero}, {zero, one}, {one, zero}, {n, one}, {one, n}, {maxV, one}, {one, maxV}} {
			wantReason(t, msg(rs[0], rs[1]).Verify(&k.PublicKey), attest.ReasonSignatureRange)
		}
		// In range but wrong: an ordinary bad signature.
		wantReason(t, msg(nMinus1, nMinus1).Verify(&k.PublicKey), attest.ReasonBadSignature)
		// Wrong length.
		m, _ := Decode(Assemble(protected, nil, []byte("x"), make([]byte, 2*size+1), false))
		wantReason(t, m.Verify(&k.PublicKey), attest.ReasonBadSignature)
	}
}

func TestDecodeRefuses(t *testing.T) {
	es256 := ProtectedHeader(cose.AlgorithmES256, nil)
	enc := func(v any) []byte {
		b, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sig := make([]byte, 64)
	cases := []struct {
		name string
		b    []byte
		want attest.Reason
	}{
		{"empty", nil, attest.ReasonMalformed},
		{"oversized", make([]byte, attest.MaxEvidenceBytes+1), attest.ReasonTooLarge},
		{"not an array", enc(map[int]int{1: 1}), attest.ReasonMalformed},
		{"three elements", enc([]any{es256, map[int]int{}, []byte("x")}), attest.ReasonMalformed},
		{"five elements", enc([]any{es256, map[int]int{}, []byte("x"), sig, sig}), attest.ReasonMalformed},
		{"other tag", append([]byte{0xd1}, Assemble(es256, nil, []byte("x"), sig, false)...), attest.ReasonMalformed},
		{"tag 18 twice", append([]byte{0xd2}, Assemble(es256, nil, []byte("x"), sig, true)...), attest.ReasonMalformed},
		{"protected as a map", enc([]any{map[int]int{1: -7}, map[int]int{}, []byte("x"), sig}), attest.ReasonBadProtectedHeader},
		{"unprotected not a map", enc([]any{es256, []int{}, []byte("x"), sig}), attest.ReasonMalformed},
		{"detached payload", enc([]any{es256, map[int]int{}, nil, sig}), attest.ReasonMalformed},
		{"signature not bytes", enc([]any{es256, map[int]int{}, []byte("x"), "sig"}), attest.ReasonMalformed},
		{"protected trailing bytes", Assemble(append(bytes.Clone(es256), 0), nil, []byte("x"), sig, true), attest.ReasonBadProtectedHeader},
		{"protected bytes label", Assemble([]byte{0xa2, 0x01, 0x26, 0x41, 0x00, 0x01}, nil, []byte("x"), sig, true), attest.ReasonBadProtectedHeader},
		{"protected float label", Assemble([]byte{0xa2, 0x01, 0x26, 0xf9, 0x3c, 0x00, 0x01}, nil, []byte("x"), sig, true), attest.ReasonBadProtectedHeader},
		{"unprotected duplicate", Assemble(es256, []byte{0xa2, 0x04, 0x41, 0x00, 0x04, 0x41, 0x00}, []byte("x"), sig, true), attest.ReasonMalformed},
		{"crit in unprotected", Assemble(es256, enc(map[int]any{2: []int{1}}), []byte("x"), sig, true), attest.ReasonBadProtectedHeader},
		{"crit not an array", Assemble(enc(map[int]any{1: -7, 2: 1}), nil, []byte("x"), sig, true), attest.ReasonBadProtectedHeader},
		{"crit content type", Assemble(enc(map[int]any{1: -7, 2: []int{3}, 3: "a/b"}), nil, []byte("x"), sig, true), attest.ReasonBadProtectedHeader},
		{"crit of unknown text label", Assemble(enc(map[any]any{int64(1): -7, int64(2): []any{"t"}, "t": 1}), nil, []byte("x"), sig, true), attest.ReasonBadProtectedHeader},
		{"alg a float", Assemble(enc(map[int]any{1: 1.5}), nil, []byte("x"), sig, true), attest.ReasonBadProtectedHeader},
		{"alg too big", Assemble([]byte{0xa1, 0x01, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, nil, []byte("x"), sig, true), attest.ReasonBadProtectedHeader},
		{"alg empty text", Assemble(enc(map[int]any{1: ""}), nil, []byte("x"), sig, true), attest.ReasonAlgNone},
		{"kid too long", Assemble(enc(map[int]any{1: -7, 4: make([]byte, MaxKIDBytes+1)}), nil, []byte("x"), sig, true), attest.ReasonBadProtectedHeader},
		{"kid empty", Assemble(enc(map[int]any{1: -7, 4: []byte{}}), nil, []byte("x"), sig, true), attest.ReasonBadProtectedHeader},
		{"content type a map", Assemble(enc(map[int]any{1: -7, 3: map[int]int{}}), nil, []byte("x"), sig, true), attest.ReasonBadProtectedHeader},
		{"indefinite length", []byte{0x9f, 0xff}, attest.ReasonMalformed},
		{"indefinite-length protected", Assemble([]byte{0xbf, 0x01, 0x26, 0xff}, nil, []byte("x"), sig, true), attest.ReasonBadProtectedHeader},
		{"invalid UTF-8", Assemble(enc(map[int]any{1: -7}), []byte{0xa1, 0x03, 0x62, 0xff, 0xfe}, []byte("x"), sig, true), attest.ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.b)
			wantReason(t, err, tc.want)
		})
	}
}

func TestAcceptedHeaders(t *testing.T) {
	enc := func(v any) []byte {
		b, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sig := make([]byte, 64)
	for name, p := range map[string][]byte{
		"crit alg":           enc(map[int]any{1: -7, 2: []int{1}}),
		"content type":       enc(map[int]any{1: -7, 3: "application/eat+cwt"}),
		"unknown non-crit":   enc(map[any]any{int64(1): -7, int64(-65537): 1, "x": []any{1}}),
		"unprotected others": ProtectedHeader(cose.AlgorithmES256, nil),
	} {
		un := []byte(nil)
		if name == "unprotected others" {
			un = enc(map[int]any{4: []byte("hint"), 33: []byte{1}})
		}
		m, err := Decode(Assemble(p, un, []byte("x"), sig, true))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if name == "unprotected others" && (!m.UnprotectedKID || m.KID != nil) {
			t.Errorf("%s: kid %x unprotected %v", name, m.KID, m.UnprotectedKID)
		}
	}
}

// TestMLDSAVector checks the ML-DSA-65 verifier against a signature made
// by circl directly with an empty context, as draft-ietf-cose-dilithium
// specifies.
func TestMLDSAVector(t *testing.T) {
	pk, sk, err := mldsa65.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	protected := ProtectedHeader(AlgorithmMLDSA65, []byte("k"))
	tbs := ToBeSigned(protected, []byte("payload"))
	sig := make([]byte, mldsa65.SignatureSize)
	if err := mldsa65.SignTo(sk, tbs, nil, false, sig); err != nil {
		t.Fatal(err)
	}
	m, err := Decode(Assemble(protected, nil, []byte("payload"), sig, true))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(pk); err != nil {
		t.Fatal(err)
	}
	// A signature with a non-empty context is another signature.
	if err := mldsa65.SignTo(sk, tbs, []byte("ctx"), false, sig); err != nil {
		t.Fatal(err)
	}
	m.Signature = sig
	wantReason(t, m.Verify(pk), attest.ReasonBadSignature)
}

func TestToBeSigned(t *testing.T) {
	// ["Signature1", h'a10126', h'', h'01']
	want := []byte{0x84, 0x6a, 'S', 'i', 'g', 'n', 'a', 't', 'u', 'r', 'e', '1', 0x43, 0xa1, 0x01, 0x26, 0x40, 0x41, 0x01}
	if got := ToBeSigned([]byte{0xa1, 0x01, 0x26}, []byte{1}); !bytes.Equal(got, want) {
		t.Fatalf("%x; want %x", got, want)
	}
	// An empty protected header is h'', not null.
	if got := ToBeSigned(nil, nil); !bytes.Equal(got[len(got)-3:], []byte{0x40, 0x40, 0x40}) {
		t.Fatalf("%x", got)
	}
}

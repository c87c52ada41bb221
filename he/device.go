package he

import (
	"bytes"
	"fmt"
	"io"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"

	"github.com/hegate/hegate"
)

// The device side: key generation, encryption and decryption. These run on
// the edge device; the secret key never leaves it.

type secretKey struct {
	sk     *rlwe.SecretKey
	params *Params
}

// GenerateSecretKey makes a fresh CKKS secret key (uniform ternary) for the
// model's parameters, from crypto/rand.
func (m *Model) GenerateSecretKey() (*SecretKey, error) {
	kgen := rlwe.NewKeyGenerator(m.c.params.ckks)
	return &SecretKey{sk: &secretKey{sk: kgen.GenSecretKeyNew(), params: m.c.params}}, nil
}

// WriteSecretKey stores sk: a 64-byte header naming the parameters, then
// the key. Keep the file private to the device.
func WriteSecretKey(w io.Writer, sk *SecretKey) (int64, error) {
	var h [headerSize]byte
	copy(h[0:4], magicSecretKey[:])
	h[4] = wireVersion
	copy(h[24:56], sk.sk.params.fingerprintRaw())
	n, err := w.Write(h[:])
	if err != nil {
		return int64(n), fmt.Errorf("writing secret key: %w", err)
	}
	k, err := sk.sk.sk.WriteTo(w)
	if err != nil {
		return int64(n) + k, fmt.Errorf("writing secret key: %w", err)
	}
	return int64(n) + k, nil
}

// ReadSecretKey loads a secret key written by WriteSecretKey for this model's
// parameters.
func (m *Model) ReadSecretKey(r io.Reader) (*SecretKey, error) {
	const op = "he.ReadSecretKey"
	p := m.c.params
	sk := rlwe.NewSecretKey(p.ckks)
	size := int64(headerSize + sk.BinarySize())
	b, err := io.ReadAll(io.LimitReader(r, size+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	switch {
	case int64(len(b)) != size:
		return nil, hegate.E(op, hegate.KindInvalid, nil, "secret key file has %d bytes, want %d for preset %s", len(b), size, p.name)
	case !bytes.Equal(b[0:4], magicSecretKey[:]) || b[4] != wireVersion:
		return nil, hegate.E(op, hegate.KindInvalid, nil, "not a hegate secret key file")
	case !bytes.Equal(b[24:56], p.fingerprintRaw()):
		return nil, hegate.E(op, hegate.KindInvalid, nil, "secret key is for other CKKS parameters than model %s (%s)", m.ID(), p.name)
	}
	if err := sk.UnmarshalBinary(b[headerSize:]); err != nil {
		return nil, hegate.E(op, hegate.KindInvalid, err, "secret key does not parse")
	}
	return &SecretKey{sk: &secretKey{sk: sk, params: p}}, nil
}

// PackInput lays x (the model's input, C×H×W order) out as the circuit
// expects it in the slots. Encrypt calls it; it is exported for tests and
// for split inference.
func (m *Model) PackInput(x []float64) ([]float64, error) {
	g := m.graph
	if len(x) != g.InputSize() {
		return nil, hegate.E("he.PackInput", hegate.KindInvalid, nil, "input has %d values, model %s wants %d (shape %v)", len(x), m.ID(), g.InputSize(), g.Input)
	}
	return m.c.packing.pack(g, x), nil
}

func (m *Model) checkKey(op string, sk *SecretKey) error {
	if sk == nil || sk.sk == nil || sk.sk.params.fingerprint != m.c.params.fingerprint {
		return hegate.E(op, hegate.KindInvalid, nil, "secret key is not for model %s's parameters (%s)", m.ID(), m.c.params.name)
	}
	return nil
}

// Encrypt packs and encrypts one input under sk and returns the ciphertext
// in hegate's wire format, ready to send.
func (m *Model) Encrypt(sk *SecretKey, x []float64) ([]byte, error) {
	const op = "he.Encrypt"
	if err := m.checkKey(op, sk); err != nil {
		return nil, err
	}
	packed, err := m.PackInput(x)
	if err != nil {
		return nil, err
	}
	c := m.c
	p := c.params.ckks
	values := make([]float64, c.n)
	copy(values, packed)
	pt := ckks.NewPlaintext(p, c.inputLevel)
	pt.LogDimensions = ring.Dimensions{Rows: 0, Cols: c.logN}
	if err := ckks.NewEncoder(p).Encode(values, pt); err != nil {
		return nil, fmt.Errorf("%s: encoding: %w", op, err)
	}
	ct, err := rlwe.NewEncryptor(p, sk.sk.sk).EncryptNew(pt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return c.params.marshalCiphertext(ctInput, ct)
}

// Decrypt opens a result ciphertext with sk and returns the model's outputs
// (logits for a classifier).
func (m *Model) Decrypt(sk *SecretKey, b []byte) ([]float64, error) {
	const op = "he.Decrypt"
	if err := m.checkKey(op, sk); err != nil {
		return nil, err
	}
	c := m.c
	p := c.params.ckks
	ct, err := c.params.parseCiphertext(op, b, ctWant{kind: ctResult, level: 0, logSlots: c.logN})
	if err != nil {
		return nil, err
	}
	pt := rlwe.NewDecryptor(p, sk.sk.sk).DecryptNew(ct)
	values := make([]float64, c.n)
	if err := ckks.NewEncoder(p).Decode(pt, values); err != nil {
		return nil, fmt.Errorf("%s: decoding: %w", op, err)
	}
	return values[:c.outputSize], nil
}

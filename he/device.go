package he

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
	"github.com/tuneinsight/lattigo/v6/utils/sampling"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he/ir"
)

// Device is the device side of a model: key generation, encryption and
// decryption. It is built from the model's Manifest alone, so a device
// never holds the model's weights. The secret key never leaves the device.
type Device struct {
	s *deviceSpec
}

// Device returns the device side of a compiled model (tests, demo).
func (m *Model) Device() *Device { return &Device{s: m.c.deviceSpec} }

// NewDevice checks a manifest (as served by the gateway) and builds the
// device side from it. Insecure presets are refused unless allowInsecure.
func NewDevice(man Manifest, allowInsecure bool) (*Device, error) {
	const op = "he.NewDevice"
	bad := func(format string, args ...any) error {
		return hegate.E(op, hegate.KindInvalid, nil, "manifest of %s: "+format, append([]any{man.Name}, args...)...)
	}
	params, err := LoadParams(man.Params.Preset, allowInsecure)
	if err != nil {
		return nil, err
	}
	p := params.ckks
	switch {
	case man.Params.Fingerprint != params.fingerprint:
		return nil, bad("parameter fingerprint does not match preset %s as this build knows it", params.name)
	case man.LogSlots < 0 || man.LogSlots > p.LogMaxSlots():
		return nil, bad("log_slots %d out of range", man.LogSlots)
	case man.Levels < 1 || man.Levels > p.MaxLevel():
		return nil, bad("levels %d out of range", man.Levels)
	case man.OutputSize < 1 || man.OutputSize > 1<<man.LogSlots:
		return nil, bad("output_size %d out of range", man.OutputSize)
	case len(man.Input) != 1 && len(man.Input) != 3:
		return nil, bad("input shape %v", man.Input)
	}
	if err := ir.CheckShape(man.Input); err != nil {
		return nil, bad("input shape %v %v", man.Input, err)
	}
	inputSize := ir.Prod(man.Input)
	twoN := uint64(2 * p.N())
	// Keys serve up to the input level, or up to the top for a circuit
	// that bootstraps (a bootstrap returns values there).
	keyLevels := man.Levels
	var boot *bootParams
	if man.BootstrapKeys != nil || len(man.Bootstraps) > 0 {
		if man.BootstrapKeys == nil || !params.Bootstraps() {
			return nil, bad("bootstraps, but preset %s does not bootstrap or bootstrap_keys are missing", params.name)
		}
		var err error
		if boot, err = params.bootParams(man.LogSlots); err != nil {
			return nil, bad("%v", err)
		}
		if !boot.manifest().equal(man.BootstrapKeys) {
			return nil, bad("bootstrap_keys are not those preset %s derives for 2^%d slots", params.name, man.LogSlots)
		}
		keyLevels = p.MaxLevel()
	}
	if len(man.GaloisLevels) != len(man.GaloisElements) {
		return nil, bad("%d galois_levels for %d galois_elements", len(man.GaloisLevels), len(man.GaloisElements))
	}
	for i, ge := range man.GaloisElements {
		if ge%2 == 0 || ge >= twoN || (i > 0 && ge <= man.GaloisElements[i-1]) {
			return nil, bad("galois element %d is not an odd number below 2N in ascending order", ge)
		}
		if l := man.GaloisLevels[i]; l < 0 || l > keyLevels {
			return nil, bad("galois level %d out of range", l)
		}
	}
	if man.RelinLevel < 1 || man.RelinLevel > keyLevels {
		return nil, bad("relin_level %d out of range", man.RelinLevel)
	}
	if p := man.Preprocess; p != nil && (p.Scale == 0 || p.Std == 0 || math.IsNaN(p.Scale+p.Mean+p.Std) || math.IsInf(p.Scale+p.Mean+p.Std, 0)) {
		return nil, bad("preprocess %+v", *p)
	}
	s := &deviceSpec{
		preprocess: man.Preprocess,
		tail:       slices.Clone(man.Tail),
		split:      man.Split,
		name:       string(man.Name),
		params:     params,
		inputShape: append([]int(nil), man.Input...),
		n:          1 << man.LogSlots,
		logN:       man.LogSlots,
		inputLevel: man.Levels,
		galEls:     append([]uint64(nil), man.GaloisElements...),
		galLevels:  append([]int(nil), man.GaloisLevels...),
		relinLevel: man.RelinLevel,
		outputSize: man.OutputSize,
		boot:       boot,
	}
	if pk := man.Packing; pk != nil {
		ok := pk.Kind == "im2col" && len(man.Input) == 3
		for i := 0; i < 2; i++ {
			ok = ok && pk.Kernel[i] >= 1 && pk.Kernel[i] <= 64 && pk.Stride[i] >= 1 && pk.Stride[i] <= 64
		}
		for _, pad := range pk.Pads {
			ok = ok && pad >= 0 && pad < 64
		}
		if !ok {
			return nil, bad("packing %+v is not understood", *pk)
		}
		q := &im2colPacking{c: man.Input[0], h: man.Input[1], w: man.Input[2], kernel: pk.Kernel, stride: pk.Stride, pads: pk.Pads, block: pk.Block}
		q.oh = ir.ConvOutputSize(q.h, q.kernel[0], q.stride[0], q.pads[0], q.pads[2])
		q.ow = ir.ConvOutputSize(q.w, q.kernel[1], q.stride[1], q.pads[1], q.pads[3])
		if q.oh < 1 || q.ow < 1 || q.block < q.oh*q.ow || q.block > s.n {
			return nil, bad("packing %+v does not fit the input", *pk)
		}
		s.packing.im2col = q
	}
	if s.packing.size(inputSize) > s.n {
		return nil, bad("packed input of %d values does not fit %d slots", s.packing.size(inputSize), s.n)
	}
	if bits.OnesCount(uint(s.n)) != 1 {
		return nil, bad("slots %d", s.n)
	}
	if pp := man.OutputPeriod; pp != 0 {
		if pp < man.OutputSize || pp > s.n || s.n%pp != 0 {
			return nil, bad("output_period %d does not fit %d outputs in %d slots", pp, man.OutputSize, s.n)
		}
		s.outputPeriod = pp
	}
	return &Device{s: s}, nil
}

// ID is the model's name.
func (d *Device) ID() hegate.ModelID { return hegate.ModelID(d.s.name) }

// Preprocess maps raw data (for images, pixels 0..255) to the model's
// input as the model declares; raw as it is when it declares nothing.
func (d *Device) Preprocess(raw []float64) []float64 {
	if d.s.preprocess == nil {
		return append([]float64(nil), raw...)
	}
	return d.s.preprocess.Apply(raw)
}

// Tail applies the ops the model leaves to the device (Softmax, ArgMax) to
// decrypted outputs.
func (d *Device) Tail(y []float64) []float64 {
	g := ir.Graph{Tail: d.s.tail}
	return g.ApplyTail(y)
}

// Split describes the head the device must run before encrypting, for a
// split model; nil otherwise.
func (d *Device) Split() *SplitInfo {
	if d.s.split == nil {
		return nil
	}
	s := *d.s.split
	return &s
}

// InputSize is the number of values Encrypt takes.
func (d *Device) InputSize() int { return ir.Prod(d.s.inputShape) }

type secretKey struct {
	sk     *rlwe.SecretKey
	params *Params
}

// GenerateSecretKey makes a fresh CKKS secret key (uniform ternary) for the
// model's parameters, from crypto/rand.
func (d *Device) GenerateSecretKey() (*SecretKey, error) {
	kgen := rlwe.NewKeyGenerator(d.s.params.ckks)
	return &SecretKey{sk: &secretKey{sk: kgen.GenSecretKeyNew(), params: d.s.params}}, nil
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
func (d *Device) ReadSecretKey(r io.Reader) (*SecretKey, error) {
	const op = "he.ReadSecretKey"
	p := d.s.params
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
		return nil, hegate.E(op, hegate.KindInvalid, nil, "secret key is for other CKKS parameters than model %s (%s)", d.ID(), p.name)
	}
	if err := sk.UnmarshalBinary(b[headerSize:]); err != nil {
		return nil, hegate.E(op, hegate.KindInvalid, err, "secret key does not parse")
	}
	return &SecretKey{sk: &secretKey{sk: sk, params: p}}, nil
}

// PackInput lays x (the model's input, C×H×W order) out as the circuit
// expects it in the slots. Encrypt calls it.
func (d *Device) PackInput(x []float64) ([]float64, error) {
	if len(x) != d.InputSize() {
		return nil, hegate.E("he.PackInput", hegate.KindInvalid, nil, "input has %d values, model %s wants %d (shape %v)", len(x), d.ID(), d.InputSize(), d.s.inputShape)
	}
	return d.s.packing.pack(x), nil
}

func (c *deviceSpec) checkKey(op string, sk *SecretKey) error {
	if sk == nil || sk.sk == nil || sk.sk.params.fingerprint != c.params.fingerprint {
		return hegate.E(op, hegate.KindInvalid, nil, "secret key is not for model %s's parameters (%s)", c.name, c.params.name)
	}
	return nil
}

// Encrypt packs and encrypts one input under sk and returns the ciphertext
// in hegate's wire format, ready to send.
func (d *Device) Encrypt(sk *SecretKey, x []float64) ([]byte, error) {
	const op = "he.Encrypt"
	c := d.s
	if err := c.checkKey(op, sk); err != nil {
		return nil, err
	}
	packed, err := d.PackInput(x)
	if err != nil {
		return nil, err
	}
	p := c.params.ckks
	values := make([]float64, c.n)
	// Half: the gateway adds the conjugate (x + conj(x) = 2x for real x),
	// which keeps only the real part of whatever a device encrypts.
	for i, v := range packed {
		values[i] = v / 2
	}
	pt := ckks.NewPlaintext(p, c.inputLevel)
	pt.LogDimensions = ring.Dimensions{Rows: 0, Cols: c.logN}
	if err := ckks.NewEncoder(p).Encode(values, pt); err != nil {
		return nil, fmt.Errorf("%s: encoding: %w", op, err)
	}
	// Seed c1 so the ciphertext travels at half size (see ciphertext.go).
	seed := make([]byte, seedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	prng, err := sampling.NewKeyedPRNG(seed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ct, err := rlwe.NewEncryptor(p, sk.sk.sk).WithPRNG(prng).EncryptNew(pt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return c.params.marshalCiphertext(ctInput, ct, seed)
}

// Decrypt opens a result ciphertext with sk and returns the model's outputs
// (logits for a classifier), each averaged over its replicas in the slots
// (which divides the noise the release added by the square root of their
// number; see Mechanism).
func (d *Device) Decrypt(sk *SecretKey, b []byte) ([]float64, error) {
	const op = "he.Decrypt"
	c := d.s
	if err := c.checkKey(op, sk); err != nil {
		return nil, err
	}
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
	return averageReplicas(values, c.outputSize, c.outputPeriod), nil
}

// Convenience wrappers on Model for tests and the embedded demo.

// GenerateSecretKey is m.Device().GenerateSecretKey().
func (m *Model) GenerateSecretKey() (*SecretKey, error) { return m.Device().GenerateSecretKey() }

// WriteKeySet is m.Device().WriteKeySet.
func (m *Model) WriteKeySet(w io.Writer, sk *SecretKey) (int64, error) {
	return m.Device().WriteKeySet(w, sk)
}

// ReadSecretKey is m.Device().ReadSecretKey.
func (m *Model) ReadSecretKey(r io.Reader) (*SecretKey, error) { return m.Device().ReadSecretKey(r) }

// Encrypt is m.Device().Encrypt.
func (m *Model) Encrypt(sk *SecretKey, x []float64) ([]byte, error) { return m.Device().Encrypt(sk, x) }

// Decrypt is m.Device().Decrypt.
func (m *Model) Decrypt(sk *SecretKey, b []byte) ([]float64, error) { return m.Device().Decrypt(sk, b) }

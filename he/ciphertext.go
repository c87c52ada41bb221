package he

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
	"github.com/tuneinsight/lattigo/v6/utils/sampling"

	"github.com/hegate/hegate"
)

// Ciphertext header (64 bytes):
//
//	0   magic "HGCT"
//	4   version (1)
//	5   kind: 1 input, 2 result
//	6   degree (1)
//	7   level
//	8   log2 of the slots used
//	9   flags: bit 0 = seeded (input ciphertexts always are)
//	10  reserved (6 bytes, zero)
//	16  scale as float64 bits
//	24  parameter fingerprint (32 bytes)
//	56  reserved (8 bytes, zero)
//
// then, when seeded, the 32-byte seed of the uniform polynomial c1 and the
// (level+1)·N coefficients of c0; otherwise 2·(level+1)·N coefficients of
// c0 and c1. NTT domain. A device encrypts with its secret key, so c1 is
// uniform and can be regenerated from a seed: inputs travel at half size.

type ctKind byte

const (
	ctInput  ctKind = 1
	ctResult ctKind = 2
)

func (k ctKind) String() string {
	if k == ctInput {
		return "input"
	}
	return "result"
}

// The kinds of ciphertext and whether they are seeded.
func (k ctKind) seeded() bool { return k == ctInput }

// ciphertextSize is the exact encoded size of a degree-1 ciphertext of the
// kind at level.
func (p *Params) ciphertextSize(kind ctKind, level int) int64 {
	row := int64(level+1) * int64(p.ckks.N()) * 8
	if kind.seeded() {
		return headerSize + seedSize + row
	}
	return headerSize + 2*row
}

// marshalCiphertext encodes ct; seed is the seed of ct's c1 for a seeded kind.
func (p *Params) marshalCiphertext(kind ctKind, ct *rlwe.Ciphertext, seed []byte) ([]byte, error) {
	if kind.seeded() != (seed != nil) {
		return nil, fmt.Errorf("he: a %s ciphertext is seeded=%v", kind, kind.seeded())
	}
	var buf bytes.Buffer
	buf.Grow(int(p.ciphertextSize(kind, ct.Level())))
	var h [headerSize]byte
	copy(h[0:4], magicCiphertext[:])
	h[4] = wireVersion
	h[5] = byte(kind)
	h[6] = byte(ct.Degree())
	h[7] = byte(ct.Level())
	h[8] = byte(ct.LogDimensions.Cols)
	if seed != nil {
		h[9] = 1
	}
	scale := ct.Scale.Float64()
	binary.LittleEndian.PutUint64(h[16:24], math.Float64bits(scale))
	copy(h[24:56], p.fingerprintRaw())
	cw := newCoeffWriter(&buf)
	cw.bytes(h[:])
	if seed != nil {
		cw.bytes(seed)
		cw.poly(ct.Value[0])
	} else {
		for _, poly := range ct.Value {
			cw.poly(poly)
		}
	}
	if _, err := cw.flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ctWant is what a parsed ciphertext must look like.
type ctWant struct {
	kind     ctKind
	level    int
	logSlots int
	scale    float64 // 0: any finite positive scale
}

// parseCiphertext checks b against want before allocating, then reads it.
// Every error is KindInvalid and says what is wrong.
func (p *Params) parseCiphertext(op string, b []byte, want ctWant) (*rlwe.Ciphertext, error) {
	bad := func(format string, args ...any) error {
		return hegate.E(op, hegate.KindInvalid, nil, want.kind.String()+" ciphertext: "+format, args...)
	}
	if len(b) < headerSize {
		return nil, bad("%d bytes is shorter than the %d-byte header", len(b), headerSize)
	}
	if !bytes.Equal(b[0:4], magicCiphertext[:]) {
		return nil, bad("not a hegate ciphertext (bad magic)")
	}
	if b[4] != wireVersion {
		return nil, bad("format version %d is not supported (want %d)", b[4], wireVersion)
	}
	if ctKind(b[5]) != want.kind {
		return nil, bad("kind %d, want %d (%s)", b[5], want.kind, want.kind)
	}
	if b[6] != 1 {
		return nil, bad("degree %d, want 1", b[6])
	}
	if !bytes.Equal(b[24:56], p.fingerprintRaw()) {
		return nil, bad("encrypted under other CKKS parameters than the model's (%s)", p.name)
	}
	if int(b[7]) != want.level {
		return nil, bad("level %d, the model wants %d", b[7], want.level)
	}
	if int(b[8]) != want.logSlots {
		return nil, bad("log2 slots %d, the model wants %d", b[8], want.logSlots)
	}
	scale := math.Float64frombits(binary.LittleEndian.Uint64(b[16:24]))
	if math.IsNaN(scale) || math.IsInf(scale, 0) || scale <= 1 {
		return nil, bad("scale %v is not a finite number above 1", scale)
	}
	if want.scale != 0 && scale != want.scale {
		return nil, bad("scale 2^%.2f, the model wants 2^%.2f", math.Log2(scale), math.Log2(want.scale))
	}
	seeded := want.kind.seeded()
	if flags := b[9]; (flags == 1) != seeded || flags > 1 {
		return nil, bad("flags %#x, want seeded=%v", flags, seeded)
	}
	for _, r := range b[10:16] {
		if r != 0 {
			return nil, bad("reserved header bytes are not zero")
		}
	}
	if size := p.ciphertextSize(want.kind, want.level); int64(len(b)) != size {
		return nil, bad("%d bytes, want exactly %d for level %d", len(b), size, want.level)
	}
	ct := ckks.NewCiphertext(p.ckks, 1, want.level)
	ct.Scale = rlwe.NewScale(scale)
	ct.LogDimensions = ring.Dimensions{Rows: 0, Cols: want.logSlots}
	ct.IsNTT = true
	ct.IsBatched = true
	body := b[headerSize:]
	polys := ct.Value
	if seeded {
		seed := body[:seedSize]
		body = body[seedSize:]
		prng, err := sampling.NewKeyedPRNG(seed)
		if err != nil {
			return nil, fmt.Errorf("%s: seeding: %w", op, err)
		}
		// Exactly as rlwe.Encryptor draws c1 (NTT domain, at the level).
		ringqp.NewUniformSampler(prng, *p.ckks.RingQP()).AtLevel(want.level, -1).Read(ringqp.Poly{Q: ct.Value[1]})
		polys = ct.Value[:1]
	}
	cr := newCoeffReader(bytes.NewReader(body))
	moduli := p.ckks.Q()
	for i := range polys {
		if err := cr.poly(polys[i], moduli); err != nil {
			return nil, bad("polynomial %d: %v", i, err)
		}
	}
	return ct, nil
}

// fingerprintRaw is the fingerprint as 32 bytes.
func (p *Params) fingerprintRaw() []byte { return p.fpRaw[:] }

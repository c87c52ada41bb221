package he

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"

	"github.com/hegate/hegate"
)

// Key-set wire format. A key set holds exactly the keys a model needs:
// the relinearisation key and one Galois key per element of the manifest,
// in ascending order. Keys are compressed: the uniform half of each key is
// regenerated from a 32-byte seed, which halves the upload.
//
// Header (64 bytes):
//
//	0   magic "HGKS"
//	4   version (1)
//	5   flags: bit 0 = compressed (required)
//	6   reserved (2 bytes, zero)
//	8   number of Galois keys (uint32)
//	12  levelQ of the keys
//	13  levelP of the keys
//	14  reserved (2 bytes, zero)
//	16  parameter fingerprint (32 bytes)
//	48  reserved (16 bytes, zero)
//
// Then the relinearisation key: seed (32 bytes) and its body; then each
// Galois key: Galois element (uint64), seed (32 bytes), body. A body is the
// key's gadget rows, each a polynomial mod Q (levelQ+1 rows of N
// coefficients) followed by one mod P (levelP+1 rows).

const seedSize = 32

// keyLayout is the shape of every key of a model's key set.
type keyLayout struct {
	levelQ, levelP int
	rows           int   // gadget rows (RNS decomposition size)
	bodyBytes      int64 // bytes of one key body
}

func (c *deviceSpec) keyLayout() keyLayout {
	p := c.params.ckks
	lq, lp := c.inputLevel, p.MaxLevelP()
	rows := p.BaseRNSDecompositionVectorSize(lq, lp)
	return keyLayout{levelQ: lq, levelP: lp, rows: rows, bodyBytes: int64(rows) * int64(lq+1+lp+1) * int64(p.N()) * 8}
}

func (c *deviceSpec) evkParams() rlwe.EvaluationKeyParameters {
	l := c.keyLayout()
	return rlwe.EvaluationKeyParameters{LevelQ: &l.levelQ, LevelP: &l.levelP, Compressed: true}
}

// keySetSize is the exact size of the model's key-set upload.
func (c *deviceSpec) keySetSize() int64 {
	l := c.keyLayout()
	return headerSize + (seedSize + l.bodyBytes) + int64(len(c.galEls))*(8+seedSize+l.bodyBytes)
}

// keySet is a parsed, expanded key set.
type keySet struct {
	evk         *rlwe.MemEvaluationKeySet
	memoryBytes int64
}

// MemoryBytes is the memory the expanded key set holds.
func (k *KeySet) MemoryBytes() int64 { return k.k.memoryBytes }

// WriteKeySet generates the model's evaluation keys from sk and streams them
// to w, one key at a time, so memory stays at one key whatever the set's size.
// It returns the bytes written, which equal Manifest().KeySetBytes.
func (d *Device) WriteKeySet(w io.Writer, sk *SecretKey) (int64, error) {
	c := d.s
	if err := c.checkKey("he.WriteKeySet", sk); err != nil {
		return 0, err
	}
	p := c.params.ckks
	l := c.keyLayout()
	kgen := rlwe.NewKeyGenerator(p)
	evkp := c.evkParams()

	cw := newCoeffWriter(w)
	var h [headerSize]byte
	copy(h[0:4], magicKeySet[:])
	h[4] = wireVersion
	h[5] = 1
	binary.LittleEndian.PutUint32(h[8:12], uint32(len(c.galEls)))
	h[12], h[13] = byte(l.levelQ), byte(l.levelP)
	copy(h[16:48], c.params.fingerprintRaw())
	cw.bytes(h[:])

	rlk := kgen.GenRelinearizationKeyNew(sk.sk.sk, evkp)
	writeKeyBody(cw, &rlk.EvaluationKey)
	for _, ge := range c.galEls {
		gk := kgen.GenGaloisKeyNew(ge, sk.sk.sk, evkp)
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], ge)
		cw.bytes(b[:])
		writeKeyBody(cw, &gk.EvaluationKey)
		if cw.err != nil {
			break
		}
	}
	n, err := cw.flush()
	if err != nil {
		return n, fmt.Errorf("writing key set: %w", err)
	}
	return n, nil
}

func writeKeyBody(cw *coeffWriter, evk *rlwe.EvaluationKey) {
	cw.bytes(evk.Seed)
	for i := range evk.Value {
		for j := range evk.Value[i] {
			cw.poly(evk.Value[i][j][0].Q)
			cw.poly(evk.Value[i][j][0].P)
		}
	}
}

// CheckKeySet reads a whole key-set upload from r and checks it against the
// model: header, parameters, the exact list of Galois elements, sizes, and
// that every coefficient is below its modulus. It keeps one key row in
// memory at a time. Errors are KindInvalid (with a detail naming what is
// wrong) or KindTooLarge.
func (m *Model) CheckKeySet(r io.Reader) (KeySetInfo, error) {
	n, _, err := m.scanKeySet("he.CheckKeySet", r, false)
	if err != nil {
		return KeySetInfo{}, err
	}
	return KeySetInfo{Bytes: n, GaloisElements: len(m.c.galEls), ParamsID: m.c.params.fingerprint}, nil
}

// ReadKeySet reads, checks and expands a key set for Evaluate.
func (m *Model) ReadKeySet(r io.Reader) (*KeySet, error) {
	n, evk, err := m.scanKeySet("he.ReadKeySet", r, true)
	if err != nil {
		return nil, err
	}
	return &KeySet{k: &keySet{evk: evk, memoryBytes: 2 * n}}, nil
}

func (m *Model) scanKeySet(op string, r io.Reader, keep bool) (int64, *rlwe.MemEvaluationKeySet, error) {
	c := m.c
	p := c.params.ckks
	l := c.keyLayout()
	total := c.keySetSize()
	bad := func(format string, args ...any) error {
		return hegate.E(op, hegate.KindInvalid, nil, "key set: "+format, args...)
	}
	// Never read past the exact size; one byte more tells "too large".
	lr := &io.LimitedReader{R: r, N: total + 1}
	cr := newCoeffReader(lr)
	short := func(what string, err error) error {
		var re *rangeError
		switch {
		case err == errShort:
			return bad("%s: the upload ends after %d bytes, a key set for model %s has exactly %d", what, cr.n, m.ID(), total)
		case errors.As(err, &re):
			return bad("%s: %v", what, err)
		default:
			// The reader itself failed (a dropped connection, a body limit):
			// keep its kind, if any, for the caller to judge.
			return fmt.Errorf("%s: reading key set (%s): %w", op, what, err)
		}
	}

	var h [headerSize]byte
	if err := cr.full(h[:]); err != nil {
		return 0, nil, short("header", err)
	}
	switch {
	case !bytes.Equal(h[0:4], magicKeySet[:]):
		return 0, nil, bad("not a hegate key set (bad magic)")
	case h[4] != wireVersion:
		return 0, nil, bad("format version %d is not supported (want %d)", h[4], wireVersion)
	case h[5] != 1:
		return 0, nil, bad("flags %#x: only compressed key sets (flag 1) are accepted", h[5])
	case !bytes.Equal(h[16:48], c.params.fingerprintRaw()):
		return 0, nil, bad("made for other CKKS parameters than model %s (%s)", m.ID(), c.params.name)
	case int(h[12]) != l.levelQ || int(h[13]) != l.levelP:
		return 0, nil, bad("keys at levels (Q %d, P %d), model %s wants (Q %d, P %d)", h[12], h[13], m.ID(), l.levelQ, l.levelP)
	}
	if got := binary.LittleEndian.Uint32(h[8:12]); int(got) != len(c.galEls) {
		return 0, nil, bad("%d Galois keys, model %s needs exactly %d (see the manifest's galois_elements)", got, m.ID(), len(c.galEls))
	}
	if !allZeroBytes(h[6:8]) || !allZeroBytes(h[14:16]) || !allZeroBytes(h[48:64]) {
		return 0, nil, bad("reserved header bytes are not zero")
	}

	evkp := c.evkParams()
	var scratch ringqp.Poly
	if !keep {
		scratch = p.RingQP().AtLevel(l.levelQ, l.levelP).NewPoly()
	}
	readBody := func(evk *rlwe.EvaluationKey) error {
		seed := make([]byte, seedSize)
		if err := cr.full(seed); err != nil {
			return err
		}
		for i := 0; i < l.rows; i++ {
			dst := scratch
			if keep {
				dst = evk.Value[i][0][0]
			}
			if err := cr.poly(dst.Q, p.Q()); err != nil {
				return err
			}
			if err := cr.poly(dst.P, p.P()); err != nil {
				return err
			}
		}
		if keep {
			evk.Seed = seed
			if err := evk.Expand(p, nil); err != nil {
				return fmt.Errorf("expanding key: %w", err)
			}
		}
		return nil
	}

	var rlk *rlwe.RelinearizationKey
	if keep {
		rlk = rlwe.NewRelinearizationKey(p, evkp)
	}
	var rlkEvk *rlwe.EvaluationKey
	if rlk != nil {
		rlkEvk = &rlk.EvaluationKey
	}
	if err := readBody(rlkEvk); err != nil {
		return 0, nil, short("relinearisation key", err)
	}
	var gks []*rlwe.GaloisKey
	for idx, want := range c.galEls {
		var b [8]byte
		if err := cr.full(b[:]); err != nil {
			return 0, nil, short(fmt.Sprintf("Galois key %d", idx), err)
		}
		if got := binary.LittleEndian.Uint64(b[:]); got != want {
			return 0, nil, bad("Galois key %d is for element %d, model %s needs %d there (ascending order)", idx, got, m.ID(), want)
		}
		var gk *rlwe.GaloisKey
		var gkEvk *rlwe.EvaluationKey
		if keep {
			gk = rlwe.NewGaloisKey(p, evkp)
			gk.GaloisElement = want
			gk.NthRoot = p.RingQ().NthRoot()
			gkEvk = &gk.EvaluationKey
		}
		if err := readBody(gkEvk); err != nil {
			return 0, nil, short(fmt.Sprintf("Galois key %d (element %d)", idx, want), err)
		}
		if keep {
			gks = append(gks, gk)
		}
	}
	if err := cr.atEOF(); err != nil {
		if lr.N <= 0 {
			return 0, nil, hegate.E(op, hegate.KindTooLarge, nil, "key set: larger than the %d bytes model %s needs", total, m.ID())
		}
		return 0, nil, bad("%v", err)
	}
	if !keep {
		return cr.n, nil, nil
	}
	return cr.n, rlwe.NewMemEvaluationKeySet(rlk, gks...), nil
}

func allZeroBytes(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

package he

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"

	"github.com/hegate/hegate"
)

// Key-set wire format. A key set holds exactly the keys a model needs:
// the relinearisation key and one Galois key per element of the manifest,
// in ascending order. Each key is generated at the highest level the
// circuit uses it (a key used only late in the circuit has fewer moduli and
// fewer gadget rows, so it is much smaller). Keys are compressed: the
// uniform half of each key is regenerated from a 32-byte seed, which halves
// the upload.
//
// Header (64 bytes):
//
//	0   magic "HGKS"
//	4   version (1)
//	5   flags: bit 0 = compressed (required)
//	6   reserved (2 bytes, zero)
//	8   number of Galois keys (uint32)
//	12  highest levelQ of any key
//	13  levelP of the keys
//	14  reserved (2 bytes, zero)
//	16  parameter fingerprint (32 bytes)
//	48  reserved (16 bytes, zero)
//
// Then one record per key, the relinearisation key first:
//
//	Galois element (uint64; 0 for the relinearisation key)
//	levelQ of this key (1 byte), reserved (7 bytes, zero)
//	seed (32 bytes)
//	body: the key's gadget rows, each a polynomial mod Q (levelQ+1 rows of
//	      N coefficients) followed by one mod P (levelP+1 rows)
//
// and last the device's public key, with which the worker re-randomises
// every result before release (release.go), at level 0 with one special
// prime, not compressed:
//
//	tag (uint64, all ones), level 0 (1 byte), reserved (7 bytes, zero)
//	pk0 mod q0, pk0 mod p0, pk1 mod q0, pk1 mod p0 (N coefficients each)
//
// Version 1 key sets had no public key and are refused.

const (
	seedSize        = 32
	recordHead      = 16 // Galois element, level, reserved
	relinElementTag = 0  // the Galois element field of the relinearisation key
	// publicKeyTag is the Galois element field of the public key record.
	publicKeyTag = ^uint64(0)
	// keySetVersion is the key-set format's version (ciphertexts and
	// secret keys are at wireVersion).
	keySetVersion = 2
)

// publicKeyBytes is the size of the public key record.
func (c *deviceSpec) publicKeyBytes() int64 { return recordHead + 4*int64(c.params.ckks.N())*8 }

// keySize is the shape of one key at levelQ.
type keySize struct {
	levelQ, levelP int
	rows           int   // gadget rows (RNS decomposition size)
	bodyBytes      int64 // bytes of the key body
}

func (c *deviceSpec) keySize(levelQ int) keySize {
	p := c.params.ckks
	lp := p.MaxLevelP()
	rows := p.BaseRNSDecompositionVectorSize(levelQ, lp)
	return keySize{levelQ: levelQ, levelP: lp, rows: rows, bodyBytes: int64(rows) * int64(levelQ+1+lp+1) * int64(p.N()) * 8}
}

func (k keySize) evkParams() rlwe.EvaluationKeyParameters {
	return rlwe.EvaluationKeyParameters{LevelQ: &k.levelQ, LevelP: &k.levelP, Compressed: true}
}

func (k keySize) recordBytes() int64 { return recordHead + seedSize + k.bodyBytes }

// keyRecord is one expected key: its Galois element (relinElementTag for
// the relinearisation key) and level.
type keyRecord struct {
	galEl uint64
	level int
}

// keyRecords lists the key set's records in wire order.
func (c *deviceSpec) keyRecords() []keyRecord {
	recs := []keyRecord{{relinElementTag, c.relinLevel}}
	for i, ge := range c.galEls {
		recs = append(recs, keyRecord{ge, c.galLevels[i]})
	}
	return recs
}

// keySetSize is the exact size of the model's key-set upload.
func (c *deviceSpec) keySetSize() int64 {
	n := int64(headerSize)
	for _, r := range c.keyRecords() {
		n += c.keySize(r.level).recordBytes()
	}
	return n + c.publicKeyBytes()
}

// keySet is a parsed, expanded key set.
type keySet struct {
	evk         *rlwe.MemEvaluationKeySet
	pk          *rlwe.PublicKey // at level (0, 0), for release
	memoryBytes int64
	// pool keeps evaluators over evk between evaluations (building one
	// indexes every Galois key and allocates its buffers: about 10 ms at
	// logN 14). It holds *evaluators.
	pool sync.Pool
}

// evaluators are one evaluation's Lattigo evaluators, one per goroutine.
type evaluators struct{ evals []*ckks.Evaluator }

// evaluators returns c.parallelism evaluators over the keys, for one
// evaluation; give them back with k.pool.Put. Lattigo evaluators are not
// safe for concurrent use: each goroutine of an evaluation gets its own
// (ShallowCopy shares the keys and allocates fresh buffers).
func (k *keySet) evaluators(c *compiled) *evaluators {
	if e, ok := k.pool.Get().(*evaluators); ok && len(e.evals) == c.parallelism {
		return e
	}
	e := &evaluators{evals: []*ckks.Evaluator{ckks.NewEvaluator(c.params.ckks, k.evk)}}
	for len(e.evals) < c.parallelism {
		e.evals = append(e.evals, e.evals[0].ShallowCopy())
	}
	return e
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
	kgen := rlwe.NewKeyGenerator(p)

	cw := newCoeffWriter(w)
	var h [headerSize]byte
	copy(h[0:4], magicKeySet[:])
	h[4] = keySetVersion
	h[5] = 1
	binary.LittleEndian.PutUint32(h[8:12], uint32(len(c.galEls)))
	h[12], h[13] = byte(c.inputLevel), byte(p.MaxLevelP())
	copy(h[16:48], c.params.fingerprintRaw())
	cw.bytes(h[:])

	for _, rec := range c.keyRecords() {
		ks := c.keySize(rec.level)
		var evk *rlwe.EvaluationKey
		if rec.galEl == relinElementTag {
			evk = &kgen.GenRelinearizationKeyNew(sk.sk.sk, ks.evkParams()).EvaluationKey
		} else {
			evk = &kgen.GenGaloisKeyNew(rec.galEl, sk.sk.sk, ks.evkParams()).EvaluationKey
		}
		var head [recordHead]byte
		binary.LittleEndian.PutUint64(head[0:8], rec.galEl)
		head[8] = byte(rec.level)
		cw.bytes(head[:])
		cw.bytes(evk.Seed)
		for i := range evk.Value {
			for j := range evk.Value[i] {
				cw.poly(evk.Value[i][j][0].Q)
				cw.poly(evk.Value[i][j][0].P)
			}
		}
		if cw.err != nil {
			break
		}
	}
	if cw.err == nil {
		pk := &rlwe.PublicKey{Value: rlwe.NewVectorQP(p, 2, 0, 0)}
		kgen.GenPublicKey(sk.sk.sk, pk)
		var head [recordHead]byte
		binary.LittleEndian.PutUint64(head[0:8], publicKeyTag)
		cw.bytes(head[:])
		for i := range pk.Value {
			cw.poly(pk.Value[i].Q)
			cw.poly(pk.Value[i].P)
		}
	}
	n, err := cw.flush()
	if err != nil {
		return n, fmt.Errorf("writing key set: %w", err)
	}
	return n, nil
}

// CheckKeySet reads a whole key-set upload from r and checks it against the
// model: header, parameters, the exact list of Galois elements and their
// levels, sizes, and that every coefficient is below its modulus. It keeps
// one key row in memory at a time. Errors are KindInvalid (with a detail
// naming what is wrong) or KindTooLarge; a failing reader's error is
// returned wrapped, with its own kind.
func (m *Model) CheckKeySet(r io.Reader) (KeySetInfo, error) {
	n, _, _, err := m.scanKeySet("he.CheckKeySet", r, false)
	if err != nil {
		return KeySetInfo{}, err
	}
	return KeySetInfo{Bytes: n, GaloisElements: len(m.c.galEls), ParamsID: m.c.params.fingerprint}, nil
}

// ReadKeySet reads, checks and expands a key set for Evaluate.
func (m *Model) ReadKeySet(r io.Reader) (*KeySet, error) {
	n, evk, pk, err := m.scanKeySet("he.ReadKeySet", r, true)
	if err != nil {
		return nil, err
	}
	return &KeySet{k: &keySet{evk: evk, pk: pk, memoryBytes: 2 * n}}, nil
}

func (m *Model) scanKeySet(op string, r io.Reader, keep bool) (int64, *rlwe.MemEvaluationKeySet, *rlwe.PublicKey, error) {
	c := m.c
	p := c.params.ckks
	total := c.keySetSize()
	bad := func(format string, args ...any) error {
		return hegate.E(op, hegate.KindInvalid, nil, "key set: "+format, args...)
	}
	// Never read past the exact size; one byte more tells "too large".
	lr := &io.LimitedReader{R: r, N: total + 1}
	cr := newCoeffReader(lr)
	short := func(what string, err error) error {
		var re *rangeError
		var rec *recordError
		switch {
		case errors.As(err, &rec):
			return bad("%s: %v", what, err)
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
		return 0, nil, nil, short("header", err)
	}
	switch {
	case !bytes.Equal(h[0:4], magicKeySet[:]):
		return 0, nil, nil, bad("not a hegate key set (bad magic)")
	case h[4] == 1:
		return 0, nil, nil, bad("format version 1 has no public key, which results are re-randomised with; make and upload the key set again with this version")
	case h[4] != keySetVersion:
		return 0, nil, nil, bad("format version %d is not supported (want %d)", h[4], keySetVersion)
	case h[5] != 1:
		return 0, nil, nil, bad("flags %#x: only compressed key sets (flag 1) are accepted", h[5])
	case !bytes.Equal(h[16:48], c.params.fingerprintRaw()):
		return 0, nil, nil, bad("made for other CKKS parameters than model %s (%s)", m.ID(), c.params.name)
	case int(h[12]) != c.inputLevel || int(h[13]) != p.MaxLevelP():
		return 0, nil, nil, bad("keys at levels (Q %d, P %d), model %s wants (Q %d, P %d)", h[12], h[13], m.ID(), c.inputLevel, p.MaxLevelP())
	}
	if got := binary.LittleEndian.Uint32(h[8:12]); int(got) != len(c.galEls) {
		return 0, nil, nil, bad("%d Galois keys, model %s needs exactly %d (see the manifest's galois_elements)", got, m.ID(), len(c.galEls))
	}
	if !allZeroBytes(h[6:8]) || !allZeroBytes(h[14:16]) || !allZeroBytes(h[48:64]) {
		return 0, nil, nil, bad("reserved header bytes are not zero")
	}

	var rlk *rlwe.RelinearizationKey
	var gks []*rlwe.GaloisKey
	for idx, rec := range c.keyRecords() {
		what := "relinearisation key"
		if rec.galEl != relinElementTag {
			what = fmt.Sprintf("Galois key %d (element %d)", idx-1, rec.galEl)
		}
		var head [recordHead]byte
		if err := cr.full(head[:]); err != nil {
			return 0, nil, nil, short(what, err)
		}
		if got := binary.LittleEndian.Uint64(head[0:8]); got != rec.galEl {
			return 0, nil, nil, bad("%s: record is for element %d, model %s needs %d there (relinearisation key first, then ascending Galois elements)", what, got, m.ID(), rec.galEl)
		}
		if int(head[8]) != rec.level || !allZeroBytes(head[9:]) {
			return 0, nil, nil, bad("%s: at level %d, model %s needs it at level %d", what, head[8], m.ID(), rec.level)
		}
		ks := c.keySize(rec.level)
		var evk *rlwe.EvaluationKey
		if keep {
			if rec.galEl == relinElementTag {
				rlk = rlwe.NewRelinearizationKey(p, ks.evkParams())
				evk = &rlk.EvaluationKey
			} else {
				gk := rlwe.NewGaloisKey(p, ks.evkParams())
				gk.GaloisElement = rec.galEl
				gk.NthRoot = p.RingQ().NthRoot()
				gks = append(gks, gk)
				evk = &gk.EvaluationKey
			}
		}
		if err := readKeyBody(cr, ks, p.Q(), p.P(), evk, p); err != nil {
			return 0, nil, nil, short(what, err)
		}
	}
	pk, err := readPublicKey(cr, p, keep)
	if err != nil {
		return 0, nil, nil, short("public key", err)
	}
	if err := cr.atEOF(); err != nil {
		if lr.N <= 0 {
			return 0, nil, nil, hegate.E(op, hegate.KindTooLarge, nil, "key set: larger than the %d bytes model %s needs", total, m.ID())
		}
		return 0, nil, nil, bad("%v", err)
	}
	if !keep {
		return cr.n, nil, nil, nil
	}
	return cr.n, rlwe.NewMemEvaluationKeySet(rlk, gks...), pk, nil
}

// readPublicKey reads the public key record; with keep false it only
// checks it.
func readPublicKey(cr *coeffReader, p ckks.Parameters, keep bool) (*rlwe.PublicKey, error) {
	var head [recordHead]byte
	if err := cr.full(head[:]); err != nil {
		return nil, err
	}
	if binary.LittleEndian.Uint64(head[0:8]) != publicKeyTag || !allZeroBytes(head[8:]) {
		return nil, &recordError{"the record after the last Galois key must be the public key at level 0"}
	}
	pk := &rlwe.PublicKey{Value: rlwe.NewVectorQP(p, 2, 0, 0)}
	for i := range pk.Value {
		if err := cr.poly(pk.Value[i].Q, p.Q()[:1]); err != nil {
			return nil, err
		}
		if err := cr.poly(pk.Value[i].P, p.P()[:1]); err != nil {
			return nil, err
		}
	}
	if !keep {
		return nil, nil
	}
	return pk, nil
}

// recordError is a record of the wrong kind.
type recordError struct{ msg string }

func (e *recordError) Error() string { return e.msg }

// readKeyBody reads a seed and a key body. With evk nil it only checks.
func readKeyBody(cr *coeffReader, ks keySize, qs, ps []uint64, evk *rlwe.EvaluationKey, params rlwe.ParameterProvider) error {
	seed := make([]byte, seedSize)
	if err := cr.full(seed); err != nil {
		return err
	}
	var scratch ringqp.Poly
	if evk == nil {
		scratch = params.GetRLWEParameters().RingQP().AtLevel(ks.levelQ, ks.levelP).NewPoly()
	}
	for i := 0; i < ks.rows; i++ {
		dst := scratch
		if evk != nil {
			dst = evk.Value[i][0][0]
		}
		if err := cr.poly(dst.Q, qs); err != nil {
			return err
		}
		if err := cr.poly(dst.P, ps); err != nil {
			return err
		}
	}
	if evk == nil {
		return nil
	}
	evk.Seed = seed
	if err := evk.Expand(params, nil); err != nil {
		return fmt.Errorf("expanding key: %w", err)
	}
	return nil
}

func allZeroBytes(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// KeySetHeaderBytes is how much of a key set CheckKeySetVersion reads.
const KeySetHeaderBytes = 8

// CheckKeySetVersion reports whether a stored key set, of which head are
// the first KeySetHeaderBytes, is in the format this version evaluates
// with: a key set uploaded before results were released under the
// device's public key (version 1) is refused, KindInvalid.
func CheckKeySetVersion(head []byte) error {
	const op = "he.CheckKeySetVersion"
	switch {
	case len(head) < 5 || !bytes.Equal(head[0:4], magicKeySet[:]):
		return hegate.E(op, hegate.KindInvalid, nil, "key set: not a hegate key set (bad magic)")
	case head[4] == 1:
		return hegate.E(op, hegate.KindInvalid, nil, "key set: format version 1 has no public key, which results are re-randomised with; make and upload the key set again with this version")
	case head[4] != keySetVersion:
		return hegate.E(op, hegate.KindInvalid, nil, "key set: format version %d is not supported (want %d)", head[4], keySetVersion)
	}
	return nil
}

package he

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/tuneinsight/lattigo/v6/circuits/ckks/bootstrapping"
	"github.com/tuneinsight/lattigo/v6/circuits/ckks/dft"
	"github.com/tuneinsight/lattigo/v6/circuits/ckks/mod1"
	"github.com/tuneinsight/lattigo/v6/circuits/ckks/polynomial"
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
//
// Version 3 is for models whose circuit bootstraps (a leveled model's key
// set stays version 2, byte for byte). Its header also holds, at 6, the
// number of bootstrapping records (uint16) and, at 48, the first 16 bytes
// of the bootstrapping parameters' fingerprint; the bootstrapping records
// come after the Galois keys, before the public key, in the order of
// Manifest.BootstrapKeys (bootstrap_params.go): the two encapsulation keys
// (tags 2^62|2 and 2^62|3), the bootstrapping relinearisation key (2^62|1),
// then the bootstrapping Galois keys by ascending element. A bootstrapping
// record's head has its levelQ at 8 and its levelP at 9; its body is a
// seed and gadget rows like the others', in the bootstrapping parameters'
// moduli. Each key is generated, written, read and checked one at a time.

const (
	seedSize        = 32
	recordHead      = 16 // Galois element, level, reserved
	relinElementTag = 0  // the Galois element field of the relinearisation key
	// publicKeyTag is the Galois element field of the public key record.
	publicKeyTag = ^uint64(0)
	// keySetVersion is the key-set format's version (ciphertexts and
	// secret keys are at wireVersion).
	keySetVersion = 2
	// keySetVersionBoot is the version of key sets that carry
	// bootstrapping keys.
	keySetVersionBoot = 3
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
	if c.boot != nil {
		n += c.boot.keyBytes()
	}
	return n + c.publicKeyBytes()
}

// version is the key-set format version of the model.
func (c *deviceSpec) version() byte {
	if c.boot != nil {
		return keySetVersionBoot
	}
	return keySetVersion
}

// maxKeyLevel is the highest level a circuit key may be used at: the input
// level, or the residual top for a circuit that bootstraps.
func (c *deviceSpec) maxKeyLevel() int {
	if c.boot != nil {
		return c.params.ckks.MaxLevel()
	}
	return c.inputLevel
}

// keySet is a parsed, expanded key set.
type keySet struct {
	evk         *rlwe.MemEvaluationKeySet
	pk          *rlwe.PublicKey // at level (0, 0), for release
	memoryBytes int64
	// bootKeys are the bootstrapping keys (nil for a leveled model); the
	// bootstrapping evaluator over them, with its DFT matrices, is built
	// once, at the first evaluation.
	bootKeys *bootstrapping.EvaluationKeys
	bootOnce sync.Once
	bootBase *bootstrapping.Evaluator
	bootErr  error
	// pool keeps evaluators over evk between evaluations (building one
	// indexes every Galois key and allocates its buffers: about 10 ms at
	// logN 14). It holds *evaluators.
	pool sync.Pool
}

// evaluators are one evaluation's Lattigo evaluators, one per goroutine,
// and its bootstrapping evaluator when the model bootstraps.
type evaluators struct {
	evals []*ckks.Evaluator
	boot  *bootstrapping.Evaluator
}

// evaluators returns c.parallelism evaluators over the keys, for one
// evaluation; give them back with k.pool.Put. Lattigo evaluators are not
// safe for concurrent use: each goroutine of an evaluation gets its own
// (ShallowCopy shares the keys and allocates fresh buffers).
func (k *keySet) evaluators(c *compiled) (*evaluators, error) {
	if e, ok := k.pool.Get().(*evaluators); ok && len(e.evals) == c.parallelism && (c.boot == nil || e.boot != nil) {
		return e, nil
	}
	e := &evaluators{evals: []*ckks.Evaluator{ckks.NewEvaluator(c.params.ckks, k.evk)}}
	for len(e.evals) < c.parallelism {
		e.evals = append(e.evals, e.evals[0].ShallowCopy())
	}
	if c.boot != nil {
		if k.bootKeys == nil {
			return nil, hegate.E("he.Evaluate", hegate.KindInvalid, nil, "the key set has no bootstrapping keys; model %s bootstraps", c.name)
		}
		k.bootOnce.Do(func() { k.bootBase, k.bootErr = bootstrapping.NewEvaluator(c.boot.btp, k.bootKeys) })
		if k.bootErr != nil {
			return nil, fmt.Errorf("bootstrapping evaluator: %w", k.bootErr)
		}
		e.boot = shallowBootstrapper(k.bootBase)
	}
	return e, nil
}

// shallowBootstrapper is a bootstrapping evaluator sharing base's keys and
// DFT matrices with buffers of its own, for one goroutine. (Lattigo's
// ShallowCopy builds its DFT and EvalMod evaluators on the residual
// parameters, which the bootstrapping circuit's levels exceed.)
func shallowBootstrapper(base *bootstrapping.Evaluator) *bootstrapping.Evaluator {
	ev := base.Evaluator.ShallowCopy()
	params := base.BootstrappingParameters
	return &bootstrapping.Evaluator{
		Parameters:     base.Parameters,
		Evaluator:      ev,
		DFTEvaluator:   dft.NewEvaluator(params, ev),
		Mod1Evaluator:  mod1.NewEvaluator(ev, polynomial.NewEvaluator(params, ev), base.Mod1Parameters),
		EvaluationKeys: base.EvaluationKeys,
		Mod1Parameters: base.Mod1Parameters,
		S2CDFTMatrix:   base.S2CDFTMatrix,
		C2SDFTMatrix:   base.C2SDFTMatrix,
	}
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
	h[4] = c.version()
	h[5] = 1
	binary.LittleEndian.PutUint32(h[8:12], uint32(len(c.galEls)))
	h[12], h[13] = byte(c.inputLevel), byte(p.MaxLevelP())
	copy(h[16:48], c.params.fingerprintRaw())
	if c.boot != nil {
		binary.LittleEndian.PutUint16(h[6:8], uint16(len(c.boot.records)))
		copy(h[48:64], c.boot.fingerprint[:16])
	}
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
		writeKeyBody(cw, evk)
		if cw.err != nil {
			break
		}
	}
	if c.boot != nil && cw.err == nil {
		// The bootstrapping keys, one at a time, under the secret extended
		// to the bootstrapping modulus (and the ephemeral sparse secret
		// for the encapsulation, drawn here and forgotten).
		skBoot, skSparse := c.boot.bootSecrets(sk.sk.sk)
		for _, rec := range c.boot.records {
			evk := c.boot.genBootKey(rec, skBoot, skSparse)
			var head [recordHead]byte
			binary.LittleEndian.PutUint64(head[0:8], rec.tag())
			head[8], head[9] = byte(rec.levelQ), byte(rec.levelP)
			cw.bytes(head[:])
			writeKeyBody(cw, evk)
			if cw.err != nil {
				break
			}
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

// writeKeyBody writes a compressed key's seed and gadget rows.
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
	ks, err := m.scanKeySetFull("he.ReadKeySet", r, true)
	if err != nil {
		return nil, err
	}
	return &KeySet{k: ks}, nil
}

func (m *Model) scanKeySet(op string, r io.Reader, keep bool) (int64, *rlwe.MemEvaluationKeySet, *rlwe.PublicKey, error) {
	ks, err := m.scanKeySetFull(op, r, keep)
	if err != nil || ks == nil {
		return 0, nil, nil, err
	}
	return ks.memoryBytes / 2, ks.evk, ks.pk, nil
}

// scanKeySetFull reads and checks a key set; with keep it expands it.
// Without keep it returns a keySet with only memoryBytes (twice the bytes
// read) set.
func (m *Model) scanKeySetFull(op string, r io.Reader, keep bool) (*keySet, error) {
	n, evk, pk, boot, err := m.scanKeySetRecords(op, r, keep)
	if err != nil {
		return nil, err
	}
	return &keySet{evk: evk, pk: pk, bootKeys: boot, memoryBytes: 2 * n}, nil
}

func (m *Model) scanKeySetRecords(op string, r io.Reader, keep bool) (int64, *rlwe.MemEvaluationKeySet, *rlwe.PublicKey, *bootstrapping.EvaluationKeys, error) {
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
		return 0, nil, nil, nil, short("header", err)
	}
	switch {
	case !bytes.Equal(h[0:4], magicKeySet[:]):
		return 0, nil, nil, nil, bad("not a hegate key set (bad magic)")
	case h[4] == 1:
		return 0, nil, nil, nil, bad("format version 1 has no public key, which results are re-randomised with; make and upload the key set again with this version")
	case h[4] != c.version() && (h[4] == keySetVersion || h[4] == keySetVersionBoot):
		if c.boot != nil {
			return 0, nil, nil, nil, bad("format version %d has no bootstrapping keys, which model %s needs (version %d)", h[4], m.ID(), c.version())
		}
		return 0, nil, nil, nil, bad("format version %d carries bootstrapping keys, model %s is leveled (version %d)", h[4], m.ID(), c.version())
	case h[4] != c.version():
		return 0, nil, nil, nil, bad("format version %d is not supported (want %d)", h[4], c.version())
	case h[5] != 1:
		return 0, nil, nil, nil, bad("flags %#x: only compressed key sets (flag 1) are accepted", h[5])
	case !bytes.Equal(h[16:48], c.params.fingerprintRaw()):
		return 0, nil, nil, nil, bad("made for other CKKS parameters than model %s (%s)", m.ID(), c.params.name)
	case int(h[12]) != c.inputLevel || int(h[13]) != p.MaxLevelP():
		return 0, nil, nil, nil, bad("keys at levels (Q %d, P %d), model %s wants (Q %d, P %d)", h[12], h[13], m.ID(), c.inputLevel, p.MaxLevelP())
	}
	if got := binary.LittleEndian.Uint32(h[8:12]); int(got) != len(c.galEls) {
		return 0, nil, nil, nil, bad("%d Galois keys, model %s needs exactly %d (see the manifest's galois_elements)", got, m.ID(), len(c.galEls))
	}
	if c.boot != nil {
		if got := binary.LittleEndian.Uint16(h[6:8]); int(got) != len(c.boot.records) {
			return 0, nil, nil, nil, bad("%d bootstrapping keys, model %s needs exactly %d (see the manifest's bootstrap_keys)", got, m.ID(), len(c.boot.records))
		}
		if !bytes.Equal(h[48:64], c.boot.fingerprint[:16]) {
			return 0, nil, nil, nil, bad("bootstrapping keys made for other bootstrapping parameters than model %s's", m.ID())
		}
	} else if !allZeroBytes(h[6:8]) || !allZeroBytes(h[48:64]) {
		return 0, nil, nil, nil, bad("reserved header bytes are not zero")
	}
	if !allZeroBytes(h[14:16]) {
		return 0, nil, nil, nil, bad("reserved header bytes are not zero")
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
			return 0, nil, nil, nil, short(what, err)
		}
		if got := binary.LittleEndian.Uint64(head[0:8]); got != rec.galEl {
			return 0, nil, nil, nil, bad("%s: record is for element %d, model %s needs %d there (relinearisation key first, then ascending Galois elements)", what, got, m.ID(), rec.galEl)
		}
		if int(head[8]) != rec.level || !allZeroBytes(head[9:]) {
			return 0, nil, nil, nil, bad("%s: at level %d, model %s needs it at level %d", what, head[8], m.ID(), rec.level)
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
			return 0, nil, nil, nil, short(what, err)
		}
	}
	var boot *bootstrapping.EvaluationKeys
	if c.boot != nil {
		var err error
		if boot, err = c.boot.readBootKeys(cr, keep, m.ID(), bad, short); err != nil {
			return 0, nil, nil, nil, err
		}
	}
	pk, err := readPublicKey(cr, p, keep)
	if err != nil {
		return 0, nil, nil, nil, short("public key", err)
	}
	if err := cr.atEOF(); err != nil {
		if lr.N <= 0 {
			return 0, nil, nil, nil, hegate.E(op, hegate.KindTooLarge, nil, "key set: larger than the %d bytes model %s needs", total, m.ID())
		}
		return 0, nil, nil, nil, bad("%v", err)
	}
	if !keep {
		return cr.n, nil, nil, nil, nil
	}
	return cr.n, rlwe.NewMemEvaluationKeySet(rlk, gks...), pk, boot, nil
}

// readBootKeys reads and checks the bootstrapping records; with keep it
// returns them expanded, as Lattigo's bootstrapping evaluator takes them.
func (bp *bootParams) readBootKeys(cr *coeffReader, keep bool, model hegate.ModelID, bad func(string, ...any) error, short func(string, error) error) (*bootstrapping.EvaluationKeys, error) {
	pb := bp.btp.BootstrappingParameters
	out := &bootstrapping.EvaluationKeys{}
	var rlk *rlwe.RelinearizationKey
	var gks []*rlwe.GaloisKey
	for _, rec := range bp.records {
		what := rec.String()
		var head [recordHead]byte
		if err := cr.full(head[:]); err != nil {
			return nil, short(what, err)
		}
		if got := binary.LittleEndian.Uint64(head[0:8]); got != rec.tag() {
			return nil, bad("%s: record has tag %d, model %s needs %d there (see the manifest's bootstrap_keys)", what, got, model, rec.tag())
		}
		if int(head[8]) != rec.levelQ || int(head[9]) != rec.levelP || !allZeroBytes(head[10:]) {
			return nil, bad("%s: at levels (Q %d, P %d), model %s needs (Q %d, P %d)", what, head[8], head[9], model, rec.levelQ, rec.levelP)
		}
		var evk *rlwe.EvaluationKey
		if keep {
			evk = bp.newBootKey(rec)
		}
		if err := readKeyBody(cr, bp.recordSize(rec), pb.Q(), pb.P(), evk, bp.keyParams(rec)); err != nil {
			return nil, short(what, err)
		}
		if !keep {
			continue
		}
		switch rec.kind {
		case bootSparseToDense:
			out.EvkSparseToDense = evk
		case bootDenseToSparse:
			out.EvkDenseToSparse = evk
		case bootRelin:
			rlk = &rlwe.RelinearizationKey{EvaluationKey: *evk}
		default:
			gks = append(gks, &rlwe.GaloisKey{EvaluationKey: *evk, GaloisElement: rec.galEl, NthRoot: pb.RingQ().NthRoot()})
		}
	}
	if !keep {
		return nil, nil
	}
	// Lattigo's bootstrapping evaluator checks for a key for the identity
	// (element 1) and never uses it: an empty one at level 0.
	zero := 0
	id := rlwe.NewGaloisKey(pb, rlwe.EvaluationKeyParameters{LevelQ: &zero, LevelP: &zero})
	id.GaloisElement, id.NthRoot = 1, pb.RingQ().NthRoot()
	gks = append(gks, id)
	out.MemEvaluationKeySet = rlwe.NewMemEvaluationKeySet(rlk, gks...)
	return out, nil
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
	case head[4] != keySetVersion && head[4] != keySetVersionBoot:
		return hegate.E(op, hegate.KindInvalid, nil, "key set: format version %d is not supported (want %d, or %d with bootstrapping keys)", head[4], keySetVersion, keySetVersionBoot)
	}
	return nil
}

package he

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"

	"github.com/tuneinsight/lattigo/v6/circuits/ckks/bootstrapping"
	"github.com/tuneinsight/lattigo/v6/circuits/ckks/dft"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/utils"
)

// Bootstrapping parameters.
//
// A bootstrapping preset is a leveled preset (its "residual" parameters:
// what the compiled circuit runs on, L levels) plus a Lattigo
// bootstrapping literal: the bootstrapping circuit's own moduli sit above
// the residual ones (the same ring, the same secret extended to the larger
// modulus), and a bootstrap takes a ciphertext at any level and returns it
// at level L. The bootstrapping parameters are instantiated per model,
// with the model's slot count (LogSlots): the homomorphic DFTs then work in
// dimension n instead of N/2, which needs fewer rotations and fewer keys.
//
// The main secret is the residual parameters' uniform ternary secret for
// every key; only the encapsulation of the bootstrapping (Bossuat et al.,
// eprint 2022/024) switches to a sparse ephemeral secret of Hamming weight
// EphemeralSecretWeight, for the ModUp step only, with a key of modulus
// q0·p0 (121 bits, where Lattigo notes H = 32 keeps over 128 bits).

// bootPresets: the bootstrapping literal of each bootstrapping preset.
func bootLiteral(name string) *bootstrapping.ParametersLiteral {
	switch name {
	case "test-n10-boot":
		// INSECURE, for tests: Lattigo's default circuit (CoeffsToSlots
		// depth 4 at 56 bits, EvalMod 8 levels at 60 bits, SlotsToCoeffs
		// depth 3 at 39 bits) on logN 10, with a message ratio q0/|m| of
		// 2^16 instead of 2^8. EvalMod approximates x mod 1 by
		// sin(2πx)/2π, whose relative error (2πx)²/6 at x = m/ratio is
		// 4e-4 for a constant vector of 10s at 2^12 (the shift of a
		// degree-2 activation puts values there), 1.5e-6 at 2^16;
		// q0/Δ = 2^20 leaves the room.
		return &bootstrapping.ParametersLiteral{
			LogN:            utils.Pointy(10),
			LogP:            []int{61, 61, 61},
			Xs:              rlwe.DefaultXs,
			LogMessageRatio: utils.Pointy(16),
		}
	case "n16-boot":
		// The 128-bit profile (defined, not run by the test suite). Memory
		// is what limits bootstrapping on a 24 GB machine, so the choices
		// minimise evaluation-key bytes within the HomomorphicEncryption.org
		// bound logQP ≤ 1772 for logN 16 (maxLogQP128: table 1 of the
		// standard, uniform ternary secret, sigma 3.2):
		//   - 7 special primes of 61 bits (Lattigo's default for this chain
		//     is floor(sqrt(#Q)) = 5): a key at level l has
		//     ceil((l+1)/7) gadget rows;
		//   - CoeffsToSlots and SlotsToCoeffs factorised into 5 levels each
		//     (Lattigo's defaults are 4 and 3): each level merges fewer
		//     radix-2 stages, so the DFT has fewer diagonals and needs
		//     fewer rotation keys;
		//   - EvalMod at 55-bit primes (as Lattigo's N16QP1553 set) to pay
		//     for the two DFT levels;
		//   - keys generated at the level they are used (keyRecords);
		//   - the dense secret for every key, the sparse H = 32 secret only
		//     for the encapsulation key (as Lattigo's defaults do);
		//   - keys seeded on the wire (the uniform half is a 32-byte seed);
		//   - a message ratio of 2^12 (Lattigo's default is 2^8): the
		//     sine's relative error (2π·m/ratio)²/6 on values |m| ~ 10
		//     (shifted squares, ReLU inputs) drops from 1e-2 to 4e-5, for
		//     4 bits of the bootstrapping noise's headroom in q0/Δ = 2^20.
		// logQP = residual 60 + 9·40 + 3·61 and bootstrapping 5·39 + 8·55 +
		// 5·54 + 7·61: 1752 ≤ 1772 (LoadParams checks it). With 2^15
		// slots: 32 keys, 4.53 GB expanded (2.27 GB on the wire), against
		// 36 keys and 4.85 GB for P = 7×61 with depths 4 + 4 and every key
		// at the top level (TestBootProfileDefinition prints the figures).
		return &bootstrapping.ParametersLiteral{
			LogN:            utils.Pointy(16),
			LogP:            []int{61, 61, 61, 61, 61, 61, 61},
			Xs:              rlwe.DefaultXs,
			EvalModLogScale: utils.Pointy(55),
			LogMessageRatio: utils.Pointy(12),
			CoeffsToSlotsFactorizationDepthAndLogScales: [][]int{{54}, {54}, {54}, {54}, {54}},
			SlotsToCoeffsFactorizationDepthAndLogScales: [][]int{{39}, {39}, {39}, {39}, {39}},
		}
	}
	return nil
}

// bootParams are a model's bootstrapping parameters.
type bootParams struct {
	btp      bootstrapping.Parameters
	logSlots int
	// fingerprint digests the bootstrapping parameters (moduli, DFT
	// factorisation, slots, encapsulation): a key set made for other ones
	// is refused.
	fingerprint [32]byte
	records     []bootKeyRecord
}

// Bootstraps reports whether the preset can bootstrap.
func (p *Params) Bootstraps() bool { return p.boot != nil }

// bootParams instantiates the preset's bootstrapping parameters for a model
// using 2^logSlots slots (logSlots ≥ 1). The DFT factorisation depths are
// clamped to logSlots (a DFT of 2^k points has at most k levels).
func (p *Params) bootParams(logSlots int) (*bootParams, error) {
	if p.boot == nil {
		return nil, fmt.Errorf("preset %s does not bootstrap", p.name)
	}
	logSlots = max(logSlots, 1)
	lit := *p.boot
	lit.LogSlots = utils.Pointy(logSlots)
	clamp := func(levels [][]int, def, logScale int) [][]int {
		if levels == nil {
			for i := 0; i < def; i++ {
				levels = append(levels, []int{logScale})
			}
		}
		if len(levels) > logSlots {
			levels = levels[len(levels)-logSlots:]
		}
		return levels
	}
	lit.CoeffsToSlotsFactorizationDepthAndLogScales = clamp(lit.CoeffsToSlotsFactorizationDepthAndLogScales, bootstrapping.DefaultCoeffsToSlotsFactorizationDepth, bootstrapping.DefaultCoeffsToSlotsLogScale)
	lit.SlotsToCoeffsFactorizationDepthAndLogScales = clamp(lit.SlotsToCoeffsFactorizationDepthAndLogScales, bootstrapping.DefaultSlotsToCoeffsFactorizationDepth, bootstrapping.DefaultSlotsToCoeffsLogScale)
	btp, err := bootstrapping.NewParametersFromLiteral(p.ckks, lit)
	if err != nil {
		return nil, fmt.Errorf("bootstrapping parameters of preset %s for 2^%d slots: %w", p.name, logSlots, err)
	}
	bp := &bootParams{btp: btp, logSlots: logSlots}
	bp.records = bp.keyRecords()
	var b strings.Builder
	fmt.Fprintf(&b, "hegate-ckks-boot-v1;%s;slots=%d;h=%d;c2s=%v;s2c=%v;mod1=%+v", fingerprint(btp.BootstrappingParameters), logSlots, btp.EphemeralSecretWeight,
		btp.CoeffsToSlotsParameters.Levels, btp.SlotsToCoeffsParameters.Levels, btp.Mod1ParametersLiteral)
	bp.fingerprint = sha256.Sum256([]byte(b.String()))
	return bp, nil
}

// checkBootSecurity checks a secure bootstrapping preset's largest modulus
// against the 128-bit bound.
func checkBootSecurity(p *Params) error {
	bp, err := p.bootParams(p.ckks.LogMaxSlots())
	if err != nil {
		return err
	}
	bpp := bp.btp.BootstrappingParameters
	if limit, ok := maxLogQP128[bpp.LogN()]; !ok || bpp.LogQP() > float64(limit) {
		return fmt.Errorf("preset %s bootstraps with logQP %.1f, above the 128-bit bound %d for logN %d", p.name, bpp.LogQP(), limit, bpp.LogN())
	}
	return nil
}

// Kinds of bootstrapping key record.
const (
	bootGalois           = iota // a Galois key of the bootstrapping parameters
	bootRelin                   // the relinearisation key of the bootstrapping parameters
	bootSparseToDense           // encapsulation: ephemeral sparse secret → main secret
	bootDenseToSparse           // encapsulation: main secret → ephemeral sparse secret
	bootTagBase          uint64 = 1 << 62
	bootTagRelin                = bootTagBase | bootRelin
	bootTagSparseToDense        = bootTagBase | bootSparseToDense
	bootTagDenseToSparse        = bootTagBase | bootDenseToSparse
)

// bootKeyRecord is one bootstrapping key: what it is and its shape.
type bootKeyRecord struct {
	kind   int
	galEl  uint64 // bootGalois
	levelQ int
	levelP int
}

// tag is the record's first 8 bytes on the wire: the Galois element, or a
// tag above 2^62 for the other keys.
func (r bootKeyRecord) tag() uint64 {
	if r.kind == bootGalois {
		return r.galEl
	}
	return bootTagBase | uint64(r.kind)
}

func (r bootKeyRecord) String() string {
	switch r.kind {
	case bootRelin:
		return "bootstrapping relinearisation key"
	case bootSparseToDense:
		return "encapsulation key (sparse to dense)"
	case bootDenseToSparse:
		return "encapsulation key (dense to sparse)"
	}
	return fmt.Sprintf("bootstrapping Galois key (element %d)", r.galEl)
}

// keyRecords lists the bootstrapping keys in wire order, each at the
// highest level the bootstrapping circuit uses it at (Lattigo's own
// GenEvaluationKeys makes every key at the top level):
//
//   - the trace of ModUp (sparse packing) and the CoeffsToSlots rotations
//     run at the top of the chain;
//   - the conjugation splitting real and imaginary parts runs after
//     CoeffsToSlots, at the EvalMod's starting level;
//   - the relinearisation key serves EvalMod only;
//   - the SlotsToCoeffs rotations run from the SlotsToCoeffs level down.
//
// An element used by several phases gets the highest of their levels. The
// encapsulation keys come first: sparse-to-dense at the top level,
// dense-to-sparse at level 0 with one special prime (a 121-bit modulus).
func (bp *bootParams) keyRecords() []bootKeyRecord {
	btp := bp.btp
	pb := btp.BootstrappingParameters
	top, lp := pb.MaxLevel(), pb.MaxLevelP()
	level := map[uint64]int{}
	use := func(ge uint64, l int) {
		if old, ok := level[ge]; !ok || l > old {
			level[ge] = l
		}
	}
	for i := bp.logSlots; i < pb.LogN()-1; i++ {
		use(pb.GaloisElement(1<<i), top)
	}
	for _, ge := range btp.CoeffsToSlotsParameters.GaloisElements(pb) {
		use(ge, btp.CoeffsToSlotsParameters.LevelQ)
	}
	for _, ge := range btp.SlotsToCoeffsParameters.GaloisElements(pb) {
		use(ge, btp.SlotsToCoeffsParameters.LevelQ)
	}
	use(pb.GaloisElementForComplexConjugation(), btp.Mod1ParametersLiteral.LevelQ)
	// Every element Lattigo's evaluator checks for must be there (any not
	// placed above at the top), except the identity: Lattigo asks for a
	// key for element 1 (rotation by 0) but never uses one, so it is not
	// made, sent or stored (readBootKeys puts an empty stand-in).
	for _, ge := range btp.GaloisElements(pb) {
		if _, ok := level[ge]; !ok {
			use(ge, top)
		}
	}
	delete(level, 1)
	var recs []bootKeyRecord
	if btp.EphemeralSecretWeight != 0 {
		recs = append(recs, bootKeyRecord{kind: bootSparseToDense, levelQ: top, levelP: lp}, bootKeyRecord{kind: bootDenseToSparse, levelQ: 0, levelP: 0})
	}
	recs = append(recs, bootKeyRecord{kind: bootRelin, levelQ: btp.Mod1ParametersLiteral.LevelQ, levelP: lp})
	els := make([]uint64, 0, len(level))
	for ge := range level {
		els = append(els, ge)
	}
	sort.Slice(els, func(a, b int) bool { return els[a] < els[b] })
	for _, ge := range els {
		recs = append(recs, bootKeyRecord{kind: bootGalois, galEl: ge, levelQ: level[ge], levelP: lp})
	}
	return recs
}

// keyParams are the parameters a record's key lives in: the bootstrapping
// parameters, or for the dense-to-sparse key their first prime and first
// special prime only (Lattigo makes it so).
func (bp *bootParams) keyParams(r bootKeyRecord) rlwe.ParameterProvider {
	pb := bp.btp.BootstrappingParameters
	if r.kind == bootDenseToSparse {
		sp, err := rlwe.NewParametersFromLiteral(rlwe.ParametersLiteral{LogN: pb.LogN(), Q: pb.Q()[:1], P: pb.P()[:1]})
		if err != nil {
			panic(fmt.Errorf("encapsulation parameters: %w", err)) // the moduli come from valid parameters
		}
		return &sp
	}
	return &pb
}

// recordSize is the shape of a record's key.
func (bp *bootParams) recordSize(r bootKeyRecord) keySize {
	return keySizeIn(bp.keyParams(r).GetRLWEParameters(), r.levelQ, r.levelP)
}

// keySizeIn is the shape of a key at (levelQ, levelP) in p.
func keySizeIn(p *rlwe.Parameters, levelQ, levelP int) keySize {
	rows := p.BaseRNSDecompositionVectorSize(levelQ, levelP)
	return keySize{levelQ: levelQ, levelP: levelP, rows: rows, bodyBytes: int64(rows) * int64(levelQ+1+levelP+1) * int64(p.N()) * 8}
}

// bootKeyBytes is the wire size of the bootstrapping records.
func (bp *bootParams) keyBytes() int64 {
	n := int64(0)
	for _, r := range bp.records {
		n += bp.recordSize(r).recordBytes()
	}
	return n
}

// BootstrapKeys are the bootstrapping keys a model's key set must carry
// (Manifest.BootstrapKeys): the device derives the same list from the
// preset and the slot count, and refuses a manifest that says otherwise.
type BootstrapKeys struct {
	// Fingerprint is the hex SHA-256 of the bootstrapping parameters.
	Fingerprint string `json:"fingerprint"`
	// Depth is the levels the bootstrapping circuit consumes above the
	// residual ones; OutputLevel the level a bootstrap returns.
	Depth       int `json:"depth"`
	OutputLevel int `json:"output_level"`
	// EphemeralSecretWeight is the Hamming weight of the sparse secret of
	// the encapsulation (0: none).
	EphemeralSecretWeight int `json:"ephemeral_secret_weight"`
	// RelinLevel is the level of the bootstrapping relinearisation key;
	// GaloisElements (ascending) and GaloisLevels its Galois keys.
	RelinLevel     int      `json:"relin_level"`
	GaloisElements []uint64 `json:"galois_elements"`
	GaloisLevels   []int    `json:"galois_levels"`
	// Bytes is the bootstrapping records' share of KeySetBytes.
	Bytes int64 `json:"bytes"`
}

func (bp *bootParams) manifest() *BootstrapKeys {
	bk := &BootstrapKeys{
		Fingerprint:           fmt.Sprintf("%x", bp.fingerprint),
		Depth:                 bp.btp.Depth(),
		OutputLevel:           bp.btp.ResidualParameters.MaxLevel(),
		EphemeralSecretWeight: bp.btp.EphemeralSecretWeight,
		Bytes:                 bp.keyBytes(),
	}
	for _, r := range bp.records {
		switch r.kind {
		case bootRelin:
			bk.RelinLevel = r.levelQ
		case bootGalois:
			bk.GaloisElements = append(bk.GaloisElements, r.galEl)
			bk.GaloisLevels = append(bk.GaloisLevels, r.levelQ)
		}
	}
	return bk
}

// equal reports whether two requirement lists are the same.
func (b *BootstrapKeys) equal(o *BootstrapKeys) bool {
	if b == nil || o == nil {
		return b == o
	}
	if b.Fingerprint != o.Fingerprint || b.Depth != o.Depth || b.OutputLevel != o.OutputLevel || b.EphemeralSecretWeight != o.EphemeralSecretWeight ||
		b.RelinLevel != o.RelinLevel || b.Bytes != o.Bytes || len(b.GaloisElements) != len(o.GaloisElements) || len(b.GaloisLevels) != len(o.GaloisLevels) {
		return false
	}
	for i := range b.GaloisElements {
		if b.GaloisElements[i] != o.GaloisElements[i] || b.GaloisLevels[i] != o.GaloisLevels[i] {
			return false
		}
	}
	return true
}

// clone copies b (nil stays nil).
func (b *BootstrapKeys) clone() *BootstrapKeys {
	if b == nil {
		return nil
	}
	c := *b
	c.GaloisElements = append([]uint64(nil), b.GaloisElements...)
	c.GaloisLevels = append([]int(nil), b.GaloisLevels...)
	return &c
}

// genBootKey generates one bootstrapping key record under skBoot (the main
// secret extended to the bootstrapping modulus) and, for the encapsulation
// keys, the ephemeral sparse secret.
func (bp *bootParams) genBootKey(r bootKeyRecord, skBoot, skSparse *rlwe.SecretKey) *rlwe.EvaluationKey {
	pb := bp.btp.BootstrappingParameters
	ks := bp.recordSize(r)
	evkParams := rlwe.EvaluationKeyParameters{LevelQ: utils.Pointy(ks.levelQ), LevelP: utils.Pointy(ks.levelP), Compressed: true}
	switch r.kind {
	case bootRelin:
		return &rlwe.NewKeyGenerator(pb).GenRelinearizationKeyNew(skBoot, evkParams).EvaluationKey
	case bootSparseToDense:
		return rlwe.NewKeyGenerator(pb).GenEvaluationKeyNew(skSparse, skBoot, evkParams)
	case bootDenseToSparse:
		return rlwe.NewKeyGenerator(bp.keyParams(r)).GenEvaluationKeyNew(skBoot, skSparse, evkParams)
	}
	return &rlwe.NewKeyGenerator(pb).GenGaloisKeyNew(r.galEl, skBoot, evkParams).EvaluationKey
}

// bootSecrets extends the device's secret to the bootstrapping modulus
// (as Lattigo's GenEvaluationKeys does when both rings have one degree)
// and draws the ephemeral sparse secret of the encapsulation.
func (bp *bootParams) bootSecrets(sk *rlwe.SecretKey) (skBoot, skSparse *rlwe.SecretKey) {
	pb := bp.btp.BootstrappingParameters
	ringQ, ringP := pb.RingQ(), pb.RingP()
	skBoot = rlwe.NewSecretKey(pb)
	buff := ringQ.NewPoly()
	rlwe.ExtendBasisSmallNormAndCenterNTTMontgomery(ringQ, ringQ, sk.Value.Q, buff, skBoot.Value.Q)
	rlwe.ExtendBasisSmallNormAndCenterNTTMontgomery(ringQ, ringP, sk.Value.Q, buff, skBoot.Value.P)
	if bp.btp.EphemeralSecretWeight != 0 {
		sp := bp.keyParams(bootKeyRecord{kind: bootDenseToSparse})
		skSparse = rlwe.NewKeyGenerator(sp).GenSecretKeyWithHammingWeightNew(bp.btp.EphemeralSecretWeight)
	}
	return skBoot, skSparse
}

// newBootKey allocates a record's key for reading.
func (bp *bootParams) newBootKey(r bootKeyRecord) *rlwe.EvaluationKey {
	ks := bp.recordSize(r)
	evkParams := rlwe.EvaluationKeyParameters{LevelQ: utils.Pointy(ks.levelQ), LevelP: utils.Pointy(ks.levelP), Compressed: true}
	return rlwe.NewEvaluationKey(bp.keyParams(r), evkParams)
}

// moduli of a record's key (Q then P), for the range checks.
func (bp *bootParams) moduli(r bootKeyRecord) ([]uint64, []uint64) {
	pb := bp.btp.BootstrappingParameters
	return pb.Q(), pb.P()
}

// dftBytes bounds the memory of the bootstrapper's encoded DFT matrices,
// which Lattigo builds from the bootstrapping keys' parameters at the first
// evaluation: every matrix of CoeffsToSlots and SlotsToCoeffs holds one
// plaintext per non-zero diagonal, at the DFT's level with its special
// primes. A matrix merging k radix-2 layers of the FFT has at most
// 2^(k+1) − 1 diagonals (the sums of ±2^l over its layers), twice that for
// the repacking merged into the first SlotsToCoeffs matrix of a sparse
// packing, and at most the slots it works on. TestBootstrappedMatchesReference
// checks the bound against the matrices Lattigo builds.
func (bp *bootParams) dftBytes() int64 {
	pb := bp.btp.BootstrappingParameters
	n := int64(pb.N())
	var total int64
	for _, d := range []dft.MatrixLiteral{bp.btp.CoeffsToSlotsParameters, bp.btp.SlotsToCoeffsParameters} {
		dslots := 1 << d.LogSlots
		sparse := d.LogSlots < pb.LogMaxSlots()
		if sparse && d.Format == dft.RepackImagAsReal {
			dslots *= 2
		}
		depth := d.Depth(false)
		level := d.LogSlots
		for i := 0; i < depth; i++ {
			merge := (level + depth - i - 1) / (depth - i)
			level -= merge
			diags := 1<<(merge+1) - 1
			if i == 0 && sparse && d.Type == dft.HomomorphicDecode && d.Format == dft.RepackImagAsReal {
				diags = 2*diags + 1
			}
			total += int64(min(diags, dslots)) * int64(d.LevelQ+1+d.LevelP+1) * n * 8
		}
	}
	return total
}

// bootstrapperBuffers is the number of polynomials at the bootstrapping
// circuit's top level (with its special primes) that one bootstrapping
// evaluator allocates as scratch space: the ckks evaluator's buffers and
// two per gadget row of its key-switching decomposition. Calibrated on the
// heap one holds (a heap profile of bootstrapping.NewEvaluator;
// TestBootstrappedMatchesReference checks the estimate against it).
func bootstrapperBuffers(decomp int) int64 { return 30 + 2*int64(decomp) }

// evaluatorBytes estimates the memory one evaluation's bootstrapper holds
// besides the keys: the DFT matrices (shared by the evaluations of a key
// set) and one evaluator's scratch space.
func (bp *bootParams) evaluatorBytes() int64 {
	pb := bp.btp.BootstrappingParameters
	top := int64(pb.MaxLevel()+1+pb.MaxLevelP()+1) * int64(pb.N()) * 8
	decomp := pb.BaseRNSDecompositionVectorSize(pb.MaxLevel(), pb.MaxLevelP())
	return bp.dftBytes() + bootstrapperBuffers(decomp)*top
}

// dftMatrixBytes measures the DFT matrices of a built bootstrapper.
func dftMatrixBytes(ev *bootstrapping.Evaluator) int64 {
	var total int64
	for _, m := range []dft.Matrix{ev.C2SDFTMatrix, ev.S2CDFTMatrix} {
		for _, lt := range m.Matrices {
			for _, v := range lt.Vec {
				total += int64(v.Q.N()) * int64(v.Q.Level()+1+v.P.Level()+1) * 8
			}
		}
	}
	return total
}

package he

import (
	"fmt"
	"runtime"
	"time"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// Primitives are the times of raw Lattigo operations on one ciphertext, on
// this machine, at the given parameters and level. They are the baseline
// that benchmarks compare hegate's evaluation against: an evaluation should
// cost about Σ count × time over its primitive counts.
type Primitives struct {
	Preset    string
	Level     int
	Rotation  time.Duration // one key-switched slot rotation
	PlainMult time.Duration // ciphertext × plaintext (pre-encoded)
	MulRelin  time.Duration // ciphertext × ciphertext with relinearisation
	Rescale   time.Duration
}

// PredictSteps is the time a circuit's steps would take as primitives timed
// alone, each at the level it runs at. byLevel holds Primitives per level.
func PredictSteps(steps []StepInfo, byLevel map[int]Primitives) time.Duration {
	var d time.Duration
	for _, st := range steps {
		d += byLevel[st.Level].Predict(st.Cost)
	}
	return d
}

// EstimateLatency estimates one sequential evaluation of steps from
// primitive times per level: a giant step or rotate-and-sum rotation is a
// rotation, a hoisted baby step about a sixth of one, each diagonal a
// plaintext multiplication, each square or product a multiplication with
// relinearisation, each level a rescale.
func EstimateLatency(steps []StepInfo, byLevel map[int]Primitives) time.Duration {
	var d time.Duration
	for _, st := range steps {
		p := byLevel[st.Level]
		switch st.Kind {
		case "linear":
			rotSum := st.Cost.Rotations - st.BabySteps - st.GiantSteps
			d += time.Duration(st.GiantSteps+rotSum)*p.Rotation + time.Duration(st.BabySteps)*p.Rotation/6 +
				time.Duration(st.Diagonals)*p.PlainMult + p.Rescale
		default:
			d += p.Predict(st.Cost)
		}
	}
	return d
}

// Predict is the time the primitive counts of c would take on their own.
func (p Primitives) Predict(c Cost) time.Duration {
	return time.Duration(c.Rotations)*p.Rotation +
		time.Duration(c.PlainMults)*p.PlainMult +
		time.Duration(c.CipherMults)*p.MulRelin +
		time.Duration(c.Rescales)*p.Rescale
}

// MeasurePrimitives times raw Lattigo operations with a fresh key at level,
// taking the fastest of rounds runs of each (the least disturbed by other
// work on the machine; compare it with the fastest evaluation).
func MeasurePrimitives(preset string, allowInsecure bool, level, rounds int) (Primitives, error) {
	params, err := LoadParams(preset, allowInsecure)
	if err != nil {
		return Primitives{}, err
	}
	p := params.ckks
	if level < 1 || level > p.MaxLevel() {
		return Primitives{}, fmt.Errorf("level %d out of range 1..%d", level, p.MaxLevel())
	}
	rounds = max(rounds, 1)
	kgen := rlwe.NewKeyGenerator(p)
	sk := kgen.GenSecretKeyNew()
	// Keys at the level measured, as hegate generates them.
	evkp := rlwe.EvaluationKeyParameters{LevelQ: &level}
	rlk := kgen.GenRelinearizationKeyNew(sk, evkp)
	gk := kgen.GenGaloisKeyNew(p.GaloisElement(1), sk, evkp)
	eval := ckks.NewEvaluator(p, rlwe.NewMemEvaluationKeySet(rlk, gk))
	ecd := ckks.NewEncoder(p)

	values := make([]float64, p.MaxSlots())
	for i := range values {
		values[i] = float64(i%7) / 7
	}
	pt := ckks.NewPlaintext(p, level)
	if err := ecd.Encode(values, pt); err != nil {
		return Primitives{}, err
	}
	ct, err := rlwe.NewEncryptor(p, sk).EncryptNew(pt)
	if err != nil {
		return Primitives{}, err
	}
	out := ckks.NewCiphertext(p, 1, level)
	// Collect what the caller left (key sets are hundreds of MB) so that a
	// concurrent GC does not take the other core while we time.
	runtime.GC()
	fastest := func(f func() error) (time.Duration, error) {
		best := time.Duration(1<<63 - 1)
		for i := 0; i < rounds; i++ {
			t0 := time.Now()
			if err := f(); err != nil {
				return 0, err
			}
			best = min(best, time.Since(t0))
		}
		return best, nil
	}
	res := Primitives{Preset: params.name, Level: level}
	if res.Rotation, err = fastest(func() error { return eval.Rotate(ct, 1, out) }); err != nil {
		return res, err
	}
	if res.PlainMult, err = fastest(func() error { return eval.Mul(ct, pt, out) }); err != nil {
		return res, err
	}
	if res.MulRelin, err = fastest(func() error { return eval.MulRelin(ct, ct, out) }); err != nil {
		return res, err
	}
	if res.Rescale, err = fastest(func() error {
		tmp := ct.CopyNew()
		return eval.Rescale(tmp, tmp)
	}); err != nil {
		return res, err
	}
	return res, nil
}

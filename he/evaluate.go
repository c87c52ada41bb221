package he

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tuneinsight/lattigo/v6/circuits/ckks/lintrans"
	"github.com/tuneinsight/lattigo/v6/circuits/ckks/polynomial"
	commonlintrans "github.com/tuneinsight/lattigo/v6/circuits/common/lintrans"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"

	"github.com/hegate/hegate"
)

// CheckCiphertext validates an input ciphertext in full against the model:
// header, exact size, and every coefficient below its modulus (the gateway
// runs it before accepting a job, so a bad input is refused at once).
// Errors are KindInvalid and say what is wrong.
func (m *Model) CheckCiphertext(b []byte) error {
	const op = "he.CheckCiphertext"
	_, err := m.c.params.parseCiphertext(op, b, m.inputWant())
	return err
}

func (m *Model) inputWant() ctWant {
	c := m.c
	scale := c.params.ckks.DefaultScale().Float64()
	return ctWant{kind: ctInput, level: c.inputLevel, logSlots: c.logN, scale: scale}
}

// Evaluate runs the compiled circuit on one input ciphertext with the
// device's key set and returns the released result ciphertext (wire
// format): re-randomised under the device's public key and noised with
// rel.Sigma (see release.go). There is no way to get the raw result. It
// honours ctx between steps. Errors about the input are KindInvalid.
// Evaluate is safe for concurrent use: each call has its own evaluator.
func (m *Model) Evaluate(ctx context.Context, ks *KeySet, input []byte, rel Release) (_ []byte, _ Stats, err error) {
	const op = "he.Evaluate"
	defer func() {
		// Inputs are validated before Lattigo sees them; a panic here is a
		// bug, and it must fail this job, not the worker process.
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: model %s: evaluator panic: %v", op, m.ID(), r)
		}
	}()
	start := time.Now()
	c := m.c
	if c.describeOnly {
		return nil, Stats{}, hegate.E(op, hegate.KindInternal, nil, "model %s was compiled to be described, not evaluated (CompileOptions.DescribeOnly)", m.ID())
	}
	if ks == nil || ks.k == nil || ks.k.evk == nil {
		return nil, Stats{}, hegate.E(op, hegate.KindInvalid, nil, "no key set")
	}
	ct, err := c.params.parseCiphertext(op, input, m.inputWant())
	if err != nil {
		return nil, Stats{}, err
	}
	evals, err := ks.k.evaluators(c)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("%s: model %s: %w", op, m.ID(), err)
	}
	defer ks.k.pool.Put(evals)
	out, err := c.run(ctx, ct, evals)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("%s: model %s: %w", op, m.ID(), err)
	}
	relStart := time.Now()
	if err := c.release(out, ks.k.pk, rel); err != nil {
		return nil, Stats{}, err
	}
	relTime := time.Since(relStart)
	b, err := c.params.marshalCiphertext(ctResult, out, nil)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("%s: %w", op, err)
	}
	return b, Stats{Cost: c.cost, Duration: time.Since(start), Release: relTime}, nil
}

// run evaluates the steps on the input ciphertext. Values are freed after
// their last reader.
func (c *compiled) run(ctx context.Context, input *rlwe.Ciphertext, ev *evaluators) (*rlwe.Ciphertext, error) {
	evals := ev.evals
	eval := evals[0]
	var polyEval *polynomial.Evaluator // made on the first polynomial step
	var ecds []*ckks.Encoder           // lazy weights: taken on the first linear step
	// Project the input onto its real part: x + conj(x) = 2·Re(x), and the
	// device encrypts half its input (Device.Encrypt). A device that
	// encrypts complex values thus gets what real ones would give: the
	// imaginary parts of the slots carry nothing of the model, which the
	// privacy mechanism's sensitivity does not count.
	conj, err := eval.ConjugateNew(input)
	if err != nil {
		return nil, fmt.Errorf("projecting the input onto its real part: %w", err)
	}
	if err := eval.Add(input, conj, input); err != nil {
		return nil, fmt.Errorf("projecting the input onto its real part: %w", err)
	}
	vals := make([]*rlwe.Ciphertext, len(c.circ.values))
	vals[c.circ.input] = input
	// at returns value v at exactly level (a copy when it must be dropped).
	at := func(v, level int) (*rlwe.Ciphertext, error) {
		ct := vals[v]
		if ct == nil {
			return nil, fmt.Errorf("value %d is not computed", v)
		}
		switch {
		case ct.Level() == level:
			return ct, nil
		case ct.Level() < level:
			return nil, fmt.Errorf("value %d is at level %d, the step needs %d", v, ct.Level(), level)
		}
		cp := ct.CopyNew()
		eval.DropLevel(cp, cp.Level()-level)
		return cp, nil
	}
	for i, st := range c.steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var out *rlwe.Ciphertext
		switch st.kind {
		case kindLinear:
			for k, t := range st.lin.terms {
				x, err := at(t.in, st.level)
				if err != nil {
					return nil, fmt.Errorf("step %d (%s): %w", i, st.name, err)
				}
				if c.lazy && ecds == nil {
					ecds = c.encoders()
					defer c.putEncoders(ecds)
				}
				// Lazy weights: the term's plaintexts, encoded now and
				// dropped after it.
				parts, err := t.transforms(c.params.ckks, ecds)
				if err != nil {
					return nil, fmt.Errorf("step %d (%s, term %d): %w", i, st.name, k, err)
				}
				y, err := linear(evals, x, parts)
				if err != nil {
					return nil, fmt.Errorf("step %d (%s, term %d): %w", i, st.name, k, err)
				}
				if out == nil {
					out = y
					continue
				}
				// Every term's product has the scale Δ·q_level (up to the
				// rounding of its plaintext scale): add as such.
				y.Scale = out.Scale
				if err := eval.Add(out, y, out); err != nil {
					return nil, fmt.Errorf("step %d (%s, sum): %w", i, st.name, err)
				}
			}
			if err := eval.Rescale(out, out); err != nil {
				return nil, fmt.Errorf("step %d (%s, rescale): %w", i, st.name, err)
			}
			out.Scale = c.params.ckks.DefaultScale()
			for _, r := range st.lin.rotSum {
				rot, err := eval.RotateNew(out, r)
				if err != nil {
					return nil, fmt.Errorf("step %d (%s, rotate %d): %w", i, st.name, r, err)
				}
				if err := eval.Add(out, rot, out); err != nil {
					return nil, fmt.Errorf("step %d (%s, sum): %w", i, st.name, err)
				}
			}
			if st.lin.bias != nil {
				if err := eval.Add(out, st.lin.bias, out); err != nil {
					return nil, fmt.Errorf("step %d (%s, bias): %w", i, st.name, err)
				}
			}
		case kindSquare, kindMul:
			x, err := at(st.in[0], st.level)
			if err != nil {
				return nil, fmt.Errorf("step %d (%s): %w", i, st.name, err)
			}
			y := x
			if st.kind == kindMul {
				if y, err = at(st.in[1], st.level); err != nil {
					return nil, fmt.Errorf("step %d (%s): %w", i, st.name, err)
				}
			}
			out = ckks.NewCiphertext(c.params.ckks, 1, x.Level())
			if err := eval.MulRelin(x, y, out); err != nil {
				return nil, fmt.Errorf("step %d (%s, %s): %w", i, st.name, st.kind, err)
			}
			if err := eval.Rescale(out, out); err != nil {
				return nil, fmt.Errorf("step %d (%s, rescale): %w", i, st.name, err)
			}
		case kindBootstrap:
			if ev.boot == nil {
				return nil, fmt.Errorf("step %d (bootstrap after %s): the key set has no bootstrapping keys", i, st.name)
			}
			x, err := at(st.in[0], st.level)
			if err != nil {
				return nil, fmt.Errorf("step %d (bootstrap after %s): %w", i, st.name, err)
			}
			// Lattigo's Evaluate rather than Bootstrap: with one ring
			// degree there is nothing to pack, and Bootstrap would mark a
			// sparse ciphertext as fully packed before CoeffsToSlots.
			if out, err = ev.boot.Evaluate(x.CopyNew()); err != nil {
				return nil, fmt.Errorf("step %d (bootstrap after %s): %w", i, st.name, err)
			}
			out.Scale = c.params.ckks.DefaultScale()
		case kindPoly:
			x, err := at(st.in[0], st.level)
			if err != nil {
				return nil, fmt.Errorf("step %d (%s): %w", i, st.name, err)
			}
			if polyEval == nil {
				polyEval = polynomial.NewEvaluator(c.params.ckks, eval)
			}
			target := c.params.ckks.DefaultScale()
			if st.cleanImag {
				target = target.Div(rlwe.NewScale(2))
			}
			if out, err = polyEval.Evaluate(x, *st.poly, target); err != nil {
				return nil, fmt.Errorf("step %d (%s, polynomial): %w", i, st.name, err)
			}
			if st.cleanImag {
				// (y + conj(y)) at scale Δ/2 is 2·Re(y) at Δ: the real part.
				conj, err := eval.ConjugateNew(out)
				if err != nil {
					return nil, fmt.Errorf("step %d (%s, conjugate): %w", i, st.name, err)
				}
				if err := eval.Add(out, conj, out); err != nil {
					return nil, fmt.Errorf("step %d (%s, real part): %w", i, st.name, err)
				}
				out.Scale = out.Scale.Mul(rlwe.NewScale(2))
			}
		}
		switch {
		case out.Level() > st.outLevel:
			eval.DropLevel(out, out.Level()-st.outLevel)
		case out.Level() < st.outLevel:
			return nil, fmt.Errorf("step %d (%s): result at level %d, planned %d", i, st.name, out.Level(), st.outLevel)
		}
		vals[st.out] = out
		for _, v := range st.in {
			if c.lastUse[v] == i && v != c.circ.input {
				vals[v] = nil
			}
		}
	}
	return vals[c.circ.output], nil
}

// linear applies a linear step's parts to ct and sums them (no rescale).
// With one part it is Lattigo's hoisted BSGS evaluation. With several, the
// input is decomposed once, the baby-step rotations (shared by every part)
// are computed by all goroutines together, then each part's giant steps run
// on its own goroutine, and the partial results are added.
func linear(evals []*ckks.Evaluator, ct *rlwe.Ciphertext, parts []lintrans.LinearTransformation) (*rlwe.Ciphertext, error) {
	p := *evals[0].GetParameters()
	if len(parts) == 1 {
		out := ckks.NewCiphertext(p, 1, ct.Level())
		return out, lintrans.NewEvaluator(evals[0]).Evaluate(ct, parts[0], out)
	}
	levelQ, levelP := ct.Level(), parts[0].LevelP
	decomposed := evals[0].GetBuffDecompQP()
	evals[0].DecomposeNTT(levelQ, levelP, levelP+1, ct.Value[1], ct.IsNTT, decomposed)

	babySet := map[int]bool{}
	for _, part := range parts {
		_, _, babies := commonlintrans.LinearTransformation(part).BSGSIndex()
		for _, r := range babies {
			babySet[r] = r != 0
		}
	}
	var babies []int
	preRot := map[int]*rlwe.Element[ringqp.Poly]{}
	for r, nonzero := range babySet {
		if nonzero {
			babies = append(babies, r)
			preRot[r] = rlwe.NewElementExtended(p, 1, levelQ, levelP)
		}
	}
	sort.Ints(babies)
	workers := min(len(evals), len(parts))
	if err := parallel(workers, func(g int) error {
		for i := g; i < len(babies); i += workers {
			r := babies[i]
			if err := evals[g].AutomorphismHoistedLazy(levelQ, ct, decomposed, p.GaloisElement(r), preRot[r]); err != nil {
				return fmt.Errorf("baby step %d: %w", r, err)
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}

	outs := make([]*rlwe.Ciphertext, len(parts))
	if err := parallel(len(parts), func(i int) error {
		outs[i] = ckks.NewCiphertext(p, 1, levelQ)
		le := commonlintrans.Evaluator{Evaluator: evals[i%len(evals)]}
		return le.MultiplyByDiagMatrixBSGS(ct, commonlintrans.LinearTransformation(parts[i]), preRot, outs[i])
	}); err != nil {
		return nil, err
	}
	for _, o := range outs[1:] {
		if err := evals[0].Add(outs[0], o, outs[0]); err != nil {
			return nil, err
		}
	}
	return outs[0], nil
}

// parallel runs f(0..n-1) on n goroutines and returns the first error.
func parallel(n int, f func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					errs[i] = fmt.Errorf("panic: %v", r)
				}
			}()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Manifest describes the compiled model for clients. It is computed once
// by Compile; each call returns a copy the caller may change.
func (m *Model) Manifest() Manifest {
	man := m.manifest
	man.Input = slices.Clone(man.Input)
	man.GaloisElements = slices.Clone(man.GaloisElements)
	man.GaloisLevels = slices.Clone(man.GaloisLevels)
	man.Steps = slices.Clone(man.Steps)
	if man.Packing != nil {
		p := *man.Packing
		man.Packing = &p
	}
	if man.Split != nil {
		s := *man.Split
		man.Split = &s
	}
	if man.Preprocess != nil {
		p := *man.Preprocess
		man.Preprocess = &p
	}
	man.Tail = slices.Clone(man.Tail)
	man.Bootstraps = slices.Clone(man.Bootstraps)
	man.BootstrapKeys = man.BootstrapKeys.clone()
	if man.Privacy != nil {
		p := *man.Privacy
		man.Privacy = &p
	}
	return man
}

func (m *Model) buildManifest() Manifest {
	c := m.c
	man := Manifest{
		Name:            m.ID(),
		Input:           append([]int(nil), c.inputShape...),
		Split:           m.split,
		Preprocess:      m.graph.Input.Preprocess,
		Tail:            slices.Clone(m.graph.Tail),
		Packing:         c.packing.manifest(),
		OutputSize:      c.outputSize,
		OutputPeriod:    c.outputPeriod,
		Params:          c.params.Info(),
		LogSlots:        c.logN,
		Levels:          c.inputLevel,
		GaloisElements:  append([]uint64(nil), c.galEls...),
		GaloisLevels:    append([]int(nil), c.galLevels...),
		RelinLevel:      c.relinLevel,
		Cost:            c.cost,
		Steps:           c.stepInfo(),
		KeySetBytes:     c.keySetSize(),
		CiphertextBytes: c.params.ciphertextSize(ctInput, c.inputLevel),
		ResultBytes:     c.params.ciphertextSize(ctResult, 0),
		EncodedBytes:    c.encodedBytes,
		Privacy:         c.mechanism,
		PrivacyNote:     c.privacyNote,
		EvaluationBytes: 2*c.keySetSize() + int64(c.liveCiphertexts()+2)*2*int64(c.maxKeyLevel()+1)*int64(c.params.ckks.N())*8 + c.transientBytes,
	}
	if c.lazy {
		man.Weights = WeightsLazy
	}
	if c.boot != nil {
		man.EvaluationBytes += c.boot.evaluatorBytes()
		man.Bootstraps = c.bootstrapReport()
		man.BootstrapKeys = c.boot.manifest()
	}
	return man
}

func (c *compiled) stepInfo() []StepInfo {
	prod := map[int]*cnode{}
	for _, n := range c.circ.nodes {
		prod[n.out] = n
	}
	out := make([]StepInfo, len(c.steps))
	for i, st := range c.steps {
		n := c.circ.nodes[i]
		info := StepInfo{Kind: st.kind.String(), Name: st.name, Inputs: len(st.in), Level: st.level, Depth: n.depth(), Cost: st.cost}
		switch st.kind {
		case kindBootstrap:
			info.OutputLevel = st.outLevel
		case kindLinear:
			info.Method, info.Diagonals = st.lin.method, st.diags
			for _, t := range st.lin.terms {
				info.BabySteps += t.baby
				info.GiantSteps += t.giant
			}
		case kindPoly:
			info.Degree = n.degree()
			info.Function = "trained"
			switch {
			case n.signStage != "":
				// A stage of a composite sign: its error is the whole
				// composite's (see tools/gen-sign), its range the first
				// stage's input.
				info.Function = "sign " + n.signStage
				if p := c.circ.producerThrough(prod, n.in[0]); p == nil || p.kind != kindPoly {
					info.Range = [2]float64{n.cheb.lo, n.cheb.hi}
				}
			case n.cheb != nil:
				info.Function, info.Range, info.MaxError = n.cheb.fn, [2]float64{n.cheb.lo, n.cheb.hi}, n.cheb.maxError()
			}
		}
		out[i] = info
	}
	return out
}

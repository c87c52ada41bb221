package he

import (
	"context"
	"fmt"
	"time"

	"github.com/tuneinsight/lattigo/v6/circuits/ckks/lintrans"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"

	"github.com/hegate/hegate"
)

// CheckCiphertext validates an input ciphertext's header and size against
// the model without parsing its coefficients. Errors are KindInvalid.
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
// device's key set and returns the result ciphertext (wire format). It
// honours ctx between steps. Errors about the input are KindInvalid.
// Evaluate is safe for concurrent use: each call has its own evaluator.
func (m *Model) Evaluate(ctx context.Context, ks *KeySet, input []byte) (_ []byte, _ Stats, err error) {
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
	if ks == nil || ks.k == nil || ks.k.evk == nil {
		return nil, Stats{}, hegate.E(op, hegate.KindInvalid, nil, "no key set")
	}
	ct, err := c.params.parseCiphertext(op, input, m.inputWant())
	if err != nil {
		return nil, Stats{}, err
	}
	out, err := c.run(ctx, ct, ks.k.evk)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("%s: model %s: %w", op, m.ID(), err)
	}
	b, err := c.params.marshalCiphertext(ctResult, out, nil)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("%s: %w", op, err)
	}
	return b, Stats{Cost: c.cost, Duration: time.Since(start)}, nil
}

// run evaluates the steps on ct.
func (c *compiled) run(ctx context.Context, ct *rlwe.Ciphertext, evk rlwe.EvaluationKeySet) (*rlwe.Ciphertext, error) {
	p := c.params.ckks
	eval := ckks.NewEvaluator(p, evk)
	lt := lintrans.NewEvaluator(eval)
	for i, st := range c.steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch st.kind {
		case kindLinear:
			out := ckks.NewCiphertext(p, 1, ct.Level())
			if err := lt.Evaluate(ct, st.lt, out); err != nil {
				return nil, fmt.Errorf("step %d (linear): %w", i, err)
			}
			if err := eval.Rescale(out, out); err != nil {
				return nil, fmt.Errorf("step %d (rescale): %w", i, err)
			}
			for _, r := range st.rotSum {
				rot, err := eval.RotateNew(out, r)
				if err != nil {
					return nil, fmt.Errorf("step %d (rotate %d): %w", i, r, err)
				}
				if err := eval.Add(out, rot, out); err != nil {
					return nil, fmt.Errorf("step %d (sum): %w", i, err)
				}
			}
			if st.bias != nil {
				if err := eval.Add(out, st.bias, out); err != nil {
					return nil, fmt.Errorf("step %d (bias): %w", i, err)
				}
			}
			ct = out
		case kindSquare:
			if err := eval.MulRelin(ct, ct, ct); err != nil {
				return nil, fmt.Errorf("step %d (square): %w", i, err)
			}
			if err := eval.Rescale(ct, ct); err != nil {
				return nil, fmt.Errorf("step %d (rescale): %w", i, err)
			}
		}
	}
	return ct, nil
}

// Manifest describes the compiled model for clients.
func (m *Model) Manifest() Manifest {
	c := m.c
	return Manifest{
		Name:            m.ID(),
		Input:           append([]int(nil), m.graph.Input...),
		Packing:         c.packing.manifest(),
		OutputSize:      c.outputSize,
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
	}
}

func (c *compiled) stepInfo() []StepInfo {
	out := make([]StepInfo, len(c.steps))
	for i, st := range c.steps {
		info := StepInfo{Kind: "square", Level: st.level, Cost: st.cost}
		if st.kind == kindLinear {
			info.Kind, info.Method, info.Diagonals = "linear", "diagonal", st.diags
			if st.rotSum != nil {
				info.Method = "hybrid"
			}
		}
		out[i] = info
	}
	return out
}

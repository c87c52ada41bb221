package he

import (
	"fmt"
	"math"

	"github.com/hegate/hegate"
)

// Calibration reports, for each step of the compiled circuit, the largest
// absolute value its output took on the sample inputs and the largest the
// ciphertext can hold at that step's level without wrapping around its
// modulus, and for each approximated activation how far its normalised
// input went (an approximation holds on [-1, 1] only). CKKS gives no error
// when a value exceeds its bound or an approximation leaves its range: the
// result is silently wrong. Calibrate on representative inputs before
// serving.
type Calibration struct {
	Samples int          `json:"samples"`
	Steps   []StepBounds `json:"steps"`
}

// StepBounds is one step's calibration.
type StepBounds struct {
	Kind   string  `json:"kind"`
	Name   string  `json:"name"`
	Level  int     `json:"level"`   // level of the step's output
	MaxAbs float64 `json:"max_abs"` // largest |value| seen on the samples
	Bound  float64 `json:"bound"`   // largest |value| the level holds
	// For approximations: the largest |u| entering the polynomial (the
	// range is [-1, 1]) and how many values fell outside it.
	MaxInput   float64 `json:"max_input,omitempty"`
	OutOfRange int     `json:"out_of_range,omitempty"`
}

// headroomFactor is the margin Calibrate demands: values must stay below
// Bound / headroomFactor, since unseen inputs may go further than samples.
const headroomFactor = 8

// bootBoundDivisor sets a bootstrap step's bound at the message ratio over
// 64: with the headroom, values up to ratio/512 (8 for 2^12, 128 for
// 2^16) pass, where the sine's relative error (2π·v/ratio)²/6 is below
// 2.6e-5.
const bootBoundDivisor = 64

// Calibrate runs the compiled circuit in float64 on samples (inputs of the
// whole graph, row-major; a split model's head runs first) and checks every step's values against what its level can hold
// and every approximation's input against its range. It returns the report,
// and a KindInvalid error naming the first step whose values come within a
// factor of 8 of the bound or leave an approximation's range.
func (m *Model) Calibrate(samples [][]float64) (Calibration, error) {
	const op = "he.Calibrate"
	c := m.c
	p := c.params.ckks
	scale := math.Log2(p.DefaultScale().Float64())
	cal := Calibration{Samples: len(samples), Steps: make([]StepBounds, len(c.steps))}
	for k, st := range c.steps {
		// The ciphertext holds v·scale mod Q_level, centred: |v| < Q_level / (2·scale).
		logQ := 0.0
		for _, q := range p.Q()[:st.outLevel+1] {
			logQ += math.Log2(float64(q))
		}
		cal.Steps[k] = StepBounds{Kind: st.kind.String(), Name: st.name, Level: st.outLevel, Bound: math.Exp2(logQ - 1 - scale)}
		if st.kind == kindBootstrap {
			// A bootstrap's modular reduction approximates x mod 1 near
			// 0: its error grows as (2π·v/ratio)², so the values it takes
			// must stay far below the message ratio q0/|m| (2^LogMessageRatio).
			cal.Steps[k].Bound = math.Exp2(float64(c.boot.btp.Mod1ParametersLiteral.LogMessageRatio)) / bootBoundDivisor
		}
	}
	// Approximations whose input is not another polynomial's output: their
	// input must stay in [-1, 1].
	firstInput := make([]bool, len(c.steps))
	prod := map[int]*cnode{}
	for _, n := range c.circ.nodes {
		prod[n.out] = n
	}
	for k, n := range c.circ.nodes {
		p := c.circ.producerThrough(prod, n.in[0])
		firstInput[k] = p == nil || p.kind != kindPoly
	}
	for _, x := range samples {
		if m.head != nil {
			y, err := m.head.Run(x)
			if err != nil {
				return cal, err
			}
			x = y
		}
		v, err := m.Device().PackInput(x)
		if err != nil {
			return cal, err
		}
		// One pass: each step's output magnitude, and for the first stage
		// of each approximation how far its normalised input goes.
		vals := map[int][]float64{c.circ.input: v}
		c.circ.run(v, func(k int, n *cnode, out []float64) {
			vals[n.out] = out
			sb := &cal.Steps[k]
			for _, y := range out {
				sb.MaxAbs = math.Max(sb.MaxAbs, math.Abs(y))
			}
			if n.kind == kindPoly && n.cheb != nil && !firstInput[k] {
				return
			}
			if n.kind == kindPoly && n.cheb != nil {
				for _, u := range vals[n.in[0]] {
					sb.MaxInput = math.Max(sb.MaxInput, math.Abs(u))
					if math.Abs(u) > 1 {
						sb.OutOfRange++
					}
				}
			}
		})
	}
	for k, sb := range cal.Steps {
		if sb.MaxAbs*headroomFactor > sb.Bound || math.IsNaN(sb.MaxAbs) {
			return cal, hegate.E(op, hegate.KindInvalid, nil,
				"step %d (%s %q, level %d) reaches |%.4g| on the samples, too close to the %.4g its level holds; scale the layer's weights down or use a preset with a larger first modulus",
				k, sb.Kind, sb.Name, sb.Level, sb.MaxAbs, sb.Bound)
		}
		if sb.OutOfRange > 0 {
			return cal, hegate.E(op, hegate.KindInvalid, nil,
				"step %d (%s %q): %d values left the approximation's range (largest normalised |u| %.3g > 1); recompile with more or more representative calibration samples, or a larger margin",
				k, sb.Kind, sb.Name, sb.OutOfRange, sb.MaxInput)
		}
	}
	return cal, nil
}

// String summarises a calibration for people.
func (c Calibration) String() string {
	s := fmt.Sprintf("%d samples:", c.Samples)
	for k, sb := range c.Steps {
		s += fmt.Sprintf(" [%d %s L%d max %.3g of %.3g]", k, sb.Kind, sb.Level, sb.MaxAbs, sb.Bound)
	}
	return s
}

package he

import (
	"fmt"
	"math"

	"github.com/hegate/hegate"
)

// Calibration reports, for each step of the compiled circuit, the largest
// absolute value its output took on the sample inputs and the largest the
// ciphertext can hold at that step's level without wrapping around its
// modulus. CKKS gives no error when a value exceeds its bound: the result
// is silently wrong. Calibrate on representative inputs before serving.
type Calibration struct {
	Samples int          `json:"samples"`
	Steps   []StepBounds `json:"steps"`
}

// StepBounds is one step's calibration.
type StepBounds struct {
	Kind   string  `json:"kind"`
	Level  int     `json:"level"`   // level of the step's output
	MaxAbs float64 `json:"max_abs"` // largest |value| seen on the samples
	Bound  float64 `json:"bound"`   // largest |value| the level holds
}

// headroomFactor is the margin Calibrate demands: values must stay below
// Bound / headroomFactor, since unseen inputs may go further than samples.
const headroomFactor = 8

// Calibrate runs the compiled circuit in float64 on samples (model inputs,
// C×H×W order) and checks every step's values against what its level can
// hold. It returns the report, and a KindInvalid error naming the first
// step whose values come within a factor of 8 of the bound.
func (m *Model) Calibrate(samples [][]float64) (Calibration, error) {
	const op = "he.Calibrate"
	c := m.c
	p := c.params.ckks
	scale := math.Log2(p.DefaultScale().Float64())
	cal := Calibration{Samples: len(samples), Steps: make([]StepBounds, len(c.ops))}
	for k, st := range c.steps {
		level := st.level - 1
		// The ciphertext holds v·scale mod Q_level, centred: |v| < Q_level / (2·scale).
		logQ := 0.0
		for _, q := range p.Q()[:level+1] {
			logQ += math.Log2(float64(q))
		}
		kind := "linear"
		if st.kind == kindSquare {
			kind = "square"
		}
		cal.Steps[k] = StepBounds{Kind: kind, Level: level, Bound: math.Exp2(logQ - 1 - scale)}
	}
	for _, x := range samples {
		v, err := m.Device().PackInput(x)
		if err != nil {
			return cal, err
		}
		for k, o := range c.ops {
			v = o.apply(v)
			for _, y := range v {
				cal.Steps[k].MaxAbs = math.Max(cal.Steps[k].MaxAbs, math.Abs(y))
			}
		}
	}
	for k, sb := range cal.Steps {
		if sb.MaxAbs*headroomFactor > sb.Bound || math.IsNaN(sb.MaxAbs) {
			return cal, hegate.E(op, hegate.KindInvalid, nil,
				"step %d (%s, level %d) reaches |%.4g| on the samples, too close to the %.4g its level holds; scale the layer's weights down or use a preset with a larger first modulus",
				k, sb.Kind, sb.Level, sb.MaxAbs, sb.Bound)
		}
	}
	return cal, nil
}

// apply evaluates one lowered op in float64, in logical coordinates.
func (o lowered) apply(x []float64) []float64 {
	if o.kind == kindSquare {
		y := make([]float64, len(x))
		for i, v := range x {
			y[i] = v * v
		}
		return y
	}
	y := append([]float64(nil), o.lin.bias...)
	for _, e := range o.lin.w {
		y[e.i] += e.v * x[e.j]
	}
	return y
}

// String summarises a calibration for people.
func (c Calibration) String() string {
	s := fmt.Sprintf("%d samples:", c.Samples)
	for k, sb := range c.Steps {
		s += fmt.Sprintf(" [%d %s L%d max %.3g of %.3g]", k, sb.Kind, sb.Level, sb.MaxAbs, sb.Bound)
	}
	return s
}

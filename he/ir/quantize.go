package ir

import (
	"fmt"
	"math"

	"github.com/hegate/hegate"
)

// Int8 is a graph quantized as edge runtimes run it: weights rounded to
// int8 with one symmetric scale per output channel, every value (the
// input and each node's output) rounded to int8 with one symmetric scale
// per tensor calibrated on sample inputs, biases kept at full precision
// (int32 accumulators in a real runtime). Run simulates it in float64
// ("fake quantization"): the same rounding, so the same accuracy, as an
// int8 kernel up to its rounding mode.
type Int8 struct {
	g     *Graph
	scale map[string]float64 // value → activation scale (max |x| / 127)
}

// QuantizeInt8 quantizes g's weights and calibrates activation scales on
// samples (inputs of g). It does not change g.
func QuantizeInt8(g *Graph, samples [][]float64) (*Int8, error) {
	const op = "ir.QuantizeInt8"
	if len(samples) == 0 {
		return nil, hegate.E(op, hegate.KindInvalid, nil, "no calibration samples")
	}
	q := g.Clone()
	if q == nil {
		return nil, fmt.Errorf("%s: cannot copy the graph", op)
	}
	for _, n := range q.Nodes {
		switch {
		case n.Conv != nil:
			quantizeRows(n.Conv.Weights, n.Conv.OutChannels)
		case n.Dense != nil:
			quantizeRows(n.Dense.Weights, n.Dense.Out)
		}
	}
	maxAbs := map[string]float64{}
	for _, x := range samples {
		maxAbs[q.Input.Name] = math.Max(maxAbs[q.Input.Name], maxAbsOf(x))
		if _, err := q.Trace(x, func(n *Node, out Tensor) {
			maxAbs[n.Output] = math.Max(maxAbs[n.Output], maxAbsOf(out.Data))
		}); err != nil {
			return nil, err
		}
	}
	scale := map[string]float64{}
	for v, m := range maxAbs {
		if m > 0 {
			scale[v] = m / 127
		}
	}
	return &Int8{g: q, scale: scale}, nil
}

// quantizeRows rounds each of rows equal slices of w to int8 steps of its
// own symmetric scale.
func quantizeRows(w []float64, rows int) {
	per := len(w) / rows
	for r := 0; r < rows; r++ {
		row := w[r*per : (r+1)*per]
		s := maxAbsOf(row) / 127
		if s == 0 {
			continue
		}
		for i, v := range row {
			row[i] = math.Round(v/s) * s
		}
	}
}

func maxAbsOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

func fakeQuant(v []float64, s float64) {
	if s == 0 {
		return
	}
	for i, x := range v {
		v[i] = math.Max(-127, math.Min(127, math.Round(x/s))) * s
	}
}

// Graph returns the graph with quantized weights (do not modify it).
func (q *Int8) Graph() *Graph { return q.g }

// Run evaluates the quantized graph on x.
func (q *Int8) Run(x []float64) ([]float64, error) {
	in := append([]float64(nil), x...)
	fakeQuant(in, q.scale[q.g.Input.Name])
	// Trace hands out each node's output before its readers run: rounding
	// it in place is what the next node then reads.
	return q.g.Trace(in, func(n *Node, out Tensor) { fakeQuant(out.Data, q.scale[n.Output]) })
}

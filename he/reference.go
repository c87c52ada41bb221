package he

// Approximate runs the compiled circuit in float64 on one input (the
// graph's input, row-major): what the encrypted evaluation computes, with
// every approximation in place, up to CKKS noise. For a graph without
// approximated activations it equals the graph's reference (Graph().Run)
// up to float64 rounding.
func (m *Model) Approximate(x []float64) ([]float64, error) {
	v, err := m.Device().PackInput(x)
	if err != nil {
		return nil, err
	}
	return m.c.circ.run(v, nil), nil
}

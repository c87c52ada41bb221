package he

// Approximate runs the compiled circuit in float64 on one input (the whole
// graph's input, row-major; for split inference the head runs first, in
// float64): what the encrypted evaluation computes, with
// every approximation in place, up to CKKS noise. For a graph without
// approximated activations it equals the graph's reference (Graph().Run)
// up to float64 rounding.
func (m *Model) Approximate(x []float64) ([]float64, error) {
	if m.head != nil {
		y, err := m.head.Run(x)
		if err != nil {
			return nil, err
		}
		x = y
	}
	v, err := m.Device().PackInput(x)
	if err != nil {
		return nil, err
	}
	return m.c.circ.run(v, nil), nil
}

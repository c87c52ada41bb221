package ir

// Matrix is a linear op y = W x + b over flattened values: W is sparse,
// Rows × Cols, with its non-zero entries listed (in no particular order,
// at most one per position).
type Matrix struct {
	Rows, Cols int
	Entries    []Entry
	Bias       []float64 // length Rows
}

// Entry is one non-zero weight W[Row][Col].
type Entry struct {
	Row, Col int
	W        float64
}

// Apply computes W x + b.
func (m *Matrix) Apply(x []float64) []float64 {
	y := append([]float64(nil), m.Bias...)
	for _, e := range m.Entries {
		y[e.Row] += e.W * x[e.Col]
	}
	return y
}

// linearOp is implemented by the ops that are linear (affine) maps of their
// one input: their matrix over the flattened input of shape in.
type linearOp interface {
	linear(n *Node, in []int) *Matrix
}

// Linear returns the matrix of a linear op (conv, dense, affine, avgpool,
// globalavgpool, reshape, transpose) for an input of shape in, and false for
// any other op. The node must be valid for that shape.
func (n *Node) Linear(in []int) (*Matrix, bool) {
	o, ok := opOf(n.Op)
	if !ok {
		return nil, false
	}
	l, ok := o.(linearOp)
	if !ok {
		return nil, false
	}
	return l.linear(n, in), true
}

// IsLinear reports whether op t is a linear map of its input.
func IsLinear(t OpType) bool {
	o, ok := opOf(t)
	if !ok {
		return false
	}
	_, ok = o.(linearOp)
	return ok
}

// permutation is the matrix of y[i] = x[perm[i]].
func permutation(perm []int) *Matrix {
	m := &Matrix{Rows: len(perm), Cols: len(perm), Bias: make([]float64, len(perm)), Entries: make([]Entry, len(perm))}
	for i, j := range perm {
		m.Entries[i] = Entry{Row: i, Col: j, W: 1}
	}
	return m
}

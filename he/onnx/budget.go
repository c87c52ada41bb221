package onnx

import "github.com/hegate/hegate/he/ir"

// The element budget of one import (see the package documentation).
//
// Every tensor element the importer allocates is charged to the budget
// before it is allocated: decoded initializers and Constant values,
// constants computed by folding (Gather, Concat, Add, Transpose, Relu,
// Cast, ...), and the weights it copies or transposes into IR nodes
// (MatMul, Gemm, shared weights, per-channel constants of Add/Mul/...).
// Folds that keep their input's data (Reshape, Flatten, Squeeze,
// Unsqueeze, Cast within floats or integers) cost nothing. The charge is
// cumulative: dropping a constant after its last reader does not refund
// it, so the budget bounds what the import allocates in all, not just
// what it holds at once.
const (
	// budgetFloor is the budget of a small file: 2^20 elements (8 MB of
	// float64), ample for shape arithmetic and small models.
	budgetFloor = 1 << 20
	// budgetBytesPerElem: a file of B bytes may materialize B/2 more
	// elements. An honest model stores a weight in at least 4 bytes
	// (FLOAT), so this covers decoding every weight and one more copy of
	// it (the transposed copy MatMul makes, or a folded Transpose or Mul
	// of the weights).
	budgetBytesPerElem = 2
	// budgetMax caps the budget whatever Options.MaxBytes allows: twice
	// the weights a graph may have (512 MB of float64).
	budgetMax = 2 * ir.MaxWeights
)

// budgetFor is the budget of an import of a file of the given size.
func budgetFor(fileBytes int) int {
	return min(budgetFloor+max(fileBytes, 0)/budgetBytesPerElem, budgetMax)
}

// spend charges k elements that n is about to allocate (what says for
// what) to the budget, refusing the node when they do not fit.
func (im *importer) spend(n *node, k int, what string) error {
	if k < 0 || k > im.budget-im.spent {
		return n.errf("%s (%d elements) would bring the tensor elements this import materializes to more than %d, the limit for a %d-byte file (%d are already used): a model must not expand far beyond its file; store large constants as initializers (onnx-simplifier folds constant sub-graphs) or use a smaller model",
			what, k, im.budget, im.size, im.spent)
	}
	im.spent += k
	return nil
}

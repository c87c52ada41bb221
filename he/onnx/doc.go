// Package onnx imports ONNX models (the protobuf files that PyTorch,
// tf2onnx, keras2onnx and other exporters write) into the graph IR of
// package he/ir, which the CKKS compiler and the float64 reference executor
// consume.
//
// Import accepts the subset of ONNX that a CKKS circuit can evaluate: 2-D
// convolutions, dense layers (Gemm, MatMul), batch normalization and other
// per-channel affine maps, ReLU, average, max and global average pooling,
// element-wise sums, reshapes and transposes. Identity and Dropout are
// removed, constant sub-graphs (Constant, Shape, Gather, Unsqueeze, Squeeze,
// Concat, Cast on constants) are folded, and a trailing Softmax, LogSoftmax
// or ArgMax is moved off the encrypted circuit into the graph's Tail, which
// the client applies after decryption.
//
// Models come from untrusted clients. Import bounds the file size, counts
// the protobuf messages before decoding them, checks every declared tensor
// size before allocating it, and validates every node; it never panics, and
// its errors are *hegate.Error values of kind KindInvalid (or KindTooLarge)
// whose detail names the node, the operator and what to change.
//
// Memory is bounded in proportion to the file, so that a small file cannot
// expand into a large import (constant folding can make a 2^22-element
// tensor of a few KB of shared initializers, again at every node). Every
// node is checked, but only the nodes the graph output depends on are
// converted or folded, and a constant is dropped after its last reader.
// Every tensor (attribute lists and tensors of any node included) has at
// most ir.MaxTensorElems elements, and the elements one import
// materializes in all — decoded initializers and Constant values
// (value, value_floats, value_ints, ...), constants computed by folding,
// and weights copied or transposed into IR nodes — are charged, before
// they are allocated, to a budget of
//
//	min(2^20 + B/2, 2·ir.MaxWeights) elements for a file of B bytes
//
// (8 MB of float64 for a small file, about 4 bytes per byte of a large
// one, 512 MB at most whatever Options.MaxBytes allows). The charge is
// cumulative: dropping a constant does not refund it, so the budget bounds
// all the import allocates, not just what it holds at once. A fixed budget
// would refuse large honest models that the IR accepts (up to
// ir.MaxWeights weights, which MaxModelBytes can hold as FLOAT) or allow a
// tiny file the same expansion; in proportion to the file, an honest model
// fits: it stores a weight in at least 4 bytes and needs it once decoded
// plus at most one copy (the transposed copy of MatMul, a folded Transpose
// or Mul of the weights), while folded shape arithmetic is small. Folds
// that keep their input's data (Reshape, Flatten, Squeeze, Unsqueeze, Cast
// within floats or integers) cost nothing. A node that would exceed the
// budget is refused (KindInvalid, naming the node): a model with large
// computed constants must store them as initializers (onnx-simplifier folds
// them), which makes the file, and so the budget, large enough.
package onnx

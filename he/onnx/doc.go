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
package onnx

// Package ir is the graph IR of a network that hegate serves: a DAG of named
// values with shapes, produced by the ONNX importer (package he/onnx), by
// the trainers under tools/, or read from a JSON model file, and consumed by
// the CKKS compiler (package he).
//
// Tensors carry no batch dimension and are float64 in row-major order: a
// feature map is [C, H, W], a vector [n]. Every op is defined in one place
// (one file per family): its attributes, its shape rule and its exact float64
// semantics. Linear ops also give their matrix (Linear), which is what the
// compiler lowers. Graph.Run is the plaintext reference executor that every
// encrypted result, and every import, is checked against.
//
// Package ir knows nothing of CKKS, ONNX, HTTP or SQL.
package ir

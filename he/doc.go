// Package he is hegate's CKKS engine, built on Lattigo v6.
//
// It holds the graph IR of a network (graph.go), the float64 reference
// executor every test checks against (reference.go), the compiler that turns
// a graph into a CKKS circuit of diagonal linear transforms and polynomial
// activations (compile.go), with bootstraps placed where a circuit is deeper
// than its preset's levels (placement.go, bootstrap_params.go; see
// docs/bootstrapping.md), the parameter presets (params.go), the
// server-side evaluator (evaluate.go), and the device-side operations: key
// generation, encryption, decryption (device.go). Wire formats of key sets and
// ciphertexts, with the checks made before Lattigo parses untrusted bytes,
// are in keyset.go and ciphertext.go.
//
// Package he knows nothing of HTTP or SQL.
package he

// Package api holds the wire types that the gateway and its clients share:
// the Open Inference Protocol (OIP v2) JSON documents with hegate's
// parameters, the binary tensor extension framing, RFC 9457 problem
// documents, and the JSON views of key sets and jobs served under /v1.
//
// It imports nothing of the server: package client builds requests with it
// and package gateway parses them with it.
//
// # Sending a ciphertext
//
// An inference request carries exactly one input tensor of datatype BYTES and
// shape [1] whose one element is the CKKS ciphertext. Its parameters name the
// ciphertext's content type (ContentTypeCiphertext) and the id of the
// evaluation-key set the gateway must use (ParamKeySetID).
//
// The preferred framing is the KServe/Triton binary tensor extension: the
// header HeaderInferenceContentLength gives the length N of the JSON request
// that opens the body; the binary tensor data follows it, and the input's
// ParamBinaryDataSize parameter gives its length. A BYTES tensor element is
// framed as a 4-byte little-endian length followed by that many bytes.
//
// A client that cannot send binary data may send plain JSON instead, as
// KServe and Triton clients send BYTES tensors: omit
// HeaderInferenceContentLength and put the ciphertext, base64-encoded
// (standard alphabet, padded), as the only string of the input's data array.
// A ciphertext is binary, so BYTES data in JSON is always base64; no
// parameter says so (ParamBinaryData false is accepted and redundant).
//
// The gateway answers 200 with the outputs once the job finishes, waiting
// up to its limit; HeaderPrefer "respond-async" (RFC 7240) asks for 202 and
// the job at once, "wait=N" bounds the wait, and a wait that ends first is
// answered 202 too (see docs/api.md).
//
// The response uses the framing of the request unless the request's
// ParamBinaryDataOutput parameter (or the output's ParamBinaryData
// parameter) says otherwise.
package api

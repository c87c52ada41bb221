// Package onnxpb holds the Go types generated from the official ONNX
// protobuf schema (onnx.proto3, IR version 8). It is internal to the ONNX
// importer; onnx.pb.go is generated code, do not edit it.
package onnxpb

//go:generate sh -c "protoc --proto_path=. --go_out=. --go_opt=paths=source_relative onnx.proto3 && mv onnx.proto3.pb.go onnx.pb.go"

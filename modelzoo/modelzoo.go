// Package modelzoo embeds the trained model graphs that ship with hegate, so
// the gateway, the demo and the tests can serve them with no file to find.
//
// Each *.json file here is an ir.Graph written by a trainer under tools/
// (see README.md for how each was made and what it measures).
package modelzoo

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"

	"github.com/hegate/hegate/he/ir"
)

//go:embed *.json
var files embed.FS

// MNISTName is the name of the MNIST model, also its file name without
// ".json".
const MNISTName = "mnist-cryptonets"

// MNISTDPName is the MNIST model trained with DP-SGD at epsilon 0.5
// (delta 1e-5): the same architecture as MNISTName (see docs/privacy.md).
const MNISTDPName = "mnist-cryptonets-dp"

// ResNetName is the name of the ResNet-style MNIST model.
const ResNetName = "mnist-resnet"

// ResNetSplitAfter is where the ResNet-style model is cut for split
// inference in the shipped examples: after its first residual block.
const ResNetSplitAfter = "block1.act2"

// ResNet returns a fresh copy of the ResNet-style MNIST classifier (input
// [1,28,28] pixels/255, output 10 logits): a stem convolution, two residual
// blocks (the second with a strided 1×1 projection), global average
// pooling and a linear head, with trained degree-2 activations.
func ResNet() (*ir.Graph, error) {
	return load(ResNetName + ".json")
}

// Variant is a built-in model served from a zoo graph compiled in a
// particular way.
type Variant struct {
	Name       string // the served model's name
	Graph      string // the zoo graph it is compiled from
	SplitAfter string // split inference: where the device's head ends
}

// Variants lists the built-in models served besides the zoo graphs
// themselves: the ResNet split after its first block.
func Variants() []Variant {
	return []Variant{{Name: ResNetName + "-split", Graph: ResNetName, SplitAfter: ResNetSplitAfter}}
}

// MNIST returns a fresh copy of the MNIST digit classifier (input [1,28,28]
// pixels in [0,1], output 10 logits), a CryptoNets-style network with
// polynomial activations.
func MNIST() (*ir.Graph, error) {
	return load(MNISTName + ".json")
}

// All returns a fresh copy of every embedded model, in file-name order.
func All() ([]*ir.Graph, error) {
	names, err := fs.Glob(files, "*.json")
	if err != nil {
		return nil, err
	}
	gs := make([]*ir.Graph, 0, len(names))
	for _, name := range names {
		g, err := load(name)
		if err != nil {
			return nil, err
		}
		gs = append(gs, g)
	}
	return gs, nil
}

// load parses and validates one embedded file.
func load(name string) (*ir.Graph, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("modelzoo: %w", err)
	}
	g, err := ir.Read(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("modelzoo: %s: %w", name, err)
	}
	return g, nil
}

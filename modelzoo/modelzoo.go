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

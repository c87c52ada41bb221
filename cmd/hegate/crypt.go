package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hegate/hegate/client"
)

// runEncrypt encrypts one input under the device's secret key (hegate
// keygen) and writes the ciphertext, so that a request can be made by
// hand (docs/api.md shows a curl session).
func runEncrypt(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("encrypt", stderr)
	var cfg deviceConfig
	cfg.register(fs)
	input := fs.String("input", "", "JSON file with the model's input values (row-major, preprocessed), or - for stdin")
	mnistIndex := fs.Int("mnist-index", -1, "use this image of the MNIST test set as input instead (the model's preprocessing is applied)")
	out := fs.String("o", "", "write the ciphertext to this file (required: it is binary)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-o FILE is required")
	}
	if err := cfg.validateLocal(); err != nil {
		return err
	}
	dev, sk, err := cfg.loadDevice()
	if err != nil {
		return err
	}
	if dev.Split() != nil {
		return errors.New("this is a split model: hegate infer --model-file runs its head before encrypting")
	}
	x, label, err := readInput(*input, *mnistIndex, dev)
	if err != nil {
		return err
	}
	ct, err := dev.Encrypt(sk, x)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, ct, 0o600); err != nil {
		return err
	}
	ks := "<key set id: hegate keys upload>"
	if b, err := os.ReadFile(cfg.path("keyset.id")); err == nil {
		ks = strings.TrimSpace(string(b))
	}
	fmt.Fprintf(stdout, "ciphertext %s (%d bytes) of a %d-value input", *out, len(ct), len(x))
	if label >= 0 {
		fmt.Fprintf(stdout, " (MNIST label %d)", label)
	}
	fmt.Fprintf(stdout, "\nkey set    %s\n", ks)
	return nil
}

// runDecrypt decrypts a result ciphertext and prints the outputs.
func runDecrypt(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("decrypt", stderr)
	var cfg deviceConfig
	cfg.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return errors.New("usage: hegate decrypt [flags] RESULT-FILE")
	}
	if err := cfg.validateLocal(); err != nil {
		return err
	}
	dev, sk, err := cfg.loadDevice()
	if err != nil {
		return err
	}
	ct, err := readArg(rest[0], 1<<30)
	if err != nil {
		return err
	}
	outs, err := dev.Decrypt(sk, ct)
	if err != nil {
		return err
	}
	tail := dev.Tail(outs)
	pred := client.Argmax(tail)
	if len(tail) == 1 {
		pred = int(tail[0])
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"outputs": outs, "prediction": pred})
	}
	fmt.Fprintf(stdout, "prediction %d\noutputs %s\n", pred, formatFloats(outs))
	return nil
}

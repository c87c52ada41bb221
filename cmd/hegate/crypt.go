package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hegate/hegate/client"
)

func newEncryptCmd() *cobra.Command {
	var (
		cfg        deviceConfig
		input, out string
		mnistIndex int
	)
	cmd := &cobra.Command{
		Use:   "encrypt -o FILE",
		Short: "device: encrypt an input to a ciphertext file (to send it by hand, e.g. with curl)",
		Long: `Encrypt one input under the device's secret key (hegate keygen) and write
the ciphertext to a file, so that a request can be made by hand
(docs/api.md shows a curl session). Nothing is sent to the gateway.`,
		Example: `  hegate encrypt --mnist-index 0 -o x.ct`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("-o FILE is required")
			}
			if err := cfg.validateLocal(cmd); err != nil {
				return err
			}
			return encrypt(cmd, &cfg, input, mnistIndex, out)
		},
	}
	cfg.register(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&input, "input", "", "JSON file with the model's input values (row-major, preprocessed), or - for stdin")
	f.IntVar(&mnistIndex, "mnist-index", -1, "use this image of the MNIST test set as input instead (the model's preprocessing is applied)")
	f.StringVarP(&out, "out", "o", "", "write the ciphertext to this file (required: it is binary)")
	_ = cmd.MarkFlagFilename("out")
	return cmd
}

// encrypt encrypts one input under the device's secret key and writes
// the ciphertext.
func encrypt(cmd *cobra.Command, cfg *deviceConfig, input string, mnistIndex int, out string) error {
	stdout := cmd.OutOrStdout()
	dev, sk, err := cfg.loadDevice()
	if err != nil {
		return err
	}
	if dev.Split() != nil {
		return errors.New("this is a split model: hegate infer --model-file runs its head before encrypting")
	}
	x, label, err := readInput(input, mnistIndex, dev)
	if err != nil {
		return err
	}
	ct, err := dev.Encrypt(sk, x)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, ct, 0o600); err != nil {
		return err
	}
	ks := "<key set id: hegate keys upload>"
	if b, err := os.ReadFile(cfg.path("keyset.id")); err == nil {
		ks = strings.TrimSpace(string(b))
	}
	fmt.Fprintf(stdout, "ciphertext %s (%d bytes) of a %d-value input", out, len(ct), len(x))
	if label >= 0 {
		fmt.Fprintf(stdout, " (MNIST label %d)", label)
	}
	fmt.Fprintf(stdout, "\nkey set    %s\n", ks)
	return nil
}

func newDecryptCmd() *cobra.Command {
	var cfg deviceConfig
	var o *output
	cmd := &cobra.Command{
		Use:   "decrypt RESULT-FILE",
		Short: "device: decrypt a result ciphertext file and print the outputs",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := cfg.validateLocal(cmd); err != nil {
				return err
			}
			dev, sk, err := cfg.loadDevice()
			if err != nil {
				return err
			}
			ct, err := readArg(a[0], 1<<30)
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
			w := cmd.OutOrStdout()
			if o.JSON() {
				return json.NewEncoder(w).Encode(map[string]any{"outputs": outs, "prediction": pred})
			}
			fmt.Fprintf(w, "prediction %d\noutputs %s\n", pred, formatFloats(outs))
			return nil
		},
	}
	cfg.register(cmd.Flags())
	o = addOutputFlags(cmd, true)
	return cmd
}

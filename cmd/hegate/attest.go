package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/verifiers"
	"github.com/hegate/hegate/gateway"
	"github.com/hegate/hegate/storage"
)

const attestUsage = `usage:
    hegate attest verify --format tpm|psa|native --endorsement FILE --nonce HEX
                         [--reference-values FILE] EVIDENCE|-
        verify one piece of evidence offline and print its EAR-shaped result;
        exit status 0 only when the status is affirming
    hegate attest set --format F (--endorsements FILE | --reference-values FILE)
    hegate attest show [--format F]
    hegate attest delete --format F --kind endorsements|reference-values
        the tenant's trust anchors, through the API with an admin key`

// runAttest is "hegate attest".
func runAttest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, attestUsage)
		return nil
	}
	switch args[0] {
	case "verify":
		return attestVerify(ctx, args[1:], stdout, stderr)
	case "set", "show", "delete":
		return attestDocs(ctx, args[0], args[1:], stdout, stderr)
	}
	return fmt.Errorf("attest: unknown subcommand %q\n%s", args[0], attestUsage)
}

// readArg reads a file, or standard input for "-", at most limit bytes.
func readArg(name string, limit int64) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return b, nil
}

func attestVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("attest verify", stderr)
	format := fs.String("format", "", "evidence format: tpm, psa or native")
	endorsement := fs.String("endorsement", "", "endorsements document (JSON: keys and CA roots)")
	refs := fs.String("reference-values", "", "reference-values document (JSON); without it nothing matches and the status is contraindicated")
	nonceHex := fs.String("nonce", "", "the nonce the evidence must carry, in hex (for tpm and psa evidence made for a gateway: SHA-256(challenge || jkt))")
	fs.Usage = func() { fmt.Fprintln(stderr, attestUsage); fs.PrintDefaults() }
	rest, err := parseArgs(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if len(rest) != 1 {
		return errors.New("attest verify: give exactly one EVIDENCE file (or - for standard input)")
	}
	v := verifiers.For(verifiers.All(nil), attest.Format(*format))
	if v == nil {
		return fmt.Errorf("attest verify: --format %q is not tpm, psa or native", *format)
	}
	if *endorsement == "" {
		return errors.New("attest verify: --endorsement FILE is required")
	}
	nonce, err := hex.DecodeString(*nonceHex)
	if err != nil || len(nonce) == 0 {
		return errors.New("attest verify: --nonce must be the expected nonce in hex")
	}
	eb, err := readArg(*endorsement, attest.MaxDocumentBytes)
	if err != nil {
		return err
	}
	in := attest.Input{Nonce: nonce}
	if in.Endorsements, err = attest.ParseEndorsements(eb); err != nil {
		return err
	}
	if *refs != "" {
		rb, err := readArg(*refs, attest.MaxDocumentBytes)
		if err != nil {
			return err
		}
		if in.ReferenceValues, err = attest.ParseReferenceValues(rb); err != nil {
			return err
		}
	}
	if in.Evidence, err = readArg(rest[0], attest.MaxEvidenceBytes); err != nil {
		return err
	}
	res, verr := v.Verify(ctx, in)
	if verr != nil {
		reason := attest.ReasonOf(verr)
		if reason == "" {
			return fmt.Errorf("attest verify: %w", verr)
		}
		// Evidence that is not authentic or not fresh still gets a result,
		// so that scripts read one shape: contraindicated, with the reason.
		res = attest.NewResult(v.Format(), in.Evidence, time.Now(), attest.Appraisal{
			TrustVector: attest.TrustVector{InstanceIdentity: attest.TierContraindicated},
			Reasons:     []attest.Reason{reason},
		})
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(b))
	if verr != nil {
		return fmt.Errorf("attest verify: %v", verr)
	}
	if st := res.Status(); st != attest.StatusAffirming {
		return fmt.Errorf("attest verify: status %s (%v)", st, res.Reasons())
	}
	return nil
}

func attestDocs(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("attest "+sub, stderr)
	var cfg deviceConfig
	cfg.register(fs)
	format := fs.String("format", "", "evidence format: tpm, psa or native")
	endorsements := fs.String("endorsements", "", "set: endorsements document (JSON)")
	refs := fs.String("reference-values", "", "set: reference-values document (JSON)")
	kind := fs.String("kind", "", "delete: endorsements or reference-values")
	fs.Usage = func() { fmt.Fprintln(stderr, attestUsage); fs.PrintDefaults() }
	if _, err := parseArgs(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	cl, err := cfg.client()
	if err != nil {
		return err
	}
	f := attest.Format(*format)
	switch sub {
	case "set":
		if !f.Valid() {
			return errors.New("attest set: --format must be tpm, psa or native")
		}
		if *endorsements == "" && *refs == "" {
			return errors.New("attest set: give --endorsements FILE, --reference-values FILE or both")
		}
		for _, d := range []struct{ file, kind string }{{*endorsements, storage.DocEndorsements}, {*refs, storage.DocReferenceValues}} {
			if d.file == "" {
				continue
			}
			b, err := readArg(d.file, attest.MaxDocumentBytes)
			if err != nil {
				return err
			}
			if _, err := cl.SetAttestationDoc(ctx, f, d.kind, b); err != nil {
				return fmt.Errorf("setting %s %s: %w", f, d.kind, err)
			}
			fmt.Fprintf(stdout, "set %s %s\n", f, d.kind)
		}
		return nil
	case "delete":
		if !f.Valid() || (*kind != storage.DocEndorsements && *kind != storage.DocReferenceValues) {
			return errors.New("attest delete: --format tpm|psa|native and --kind endorsements|reference-values are required")
		}
		return cl.DeleteAttestationDoc(ctx, f, *kind)
	default: // show
		docs, err := cl.AttestationDocs(ctx)
		if err != nil {
			return err
		}
		out := []api.AttestationDoc{}
		for _, d := range docs {
			if f == "" || d.Format == string(f) {
				out = append(out, d)
			}
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return nil
	}
}

const devicesUsage = `usage: hegate devices list | show ID | revoke ID [flags]
    the tenant's enrolled devices, through the API with an admin key`

// runDevices is "hegate devices".
func runDevices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, devicesUsage)
		return nil
	}
	fs := newFlags("devices "+args[0], stderr)
	var cfg deviceConfig
	cfg.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() { fmt.Fprintln(stderr, devicesUsage); fs.PrintDefaults() }
	rest, err := parseArgs(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	cl, err := cfg.client()
	if err != nil {
		return err
	}
	printJSON := func(v any) error {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, string(b))
		return err
	}
	switch {
	case args[0] == "list" && len(rest) == 0:
		ds, err := cl.Devices(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(ds)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tFORMAT\tSTATUS\tATTESTATION\tATTESTED\tLAST SEEN")
		for _, d := range ds {
			seen := "-"
			if d.LastSeenAt != nil {
				seen = d.LastSeenAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Format, d.Status, d.AttestationStatus, d.AttestedAt.Format(time.RFC3339), seen)
		}
		return tw.Flush()
	case args[0] == "show" && len(rest) == 1:
		d, err := cl.EnrolledDevice(ctx, rest[0])
		if err != nil {
			return err
		}
		return printJSON(d)
	case args[0] == "revoke" && len(rest) == 1:
		d, err := cl.RevokeDevice(ctx, rest[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "device %s revoked at %s\n", d.ID, d.RevokedAt.Format(time.RFC3339))
		return nil
	}
	return errors.New(devicesUsage)
}

const policyUsage = `usage:
    hegate policy show [MODEL]
    hegate policy set [MODEL] --allow-api-key=true|false --formats tpm,psa,native --statuses affirming[,warning]
    hegate policy delete [MODEL]
        who may run inference on MODEL (without MODEL: the tenant's default),
        through the API with an admin key`

// runPolicy is "hegate policy".
func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, policyUsage)
		return nil
	}
	fs := newFlags("policy "+args[0], stderr)
	var cfg deviceConfig
	cfg.register(fs)
	allowKey := fs.Bool("allow-api-key", false, "set: whether a request with an API key alone may run inference")
	formats := fs.String("formats", "tpm,psa,native", "set: the evidence formats whose devices may run inference")
	statuses := fs.String("statuses", "affirming", "set: the attestation statuses that may (affirming, warning)")
	fs.Usage = func() { fmt.Fprintln(stderr, policyUsage); fs.PrintDefaults() }
	rest, err := parseArgs(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if len(rest) > 1 {
		return errors.New(policyUsage)
	}
	model := ""
	if len(rest) == 1 {
		model = rest[0]
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	cl, err := cfg.client()
	if err != nil {
		return err
	}
	var p api.Policy
	switch args[0] {
	case "show":
		if p, err = cl.Policy(ctx, model); err != nil {
			return err
		}
	case "set":
		p, err = cl.SetPolicy(ctx, model, api.Policy{AllowAPIKey: *allowKey, Formats: splitList(*formats), Statuses: splitList(*statuses)})
		if err != nil {
			return err
		}
	case "delete":
		return cl.DeletePolicy(ctx, model)
	default:
		return errors.New(policyUsage)
	}
	b, _ := json.MarshalIndent(p, "", "  ")
	fmt.Fprintln(stdout, string(b))
	return nil
}

// splitList splits a comma-separated flag, dropping empty items.
func splitList(s string) []string {
	out := []string{}
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// runCredential is "hegate credential": the gateway's credential signing
// keys, on the database (operator).
func runCredential(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: hegate credential rotate | keys [flags]\n    rotate: a new signing key signs from now on; the old ones verify until the credentials they signed expire"
	fs := newFlags("credential", stderr)
	var cfg backendConfig
	cfg.register(fs)
	fs.Usage = func() { fmt.Fprintln(stderr, usage); fs.PrintDefaults() }
	rest, err := parseArgs(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if len(rest) != 1 || (rest[0] != "rotate" && rest[0] != "keys") {
		return errors.New(usage)
	}
	store, err := cfg.openStore(ctx, cfg.logger(io.Discard))
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now()
	kek, err := gateway.ParseKEK(os.Getenv("HEGATE_CREDENTIAL_KEK"))
	if err != nil {
		return err
	}
	keys, err := gateway.NewSigningKeys(store, time.Now, kek)
	if err != nil {
		return err
	}
	if rest[0] == "rotate" {
		id, err := keys.Rotate(ctx)
		if err != nil {
			return err
		}
		sealed := "sealed with HEGATE_CREDENTIAL_KEK"
		if !keys.Encrypted() {
			sealed = "stored in clear: set HEGATE_CREDENTIAL_KEK to seal it"
		}
		fmt.Fprintf(stdout, "signing key %s now signs device credentials (%s)\n", id, sealed)
		return nil
	}
	stored, err := store.ListSigningKeys(ctx, now)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tCREATED\tSTATE")
	for _, k := range stored {
		state := "signing"
		if k.RetiredAt != nil {
			state = "retired, verifies until " + k.VerifyUntil.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.CreatedAt.Format(time.RFC3339), state)
	}
	return tw.Flush()
}

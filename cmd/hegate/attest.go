package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/verifiers"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/gateway"
	"github.com/hegate/hegate/storage"
)

func newAttestCmd() *cobra.Command {
	return group("attest", "attestation: verify evidence offline; the tenant's trust anchors (API)",
		`hegate attest verify checks one piece of evidence offline, with files only.
hegate attest set|show|delete manage the tenant's trust anchors (the
endorsements and reference values of each evidence format) through the
API with an admin key.`,
		newAttestVerifyCmd(), newAttestSetCmd(), newAttestShowCmd(), newAttestDeleteCmd())
}

var attestFormats = cobra.FixedCompletions([]string{"tpm", "psa", "native"}, cobra.ShellCompDirectiveNoFileComp)

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

func newAttestVerifyCmd() *cobra.Command {
	var format, endorsement, refs, nonceHex string
	cmd := &cobra.Command{
		Use:   "verify --format tpm|psa|native --endorsement FILE --nonce HEX [--reference-values FILE] EVIDENCE|-",
		Short: "verify one piece of evidence offline and print its EAR-shaped result",
		Long: `Verify one piece of evidence offline and print its EAR-shaped result; the
exit status is 0 only when the status is affirming.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return attestVerify(cmd, format, endorsement, refs, nonceHex, a[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "", "evidence format: tpm, psa or native")
	f.StringVar(&endorsement, "endorsement", "", "endorsements document (JSON: keys and CA roots)")
	f.StringVar(&refs, "reference-values", "", "reference-values document (JSON); without it nothing matches and the status is contraindicated")
	f.StringVar(&nonceHex, "nonce", "", "the nonce the evidence must carry, in hex (for tpm and psa evidence made for a gateway: SHA-256(challenge || jkt))")
	_ = cmd.RegisterFlagCompletionFunc("format", attestFormats)
	return cmd
}

func attestVerify(cmd *cobra.Command, format, endorsement, refs, nonceHex, evidence string) error {
	ctx, stdout := cmd.Context(), cmd.OutOrStdout()
	v := verifiers.For(verifiers.All(nil), attest.Format(format))
	if v == nil {
		return fmt.Errorf("attest verify: --format %q is not tpm, psa or native", format)
	}
	if endorsement == "" {
		return errors.New("attest verify: --endorsement FILE is required")
	}
	nonce, err := hex.DecodeString(nonceHex)
	if err != nil || len(nonce) == 0 {
		return errors.New("attest verify: --nonce must be the expected nonce in hex")
	}
	eb, err := readArg(endorsement, attest.MaxDocumentBytes)
	if err != nil {
		return err
	}
	in := attest.Input{Nonce: nonce}
	if in.Endorsements, err = attest.ParseEndorsements(eb); err != nil {
		return err
	}
	if refs != "" {
		rb, err := readArg(refs, attest.MaxDocumentBytes)
		if err != nil {
			return err
		}
		if in.ReferenceValues, err = attest.ParseReferenceValues(rb); err != nil {
			return err
		}
	}
	if in.Evidence, err = readArg(evidence, attest.MaxEvidenceBytes); err != nil {
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

// apiCommand is a device or tenant command through the API: cfg's flags,
// resolved and with a credential before run.
func apiCommand(use, short string, check cobra.PositionalArgs, cfg *deviceConfig, run func(cmd *cobra.Command, cl *client.Client, a []string) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(check),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := cfg.validateCredential(cmd); err != nil {
				return err
			}
			cl, err := cfg.client()
			if err != nil {
				return err
			}
			return run(cmd, cl, a)
		},
	}
	cfg.registerServer(cmd.Flags())
	cmd.Flags().StringVar(&cfg.Identity, "identity", envOr("HEGATE_IDENTITY", ""), "enrolled device directory (hegate enroll); its credential replaces the API key [HEGATE_IDENTITY, else the context's]")
	return cmd
}

func newAttestSetCmd() *cobra.Command {
	var cfg deviceConfig
	var format, endorsements, refs string
	cmd := apiCommand("set --format tpm|psa|native (--endorsements FILE | --reference-values FILE)",
		"set the tenant's endorsements or reference values of a format (admin key)", cobra.NoArgs, &cfg,
		func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			f := attest.Format(format)
			if !f.Valid() {
				return errors.New("attest set: --format must be tpm, psa or native")
			}
			if endorsements == "" && refs == "" {
				return errors.New("attest set: give --endorsements FILE, --reference-values FILE or both")
			}
			for _, d := range []struct{ file, kind string }{{endorsements, storage.DocEndorsements}, {refs, storage.DocReferenceValues}} {
				if d.file == "" {
					continue
				}
				b, err := readArg(d.file, attest.MaxDocumentBytes)
				if err != nil {
					return err
				}
				if _, err := cl.SetAttestationDoc(cmd.Context(), f, d.kind, b); err != nil {
					return fmt.Errorf("setting %s %s: %w", f, d.kind, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "set %s %s\n", f, d.kind)
			}
			return nil
		})
	cmd.Flags().StringVar(&format, "format", "", "evidence format: tpm, psa or native")
	cmd.Flags().StringVar(&endorsements, "endorsements", "", "endorsements document (JSON)")
	cmd.Flags().StringVar(&refs, "reference-values", "", "reference-values document (JSON)")
	_ = cmd.RegisterFlagCompletionFunc("format", attestFormats)
	return cmd
}

func newAttestShowCmd() *cobra.Command {
	var cfg deviceConfig
	var format string
	var o *output
	cmd := apiCommand("show [--format F]", "show the tenant's trust anchors (admin key)", cobra.NoArgs, &cfg,
		func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			docs, err := cl.AttestationDocs(cmd.Context())
			if err != nil {
				return err
			}
			out := []api.AttestationDoc{}
			for _, d := range docs {
				if format == "" || d.Format == format {
					out = append(out, d)
				}
			}
			w := cmd.OutOrStdout()
			if o.JSON() {
				return printJSON(w, out)
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "FORMAT\tKIND\tUPDATED\tUPDATED BY\tSIZE")
			for _, d := range out {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d bytes\n", d.Format, d.Kind, d.UpdatedAt.Format(time.RFC3339), dash(d.UpdatedBy), len(d.Document))
			}
			return tw.Flush()
		})
	cmd.Flags().StringVar(&format, "format", "", "only this evidence format: tpm, psa or native")
	_ = cmd.RegisterFlagCompletionFunc("format", attestFormats)
	o = addOutputFlags(cmd, false)
	return cmd
}

func newAttestDeleteCmd() *cobra.Command {
	var cfg deviceConfig
	var format, kind string
	cmd := apiCommand("delete --format tpm|psa|native --kind endorsements|reference-values",
		"delete one of the tenant's trust anchor documents (admin key)", cobra.NoArgs, &cfg,
		func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			f := attest.Format(format)
			if !f.Valid() || (kind != storage.DocEndorsements && kind != storage.DocReferenceValues) {
				return errors.New("attest delete: --format tpm|psa|native and --kind endorsements|reference-values are required")
			}
			return cl.DeleteAttestationDoc(cmd.Context(), f, kind)
		})
	cmd.Flags().StringVar(&format, "format", "", "evidence format: tpm, psa or native")
	cmd.Flags().StringVar(&kind, "kind", "", "endorsements or reference-values")
	_ = cmd.RegisterFlagCompletionFunc("format", attestFormats)
	_ = cmd.RegisterFlagCompletionFunc("kind", cobra.FixedCompletions([]string{storage.DocEndorsements, storage.DocReferenceValues}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newDevicesCmd() *cobra.Command {
	var listCfg, showCfg, revokeCfg deviceConfig
	var listOut, showOut *output
	list := apiCommand("list", "list the tenant's enrolled devices", cobra.NoArgs, &listCfg,
		func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			ds, err := cl.Devices(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if listOut.JSON() {
				if ds == nil {
					ds = []api.Device{}
				}
				return printJSON(w, ds)
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "ID\tFORMAT\tSTATUS\tATTESTATION\tATTESTED\tLAST SEEN")
			for _, d := range ds {
				seen := "-"
				if d.LastSeenAt != nil {
					seen = d.LastSeenAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Format, d.Status, d.AttestationStatus, d.AttestedAt.Format(time.RFC3339), seen)
			}
			return tw.Flush()
		})
	listOut = addOutputFlags(list, true)
	show := apiCommand("show ID", "show one enrolled device", cobra.ExactArgs(1), &showCfg,
		func(cmd *cobra.Command, cl *client.Client, a []string) error {
			d, err := cl.EnrolledDevice(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if showOut.JSON() {
				return printJSON(w, d)
			}
			tw := newTable(w)
			fmt.Fprintf(tw, "ID\t%s\n", d.ID)
			fmt.Fprintf(tw, "FORMAT\t%s\n", d.Format)
			fmt.Fprintf(tw, "STATUS\t%s\n", d.Status)
			fmt.Fprintf(tw, "ATTESTATION\t%s\n", d.AttestationStatus)
			fmt.Fprintf(tw, "INSTANCE ID\t%s\n", d.InstanceID)
			fmt.Fprintf(tw, "KEY THUMBPRINT\t%s\n", d.KeyThumbprint)
			fmt.Fprintf(tw, "ENROLLED\t%s\n", d.EnrolledAt.Format(time.RFC3339))
			fmt.Fprintf(tw, "ATTESTED\t%s\n", d.AttestedAt.Format(time.RFC3339))
			fmt.Fprintf(tw, "LAST SEEN\t%s\n", rfc3339(d.LastSeenAt))
			fmt.Fprintf(tw, "REVOKED\t%s\n", rfc3339(d.RevokedAt))
			fmt.Fprintln(tw, "(-o json shows the attestation result)")
			return tw.Flush()
		})
	showOut = addOutputFlags(show, true)
	revoke := apiCommand("revoke ID", "revoke an enrolled device: its next request answers 401", cobra.ExactArgs(1), &revokeCfg,
		func(cmd *cobra.Command, cl *client.Client, a []string) error {
			d, err := cl.RevokeDevice(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "device %s revoked at %s\n", d.ID, d.RevokedAt.Format(time.RFC3339))
			return nil
		})
	return group("devices", "enrolled devices: list, show ID, revoke ID (API, admin key)",
		"The tenant's enrolled devices, through the API with an admin key.", list, show, revoke)
}

// rfc3339 is t, or "-".
func rfc3339(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func newPolicyCmd() *cobra.Command {
	var showCfg, setCfg, delCfg deviceConfig
	var showOut *output
	var allowKey bool
	var formats, statuses string
	show := apiCommand("show [MODEL]", "show who may run inference on MODEL (without MODEL: the tenant's default)", cobra.MaximumNArgs(1), &showCfg,
		func(cmd *cobra.Command, cl *client.Client, a []string) error {
			p, err := cl.Policy(cmd.Context(), firstArg(a))
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if showOut.JSON() {
				return printJSON(w, p)
			}
			return printPolicy(w, p)
		})
	showOut = addOutputFlags(show, false)
	set := apiCommand("set [MODEL] --allow-api-key=true|false --formats tpm,psa,native --statuses affirming[,warning]",
		"set who may run inference on MODEL (without MODEL: the tenant's default); prints it as JSON", cobra.MaximumNArgs(1), &setCfg,
		func(cmd *cobra.Command, cl *client.Client, a []string) error {
			p, err := cl.SetPolicy(cmd.Context(), firstArg(a), api.Policy{AllowAPIKey: allowKey, Formats: splitList(formats), Statuses: splitList(statuses)})
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), p)
		})
	set.Flags().BoolVar(&allowKey, "allow-api-key", false, "whether a request with an API key alone may run inference")
	set.Flags().StringVar(&formats, "formats", "tpm,psa,native", "the evidence formats whose devices may run inference")
	set.Flags().StringVar(&statuses, "statuses", "affirming", "the attestation statuses that may (affirming, warning)")
	del := apiCommand("delete [MODEL]", "delete the policy of MODEL (without MODEL: the tenant's default)", cobra.MaximumNArgs(1), &delCfg,
		func(cmd *cobra.Command, cl *client.Client, a []string) error {
			return cl.DeletePolicy(cmd.Context(), firstArg(a))
		})
	return group("policy", "who may run inference: policy show | set | delete [MODEL] (API, admin key)",
		`Who may run inference on MODEL (without MODEL: the tenant's default), through
the API with an admin key. With no policy set, API keys may: set
--allow-api-key=false to require attested devices.`, show, set, del)
}

func printPolicy(w io.Writer, p api.Policy) error {
	tw := newTable(w)
	model := p.Model
	if model == "" {
		model = "(the tenant's default)"
	}
	fmt.Fprintf(tw, "MODEL\t%s\n", model)
	fmt.Fprintf(tw, "ALLOW API KEY\t%t\n", p.AllowAPIKey)
	fmt.Fprintf(tw, "FORMATS\t%s\n", dash(strings.Join(p.Formats, ",")))
	fmt.Fprintf(tw, "STATUSES\t%s\n", dash(strings.Join(p.Statuses, ",")))
	if p.Default {
		fmt.Fprintln(tw, "SET\tno: the built-in default applies")
	} else {
		fmt.Fprintf(tw, "UPDATED\t%s by %s\n", rfc3339(p.UpdatedAt), dash(p.UpdatedBy))
	}
	return tw.Flush()
}

func firstArg(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return a[0]
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

func newCredentialCmd() *cobra.Command {
	rotate := storeCommand("rotate", "make a new signing key sign device credentials from now on", func(cmd *cobra.Command, store storage.Store, _ []string) error {
		keys, err := signingKeys(store)
		if err != nil {
			return err
		}
		id, err := keys.Rotate(cmd.Context())
		if err != nil {
			return err
		}
		sealed := "sealed with HEGATE_CREDENTIAL_KEK"
		if !keys.Encrypted() {
			sealed = "stored in clear: set HEGATE_CREDENTIAL_KEK to seal it"
		}
		auditOperator(cmd, store, "", "credential.rotate", id, map[string]any{"sealed": keys.Encrypted()})
		fmt.Fprintf(cmd.OutOrStdout(), "signing key %s now signs device credentials (%s)\n", id, sealed)
		return nil
	})
	rotate.Long = "A new signing key signs device credentials from now on; the old ones verify\nuntil the credentials they signed expire."
	var o *output
	keys := storeCommand("keys", "list the credential signing keys", func(cmd *cobra.Command, store storage.Store, _ []string) error {
		if _, err := signingKeys(store); err != nil {
			return err
		}
		stored, err := store.ListSigningKeys(cmd.Context(), time.Now())
		if err != nil {
			return err
		}
		// Never the private seed: the fields below only.
		type keyView struct {
			KID         string     `json:"kid"`
			Algorithm   string     `json:"alg"`
			CreatedAt   time.Time  `json:"created_at"`
			RetiredAt   *time.Time `json:"retired_at,omitempty"`
			VerifyUntil *time.Time `json:"verify_until,omitempty"`
			State       string     `json:"state"`
		}
		views := []keyView{}
		for _, k := range stored {
			state := "signing"
			if k.RetiredAt != nil {
				state = "retired"
			}
			views = append(views, keyView{KID: k.ID, Algorithm: k.Algorithm, CreatedAt: k.CreatedAt, RetiredAt: k.RetiredAt, VerifyUntil: k.VerifyUntil, State: state})
		}
		w := cmd.OutOrStdout()
		if o.JSON() {
			return printJSON(w, views)
		}
		tw := newTable(w)
		fmt.Fprintln(tw, "KID\tALG\tCREATED\tSTATE")
		for _, k := range views {
			state := k.State
			if k.RetiredAt != nil && k.VerifyUntil != nil {
				state = "retired, verifies until " + k.VerifyUntil.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.KID, k.Algorithm, k.CreatedAt.Format(time.RFC3339), state)
		}
		return tw.Flush()
	})
	o = addOutputFlags(keys, false)
	return group("credential", "device credential signing keys: credential rotate | keys (operator)",
		`The gateway's device-credential signing keys, on the database (operator).
HEGATE_CREDENTIAL_KEK, if set, seals their private seeds.`, rotate, keys)
}

// signingKeys opens the gateway's signing keys, as serve does.
func signingKeys(store storage.Store) (*gateway.SigningKeys, error) {
	kek, err := gateway.ParseKEK(os.Getenv("HEGATE_CREDENTIAL_KEK"))
	if err != nil {
		return nil, err
	}
	return gateway.NewSigningKeys(store, time.Now, kek)
}

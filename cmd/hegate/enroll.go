package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cloudflare/circl/pki"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/spf13/cobra"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/native"
	"github.com/hegate/hegate/attest/psa"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/storage"
)

const enrollLong = `Attest this device to the gateway and store the credential it issues in
--identity DIR; hegate infer --identity DIR then uses it. Renewing the
credential means enrolling again.

  native         hegate's COSE_Sign1 evidence, signed by a software key
                 (--alg ed25519 or ml-dsa-65): no hardware root of trust
  tpm-simulator  a TPM 2.0 quote from the TPM reference simulator (needs a
                 hegate built with cgo): a real quote, but not a real TPM
  psa-test       a PSA attestation token made in software with a P-256 key:
                 PSA-shaped, with no PSA root of trust

The tenant must endorse the device and allow its measurements first:
--print-trust prints the endorsements and reference values to install
(hegate attest set), --endorse installs them with an admin API key.`

// evidenceMaker is one format's device side: it answers a nonce and says
// what a tenant must trust to accept the answer.
type evidenceMaker interface {
	client.Evidence
	Trust() (attest.Endorsements, attest.ReferenceValues, error)
}

func newEnrollCmd() *cobra.Command {
	var (
		cfg                     deviceConfig
		format, alg             string
		printTrust, endorse, nw bool
	)
	cmd := &cobra.Command{
		Use:     "enroll",
		Short:   "device: attest and get a device credential (native, tpm-simulator, psa-test)",
		Long:    enrollLong,
		Example: "  hegate enroll --format native --endorse --identity ./dev1\n  hegate enroll --format psa-test --print-trust --identity ./dev2",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.resolve(cmd); err != nil {
				return err
			}
			return enroll(cmd, &cfg, format, alg, printTrust, endorse, nw)
		},
	}
	cfg.register(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&format, "format", "native", "evidence: native, tpm-simulator or psa-test")
	f.StringVar(&alg, "alg", "ed25519", "native: the attestation key's algorithm, ed25519 or ml-dsa-65")
	f.BoolVar(&printTrust, "print-trust", false, "print the endorsements and reference values that admit this device, and exit")
	f.BoolVar(&endorse, "endorse", false, "install this device's endorsement and reference values first (needs an admin API key; development)")
	f.BoolVar(&nw, "new", false, "forget the identity in --identity and make a new device")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"native", "tpm-simulator", "psa-test"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("alg", cobra.FixedCompletions([]string{"ed25519", "ml-dsa-65"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func enroll(cmd *cobra.Command, cfg *deviceConfig, format, alg string, printTrust, endorse, fresh bool) error {
	ctx, stdout := cmd.Context(), cmd.OutOrStdout()
	if cfg.Identity == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return fmt.Errorf("--identity not set and no home directory: %w", err)
		}
		cfg.Identity = filepath.Join(home, ".hegate", "identity")
	}
	dir := cfg.Identity
	if fresh {
		for _, f := range []string{identityFile, deviceKeyFile, credentialFile, attestationKeyFile} {
			if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	id, err := loadOrCreateIdentity(dir, format, alg)
	if err != nil {
		return err
	}
	ev, err := evidenceFor(dir, id)
	if err != nil {
		return err
	}
	if printTrust {
		return printTrustDocs(ev, stdout)
	}

	// Enrolling needs a credential of the tenant: an API key, or this
	// device's own credential while it is valid (renewal).
	var cl *client.Client
	if cfg.APIKey != "" {
		cl, err = client.New(cfg.Server, cfg.APIKey)
	} else {
		var cred *client.DeviceCredential
		if cred, err = loadCredential(dir); err != nil {
			return fmt.Errorf("no API key (--api-key, HEGATE_API_KEY or the context's) and no valid device credential to renew with: %w", err)
		}
		cl, err = client.New(cfg.Server, "", client.WithDeviceCredential(cred))
	}
	if err != nil {
		return err
	}
	dev, cred, err := enrollIdentity(ctx, cl, dir, id, ev, endorse, cfg.Server)
	if err != nil {
		return err
	}
	if endorse {
		fmt.Fprintf(stdout, "endorsed this device and allowed its measurements for %s evidence\n", ev.Format())
	}
	fmt.Fprintf(stdout, "device %s enrolled with %s evidence (%s): attestation %s\ncredential  %s (valid until %s; use --identity %s)\n",
		dev.ID, ev.Format(), describeFormat(id), dev.AttestationStatus, filepath.Join(dir, credentialFile), cred.ExpiresAt.Local().Format(time.RFC3339), dir)
	return nil
}

// enrollIdentity enrolls the device of identity directory dir through cl
// (installing its trust anchors first when endorse is set) and stores the
// credential there.
func enrollIdentity(ctx context.Context, cl *client.Client, dir string, id identity, ev evidenceMaker, endorse bool, server string) (api.Device, *client.DeviceCredential, error) {
	if endorse {
		if err := installTrust(ctx, cl, ev); err != nil {
			return api.Device{}, nil, err
		}
	}
	deviceKey, err := loadOrCreateEd25519(filepath.Join(dir, deviceKeyFile))
	if err != nil {
		return api.Device{}, nil, err
	}
	dev, cred, err := cl.Enroll(ctx, ev, deviceKey)
	if err != nil {
		return api.Device{}, nil, fmt.Errorf("enrolling with %s evidence: %w", id.Format, err)
	}
	if err := writeJSONFile(filepath.Join(dir, credentialFile), storedCredential{
		Server: server, Device: dev.ID, AccessToken: cred.Token, ExpiresAt: cred.ExpiresAt,
	}); err != nil {
		return api.Device{}, nil, err
	}
	return dev, cred, nil
}

// describeFormat says what evidence an identity makes, honestly.
func describeFormat(id identity) string {
	switch id.Format {
	case "native":
		return "software key " + id.Alg + ", no hardware root of trust"
	case "tpm-simulator":
		return "TPM 2.0 reference simulator, not a hardware TPM"
	case "psa-test":
		return "PSA token made in software, no PSA root of trust"
	}
	return id.Format
}

func loadOrCreateIdentity(dir, format, alg string) (identity, error) {
	var id identity
	err := readJSONFile(filepath.Join(dir, identityFile), &id)
	switch {
	case err == nil:
		if id.Format != format {
			return id, fmt.Errorf("%s holds a %s device; use another --identity, or --new to replace it", dir, id.Format)
		}
		return id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return id, err
	}
	id = identity{Format: format, Created: time.Now().UTC()}
	switch format {
	case "native":
		if alg != "ed25519" && alg != "ml-dsa-65" {
			return id, fmt.Errorf("--alg %q: want ed25519 or ml-dsa-65", alg)
		}
		id.Alg = alg
		ueid := make([]byte, 16)
		if _, err := rand.Read(ueid); err != nil {
			return id, err
		}
		id.InstanceID = hex.EncodeToString(ueid)
	case "tpm-simulator":
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return id, err
		}
		id.SimulatorSeed = int64(binary.BigEndian.Uint64(b[:]) >> 1)
	case "psa-test":
	default:
		return id, fmt.Errorf("--format %q: want native, tpm-simulator or psa-test", format)
	}
	return id, writeJSONFile(filepath.Join(dir, identityFile), id)
}

// attestationKeyFile holds a native or psa-test device's attestation key.
const attestationKeyFile = "attestation-key.pem"

func evidenceFor(dir string, id identity) (evidenceMaker, error) {
	switch id.Format {
	case "native":
		key, err := loadOrCreateAttestationKey(filepath.Join(dir, attestationKeyFile), id.Alg)
		if err != nil {
			return nil, err
		}
		ueid, err := hex.DecodeString(id.InstanceID)
		if err != nil {
			return nil, fmt.Errorf("%s: instance_id is not hex", identityFile)
		}
		return newNativeEvidence(key, ueid)
	case "psa-test":
		key, err := loadOrCreateAttestationKey(filepath.Join(dir, attestationKeyFile), "p-256")
		if err != nil {
			return nil, err
		}
		ek, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s is not a P-256 key", attestationKeyFile)
		}
		d, err := psa.SimulatedDeviceFromKey(ek)
		if err != nil {
			return nil, err
		}
		return psaEvidence{d}, nil
	case "tpm-simulator":
		return newTPMSimulatorEvidence(id.SimulatorSeed)
	}
	return nil, fmt.Errorf("%s: unknown format %q", identityFile, id.Format)
}

// loadOrCreateAttestationKey reads (or makes) a PKCS #8 key: Ed25519,
// ML-DSA-65 or ECDSA P-256.
func loadOrCreateAttestationKey(path, alg string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if alg == "ml-dsa-65" {
			k, err := pki.UnmarshalPEMPrivateKey(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			mk, ok := k.(*mldsa65.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("%s is not an ML-DSA-65 key", path)
			}
			return mk, nil
		}
		k, err := parsePKCS8PEM(path, b)
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s is not a signing key", path)
		}
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	switch alg {
	case "ed25519":
		return loadOrCreateEd25519(path)
	case "ml-dsa-65":
		_, sk, err := mldsa65.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		pemBytes, err := pki.MarshalPEMPrivateKey(sk)
		if err != nil {
			return nil, err
		}
		if err := writeFileWith(path, 0o600, func(w io.Writer) error { _, err := w.Write(pemBytes); return err }); err != nil {
			return nil, err
		}
		return sk, nil
	case "p-256":
		sk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(sk)
		if err != nil {
			return nil, err
		}
		return sk, writePEM(path, "PRIVATE KEY", der)
	}
	return nil, fmt.Errorf("unknown key algorithm %q", alg)
}

// nativeEvidence signs native evidence with a software attestation key,
// measuring the running hegate binary.
type nativeEvidence struct {
	key          crypto.Signer
	kid, ueid    []byte
	measurements map[string][]byte
}

func newNativeEvidence(key crypto.Signer, ueid []byte) (*nativeEvidence, error) {
	pemKey, err := attest.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		return nil, err
	}
	kid := sha256.Sum256(pemKey)
	m, err := measureSelf()
	if err != nil {
		return nil, err
	}
	return &nativeEvidence{key: key, kid: kid[:16], ueid: ueid, measurements: m}, nil
}

// measureSelf is the SHA-256 of the running executable: what a software
// device can honestly say it runs (and only as far as its own code can be
// trusted to say it).
func measureSelf() (map[string][]byte, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(exe)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return map[string][]byte{"hegate-binary": h.Sum(nil)}, nil
}

func (e *nativeEvidence) Format() attest.Format { return attest.FormatNative }

func (e *nativeEvidence) Evidence(_ context.Context, nonce, jkt []byte) ([]byte, error) {
	return native.Sign(native.Claims{
		Nonce:         nonce,
		UEID:          e.ueid,
		KeyThumbprint: jkt,
		Measurements:  e.measurements,
		IssuedAt:      time.Now(),
	}, e.key, e.kid)
}

// Trust is the endorsement of the attestation key (kid and public key)
// and the measurement of this binary.
func (e *nativeEvidence) Trust() (attest.Endorsements, attest.ReferenceValues, error) {
	refs := attest.ReferenceValues{Measurements: map[string][][]byte{}}
	for name, d := range e.measurements {
		refs.Measurements[name] = [][]byte{d}
	}
	return attest.Endorsements{Keys: []attest.TrustedKey{{ID: e.kid, Public: e.key.Public()}}}, refs, nil
}

// psaEvidence makes PSA tokens with a software IAK.
type psaEvidence struct{ d *psa.SimulatedDevice }

func (e psaEvidence) Format() attest.Format { return attest.FormatPSA }

func (e psaEvidence) Evidence(_ context.Context, nonce, _ []byte) ([]byte, error) {
	return e.d.Token(nonce)
}

func (e psaEvidence) Trust() (attest.Endorsements, attest.ReferenceValues, error) {
	return attest.Endorsements{Keys: []attest.TrustedKey{e.d.Endorsement()}}, e.d.ReferenceValues(), nil
}

// trustDocs are what --print-trust prints.
type trustDocs struct {
	Format          attest.Format          `json:"format"`
	Endorsements    attest.Endorsements    `json:"endorsements"`
	ReferenceValues attest.ReferenceValues `json:"reference_values"`
}

func printTrustDocs(ev evidenceMaker, stdout io.Writer) error {
	e, r, err := ev.Trust()
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(trustDocs{Format: ev.Format(), Endorsements: e, ReferenceValues: r}, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, string(b))
	return err
}

// installTrust merges this device's endorsement and reference values into
// the tenant's documents for its format.
func installTrust(ctx context.Context, cl *client.Client, ev evidenceMaker) error {
	e, r, err := ev.Trust()
	if err != nil {
		return err
	}
	f := ev.Format()
	if doc, err := cl.AttestationDoc(ctx, f, storage.DocEndorsements); err == nil {
		have, err := attest.ParseEndorsements(doc.Document)
		if err != nil {
			return fmt.Errorf("the tenant's %s endorsements: %w", f, err)
		}
		e = have.Merge(e)
	} else if client.StatusOf(err) != 404 {
		return err
	}
	if doc, err := cl.AttestationDoc(ctx, f, storage.DocReferenceValues); err == nil {
		have, err := attest.ParseReferenceValues(doc.Document)
		if err != nil {
			return fmt.Errorf("the tenant's %s reference values: %w", f, err)
		}
		r = have.Merge(r)
	} else if client.StatusOf(err) != 404 {
		return err
	}
	eb, err := json.Marshal(e)
	if err != nil {
		return err
	}
	rb, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := cl.SetAttestationDoc(ctx, f, storage.DocEndorsements, eb); err != nil {
		return fmt.Errorf("endorsing the device (an admin API key is needed): %w", err)
	}
	if _, err := cl.SetAttestationDoc(ctx, f, storage.DocReferenceValues, rb); err != nil {
		return fmt.Errorf("setting reference values: %w", err)
	}
	return nil
}

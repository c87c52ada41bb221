package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	cose "github.com/veraison/go-cose"

	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/psa"
	"github.com/hegate/hegate/gateway"
	"github.com/hegate/hegate/modelzoo"
)

// cliGateway starts a gateway on a fresh SQLite store and returns its URL
// and an admin API key of a new tenant.
func cliGateway(t *testing.T) (string, string) {
	t.Helper()
	ctx := t.Context()
	cfg := backendConfig{DataDir: t.TempDir(), LogLevel: "warn"}
	b, err := openBackend(ctx, cfg, cfg.logger(io.Discard), []string{modelzoo.MNISTName})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	// A budget no test exhausts, so that inferences are charged, not refused.
	if b.defaultBudget, err = parseBudgetSpec("epsilon=1e9,delta=1e-5,period=never"); err != nil {
		t.Fatal(err)
	}
	srv, err := b.server()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.startWorkers(ctx, workerFlags{Concurrency: 1, MaxAttempts: 2, JobTimeout: 5 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	_, key, err := gateway.CreateTenant(ctx, b.store, "cli")
	if err != nil {
		t.Fatal(err)
	}
	return ts.URL, key
}

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(t.Context(), args, &out, &errb)
	return out.String() + errb.String(), err
}

// TestEnrollCommand: hegate enroll --endorse enrolls each kind of device;
// the stored credential then authenticates other commands; policy and
// devices commands manage them; revoking stops the credential.
func TestEnrollCommand(t *testing.T) {
	url, key := cliGateway(t)
	t.Setenv("HEGATE_API_KEY", "")
	formats := [][]string{{"native", "--alg", "ed25519"}, {"native", "--alg", "ml-dsa-65"}, {"psa-test"}}
	if runtime.GOOS == "linux" && cgoEnabled {
		formats = append(formats, []string{"tpm-simulator"})
	}
	if out, err := runCLI(t, "policy", "set", "--server", url, "--api-key", key, "--allow-api-key=false"); err != nil || !strings.Contains(out, `"allow_api_key": false`) {
		t.Fatalf("policy set: %v\n%s", err, out)
	}
	var ids []string
	for _, f := range formats {
		t.Run(strings.Join(f, " "), func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"enroll", "--server", url, "--api-key", key, "--identity", dir, "--endorse", "--format"}, f...)
			out, err := runCLI(t, args...)
			if err != nil {
				t.Fatalf("enroll: %v\n%s", err, out)
			}
			m := regexp.MustCompile(`device (dev_\w+) enrolled with (\w+) evidence .*attestation affirming`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("enroll printed: %s", out)
			}
			ids = append(ids, m[1])
			for _, name := range []string{identityFile, deviceKeyFile, credentialFile} {
				st, err := os.Stat(filepath.Join(dir, name))
				if err != nil || st.Mode().Perm() != 0o600 {
					t.Fatalf("%s: %v %v", name, st, err)
				}
			}
			// The credential authenticates: the device lists the tenant's
			// key sets (none) with it and no API key.
			if out, err := runCLI(t, "keys", "list", "--server", url, "--identity", dir); err != nil {
				t.Fatalf("keys list with the device credential: %v\n%s", err, out)
			}
			// Renewal: enrolling again with the credential alone.
			if f[0] != "tpm-simulator" {
				if out, err := runCLI(t, append([]string{"enroll", "--server", url, "--identity", dir, "--format"}, f...)...); err != nil || !strings.Contains(out, m[1]) {
					t.Fatalf("renewing: %v\n%s", err, out)
				}
			}
			if out, err := runCLI(t, "devices", "revoke", m[1], "--server", url, "--api-key", key); err != nil {
				t.Fatalf("revoke: %v\n%s", err, out)
			}
			out, err = runCLI(t, "keys", "list", "--server", url, "--identity", dir)
			if err == nil || !strings.Contains(err.Error(), "revoked") {
				t.Fatalf("a revoked device's credential: %v\n%s", err, out)
			}
		})
	}
	out, err := runCLI(t, "devices", "list", "--server", url, "--api-key", key)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !regexp.MustCompile(id + `\s+\S+\s+revoked\s+affirming`).MatchString(out) {
			t.Fatalf("devices list lacks %s revoked:\n%s", id, out)
		}
	}
}

// TestAttestVerifyOffline: hegate attest verify checks each format's
// evidence with files only, prints an EAR-shaped result and exits 0 only
// when it is affirming.
func TestAttestVerifyOffline(t *testing.T) {
	formats := []identity{{Format: "native", Alg: "ed25519", InstanceID: "00112233445566778899aabbccddeeff"},
		{Format: "native", Alg: "ml-dsa-65", InstanceID: "0011"}, {Format: "psa-test"}}
	if cgoEnabled {
		formats = append(formats, identity{Format: "tpm-simulator", SimulatorSeed: 42})
	}
	for _, id := range formats {
		t.Run(id.Format+" "+id.Alg, func(t *testing.T) {
			dir := t.TempDir()
			ev, err := evidenceFor(dir, id)
			if err != nil {
				t.Fatal(err)
			}
			en, refs, err := ev.Trust()
			if err != nil {
				t.Fatal(err)
			}
			write := func(name string, v any) string {
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			enFile, refsFile := write("endorsements.json", en), write("refs.json", refs)
			nonce, jkt := make([]byte, 32), make([]byte, 32)
			_, _ = rand.Read(nonce)
			_, _ = rand.Read(jkt)
			b, err := ev.Evidence(t.Context(), nonce, jkt)
			if err != nil {
				t.Fatal(err)
			}
			evFile := filepath.Join(dir, "evidence.cbor")
			if err := os.WriteFile(evFile, b, 0o600); err != nil {
				t.Fatal(err)
			}
			format := string(ev.Format())
			out, err := runCLI(t, "attest", "verify", "--format", format, "--endorsement", enFile, "--reference-values", refsFile, "--nonce", hex.EncodeToString(nonce), evFile)
			if err != nil {
				t.Fatalf("verify: %v\n%s", err, out)
			}
			var res attest.Result
			if err := json.Unmarshal([]byte(out), &res); err != nil || res.Status() != attest.StatusAffirming || res.Format != ev.Format() {
				t.Fatalf("result %v: %s", err, out)
			}
			// Wrong nonce: an EAR with the reason, and a non-zero exit.
			other := append([]byte(nil), nonce...)
			other[0] ^= 1
			out, err = runCLI(t, "attest", "verify", "--format", format, "--endorsement", enFile, "--reference-values", refsFile, "--nonce", hex.EncodeToString(other), evFile)
			if err == nil || !strings.Contains(out, `"nonce-mismatch"`) || !strings.Contains(out, `"contraindicated"`) {
				t.Fatalf("wrong nonce: %v\n%s", err, out)
			}
			// No reference values: authentic but contraindicated.
			out, err = runCLI(t, "attest", "verify", "--format", format, "--endorsement", enFile, "--nonce", hex.EncodeToString(nonce), evFile)
			if err == nil || !strings.Contains(out, `"empty-reference-values"`) {
				t.Fatalf("no reference values: %v\n%s", err, out)
			}
		})
	}
}

// TestAttestVerifyTFMTokens: hegate attest verify, offline, affirms the
// two tokens Trusted Firmware-M made (attest/psa/testdata), with an
// endorsement of TF-M's published development IAK and reference values
// of the tokens' own software components, and refuses them under another
// nonce.
func TestAttestVerifyTFMTokens(t *testing.T) {
	const testdata = "../../attest/psa/testdata/"
	pemKey, err := os.ReadFile(testdata + "tfm-iak-legacy.pub.pem")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tfm-psa-iot-profile-1.cbor", "tfm-psa-2.0.0.cbor"} {
		t.Run(name, func(t *testing.T) {
			token, err := os.ReadFile(testdata + name)
			if err != nil {
				t.Fatal(err)
			}
			var msg cose.UntaggedSign1Message
			if err := msg.UnmarshalCBOR(untag(token)); err != nil {
				t.Fatal(err)
			}
			claims, err := psa.DecodeClaims(msg.Payload)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			write := func(file string, v any) string {
				b, _ := json.Marshal(v)
				p := filepath.Join(dir, file)
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			comps := []map[string]string{}
			for _, c := range claims.Components {
				comps = append(comps, map[string]string{"type": c.Type, "measurement": hex.EncodeToString(c.Measurement)})
			}
			en := write("en.json", map[string]any{"keys": []map[string]string{{"id": hex.EncodeToString(claims.InstanceID), "public_key": string(pemKey)}}})
			refs := write("refs.json", map[string]any{"components": comps, "implementation_ids": []string{hex.EncodeToString(claims.ImplementationID)}})
			nonce := hex.EncodeToString(claims.Nonce)
			out, err := runCLI(t, "attest", "verify", "--format", "psa", "--endorsement", en, "--reference-values", refs, "--nonce", nonce, testdata+name)
			if err != nil || !strings.Contains(out, `"ear.status": "affirming"`) {
				t.Fatalf("TF-M token: %v\n%s", err, out)
			}
			zero := strings.Repeat("11", len(claims.Nonce))
			if out, err := runCLI(t, "attest", "verify", "--format", "psa", "--endorsement", en, "--reference-values", refs, "--nonce", zero, testdata+name); err == nil || !strings.Contains(out, "nonce-mismatch") {
				t.Fatalf("TF-M token under another nonce: %v\n%s", err, out)
			}
		})
	}
}

// untag strips a leading CBOR tag 18 (COSE_Sign1), if any.
func untag(b []byte) []byte {
	if len(b) > 0 && b[0] == 0xd2 {
		return b[1:]
	}
	return b
}

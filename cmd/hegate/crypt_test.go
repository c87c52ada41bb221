package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestCurlSession replays docs/api.md's "A whole session with curl": the
// key set and the inference go over plain HTTP as curl would send them,
// the ciphertexts come from hegate encrypt and decrypt.
func TestCurlSession(t *testing.T) {
	if testing.Short() {
		t.Skip("an encrypted inference")
	}
	url, key := cliGateway(t)
	t.Setenv("HEGATE_API_KEY", "")
	dir := t.TempDir()
	k := filepath.Join(dir, "k")
	if out, err := runCLI(t, "keygen", "--server", url, "--api-key", key, "--dir", k); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	post := func(path, contentType string, hdr map[string]string, body []byte) []byte {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", contentType)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
		}
		return b
	}
	keys, err := os.ReadFile(filepath.Join(k, "keyset.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var ks struct{ ID string }
	if err := json.Unmarshal(post("/v1/keys", "application/vnd.hegate.ckks-keyset", map[string]string{"Hegate-Model": "mnist-cryptonets"}, keys), &ks); err != nil || ks.ID == "" {
		t.Fatalf("key set answer: %v", err)
	}
	input := filepath.Join(dir, "input.ct")
	if out, err := runCLI(t, "encrypt", "--dir", k, "--mnist-index", "0", "-o", input); err != nil {
		t.Fatalf("encrypt: %v\n%s", err, out)
	}
	ct, err := os.ReadFile(input)
	if err != nil {
		t.Fatal(err)
	}
	req := fmt.Sprintf(`{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","parameters":{"content_type":"application/vnd.hegate.ckks-ciphertext","key_set_id":"%s"},"data":["%s"]}]}`,
		ks.ID, base64.StdEncoding.EncodeToString(ct))
	var answer struct {
		Outputs []struct{ Data []string }
	}
	if err := json.Unmarshal(post("/v2/models/mnist-cryptonets/infer", "application/json", nil, []byte(req)), &answer); err != nil || len(answer.Outputs) != 1 || len(answer.Outputs[0].Data) != 1 {
		t.Fatalf("infer answer: %v %+v", err, answer)
	}
	result, err := base64.StdEncoding.DecodeString(answer.Outputs[0].Data[0])
	if err != nil {
		t.Fatal(err)
	}
	rf := filepath.Join(dir, "result.ct")
	if err := os.WriteFile(rf, result, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "decrypt", "--dir", k, rf)
	if err != nil {
		t.Fatalf("decrypt: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`prediction \d`).MatchString(out) {
		t.Fatalf("decrypt printed %q", out)
	}
}

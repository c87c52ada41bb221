package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
)

// fuzzMaxCiphertext bounds the ciphertexts FuzzInferRequest may produce.
const fuzzMaxCiphertext = 4 << 10

func FuzzInferRequest(f *testing.F) {
	ks := strings.Repeat("ab", 32)
	good := func(ct []byte, edit func(*api.InferRequest)) (int64, []byte) {
		req := bytesInput(api.Parameters{
			api.ParamContentType:    api.ContentTypeCiphertext,
			api.ParamKeySetID:       ks,
			api.ParamBinaryDataSize: api.BytesElementOverhead + len(ct),
		})
		if edit != nil {
			edit(&req)
		}
		hdr, _ := json.Marshal(req)
		return int64(len(hdr)), append(hdr, api.AppendBytesElement(nil, ct)...)
	}
	n, body := good([]byte("ciphertext"), nil)
	f.Add(n, body)
	f.Add(n-1, body)
	f.Add(n, body[:len(body)-3])
	f.Add(n, append(body, 0))
	n, body = good(nil, func(r *api.InferRequest) { r.Outputs = []api.RequestedOutput{{Name: "output"}} })
	f.Add(n, body)
	f.Add(int64(0), []byte(`{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","parameters":{"content_type":"application/vnd.hegate.ckks-ciphertext","key_set_id":"`+ks+`","binary_data":false},"data":["Y3Q="]}]}`))
	f.Add(int64(0), []byte(`{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","parameters":{"content_type":"application/vnd.hegate.ckks-ciphertext","key_set_id":"`+ks+`"},"data":["Y3Q="]}]}`))
	f.Add(int64(0), []byte(`{"inputs":[{"data":[[1,2],[3]]}]}`))
	f.Add(int64(2), []byte(`{}`+"\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, headerLen int64, body []byte) {
		if len(body) > 1<<16 {
			return
		}
		h := http.Header{}
		if headerLen > 0 {
			h.Set(api.HeaderInferenceContentLength, strconv.FormatInt(headerLen, 10))
		}
		in, err := parseInferRequest(h, bytes.NewReader(body), fuzzMaxCiphertext)
		if err != nil {
			if k := hegate.KindOf(err); k != hegate.KindInvalid && k != hegate.KindTooLarge {
				t.Fatalf("error of kind %v: %v", k, err)
			}
			if hegate.DetailOf(err) == "" {
				t.Fatalf("error without a detail: %v", err)
			}
			return
		}
		if len(in.ciphertext) == 0 || len(in.ciphertext) > fuzzMaxCiphertext {
			t.Fatalf("accepted a ciphertext of %d bytes", len(in.ciphertext))
		}
		if !validKeySetID(string(in.keySetID)) {
			t.Fatalf("accepted key set id %q", in.keySetID)
		}
	})
}

func TestInferPreferences(t *testing.T) {
	t.Parallel()
	const limit = 30 * time.Second
	tests := map[string]struct {
		prefer  []string
		wait    time.Duration
		applied string // Preference-Applied of a 200
		async   string // Preference-Applied of a 202
	}{
		"ok/none":                    {nil, limit, "", ""},
		"ok/wait":                    {[]string{"wait"}, limit, "wait=30", "wait=30"},
		"ok/wait-n":                  {[]string{"wait=5"}, 5 * time.Second, "wait=5", "wait=5"},
		"ok/wait-capped":             {[]string{"wait=100"}, limit, "wait=30", "wait=30"},
		"ok/listed":                  {[]string{"handling=lenient, wait=3"}, 3 * time.Second, "wait=3", "wait=3"},
		"ok/two-headers":             {[]string{"return=minimal", "wait=2"}, 2 * time.Second, "wait=2", "wait=2"},
		"ok/first-wins":              {[]string{"wait=2, wait=9"}, 2 * time.Second, "wait=2", "wait=2"},
		"ok/respond-async":           {[]string{"respond-async"}, 0, "respond-async", "respond-async"},
		"ok/respond-async-with-wait": {[]string{"respond-async, wait=10"}, 10 * time.Second, "wait=10", "respond-async, wait=10"},
		"ok/case":                    {[]string{"Respond-Async"}, 0, "respond-async", "respond-async"},
		"ok/zero":                    {[]string{"wait=0"}, 0, "wait=0", "wait=0"},
		"ok/not-a-number-ignored":    {[]string{"wait=soon"}, limit, "", ""},
		"ok/negative-ignored":        {[]string{"wait=-1"}, limit, "", ""},
		"ok/other-preference":        {[]string{"return=representation"}, limit, "", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.prefer {
				h.Add("Prefer", v)
			}
			p := inferPreferences(h, limit)
			if p.wait != tc.wait {
				t.Fatalf("wait %s, want %s", p.wait, tc.wait)
			}
			if p.wait > 0 {
				if got := p.applied(true); got != tc.applied {
					t.Errorf("Preference-Applied of a 200 %q, want %q", got, tc.applied)
				}
			}
			if got := p.applied(false); got != tc.async {
				t.Errorf("Preference-Applied of a 202 %q, want %q", got, tc.async)
			}
		})
	}
}

func TestAPIKeyFormat(t *testing.T) {
	t.Parallel()
	secret, hash, prefix, err := NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "hgk_") || len(secret) != apiKeyLen || !wellFormedAPIKey(secret) {
		t.Fatalf("secret %q", secret)
	}
	if len(hash) != 32 || !bytes.Equal(hash, hashAPIKey(secret)) || !strings.HasPrefix(secret, prefix) || len(prefix) >= len(secret)/2 {
		t.Fatalf("hash %x prefix %q", hash, prefix)
	}
	for _, bad := range []string{"", "hgk_", secret[:len(secret)-1], "xyz_" + secret[4:], secret[:10] + "!" + secret[11:]} {
		if wellFormedAPIKey(bad) {
			t.Errorf("wellFormedAPIKey(%q) = true", bad)
		}
	}
}

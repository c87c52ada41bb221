package gateway

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/he/ir"
)

// bigLimits lets uploaded models bring their own (exact) sizes.
func bigLimits(c *Config) { c.MaxKeySetBytes, c.MaxCiphertextBytes = 1<<30, 16<<20 }

func graphJSON(t *testing.T, g *ir.Graph) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := ir.Write(&b, g); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// uploadAndWait uploads g as tenant d's model name and waits for it.
func (bd *bundle) uploadAndWait(t *testing.T, d device, name string, g *ir.Graph) api.ModelVersion {
	t.Helper()
	body := graphJSON(t, g)
	v, err := d.client.UploadModel(bd.ctx, client.ModelUpload{Name: name, ContentType: api.ContentTypeIRJSON, Options: testUploadOptions}, bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("uploading %s: %v", name, err)
	}
	if v.Status != api.ModelStatusCompiling || v.Version < 1 {
		t.Fatalf("upload answered %+v", v)
	}
	ctx, cancel := context.WithTimeout(bd.ctx, time.Minute)
	defer cancel()
	v, err = d.client.WaitModel(ctx, name, v.Version)
	if err != nil || v.Status != api.ModelStatusReady || v.Manifest == nil {
		t.Fatalf("waiting for %s: %+v, %v", name, v, err)
	}
	return v
}

// TestUploadedModelServed: a tenant uploads a model at run time; the
// gateway that is already running compiles it in a job and serves it; the
// device works from the served manifest; other tenants and anonymous
// callers cannot see it; versions have their own keys; deleting removes it.
func TestUploadedModelServed(t *testing.T) {
	bd := setup(t, withConfig(bigLimits))
	a, b := bd.a, bd.b
	g := testGraph("mine", 42)
	v1 := bd.uploadAndWait(t, a, "mine", g)
	if v1.Version != 1 || v1.KeyModel != "mine@v1" {
		t.Fatalf("version %+v", v1)
	}

	// Tenant A sees it on the OIP routes; B and anonymous callers do not.
	if _, err := a.client.ModelMetadata(bd.ctx, "mine"); err != nil {
		t.Fatalf("owner: %v", err)
	}
	for _, path := range []string{"/v2/models/mine", "/v2/models/mine/versions/1", "/v2/models/mine/ready"} {
		if code := getStatus(t, bd, b.secret, path); code != http.StatusNotFound {
			t.Errorf("other tenant GET %s: %d", path, code)
		}
		if code := getStatus(t, bd, "", path); code != http.StatusNotFound {
			t.Errorf("anonymous GET %s: %d", path, code)
		}
	}
	if code := getStatus(t, bd, b.secret, "/v1/models/mine"); code != http.StatusNotFound {
		t.Errorf("other tenant GET /v1/models/mine: %d", code)
	}
	list, err := b.client.TenantModels(bd.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list {
		if m.Name == "mine" {
			t.Fatal("other tenant lists the model")
		}
	}

	// The device builds everything from the served manifest.
	dev, err := a.client.Device(bd.ctx, "mine@v1", true)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := dev.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	var keys bytes.Buffer
	if _, err := dev.WriteKeySet(&keys, sk); err != nil {
		t.Fatal(err)
	}
	ks, err := a.client.UploadKeySet(bd.ctx, "mine@v1", bytes.NewReader(keys.Bytes()), int64(keys.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if ks.Model != "mine@v1" {
		t.Fatalf("key set recorded for %q", ks.Model)
	}
	x := make([]float64, g.InputSize())
	for i := range x {
		x[i] = float64(i%5)/5 - 0.4
	}
	want, _ := g.Run(x)
	check := func(model string) {
		t.Helper()
		ct, err := dev.Encrypt(sk, x)
		if err != nil {
			t.Fatal(err)
		}
		res, _, err := a.client.Infer(bd.ctx, model, ks.ID, ct, client.InferOptions{Wait: true})
		if err != nil {
			t.Fatalf("infer %s: %v", model, err)
		}
		got, err := dev.Decrypt(sk, res)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if d := got[i] - want[i]; d > resultTolerance || d < -resultTolerance {
				t.Fatalf("%s output %d: %v, reference %v", model, i, got[i], want[i])
			}
		}
	}
	check("mine@v1")
	check("mine") // latest ready version
	// Another tenant cannot infer on it, even with a key set of its own id.
	ct, _ := dev.Encrypt(sk, x)
	if _, _, err := b.client.Infer(bd.ctx, "mine", ks.ID, ct, client.InferOptions{Wait: true}); client.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("other tenant infer: %v", err)
	}

	// A second version has its own key requirements: v1's keys do not
	// serve it.
	v2 := bd.uploadAndWait(t, a, "mine", testGraph("mine", 43))
	if v2.Version != 2 {
		t.Fatalf("second upload is version %d", v2.Version)
	}
	if _, _, err := a.client.Infer(bd.ctx, "mine", ks.ID, ct, client.InferOptions{Wait: true}); client.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("v1 keys on v2: %v", err)
	}
	check("mine@v1") // still served by version

	if err := b.client.DeleteModel(bd.ctx, "mine"); client.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("other tenant delete: %v", err)
	}
	if err := a.client.DeleteModel(bd.ctx, "mine"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.ModelMetadata(bd.ctx, "mine@v1"); client.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("after delete: %v", err)
	}
	if _, _, err := a.client.Infer(bd.ctx, "mine@v1", ks.ID, ct, client.InferOptions{Wait: true}); client.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("infer after delete: %v", err)
	}
}

func getStatus(t *testing.T, bd *bundle, secret, path string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(bd.ctx, http.MethodGet, bd.ts.URL+path, nil)
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := bd.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestUploadRefused: what an upload must be, each refusal a problem+json
// naming the problem, and nothing stored.
func TestUploadRefused(t *testing.T) {
	bd := setup(t, withConfig(bigLimits), withoutWorkers())
	good := graphJSON(t, testGraph("x", 1))
	deep := ir.Chain("deep", []int{4},
		&ir.Node{Op: ir.OpDense, Dense: &ir.Dense{In: 4, Out: 4, Weights: make([]float64, 16), Bias: make([]float64, 4)}},
		&ir.Node{Op: ir.OpPoly, Poly: &ir.Poly{Coeffs: []float64{0, 0, 1}}},
		&ir.Node{Op: ir.OpDense, Dense: &ir.Dense{In: 4, Out: 4, Weights: make([]float64, 16), Bias: make([]float64, 4)}},
	)
	huge := ir.Chain("huge", []int{1, 512, 512},
		&ir.Node{Op: ir.OpConv, Conv: &ir.Conv{InChannels: 1, OutChannels: 1, Kernel: [2]int{3, 3}, Stride: [2]int{1, 1}, Weights: make([]float64, 9), Bias: []float64{0}}})
	heavy := ir.Chain("heavy", []int{64, 32, 32},
		&ir.Node{Op: ir.OpConv, Conv: &ir.Conv{InChannels: 64, OutChannels: 64, Kernel: [2]int{9, 9}, Stride: [2]int{1, 1}, Pads: [4]int{4, 4, 4, 4}, Weights: make([]float64, 64*64*81), Bias: make([]float64, 64)}})
	cases := []struct {
		name, model, ct, query string
		body                   []byte
		status                 int
		want                   string
	}{
		{"fail/garbage-onnx", "m1", api.ContentTypeONNX, "", []byte("not a protobuf at all"), 400, "not an ONNX model"},
		{"fail/bad-json", "m2", api.ContentTypeIRJSON, "", []byte(`{"name":`), 400, "JSON"},
		{"fail/builtin-name", string(bd.model.ID()), api.ContentTypeIRJSON, "", good, 409, "built-in"},
		{"fail/bad-name", "Has Spaces", api.ContentTypeIRJSON, "", good, 400, "model name"},
		{"fail/bad-preset", "m3", api.ContentTypeIRJSON, "&preset=n99", good, 400, "unknown preset"},
		{"fail/bad-degree", "m4", api.ContentTypeIRJSON, "&relu_degree=1000", good, 400, "relu_degree"},
		{"fail/bad-split", "m5", api.ContentTypeIRJSON, "&split_after=nope", good, 400, "split after"},
		{"fail/content-type", "m6", "text/plain", "", good, 415, "Content-Type"},
		{"fail/too-large", "m7", api.ContentTypeIRJSON, "", bytes.Repeat([]byte(" "), 300<<20), 413, "exceeds"},
		{"fail/value-too-wide", "m8", api.ContentTypeIRJSON, "", graphJSON(t, huge), 400, "at most"},
		{"fail/too-much-work", "m9", api.ContentTypeIRJSON, "", graphJSON(t, heavy), 400, "multiply-accumulates"},
		{"fail/margin-nan", "m10", api.ContentTypeIRJSON, "&margin=NaN", good, 400, "margin"},
		{"ok/accepted-compiles-later", "deep", api.ContentTypeIRJSON, "&preset=test-n12", graphJSON(t, deep), 202, "compiling"},
	}
	before := bd.blobFiles(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(bd.ctx, http.MethodPost, bd.ts.URL+"/v1/models?name="+url.QueryEscape(tc.model)+tc.query, bytes.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+bd.a.secret)
			req.Header.Set("Content-Type", tc.ct)
			resp, err := bd.ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(buf.String(), tc.want) {
				t.Fatalf("status %d body %s; want %d mentioning %q", resp.StatusCode, truncate(buf.String(), 300), tc.status, tc.want)
			}
		})
	}
	if after := bd.blobFiles(t); after != before+1 {
		t.Fatalf("blob files %d → %d: refused uploads left blobs", before, after)
	}
	// An Idempotency-Key replays the same upload, and refuses another.
	up := func(name string, body []byte) error {
		_, err := bd.a.client.UploadModel(bd.ctx, client.ModelUpload{Name: name, ContentType: api.ContentTypeIRJSON, IdempotencyKey: "k1", Options: testUploadOptions}, bytes.NewReader(body), int64(len(body)))
		return err
	}
	if err := up("again", good); err != nil {
		t.Fatal(err)
	}
	if err := up("again", good); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if err := up("again", graphJSON(t, testGraph("x", 2))); client.StatusOf(err) != http.StatusConflict {
		t.Fatalf("same key, other file: %v", err)
	}
	if err := up("other", good); client.StatusOf(err) != http.StatusConflict {
		t.Fatalf("same key, other name: %v", err)
	}
	// The accepted one is not ready (no workers here), so it is not served.
	if _, err := bd.a.client.ModelMetadata(bd.ctx, "deep"); client.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("compiling model served: %v", err)
	}
	// And a compiling version blocks deletion.
	if err := bd.a.client.DeleteModel(bd.ctx, "deep"); client.StatusOf(err) != http.StatusConflict {
		t.Fatalf("delete while compiling: %v", err)
	}
}

// TestCompileFailureIsReported: a model the compiler refuses becomes a
// failed version whose error says why.
func TestCompileFailureIsReported(t *testing.T) {
	bd := setup(t, withConfig(bigLimits))
	sq := func() *ir.Node { return &ir.Node{Op: ir.OpPoly, Poly: &ir.Poly{Coeffs: []float64{0, 0, 1}}} }
	dense := func() *ir.Node {
		return &ir.Node{Op: ir.OpDense, Dense: &ir.Dense{In: 4, Out: 4, Weights: make([]float64, 16), Bias: make([]float64, 4)}}
	}
	g := ir.Chain("deep", []int{4}, dense(), sq(), dense(), sq(), dense(), sq(), dense())
	body := graphJSON(t, g)
	v, err := bd.a.client.UploadModel(bd.ctx, client.ModelUpload{Name: "deep", ContentType: api.ContentTypeIRJSON, Options: testUploadOptions}, bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bd.ctx, time.Minute)
	defer cancel()
	v, err = bd.a.client.WaitModel(ctx, "deep", v.Version)
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != api.ModelStatusFailed || !strings.Contains(v.Error, "needs 7 levels") {
		t.Fatalf("version %+v", v)
	}
}

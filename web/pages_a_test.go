package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/internal/browsertest"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/service/servicetest"
	"github.com/hegate/hegate/storage"
)

// Tests of the overview, models, budget and key sets pages, over a real
// console, service, catalog and SQLite store (env_test.go). Helpers are
// prefixed pa.

// paRho is one rho in store units.
const paRho = 1_000_000_000

// paBuiltin is the built-in model of the tests, compiled once.
var paBuiltin = sync.OnceValues(func() (*he.Model, error) {
	r := rand.New(rand.NewPCG(1, 7))
	vec := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = (r.Float64()*2 - 1) * 0.5
		}
		return v
	}
	g := ir.Chain("tiny", []int{16},
		&ir.Node{Op: ir.OpDense, Dense: &ir.Dense{In: 16, Out: 8, Weights: vec(128), Bias: vec(8)}},
		&ir.Node{Op: ir.OpPoly, Poly: &ir.Poly{Coeffs: []float64{0, 0.5, 0.1}}},
		&ir.Node{Op: ir.OpDense, Dense: &ir.Dense{In: 8, Out: 4, Weights: vec(32), Bias: vec(4)}},
	)
	return he.Compile(context.Background(), g, he.CompileOptions{Params: "test-n12", AllowInsecure: true,
		Privacy: he.PrivacyOptions{OutputRange: [2]float64{-16, 16}, Sigma: 0.5}})
})

func paModel(t *testing.T) *he.Model {
	t.Helper()
	m, err := paBuiltin()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newPAEnv builds the console over a rig with the built-in model tiny and
// a default budget of 10 rho a day; edit changes the catalog's
// configuration.
func newPAEnv(t *testing.T, edit ...func(*catalog.Config)) *testEnv {
	t.Helper()
	return newTestEnv(t, servicetest.Config{
		Builtin: []*he.Model{paModel(t)}, AllowInsecure: true,
		EditCatalog: func(c *catalog.Config) {
			for _, f := range edit {
				f(c)
			}
		},
		DefaultBudget: storage.BudgetLimit{Capacity: 10 * paRho, Period: storage.BudgetDaily, Epsilon: 5, Delta: 1e-6},
	})
}

// paMultipart is a multipart form: fields in order, then the file (if
// fileName is not "").
func paMultipart(t *testing.T, fields [][2]string, fileName string, file []byte) (string, *bytes.Buffer) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if fileName != "-" {
		fw, err := mw.CreateFormFile("file", fileName)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(file)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), &body
}

// upload posts the model import form.
func (c *testClient) upload(fields [][2]string, fileName string, file []byte) *httptest.ResponseRecorder {
	ct, body := paMultipart(c.e.t, fields, fileName, file)
	req := httptest.NewRequest(http.MethodPost, "/console/models/import", body)
	req.Header.Set("Content-Type", ct)
	return c.do(req)
}

// paJob creates a job of the built-in model for acme and reserves cost
// units for it, as the service does in one transaction.
func (e *testEnv) paJob(cost int64) storage.Job {
	e.t.Helper()
	var job storage.Job
	err := e.store.InTx(e.ctx, func(tx storage.Tx) error {
		j, _, err := tx.CreateJob(e.ctx, storage.CreateJobParams{TenantID: e.acme.ID, Model: "tiny", KeySetID: "ks-test", InputBlob: "in-test", InputBytes: 10, NoiseSigma: 0.5})
		if err != nil {
			return err
		}
		job = j
		_, err = tx.ReserveBudget(e.ctx, storage.ReserveBudgetParams{JobID: j.ID, Cost: cost, Default: e.svc.DefaultBudget(), Actor: "test"})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return job
}

// paTenantModel gives acme a model version of its own without the catalog.
func (e *testEnv) paTenantModel(name string) {
	e.t.Helper()
	if _, _, err := e.store.CreateModelVersion(e.ctx, storage.CreateModelVersionParams{TenantID: e.acme.ID, Name: hegate.ModelID(name), SourceBlob: "src-test", SourceBytes: 3, SourceFormat: storage.ModelFormatIRJSON}); err != nil {
		e.t.Fatal(err)
	}
}

func paWant(t *testing.T, doc string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(doc, w) {
			t.Errorf("page lacks %q", w)
		}
	}
}

// paIsland decodes a JSON data island of a page.
func paIsland(t *testing.T, doc, id string) chartIsland {
	t.Helper()
	re := regexp.MustCompile(`<script type="application/json" id="` + regexp.QuoteMeta(id) + `">([^<]*)</script>`)
	m := re.FindStringSubmatch(doc)
	if m == nil {
		t.Fatalf("no data island %s in\n%s", id, doc)
	}
	var ci chartIsland
	if err := json.Unmarshal([]byte(m[1]), &ci); err != nil {
		t.Fatalf("island %s: %v\n%s", id, err, m[1])
	}
	return ci
}

func TestCrossOriginRefused(t *testing.T) {
	t.Parallel()
	e := newPAEnv(t)
	alice := e.login("acme", e.alice)
	form := url.Values{"model": {"mine"}, "epsilon": {"1"}, "delta": {"1e-6"}, "period": {"day"}}
	e.paTenantModel("mine")
	if res := alice.post("/console/budget/set", form, "Origin", "https://evil.example"); res.Code != http.StatusForbidden {
		t.Fatalf("cross-origin POST: %d, want 403", res.Code)
	}
	if res := alice.post("/console/keysets/"+strings.Repeat("a", 64)+"/delete", nil, "Sec-Fetch-Site", "cross-site"); res.Code != http.StatusForbidden {
		t.Fatalf("cross-site POST: %d, want 403", res.Code)
	}
	// Nothing changed, and the same POST from no browser at all (no
	// Origin, no Sec-Fetch-Site) or from the console itself goes through.
	if _, err := e.store.GetBudget(e.ctx, e.acme.ID, "mine"); err == nil {
		t.Fatal("the cross-origin POST set the budget")
	}
	if res := alice.post("/console/budget/set", form, "Sec-Fetch-Site", "same-origin"); res.Code != http.StatusSeeOther {
		t.Fatalf("same-origin POST: %d\n%s", res.Code, res.Body)
	}
	if res := alice.post("/console/budget/set", form); res.Code != http.StatusSeeOther {
		t.Fatalf("POST without Origin: %d\n%s", res.Code, res.Body)
	}
}

func TestOverviewPage(t *testing.T) {
	t.Parallel()
	e := newPAEnv(t)
	ok := e.paJob(3 * paRho)
	if _, err := e.store.StartJob(e.ctx, ok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CompleteJob(e.ctx, ok.ID, "out-test", 9); err != nil {
		t.Fatal(err)
	}
	bad := e.paJob(paRho)
	if _, err := e.store.FailJob(e.ctx, bad.ID, "no"); err != nil {
		t.Fatal(err)
	}
	e.paJob(paRho) // queued
	if _, err := e.store.EnrollDevice(e.ctx, storage.EnrollDeviceParams{TenantID: e.acme.ID, Format: "native", InstanceID: "dev-1", KeyThumbprint: "tp1", AttestationStatus: "affirming", Result: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []storage.User{e.alice, e.victor} {
		doc := e.login("acme", u).page("/console/")
		paWant(t, doc, `<span class="badge ok">serving</span>`, `<a href="/console/" aria-current="page">`,
			`<span class="stat-value">3</span> <span class="stat-label">jobs created</span>`,
			`<span class="stat-value">1</span> <span class="stat-label"><span class="badge danger">failed</span>`,
			`<span class="stat-value">1</span> <span class="stat-label"><span class="badge ok">succeeded</span>`,
			`<span class="stat-value">1</span> <span class="stat-label"><span class="badge ok">active</span>`,
			`attestation <span class="badge ok">affirming</span>`,
			// 10 rho a day, 3 spent, 1 reserved by the queued job.
			`<th scope="row">tiny</th>`, `<td class="num">6 (60%)</td>`)
		if forms := postForms(doc); len(forms) != 0 {
			t.Errorf("%s sees forms on the overview: %v", u.Name, forms)
		}
		ci := paIsland(t, doc, "jobs-chart-data")
		if len(ci.X) != overviewWindow+1 || len(ci.Y) != len(ci.X) || ci.Y[overviewWindow-1] != 3 {
			t.Errorf("jobs chart %+v", ci)
		}
	}
	// Not serving.
	con, err := New(Config{Service: e.svc, Health: func(context.Context) error {
		return hegate.E("health", hegate.KindUnavailable, nil, "the workers are not running")
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.handler = con.Handler()
	doc := e.login("acme", e.victor).page("/console/")
	paWant(t, doc, `<span class="badge danger">not serving</span>`, "the workers are not running")
}

func TestOverviewJobsCapped(t *testing.T) {
	t.Parallel()
	e := newPAEnv(t)
	err := e.store.InTx(e.ctx, func(tx storage.Tx) error {
		for range overviewMaxJobs + 3 {
			if _, _, err := tx.CreateJob(e.ctx, storage.CreateJobParams{TenantID: e.acme.ID, Model: "tiny", KeySetID: "ks-test", InputBlob: "in", InputBytes: 1}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	doc := e.login("acme", e.alice).page("/console/")
	paWant(t, doc, fmt.Sprintf(`<span class="stat-value">at least %d</span>`, overviewMaxJobs))
}

func TestModelsPages(t *testing.T) {
	t.Parallel()
	e := newPAEnv(t)
	alice, victor, gina := e.login("acme", e.alice), e.login("acme", e.victor), e.login("globex", e.gina)

	doc := alice.page("/console/models")
	paWant(t, doc, `<a href="/console/models/tiny">tiny</a>`, `<span class="badge ok">ready</span>`,
		`<form method="post" action="/console/models/import" enctype="multipart/form-data"`,
		`<label for="import-name">`, `<label for="import-relu-degree">`, `id="import-file" name="file" type="file"`)
	// The file input is the form's last control, so that it is sent last.
	if i, j := strings.Index(doc, `name="file"`), strings.LastIndex(doc, `name="layout"`); i < j {
		t.Error("the file input comes before compile options")
	}
	vdoc := victor.page("/console/models")
	if forms := postForms(vdoc); len(forms) != 0 {
		t.Errorf("a viewer sees forms: %v", forms)
	}

	// The built-in model's cost report, from its manifest.
	doc = victor.page("/console/models/tiny")
	paWant(t, doc, "Model tiny", "What an inference costs", "<dt>Key set</dt>", "<dt>Key switches per inference</dt>",
		"<dt>Ciphertexts</dt>", "<dt>Estimated latency</dt>", "<dt>Rho per query</dt>", "<dt>Noise sigma</dt>",
		"<dt>Sensitivity</dt>", "<dt>Accuracy</dt><dd>not measured</dd>", "test-n12")
	if strings.Contains(doc, "hx-get") {
		t.Error("a ready model polls")
	}
	if forms := postForms(alice.page("/console/models/tiny")); len(forms) != 0 {
		t.Errorf("a built-in model has forms: %v", forms)
	}
	if res := alice.post("/console/models/tiny/delete", nil); res.Code != http.StatusConflict {
		t.Errorf("deleting a built-in: %d", res.Code)
	}

	// Import a real ONNX export: the version is compiling (no worker here).
	onnxFile, err := os.ReadFile(filepath.Join("..", "..", "shared", "data", "onnx", "keras-mnist-sm.onnx"))
	if err != nil {
		t.Skipf("shared test data: %v", err)
	}
	fields := [][2]string{{"name", "keras-sm"}, {"format", ""}, {"scale", "0.00392156862745098"}, {"layout", "NHWC"}, {"preset", ""}}
	if res := victor.upload(fields, "mnist-sm.onnx", onnxFile); res.Code != http.StatusForbidden {
		t.Fatalf("a viewer's import: %d\n%s", res.Code, res.Body)
	}
	res := alice.upload(fields, "mnist-sm.onnx", onnxFile)
	if res.Code != http.StatusSeeOther || res.Header().Get("Location") != "/console/models/keras-sm" {
		t.Fatalf("import: %d %s\n%s", res.Code, res.Header().Get("Location"), res.Body)
	}
	doc = alice.followPage(res)
	paWant(t, doc, "Model keras-sm version 1 is uploaded and compiling.", `<span class="badge warning">compiling</span>`,
		`hx-get="/console/models/keras-sm/versions" hx-trigger="every 2s" hx-swap="outerHTML"`, `&#34;layout&#34;:&#34;NHWC&#34;`,
		`action="/console/models/keras-sm/delete" data-confirm=`)
	v, err := e.svc.ModelVersion(e.ctx, service.Principal{Tenant: e.acme.ID, Role: service.RoleAdmin}, "keras-sm", 1)
	if err != nil || v.Status != storage.ModelCompiling || v.Options.Preprocess == nil || v.Options.Preprocess.Layout != "NHWC" {
		t.Fatalf("stored version %+v, %v", v, err)
	}
	frag := alice.htmx("/console/models/keras-sm/versions")
	if frag.Code != http.StatusOK || !strings.HasPrefix(frag.Body.String(), `<section id="model-versions"`) || !strings.Contains(frag.Body.String(), `hx-trigger="every 2s"`) {
		t.Fatalf("versions fragment: %d\n%s", frag.Code, frag.Body)
	}
	// Another tenant does not see it.
	for _, path := range []string{"/console/models/keras-sm", "/console/models/keras-sm/versions"} {
		if res := gina.get(path); res.Code != http.StatusNotFound {
			t.Errorf("GET %s by another tenant: %d", path, res.Code)
		}
	}
	if res := gina.post("/console/models/keras-sm/delete", nil); res.Code != http.StatusNotFound {
		t.Errorf("delete by another tenant: %d", res.Code)
	}
	// Compiling: it cannot be deleted yet. Failed: the polling stops.
	if res := alice.post("/console/models/keras-sm/delete", nil); res.Code != http.StatusConflict {
		t.Errorf("deleting a compiling model: %d", res.Code)
	}
	if _, err := e.store.MarkModelFailed(e.ctx, e.acme.ID, "keras-sm", 1, "needs 9 levels"); err != nil {
		t.Fatal(err)
	}
	frag = alice.htmx("/console/models/keras-sm/versions")
	if strings.Contains(frag.Body.String(), "hx-get") || !strings.Contains(frag.Body.String(), "needs 9 levels") {
		t.Errorf("the fragment of a failed version:\n%s", frag.Body)
	}
	if res := victor.post("/console/models/keras-sm/delete", nil); res.Code != http.StatusForbidden {
		t.Errorf("a viewer's delete: %d", res.Code)
	}
	doc = alice.followPage(alice.post("/console/models/keras-sm/delete", nil))
	paWant(t, doc, "Model keras-sm is deleted")
	if strings.Contains(doc, "/console/models/keras-sm\"") {
		t.Error("the deleted model is still listed")
	}
}

func TestModelsImportErrors(t *testing.T) {
	t.Parallel()
	const maxFile = 2000
	e := newPAEnv(t, func(c *catalog.Config) { c.MaxSourceBytes = maxFile })
	alice := e.login("acme", e.alice)
	check := func(what string, res *httptest.ResponseRecorder, fields ...string) {
		t.Helper()
		if res.Code != http.StatusUnprocessableEntity {
			t.Fatalf("%s: %d, want 422\n%s", what, res.Code, res.Body)
		}
		doc := res.Body.String()
		lintHTML(t, doc)
		for _, f := range fields {
			id := "import-" + f
			if !strings.Contains(doc, `<p class="field-error" id="`+id+`-error">`) || !regexp.MustCompile(`id="`+id+`"[^>]*aria-describedby="[^"]*`+id+`-error"`).MatchString(doc) {
				t.Errorf("%s: no error next to %s\n%s", what, f, doc)
			}
		}
	}
	check("no name, no file", alice.upload(nil, "-", nil), "name", "file")
	check("no file chosen", alice.upload([][2]string{{"name", "m"}}, "", nil), "file")
	check("bad option", alice.upload([][2]string{{"name", "m"}, {"relu_degree", "99"}, {"margin", "x"}}, "m.onnx", []byte("x")), "margin")
	check("invalid option", alice.upload([][2]string{{"name", "m"}, {"relu_degree", "99"}}, "m.onnx", []byte("x")), "relu-degree")
	check("bad name", alice.upload([][2]string{{"name", "Bad Name"}}, "m.onnx", []byte("x")), "name")
	check("built-in name", alice.upload([][2]string{{"name", "tiny"}}, "m.onnx", []byte("x")), "name")
	check("unknown format", alice.upload([][2]string{{"name", "m"}}, "m.bin", []byte("x")), "format")
	check("not ONNX", alice.upload([][2]string{{"name", "m"}}, "m.onnx", []byte("not a model")), "file")
	// Too large: by the catalog's count, and beyond the request's bound.
	check("too large", alice.upload([][2]string{{"name", "m"}}, "m.onnx", make([]byte, maxFile+1)), "file")
	res := alice.upload([][2]string{{"name", "m"}}, "m.onnx", make([]byte, maxFile+maxFormBytes+1))
	check("far too large", res, "file")
	paWant(t, res.Body.String(), "exceeds 2000 bytes")
	if vs, err := e.store.ListModels(e.ctx, e.acme.ID); err != nil || len(vs) != 0 {
		t.Errorf("refused imports stored %v, %v", vs, err)
	}
	// The values come back, and the options open.
	res = alice.upload([][2]string{{"name", "my-model"}, {"relu_degree", "99"}}, "m.onnx", []byte("x"))
	paWant(t, res.Body.String(), `value="my-model"`, `value="99"`, `<details class="disclosure" open>`)
}

func TestBudgetPage(t *testing.T) {
	t.Parallel()
	e := newPAEnv(t)
	e.paTenantModel("mine")
	alice, victor := e.login("acme", e.alice), e.login("acme", e.victor)

	// Spend on the built-in model's default budget (10 rho a day): 3
	// settled, 1 reserved and refunded, 2 reserved.
	j1 := e.paJob(3 * paRho)
	if _, err := e.store.StartJob(e.ctx, j1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CompleteJob(e.ctx, j1.ID, "out", 1); err != nil {
		t.Fatal(err)
	}
	j2 := e.paJob(paRho)
	if _, err := e.store.FailJob(e.ctx, j2.ID, "no"); err != nil {
		t.Fatal(err)
	}
	e.paJob(2 * paRho)

	doc := alice.page("/console/budget")
	paWant(t, doc, `<a href="/console/budget" aria-current="page">`,
		`<div id="budget-charts" class="panel" hx-get="/console/budget/charts" hx-trigger="every 5s" hx-swap="outerHTML"`,
		`data-chart="burn-tiny-data"`, `data-chart="burn-mine-data"`,
		`<form method="post" action="/console/budget/set"`, `<label for="budget-mine-epsilon">`, `<select id="budget-mine-period" name="period"`,
		`<caption id="ledger-caption">Ledger entries</caption>`, `<span class="badge warning">settle</span>`, `<span class="badge ok">refund</span>`)
	if strings.Contains(doc, `id="budget-tiny-epsilon"`) {
		t.Error("an admin gets a form for a built-in model's budget")
	}
	ci := paIsland(t, doc, "burn-tiny-data")
	if len(ci.Y) < 2 || ci.Y[0] != 10 || ci.Y[len(ci.Y)-1] != 5 || ci.Total != 10 || !ci.Step {
		t.Errorf("burn-down of tiny: %+v", ci)
	}
	for i := 1; i < len(ci.X); i++ {
		if ci.X[i] < ci.X[i-1] {
			t.Errorf("burn-down x not in order: %v", ci.X)
		}
	}

	// The chart region alone, as htmx fetches it; it moves as jobs spend.
	e.paJob(paRho)
	frag := alice.htmx("/console/budget/charts")
	if frag.Code != http.StatusOK || !strings.HasPrefix(frag.Body.String(), `<div id="budget-charts"`) {
		t.Fatalf("charts fragment: %d\n%s", frag.Code, frag.Body)
	}
	if ci := paIsland(t, frag.Body.String(), "burn-tiny-data"); ci.Y[len(ci.Y)-1] != 4 {
		t.Errorf("after one more job, the chart ends at %v", ci.Y)
	}

	// A viewer sees it all but no form, and may not post.
	vdoc := victor.page("/console/budget")
	paWant(t, vdoc, `data-chart="burn-tiny-data"`)
	if forms := postForms(vdoc); len(forms) != 0 {
		t.Errorf("a viewer sees forms: %v", forms)
	}
	set := url.Values{"model": {"mine"}, "epsilon": {"2"}, "delta": {"1e-6"}, "period": {"week"}, "reason": {"pilot"}}
	if res := victor.post("/console/budget/set", set); res.Code != http.StatusForbidden {
		t.Errorf("a viewer's set: %d", res.Code)
	}
	if res := victor.post("/console/budget/delete", url.Values{"model": {"mine"}}); res.Code != http.StatusForbidden {
		t.Errorf("a viewer's delete: %d", res.Code)
	}

	// Bad values: the error next to the field, the values shown again.
	for _, bad := range []string{"abc", "-1"} {
		form := url.Values{"model": {"mine"}, "epsilon": {bad}, "delta": {"1e-6"}, "period": {"week"}, "reason": {"pilot"}}
		res := alice.post("/console/budget/set", form)
		if res.Code != http.StatusUnprocessableEntity {
			t.Fatalf("epsilon %s: %d\n%s", bad, res.Code, res.Body)
		}
		doc := res.Body.String()
		lintHTML(t, doc)
		if !regexp.MustCompile(`id="budget-mine-epsilon"[^>]*value="`+regexp.QuoteMeta(html.EscapeString(bad))+`"[^>]*aria-describedby="budget-mine-epsilon-hint budget-mine-epsilon-error" aria-invalid="true"`).MatchString(doc) ||
			!strings.Contains(doc, `<p class="field-error" id="budget-mine-epsilon-error">`) {
			t.Errorf("epsilon %s: no error next to the field\n%s", bad, doc)
		}
		paWant(t, doc, `value="pilot"`, `<option value="week" selected>`)
	}
	res := alice.post("/console/budget/set", url.Values{"model": {"mine"}, "epsilon": {"2"}, "delta": {"1e-6"}, "period": {"fortnight"}})
	if res.Code != http.StatusUnprocessableEntity || !strings.Contains(res.Body.String(), `id="budget-mine-period-error"`) {
		t.Errorf("bad period: %d\n%s", res.Code, res.Body)
	}
	// An admin may not set a built-in model's budget.
	if res := alice.post("/console/budget/set", url.Values{"model": {"tiny"}, "epsilon": {"2"}, "delta": {"1e-6"}, "period": {"day"}}); res.Code != http.StatusForbidden {
		t.Errorf("set of a built-in's budget: %d", res.Code)
	}

	doc = alice.followPage(alice.post("/console/budget/set", set))
	paWant(t, doc, "The budget of model mine is now epsilon 2, delta 1e-06 per week.", `class="flash flash-ok"`,
		`<span class="badge neutral">set</span>`, `pilot`,
		`action="/console/budget/delete" data-confirm=`)
	if b, err := e.store.GetBudget(e.ctx, e.acme.ID, "mine"); err != nil || b.Period != storage.BudgetWeekly || b.Epsilon != 2 {
		t.Fatalf("stored budget %+v, %v", b, err)
	}
	doc = alice.followPage(alice.post("/console/budget/delete", url.Values{"model": {"mine"}, "reason": {"done"}}))
	paWant(t, doc, "The budget of model mine is deleted")
	if res := alice.post("/console/budget/delete", url.Values{"model": {"mine"}}); res.Code != http.StatusNotFound {
		t.Errorf("deleting a deleted budget: %d", res.Code)
	}
}

func TestBudgetLedgerPaging(t *testing.T) {
	t.Parallel()
	e := newPAEnv(t)
	e.paTenantModel("mine")
	for i := range budgetLedgerPage + 5 {
		if _, err := e.store.AdjustBudget(e.ctx, storage.AdjustBudgetParams{TenantID: e.acme.ID, Model: "mine", Units: 1000, Actor: "cli:test", Reason: fmt.Sprintf("adjust %d", i)}, e.svc.DefaultBudget()); err != nil {
			t.Fatal(err)
		}
	}
	alice := e.login("acme", e.alice)
	doc := alice.page("/console/budget?model=mine")
	m := regexp.MustCompile(`<a class="button" href="(/console/budget\?before=\d+&amp;model=mine#ledger-heading)">Older</a>`).FindStringSubmatch(doc)
	if m == nil {
		t.Fatalf("no Older link\n%s", doc)
	}
	if n := strings.Count(doc, `<span class="badge warning">adjust</span>`); n != budgetLedgerPage {
		t.Errorf("%d entries on the first page", n)
	}
	older := alice.page(strings.TrimSuffix(html.UnescapeString(m[1]), "#ledger-heading"))
	if n := strings.Count(older, `<span class="badge warning">adjust</span>`); n != 5 {
		t.Errorf("%d entries on the second page", n)
	}
	paWant(t, older, "adjust 0", ">Newest</a>")
	if strings.Contains(older, ">Older</a>") {
		t.Error("the last page links to an older one")
	}
	if res := alice.get("/console/budget?before=x"); res.Code != http.StatusBadRequest {
		t.Errorf("a bad cursor: %d", res.Code)
	}
	// The chart of the never-renewing adjusted budget: 55 adjustments
	// of 1000 units from the default's 10 rho.
	ci := paIsland(t, doc, "burn-mine-data")
	if got, want := ci.Y[len(ci.Y)-1], float64(10*paRho-55*1000)/paRho; got != want {
		t.Errorf("burn-down of mine ends at %v, want %v", got, want)
	}
}

func TestKeysetsPage(t *testing.T) {
	t.Parallel()
	e := newPAEnv(t)
	blob, err := e.blobs.Put(e.ctx, strings.NewReader("keys"), 4)
	if err != nil {
		t.Fatal(err)
	}
	id := hegate.KeySetID(strings.Repeat("ab", 32))
	if _, _, err := e.store.PutKeySet(e.ctx, storage.KeySet{ID: id, TenantID: e.acme.ID, Model: "tiny", ParamsID: strings.Repeat("f", 64), SizeBytes: 3_500_000, BlobKey: blob.Key}); err != nil {
		t.Fatal(err)
	}
	alice, victor, gina := e.login("acme", e.alice), e.login("acme", e.victor), e.login("globex", e.gina)
	doc := alice.page("/console/keysets")
	paWant(t, doc, `<code title="`+string(id)+`"><span aria-hidden="true">abababababab…</span><span class="visually-hidden">`+string(id)+`</span></code>`,
		`<td class="num">3.50 MB</td>`, `<a href="/console/models/tiny">tiny</a>`,
		`<form method="post" action="/console/keysets/`+string(id)+`/delete" data-confirm=`)
	vdoc := victor.page("/console/keysets")
	paWant(t, vdoc, string(id))
	if forms := postForms(vdoc); len(forms) != 0 {
		t.Errorf("a viewer sees forms: %v", forms)
	}
	if res := victor.post("/console/keysets/"+string(id)+"/delete", nil); res.Code != http.StatusForbidden {
		t.Errorf("a viewer's delete: %d", res.Code)
	}
	if res := gina.post("/console/keysets/"+string(id)+"/delete", nil); res.Code != http.StatusNotFound {
		t.Errorf("another tenant's delete: %d", res.Code)
	}
	if strings.Contains(gina.page("/console/keysets"), string(id)) {
		t.Error("another tenant lists the key set")
	}
	doc = alice.followPage(alice.post("/console/keysets/"+string(id)+"/delete", nil))
	paWant(t, doc, "Key set abababababab… is deleted", "No device has uploaded keys yet.")
}

func TestIslandEscaping(t *testing.T) {
	t.Parallel()
	tpl, err := ParseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	evil := `</script><script>alert(1)</script><!--`
	data := budgetCharts{Charts: []budgetChart{{
		ID: "burn-x", Model: hegate.ModelID(evil), Heading: "Model " + evil, Summary: evil,
		Spec: chartIsland{Label: "left of " + evil, X: []int64{1, 2}, Y: []float64{1, 0.5}, Step: true},
	}}}
	var buf bytes.Buffer
	if err := tpl.RenderTemplate(&buf, "budget", "charts", data); err != nil {
		t.Fatal(err)
	}
	doc := buf.String()
	if strings.Count(doc, "<script") != 1 || strings.Count(doc, "</script>") != 1 || strings.Contains(doc, "<!--") {
		t.Fatalf("the name broke out:\n%s", doc)
	}
	ci := paIsland(t, doc, "burn-x-data")
	if ci.Label != "left of "+evil || len(ci.X) != 2 || ci.Y[1] != 0.5 {
		t.Errorf("island decodes to %+v", ci)
	}
	lintHTML(t, "<main id=\"main\" ></main>"+doc)
}

func TestBurnDown(t *testing.T) {
	t.Parallel()
	day := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return day.Add(time.Duration(h) * time.Hour) }
	now := at(20)
	prev := day.AddDate(0, 0, -1)
	limit := storage.BudgetLimit{Capacity: 100, Period: storage.BudgetDaily}
	usage := func(spent, reserved int64) storage.BudgetUsage {
		return storage.BudgetUsage{Scope: storage.ScopeTenant, Model: "m", Limit: limit, PeriodStart: day, PeriodEnd: day.AddDate(0, 0, 1), Spent: spent, Reserved: reserved}
	}
	id := int64(1000)
	entry := func(h int, kind string, units int64, period time.Time) storage.LedgerEntry {
		id--
		return storage.LedgerEntry{ID: id, Scope: storage.ScopeTenant, Model: "m", PeriodStart: period, Kind: kind, Units: units, CreatedAt: at(h)}
	}
	global := func(e storage.LedgerEntry) storage.LedgerEntry { e.Scope = storage.ScopeGlobal; return e }
	pts := func(xs ...any) []burnPoint {
		var out []burnPoint
		for i := 0; i < len(xs); i += 2 {
			out = append(out, burnPoint{At: xs[i].(time.Time), Left: int64(xs[i+1].(int))})
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		in        burnInput
		want      []burnPoint
		truncated bool
		from      time.Time
	}{
		{
			name: "nothing this period",
			in:   burnInput{Usage: usage(0, 0), Default: 50, Exhausted: true, Now: now},
			want: pts(day, 100, now, 100),
			from: day,
		},
		{
			name: "reserve, settle, refund, adjust",
			in: burnInput{Usage: usage(35, 20), Default: 50, Now: now, Entries: []storage.LedgerEntry{
				// newest first
				entry(9, storage.LedgerAdjust, 5, day),
				entry(8, storage.LedgerReserve, 20, day),
				entry(7, storage.LedgerRefund, 10, day),
				entry(6, storage.LedgerSettle, 30, day),
				entry(5, storage.LedgerReserve, 10, day),
				entry(4, storage.LedgerReserve, 30, day),
				entry(4, storage.LedgerRenew, 0, day),
				entry(22-24, storage.LedgerSettle, 7, prev),
			}},
			want: pts(day, 100, at(4), 70, at(5), 60, at(7), 70, at(8), 50, at(9), 45, now, 45),
			from: day,
		},
		{
			name: "a job of yesterday settles today into yesterday; the global budget's entries do not count",
			in: burnInput{Usage: usage(10, 0), Default: 50, Exhausted: true, Now: now, Entries: []storage.LedgerEntry{
				entry(6, storage.LedgerSettle, 40, prev),
				global(entry(5, storage.LedgerSettle, 10, day)),
				entry(5, storage.LedgerSettle, 10, day),
				global(entry(2, storage.LedgerReserve, 10, day)),
				entry(2, storage.LedgerReserve, 10, day),
				entry(2, storage.LedgerRenew, 0, day),
			}},
			want: pts(day, 100, at(2), 90, now, 90),
			from: day,
		},
		{
			name: "the budget is set today: before, the capacity of the set before",
			in: burnInput{Usage: usage(10, 0), Default: 50, Now: now, Entries: []storage.LedgerEntry{
				entry(10, storage.LedgerSet, 100, time.Time{}),
				entry(3, storage.LedgerSettle, 10, day),
				entry(2, storage.LedgerReserve, 10, day),
				entry(2, storage.LedgerRenew, 0, day),
				entry(-30, storage.LedgerReserve, 4, prev),
				entry(-40, storage.LedgerSet, 40, time.Time{}),
			}},
			want: pts(day, 40, at(2), 30, at(10), 90, now, 90),
			from: day,
		},
		{
			name: "the budget is set today for the first time: before, the default",
			in: burnInput{Usage: usage(0, 0), Default: 50, Exhausted: true, Now: now, Entries: []storage.LedgerEntry{
				entry(10, storage.LedgerSet, 100, time.Time{}),
			}},
			want: pts(day, 50, at(10), 100, now, 100),
			from: day,
		},
		{
			name: "deleted today: the default after, the set before",
			in: burnInput{Usage: storage.BudgetUsage{Scope: storage.ScopeTenant, Model: "m", Limit: storage.BudgetLimit{Capacity: 50, Period: storage.BudgetDaily}, Default: true, PeriodStart: day, Spent: 10}, Default: 50, Exhausted: true, Now: now, Entries: []storage.LedgerEntry{
				entry(12, storage.LedgerDelete, 0, time.Time{}),
				entry(3, storage.LedgerAdjust, 10, day),
				entry(-50, storage.LedgerSet, 80, time.Time{}),
			}},
			want: pts(day, 80, at(3), 70, at(12), 40, now, 40),
			from: day,
		},
		{
			name: "set today, and what it replaced was not read",
			in: burnInput{Usage: usage(10, 0), Default: 50, Now: now, Entries: []storage.LedgerEntry{
				entry(12, storage.LedgerAdjust, 10, day),
				entry(10, storage.LedgerSet, 100, time.Time{}),
				entry(3, storage.LedgerAdjust, 5, day),
			}},
			want:      pts(at(10), 100, at(12), 90, now, 90),
			truncated: true, from: at(10),
		},
		{
			name: "the reads stopped before the period's start",
			in: burnInput{Usage: usage(30, 0), Default: 50, Now: now, Entries: []storage.LedgerEntry{
				entry(12, storage.LedgerAdjust, 10, day),
				entry(11, storage.LedgerAdjust, 10, day),
			}},
			want:      pts(at(11), 80, at(12), 70, now, 70),
			truncated: true, from: at(11),
		},
		{
			name: "overspent by a lowered capacity: never below 0",
			in: burnInput{Usage: storage.BudgetUsage{Scope: storage.ScopeTenant, Model: "m", Limit: storage.BudgetLimit{Capacity: 20, Period: storage.BudgetDaily}, PeriodStart: day, Spent: 60}, Default: 50, Now: now, Entries: []storage.LedgerEntry{
				entry(12, storage.LedgerSet, 20, time.Time{}),
				entry(3, storage.LedgerAdjust, 60, day),
				entry(-5, storage.LedgerSet, 100, time.Time{}),
			}},
			want: pts(day, 100, at(3), 40, at(12), 0, now, 0),
			from: day,
		},
		{
			name: "a budget that never renews starts at its first entry",
			in: burnInput{Usage: storage.BudgetUsage{Scope: storage.ScopeTenant, Model: "m", Limit: storage.BudgetLimit{Capacity: 100, Period: storage.BudgetNever}, PeriodStart: time.Unix(0, 0).UTC(), Spent: 5}, Default: 50, Exhausted: true, Now: now, Entries: []storage.LedgerEntry{
				entry(6, storage.LedgerSettle, 5, time.Unix(0, 0).UTC()),
				entry(5, storage.LedgerReserve, 5, time.Unix(0, 0).UTC()),
				entry(5, storage.LedgerRenew, 0, time.Unix(0, 0).UTC()),
			}},
			want: pts(at(5), 100, at(5), 95, now, 95),
			from: at(5),
		},
		{
			name: "a budget that never renews, never used",
			in:   burnInput{Usage: storage.BudgetUsage{Scope: storage.ScopeTenant, Model: "m", Limit: storage.BudgetLimit{Capacity: 100, Period: storage.BudgetNever}, PeriodStart: time.Unix(0, 0).UTC()}, Default: 50, Exhausted: true, Now: now},
			want: pts(now.Add(-24*time.Hour), 100, now, 100),
			from: now.Add(-24 * time.Hour),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := burnDown(tc.in)
			if fmt.Sprint(got.Points) != fmt.Sprint(tc.want) {
				t.Errorf("points\n got %v\nwant %v", got.Points, tc.want)
			}
			if got.Truncated != tc.truncated || !got.From.Equal(tc.from) {
				t.Errorf("truncated %v from %v, want %v from %v", got.Truncated, got.From, tc.truncated, tc.from)
			}
		})
	}
}

// In a real browser at phone width (390 px): the overview, models, model,
// budget and key sets pages lay out without sideways scrolling, pass
// axe-core, break no CSP rule, draw their charts, and the budget's
// burn-down moves as a job spends, without a reload. PA_SCREENSHOTS=DIR
// saves a screenshot of each page there.
func TestOverviewModelsBudgetKeysetsInBrowser(t *testing.T) {
	t.Parallel()
	b := browsertest.Start(t)
	e := newPAEnv(t)
	e.paTenantModel("mine")
	j := e.paJob(3 * paRho)
	if _, err := e.store.StartJob(e.ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CompleteJob(e.ctx, j.ID, "out", 1); err != nil {
		t.Fatal(err)
	}
	blob, err := e.blobs.Put(e.ctx, strings.NewReader("keys"), 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.PutKeySet(e.ctx, storage.KeySet{ID: hegate.KeySetID(strings.Repeat("cd", 32)), TenantID: e.acme.ID, Model: "tiny", ParamsID: strings.Repeat("e", 64), SizeBytes: 12_345_678, BlobKey: blob.Key}); err != nil {
		t.Fatal(err)
	}
	ctx, srvURL := e.phoneTab(b)
	shots := os.Getenv("PA_SCREENSHOTS")
	for _, path := range []string{"/console/", "/console/models", "/console/models/tiny", "/console/budget", "/console/keysets"} {
		if err := browsertest.Navigate(ctx, srvURL+path); err != nil {
			t.Fatal(err)
		}
		if err := browsertest.Settle(ctx); err != nil {
			t.Fatal(err)
		}
		if over := browsertest.Eval[int](t, ctx, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); over > 0 {
			t.Errorf("%s: %d px wider than a 390 px screen", path, over)
		}
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('[data-chart]:not([data-chart-drawn])').length`); n > 0 {
			t.Errorf("%s: %d charts not drawn", path, n)
		}
		browsertest.RequireNoSeriousAxe(t, ctx, path)
		if shots != "" {
			name := strings.Trim(strings.ReplaceAll(path, "/", "-"), "-") + ".png"
			if err := browsertest.Screenshot(ctx, filepath.Join(shots, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if shots != "" {
		// The budget form after a refusal, open, with its errors.
		if err := browsertest.Navigate(ctx, srvURL+"/console/budget"); err != nil {
			t.Fatal(err)
		}
		browsertest.Eval[chromedp.Void](t, ctx, `(() => { const f = document.querySelector('form[action="/console/budget/set"]'); f.elements.epsilon.value = '-1'; f.submit(); })()`)
		browsertest.Wait(t, ctx, "the refused form", `!!document.getElementById('budget-mine-epsilon-error')`, 5*time.Second)
		for _, msg := range browsertest.ConsoleErrors(ctx) {
			if !strings.Contains(msg, "422") {
				t.Errorf("the page logged: %s", msg)
			}
		}
		browsertest.RequireNoSeriousAxe(t, ctx, "budget (refused)")
		browsertest.Eval[chromedp.Void](t, ctx, `document.getElementById('budget-mine-epsilon').scrollIntoView()`)
		if err := browsertest.Screenshot(ctx, filepath.Join(shots, "budget-refused.png")); err != nil {
			t.Fatal(err)
		}
		if err := browsertest.Navigate(ctx, srvURL+"/console/models"); err != nil {
			t.Fatal(err)
		}
		browsertest.Eval[chromedp.Void](t, ctx, `document.querySelector('details.disclosure').open = true`)
		if err := browsertest.Screenshot(ctx, filepath.Join(shots, "models-options.png")); err != nil {
			t.Fatal(err)
		}
	}
	// The burn-down of the built-in model follows a new job within a
	// refresh (5 s), and the page is not reloaded.
	if err := browsertest.Navigate(ctx, srvURL+"/console/budget"); err != nil {
		t.Fatal(err)
	}
	browsertest.Eval[chromedp.Void](t, ctx, `window.paNoReload = true`)
	last := `(() => { const y = JSON.parse(document.getElementById('burn-tiny-data').textContent).y; return y[y.length - 1]; })()`
	if y := browsertest.Eval[float64](t, ctx, last); y != 7 {
		t.Fatalf("the chart ends at %v, want 7", y)
	}
	e.paJob(2 * paRho)
	browsertest.Wait(t, ctx, "the burn-down moves", last+` === 5 && window.paNoReload === true && !!document.querySelector('#burn-tiny[data-chart-drawn]')`, 8*time.Second)
}

package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/net/html"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/internal/browsertest"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/service/servicetest"
	"github.com/hegate/hegate/storage"
)

// Tests of the enrollment, jobs, API keys and audit pages, over a real
// console, service and SQLite store (env_test.go). Helpers are prefixed pb.

// pbPassword is the console users' password, servicetest.Password (as
// cookies_test.go and operator_test.go name it).
const pbPassword = servicetest.Password

// newPBEnv builds the console over a rig without built-in models or a
// default budget.
func newPBEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnv(t, servicetest.Config{})
}

// pbTextByID is the text of the element with that id, "" if none.
func pbTextByID(t *testing.T, doc, id string) (string, bool) {
	t.Helper()
	root, err := html.Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	var found *html.Node
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if found != nil {
			return
		}
		if n.Type == html.ElementNode {
			for _, a := range n.Attr {
				if a.Key == "id" && a.Val == id {
					found = n
					return
				}
			}
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch)
		}
	}
	walk(root)
	if found == nil {
		return "", false
	}
	var b strings.Builder
	var text func(n *html.Node)
	text = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			text(ch)
		}
	}
	text(found)
	return strings.TrimSpace(b.String()), true
}

// pbJob makes a queued job through the store (the service makes jobs
// only from real ciphertexts).
func (e *testEnv) pbJob(tenant hegate.TenantID, model string) storage.Job {
	e.t.Helper()
	j, _, err := e.store.CreateJob(e.ctx, storage.CreateJobParams{TenantID: tenant, Model: hegate.ModelID(model), KeySetID: "ks-test", InputBlob: "in-test", InputBytes: 1234})
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

// pbFinish runs a queued job to success, as a worker does.
func (e *testEnv) pbFinish(id hegate.JobID) {
	e.t.Helper()
	if _, err := e.store.StartJob(e.ctx, id); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.CompleteJob(e.ctx, id, "out-test", 99); err != nil {
		e.t.Fatal(err)
	}
}

func TestEnrollmentJobsAPIKeysAuditPagesRender(t *testing.T) {
	t.Parallel()
	e := newPBEnv(t)
	job := e.pbJob(e.acme.ID, "tiny")
	admin := e.login("acme", e.alice)
	viewer := e.login("acme", e.victor)
	pages := []struct {
		path, active string
		forms        []string // what the admin may post to
	}{
		{"/console/enrollment", "enrollment", []string{"/console/enrollment/policy", "/console/enrollment/doc"}},
		{"/console/jobs", "jobs", nil},
		{"/console/jobs/" + string(job.ID), "jobs", []string{"/console/jobs/" + string(job.ID) + "/cancel"}},
		{"/console/apikeys", "apikeys", []string{"/console/apikeys", "/console/apikeys/"}},
		{"/console/audit", "audit", nil},
	}
	for _, pg := range pages {
		t.Run(strings.TrimPrefix(pg.path, "/console/"), func(t *testing.T) {
			for _, who := range []struct {
				name string
				c    *testClient
			}{{"admin", admin}, {"viewer", viewer}} {
				doc := who.c.page(pg.path)
				if !regexp.MustCompile(`<a href="/console/` + pg.active + `" aria-current="page">`).MatchString(doc) {
					t.Errorf("%s %s: the navigation does not mark %s", who.name, pg.path, pg.active)
				}
				forms := postForms(doc)
				if who.name == "viewer" && len(forms) > 0 {
					t.Errorf("viewer %s: forms %v", pg.path, forms)
				}
				if who.name == "admin" {
					for _, want := range pg.forms {
						ok := false
						for _, f := range forms {
							ok = ok || strings.HasPrefix(f, want)
						}
						if !ok {
							t.Errorf("admin %s: no form posting to %s (forms %v)", pg.path, want, forms)
						}
					}
				}
				if !strings.Contains(doc, `<div class="table-wrap"`) && pg.path != "/console/jobs/"+string(job.ID) {
					t.Errorf("%s %s: no table", who.name, pg.path)
				}
			}
		})
	}
}

func TestEnrollmentJobsAPIKeysAuditViewerCannotChange(t *testing.T) {
	t.Parallel()
	e := newPBEnv(t)
	job := e.pbJob(e.acme.ID, "tiny")
	key, _, err := e.svc.CreateAPIKey(e.ctx, e.principal(e.alice), service.CreateAPIKeyParams{Name: "ci", Role: service.RoleClient})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SetPolicy(e.ctx, e.principal(e.alice), "tiny", []byte(`{"allow_api_key":true,"formats":["tpm"],"statuses":["affirming"]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SetAttestationDoc(e.ctx, e.principal(e.alice), service.TrustAnchorDoc{Format: attest.FormatNative, Kind: storage.DocEndorsements}, []byte(`{"keys":[]}`)); err != nil {
		t.Fatal(err)
	}
	viewer := e.login("acme", e.victor)
	for _, tc := range []struct {
		path string
		form url.Values
	}{
		{"/console/enrollment/policy", url.Values{"model": {""}, "formats": {"tpm"}, "statuses": {"affirming"}}},
		{"/console/enrollment/policy", url.Values{"model": {"tiny"}, "formats": {"psa"}, "statuses": {"warning"}, "allow_api_key": {"true"}}},
		{"/console/enrollment/policy/delete", url.Values{"model": {"tiny"}}},
		{"/console/enrollment/doc", url.Values{"format": {"native"}, "kind": {"endorsements"}, "document": {`{"keys":[]}`}}},
		{"/console/enrollment/doc/delete", url.Values{"format": {"native"}, "kind": {"endorsements"}}},
		{"/console/jobs/" + string(job.ID) + "/cancel", nil},
		{"/console/apikeys", url.Values{"name": {"sneaky"}, "role": {"admin"}}},
		{"/console/apikeys/" + string(key.ID) + "/revoke", nil},
	} {
		res := viewer.post(tc.path, tc.form)
		if res.Code != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403\n%s", tc.path, res.Code, res.Body)
		}
	}
	// Nothing changed.
	if j, err := e.svc.GetJob(e.ctx, e.principal(e.alice), job.ID); err != nil || j.Status != storage.JobQueued {
		t.Errorf("job: %v %v", j.Status, err)
	}
	keys, _ := e.svc.ListAPIKeys(e.ctx, e.principal(e.alice))
	for _, k := range keys {
		if k.Name == "sneaky" || (k.ID == key.ID && k.RevokedAt != nil) {
			t.Errorf("key %+v", k)
		}
	}
	if _, err := e.svc.GetAttestationDoc(e.ctx, e.principal(e.alice), service.TrustAnchorDoc{Format: attest.FormatNative, Kind: storage.DocEndorsements}); err != nil {
		t.Errorf("the document is gone: %v", err)
	}
	// And the refusals are in the audit log, which the viewer may read.
	doc := viewer.page("/console/audit?" + url.Values{"actor": {"user:" + string(e.victor.ID)}}.Encode())
	for _, action := range []string{"policy.set", "policy.delete", "attestation.set", "attestation.delete", "job.cancel", "apikey.create", "apikey.revoke"} {
		if !strings.Contains(doc, "<code>"+action+"</code>") {
			t.Errorf("audit lacks the refused %s", action)
		}
	}
	if !strings.Contains(doc, `<span class="badge warning">denied</span>`) {
		t.Error("no denied badge")
	}
}

func TestJobsAndAPIKeysOfAnotherTenantAreNotFound(t *testing.T) {
	t.Parallel()
	e := newPBEnv(t)
	bJob := e.pbJob(e.globex.ID, "tiny")
	bKey, _, err := e.svc.CreateAPIKey(e.ctx, e.principal(e.gina), service.CreateAPIKeyParams{Name: "globex-ci", Role: service.RoleClient})
	if err != nil {
		t.Fatal(err)
	}
	aJob := e.pbJob(e.acme.ID, "tiny")
	admin := e.login("acme", e.alice)
	for _, path := range []string{"/console/jobs/" + string(bJob.ID), "/console/jobs/" + string(bJob.ID) + "/panel"} {
		if res := admin.get(path); res.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.Code)
		}
	}
	if res := admin.post("/console/jobs/"+string(bJob.ID)+"/cancel", nil); res.Code != http.StatusNotFound {
		t.Errorf("cancel B's job: %d, want 404", res.Code)
	}
	if res := admin.post("/console/apikeys/"+string(bKey.ID)+"/revoke", nil); res.Code != http.StatusNotFound {
		t.Errorf("revoke B's key: %d, want 404", res.Code)
	}
	if j, err := e.svc.GetJob(e.ctx, e.principal(e.gina), bJob.ID); err != nil || j.Status != storage.JobQueued {
		t.Errorf("B's job: %v %v", j.Status, err)
	}
	keys, err := e.svc.ListAPIKeys(e.ctx, e.principal(e.gina))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.ID == bKey.ID && k.RevokedAt != nil {
			t.Error("A's admin revoked B's key")
		}
	}
	// Neither listing shows B's objects.
	jobs := admin.page("/console/jobs")
	if !strings.Contains(jobs, string(aJob.ID)) || strings.Contains(jobs, string(bJob.ID)) {
		t.Error("the jobs page shows the wrong tenant's jobs")
	}
	if frag := admin.htmx("/console/jobs/table").Body.String(); strings.Contains(frag, string(bJob.ID)) {
		t.Error("the jobs table shows B's job")
	}
	if strings.Contains(admin.page("/console/apikeys"), string(bKey.ID)) {
		t.Error("the API keys page shows B's key")
	}
}

var pbSecretPattern = regexp.MustCompile(`hgk_[A-Za-z0-9_-]{43}`)

func TestAPIKeysSecretShownOnce(t *testing.T) {
	t.Parallel()
	e := newPBEnv(t)
	admin := e.login("acme", e.alice)
	res := admin.post("/console/apikeys", url.Values{"name": {"build server"}, "role": {"client"}})
	if res.Code != http.StatusOK {
		t.Fatalf("create: %d\n%s", res.Code, res.Body)
	}
	doc := res.Body.String()
	lintHTML(t, doc)
	if cc := res.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if loc := res.Header().Get("Location"); loc != "" {
		t.Errorf("Location %q: the answer is the page itself", loc)
	}
	secret, ok := pbTextByID(t, doc, "new-key-secret")
	if !ok || !service.WellFormedAPIKey(secret) {
		t.Fatalf("no secret in #new-key-secret: %q", secret)
	}
	for _, want := range []string{`data-copy="new-key-secret"`, "only this once", "This is the only time it is shown"} {
		if !strings.Contains(doc, want) {
			t.Errorf("the answer lacks %q", want)
		}
	}
	for _, vs := range res.Header() {
		for _, v := range vs {
			if strings.Contains(v, secret) {
				t.Errorf("a header holds the secret: %s", v)
			}
		}
	}
	// The key is listed by its prefix, and the secret is in no later page.
	keys, err := e.svc.ListAPIKeys(e.ctx, e.principal(e.alice))
	if err != nil {
		t.Fatal(err)
	}
	var key storage.APIKey
	for _, k := range keys {
		if k.Name == "build server" {
			key = k
		}
	}
	if key.ID == "" || !strings.HasPrefix(secret, key.Prefix) {
		t.Fatalf("no key build server with the secret's prefix: %+v", keys)
	}
	for _, path := range []string{"/console/apikeys", "/console/audit"} {
		later := admin.page(path)
		if strings.Contains(later, secret) || pbSecretPattern.MatchString(later) {
			t.Errorf("GET %s shows the secret again", path)
		}
		if path == "/console/apikeys" && !strings.Contains(later, string(key.ID)) {
			t.Errorf("the key %s is not listed", key.ID)
		}
	}
	// The secret is an API credential only: it logs nobody in.
	for _, path := range []string{"/console/apikeys", "/console/audit", "/console/jobs", "/console/enrollment"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		w := httptest.NewRecorder()
		e.handler.ServeHTTP(w, req)
		if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/console/login") {
			t.Errorf("GET %s with the key as bearer: %d %s, want a redirect to login", path, w.Code, w.Header().Get("Location"))
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/console/apikeys", strings.NewReader("name=x&role=admin"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+secret)
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, req)
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/console/login") {
		t.Errorf("POST with the key as bearer: %d, want a redirect to login", w.Code)
	}

	// Revoking it (confirmed in the browser) shows it revoked, with a flash.
	form := regexp.MustCompile(`<form method="post" action="/console/apikeys/` + string(key.ID) + `/revoke" data-confirm="[^"]+"`)
	if !form.MatchString(admin.page("/console/apikeys")) {
		t.Error("no revoke form with data-confirm")
	}
	after := admin.follow(admin.post("/console/apikeys/"+string(key.ID)+"/revoke", nil))
	if after.Code != http.StatusOK || !strings.Contains(after.Body.String(), "is revoked") || !strings.Contains(after.Body.String(), `<span class="badge danger">revoked</span>`) {
		t.Errorf("after revoking: %d\n%s", after.Code, after.Body)
	}
}

func TestAPIKeysFieldErrors(t *testing.T) {
	t.Parallel()
	e := newPBEnv(t)
	admin := e.login("acme", e.alice)
	for _, tc := range []struct {
		form  url.Values
		field string
		input string
	}{
		{url.Values{"name": {""}, "role": {"client"}}, "name", `id="apikey-name"`},
		{url.Values{"name": {"ok"}, "role": {"root"}}, "role", `id="apikey-role"`},
	} {
		res := admin.post("/console/apikeys", tc.form)
		if res.Code != http.StatusUnprocessableEntity {
			t.Errorf("%v: %d, want 422", tc.form, res.Code)
			continue
		}
		doc := res.Body.String()
		lintHTML(t, doc)
		_, _, err := e.svc.CreateAPIKey(e.ctx, e.principal(e.alice), service.CreateAPIKeyParams{Name: tc.form.Get("name"), Role: tc.form.Get("role")})
		want, _ := fieldErrors(err)
		got, ok := pbTextByID(t, doc, "apikey-"+tc.field+"-error")
		if !ok || got != want[tc.field] || got == "" {
			t.Errorf("%s error %q, want the service's %q", tc.field, got, want[tc.field])
		}
		if !regexp.MustCompile(tc.input + `[^>]*aria-describedby="[^"]*apikey-` + tc.field + `-error"`).MatchString(doc) {
			t.Errorf("the %s field is not described by its error", tc.field)
		}
		if pbSecretPattern.MatchString(doc) {
			t.Error("a refused create shows a secret")
		}
	}
}

func TestEnrollmentInvalidPolicyAndDocShowTheServiceError(t *testing.T) {
	t.Parallel()
	e := newPBEnv(t)
	admin := e.login("acme", e.alice)

	// A status no policy may accept (a crafted form: the page offers none).
	res := admin.post("/console/enrollment/policy", url.Values{"model": {""}, "formats": {"tpm"}, "statuses": {"contraindicated"}})
	if res.Code != http.StatusUnprocessableEntity {
		t.Fatalf("bad policy: %d\n%s", res.Code, res.Body)
	}
	doc := res.Body.String()
	lintHTML(t, doc)
	_, perr := attest.ParsePolicy([]byte(`{"allow_api_key":false,"formats":["tpm"],"statuses":["contraindicated"]}`))
	if got, _ := pbTextByID(t, doc, "policy-error"); got != perr.Error() {
		t.Errorf("policy error %q, want the service's %q", got, perr.Error())
	}
	if !strings.Contains(doc, `aria-describedby="policy-error"`) {
		t.Error("the choices are not described by the error")
	}
	if !regexp.MustCompile(`id="policy-format-tpm" name="formats" value="tpm" checked`).MatchString(doc) {
		t.Error("the form does not keep what was posted")
	}
	// A model name that is no model name.
	res = admin.post("/console/enrollment/policy", url.Values{"model": {"Bad Model!"}, "formats": {"tpm"}, "statuses": {"affirming"}})
	if res.Code != http.StatusUnprocessableEntity {
		t.Fatalf("bad model: %d", res.Code)
	}
	if got, _ := pbTextByID(t, res.Body.String(), "policy-model-error"); !strings.Contains(got, "Bad Model!") {
		t.Errorf("model error %q", got)
	}

	// A document the service refuses: its error is next to the textarea,
	// which keeps the draft and stays open.
	bad := `{"keys": [{"id": "zz", "public_key": "x"}]}`
	res = admin.post("/console/enrollment/doc", url.Values{"format": {"native"}, "kind": {"endorsements"}, "document": {bad}})
	if res.Code != http.StatusUnprocessableEntity {
		t.Fatalf("bad document: %d\n%s", res.Code, res.Body)
	}
	doc = res.Body.String()
	lintHTML(t, doc)
	_, derr := attest.ParseEndorsements([]byte(bad))
	if got, _ := pbTextByID(t, doc, "doc-native-endorsements-error"); got != derr.Error() {
		t.Errorf("document error %q, want the service's %q", got, derr.Error())
	}
	if got, _ := pbTextByID(t, doc, "doc-native-endorsements-document"); got != bad {
		t.Errorf("the textarea holds %q, want the draft", got)
	}
	if !regexp.MustCompile(`aria-describedby="doc-native-endorsements-hint doc-native-endorsements-error" aria-invalid="true"`).MatchString(doc) {
		t.Error("the textarea is not described by its error")
	}
	if !strings.Contains(doc, `<details class="doc-edit" open>`) {
		t.Error("the refused form is not open")
	}
	if _, err := e.svc.GetAttestationDoc(e.ctx, e.principal(e.alice), service.TrustAnchorDoc{Format: attest.FormatNative, Kind: storage.DocEndorsements}); hegate.KindOf(err) != hegate.KindNotFound {
		t.Errorf("a refused document was stored: %v", err)
	}
	res = admin.post("/console/enrollment/doc", url.Values{"format": {"sgx"}, "kind": {"endorsements"}, "document": {"{}"}})
	if res.Code != http.StatusNotFound {
		t.Errorf("unknown format: %d, want 404", res.Code)
	}
}

func TestEnrollmentPolicyAndDocs(t *testing.T) {
	t.Parallel()
	e := newPBEnv(t)
	admin := e.login("acme", e.alice)
	doc := admin.page("/console/enrollment")
	if !strings.Contains(doc, `<span class="badge neutral">built-in</span>`) {
		t.Error("the built-in default is not told")
	}
	// The tenant default: devices only, tpm and native, affirming.
	res := admin.post("/console/enrollment/policy", url.Values{"model": {""}, "formats": {"tpm", "native"}, "statuses": {"affirming"}})
	page := admin.follow(res).Body.String()
	if !strings.Contains(page, "The policy of the tenant&#39;s default is saved") {
		t.Errorf("no flash after saving:\n%s", page)
	}
	pol, _, set, err := e.svc.Policy(e.ctx, e.principal(e.alice), "")
	if err != nil || !set || pol.AllowAPIKey || len(pol.Formats) != 2 || len(pol.Statuses) != 1 {
		t.Errorf("default policy %+v set %v err %v", pol, set, err)
	}
	// A model's own: API keys too.
	admin.follow(admin.post("/console/enrollment/policy", url.Values{"model": {"tiny"}, "formats": {"psa"}, "statuses": {"affirming", "warning"}, "allow_api_key": {"true"}}))
	pol, sp, set, err := e.svc.Policy(e.ctx, e.principal(e.alice), "tiny")
	if err != nil || !set || sp.Model != "tiny" || !pol.AllowAPIKey {
		t.Errorf("tiny policy %+v %+v set %v err %v", pol, sp, set, err)
	}
	doc = admin.page("/console/enrollment")
	for _, want := range []string{`Model <code>tiny</code>`, `<td>psa</td>`, `<td>affirming, warning</td>`, `<td>tpm, native</td>`, `action="/console/enrollment/policy/delete" data-confirm=`, `href="/console/enrollment?model=tiny#policy-form"`} {
		if !strings.Contains(doc, want) {
			t.Errorf("enrollment page lacks %s", want)
		}
	}
	// Edit fills the form with that model's policy.
	edit := admin.page("/console/enrollment?model=tiny")
	for _, want := range []string{`id="policy-model" name="model" type="text" value="tiny"`, `value="psa" checked`, `value="warning" checked`, `name="allow_api_key" value="true" checked`} {
		if !strings.Contains(edit, want) {
			t.Errorf("edit form lacks %s", want)
		}
	}
	if strings.Contains(edit, `value="tpm" checked`) {
		t.Error("edit form checks tpm")
	}
	// Delete it.
	after := admin.follow(admin.post("/console/enrollment/policy/delete", url.Values{"model": {"tiny"}})).Body.String()
	if strings.Contains(after, `Model <code>tiny</code>`) || !strings.Contains(after, "is deleted") {
		t.Error("the model's policy is still listed")
	}

	// Trust anchors: set, shown indented, replaced, deleted.
	rv := `{"measurements":{"app":["` + strings.Repeat("ab", 32) + `"]}}`
	admin.follow(admin.post("/console/enrollment/doc", url.Values{"format": {"native"}, "kind": {"reference-values"}, "document": {rv}}))
	doc = admin.page("/console/enrollment")
	if !strings.Contains(doc, "{\n  &#34;measurements&#34;: {\n    &#34;app&#34;: [") {
		t.Error("the document is not shown indented")
	}
	if !strings.Contains(doc, `action="/console/enrollment/doc/delete" data-confirm="Delete the native reference values?`) {
		t.Error("no delete form with data-confirm")
	}
	if _, err := e.svc.GetAttestationDoc(e.ctx, e.principal(e.alice), service.TrustAnchorDoc{Format: attest.FormatNative, Kind: storage.DocReferenceValues}); err != nil {
		t.Fatal(err)
	}
	admin.follow(admin.post("/console/enrollment/doc/delete", url.Values{"format": {"native"}, "kind": {"reference-values"}}))
	if _, err := e.svc.GetAttestationDoc(e.ctx, e.principal(e.alice), service.TrustAnchorDoc{Format: attest.FormatNative, Kind: storage.DocReferenceValues}); hegate.KindOf(err) != hegate.KindNotFound {
		t.Errorf("after delete: %v", err)
	}
}

func TestJobsTableFragmentAndLiveStatus(t *testing.T) {
	t.Parallel()
	e := newPBEnv(t)
	admin := e.login("acme", e.alice)
	alpha := e.pbJob(e.acme.ID, "alpha")
	beta := e.pbJob(e.acme.ID, "beta")
	e.pbFinish(beta.ID)

	// The page carries the filter into the fragment's URL.
	doc := admin.page("/console/jobs?status=succeeded")
	if !strings.Contains(doc, `hx-get="/console/jobs/table?status=succeeded" hx-trigger="every 2s" hx-swap="outerHTML"`) {
		t.Errorf("the jobs page does not poll its filtered table:\n%s", doc)
	}
	if !strings.Contains(doc, `<option value="succeeded" selected>`) {
		t.Error("the filter form does not keep the status")
	}
	for _, tc := range []struct {
		query      string
		want, dont []hegate.JobID
	}{
		{"", []hegate.JobID{alpha.ID, beta.ID}, nil},
		{"?status=succeeded", []hegate.JobID{beta.ID}, []hegate.JobID{alpha.ID}},
		{"?status=queued", []hegate.JobID{alpha.ID}, []hegate.JobID{beta.ID}},
		{"?model=alpha", []hegate.JobID{alpha.ID}, []hegate.JobID{beta.ID}},
		{"?model=beta&status=queued", nil, []hegate.JobID{alpha.ID, beta.ID}},
	} {
		res := admin.htmx("/console/jobs/table" + tc.query)
		if res.Code != http.StatusOK {
			t.Fatalf("fragment %s: %d", tc.query, res.Code)
		}
		frag := res.Body.String()
		if !strings.HasPrefix(strings.TrimSpace(frag), `<div id="jobs-live"`) || strings.Contains(frag, "<html") {
			t.Errorf("fragment %s is not the table alone:\n%s", tc.query, frag)
		}
		for _, id := range tc.want {
			if !strings.Contains(frag, string(id)) {
				t.Errorf("fragment %s lacks %s", tc.query, id)
			}
		}
		for _, id := range tc.dont {
			if strings.Contains(frag, string(id)) {
				t.Errorf("fragment %s shows %s", tc.query, id)
			}
		}
		self := "/console/jobs/table"
		if tc.query != "" {
			self += "?" + must(url.ParseQuery(tc.query[1:])).Encode()
		}
		self = strings.ReplaceAll(self, "&", "&amp;")
		if !strings.Contains(frag, `hx-get="`+self+`"`) {
			t.Errorf("fragment %s does not poll itself (%s):\n%s", tc.query, self, frag)
		}
	}
	// A refused filter: next to its field on the page, 400 for the fragment.
	res := admin.get("/console/jobs?status=bogus")
	if res.Code != http.StatusUnprocessableEntity {
		t.Errorf("bad status filter: %d", res.Code)
	}
	if got, _ := pbTextByID(t, res.Body.String(), "jobs-status-error"); !strings.Contains(got, "bogus") {
		t.Errorf("status error %q", got)
	}
	if res := admin.htmx("/console/jobs/table?status=bogus"); res.Code != http.StatusBadRequest {
		t.Errorf("bad status filter of the fragment: %d", res.Code)
	}

	// Live: the queued job turns succeeded in the next poll.
	frag := admin.htmx("/console/jobs/table").Body.String()
	if !strings.Contains(frag, `<span class="badge neutral">queued</span>`) {
		t.Fatalf("no queued job:\n%s", frag)
	}
	jobPage := admin.page("/console/jobs/" + string(alpha.ID))
	if !strings.Contains(jobPage, `hx-get="/console/jobs/`+string(alpha.ID)+`/panel" hx-trigger="every 2s"`) {
		t.Error("the page of a queued job does not poll")
	}
	if !strings.Contains(jobPage, `<span class="badge neutral">queued</span>`) {
		t.Error("the job page does not show queued")
	}
	e.pbFinish(alpha.ID)
	frag = admin.htmx("/console/jobs/table").Body.String()
	if strings.Contains(frag, "queued") || strings.Count(frag, `<span class="badge ok">succeeded</span>`) != 2 {
		t.Errorf("after the job finished:\n%s", frag)
	}
	panel := admin.htmx("/console/jobs/" + string(alpha.ID) + "/panel").Body.String()
	if !strings.Contains(panel, `<span class="badge ok">succeeded</span>`) || strings.Contains(panel, "hx-trigger") || strings.Contains(panel, "<html") {
		t.Errorf("the panel of a finished job:\n%s", panel)
	}
	if !strings.Contains(panel, `<div id="job-actions" hx-swap-oob="true"></div>`) {
		t.Error("the panel does not remove the cancel form")
	}
	if strings.Contains(admin.page("/console/jobs/"+string(alpha.ID)), "hx-trigger") {
		t.Error("the page of a finished job still polls")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestJobsPagingAndCancel(t *testing.T) {
	t.Parallel()
	e := newPBEnv(t)
	admin := e.login("acme", e.alice)
	var first storage.Job
	for i := range jobsPageSize + 3 {
		j := e.pbJob(e.acme.ID, "tiny")
		if i == 0 {
			first = j
		}
	}
	doc := admin.page("/console/jobs?model=tiny")
	if n := strings.Count(doc, `<a id="job-link-`); n != jobsPageSize {
		t.Errorf("%d jobs on the first page, want %d", n, jobsPageSize)
	}
	m := regexp.MustCompile(`<a class="button" href="(/console/jobs\?[^"]*)" rel="next">Older</a>`).FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("no Older link")
	}
	older := strings.ReplaceAll(m[1], "&amp;", "&")
	if !strings.Contains(older, "model=tiny") || !strings.Contains(older, "before=") {
		t.Errorf("the Older link %s does not keep the filter", older)
	}
	doc = admin.page(older)
	if n := strings.Count(doc, `<a id="job-link-`); n != 3 {
		t.Errorf("%d jobs on the second page, want 3", n)
	}
	if !strings.Contains(doc, string(first.ID)) || strings.Contains(doc, `rel="next"`) || !strings.Contains(doc, `>Newest</a>`) {
		t.Error("the second page is wrong")
	}

	// Cancel a queued job.
	jp := admin.page("/console/jobs/" + string(first.ID))
	if !strings.Contains(jp, `<form method="post" action="/console/jobs/`+string(first.ID)+`/cancel" data-confirm=`) {
		t.Fatal("no cancel form with data-confirm")
	}
	after := admin.follow(admin.post("/console/jobs/"+string(first.ID)+"/cancel", nil))
	body := after.Body.String()
	if after.Code != http.StatusOK || !strings.Contains(body, "is cancelled") || !strings.Contains(body, `<span class="badge neutral">cancelled</span>`) {
		t.Errorf("after cancel: %d\n%s", after.Code, body)
	}
	if strings.Contains(body, `/cancel"`) || strings.Contains(body, "hx-trigger") {
		t.Error("a cancelled job still has a cancel form or polls")
	}
	if res := admin.post("/console/jobs/"+string(first.ID)+"/cancel", nil); res.Code != http.StatusConflict {
		t.Errorf("cancelling twice: %d, want 409", res.Code)
	}
	if res := admin.get("/console/jobs/no-such-job"); res.Code != http.StatusNotFound {
		t.Errorf("unknown job: %d", res.Code)
	}
}

func TestAuditShowsEveryChange(t *testing.T) {
	t.Parallel()
	e := newPBEnv(t)
	admin := e.login("acme", e.alice)
	job := e.pbJob(e.acme.ID, "tiny")
	post := func(path string, form url.Values) {
		t.Helper()
		if res := admin.post(path, form); res.Code != http.StatusSeeOther && res.Code != http.StatusOK {
			t.Fatalf("POST %s: %d\n%s", path, res.Code, res.Body)
		}
	}
	post("/console/enrollment/policy", url.Values{"model": {""}, "formats": {"tpm"}, "statuses": {"affirming"}})
	post("/console/enrollment/policy", url.Values{"model": {"tiny"}, "formats": {"psa"}, "statuses": {"affirming"}})
	post("/console/enrollment/policy/delete", url.Values{"model": {"tiny"}})
	post("/console/enrollment/doc", url.Values{"format": {"tpm"}, "kind": {"endorsements"}, "document": {`{"keys": []}`}})
	post("/console/enrollment/doc/delete", url.Values{"format": {"tpm"}, "kind": {"endorsements"}})
	post("/console/apikeys", url.Values{"name": {"ci"}, "role": {"admin"}})
	keys, _ := e.svc.ListAPIKeys(e.ctx, e.principal(e.alice))
	var ci hegate.APIKeyID
	for _, k := range keys {
		if k.Name == "ci" {
			ci = k.ID
		}
	}
	post("/console/apikeys/"+string(ci)+"/revoke", nil)
	post("/console/jobs/"+string(job.ID)+"/cancel", nil)

	actor := "user:" + string(e.alice.ID)
	doc := admin.page("/console/audit")
	for _, ev := range []struct{ action, object string }{
		{"policy.set", "policy:default"}, {"policy.set", "policy:tiny"}, {"policy.delete", "policy:tiny"},
		{"attestation.set", "tpm/endorsements"}, {"attestation.delete", "tpm/endorsements"},
		{"apikey.create", string(ci)}, {"apikey.revoke", string(ci)}, {"job.cancel", string(job.ID)},
		{"user.login", string(e.alice.ID)},
	} {
		row := regexp.MustCompile(`<td class="audit-id">alice<br><a href="[^"]*"><code>` + regexp.QuoteMeta(actor) + `</code>.*?</td>\s*<td><code>` + regexp.QuoteMeta(ev.action) + `</code></td>\s*<td class="audit-id"><code>` + regexp.QuoteMeta(ev.object) + `</code></td>\s*<td><span class="badge ok">ok</span></td>`)
		if !row.MatchString(doc) {
			t.Errorf("the audit page has no row %s %s %s", actor, ev.action, ev.object)
		}
	}
	if !strings.Contains(doc, `<details class="audit-detail">`) || !strings.Contains(doc, "&#34;prefix&#34;") {
		t.Error("no detail JSON in a <details>")
	}
	if pbSecretPattern.MatchString(doc) {
		t.Error("the audit page shows a secret")
	}
	// The filters: an action prefix, an actor.
	doc = admin.page("/console/audit?action=apikey.")
	if !strings.Contains(doc, "<code>apikey.create</code>") || strings.Contains(doc, "<code>policy.set</code>") || strings.Contains(doc, "<code>user.login</code>") {
		t.Error("the action filter does not filter")
	}
	if !strings.Contains(doc, `id="audit-action" name="action" type="text" value="apikey."`) {
		t.Error("the filter form does not keep the action")
	}
	doc = admin.page("/console/audit?" + url.Values{"actor": {"user:nobody"}}.Encode())
	if strings.Contains(doc, "<code>policy.set</code>") || !strings.Contains(doc, "No event matches the filter.") {
		t.Error("the actor filter does not filter")
	}
	// Another tenant's log does not show acme's events.
	gina := e.login("globex", e.gina)
	if strings.Contains(gina.page("/console/audit"), actor) {
		t.Error("globex sees acme's audit events")
	}
	if res := admin.get("/console/audit?before=x"); res.Code != http.StatusBadRequest {
		t.Errorf("bad cursor: %d", res.Code)
	}
}

func TestAuditPaging(t *testing.T) {
	t.Parallel()
	e := newPBEnv(t)
	p := e.principal(e.alice)
	for range auditPageSize + 5 {
		if _, err := e.svc.SetPolicy(e.ctx, p, "tiny", []byte(`{"allow_api_key":true,"formats":[],"statuses":[]}`)); err != nil {
			t.Fatal(err)
		}
	}
	admin := e.login("acme", e.alice) // one more event: user.login
	doc := admin.page("/console/audit?action=policy.")
	if n := strings.Count(doc, "<code>policy.set</code>"); n != auditPageSize {
		t.Errorf("%d events on the first page, want %d", n, auditPageSize)
	}
	m := regexp.MustCompile(`<a class="button" href="(/console/audit\?[^"]*)" rel="next">Older</a>`).FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("no Older link")
	}
	older := strings.ReplaceAll(m[1], "&amp;", "&")
	if !strings.Contains(older, "action=policy.") {
		t.Errorf("the Older link %s drops the filter", older)
	}
	doc = admin.page(older)
	if n := strings.Count(doc, "<code>policy.set</code>"); n != 5 {
		t.Errorf("%d events on the second page, want 5", n)
	}
	if strings.Contains(doc, `rel="next"`) || !strings.Contains(doc, `href="/console/audit?action=policy.">Newest</a>`) {
		t.Error("the last page has an Older link or no Newest one")
	}
}

// In a real browser at phone width (390 px): the pages lay out without
// sideways scrolling, pass axe-core, break no CSP rule, and the jobs table
// and a job's page turn a queued job succeeded without a reload.
func TestEnrollmentJobsAPIKeysAuditInBrowser(t *testing.T) {
	t.Parallel()
	b := browsertest.Start(t)
	e := newPBEnv(t)
	queued := e.pbJob(e.acme.ID, "tiny")
	done := e.pbJob(e.acme.ID, "tiny")
	e.pbFinish(done.ID)
	if _, err := e.svc.SetAttestationDoc(e.ctx, e.principal(e.alice), service.TrustAnchorDoc{Format: attest.FormatNative, Kind: storage.DocReferenceValues},
		[]byte(`{"measurements":{"app":["`+strings.Repeat("ab", 32)+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	ctx, srvURL := e.phoneTab(b)

	for _, path := range []string{"/console/enrollment", "/console/jobs", "/console/jobs/" + string(queued.ID), "/console/apikeys", "/console/audit"} {
		if err := browsertest.Navigate(ctx, srvURL+path); err != nil {
			t.Fatal(err)
		}
		if p := browsertest.Eval[string](t, ctx, `location.pathname`); p != path {
			t.Fatalf("at %s, want %s", p, path)
		}
		if over := browsertest.Eval[int](t, ctx, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); over > 0 {
			t.Errorf("%s: %d px wider than a 390 px screen", path, over)
		}
		browsertest.RequireNoSeriousAxe(t, ctx, path)
	}

	// Create an API key in the page: the answer shows the secret once.
	if err := browsertest.Navigate(ctx, srvURL+"/console/apikeys"); err != nil {
		t.Fatal(err)
	}
	browsertest.Eval[chromedp.Void](t, ctx, `document.getElementById('apikey-name').value = 'phone'; document.getElementById('apikey-name').form.requestSubmit()`)
	browsertest.Wait(t, ctx, "the new key's secret", `!!document.getElementById('new-key-secret')`, 5*time.Second)
	if s := browsertest.Eval[string](t, ctx, `document.getElementById('new-key-secret').textContent`); !service.WellFormedAPIKey(s) {
		t.Errorf("secret %q", s)
	}
	browsertest.RequireNoSeriousAxe(t, ctx, "apikeys (created)")

	// The jobs table updates itself.
	if err := browsertest.Navigate(ctx, srvURL+"/console/jobs"); err != nil {
		t.Fatal(err)
	}
	browsertest.Eval[chromedp.Void](t, ctx, `window.pbNoReload = true`)
	badge := `(document.querySelector('#job-link-` + string(queued.ID) + `') || {closest: () => null}).closest('tr')?.querySelector('.badge')?.textContent`
	if s := browsertest.Eval[string](t, ctx, badge); s != "queued" {
		t.Fatalf("badge %q, want queued", s)
	}
	e.pbFinish(queued.ID)
	browsertest.Wait(t, ctx, "the table shows the job succeeded", badge+` === 'succeeded' && window.pbNoReload === true`, 6*time.Second)

	// And so does a job's page, which then stops polling.
	other := e.pbJob(e.acme.ID, "tiny")
	if err := browsertest.Navigate(ctx, srvURL+"/console/jobs/"+string(other.ID)); err != nil {
		t.Fatal(err)
	}
	browsertest.Eval[chromedp.Void](t, ctx, `window.pbNoReload = true`)
	if !browsertest.Eval[bool](t, ctx, `!!document.querySelector('#job-actions form')`) {
		t.Error("no cancel form on a queued job's page")
	}
	e.pbFinish(other.ID)
	browsertest.Wait(t, ctx, "the job page shows succeeded", `document.querySelector('#job-panel .badge').textContent === 'succeeded' && window.pbNoReload === true`, 6*time.Second)
	if browsertest.Eval[bool](t, ctx, `document.getElementById('job-panel').hasAttribute('hx-trigger') || !!document.querySelector('#job-actions form')`) {
		t.Error("the finished job's page still polls or offers to cancel")
	}
}

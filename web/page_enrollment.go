package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// The enrollment policy page: who may run inference (the tenant's default
// policy and the per-model ones), and the trust anchors enrollment checks
// evidence against (each format's endorsements and reference values).

type enrollmentData struct {
	CanEdit bool
	// Default is the tenant's default policy, Set false when none is set
	// (the built-in default then applies).
	Default enrollPolicyRow
	// Models are the per-model policies.
	Models   []enrollPolicyRow
	Form     enrollPolicyForm
	Formats  []enrollChoice // the checkbox choices
	Statuses []enrollChoice
	Anchors  []enrollAnchorFormat
}

type enrollPolicyRow struct {
	Model       string // "" for the tenant's default
	Name        string // service.PolicyName
	Set         bool
	AllowAPIKey bool
	Formats     []string
	Statuses    []string
	UpdatedAt   string
	UpdatedBy   string
	CanEdit     bool // whether the row shows its actions
}

// enrollPolicyForm is the edit form: the values to show and the errors, by
// field ("model", "policy").
type enrollPolicyForm struct {
	Model       string
	AllowAPIKey bool
	Formats     map[string]bool
	Statuses    map[string]bool
	Errors      map[string]string
}

type enrollAnchorFormat struct {
	Format string
	Docs   []enrollAnchorDoc
}

type enrollAnchorDoc struct {
	Format    string
	Kind      string
	Label     string // "Endorsements", "Reference values"
	Noun      string // "endorsements", "reference values"
	ID        string // the id stem of its elements: "doc-tpm-endorsements"
	Set       bool
	JSON      string // the stored document, indented
	UpdatedAt string
	UpdatedBy string
	// Draft is what the textarea holds: the stored document, or what was
	// posted when it was refused with Error.
	Draft string
	Error string
	Hint  string // what the format reads from the document
}

// enrollChoice is one option of a checkbox group or a select.
type enrollChoice struct {
	Value string
	Label string
}

// enrollFormats and enrollStatuses are what a policy may name (the other
// statuses are never admissible).
var (
	enrollFormats = []enrollChoice{
		{string(attest.FormatTPM), "tpm: a TPM 2.0 quote"},
		{string(attest.FormatPSA), "psa: a PSA attestation token"},
		{string(attest.FormatNative), "native: hegate's own signed evidence"},
	}
	enrollStatuses = []enrollChoice{
		{string(attest.StatusAffirming), "affirming: the evidence matched everything"},
		{string(attest.StatusWarning), "warning: it matched, with a warning"},
	}
)

// enrollAnchorHints say what each format reads from its documents (docs/api.md).
var enrollAnchorHints = map[string]string{
	"tpm/" + storage.DocEndorsements:       `{"keys": [{"id": "", "public_key": "<PEM>"}], "roots": ["<PEM CA certificate>"]}: attestation keys, matched by their public key, and the CA roots the quote's ak_certs chain must lead to.`,
	"tpm/" + storage.DocReferenceValues:    `{"pcrs": {"0": ["<hex sha256>"]}}: PCR index "0" to "23" and the values each may have. Every PCR listed must be quoted.`,
	"psa/" + storage.DocEndorsements:       `{"keys": [{"id": "<instance id, hex>", "public_key": "<PEM>", "implementation_id": "<hex>"}]}: initial attestation keys; implementation_id is optional.`,
	"psa/" + storage.DocReferenceValues:    `{"components": [{"type": "BL", "measurement": "<hex>", "signer_id": "<hex>"}], "implementation_ids": ["<hex>"]}: every software component's measurement must be listed.`,
	"native/" + storage.DocEndorsements:    `{"keys": [{"id": "<COSE kid, hex>", "public_key": "<PEM>"}]}: Ed25519 or ML-DSA-65 keys.`,
	"native/" + storage.DocReferenceValues: `{"measurements": {"<name>": ["<hex digest>"]}}: every measurement must be listed, and every name listed must be measured.`,
}

var enrollDocKinds = []struct{ kind, label string }{
	{storage.DocEndorsements, "Endorsements"},
	{storage.DocReferenceValues, "Reference values"},
}

// enrollMaxDocFormBytes bounds the trust-anchor form: a document of
// attest.MaxDocumentBytes, URL-encoded (up to three bytes a byte).
const enrollMaxDocFormBytes = 3*attest.MaxDocumentBytes + maxFormBytes

func (c *Console) enrollmentPage() page {
	return page{
		path: Prefix + "/enrollment",
		get:  c.enrollment,
		posts: map[string]http.HandlerFunc{
			"/policy":        c.enrollSetPolicy,
			"/policy/delete": c.enrollDeletePolicy,
			"/doc":           c.enrollSetDoc,
			"/doc/delete":    c.enrollDeleteDoc,
		},
	}
}

func (c *Console) enrollment(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	form := enrollPolicyForm{Errors: map[string]string{}}
	// ?model=X fills the form with the policy that applies to X now.
	model := strings.TrimSpace(r.URL.Query().Get("model"))
	if model != "" {
		if err := service.CheckModelName("policy.get", model); err != nil {
			form.Model = model
			form.Errors["model"] = hegate.DetailOf(err)
			model = ""
		}
	}
	if len(form.Errors) == 0 {
		pol, _, _, err := c.svc.Policy(r.Context(), p, hegate.ModelID(model))
		if err != nil {
			c.fail(w, r, err)
			return
		}
		form = enrollFormOf(model, pol)
	}
	c.renderEnrollment(w, r, http.StatusOK, form, nil, doneFlash(w, r)...)
}

// renderEnrollment shows the page with the policy form as given and, if
// draft is set, that trust-anchor document's form as posted.
func (c *Console) renderEnrollment(w http.ResponseWriter, r *http.Request, status int, form enrollPolicyForm, draft *enrollAnchorDoc, flash ...Flash) {
	p := principal(r)
	ctx := r.Context()
	ps, parsed, err := c.svc.ListPolicies(ctx, p)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	docs, err := c.svc.ListAttestationDocs(ctx, p)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	names, err := c.auditActorNames(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	who := func(actor string) string {
		if n, ok := names[actor]; ok {
			return n
		}
		return actor
	}
	data := enrollmentData{CanEdit: canEdit(p.Role), Form: form, Formats: enrollFormats, Statuses: enrollStatuses}
	defaultSet := false
	for i, sp := range ps {
		row := enrollPolicyRowOf(sp, parsed[i], true)
		row.CanEdit = data.CanEdit
		row.UpdatedBy = who(row.UpdatedBy)
		if sp.Model == "" {
			data.Default, defaultSet = row, true
			continue
		}
		data.Models = append(data.Models, row)
	}
	if !defaultSet {
		pol, sp, set, err := c.svc.Policy(ctx, p, "")
		if err != nil {
			c.fail(w, r, err)
			return
		}
		data.Default = enrollPolicyRowOf(sp, pol, set)
		data.Default.CanEdit = data.CanEdit
	}
	stored := map[string]storage.AttestationDoc{}
	for _, d := range docs {
		stored[d.Format+"/"+d.Kind] = d
	}
	for _, f := range attest.Formats {
		af := enrollAnchorFormat{Format: string(f)}
		for _, k := range enrollDocKinds {
			ad := enrollAnchorDoc{Format: string(f), Kind: k.kind, Label: k.label, Noun: enrollKindLabel(k.kind), ID: "doc-" + string(f) + "-" + k.kind, Hint: enrollAnchorHints[string(f)+"/"+k.kind]}
			if d, ok := stored[string(f)+"/"+k.kind]; ok {
				ad.Set = true
				ad.JSON = prettyJSON(d.Document)
				ad.Draft = ad.JSON
				ad.UpdatedAt = d.UpdatedAt.UTC().Format("2006-01-02 15:04 UTC")
				ad.UpdatedBy = who(d.UpdatedBy)
			}
			if draft != nil && draft.Format == ad.Format && draft.Kind == ad.Kind {
				ad.Draft, ad.Error = draft.Draft, draft.Error
			}
			af.Docs = append(af.Docs, ad)
		}
		data.Anchors = append(data.Anchors, af)
	}
	c.render(w, r, status, "enrollment", frame(r, "Enrollment policy", "enrollment", data, flash...))
}

func enrollPolicyRowOf(sp storage.Policy, pol attest.Policy, set bool) enrollPolicyRow {
	row := enrollPolicyRow{Model: string(sp.Model), Name: service.PolicyName(sp.Model), Set: set, AllowAPIKey: pol.AllowAPIKey, UpdatedBy: sp.UpdatedBy}
	for _, f := range pol.Formats {
		row.Formats = append(row.Formats, string(f))
	}
	for _, s := range pol.Statuses {
		row.Statuses = append(row.Statuses, string(s))
	}
	if set && !sp.UpdatedAt.IsZero() {
		row.UpdatedAt = sp.UpdatedAt.UTC().Format("2006-01-02 15:04 UTC")
	}
	return row
}

func enrollFormOf(model string, pol attest.Policy) enrollPolicyForm {
	form := enrollPolicyForm{Model: model, AllowAPIKey: pol.AllowAPIKey, Formats: map[string]bool{}, Statuses: map[string]bool{}, Errors: map[string]string{}}
	for _, f := range pol.Formats {
		form.Formats[string(f)] = true
	}
	for _, s := range pol.Statuses {
		form.Statuses[string(s)] = true
	}
	return form
}

// enrollPolicyDoc is the JSON attest.ParsePolicy reads; the service
// checks it.
type enrollPolicyDoc struct {
	AllowAPIKey bool     `json:"allow_api_key"`
	Formats     []string `json:"formats"`
	Statuses    []string `json:"statuses"`
}

func (c *Console) enrollSetPolicy(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, err)
		return
	}
	f := r.PostForm
	doc := enrollPolicyDoc{AllowAPIKey: f.Get("allow_api_key") != "", Formats: []string{}, Statuses: []string{}}
	form := enrollPolicyForm{Model: strings.TrimSpace(f.Get("model")), AllowAPIKey: doc.AllowAPIKey, Formats: map[string]bool{}, Statuses: map[string]bool{}, Errors: map[string]string{}}
	for _, v := range f["formats"] {
		doc.Formats = append(doc.Formats, v)
		form.Formats[v] = true
	}
	for _, v := range f["statuses"] {
		doc.Statuses = append(doc.Statuses, v)
		form.Statuses[v] = true
	}
	if form.Model != "" {
		if err := service.CheckModelName("policy.set", form.Model); err != nil {
			form.Errors["model"] = hegate.DetailOf(err)
			c.renderEnrollment(w, r, http.StatusUnprocessableEntity, form, nil)
			return
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		c.fail(w, r, hegate.E("console.policy", hegate.KindInternal, err, ""))
		return
	}
	model := hegate.ModelID(form.Model)
	if _, err := c.svc.SetPolicy(r.Context(), principal(r), model, b); err != nil {
		if hegate.KindOf(err) == hegate.KindInvalid {
			if fe, ok := fieldErrors(err); ok {
				form.Errors = fe
			} else {
				form.Errors["policy"] = hegate.DetailOf(err)
			}
			c.renderEnrollment(w, r, http.StatusUnprocessableEntity, form, nil)
			return
		}
		c.fail(w, r, err)
		return
	}
	seeOther(w, r, Prefix+"/enrollment", "The policy of "+service.PolicyName(model)+" is saved: it applies from the next request.")
}

func (c *Console) enrollDeletePolicy(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, err)
		return
	}
	model := hegate.ModelID(strings.TrimSpace(r.PostForm.Get("model")))
	if err := c.svc.DeletePolicy(r.Context(), principal(r), model); err != nil {
		c.fail(w, r, err)
		return
	}
	done := "The policy of " + service.PolicyName(model) + " is deleted: the tenant's default applies to it."
	if model == "" {
		done = "The tenant's default policy is deleted: the built-in default applies to models without a policy."
	}
	seeOther(w, r, Prefix+"/enrollment", done)
}

// enrollDocForm reads the trust-anchor form, which may hold a document of up to
// attest.MaxDocumentBytes.
func enrollDocForm(w http.ResponseWriter, r *http.Request) (service.TrustAnchorDoc, error) {
	r.Body = http.MaxBytesReader(w, r.Body, enrollMaxDocFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return service.TrustAnchorDoc{}, hegate.E("console.form", hegate.KindTooLarge, err, "the document is too large: at most %d bytes", attest.MaxDocumentBytes)
		}
		return service.TrustAnchorDoc{}, hegate.E("console.form", hegate.KindInvalid, err, "the form could not be read")
	}
	return service.TrustAnchorDoc{Format: attest.Format(r.PostForm.Get("format")), Kind: r.PostForm.Get("kind")}, nil
}

func (c *Console) enrollSetDoc(w http.ResponseWriter, r *http.Request) {
	d, err := enrollDocForm(w, r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	text := r.PostForm.Get("document")
	if _, err := c.svc.SetAttestationDoc(r.Context(), principal(r), d, []byte(text)); err != nil {
		if k := hegate.KindOf(err); k == hegate.KindInvalid || k == hegate.KindTooLarge {
			draft := &enrollAnchorDoc{Format: string(d.Format), Kind: d.Kind, Draft: text, Error: hegate.DetailOf(err)}
			c.renderEnrollment(w, r, http.StatusUnprocessableEntity, c.enrollDefaultForm(r), draft)
			return
		}
		c.fail(w, r, err)
		return
	}
	seeOther(w, r, Prefix+"/enrollment#"+enrollAnchorID(d), "The "+string(d.Format)+" "+enrollKindLabel(d.Kind)+" are saved: they apply from the next enrollment.")
}

func (c *Console) enrollDeleteDoc(w http.ResponseWriter, r *http.Request) {
	d, err := enrollDocForm(w, r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if err := c.svc.DeleteAttestationDoc(r.Context(), principal(r), d); err != nil {
		c.fail(w, r, err)
		return
	}
	seeOther(w, r, Prefix+"/enrollment#"+enrollAnchorID(d), "The "+string(d.Format)+" "+enrollKindLabel(d.Kind)+" are deleted: no device of that format can enroll until they are set again.")
}

// enrollDefaultForm is the policy form as a GET shows it: the tenant's
// default policy, or the built-in one (an error leaves it empty).
func (c *Console) enrollDefaultForm(r *http.Request) enrollPolicyForm {
	pol, _, _, err := c.svc.Policy(r.Context(), principal(r), "")
	if err != nil {
		return enrollPolicyForm{Formats: map[string]bool{}, Statuses: map[string]bool{}, Errors: map[string]string{}}
	}
	return enrollFormOf("", pol)
}

func enrollAnchorID(d service.TrustAnchorDoc) string { return "doc-" + string(d.Format) + "-" + d.Kind }

func enrollKindLabel(kind string) string {
	if kind == storage.DocReferenceValues {
		return "reference values"
	}
	return "endorsements"
}

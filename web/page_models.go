package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/storage"
)

// The models page: the built-in models and the tenant's, the import form
// (ONNX or IR JSON, with the compile options of the JSON API's upload),
// and a page per model with its versions, each ready version's cost
// report from its manifest, and deletion. A model page polls its versions
// while one is compiling.

const (
	modelsOp = "console.models"
	// importFieldBytes bounds each non-file field of the import form.
	importFieldBytes = 4 << 10
	// importMaxParts bounds the parts of the import form.
	importMaxParts = 64
)

type modelsData struct {
	Models  []modelRow
	CanEdit bool
	Import  importForm
}

type modelRow struct {
	Name        hegate.ModelID
	Builtin     bool
	Version     string
	Status      string
	StatusClass string
	Error       string
	Updated     string
}

// importForm is the import form: its fields (the values to show again
// and each one's error) and an error that names no field.
type importForm struct {
	Open   bool // the compile options start open (one of them is at fault)
	Error  string
	Main   []formField // name, format
	Opts   []formField // compile options
	File   formField
	MaxMiB string
}

// importValues are the submitted values of the import form by field name.
type importValues map[string]string

// importOptionFields are the compile options of the form, in order: the
// names of the JSON API's upload query (gateway uploadOptions), except
// output_range, which is two fields here.
var importOptionFields = []string{
	"preset", "approx_method", "sign", "maxpool", "relu_degree", "abs_degree", "margin",
	"split_after", "device_macs", "output_low", "output_high", "clip", "noise_sigma", "query_epsilon", "query_delta",
	"scale", "mean", "std", "layout",
}

func (c *Console) modelsPage() page {
	return page{
		path: Prefix + "/models",
		get:  c.models,
		gets: map[string]http.HandlerFunc{
			"/{name}":          c.model,
			"/{name}/versions": c.modelVersionsFragment,
		},
		posts: map[string]http.HandlerFunc{
			"/import":        c.guardedImport,
			"/{name}/delete": c.deleteModel,
		},
	}
}

func (c *Console) models(w http.ResponseWriter, r *http.Request) {
	data, err := c.modelsData(r, importValues{}, nil, "")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "models", frame(r, "Models", "models", data, doneFlash(w, r)...))
}

func (c *Console) modelsData(r *http.Request, v importValues, errs map[string]string, formErr string) (modelsData, error) {
	p := principal(r)
	entries, err := c.svc.ListModels(r.Context(), p)
	if err != nil {
		return modelsData{}, err
	}
	now := c.svc.Now()
	data := modelsData{CanEdit: canEdit(p.Role), Import: c.importFormOf(v, errs, formErr)}
	for _, e := range entries {
		row := modelRow{Name: e.Name, Builtin: e.Builtin(), Status: string(e.Status), StatusClass: statusClass(e.Status), Error: e.Error}
		if e.Builtin() {
			row.Version = "built-in"
		} else {
			row.Version = "v" + strconv.Itoa(e.Version)
			row.Updated = since(now, e.UpdatedAt)
		}
		data.Models = append(data.Models, row)
	}
	return data, nil
}

func statusClass(s storage.ModelStatus) string {
	switch s {
	case storage.ModelReady:
		return "ok"
	case storage.ModelFailed:
		return "danger"
	}
	return "warning"
}

func (c *Console) importFormOf(v importValues, errs map[string]string, formErr string) importForm {
	field := func(name, label, typ, hint string) formField {
		return formField{ID: "import-" + strings.ReplaceAll(name, "_", "-"), Name: name, Label: label, Type: typ, Value: v[name], Hint: hint, Error: errs[name]}
	}
	sel := func(name, label, hint string, values []string, labels map[string]string) formField {
		f := field(name, label, "select", hint)
		f.Choices = choices(values, labels, v[name])
		return f
	}
	f := importForm{Error: formErr, MaxMiB: fmtFloat(float64(c.svc.Catalog().MaxSourceBytes()) / (1 << 20))}
	name := field("name", "Model name", "text", "1 to 63 lowercase letters, digits, '.', '_' or '-'. A new upload of a name is its next version.")
	name.Required = true
	format := sel("format", "Format", "", []string{"", catalog.FormatONNX, catalog.FormatIRJSON},
		map[string]string{"": "from the file name (.onnx or .json)", catalog.FormatONNX: "ONNX", catalog.FormatIRJSON: "hegate IR JSON"})
	f.Main = []formField{name, format}
	clip := field("clip", "Clip the outputs to the output range", "checkbox", "")
	clip.Checked = v["clip"] == "true"
	f.Opts = []formField{
		sel("preset", "CKKS parameters", "", append([]string{""}, he.Presets()...), map[string]string{"": "the smallest 128-bit preset the model fits"}),
		sel("approx_method", "Approximation method", "", []string{"", "composite", "chebyshev"}, map[string]string{"": "default"}),
		sel("sign", "Sign approximation", "", append([]string{""}, he.SignPresets()...), map[string]string{"": "default"}),
		sel("maxpool", "Max pooling", "", []string{"", "max", "average"}, map[string]string{"": "default", "max": "max (approximated)", "average": "average instead"}),
		field("relu_degree", "ReLU degree", "number", "1 to 63; empty for the default."),
		field("abs_degree", "Absolute value degree", "number", "1 to 63; empty for the default."),
		field("margin", "Range margin", "number", "1 to 16; empty for the default."),
		field("split_after", "Split after", "text", "The value after which the device runs the head in the clear, or auto."),
		field("device_macs", "Device budget (multiply-accumulates per input)", "number", "Needed by split after auto."),
		field("output_low", "Output range, low", "number", "Declares the outputs' range for the privacy mechanism; otherwise it is calibrated."),
		field("output_high", "Output range, high", "number", ""),
		clip,
		field("noise_sigma", "Noise sigma", "number", "The default noise of each output; empty to derive it from the query epsilon."),
		field("query_epsilon", "Query epsilon", "number", ""),
		field("query_delta", "Query delta", "number", ""),
		field("scale", "Preprocessing scale", "number", "The device computes (raw × scale − mean) / std."),
		field("mean", "Preprocessing mean", "number", ""),
		field("std", "Preprocessing std", "number", ""),
		sel("layout", "Input layout", "", []string{"", "NCHW", "NHWC"}, map[string]string{"": "as the file says"}),
	}
	for _, o := range f.Opts {
		if o.Error != "" {
			f.Open = true
		}
	}
	f.File = formField{ID: "import-file", Name: "file", Label: "Model file", Type: "file", Accept: ".onnx,.json,application/json", Required: true,
		Hint: "ONNX or hegate IR JSON, at most " + f.MaxMiB + " MiB.", Error: errs["file"]}
	return f
}

// importOptions reads the compile options from the form as the JSON API
// reads them from its query (gateway uploadOptions), and validates them
// with catalog.Options.Validate. A field's problem is in errs by name;
// a problem of no single field in formErr.
func importOptions(v importValues) (o catalog.Options, errs map[string]string, formErr string) {
	o, errs = catalog.ParseOptions(func(k string) string { return v[k] })
	for k, e := range errs {
		errs[k] = sentence(e)
	}
	if len(errs) > 0 {
		return o, errs, ""
	}
	if err := o.Validate(); err != nil {
		placeOptionsError(err, errs, &formErr)
	}
	return o, errs, formErr
}

// placeOptionsError puts a refusal of catalog.Options.Validate next to
// the field it names; its messages begin with the option's name.
func placeOptionsError(err error, errs map[string]string, formErr *string) {
	detail := hegate.DetailOf(err)
	if detail == "" {
		detail = "The compile options are refused."
	}
	switch {
	case strings.HasPrefix(detail, "output_range"):
		errs["output_low"] = detail
	case strings.HasPrefix(detail, "unknown preset"):
		errs["preset"] = detail
	case strings.HasPrefix(detail, "preprocessing"):
		errs["scale"] = detail
	case strings.HasPrefix(detail, "split_after=auto"):
		errs["device_macs"] = detail
	default:
		if f := fieldNamed(detail, importOptionFields); f != "" {
			errs[f] = detail
		} else {
			*formErr = detail
		}
	}
}

// importModel reads the multipart import form as a stream: the small
// fields first (at most importFieldBytes each), then the file, which goes
// to the service as it arrives (the form puts the file input last, so
// that browsers send it last).
// guardedImport runs the import behind the upload limits the API's
// uploads pass, charged to the session's tenant.
func (c *Console) guardedImport(w http.ResponseWriter, r *http.Request) {
	c.guard(principal(r), http.HandlerFunc(c.importModel)).ServeHTTP(w, r)
}

func (c *Console) importModel(w http.ResponseWriter, r *http.Request) {
	maxFile := c.svc.Catalog().MaxSourceBytes()
	r.Body = http.MaxBytesReader(w, r.Body, maxFile+maxFormBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		c.fail(w, r, hegate.E(modelsOp, hegate.KindInvalid, err, "the import form could not be read: send it as multipart/form-data"))
		return
	}
	v := importValues{}
	for parts := 0; ; parts++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			c.fail(w, r, tooLargeOr(err, maxFile, "the import form could not be read"))
			return
		}
		if parts >= importMaxParts {
			c.fail(w, r, hegate.E(modelsOp, hegate.KindInvalid, nil, "the import form has too many fields"))
			return
		}
		name := part.FormName()
		if name == "file" {
			c.importFile(w, r, v, part, maxFile)
			return
		}
		b, err := io.ReadAll(io.LimitReader(part, importFieldBytes+1))
		if err != nil {
			c.fail(w, r, tooLargeOr(err, maxFile, "the import form could not be read"))
			return
		}
		if len(b) > importFieldBytes {
			c.fail(w, r, hegate.E(modelsOp, hegate.KindInvalid, nil, "the import form's field %q is longer than %d bytes", truncate(name, 40), importFieldBytes))
			return
		}
		if _, dup := v[name]; !dup {
			v[name] = string(b)
		}
	}
	// No file part at all.
	_, errs, formErr := importOptions(v)
	if strings.TrimSpace(v["name"]) == "" {
		errs["name"] = "Name the model."
	}
	errs["file"] = "Choose a model file (ONNX or IR JSON)."
	c.importRefused(w, r, v, errs, formErr)
}

// importFile checks the fields read before the file and streams the file
// to the service.
func (c *Console) importFile(w http.ResponseWriter, r *http.Request, v importValues, part *multipart.Part, maxFile int64) {
	fileName := part.FileName()
	opts, errs, formErr := importOptions(v)
	name := strings.TrimSpace(v["name"])
	if name == "" {
		errs["name"] = "Name the model."
	} else if err := catalog.CheckName(name); err != nil {
		errs["name"] = "Model name " + err.Error() + "."
	}
	format := v["format"]
	switch format {
	case catalog.FormatONNX, catalog.FormatIRJSON:
	case "":
		switch strings.ToLower(path.Ext(fileName)) {
		case ".onnx":
			format = catalog.FormatONNX
		case ".json":
			format = catalog.FormatIRJSON
		default:
			if fileName != "" {
				errs["format"] = fmt.Sprintf("The format cannot be told from the file name %q: choose it.", truncate(fileName, 80))
			}
		}
	default:
		errs["format"] = fmt.Sprintf("Format %q: choose ONNX or IR JSON.", truncate(format, 40))
	}
	if fileName == "" {
		errs["file"] = "Choose a model file (ONNX or IR JSON)."
	}
	if len(errs) > 0 || formErr != "" {
		c.importRefused(w, r, v, errs, formErr)
		return
	}
	e, _, err := c.svc.UploadModel(r.Context(), principal(r), catalog.UploadParams{
		Name: hegate.ModelID(name), Format: format, Source: uploadSource{r: part, max: maxFile}, Options: opts,
	})
	if err != nil {
		switch detail := hegate.DetailOf(err); hegate.KindOf(err) {
		case hegate.KindConflict:
			errs["name"] = detail
		case hegate.KindTooLarge:
			errs["file"] = detail
		case hegate.KindInvalid:
			switch {
			case strings.HasPrefix(detail, "model name"):
				errs["name"] = detail
			case strings.HasPrefix(detail, "format"):
				errs["format"] = detail
			default:
				// The options were checked already: the file is at fault.
				errs["file"] = "The file is refused: " + detail
			}
		default:
			c.fail(w, r, err)
			return
		}
		c.importRefused(w, r, v, errs, "")
		return
	}
	seeOther(w, r, Prefix+"/models/"+string(e.Name), fmt.Sprintf("Model %s version %d is uploaded and %s.", e.Name, e.Version, e.Status))
}

func (c *Console) importRefused(w http.ResponseWriter, r *http.Request, v importValues, errs map[string]string, formErr string) {
	data, err := c.modelsData(r, v, errs, formErr)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusUnprocessableEntity, "models", frame(r, "Models", "models", data))
}

// uploadSource is the file part of the import form: a body over the
// bound is KindTooLarge, as the catalog says of a file over its own.
type uploadSource struct {
	r   io.Reader
	max int64
}

func (u uploadSource) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	if err != nil && err != io.EOF {
		err = tooLargeOr(err, u.max, "the model file could not be read")
	}
	return n, err
}

// tooLargeOr is KindTooLarge for a body over http.MaxBytesReader's bound,
// else KindInvalid with detail.
func tooLargeOr(err error, maxFile int64, detail string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return hegate.E(modelsOp, hegate.KindTooLarge, err, "model file exceeds %d bytes", maxFile)
	}
	return hegate.E(modelsOp, hegate.KindInvalid, err, "%s", detail)
}

// modelData is the model page.
type modelData struct {
	Name      hegate.ModelID
	Builtin   bool
	CanDelete bool
	Versions  modelVersions
}

// modelVersions is the versions section, which htmx swaps while a
// version compiles.
type modelVersions struct {
	Name     hegate.ModelID
	Polling  bool
	Versions []versionView
}

type versionView struct {
	ID          string // the version's element id
	Label       string
	Status      string
	StatusClass string
	Error       string
	Created     string
	Updated     string
	Options     string // the compile options chosen, JSON; "" for none
	Report      *costReport
	Accuracy    string
}

// costReport is what a ready version's manifest says it costs.
type costReport struct {
	Facts       []fact
	Privacy     []fact
	PrivacyNote string
	Steps       []stepView
}

type fact struct{ Term, Value string }

type stepView struct {
	Index  int
	Kind   string
	Level  int
	Depth  int
	Detail string
	Nodes  string
}

func (c *Console) model(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	name := hegate.ModelID(chi.URLParam(r, "name"))
	vs, err := c.modelVersionsOf(r, name)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data := modelData{Name: name, Builtin: c.svc.Catalog().IsBuiltin(name), Versions: vs}
	data.CanDelete = canEdit(p.Role) && !data.Builtin
	c.render(w, r, http.StatusOK, "model", frame(r, "Model "+string(name), "models", data, doneFlash(w, r)...))
}

func (c *Console) modelVersionsFragment(w http.ResponseWriter, r *http.Request) {
	vs, err := c.modelVersionsOf(r, hegate.ModelID(chi.URLParam(r, "name")))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.fragment(w, r, "model", "versions", vs)
}

func (c *Console) modelVersionsOf(r *http.Request, name hegate.ModelID) (modelVersions, error) {
	entries, err := c.svc.ModelVersions(r.Context(), principal(r), name)
	if err != nil {
		return modelVersions{}, err
	}
	now := c.svc.Now()
	out := modelVersions{Name: name}
	for _, e := range entries {
		v := versionView{Status: string(e.Status), StatusClass: statusClass(e.Status), Error: e.Error, Accuracy: "not measured"}
		if e.Builtin() {
			v.Label, v.ID = "Built-in", "version-builtin"
		} else {
			v.Label, v.ID = "Version "+strconv.Itoa(e.Version), "version-"+strconv.Itoa(e.Version)
			v.Created, v.Updated = stampUTC(e.CreatedAt), since(now, e.UpdatedAt)
			if b, err := json.Marshal(e.Options); err == nil && string(b) != "{}" {
				v.Options = string(b)
			}
		}
		if e.Status == storage.ModelCompiling {
			out.Polling = true
		}
		if e.Status == storage.ModelReady && len(e.Manifest) > 0 {
			var man he.Manifest
			if err := json.Unmarshal(e.Manifest, &man); err == nil {
				v.Report = costReportOf(man)
			}
		}
		out.Versions = append(out.Versions, v)
	}
	return out, nil
}

// costReportOf reads the cost of a compiled model from its manifest: only
// what the manifest records (it has no latency estimate, no accuracy and
// no bootstrapping: the circuits are leveled).
func costReportOf(m he.Manifest) *costReport {
	r := &costReport{}
	add := func(term, format string, args ...any) {
		r.Facts = append(r.Facts, fact{term, fmt.Sprintf(format, args...)})
	}
	add("Input", "%v, %d outputs", m.Input, m.OutputSize)
	sec := "test only, below 128-bit security"
	if m.Params.SecurityBits > 0 {
		sec = fmt.Sprintf("%d-bit security", m.Params.SecurityBits)
	}
	add("Parameters", "%s (log N %d, log QP %d, %s)", m.Params.Preset, m.Params.LogN, m.Params.LogQP, sec)
	add("Levels", "%d of %d", m.Levels, m.Params.MaxLevel)
	add("Key set", "%s to upload once: %d Galois keys and the relinearisation key", megabytes(m.KeySetBytes), len(m.GaloisElements))
	add("Key switches per inference", "%d rotations, %d relinearisations", m.Cost.Rotations, m.Cost.Relins)
	add("Multiplications", "%d ciphertext × plaintext, %d ciphertext × ciphertext, %d rescales", m.Cost.PlainMults, m.Cost.CipherMults, m.Cost.Rescales)
	add("Ciphertexts", "%s up, %s down per inference", megabytes(m.CiphertextBytes), megabytes(m.ResultBytes))
	add("Memory", "%s of pre-encoded weights; about %s more per evaluation", megabytes(m.EncodedBytes), megabytes(m.EvaluationBytes))
	add("Estimated latency", "not recorded with the model (hegate model inspect --measure times it on a machine)")
	if s := m.Split; s != nil {
		add("Split inference", "the device runs %d nodes up to %q (%d multiply-accumulates per input), then encrypts", s.HeadNodes, s.After, s.HeadMACs)
	}
	if pr := m.Privacy; pr != nil {
		pf := func(term, format string, args ...any) {
			r.Privacy = append(r.Privacy, fact{term, fmt.Sprintf(format, args...)})
		}
		pf("Noise sigma", "%s per output (at most %s)", fmtFloat(pr.Sigma), fmtFloat(pr.MaxSigma))
		pf("Sensitivity", "%s (L2, outputs declared in [%s, %s])", fmtFloat(pr.Sensitivity), fmtFloat(pr.OutputRange[0]), fmtFloat(pr.OutputRange[1]))
		pf("Rho per query", "%s", fmtFloat(pr.Rho))
		if pr.Epsilon > 0 {
			pf("Epsilon per query", "%s at delta %s", fmtFloat(pr.Epsilon), fmtFloat(pr.Delta))
		}
		if pr.Clip {
			pf("Output clip", "the range holds for network outputs in [%s, %s]", fmtFloat(pr.ClipDomain[0]), fmtFloat(pr.ClipDomain[1]))
		}
	} else {
		r.PrivacyNote = m.PrivacyNote
		if r.PrivacyNote == "" {
			r.PrivacyNote = "The model has no privacy mechanism: its answers cannot be released."
		}
	}
	for i, st := range m.Steps {
		sv := stepView{Index: i, Kind: st.Kind, Level: st.Level, Depth: st.Depth, Nodes: truncate(st.Name, 80)}
		switch st.Kind {
		case "linear":
			sv.Detail = fmt.Sprintf("%s, %d diagonals, %d baby + %d giant steps", st.Method, st.Diagonals, st.BabySteps, st.GiantSteps)
		case "poly":
			sv.Detail = fmt.Sprintf("%s degree %d", st.Function, st.Degree)
			if st.Function != "trained" {
				sv.Detail += fmt.Sprintf(" on [%.3g, %.3g], max error %.2g", st.Range[0], st.Range[1], st.MaxError)
			}
		case "square":
			sv.Detail = "x²"
		}
		r.Steps = append(r.Steps, sv)
	}
	return r
}

func (c *Console) deleteModel(w http.ResponseWriter, r *http.Request) {
	name := hegate.ModelID(chi.URLParam(r, "name"))
	if err := c.svc.DeleteModel(r.Context(), principal(r), name); err != nil {
		c.fail(w, r, err)
		return
	}
	seeOther(w, r, Prefix+"/models", fmt.Sprintf("Model %s is deleted, every version of it.", name))
}

// megabytes formats a size in MB (10^6 bytes).
func megabytes(n int64) string {
	switch {
	case n <= 0:
		return "0 MB"
	case n < 10_000:
		return fmt.Sprintf("%.4f MB", float64(n)/1e6)
	case n < 10_000_000:
		return fmt.Sprintf("%.2f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.0f MB", float64(n)/1e6)
}

// sentence makes a parser's message a sentence for a form.
func sentence(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

package web

import (
	"bytes"
	"html/template"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// kitchenSink is the test page with one of each building block.
func kitchenSink(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("../internal/browsertest/testdata/kitchensink.html")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sampleChart() map[string]any {
	return map[string]any{
		"label": "Budget left (ε)", "step": true, "total": 10,
		"x": []int64{1748736000, 1748822400, 1748908800, 1748995200},
		"y": []float64{10, 8.5, 8.5, 6.25},
	}
}

func TestAllTemplatesParse(t *testing.T) {
	// All files in one set, as html/template sees them: catches syntax
	// errors in any file, whatever page it belongs to.
	if _, err := template.New("").Funcs(Funcs()).ParseFS(TemplateFS(), "templates/*.html"); err != nil {
		t.Fatal(err)
	}
	tpl, err := ParseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tpl.Pages(), ","); !strings.Contains(got, "login") {
		t.Fatalf("pages %s, want login among them", got)
	}
}

func TestRenderLogin(t *testing.T) {
	tpl, err := ParseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err = tpl.Render(&buf, "login", Page{
		Title: "Log in",
		Flash: []Flash{{Kind: FlashDanger, Text: "Wrong tenant, user name or password."}},
		Data: LoginForm{
			Tenant: "acme <script>", User: "alice",
			Errors: map[string]string{"tenant": "No tenant of that name.", "password": "Enter your password."},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	doc := buf.String()
	lintHTML(t, doc)
	for _, want := range []string{
		`<html lang="en">`,
		`<title>Log in · hegate</title>`,
		`<main id="main"`,
		`class="skip-link" href="#main"`,
		`<strong class="flash-label">Error:</strong> Wrong tenant, user name or password.`,
		`aria-describedby="login-tenant-hint login-tenant-error"`,
		`<p class="field-error" id="login-tenant-error">No tenant of that name.</p>`,
		`<p class="field-error" id="login-password-error">Enter your password.</p>`,
		`value="acme &lt;script&gt;"`,
		`name="password" type="password"`,
		`action="/console/login"`,
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("login page lacks %s", want)
		}
	}
	for _, unwanted := range []string{`login-user-error`, `<nav`, `Log out`, `csrf`} {
		if strings.Contains(doc, unwanted) {
			t.Errorf("login page has %s", unwanted)
		}
	}
}

func TestRenderSignedInLayout(t *testing.T) {
	tpl, err := ParseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	if err := tpl.AddPage("kitchensink", kitchenSink(t)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err = tpl.Render(&buf, "kitchensink", Page{
		Title: "Devices", Active: "devices", Tenant: "Acme Research", User: "alice@acme.example",
		Flash: []Flash{{Kind: FlashOK, Text: "Device renamed."}},
		Data:  map[string]any{"Chart": sampleChart(), "Secret": "hg_live_5fK2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	doc := buf.String()
	lintHTML(t, doc)
	for _, want := range []string{
		`<nav class="sidenav" aria-label="Console">`,
		`<a href="/console/devices" aria-current="page">Devices</a>`,
		`<a href="/console/">Overview</a>`,
		`Acme Research`,
		`alice@acme.example`,
		`<form method="post" action="/console/logout">`,
		`<dialog id="confirm-dialog"`,
		`<script type="application/json" id="budget-data">{"label":"Budget left (ε)"`,
		`src="/console/static/vendor/htmx.min.js?v=`,
		`src="/console/static/console.js?v=`,
		`href="/console/static/console.css?v=`,
		`<meta name="htmx-config" content='{"allowEval":false,`,
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if n := strings.Count(doc, `aria-current="page"`); n != 1 {
		t.Errorf("%d entries marked aria-current, want 1", n)
	}
	for _, item := range Nav {
		if !strings.Contains(doc, ">"+item.Label+"</a>") {
			t.Errorf("navigation lacks %s", item.Label)
		}
	}

	// The fragment that htmx swaps in renders alone.
	buf.Reset()
	if err := tpl.RenderTemplate(&buf, "kitchensink", "budget-panel", map[string]any{"Chart": sampleChart()}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(strings.TrimSpace(buf.String()), `<section class="panel" id="budget-panel"`) {
		t.Errorf("fragment: %s", buf.String())
	}
}

func TestUnknownAssetFailsTheTemplate(t *testing.T) {
	tpl, err := ParseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	if err := tpl.AddPage("bad", `{{define "content"}}<img src="{{asset "nope.png"}}" alt="">{{end}}`); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tpl.Render(&buf, "bad", Page{Title: "x"}); err == nil || !strings.Contains(err.Error(), "nope.png") {
		t.Fatalf("err %v, want one naming nope.png", err)
	}
	if buf.Len() != 0 {
		t.Errorf("a failed render wrote %d bytes", buf.Len())
	}
	if err := tpl.Render(&buf, "missing", Page{}); err == nil {
		t.Error("rendered a page that does not exist")
	}
}

var voidElements = map[string]bool{
	"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true, "img": true,
	"input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true,
}

// lintHTML checks what the console's pages promise: balanced tags, no
// inline script or style (the CSP forbids them), versioned same-origin
// assets, unique ids, and ids that the ARIA and label references name.
func lintHTML(t *testing.T, doc string) {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(doc))
	var stack []string
	ids := map[string]int{}
	var refs []string // ids that something refers to
	labelled := map[string]bool{}
	var inputs []string
	inScript, scriptJSON := false, false
	var scriptBody strings.Builder
	versioned := regexp.MustCompile(`^/console/static/[A-Za-z0-9._/-]+\?v=[0-9a-f]{12}$`)
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if z.Err() != io.EOF {
				t.Fatalf("tokenizing: %v", z.Err())
			}
			break
		}
		tok := z.Token()
		switch tt {
		case html.TextToken:
			if inScript {
				scriptBody.WriteString(tok.Data)
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				attrs[a.Key] = a.Val
				switch {
				case strings.HasPrefix(a.Key, "on"):
					t.Errorf("<%s %s=…>: an inline event handler", tok.Data, a.Key)
				case a.Key == "style":
					t.Errorf("<%s style=…>: an inline style", tok.Data)
				case strings.HasPrefix(a.Key, "hx-on"):
					t.Errorf("<%s %s>: hx-on needs eval, which the CSP forbids", tok.Data, a.Key)
				case strings.HasPrefix(strings.TrimSpace(strings.ToLower(a.Val)), "javascript:"):
					t.Errorf("<%s %s=%q>: a javascript: URL", tok.Data, a.Key, a.Val)
				case a.Key == "id":
					ids[a.Val]++
				case a.Key == "aria-describedby" || a.Key == "aria-labelledby":
					refs = append(refs, strings.Fields(a.Val)...)
				case a.Key == "data-copy" || a.Key == "data-chart" || a.Key == "aria-controls":
					refs = append(refs, a.Val)
				}
			}
			switch tok.Data {
			case "style":
				t.Errorf("a <style> element")
			case "script":
				src, hasSrc := attrs["src"]
				scriptJSON = attrs["type"] == "application/json"
				switch {
				case hasSrc && !versioned.MatchString(src):
					t.Errorf("<script src=%q>: not a versioned console asset", src)
				case !hasSrc && !scriptJSON:
					t.Errorf("an inline <script> (type %q)", attrs["type"])
				}
				inScript = true
				scriptBody.Reset()
			case "link":
				if attrs["rel"] == "stylesheet" || attrs["rel"] == "icon" {
					if !versioned.MatchString(attrs["href"]) {
						t.Errorf("<link rel=%s href=%q>: not a versioned console asset", attrs["rel"], attrs["href"])
					}
				}
			case "label":
				if f := attrs["for"]; f != "" {
					labelled[f] = true
					refs = append(refs, f)
				}
			case "input", "select", "textarea":
				switch attrs["type"] {
				case "hidden", "submit", "button", "reset":
				default:
					if attrs["aria-label"] == "" && attrs["aria-labelledby"] == "" {
						inputs = append(inputs, attrs["id"])
					}
				}
			}
			if tt == html.StartTagToken && !voidElements[tok.Data] {
				stack = append(stack, tok.Data)
			}
		case html.EndTagToken:
			if len(stack) == 0 || stack[len(stack)-1] != tok.Data {
				t.Fatalf("</%s> closes %v", tok.Data, stack)
			}
			stack = stack[:len(stack)-1]
			if tok.Data == "script" {
				if scriptJSON && strings.TrimSpace(scriptBody.String()) == "" {
					t.Errorf("an empty JSON data island")
				}
				if !scriptJSON && strings.TrimSpace(scriptBody.String()) != "" {
					t.Errorf("a <script src> with a body")
				}
				inScript = false
			}
		}
	}
	if len(stack) != 0 {
		t.Errorf("unclosed elements: %v", stack)
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("id %q used %d times", id, n)
		}
	}
	for _, r := range refs {
		if ids[r] == 0 {
			t.Errorf("a reference to the missing id %q", r)
		}
	}
	for _, id := range inputs {
		if id == "" || !labelled[id] {
			t.Errorf("a form control (id %q) without a <label for>", id)
		}
	}
	if ids["main"] != 1 || !strings.Contains(doc, "<main ") {
		t.Errorf("no <main id=main>")
	}
}

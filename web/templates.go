package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// The console's templates: templates/layout.html defines "layout", the
// page frame, with the blocks "title" and "content"; every other
// templates/*.html is a page that defines those blocks. Each page is parsed
// into a set of its own (the layout, the partials under templates/partials/
// if any, and the page), so that pages do not see each other's blocks.
//
//go:embed templates
var templateFS embed.FS

// TemplateFS is the embedded templates folder; its files are
// "templates/*.html".
func TemplateFS() fs.FS { return templateFS }

// Funcs are the funcs the templates may call:
//
//	asset "console.css"   the versioned URL of a static file (AssetPath); an
//	                      unknown name fails the execution
//	nav                   the navigation entries, Nav
func Funcs() template.FuncMap {
	return template.FuncMap{
		"asset": func(name string) (string, error) {
			if _, ok := assets[name]; !ok {
				return "", fmt.Errorf("web: no static file %q", name)
			}
			return AssetPath(name), nil
		},
		"nav": func() []NavItem { return Nav },
	}
}

// NavItem is one entry of the console's left navigation.
type NavItem struct {
	Key   string // what Page.Active names to mark it the current page
	Label string
	Path  string
}

// Nav is the console's navigation, in order.
var Nav = []NavItem{
	{Key: "overview", Label: "Overview", Path: "/console/"},
	{Key: "devices", Label: "Devices", Path: "/console/devices"},
	{Key: "enrollment", Label: "Enrollment policy", Path: "/console/enrollment"},
	{Key: "models", Label: "Models", Path: "/console/models"},
	{Key: "budget", Label: "Privacy budget", Path: "/console/budget"},
	{Key: "keysets", Label: "Key sets", Path: "/console/keysets"},
	{Key: "jobs", Label: "Jobs", Path: "/console/jobs"},
	{Key: "apikeys", Label: "API keys", Path: "/console/apikeys"},
	{Key: "audit", Label: "Audit log", Path: "/console/audit"},
}

// Page is what the layout reads. A page's own data goes in Data.
type Page struct {
	Title  string // the page's title; the layout adds " · hegate"
	Active string // the NavItem.Key of this page, marked aria-current="page"
	Tenant string // the signed-in tenant's display name
	// User is the signed-in user. Without one the layout shows neither the
	// navigation nor the user menu (the login page).
	User string
	// Role is the signed-in user's role (admin, viewer, operator): pages
	// hide the forms a viewer may not use (the service refuses them anyway).
	Role  string
	Flash []Flash // messages shown at the top of main, in a role=status area
	Data  any
}

// FlashKind is the kind of a Flash message, which picks its style and the
// word before it (so that the kind is never told by colour alone).
type FlashKind string

// The kinds of Flash messages.
const (
	FlashOK      FlashKind = "ok"
	FlashWarning FlashKind = "warning"
	FlashDanger  FlashKind = "danger"
)

// Flash is a one-off message at the top of a page.
type Flash struct {
	Kind FlashKind
	Text string
}

// Label is the word shown before the message.
func (f Flash) Label() string {
	switch f.Kind {
	case FlashOK:
		return "Done"
	case FlashWarning:
		return "Warning"
	case FlashDanger:
		return "Error"
	}
	return "Note"
}

// LoginForm is the Data of the login page: the values to show again (never
// the password) and the error of each field, by field name ("tenant",
// "user", "password").
type LoginForm struct {
	Tenant string
	User   string
	// Next is the console page to go to after logging in.
	Next   string
	Errors map[string]string
}

// Templates are the parsed pages.
type Templates struct {
	base  *template.Template // the layout and the partials
	pages map[string]*template.Template
}

// ParseTemplates parses the embedded templates.
func ParseTemplates() (*Templates, error) { return parseTemplates(templateFS) }

func parseTemplates(fsys fs.FS) (*Templates, error) {
	base, err := template.New("").Funcs(Funcs()).ParseFS(fsys, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	partials, err := fs.Glob(fsys, "templates/partials/*.html")
	if err != nil {
		return nil, err
	}
	if len(partials) > 0 {
		if base, err = base.ParseFS(fsys, partials...); err != nil {
			return nil, err
		}
	}
	files, err := fs.Glob(fsys, "templates/*.html")
	if err != nil {
		return nil, err
	}
	t := &Templates{base: base, pages: map[string]*template.Template{}}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		text, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		if err := t.AddPage(name, string(text)); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return t, nil
}

// AddPage parses text as the page name (defining "title" and "content"),
// in a set of its own with the layout. It replaces a page of that name.
// Call it before the Templates are used by more than one goroutine.
func (t *Templates) AddPage(name, text string) error {
	set, err := t.base.Clone()
	if err != nil {
		return err
	}
	if _, err := set.New(name + ".html").Parse(text); err != nil {
		return err
	}
	t.pages[name] = set
	return nil
}

// Pages lists the page names (the file names without .html), sorted.
func (t *Templates) Pages() []string {
	names := make([]string, 0, len(t.pages))
	for n := range t.pages {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Render writes the page (such as "login") in the layout. It renders into
// a buffer first, so a failing template writes nothing.
func (t *Templates) Render(w io.Writer, page string, data Page) error {
	return t.RenderTemplate(w, page, "layout", data)
}

// RenderTemplate writes one named template of a page's set, such as a
// fragment that htmx swaps in.
func (t *Templates) RenderTemplate(w io.Writer, page, name string, data any) error {
	set, ok := t.pages[page]
	if !ok {
		return fmt.Errorf("web: no page %q", page)
	}
	var buf bytes.Buffer
	if err := set.ExecuteTemplate(&buf, name, data); err != nil {
		return err
	}
	_, err := buf.WriteTo(w)
	return err
}

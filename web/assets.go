// The console's static assets (console.go has the package's doc comment).
//
// Everything the browser loads comes from this binary. The front-end
// libraries are vendored, minified files from npm (static/vendor/VERSIONS.md
// says which), embedded with go:embed; nothing is built at run time and no
// page loads anything from another origin. The pages carry no inline script
// or style, so they run under ContentSecurityPolicy.

package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"
)

// StaticPrefix is the URL path under which StaticHandler serves the files
// of static/.
const StaticPrefix = "/console/static/"

// ContentSecurityPolicy is the policy of every console page. It allows no
// inline script and no inline style, so console.js carries the pages'
// behaviour and console.css their look; JSON data islands
// (<script type="application/json">) are data, which the policy does not
// govern.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"

//go:embed static
var staticFS embed.FS

// contentTypes are the types of the files that StaticHandler serves, by
// extension. A file of another extension (VERSIONS.md, update.sh) is
// embedded but not served. The table is ours, not mime.TypeByExtension's,
// so a machine's /etc/mime.types cannot change what the console sends.
var contentTypes = map[string]string{
	".css":   "text/css; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".txt":   "text/plain; charset=utf-8",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".woff2": "font/woff2",
}

// asset is one servable file of static/.
type asset struct {
	data        []byte
	version     string // the first 12 hex digits of the sha256 of data
	contentType string
}

// assets holds every servable file, by its name under static/ ("console.css",
// "vendor/htmx.min.js"). It is built once, at init, from the embedded files.
var assets = loadAssets(staticFS)

func loadAssets(fsys fs.FS) map[string]*asset {
	m := map[string]*asset{}
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		m[strings.TrimPrefix(p, "static/")] = &asset{
			data:        data,
			version:     hex.EncodeToString(sum[:])[:12],
			contentType: ct,
		}
		return nil
	})
	if err != nil {
		// The files are compiled in: a failure here is a broken build.
		panic("web: reading the embedded static files: " + err.Error())
	}
	return m
}

// AssetPath returns the URL of the static file name (a path under static/,
// such as "console.css" or "vendor/htmx.min.js") with its content version:
// /console/static/<name>?v=<the first 12 hex digits of its sha256>. A page
// that links the file by this URL may be cached for a year, since a change
// of the file changes the URL. For a name that is not a servable file it
// returns the URL without a version (which StaticHandler answers with 404);
// the templates' "asset" func fails instead.
func AssetPath(name string) string {
	a, ok := assets[name]
	if !ok {
		return StaticPrefix + name
	}
	return StaticPrefix + name + "?v=" + a.version
}

// AssetNames lists the servable static files, sorted.
func AssetNames() []string {
	names := make([]string, 0, len(assets))
	for n := range assets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// StaticHandler serves the files of static/ at StaticPrefix. Mount it at
// that path ("/console/static/"); it reads the full request path and
// answers 404 for a path outside the prefix.
//
// A request whose v parameter is the file's current version gets
// "Cache-Control: public, max-age=31536000, immutable"; any other request
// (no v, or a v of an older file) gets the current file with "no-cache", so
// that a stale page does not pin a stale file. Every answer has an ETag,
// the file's own Content-Type and "X-Content-Type-Options: nosniff".
func StaticHandler() http.Handler {
	return http.HandlerFunc(serveStatic)
}

func serveStatic(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, StaticPrefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	a, ok := assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", `"`+a.version+`"`)
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if r.URL.Query().Get("v") == a.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	// ServeContent answers If-None-Match with 304, HEAD and Range requests.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.data))
}

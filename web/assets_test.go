package web

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestAssetPath(t *testing.T) {
	data, err := os.ReadFile("static/console.css")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := "/console/static/console.css?v=" + hex.EncodeToString(sum[:])[:12]
	if got := AssetPath("console.css"); got != want {
		t.Errorf("AssetPath(console.css) = %s, want %s", got, want)
	}
	if got := AssetPath("vendor/htmx.min.js"); !regexp.MustCompile(`^/console/static/vendor/htmx\.min\.js\?v=[0-9a-f]{12}$`).MatchString(got) {
		t.Errorf("AssetPath(vendor/htmx.min.js) = %s", got)
	}
	if got := AssetPath("nope.js"); got != "/console/static/nope.js" {
		t.Errorf("AssetPath(nope.js) = %s", got)
	}
	for _, n := range []string{"console.css", "console.js", "favicon.svg", "vendor/htmx.min.js", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"} {
		if _, ok := assets[n]; !ok {
			t.Errorf("%s is not served", n)
		}
	}
}

func get(t *testing.T, h http.Handler, method, target string, hdr ...string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func TestStaticHandler(t *testing.T) {
	h := StaticHandler()
	for _, c := range []struct{ name, ctype string }{
		{"console.css", "text/css; charset=utf-8"},
		{"console.js", "text/javascript; charset=utf-8"},
		{"vendor/htmx.min.js", "text/javascript; charset=utf-8"},
		{"vendor/uPlot.min.css", "text/css; charset=utf-8"},
		{"favicon.svg", "image/svg+xml"},
		{"vendor/LICENSE.uplot.txt", "text/plain; charset=utf-8"},
	} {
		res := get(t, h, "GET", AssetPath(c.name))
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Errorf("%s: %d", c.name, res.StatusCode)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != c.ctype {
			t.Errorf("%s: Content-Type %q, want %q", c.name, got, c.ctype)
		}
		if got := res.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", c.name, got)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", c.name, got)
		}
		want, _ := os.ReadFile("static/" + c.name)
		if string(body) != string(want) {
			t.Errorf("%s: body differs from the file", c.name)
		}
	}

	// Without the version, or with a stale one: the file, but not cached for a year.
	for _, target := range []string{"/console/static/console.css", "/console/static/console.css?v=000000000000"} {
		res := get(t, h, "GET", target)
		if res.StatusCode != 200 || res.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s: %d, Cache-Control %q", target, res.StatusCode, res.Header.Get("Cache-Control"))
		}
	}

	// Revalidation.
	res := get(t, h, "GET", "/console/static/console.css")
	etag := res.Header.Get("ETag")
	if res = get(t, h, "GET", "/console/static/console.css", "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match %s: %d", etag, res.StatusCode)
	}

	// HEAD works; other methods do not.
	if res = get(t, h, "HEAD", AssetPath("console.js")); res.StatusCode != 200 {
		t.Errorf("HEAD: %d", res.StatusCode)
	}
	if res = get(t, h, "POST", AssetPath("console.js")); res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}

	// Not served: the embedded docs and scripts, anything outside static/.
	for _, target := range []string{
		"/console/static/vendor/VERSIONS.md",
		"/console/static/vendor/update.sh",
		"/console/static/",
		"/console/static/vendor/",
		"/console/static/../assets.go",
		"/console/static/%2e%2e/assets.go",
		"/console/static/nope.js",
		"/elsewhere/console.css",
	} {
		res := get(t, h, "GET", target)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", target, res.StatusCode)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", target)
		}
	}
	if strings.Contains(strings.Join(AssetNames(), " "), ".md") {
		t.Errorf("AssetNames lists a .md: %v", AssetNames())
	}
}

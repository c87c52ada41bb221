package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/hegate/hegate/web"
)

// server serves the real layout, stylesheet and scripts under the
// console's CSP: the kitchen-sink page (testdata/kitchensink.html) at
// /console/, the login page, and a few pages made to break the rules.
type server struct {
	*httptest.Server
	deletes atomic.Int32 // POSTs to the confirmed form's action
}

func newServer(t *testing.T) *server {
	t.Helper()
	tpl, err := web.ParseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	ks, err := os.ReadFile("testdata/kitchensink.html")
	if err != nil {
		t.Fatal(err)
	}
	if err := tpl.AddPage("kitchensink", string(ks)); err != nil {
		t.Fatal(err)
	}
	chart := func(n int) map[string]any {
		x := []int64{1748736000}
		y := []float64{10}
		for i := 1; i < n; i++ {
			x = append(x, x[i-1]+86400)
			y = append(y, y[i-1]*0.8)
		}
		return map[string]any{"label": "Budget left (ε)", "step": true, "total": 10, "x": x, "y": y}
	}
	sample := web.Page{
		Title: "Devices", Active: "devices", Tenant: "Acme Research", User: "alice@acme.example", Role: "admin",
		Flash: []web.Flash{{Kind: web.FlashOK, Text: "Device renamed."}, {Kind: web.FlashWarning, Text: "Two devices need a new attestation."}},
		Data:  map[string]any{"Chart": chart(8), "Secret": "hg_live_5fK2pQ9xW7mN3vB8cR1tY6uZ"},
	}
	s := &server{}
	mux := http.NewServeMux()
	mux.Handle(web.StaticPrefix, web.StaticHandler())
	render := func(w http.ResponseWriter, name string, p web.Page) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := tpl.Render(w, name, p); err != nil {
			t.Errorf("rendering %s: %v", name, err)
		}
	}
	mux.HandleFunc("GET /console/{$}", func(w http.ResponseWriter, r *http.Request) {
		render(w, "kitchensink", sample)
	})
	mux.HandleFunc("GET /console/login", func(w http.ResponseWriter, r *http.Request) {
		render(w, "login", web.Page{
			Title: "Log in",
			Flash: []web.Flash{{Kind: web.FlashDanger, Text: "Wrong tenant, user name or password."}},
			Data:  web.LoginForm{Tenant: "acme", User: "alice", Errors: map[string]string{"password": "Enter your password."}},
		})
	})
	mux.HandleFunc("GET /console/test/budget", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := tpl.RenderTemplate(w, "kitchensink", "budget-panel", map[string]any{"Chart": chart(12)}); err != nil {
			t.Errorf("rendering the fragment: %v", err)
		}
	})
	mux.HandleFunc("POST /console/test/delete", func(w http.ResponseWriter, r *http.Request) {
		s.deletes.Add(1)
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
	})
	// Pages that break the rules, so that the checks are seen to fail.
	mux.HandleFunc("GET /bad", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><html lang="en"><head><title>Bad</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/bad.css"></head>
<body><main><h1>Bad page</h1><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" width="40" height="40">
<p class="faint">This text is too faint to read.</p></main></body></html>`)
	})
	mux.HandleFunc("GET /bad.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprint(w, `.faint { color: #c0c0c0; background: #ffffff; }`)
	})
	mux.HandleFunc("GET /inline-script", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><html lang="en"><head><title>Inline</title><link rel="icon" href="data:,"></head><body><main><h1>Inline</h1>
<script>document.title = "ran";</script></main></body></html>`)
	})
	mux.HandleFunc("GET /throws", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><html lang="en"><head><title>Throws</title><link rel="icon" href="data:,"><script src="/throws.js"></script></head><body><main><h1>Throws</h1></main></body></html>`)
	})
	mux.HandleFunc("GET /throws.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `throw new Error("boom from throws.js");`)
	})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", web.ContentSecurityPolicy)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// screenshotDir is where screenshots go: $HEGATE_SCREENSHOT_DIR to keep
// them and look at them, else the test's temporary folder.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("HEGATE_SCREENSHOT_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// shoot takes a full-page screenshot at w x h and checks that it is a PNG
// exactly w wide: nothing on the page overflows sideways.
func shoot(t *testing.T, ctx context.Context, dir, name string, w, h int64) {
	t.Helper()
	if err := SetViewport(ctx, w, h); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%dx%d.png", name, w, h))
	if err := Screenshot(ctx, path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if got := img.Bounds().Dx(); int64(got) != w {
		t.Errorf("%s: %d pixels wide, want %d: something overflows the viewport sideways", path, got, w)
	}
	if got := img.Bounds().Dy(); int64(got) < h {
		t.Errorf("%s: %d pixels high, want at least %d", path, got, h)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

func poll(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("waiting for %s: %v", expr, err)
	}
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }
func (r *recorder) Logf(string, ...any)               {}
func (r *recorder) Helper()                           {}

func TestHarness(t *testing.T) {
	t0 := time.Now()
	b := Start(t)
	t.Logf("Chromium started in %v", time.Since(t0).Round(time.Millisecond))
	srv := newServer(t)
	dir := screenshotDir(t)

	t.Run("console page", func(t *testing.T) {
		t0 := time.Now()
		ctx := b.NewTab(t)
		if err := Navigate(ctx, srv.URL+"/console/"); err != nil {
			t.Fatal(err)
		}
		if got := eval[string](t, ctx, `document.title`); got != "Devices · hegate" {
			t.Errorf("title %q", got)
		}
		// The scripts ran under the CSP: htmx, uPlot, and console.js's chart.
		poll(t, ctx, `document.querySelector('[data-chart] canvas') !== null`)
		if got := eval[string](t, ctx, `typeof htmx + " " + typeof uPlot`); got != "object function" {
			t.Errorf("typeof htmx, uPlot: %s", got)
		}
		// htmx was told not to inject its <style>, which the CSP would refuse.
		if n := eval[int](t, ctx, `document.querySelectorAll('style').length`); n != 0 {
			t.Errorf("%d <style> elements in the page", n)
		}
		RequireNoSeriousAxe(t, ctx, "console page at 1280x800")
		shoot(t, ctx, dir, "console", 1280, 800)

		shoot(t, ctx, dir, "console", 390, 844)
		RequireNoSeriousAxe(t, ctx, "console page at 390x844")
		if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 390 {
			t.Errorf("at 390 wide the page is %d wide", w)
		}
		// The navigation and the table scroll inside themselves instead.
		if got := eval[bool](t, ctx, `(() => { const u = document.querySelector('.sidenav ul'); return u.scrollWidth > u.clientWidth })()`); !got {
			t.Errorf("at 390 wide the navigation does not scroll sideways")
		}
		if got := eval[bool](t, ctx, `(() => { const w = document.querySelector('.table-wrap'); return w.scrollWidth > w.clientWidth })()`); !got {
			t.Errorf("at 390 wide the table does not scroll inside its container")
		}
		RequireNoConsoleErrors(t, ctx)
		t.Logf("console page: load, 2 axe runs, 2 screenshots in %v", time.Since(t0).Round(time.Millisecond))
	})

	t.Run("login page", func(t *testing.T) {
		ctx := b.NewTab(t)
		if err := Navigate(ctx, srv.URL+"/console/login"); err != nil {
			t.Fatal(err)
		}
		RequireNoSeriousAxe(t, ctx, "login page")
		shoot(t, ctx, dir, "login", 1280, 800)
		shoot(t, ctx, dir, "login", 390, 844)
		RequireNoSeriousAxe(t, ctx, "login page at 390x844")
		if got := eval[string](t, ctx, `document.getElementById('login-password').getAttribute('aria-describedby')`); got != "login-password-error" {
			t.Errorf("password aria-describedby %q", got)
		}
	})

	t.Run("axe finds problems", func(t *testing.T) {
		ctx := b.NewTab(t)
		if err := Navigate(ctx, srv.URL+"/bad"); err != nil {
			t.Fatal(err)
		}
		vs, err := Axe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]string{}
		for _, v := range vs {
			found[v.ID] = v.Impact
			if len(v.Nodes) == 0 || len(v.Nodes[0].Target) == 0 {
				t.Errorf("%s: no node targets", v.ID)
			}
		}
		if found["image-alt"] != "critical" {
			t.Errorf("image-alt: %q, want critical; all: %v", found["image-alt"], vs)
		}
		if found["color-contrast"] != "serious" {
			t.Errorf("color-contrast: %q, want serious; all: %v", found["color-contrast"], vs)
		}
		rec := &recorder{TB: t}
		RequireNoSeriousAxe(rec, ctx, "bad page")
		if len(rec.errors) < 2 {
			t.Errorf("RequireNoSeriousAxe reported %d failures on the bad page, want 2 or more: %v", len(rec.errors), rec.errors)
		}
	})

	t.Run("collector catches CSP violations and exceptions", func(t *testing.T) {
		ctx := b.NewTab(t)
		if err := Navigate(ctx, srv.URL+"/inline-script"); err != nil {
			t.Fatal(err)
		}
		if got := eval[string](t, ctx, `document.title`); got == "ran" {
			t.Fatal("the inline script ran despite the CSP")
		}
		msgs := waitErrors(t, ctx, "Content Security Policy")
		t.Logf("CSP violation: %s", msgs)

		if err := Navigate(ctx, srv.URL+"/throws"); err != nil {
			t.Fatal(err)
		}
		msgs = waitErrors(t, ctx, "boom from throws.js")
		t.Logf("exception: %s", msgs)
	})
}

// waitErrors waits until the tab collected an error that contains want,
// and takes the collected errors.
func waitErrors(t *testing.T, ctx context.Context, want string) string {
	t.Helper()
	var all []string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		all = append(all, ConsoleErrors(ctx)...)
		if strings.Contains(strings.Join(all, "\n"), want) {
			return strings.Join(all, "\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no collected error mentions %q; got %q", want, all)
	return ""
}

// The behaviours of console.js, in the real layout under the CSP.
func TestConsoleScript(t *testing.T) {
	b := Start(t)
	srv := newServer(t)
	ctx := b.NewTab(t)
	if err := Navigate(ctx, srv.URL+"/console/"); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, `document.querySelector('[data-chart] canvas') !== null`)

	t.Run("confirm dialog", func(t *testing.T) {
		// Cancel: the dialog closes, nothing is posted.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("revoke-1"))); err != nil {
			t.Fatal(err)
		}
		poll(t, ctx, `document.getElementById('confirm-dialog').open`)
		if got := eval[string](t, ctx, `document.getElementById('confirm-dialog-message').textContent`); !strings.HasPrefix(got, "Revoke edge-gateway-berlin-01?") {
			t.Errorf("dialog message %q", got)
		}
		if got := eval[string](t, ctx, `document.getElementById('confirm-dialog-confirm').textContent`); got != "Revoke" {
			t.Errorf("confirm button %q", got)
		}
		// Focus starts on Cancel, the safe choice.
		if got := eval[string](t, ctx, `document.activeElement.value`); got != "cancel" {
			t.Errorf("focus on %q, want the Cancel button", got)
		}
		shoot(t, ctx, screenshotDir(t), "confirm-dialog", 1280, 800)
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#confirm-dialog button[value="cancel"]`))); err != nil {
			t.Fatal(err)
		}
		poll(t, ctx, `!document.getElementById('confirm-dialog').open`)
		time.Sleep(200 * time.Millisecond)
		if n := srv.deletes.Load(); n != 0 {
			t.Fatalf("%d POSTs after Cancel", n)
		}

		// Confirm: the form is posted, once.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("revoke-1"))); err != nil {
			t.Fatal(err)
		}
		poll(t, ctx, `document.getElementById('confirm-dialog').open`)
		_, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil,
			chromedp.Click(chromedp.ID("confirm-dialog-confirm"))))
		if err != nil {
			t.Fatal(err)
		}
		if n := srv.deletes.Load(); n != 1 {
			t.Fatalf("%d POSTs after Confirm, want 1", n)
		}
		poll(t, ctx, `document.querySelector('[data-chart] canvas') !== null`)
	})

	t.Run("copy button", func(t *testing.T) {
		_, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: "clipboard-read"}, Setting: browser.PermissionSettingGranted, Origin: srv.URL,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-copy="new-key"]`))); err != nil {
			t.Fatal(err)
		}
		poll(t, ctx, `document.getElementById('live-status').textContent !== ''`)
		if got := eval[string](t, ctx, `document.getElementById('live-status').textContent`); got != "Copied to the clipboard." {
			t.Errorf("live status %q", got)
		}
		if got := eval[string](t, ctx, `document.querySelector('button[data-copy="new-key"]').textContent`); got != "Copied" {
			t.Errorf("button says %q", got)
		}
		clip, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Logf("reading the clipboard back: %v (not checked)", err)
		} else if clip != "hg_live_5fK2pQ9xW7mN3vB8cR1tY6uZ" {
			t.Errorf("clipboard %q", clip)
		}
	})

	t.Run("user menu", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`.user-menu > summary`))); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`.user-menu button[type="submit"]`))); err != nil {
			t.Fatal(err)
		}
		if got := eval[string](t, ctx, `document.querySelector('.user-menu .menu').textContent.replace(/\s+/g, ' ').trim()`); got != "Role: admin Log out" {
			t.Errorf("menu says %q", got)
		}
		RequireNoSeriousAxe(t, ctx, "console page with the user menu open")
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Escape)); err != nil {
			t.Fatal(err)
		}
		poll(t, ctx, `!document.querySelector('.user-menu').open && document.activeElement === document.querySelector('.user-menu > summary')`)
	})

	t.Run("chart redrawn after an htmx swap", func(t *testing.T) {
		before := eval[int](t, ctx, `JSON.parse(document.getElementById('budget-data').textContent).x.length`)
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("refresh-budget"))); err != nil {
			t.Fatal(err)
		}
		poll(t, ctx, `(() => { const d = document.getElementById('budget-data'); return d !== null && JSON.parse(d.textContent).x.length === 12 })()`)
		poll(t, ctx, `(() => { const c = document.querySelector('#budget-panel [data-chart]'); return c.dataset.chartDrawn === 'true' && c.querySelector('canvas') !== null })()`)
		if before == 12 {
			t.Errorf("the fragment did not change the data")
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('[data-chart] canvas').length`); n != 1 {
			t.Errorf("%d chart canvases after the swap, want 1", n)
		}
		RequireNoSeriousAxe(t, ctx, "console page after the swap")
	})
}

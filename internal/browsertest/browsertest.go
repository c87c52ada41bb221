// Package browsertest runs the console's pages in a real headless Chromium
// for tests: screenshots at a given viewport, axe-core accessibility checks,
// and a collector that fails a test on a JavaScript error or a Content
// Security Policy violation.
//
// Start finds Chromium at $HEGATE_CHROMIUM or /usr/bin/chromium (Debian's
// package "chromium"). Without one the test is skipped, except under CI=true,
// where it fails: CI must run the browser tests.
//
// A typical test:
//
//	b := browsertest.Start(t)
//	ctx := b.NewTab(t)
//	if err := browsertest.Navigate(ctx, srv.URL+"/console/"); err != nil {
//		t.Fatal(err)
//	}
//	browsertest.RequireNoSeriousAxe(t, ctx, "overview")
//
// The tab fails the test at its end if the page logged an error; a test that
// provokes errors on purpose takes them with ConsoleErrors first.
package browsertest

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// axeSource is axe-core's axe.min.js (see web/static/vendor/VERSIONS.md).
// Only tests embed it; the console never serves it.
//
//go:embed testdata/axe.min.js
var axeSource string

// DefaultWidth and DefaultHeight are the window size of a new browser.
const (
	DefaultWidth  = 1280
	DefaultHeight = 800
)

// tabTimeout bounds everything one tab does, so that a hung page fails the
// test instead of eating the whole go test timeout.
const tabTimeout = 3 * time.Minute

// Browser is a headless Chromium, for one test.
type Browser struct {
	ctx    context.Context // the browser's chromedp context
	output *lockedBuffer   // what Chromium printed, shown when the test fails
}

// ChromiumPath returns the Chromium to run: $HEGATE_CHROMIUM if set, else
// /usr/bin/chromium, else chromium or chromium-browser on $PATH; "" when
// there is none.
func ChromiumPath() string {
	if p := os.Getenv("HEGATE_CHROMIUM"); p != "" {
		return p
	}
	if st, err := os.Stat("/usr/bin/chromium"); err == nil && !st.IsDir() {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Start launches a headless Chromium with a fresh profile under t.TempDir()
// and a 1280x800 window, and closes it when the test ends. It skips the test
// when no Chromium is installed, or fails it when CI is "true".
func Start(t testing.TB) *Browser {
	t.Helper()
	path := ChromiumPath()
	if path == "" {
		msg := "no Chromium: install Debian's chromium package (apt-get install chromium) or set HEGATE_CHROMIUM to a Chromium or Chrome binary"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI=true, so the browser tests must run")
		}
		t.Skip(msg)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Chromium %s: %v (HEGATE_CHROMIUM=%q)", path, err, os.Getenv("HEGATE_CHROMIUM"))
	}

	out := &lockedBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // as root in CI; the pages are our own
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(DefaultWidth, DefaultHeight),
		chromedp.CombinedOutput(out),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)

	// The first Do starts the browser and ties its life to ctx (so it gets
	// no timeout of its own); a watchdog bounds the start instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			cancel()
			cancelAlloc()
			t.Fatalf("starting %s: %v\n%s", path, err, out.String())
		}
	case <-time.After(time.Minute):
		cancel()
		cancelAlloc()
		t.Fatalf("starting %s: no answer in a minute\n%s", path, out.String())
	}

	b := &Browser{ctx: ctx, output: out}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		if err := chromedp.Cancel(cctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("closing Chromium: %v", err)
		}
		cancel()
		cancelAlloc()
		if t.Failed() && out.Len() > 0 {
			t.Logf("Chromium's output:\n%s", out.String())
		}
	})
	return b
}

// NewTab opens a tab in the browser. Its context ends with the test, or
// after three minutes. The page's JavaScript errors, console.error calls
// and browser log errors (a CSP violation, a failed load) are collected
// from the start; any left when the test ends fail it.
func (b *Browser) NewTab(t testing.TB) context.Context {
	t.Helper()
	col := &collector{}
	tabCtx, cancel := chromedp.NewContext(b.ctx, chromedp.WithListener(col.listen))
	if err := chromedp.Do(tabCtx); err != nil {
		cancel()
		t.Fatalf("opening a tab: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(context.WithValue(tabCtx, collectorKey{}, col), tabTimeout)
	t.Cleanup(func() {
		if msgs := col.take(); len(msgs) > 0 {
			t.Errorf("the page logged errors:\n  %s", strings.Join(msgs, "\n  "))
		}
		cancelTimeout()
		cancel()
	})
	return ctx
}

// Navigate loads url in the tab and waits for its load event. A response
// status of 400 or more is an error.
func Navigate(ctx context.Context, url string) error {
	res, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		return fmt.Errorf("navigating to %s: %w", url, err)
	}
	if res != nil && res.Status >= 400 {
		return fmt.Errorf("navigating to %s: status %d", url, res.Status)
	}
	return nil
}

// SetViewport sets the tab's viewport to w x h CSS pixels at a device pixel
// ratio of 1 (portrait when h > w). It returns after three animation
// frames, so that what the page does on a resize in the next frame (such
// as a chart following its container) is done.
func SetViewport(ctx context.Context, w, h int64) error {
	var opts []chromedp.EmulateViewportOption
	if h > w {
		opts = append(opts, chromedp.EmulatePortrait)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h, opts...)); err != nil {
		return fmt.Errorf("viewport %dx%d: %w", w, h, err)
	}
	return Settle(ctx)
}

// settle waits for three animation frames, or half a second when the page
// draws no frames.
const settle = `new Promise(done => {
	const t = setTimeout(done, 500);
	requestAnimationFrame(() => requestAnimationFrame(() => requestAnimationFrame(() => { clearTimeout(t); done(); })));
})`

// Settle waits until the page has drawn three more frames: work that the
// page schedules for its next frame is then done.
func Settle(ctx context.Context) error {
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](settle, chromedp.EvalAwaitPromise)); err != nil {
		return fmt.Errorf("waiting for frames: %w", err)
	}
	return nil
}

// evalTimeout bounds one Eval; waitTry bounds one try of Wait's condition,
// and waitPoll is the pause between tries.
const (
	evalTimeout = 30 * time.Second
	waitTry     = 5 * time.Second
	waitPoll    = 50 * time.Millisecond
)

// Eval evaluates the JavaScript expression js in the tab, awaiting it if
// it is a promise, and returns its value as a T (chromedp.Void for none).
// It fails the test on an error, or after 30 seconds.
func Eval[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	ectx, cancel := context.WithTimeout(ctx, evalTimeout)
	defer cancel()
	v, err := chromedp.Run(ectx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %.200s: %v", js, err)
	}
	return v
}

// Wait evaluates cond, a JavaScript boolean expression, in the tab until it
// is true, failing the test (with the page's URL and the last error) after
// limit, or when the tab ends. An error, such as a navigation under way,
// counts as false.
func Wait(t testing.TB, ctx context.Context, what, cond string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		tctx, cancel := context.WithTimeout(ctx, waitTry)
		ok, err := chromedp.Run(tctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("waited %s for %s at %s: not so (last error %v)", limit, what, loc, err)
		}
		time.Sleep(waitPoll)
	}
}

// Screenshot writes a PNG of the whole page (beyond the viewport) to path.
// The image is as wide as the page's content: wider than the viewport when
// something overflows sideways.
func Screenshot(ctx context.Context, path string) error {
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	return os.WriteFile(path, buf, 0o644)
}

// Violation is one axe-core rule that the page breaks.
type Violation struct {
	ID      string          `json:"id"`     // the axe rule, such as "color-contrast"
	Impact  string          `json:"impact"` // "minor", "moderate", "serious" or "critical"
	Help    string          `json:"help"`
	HelpURL string          `json:"helpUrl"`
	Nodes   []ViolationNode `json:"nodes"`
}

// ViolationNode is one element that breaks the rule.
type ViolationNode struct {
	Target         []string `json:"target"` // CSS selectors of the element
	HTML           string   `json:"html"`
	FailureSummary string   `json:"failureSummary"`
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s [%s]", v.ID, v.Impact, v.Help, v.HelpURL)
	for _, n := range v.Nodes {
		fmt.Fprintf(&b, "\n    %s  %s", strings.Join(n.Target, " "), n.HTML)
		if n.FailureSummary != "" {
			fmt.Fprintf(&b, "\n      %s", strings.ReplaceAll(n.FailureSummary, "\n", "\n      "))
		}
	}
	return b.String()
}

// axeRun runs axe on the document and returns its violations in the shape
// of Violation. Shadow-DOM and iframe targets (nested arrays) are joined.
const axeRun = `axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({
	id: v.id, impact: v.impact || '', help: v.help, helpUrl: v.helpUrl,
	nodes: v.nodes.map(n => ({
		target: n.target.map(t => Array.isArray(t) ? t.join(' >>> ') : String(t)),
		html: n.html, failureSummary: n.failureSummary || ''
	}))
})))`

// Axe runs axe-core on the tab's current page and returns the violations.
// It injects the embedded axe.min.js with Runtime.evaluate, which the
// page's Content-Security-Policy does not govern, so it works on pages
// that forbid inline and foreign scripts.
func Axe(ctx context.Context) ([]Violation, error) {
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof window.axe === 'object' && typeof window.axe.run === 'function'`))
	if err != nil {
		return nil, fmt.Errorf("axe: %w", err)
	}
	if !loaded {
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](axeSource)); err != nil {
			return nil, fmt.Errorf("axe: injecting axe.min.js: %w", err)
		}
	}
	vs, err := chromedp.Run(ctx, chromedp.Evaluate[[]Violation](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		return nil, fmt.Errorf("axe: running: %w", err)
	}
	return vs, nil
}

// RequireNoSeriousAxe runs Axe and fails the test on a violation of impact
// serious or critical; lesser ones are logged. page names the page in the
// messages.
func RequireNoSeriousAxe(t testing.TB, ctx context.Context, page string) {
	t.Helper()
	vs, err := Axe(ctx)
	if err != nil {
		t.Fatalf("%s: %v", page, err)
	}
	for _, v := range vs {
		switch v.Impact {
		case "serious", "critical":
			t.Errorf("%s: accessibility: %s", page, v)
		default:
			t.Logf("%s: accessibility (%s, not failing): %s", page, v.Impact, v)
		}
	}
}

// ConsoleErrors returns, and forgets, the errors the tab's pages logged so
// far: uncaught exceptions and rejections, console.error and console.assert
// calls, and browser log entries of level error (CSP violations, failed
// loads). A test that provokes errors takes them with this, so that the
// tab does not fail it at the end.
func ConsoleErrors(ctx context.Context) []string {
	col, _ := ctx.Value(collectorKey{}).(*collector)
	if col == nil {
		return []string{"browsertest: the context is not a tab of NewTab"}
	}
	return col.take()
}

// RequireNoConsoleErrors fails the test if the tab's pages logged an error
// (see ConsoleErrors) since the last check.
func RequireNoConsoleErrors(t testing.TB, ctx context.Context) {
	t.Helper()
	if msgs := ConsoleErrors(ctx); len(msgs) > 0 {
		t.Errorf("the page logged errors:\n  %s", strings.Join(msgs, "\n  "))
	}
}

type collectorKey struct{}

// collector gathers a tab's error events. listen runs in the tab's message
// loop: it only appends, under the lock.
type collector struct {
	mu   sync.Mutex
	msgs []string
}

func (c *collector) listen(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "exception: " + exceptionText(ev.ExceptionDetails)
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var parts []string
		for _, a := range ev.Args {
			switch {
			case len(a.Value) > 0:
				parts = append(parts, strings.Trim(string(a.Value), `"`))
			case a.Description != "":
				parts = append(parts, a.Description)
			default:
				parts = append(parts, string(a.Type))
			}
		}
		msg = "console." + string(ev.Type) + ": " + strings.Join(parts, " ") + stackPlace(ev.StackTrace)
	case *log.EventEntryAdded:
		e := ev.Entry
		if e == nil || e.Level != log.EntryLevelError {
			return
		}
		msg = "log (" + string(e.Source) + "): " + e.Text
		if e.URL != "" {
			msg += fmt.Sprintf(" at %s:%d", e.URL, e.LineNumber+1)
		}
	default:
		return
	}
	c.mu.Lock()
	c.msgs = append(c.msgs, msg)
	c.mu.Unlock()
}

func (c *collector) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.msgs
	c.msgs = nil
	return m
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "(no details)"
	}
	s := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		s += " " + d.Exception.Description
	}
	if d.URL != "" {
		s += fmt.Sprintf(" at %s:%d:%d", d.URL, d.LineNumber+1, d.ColumnNumber+1)
	}
	return s
}

func stackPlace(st *runtime.StackTrace) string {
	if st == nil || len(st.CallFrames) == 0 {
		return ""
	}
	f := st.CallFrames[0]
	return fmt.Sprintf(" at %s:%d:%d", f.URL, f.LineNumber+1, f.ColumnNumber+1)
}

// lockedBuffer is a bytes.Buffer that Chromium's output goroutine and the
// test may use at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

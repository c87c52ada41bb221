package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/hegate/hegate/internal/browsertest"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/service/servicetest"
	"github.com/hegate/hegate/storage"
)

// testEnv is a console over the service, catalog and SQLite store of a
// servicetest.Rig, with its tenants and console users.
type testEnv struct {
	t       *testing.T
	ctx     context.Context
	store   storage.Store
	blobs   storage.Blobs
	svc     *service.Service
	handler http.Handler
	acme    storage.Tenant
	globex  storage.Tenant
	// alice is acme's admin, victor acme's viewer, gina globex's admin;
	// their password is servicetest.Password.
	alice, victor, gina storage.User
	logins              int
}

// newTestEnv builds the console over a rig that cfg configures.
func newTestEnv(t *testing.T, cfg servicetest.Config) *testEnv {
	t.Helper()
	r := servicetest.New(t, cfg)
	con, err := New(Config{Service: r.Service})
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{
		t: t, ctx: t.Context(), store: r.Store, blobs: r.Blobs, svc: r.Service, handler: con.Handler(),
		acme: r.Acme, globex: r.Globex, alice: r.Alice, victor: r.Victor, gina: r.Gina,
	}
}

// principal is a user's service principal, to make objects through the
// service as that user.
func (e *testEnv) principal(u storage.User) service.Principal { return servicetest.Principal(u) }

// testClient is a browser: a cookie jar over the console's handler.
type testClient struct {
	e       *testEnv
	addr    string
	cookies map[string]*http.Cookie
}

// login logs the user in through the login form, from an address of its
// own.
func (e *testEnv) login(tenant string, u storage.User) *testClient {
	e.t.Helper()
	e.logins++
	c := &testClient{e: e, addr: fmt.Sprintf("192.0.2.%d:4242", e.logins), cookies: map[string]*http.Cookie{}}
	res := c.post("/console/login", url.Values{"tenant": {tenant}, "user": {u.Name}, "password": {servicetest.Password}})
	if res.Code != http.StatusSeeOther || res.Header().Get("Location") != "/console/" {
		e.t.Fatalf("login of %s: %d %s\n%s", u.Name, res.Code, res.Header().Get("Location"), res.Body)
	}
	if len(c.cookies) == 0 {
		e.t.Fatalf("login of %s set no cookie", u.Name)
	}
	return c
}

func (c *testClient) do(req *http.Request) *httptest.ResponseRecorder {
	req.RemoteAddr = c.addr
	for _, ck := range c.cookies {
		req.AddCookie(ck)
	}
	res := httptest.NewRecorder()
	c.e.handler.ServeHTTP(res, req)
	for _, ck := range res.Result().Cookies() {
		if ck.MaxAge < 0 || ck.Value == "" {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck
		}
	}
	return res
}

// get GETs path with the headers hdr (name, value, name, value...).
func (c *testClient) get(path string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return c.do(req)
}

// htmx is a GET as htmx makes it.
func (c *testClient) htmx(path string) *httptest.ResponseRecorder {
	return c.get(path, "HX-Request", "true")
}

// post POSTs the form to path with the headers hdr (name, value...).
func (c *testClient) post(path string, form url.Values, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return c.do(req)
}

// page GETs a page, wants 200 and lints it.
func (c *testClient) page(path string) string {
	c.e.t.Helper()
	res := c.get(path)
	if res.Code != http.StatusOK {
		c.e.t.Fatalf("GET %s: %d\n%s", path, res.Code, res.Body)
	}
	lintHTML(c.e.t, res.Body.String())
	return res.Body.String()
}

// location is where a 303 points, without its fragment; another status
// fails the test.
func (c *testClient) location(res *httptest.ResponseRecorder) string {
	c.e.t.Helper()
	if res.Code != http.StatusSeeOther {
		c.e.t.Fatalf("status %d, want 303\n%s", res.Code, res.Body)
	}
	loc := res.Header().Get("Location")
	if i := strings.IndexByte(loc, '#'); i >= 0 {
		loc = loc[:i]
	}
	return loc
}

// follow GETs where a 303 points, as a browser does.
func (c *testClient) follow(res *httptest.ResponseRecorder) *httptest.ResponseRecorder {
	c.e.t.Helper()
	return c.get(c.location(res))
}

// followPage GETs the page a 303 points to, wants 200 and lints it.
func (c *testClient) followPage(res *httptest.ResponseRecorder) string {
	c.e.t.Helper()
	return c.page(c.location(res))
}

var postFormAction = regexp.MustCompile(`<form[^>]*method="post"[^>]*action="([^"]*)"`)

// postForms lists the actions of the page's POST forms, but logout.
func postForms(doc string) []string {
	var out []string
	for _, m := range postFormAction.FindAllStringSubmatch(doc, -1) {
		if m[1] != "/console/logout" {
			out = append(out, m[1])
		}
	}
	return out
}

// phoneTab serves the console and opens a tab of b on it at phone width
// (390x844), logged in as alice: her session, made through the service,
// is the cookie the login sets (on a loopback host, its name has no
// __Host- prefix). It returns the tab and the server's URL.
func (e *testEnv) phoneTab(b *browsertest.Browser) (context.Context, string) {
	t := e.t
	t.Helper()
	srv := httptest.NewServer(e.handler)
	t.Cleanup(srv.Close)
	sess, err := e.svc.Login(e.ctx, service.LoginParams{Tenant: e.acme.Name, Name: e.alice.Name, Password: servicetest.Password, From: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := b.NewTab(t)
	if err := browsertest.SetViewport(ctx, 390, 844); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.Navigate(ctx, srv.URL+"/console/login"); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Action[cdp.Empty](func(ctx context.Context, tg *chromedp.Target) (cdp.Empty, error) {
		httpOnly := true
		return cdp.Call(ctx, tg, network.SetCookie, network.SetCookieParams{Name: sessionCookiePlain, Value: sess.Token, URL: srv.URL + "/", Path: "/", HTTPOnly: &httpOnly})
	})); err != nil {
		t.Fatal(err)
	}
	return ctx, srv.URL
}

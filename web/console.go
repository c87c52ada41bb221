// Package web is hegate's tenant admin console: server-rendered pages
// (html/template) with htmx for partial updates and uPlot for charts, all
// embedded, served under /console/. Every page reads and changes through
// package service, the rules the JSON API uses too; the console checks no
// tenant, role, budget or policy itself.
//
// Sessions are cookies (HttpOnly, SameSite=Lax, Secure outside loopback)
// whose token the store keeps only hashed. Every state change is a POST
// behind net/http's CrossOriginProtection (Sec-Fetch-Site and Origin
// checks), and the Content-Security-Policy allows no inline script.
package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// Prefix is where the console is served.
const Prefix = "/console"

// Config is what a Console needs.
type Config struct {
	// Service holds the rules. Required.
	Service *service.Service
	// Logger receives errors; nil discards them.
	Logger *slog.Logger
	// ClientAddress tells a request's client address (the gateway's, which
	// honours a configured client-IP header); nil means the connection's.
	ClientAddress func(*http.Request) string
	// RequestID tells a request's id; nil means none.
	RequestID func(context.Context) string
	// InsecureCookies drops the Secure attribute (and the __Host- name
	// prefix) of the console's cookies, for a console reached over plain
	// HTTP on a host other than a loopback one (a login from a browser at
	// http://localhost or 127.0.0.1 gets a plain cookie anyway; see
	// cookies.go). Leave it off behind a TLS proxy.
	InsecureCookies bool
	// GuardUpload runs a model import behind the rate limit, admission
	// cap and quota the API's uploads pass (gateway.ConsoleHooks); nil runs
	// it without.
	GuardUpload func(p service.Principal, next http.Handler) http.Handler
	// Health reports whether the gateway can serve (the overview shows
	// it); nil means always healthy.
	Health func(context.Context) error
}

// Console serves the console.
type Console struct {
	svc      *service.Service
	log      *slog.Logger
	tpl      *Templates
	clientIP func(*http.Request) string
	reqID    func(context.Context) string
	insecure bool
	guard    func(service.Principal, http.Handler) http.Handler
	health   func(context.Context) error
	router   chi.Router
}

// New makes the console.
func New(cfg Config) (*Console, error) {
	if cfg.Service == nil {
		return nil, errors.New("web: Config.Service is nil")
	}
	tpl, err := ParseTemplates()
	if err != nil {
		return nil, fmt.Errorf("web: parsing templates: %w", err)
	}
	c := &Console{svc: cfg.Service, log: cfg.Logger, tpl: tpl, clientIP: cfg.ClientAddress, reqID: cfg.RequestID, insecure: cfg.InsecureCookies, guard: cfg.GuardUpload, health: cfg.Health}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.clientIP == nil {
		c.clientIP = func(r *http.Request) string {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				return r.RemoteAddr
			}
			return host
		}
	}
	if c.reqID == nil {
		c.reqID = func(context.Context) string { return "" }
	}
	if c.guard == nil {
		c.guard = func(_ service.Principal, next http.Handler) http.Handler { return next }
	}
	if c.health == nil {
		c.health = func(context.Context) error { return nil }
	}
	c.router = c.routes()
	return c, nil
}

// Handler serves everything under Prefix.
func (c *Console) Handler() http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.log.WarnContext(r.Context(), "console: cross-origin request refused", "method", r.Method, "path", truncate(r.URL.Path, 200), "origin", truncate(r.Header.Get("Origin"), 100))
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	// A fresh routing context: the console may be mounted in another chi
	// router, whose context must not leak into this one's matching.
	own := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.router.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), chi.RouteCtxKey, chi.NewRouteContext())))
	})
	return securityHeaders(cop.Handler(own))
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

func (c *Console) routes() chi.Router {
	r := chi.NewRouter()
	r.Handle(Prefix+"/static/*", StaticHandler())
	r.Get(Prefix+"/login", c.loginPage)
	r.Post(Prefix+"/login", c.login)
	r.Get(Prefix, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, Prefix+"/", http.StatusFound) })
	r.Group(func(r chi.Router) {
		r.Use(c.requireSession)
		r.Post(Prefix+"/logout", c.logout)
		r.Post(Prefix+"/act-as", c.actAs)
		for _, pg := range c.pages() {
			if pg.get != nil {
				r.Get(pg.path, pg.get)
			}
			for sub, h := range pg.posts {
				r.Post(pg.path+sub, h)
			}
			for sub, h := range pg.gets {
				r.Get(pg.path+sub, h)
			}
		}
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		c.notFound(w, r)
	})
	return r
}

// page is one console page: its GET handler and its actions.
type page struct {
	path  string
	get   http.HandlerFunc
	gets  map[string]http.HandlerFunc // fragments and sub-pages: path suffix -> handler
	posts map[string]http.HandlerFunc // actions: path suffix -> handler
}

// session is the signed-in user of a request.
type session struct {
	p     service.Principal
	user  storage.User
	token string
	// secure: the session cookie is the Secure one, and so are the
	// cookies bound to it.
	secure bool
	// tenantName is the display name of the user's tenant.
	tenantName string
}

type ctxKey int

const sessionKey ctxKey = 0

func sessionOf(r *http.Request) session {
	s, _ := r.Context().Value(sessionKey).(session)
	return s
}

// principal is the request's service principal.
func principal(r *http.Request) service.Principal { return sessionOf(r).p }

func (c *Console) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ck, secure := c.sessionCookie(r)
		if ck == nil {
			c.toLogin(w, r)
			return
		}
		p, u, err := c.svc.SessionPrincipal(r.Context(), ck.Value, c.clientIP(r), c.reqID(r.Context()))
		if err != nil {
			if hegate.KindOf(err) == hegate.KindUnavailable {
				c.fail(w, r, err)
				return
			}
			clearSessionCookies(w)
			c.toLogin(w, r)
			return
		}
		s := session{p: p, user: u, token: ck.Value, secure: secure, tenantName: "all tenants (operator: pick one)"}
		if p.Role == service.RoleOperator {
			if act := bound(r, s, actAsCookieName); act != "" {
				if op, t, err := c.svc.OperatorOn(r.Context(), p, hegate.TenantID(act)); err == nil {
					s.p, s.tenantName = op, t.Name+" (as operator)"
				}
			}
		}
		if u.TenantID != "" {
			s.tenantName = string(u.TenantID)
			if t, err := c.svc.Tenant(r.Context(), p); err == nil {
				s.tenantName = t.Name
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey, s)))
	})
}

// toLogin sends the browser to the login page, and htmx to it by a full
// page load.
func (c *Console) toLogin(w http.ResponseWriter, r *http.Request) {
	target := Prefix + "/login"
	if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" {
		target += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	if r.Header.Get("HX-Request") != "" {
		w.Header().Set("HX-Redirect", target)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	next := ""
	if n := r.URL.Query().Get("next"); n != "" {
		next = safeNext(n)
	}
	c.render(w, r, http.StatusOK, "login", Page{Title: "Log in", Data: LoginForm{Next: next, Errors: map[string]string{}}})
}

// safeNext is a same-console path to go to after login, or the overview.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix+"/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix + "/"
	}
	return next
}

const maxFormBytes = 64 << 10

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.render(w, r, http.StatusBadRequest, "login", Page{Title: "Log in", Flash: []Flash{{Kind: FlashDanger, Text: "The form could not be read."}}, Data: LoginForm{Errors: map[string]string{}}})
		return
	}
	form := LoginForm{Tenant: r.PostForm.Get("tenant"), User: r.PostForm.Get("user"), Errors: map[string]string{}}
	if n := r.PostForm.Get("next"); n != "" {
		form.Next = safeNext(n)
	}
	if strings.TrimSpace(form.User) == "" {
		form.Errors["user"] = "Enter your user name."
	}
	if r.PostForm.Get("password") == "" {
		form.Errors["password"] = "Enter your password."
	}
	if len(form.Errors) > 0 {
		c.render(w, r, http.StatusUnprocessableEntity, "login", Page{Title: "Log in", Data: form})
		return
	}
	sess, err := c.svc.Login(r.Context(), service.LoginParams{
		Tenant: strings.TrimSpace(form.Tenant), Name: form.User, Password: r.PostForm.Get("password"),
		From: c.clientIP(r), RequestID: c.reqID(r.Context()),
	})
	var tooMany *service.TooManyAttemptsError
	switch {
	case errors.As(err, &tooMany):
		w.Header().Set("Retry-After", fmt.Sprint(int(tooMany.RetryAfter.Seconds())+1))
		c.render(w, r, http.StatusTooManyRequests, "login", Page{Title: "Log in", Flash: []Flash{{Kind: FlashDanger, Text: fmt.Sprintf("Too many attempts. Try again in %d seconds.", int(tooMany.RetryAfter.Seconds())+1)}}, Data: form})
		return
	case hegate.KindOf(err) == hegate.KindUnauthenticated:
		c.render(w, r, http.StatusUnauthorized, "login", Page{Title: "Log in", Flash: []Flash{{Kind: FlashDanger, Text: "Wrong tenant, user name or password."}}, Data: form})
		return
	case err != nil:
		c.fail(w, r, err)
		return
	}
	setSessionCookie(w, sess.Token, c.secureLogin(r), int(service.SessionMax.Seconds()))
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

// actAs lets an operator pick the tenant whose pages it sees.
func (c *Console) actAs(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, err)
		return
	}
	s := sessionOf(r)
	base := s.p
	base.Tenant = ""
	_, t, err := c.svc.ActAs(r.Context(), base, r.PostForm.Get("tenant"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	setBound(w, s, actAsCookieName, string(t.ID), int(service.SessionMax.Seconds()))
	seeOther(w, r, Prefix+"/", "Acting on tenant "+t.Name+".")
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	if err := c.svc.Logout(r.Context(), s.p, s.token); err != nil {
		c.fail(w, r, err)
		return
	}
	clearSessionCookies(w)
	setBound(w, s, actAsCookieName, "", -1)
	http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
}

// frame is the layout data of a signed-in page.
func frame(r *http.Request, title, active string, data any, flash ...Flash) Page {
	s := sessionOf(r)
	return Page{Title: title, Active: active, Tenant: s.tenantName, User: s.user.Name, Role: s.p.Role, Flash: flash, Data: data}
}

// render writes a page; a template failure is logged and answered 500.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p Page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var buf strings.Builder
	if err := c.tpl.Render(&buf, name, p); err != nil {
		c.log.ErrorContext(r.Context(), "console: rendering a page", "page", name, "error", err.Error())
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	io.WriteString(w, buf.String())
}

// fragment writes one named template of a page (an htmx swap).
func (c *Console) fragment(w http.ResponseWriter, r *http.Request, pageName, tmpl string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var buf strings.Builder
	if err := c.tpl.RenderTemplate(&buf, pageName, tmpl, data); err != nil {
		c.log.ErrorContext(r.Context(), "console: rendering a fragment", "page", pageName, "template", tmpl, "error", err.Error())
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return
	}
	io.WriteString(w, buf.String())
}

// fail answers an error from the service as a page: 404 for what the
// tenant cannot see, 403 for what the role may not do, 503 when the store
// is down; the detail is the service's client-safe text.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, text := http.StatusInternalServerError, "Something went wrong on the server. Its log says more (request id "+c.reqID(r.Context())+")."
	switch hegate.KindOf(err) {
	case hegate.KindNotFound:
		status, text = http.StatusNotFound, "Not found: "+hegate.DetailOf(err)
	case hegate.KindForbidden:
		status, text = http.StatusForbidden, "Not allowed: "+hegate.DetailOf(err)
	case hegate.KindInvalid, hegate.KindTooLarge:
		status, text = http.StatusBadRequest, hegate.DetailOf(err)
	case hegate.KindConflict:
		status, text = http.StatusConflict, hegate.DetailOf(err)
	case hegate.KindUnavailable:
		status, text = http.StatusServiceUnavailable, "The gateway's database is not answering; try again in a moment."
		w.Header().Set("Retry-After", "5")
	default:
		c.log.ErrorContext(r.Context(), "console: request failed", "path", truncate(r.URL.Path, 200), "error", err.Error())
	}
	if sessionOf(r).user.ID == "" {
		http.Error(w, text, status)
		return
	}
	c.render(w, r, status, "error", frame(r, http.StatusText(status), "", nil, Flash{Kind: FlashDanger, Text: text}))
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	c.fail(w, r, hegate.E("console", hegate.KindNotFound, nil, "no page %s", truncate(r.URL.Path, 100)))
}

// parseForm reads a small urlencoded form.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return hegate.E("console.form", hegate.KindInvalid, err, "the form could not be read")
	}
	return nil
}

// fieldErrors turns a service error that names a field into the form's
// errors; ok is false for any other error.
func fieldErrors(err error) (map[string]string, bool) {
	var fe *service.FieldError
	if !errors.As(err, &fe) {
		return nil, false
	}
	return map[string]string{fe.Field: hegate.DetailOf(fe.Err)}, true
}

// seeOther redirects after a successful action (POST-redirect-GET), with
// a one-off message in a session-bound cookie: not a query parameter, so
// that no link can make the console say something, and bound, so that no
// planted cookie can.
func seeOther(w http.ResponseWriter, r *http.Request, path, done string) {
	if done != "" {
		setBound(w, sessionOf(r), flashCookieName, truncate(done, 300), 60)
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// doneFlash is the message the last action left, if any, which it clears.
func doneFlash(w http.ResponseWriter, r *http.Request) []Flash {
	if _, err := r.Cookie(flashCookieName); err != nil {
		return nil
	}
	s := sessionOf(r)
	text := bound(r, s, flashCookieName)
	setBound(w, s, flashCookieName, "", -1)
	if text == "" {
		return nil
	}
	return []Flash{{Kind: FlashOK, Text: truncate(text, 300)}}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// since formats how long ago t was.
func since(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return t.UTC().Format("2006-01-02")
}

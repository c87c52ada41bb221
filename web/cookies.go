package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// The console's cookies. The session cookie is __Host-hegate_session
// (Secure, HttpOnly, SameSite=Lax, Path=/) unless the browser that logs in
// says, in the Origin of its login POST, that it is on plain HTTP at a
// loopback host (development: browsers keep no Secure cookie from such a
// page). The gateway cannot tell that from the Host header, which a TLS
// proxy in front of it usually sets to a loopback address; a browser
// reports its own origin. Config.InsecureCookies drops Secure everywhere.
//
// The flash and act-as cookies ride on the session: their values carry an
// HMAC keyed by the session token, so a cookie planted by a sibling host
// or a man in the middle, who does not know the token, is ignored.

const (
	sessionCookieSecure = "__Host-hegate_session"
	sessionCookiePlain  = "hegate_session"
	flashCookieName     = "hegate_flash"
	actAsCookieName     = "hegate_act_as"
)

// devOrigin reports whether the request's Origin is http:// at localhost
// or a loopback address.
func devOrigin(r *http.Request) bool {
	u, err := url.Parse(r.Header.Get("Origin"))
	if err != nil || u.Scheme != "http" {
		return false
	}
	return loopbackHost(u.Host)
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// forwarded reports whether a proxy says it forwarded the request.
func forwarded(r *http.Request) bool {
	return r.Header.Get("Forwarded") != "" || r.Header.Get("X-Forwarded-Proto") != "" || r.Header.Get("X-Forwarded-For") != ""
}

// secureLogin is whether the session a login opens gets a Secure cookie.
func (c *Console) secureLogin(r *http.Request) bool { return !c.insecure && !devOrigin(r) }

// sessionCookie finds the request's session cookie and whether it is the
// Secure one. The plain name is read only where a plain cookie can be
// legitimate: with InsecureCookies, or on a loopback host that no proxy
// forwarded.
func (c *Console) sessionCookie(r *http.Request) (*http.Cookie, bool) {
	if ck, err := r.Cookie(sessionCookieSecure); err == nil {
		return ck, true
	}
	if c.insecure || (loopbackHost(r.Host) && !forwarded(r)) {
		if ck, err := r.Cookie(sessionCookiePlain); err == nil {
			return ck, false
		}
	}
	return nil, false
}

func setSessionCookie(w http.ResponseWriter, token string, secure bool, maxAge int) {
	name := sessionCookiePlain
	if secure {
		name = sessionCookieSecure
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: token, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
}

// clearSessionCookies removes both session cookies.
func clearSessionCookies(w http.ResponseWriter) {
	setSessionCookie(w, "", true, -1)
	setSessionCookie(w, "", false, -1)
}

// cookieMAC binds a cookie's value to the session token.
func cookieMAC(token, name, value string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// setBound sets a session-bound cookie (Path=/console/).
func setBound(w http.ResponseWriter, s session, name, value string, maxAge int) {
	v := ""
	if value != "" {
		v = url.QueryEscape(value) + "." + cookieMAC(s.token, name, value)
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: v, Path: Prefix + "/", MaxAge: maxAge, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
}

// bound reads a session-bound cookie; "" if it is missing or not the
// session's.
func bound(r *http.Request, s session, name string) string {
	ck, err := r.Cookie(name)
	if err != nil || s.token == "" {
		return ""
	}
	// The MAC is base64url (no dots); the escaped value may hold dots.
	i := strings.LastIndexByte(ck.Value, '.')
	if i < 0 {
		return ""
	}
	enc, mac := ck.Value[:i], ck.Value[i+1:]
	v, err := url.QueryUnescape(enc)
	if err != nil || !hmac.Equal([]byte(mac), []byte(cookieMAC(s.token, name, v))) {
		return ""
	}
	return v
}

package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/hegate/hegate/service"
)

// TestSessionCookieAttributes: a login from a browser at an https origin
// gets the __Host- Secure cookie, even when a TLS proxy sends a loopback
// Host; only a browser on http at a loopback host gets the plain one, and
// the plain one is not read behind a proxy.
func TestSessionCookieAttributes(t *testing.T) {
	e := newPBEnv(t)
	login := func(host, origin string, hdr map[string]string) *http.Cookie {
		t.Helper()
		form := url.Values{"tenant": {"acme"}, "user": {e.alice.Name}, "password": {pbPassword}}
		req := httptest.NewRequest(http.MethodPost, "http://"+host+"/console/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res := httptest.NewRecorder()
		e.handler.ServeHTTP(res, req)
		if res.Code != http.StatusSeeOther {
			t.Fatalf("login at %s from %s: %d\n%s", host, origin, res.Code, res.Body)
		}
		for _, ck := range res.Result().Cookies() {
			if strings.HasSuffix(ck.Name, "hegate_session") && ck.Value != "" {
				return ck
			}
		}
		t.Fatal("no session cookie")
		return nil
	}
	// Behind a TLS proxy: loopback Host, https Origin.
	ck := login("127.0.0.1:8080", "https://console.example.com", map[string]string{"X-Forwarded-Proto": "https"})
	if ck.Name != sessionCookieSecure || !ck.Secure || !ck.HttpOnly || ck.Path != "/" || ck.SameSite != http.SameSiteLaxMode {
		t.Errorf("cookie behind a TLS proxy: %+v", ck)
	}
	// A developer's browser on http://127.0.0.1.
	plain := login("127.0.0.1:8080", "http://127.0.0.1:8080", nil)
	if plain.Name != sessionCookiePlain || plain.Secure || !plain.HttpOnly {
		t.Errorf("cookie on plain loopback: %+v", plain)
	}
	get := func(host string, ck *http.Cookie, hdr map[string]string) int {
		req := httptest.NewRequest(http.MethodGet, "http://"+host+"/console/devices", nil)
		req.AddCookie(ck)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res := httptest.NewRecorder()
		e.handler.ServeHTTP(res, req)
		return res.Code
	}
	if code := get("127.0.0.1:8080", plain, nil); code != http.StatusOK {
		t.Errorf("plain cookie on loopback: %d", code)
	}
	// A plain cookie (planted, say) is not read behind a proxy or on
	// another host.
	if code := get("127.0.0.1:8080", plain, map[string]string{"X-Forwarded-For": "198.51.100.7"}); code != http.StatusSeeOther {
		t.Errorf("plain cookie through a proxy: %d, want a redirect to login", code)
	}
	if code := get("console.example.com", plain, nil); code != http.StatusSeeOther {
		t.Errorf("plain cookie on a public host: %d, want a redirect to login", code)
	}
	if code := get("console.example.com", ck, nil); code != http.StatusOK {
		t.Errorf("secure cookie: %d", code)
	}
}

// TestPlantedFlashIsIgnored: a flash cookie not bound to the session
// (planted by a sibling host) shows nothing; the console's own does.
func TestPlantedFlashIsIgnored(t *testing.T) {
	e := newPBEnv(t)
	alice := e.login("acme", e.alice)
	alice.cookies[flashCookieName] = &http.Cookie{Name: flashCookieName, Value: url.QueryEscape("Your session expired: log in at https://evil.example") + ".AAAAAAAAAAAAAAAAAAAAAA"}
	if page := alice.page("/console/devices"); strings.Contains(page, "evil.example") {
		t.Fatal("a planted flash message is shown")
	}
	// The console's own message after an action is shown, once.
	delete(alice.cookies, flashCookieName)
	k, _, err := e.svc.CreateAPIKey(e.ctx, e.principal(e.alice), service.CreateAPIKeyParams{Name: "x", Role: service.RoleClient})
	if err != nil {
		t.Fatal(err)
	}
	after := alice.follow(alice.post("/console/apikeys/"+string(k.ID)+"/revoke", nil))
	want := "API key " + string(k.ID) + " is revoked"
	if !strings.Contains(after.Body.String(), want) {
		t.Errorf("the page after revoking does not say %q", want)
	}
	if again := alice.page("/console/apikeys"); strings.Contains(again, want) {
		t.Error("the message shows twice")
	}
	s := session{token: "tok"}
	if v := cookieMAC(s.token, flashCookieName, "a"); v == cookieMAC("other", flashCookieName, "a") || v == cookieMAC(s.token, actAsCookieName, "a") {
		t.Error("the MAC does not depend on the token and the cookie name")
	}
}

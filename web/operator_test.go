package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// TestOperatorActsOnATenant: an operator sees no tenant's data until it
// picks one, then sees that tenant's pages; a tenant's admin cannot pick.
func TestOperatorActsOnATenant(t *testing.T) {
	e := newPBEnv(t)
	opUser, err := e.svc.CreateUser(e.ctx, service.Principal{Role: service.RoleOperator, Operator: "test"},
		service.CreateUserParams{Name: "olga", Role: service.RoleOperator, Password: pbPassword})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.CreateAPIKey(e.ctx, e.principal(e.gina), service.CreateAPIKeyParams{Name: "globex-fleet", Role: service.RoleClient}); err != nil {
		t.Fatal(err)
	}
	op := e.login("", opUser)
	if res := op.get("/console/apikeys"); res.Code != http.StatusBadRequest || strings.Contains(res.Body.String(), "globex-fleet") || !strings.Contains(res.Body.String(), "pick the tenant first") {
		t.Fatalf("an operator that picked no tenant: %d\n%s", res.Code, res.Body)
	}
	if res := op.post("/console/act-as", url.Values{"tenant": {"nope"}}); res.Code != http.StatusNotFound {
		t.Errorf("acting on an unknown tenant: %d", res.Code)
	}
	res := op.follow(op.post("/console/act-as", url.Values{"tenant": {"globex"}}))
	if res.Code != http.StatusOK || !strings.Contains(res.Body.String(), "globex (as operator)") {
		t.Fatalf("after act-as: %d\n%s", res.Code, res.Body)
	}
	if page := op.page("/console/apikeys"); !strings.Contains(page, "globex-fleet") {
		t.Error("the operator acting on globex does not see its keys")
	}
	// A tenant's admin cannot act on another tenant, even with the cookie.
	alice := e.login("acme", e.alice)
	if res := alice.post("/console/act-as", url.Values{"tenant": {"globex"}}); res.Code != http.StatusForbidden {
		t.Errorf("a tenant admin acting on another tenant: %d", res.Code)
	}
	alice.cookies[actAsCookieName] = &http.Cookie{Name: actAsCookieName, Value: string(e.globex.ID)}
	if page := alice.page("/console/apikeys"); strings.Contains(page, "globex-fleet") {
		t.Error("a tenant admin with a forged act-as cookie sees globex's keys")
	}
	evs, _, err := e.store.ListAudit(e.ctx, storage.AuditFilter{Tenant: e.globex.ID, ActionPrefix: "operator."})
	if err != nil || len(evs) != 1 || evs[0].Actor != "operator:"+string(opUser.ID) {
		t.Errorf("audit of act-as: %+v, %v", evs, err)
	}
}

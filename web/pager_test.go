package web

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hegate/hegate/service"
)

// TestTablesPaginate: the API keys table shows pagePer rows a page, with
// links to the next and previous pages that keep the query.
func TestTablesPaginate(t *testing.T) {
	e := newPBEnv(t)
	for i := range pagePer + 10 {
		if _, _, err := e.svc.CreateAPIKey(e.ctx, e.principal(e.alice), service.CreateAPIKeyParams{Name: fmt.Sprintf("key-%03d", i), Role: service.RoleClient}); err != nil {
			t.Fatal(err)
		}
	}
	total := pagePer + 10 + 1 // and the tenant's first key
	alice := e.login("acme", e.alice)
	first := alice.page("/console/apikeys")
	// Oldest first: the tenant's first key, then key-000 to key-048.
	if !strings.Contains(first, "key-048") || strings.Contains(first, "key-049") {
		t.Errorf("first page does not end at key-048")
	}
	if !strings.Contains(first, fmt.Sprintf("Rows 1 to %d of %d", pagePer, total)) || !strings.Contains(first, `href="/console/apikeys?page=2"`) {
		t.Fatalf("first page has no pager to page 2:\n%s", first)
	}
	second := alice.page("/console/apikeys?page=2")
	if strings.Contains(second, "key-048") || !strings.Contains(second, "key-049") || !strings.Contains(second, "key-059") {
		t.Errorf("second page does not hold key-049 to key-059")
	}
	if !strings.Contains(second, fmt.Sprintf("Rows %d to %d of %d", pagePer+1, total, total)) || strings.Contains(second, "page=3") || !strings.Contains(second, "page=1") {
		t.Errorf("second page's pager is wrong")
	}
	// Past the end shows the last page; garbage the first.
	if last := alice.page("/console/apikeys?page=99"); !strings.Contains(last, fmt.Sprintf("Rows %d to", pagePer+1)) {
		t.Error("page 99 is not the last page")
	}
	if p := alice.page("/console/apikeys?page=-3x"); !strings.Contains(p, "Rows 1 to") {
		t.Error("a garbage page is not the first")
	}
}

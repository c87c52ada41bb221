package gateway

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

// documentedRoutes lists the "METHOD /path" pairs of the OpenAPI
// document's paths, as kin-openapi parses it.
func documentedRoutes(t *testing.T) []string {
	t.Helper()
	oa, err := openAPI()
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for path, item := range oa.doc.Paths.Map() {
		for method := range item.Operations() {
			routes = append(routes, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(routes)
	return routes
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	var routes []string
	err := chi.Walk(bd.srv.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(routes)
	documented := documentedRoutes(t)
	for _, r := range routes {
		if _, found := slices.BinarySearch(documented, r); !found {
			t.Errorf("route %s is not in openapi.yaml", r)
		}
	}
	for _, d := range documented {
		if _, found := slices.BinarySearch(routes, d); !found {
			t.Errorf("openapi.yaml documents %s, which is not a route", d)
		}
	}
	if len(routes) < 15 {
		t.Fatalf("only %d routes walked: %v", len(routes), routes)
	}
}

package gateway

import (
	"bufio"
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

// documentedRoutes reads "METHOD /path" pairs from the OpenAPI document's
// paths object: path keys are indented two spaces under "paths:", their
// operations four. The document is ours, so this line-level reading is
// enough; it fails loudly on anything unexpected.
func documentedRoutes(t *testing.T, doc []byte) []string {
	t.Helper()
	methods := map[string]bool{"get": true, "put": true, "post": true, "delete": true, "patch": true, "head": true, "options": true}
	var (
		routes  []string
		inPaths bool
		path    string
	)
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		key, _, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch {
		case indent == 0:
			inPaths = key == "paths"
		case !inPaths:
		case indent == 2:
			if !strings.HasPrefix(key, "/") {
				t.Fatalf("openapi.yaml: unexpected key %q under paths", key)
			}
			path = key
		case indent == 4 && methods[key]:
			routes = append(routes, strings.ToUpper(key)+" "+path)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
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
	documented := documentedRoutes(t, openAPIDocument)
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

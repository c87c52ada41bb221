package gateway

import (
	_ "embed" // the OpenAPI document
	"net/http"
)

// openAPIDocument is the OpenAPI 3.1 description of every route, served at
// /openapi.yaml. A test checks it lists exactly the router's routes.
//
//go:embed openapi.yaml
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3.1 document (YAML) of the API.
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/yaml")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(openAPIDocument)
}

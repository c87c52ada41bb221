package web

import (
	"bytes"
	"encoding/json"

	"github.com/hegate/hegate/service"
)

// canEdit reports whether a role may change the tenant's settings, so that
// a page shows its forms (service.Principal.CanChange); the service
// decides in any case.
func canEdit(role string) bool { return service.Principal{Role: role}.CanChange() }

// prettyJSON indents a stored JSON document for a <pre>; "" for none.
func prettyJSON(b []byte) string {
	if len(b) == 0 || string(b) == "null" {
		return ""
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return string(b)
	}
	return out.String()
}

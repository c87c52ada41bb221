package gateway

import (
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
)

// Media types the routes with a body take.
var (
	// inferTypes: JSON, or the binary tensor extension.
	inferTypes = []string{api.ContentTypeJSON, api.ContentTypeOctetStream}
	// keySetTypes: a key-set upload.
	keySetTypes = []string{api.ContentTypeKeySet, api.ContentTypeOctetStream}
	// modelTypes: an ONNX file or hegate IR JSON.
	modelTypes = []string{api.ContentTypeONNX, api.ContentTypeIRJSON, api.ContentTypeOctetStream, api.ContentTypeJSON}
	// jsonTypes: the routes that take a JSON document.
	jsonTypes = []string{api.ContentTypeJSON}
)

// accepts refuses a request whose body is in a media type the route does
// not take: 415 Unsupported Media Type, a problem document (with OIP's
// "error" on /v2) whose Accept header lists the types taken (RFC 9110
// section 15.5.16), and Accept-Post too on a POST. Media types compare
// case-insensitively and their parameters (charset) are ignored. A request
// without Content-Type passes: the handler reads it as its default type. A
// Content-Type that does not parse is 400.
func (s *Server) accepts(types ...string) func(http.Handler) http.Handler {
	accept := strings.Join(types, ", ")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ct := r.Header.Get("Content-Type")
			if ct == "" {
				next.ServeHTTP(w, r)
				return
			}
			mt, _, err := mime.ParseMediaType(ct)
			if err != nil {
				s.fail(w, r, hegate.E("gateway.mediatype", hegate.KindInvalid, err, "Content-Type %q does not parse; send one of %s", truncate(ct, 80), accept))
				return
			}
			if slices.Contains(types, mt) {
				next.ServeHTTP(w, r)
				return
			}
			s.unsupportedMediaType(w, r, ct, types)
		})
	}
}

// unsupportedMediaType answers 415 for a body of Content-Type ct where the
// route takes types.
func (s *Server) unsupportedMediaType(w http.ResponseWriter, r *http.Request, ct string, types []string) {
	accept := strings.Join(types, ", ")
	detail := "Content-Type " + truncate(ct, 80) + " is not taken here; send " + accept
	if mt, _, _ := mime.ParseMediaType(ct); mt == "application/x-www-form-urlencoded" {
		// What curl -d sends unless told otherwise.
		detail += " (curl -d sends application/x-www-form-urlencoded: add -H 'Content-Type: " + types[0] + "')"
	}
	p := api.Problem{
		Type:      api.ProblemUnsupportedMediaType,
		Title:     "Unsupported media type",
		Status:    http.StatusUnsupportedMediaType,
		Detail:    detail,
		Instance:  r.URL.Path,
		RequestID: RequestIDFromContext(r.Context()),
	}
	if isOIP(r) {
		p.Error = p.Title + ": " + p.Detail
	}
	s.log.DebugContext(r.Context(), "request rejected", "request_id", p.RequestID, "status", p.Status, "error", "unsupported Content-Type "+truncate(ct, 80))
	h := w.Header()
	h.Set("Accept", accept)
	if r.Method == http.MethodPost {
		h.Set("Accept-Post", accept)
	}
	writeProblem(w, p)
}

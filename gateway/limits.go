package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
)

// Limits on what a client, before any authentication, makes the gateway
// hold or write.
const (
	// MaxHeaderBytes bounds a request's head: the request line and the
	// header fields, counted as on the wire. A larger one is answered 431
	// with a problem document.
	MaxHeaderBytes = 64 << 10
	// MaxRequestTargetBytes bounds the request target (path and query). A
	// longer one is answered 414 with a problem document.
	MaxRequestTargetBytes = 8 << 10
	// ServerMaxHeaderBytes is the http.Server.MaxHeaderBytes to run the
	// gateway with (hegate serve does): above MaxHeaderBytes, so that a
	// head between the two still reaches the gateway and gets its 431
	// problem document, and far below net/http's default of 1 MiB, since
	// every connection may hold that much while its head is read. A head
	// beyond it gets net/http's own plain-text 431.
	ServerMaxHeaderBytes = 4 * MaxHeaderBytes

	// maxLoggedMethod and maxLoggedPath bound the method and the path in
	// the access log.
	maxLoggedMethod = 20
	maxLoggedPath   = 256
)

// Defaults of the minimum body rate (Config.BodyMinRate, BodyRateGrace).
const (
	// DefaultBodyMinRate is the slowest average rate, in bytes per second,
	// at which a request body may arrive once DefaultBodyRateGrace has
	// passed.
	DefaultBodyMinRate = 1 << 10
	// DefaultBodyRateGrace is how long a request body may take before the
	// minimum rate applies.
	DefaultBodyRateGrace = 30 * time.Second
)

// headBytes is the size of r's request line and header fields as they
// were sent on HTTP/1 (on HTTP/2, about their size before compression).
func headBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	if r.Host != "" {
		n += len("Host: ") + len(r.Host) + 2
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

// limitHeader answers a request whose target exceeds MaxRequestTargetBytes
// (414) or whose head exceeds MaxHeaderBytes (431) with a problem document,
// and closes its HTTP/1 connection: nothing reads its body.
func limitHeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p api.Problem
		switch n := headBytes(r); {
		case len(r.RequestURI) > MaxRequestTargetBytes:
			p = api.Problem{
				Status: http.StatusRequestURITooLong,
				Title:  "URI too long",
				Detail: "the request target of " + strconv.Itoa(len(r.RequestURI)) + " bytes exceeds the limit of " + strconv.Itoa(MaxRequestTargetBytes) + " bytes",
			}
		case n > MaxHeaderBytes:
			p = api.Problem{
				Status: http.StatusRequestHeaderFieldsTooLarge,
				Title:  "Request header fields too large",
				Detail: "the request line and header fields of " + strconv.Itoa(n) + " bytes exceed the limit of " + strconv.Itoa(MaxHeaderBytes) + " bytes",
			}
		default:
			next.ServeHTTP(w, r)
			return
		}
		p.Type = api.ProblemTooLarge
		p.Instance = truncate(r.URL.EscapedPath(), 200)
		p.RequestID = RequestIDFromContext(r.Context())
		if isOIP(r) {
			p.Error = p.Title + ": " + p.Detail
		}
		if r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		writeProblem(w, p)
	})
}

// bodyRate is the minimum rate of one request body (Config.BodyMinRate):
// the body may take grace from its first read, plus one second for every
// min bytes it has delivered (as Apache's mod_reqtimeout does). A client
// that keeps above the rate is never cut off, however large its upload; one
// that sends a byte just often enough to dodge the idle limit is refused
// soon after grace.
type bodyRate struct {
	min   int64 // bytes per second; not positive: no minimum
	grace time.Duration
	start time.Time // the first read
	n     int64     // bytes read so far
}

// due is when the body falls behind the rate with the bytes it has
// delivered so far; the zero time when there is no minimum.
func (br *bodyRate) due(now time.Time) time.Time {
	if br.min <= 0 {
		return time.Time{}
	}
	if br.start.IsZero() {
		br.start = now
	}
	allowed := float64(br.grace) + float64(br.n)/float64(br.min)*float64(time.Second)
	if allowed > float64(100*365*24*time.Hour) {
		return time.Time{} // no deadline within a century: idle's applies
	}
	return br.start.Add(time.Duration(allowed))
}

// tooSlow is the verdict on a body that fell behind the rate.
func (br *bodyRate) tooSlow(err error, now time.Time) error {
	return hegate.E("gateway.body", hegate.KindInvalid, err,
		"the request body arrives too slowly: %d bytes in %s, below the minimum of %d bytes per second after the first %s",
		br.n, now.Sub(br.start).Round(time.Millisecond), br.min, br.grace)
}

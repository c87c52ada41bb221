package gateway

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Traces: a span per request (named by its route pattern, never its path,
// so that ids do not become span names), per job and per evaluation,
// through the global OpenTelemetry provider, which is a no-op unless the
// process set one up (internal/telemetry, from OTEL_EXPORTER_OTLP_ENDPOINT).
// No attribute holds a body, a header, a ciphertext or a key.

const instrumentation = "github.com/hegate/hegate/gateway"

var tracer = otel.Tracer(instrumentation)

// trace starts a server span for the request: a new root, linked to the
// W3C trace context the client sent (not its child: a client must not
// choose the gateway's trace ids or, through its sampled flag, whether its
// requests are sampled); the client's baggage is dropped. It runs inside
// accessLog, whose record tells it the tenant once the handler has run.
func (s *Server) trace(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithNewRoot(),
			trace.WithAttributes(attribute.String("http.request.method", methodLabel(r.Method)))}
		remote := trace.SpanContextFromContext(otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
		if remote.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: remote}))
		}
		ctx, span := tracer.Start(r.Context(), "HTTP", opts...)
		defer span.End()
		ww, ok := w.(middleware.WrapResponseWriter)
		if !ok {
			ww = middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		}
		next.ServeHTTP(ww, r.WithContext(ctx))
		route := routeUnmatched
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		span.SetName(methodLabel(r.Method) + " " + route)
		span.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", status))
		if info, ok := r.Context().Value(accessKey).(*accessInfo); ok && info.tenant != "" {
			span.SetAttributes(attribute.String("hegate.tenant", string(info.tenant)))
		}
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	})
}

// endSpan records err on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

package gateway

import (
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hegate/hegate/client"
)

// TestTraces: with a tracer provider installed, an inference makes a
// server span named by its route (not its path), a job span and an
// evaluation span; no attribute carries a body or a key.
func TestTraces(t *testing.T) {
	// Not parallel: it installs the global provider.
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	defer otel.SetTracerProvider(prev)
	prevProp := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	defer otel.SetTextMapPropagator(prevProp)
	// The package's tracer was made from the global provider before this
	// test: OpenTelemetry's global delegates, so it now reaches tp.

	bd := setup(t)
	ksID := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 31)
	if _, _, err := bd.a.client.Infer(bd.ctx, string(bd.model.ID()), ksID, ct, client.InferOptions{Wait: true}); err != nil {
		t.Fatal(err)
	}
	resp := bd.call(t, http.MethodGet, "/v1/jobs/job_doesnotexist", bd.a.secret, nil, nil)
	resp.Body.Close()
	names := map[string]bool{}
	for _, s := range exp.GetSpans() {
		names[s.Name] = true
		for _, a := range s.Attributes {
			if v := a.Value.Emit(); strings.Contains(v, "hgk_") || len(v) > 200 {
				t.Fatalf("span %s attribute %s = %.60q", s.Name, a.Key, v)
			}
		}
	}
	for _, want := range []string{"POST /v2/models/{model}/infer", "POST /v1/keys", "GET /v1/jobs/{id}", "hegate.job", "hegate.evaluate"} {
		if !names[want] {
			t.Errorf("no span %q among %v", want, names)
		}
	}
	for n := range names {
		if strings.Contains(n, "job_doesnotexist") {
			t.Fatalf("a span is named by a path: %q", n)
		}
	}
	tenantSeen := false
	for _, s := range exp.GetSpans() {
		if s.Name == "POST /v1/keys" {
			for _, a := range s.Attributes {
				tenantSeen = tenantSeen || a.Key == "hegate.tenant"
			}
		}
	}
	if !tenantSeen {
		t.Error("the key-set upload's span names no tenant")
	}
	// A client's trace context is a link, never the parent.
	exp.Reset()
	resp = bd.call(t, http.MethodGet, "/v2/health/live", "", nil, http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
	resp.Body.Close()
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID().String() == "4bf92f3577b34da6a3ce929d0e0e4736" || s.Parent.IsValid() {
			t.Fatalf("span %s continues the client's trace", s.Name)
		}
		if len(s.Links) != 1 || s.Links[0].SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Fatalf("span %s links %v", s.Name, s.Links)
		}
	}
}

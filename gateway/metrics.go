package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the gateway's Prometheus metrics, all named hegate_*. One
// Metrics is shared by the Server and the Runner of a process so that
// /metrics shows both. It owns its registry: nothing is registered globally.
type Metrics struct {
	reg *prometheus.Registry

	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	jobs           *prometheus.CounterVec
	evalSeconds    *prometheus.HistogramVec
	cacheHits      prometheus.Counter
	cacheMisses    prometheus.Counter
	cacheEvictions prometheus.Counter
	cacheBytes     prometheus.Gauge
	memoryWaits    prometheus.Histogram

	jobsExpired        prometheus.Counter
	blobsDeleted       *prometheus.CounterVec
	blobDeleteFailures prometheus.Counter
}

// NewMetrics makes the metrics in a fresh registry, with the Go runtime and
// process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hegate_http_requests_total",
			Help: "HTTP requests by route pattern (\"unmatched\" for none), method (\"other\" for a non-standard one) and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hegate_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern and method.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"route", "method"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hegate_jobs_total",
			Help: "Finished job attempts by model and outcome (succeeded, failed, retry, skipped).",
		}, []string{"model", "outcome"}),
		evalSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hegate_evaluation_seconds",
			Help:    "Duration of homomorphic evaluations by model.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		}, []string{"model"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hegate_keyset_cache_hits_total",
			Help: "Key-set cache lookups served from memory.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hegate_keyset_cache_misses_total",
			Help: "Key-set cache lookups that loaded and parsed a key set.",
		}),
		cacheEvictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hegate_keyset_cache_evictions_total",
			Help: "Key sets evicted from the cache to stay within its byte bound.",
		}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hegate_keyset_cache_bytes",
			Help: "Memory held by cached key sets.",
		}),
		memoryWaits: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hegate_job_memory_wait_seconds",
			Help:    "Time jobs waited for their estimated memory under the worker's --memory-limit.",
			Buckets: []float64{0, .1, 1, 5, 15, 60, 300, 900},
		}),
		jobsExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hegate_jobs_expired_total",
			Help: "Finished jobs whose input and result blobs retention removed.",
		}),
		blobsDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hegate_blobs_deleted_total",
			Help: "Blobs deleted because nothing referenced them any more, by reason (retention, key_set_deleted, unrecorded).",
		}, []string{"reason"}),
		blobDeleteFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hegate_blob_delete_failures_total",
			Help: "Unreferenced blobs that could not be deleted and stay on disk; the log names them.",
		}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration, m.jobs, m.evalSeconds,
		m.cacheHits, m.cacheMisses, m.cacheEvictions, m.cacheBytes, m.memoryWaits,
		m.jobsExpired, m.blobsDeleted, m.blobDeleteFailures,
	)
	return m
}

// Registry returns the registry, for callers that add their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// observeRequest counts a request. Its labels take a bounded set of values
// whatever the client sends: route is a pattern of the router (or
// routeUnmatched), method is one of the standard methods or "other".
func (m *Metrics) observeRequest(route, method string, status int, d time.Duration) {
	if route == "" {
		route = routeUnmatched
	}
	method = methodLabel(method)
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
}

// routeUnmatched is the route label of requests that match no route.
const routeUnmatched = "unmatched"

// methodLabel is the method label of a request: any method is a valid
// token, so a client could otherwise add label values (and series that
// live as long as the process) with every request.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

func (m *Metrics) jobOutcome(model, outcome string) {
	m.jobs.WithLabelValues(model, outcome).Inc()
}

func (m *Metrics) memoryWait(d time.Duration) { m.memoryWaits.Observe(d.Seconds()) }

func (m *Metrics) evaluation(model string, d time.Duration) {
	m.evalSeconds.WithLabelValues(model).Observe(d.Seconds())
}

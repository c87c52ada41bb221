// Package gateway is hegate's HTTP API: the Open Inference Protocol (OIP v2)
// routes that accept CKKS-encrypted tensors, the /v1 routes for key sets and
// jobs, the middleware around them, and the Runner that evaluates jobs.
//
// # Routes
//
// /v2 follows the Open Inference Protocol: server and model metadata,
// health, and POST /v2/models/{model}/infer, which takes one BYTES tensor
// holding a ciphertext (binary tensor extension, or base64 JSON; see package
// api). Errors on /v2 are problem documents that also carry OIP's "error"
// member. /v1 manages the tenant's key sets (streamed, size-limited uploads
// that the model validates before anything is stored) and jobs; its errors
// are RFC 9457 problem documents. /metrics serves Prometheus metrics (all
// named hegate_*) and /openapi.yaml the OpenAPI 3.1 document.
//
// # Tenancy
//
// Every /v1 route and inference requires "Authorization: Bearer hgk_...".
// The gateway hashes the key (SHA-256) and looks the hash up; the tenant
// comes only from the key. Every read is scoped by that tenant, and another
// tenant's object answers 404, exactly like a missing one.
//
// # Errors
//
// Handlers return *hegate.Error values; classify, in errors.go, is the one
// place that turns a Kind (or a storage domain error) into an HTTP status
// and a problem type. A 5xx says nothing internal; its cause is logged with
// the request id that the problem document repeats.
//
// # Jobs
//
// An accepted inference becomes a job (storage.Store.CreateJob, which
// enqueues it in the same transaction). Runner.Handle is the
// storage.JobHandler the store's workers call: it evaluates the model with
// the tenant's key set, kept parsed in a cache bounded by memory, stores the
// result blob and completes the job.
//
// # Retention
//
// A Sweeper, run by every serve and worker process, expires the jobs that
// finished more than its Retention ago (storage.Jobs.ExpireJobs: the row
// stays, its blob references go) and deletes the blobs nothing references
// any more. A request for an expired result answers 410 Gone. Deleting a
// key set deletes its blob too, unless another tenant's record shares it.
package gateway

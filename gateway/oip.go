package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// Extensions GET /v2 reports.
const (
	extBinaryTensorData = "binary_tensor_data"
	extHegate           = "hegate_ckks"
)

func (s *Server) serverMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.ServerMetadata{
		Name:       "hegate",
		Version:    s.cfg.Version,
		Extensions: []string{extBinaryTensorData, extHegate},
	})
}

func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.Liveness{Live: true})
}

// readyTimeout bounds the store ping of a readiness probe.
const readyTimeout = 2 * time.Second

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.cfg.Store.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "readiness: store ping failed",
			"request_id", RequestIDFromContext(ctx), "error", err.Error())
		writeJSON(w, http.StatusServiceUnavailable, api.Readiness{Ready: false})
		return
	}
	writeJSON(w, http.StatusOK, api.Readiness{Ready: true})
}

// metadata describes a model in OIP terms, with its manifest. versions are
// the versions a client may name on the versioned routes (see versionsOf).
func metadata(m catalog.Described, versions []string) api.ModelMetadata {
	man := m.Manifest
	bytesTensor := func(name string) []api.TensorMetadata {
		return []api.TensorMetadata{{Name: name, Datatype: api.DatatypeBytes, Shape: []int64{1}}}
	}
	if len(versions) == 0 {
		versions = []string{oipVersion(m.Ref)}
	}
	return api.ModelMetadata{
		Name:     string(m.Name),
		Versions: versions,
		Platform: api.Platform,
		Inputs:   bytesTensor(api.InputName),
		Outputs:  bytesTensor(api.OutputName),
		Parameters: api.Parameters{
			api.ParamContentType: api.ContentTypeCiphertext,
		},
		Hegate: &man,
	}
}

// oipVersion is the OIP version of a model: 1 for a built-in model (which
// has only that one), the version number of an uploaded one.
func oipVersion(r catalog.Ref) string {
	if r.Builtin() {
		return "1"
	}
	return strconv.Itoa(r.Version)
}

// versionsOf lists the versions of m that tenant may request on the
// versioned routes, oldest first: "1" for a built-in model, every ready
// version of an uploaded one. OIP: "versions: the model versions that may
// be explicitly requested via the appropriate endpoint".
func (s *Server) versionsOf(ctx context.Context, tenant hegate.TenantID, m catalog.Described) ([]string, error) {
	if m.Builtin() {
		return []string{"1"}, nil
	}
	entries, err := s.catalog.Versions(ctx, tenant, m.Name)
	if hegate.Is(err, hegate.KindNotFound) {
		return nil, nil // deleted meanwhile: metadata names m's own version
	}
	if err != nil {
		return nil, err
	}
	var ready []int
	for _, e := range entries {
		if e.Status == storage.ModelReady {
			ready = append(ready, e.Version)
		}
	}
	slices.Sort(ready)
	out := make([]string, len(ready))
	for i, v := range ready {
		out[i] = strconv.Itoa(v)
	}
	return out, nil
}

// listModels lists the built-in models and, for an authenticated caller,
// the latest ready version of each of its uploaded models.
func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	list := api.ModelList{Models: []api.ModelMetadata{}}
	builtins, err := s.catalog.Builtins(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, m := range builtins {
		list.Models = append(list.Models, metadata(catalog.Described{Ref: catalog.Ref{Name: m.ID()}, Manifest: m.Manifest()}, nil))
	}
	if p, ok := PrincipalFromContext(r.Context()); ok {
		entries, err := s.catalog.List(r.Context(), p.Tenant)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, e := range entries {
			if e.Builtin() || e.Status != storage.ModelReady {
				continue
			}
			m, err := s.catalog.Describe(r.Context(), p.Tenant, e.Name, 0)
			if err != nil {
				continue // deleted or replaced meanwhile
			}
			versions, err := s.versionsOf(r.Context(), p.Tenant, m)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			list.Models = append(list.Models, metadata(m, versions))
		}
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) modelMetadata(w http.ResponseWriter, r *http.Request) {
	m, err := s.describe(r, "oip.model", chi.URLParam(r, "model"), chi.URLParam(r, "version"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	versions, err := s.versionsOf(r.Context(), callerTenant(r), m)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, metadata(m, versions))
}

func (s *Server) modelReady(w http.ResponseWriter, r *http.Request) {
	m, err := s.describe(r, "oip.model.ready", chi.URLParam(r, "model"), chi.URLParam(r, "version"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.ModelReady{Name: string(m.Name), Ready: true})
}

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 255

func idempotencyKey(r *http.Request, op string) (string, error) {
	k := r.Header.Get(api.HeaderIdempotencyKey)
	if len(k) > maxIdempotencyKey {
		return "", hegate.E(op, hegate.KindInvalid, nil, "%s is %d characters; the limit is %d", api.HeaderIdempotencyKey, len(k), maxIdempotencyKey)
	}
	for _, c := range []byte(k) {
		if c < 0x20 || c > 0x7e {
			return "", hegate.E(op, hegate.KindInvalid, nil, "%s must be printable ASCII", api.HeaderIdempotencyKey)
		}
	}
	return k, nil
}

// infer accepts an encrypted inference: it checks the key set belongs to the
// caller and was validated for this model, checks the ciphertext, stores it
// and enqueues a job. Then, as OIP clients expect, it waits for the job and
// answers 200 with the outputs; when the job does not finish within the
// wait (Config.WaitTimeout, or the client's shorter "Prefer: wait=N"), or
// the client sent "Prefer: respond-async", it answers 202 with the job and
// its Location (see inferPreferences).
func (s *Server) infer(w http.ResponseWriter, r *http.Request) {
	const op = "oip.infer"
	ctx := r.Context()
	p, err := principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	m, err := s.model(r, op, chi.URLParam(r, "model"), chi.URLParam(r, "version"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.svc.AdmitInference(ctx, p, m); err != nil {
		s.fail(w, r, err)
		return
	}
	idem, err := idempotencyKey(r, op)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The model fixes the exact size of its input ciphertext: read no more.
	limit := s.cfg.MaxCiphertextBytes
	if n := m.Manifest().CiphertextBytes; n > 0 {
		limit = min(limit, n)
	}
	in, err := parseInferRequest(r.Header, r.Body, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	job, _, err := s.svc.Infer(ctx, p, service.InferParams{Model: m, KeySetID: in.keySetID, Ciphertext: in.ciphertext, IdempotencyKey: idem})
	releaseQuota(r) // the job is recorded (or not): the wait below holds no reservation
	if err != nil {
		s.fail(w, r, err)
		return
	}

	pref := inferPreferences(r.Header, s.cfg.WaitTimeout)
	if pref.wait > 0 {
		job, err = s.waitJob(ctx, job, pref.wait)
		if err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if applied := pref.applied(job.Status.Terminal()); applied != "" {
		w.Header().Set(api.HeaderPreferenceApplied, applied)
	}
	if job.Status.Terminal() && pref.wait > 0 {
		if job.Status != storage.JobSucceeded {
			s.fail(w, r, jobNotSucceeded(op, job))
			return
		}
		result, err := s.readResult(ctx, job)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if err := writeInferResponse(w, m, in, job.ID, result, in.binaryOutput); err != nil {
			s.log.WarnContext(ctx, "writing inference response", "request_id", RequestIDFromContext(ctx), "error", err.Error())
		}
		return
	}
	w.Header().Set("Location", jobPath(job.ID))
	writeJSON(w, http.StatusAccepted, jobView(job))
}

// inferPreference is what the Prefer header (RFC 7240) of an inference
// asks, and what the gateway does about it.
type inferPreference struct {
	// wait is how long to wait for the job before answering 202; 0 answers
	// 202 at once.
	wait time.Duration
	// async: the client sent respond-async (and takes a 202).
	async bool
	// waitSet: the client sent a wait preference, honoured as wait.
	waitSet bool
}

// inferPreferences reads an inference's Prefer header. Without one the
// gateway waits up to limit for the result, as OIP expects an answer with
// the outputs. "respond-async" alone answers 202 at once; "wait=N" waits up
// to N seconds (at most limit), with or without respond-async
// ("respond-async, wait=10": the result if it comes within 10 s, else
// 202). A bare "wait" means the limit. Only the first instance of each
// preference counts, and values that do not parse are ignored (RFC 7240
// section 2).
func inferPreferences(h http.Header, limit time.Duration) inferPreference {
	p := inferPreference{wait: limit}
	seen := map[string]bool{}
	for _, v := range h.Values(api.HeaderPrefer) {
		for pref := range strings.SplitSeq(v, ",") {
			pref, _, _ = strings.Cut(pref, ";") // drop preference parameters
			name, val, hasVal := strings.Cut(strings.TrimSpace(pref), "=")
			name = strings.ToLower(strings.TrimSpace(name))
			if seen[name] {
				continue
			}
			switch name {
			case "respond-async":
				seen[name] = true
				p.async = true
			case "wait":
				d := limit
				if hasVal {
					n, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(val), `"`), 10, 32)
					if err != nil {
						continue // not a delta-seconds: ignored
					}
					d = min(time.Duration(n)*time.Second, limit)
				}
				seen[name] = true
				p.waitSet, p.wait = true, d
			}
		}
	}
	if p.async && !p.waitSet {
		p.wait = 0
	}
	return p
}

// applied is the Preference-Applied header of the answer: wait=N (the
// seconds honoured) when the client sent a wait, respond-async when the
// answer is a 202 the client asked for.
func (p inferPreference) applied(finished bool) string {
	var out []string
	if p.async && (!finished || p.wait == 0) {
		out = append(out, "respond-async")
	}
	if p.waitSet {
		out = append(out, "wait="+strconv.Itoa(int(p.wait/time.Second)))
	}
	return strings.Join(out, ", ")
}

// Polling of a job that a request waits for.
const (
	waitPollFirst = 10 * time.Millisecond
	waitPollMax   = 50 * time.Millisecond
)

// waitJob polls the store until job is terminal, d passes, or the request
// ends. It returns the last state it saw.
func (s *Server) waitJob(ctx context.Context, job storage.Job, d time.Duration) (storage.Job, error) {
	deadline, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	// Subscribe before the first look, so a job that finishes in between
	// is not missed; polling still sees jobs other processes finish.
	done, unsubscribe := s.cfg.JobEvents.subscribe(job.ID)
	defer unsubscribe()
	delay := waitPollFirst
	timer := time.NewTimer(delay)
	defer timer.Stop()
	last := job
	for !last.Status.Terminal() {
		job, err := s.cfg.Store.GetJob(deadline, last.TenantID, last.ID)
		switch {
		case err == nil:
			last = job
			if job.Status.Terminal() {
				return job, nil
			}
		case ctx.Err() != nil:
			return last, ctx.Err()
		case deadline.Err() != nil:
			return last, nil
		default:
			return last, fmt.Errorf("polling job %s: %w", last.ID, err)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-deadline.Done():
			return last, nil
		case <-done:
			done = nil // look now; a nil channel never fires again
			continue
		case <-timer.C:
		}
		delay = min(delay*3/2, waitPollMax)
		timer.Reset(delay)
	}
	return last, nil
}

// jobNotSucceeded explains why a terminal job has no result.
func jobNotSucceeded(op string, job storage.Job) error {
	switch job.Status {
	case storage.JobFailed:
		reason := job.Error
		if reason == "" {
			reason = "no reason recorded"
		}
		return hegate.E(op, hegate.KindConflict, nil, "job %s failed: %s", job.ID, reason)
	case storage.JobCancelled:
		return hegate.E(op, hegate.KindConflict, nil, "job %s was cancelled", job.ID)
	default:
		return hegate.E(op, hegate.KindConflict, nil, "job %s is %s; its result is not ready", job.ID, job.Status)
	}
}

// openResult opens a succeeded job's result blob. A result that the
// retention policy removed, even since job was read, is 410 Gone.
func (s *Server) openResult(ctx context.Context, op string, job storage.Job) (io.ReadCloser, error) {
	if job.Expired() {
		return nil, s.resultExpired(op, job)
	}
	rc, err := s.cfg.Blobs.Open(ctx, job.ResultBlob)
	if errors.Is(err, storage.ErrNotFound) {
		// A Sweeper may have expired the job and deleted the blob since.
		if cur, gerr := s.cfg.Store.GetJob(ctx, job.TenantID, job.ID); gerr == nil && cur.Expired() {
			return nil, s.resultExpired(op, cur)
		}
	}
	if err != nil {
		return nil, hegate.E(op, hegate.KindInternal, fmt.Errorf("opening result of job %s: %w", job.ID, err), "")
	}
	return rc, nil
}

// readResult reads a succeeded job's result blob, bounded by its recorded size.
func (s *Server) readResult(ctx context.Context, job storage.Job) ([]byte, error) {
	rc, err := s.openResult(ctx, "jobs.result", job)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, job.ResultBytes+1))
	if err != nil {
		return nil, hegate.E("jobs.result", hegate.KindInternal, fmt.Errorf("reading result of job %s: %w", job.ID, err), "")
	}
	if int64(len(b)) != job.ResultBytes {
		return nil, hegate.E("jobs.result", hegate.KindInternal, fmt.Errorf("result of job %s is %d bytes, recorded %d", job.ID, len(b), job.ResultBytes), "")
	}
	return b, nil
}

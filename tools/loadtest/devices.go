package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/internal/mnist"
)

// mode is what a tenant's devices do in a phase.
type mode int32

const (
	idle  mode = iota // send nothing
	paced             // think time between answers, Retry-After after a refusal
	flood             // no think time; after a refusal, only the flood backoff
)

func (m mode) String() string {
	switch m {
	case paced:
		return "paced"
	case flood:
		return "flood"
	}
	return "idle"
}

// tenantRig is one tenant of the run: its devices' API keys and the key
// set and ciphertexts they share.
type tenantRig struct {
	idx      int
	name     string
	adminKey string
	keys     []string      // one client API key per device
	think    time.Duration // a paced device's mean pause after an answer

	dev    *he.Device
	sk     *he.SecretKey
	ksID   string
	cts    [][]byte
	labels []int

	mode atomic.Int32

	decrypted, correct, decryptFailed atomic.Int64
}

// setup makes the tenant's secret key, uploads its key set through the
// first device's key, and encrypts ciphertexts MNIST test images from
// offset on.
func (t *tenantRig) setup(ctx context.Context, base, model string, set *mnist.Set, ciphertexts, offset int) (time.Duration, error) {
	cl, err := client.New(base, t.keys[0], client.WithUserAgent("hegate-loadtest"))
	if err != nil {
		return 0, err
	}
	dev, err := cl.Device(ctx, model, false)
	if err != nil {
		return 0, fmt.Errorf("tenant %s: %w", t.name, err)
	}
	man, err := cl.Model(ctx, model)
	if err != nil {
		return 0, err
	}
	sk, err := dev.GenerateSecretKey()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	pr, pw := io.Pipe()
	go func() {
		_, err := dev.WriteKeySet(pw, sk)
		pw.CloseWithError(err)
	}()
	ks, err := cl.UploadKeySet(ctx, model, pr, man.KeySetBytes)
	pr.CloseWithError(errors.New("upload finished"))
	if err != nil {
		return 0, fmt.Errorf("tenant %s: uploading key set: %w", t.name, err)
	}
	upload := time.Since(t0)
	t.dev, t.sk, t.ksID = dev, sk, ks.ID
	for i := range ciphertexts {
		k := (offset + i) % set.Len()
		raw := make([]float64, len(set.Images[k]))
		for j, v := range set.Images[k] {
			raw[j] = math.Round(v * 255)
		}
		ct, err := dev.Encrypt(sk, dev.Preprocess(raw))
		if err != nil {
			return 0, err
		}
		t.cts = append(t.cts, ct)
		t.labels = append(t.labels, set.Labels[k])
	}
	return upload, nil
}

// check decrypts a result and compares the prediction with the label.
func (t *tenantRig) check(i int, result []byte) error {
	out, err := t.dev.Decrypt(t.sk, result)
	if err != nil {
		t.decryptFailed.Add(1)
		return err
	}
	t.decrypted.Add(1)
	y := t.dev.Tail(out)
	pred := client.Argmax(y)
	if len(y) == 1 {
		pred = int(y[0])
	}
	if pred == t.labels[i] {
		t.correct.Add(1)
	}
	return nil
}

// fleet runs the simulated devices of every tenant.
type fleet struct {
	base, model  string
	rec          *recorder // every request
	e2e          *recorder // every answer, from the first attempt (retries after refusals included)
	floodBackoff time.Duration
	transport    *http.Transport

	phase    atomic.Int32
	wakeMu   sync.Mutex
	wake     chan struct{} // closed when a tenant's mode changes
	stopping chan struct{} // closed: devices send nothing new

	inflight  atomic.Int64
	abandoned atomic.Int64
	wg        sync.WaitGroup
}

func newFleet(base, model string, floodBackoff time.Duration, devices int) *fleet {
	return &fleet{
		base: base, model: model, rec: newRecorder(), e2e: newRecorder(), floodBackoff: floodBackoff,
		transport: &http.Transport{
			MaxIdleConns:        devices + 16,
			MaxIdleConnsPerHost: devices + 16,
			IdleConnTimeout:     90 * time.Second,
		},
		wake:     make(chan struct{}),
		stopping: make(chan struct{}),
	}
}

// setPhase sets the phase new requests count in and the tenants' modes,
// and wakes the devices whose mode changed.
func (f *fleet) setPhase(phase int, tenants []*tenantRig, modes []mode) {
	f.phase.Store(int32(phase))
	changed := false
	for i, t := range tenants {
		if mode(t.mode.Swap(int32(modes[i]))) != modes[i] {
			changed = true
		}
	}
	if changed {
		f.wakeMu.Lock()
		close(f.wake)
		f.wake = make(chan struct{})
		f.wakeMu.Unlock()
	}
}

func (f *fleet) wakeChan() chan struct{} {
	f.wakeMu.Lock()
	defer f.wakeMu.Unlock()
	return f.wake
}

// start runs one goroutine per device.
func (f *fleet) start(ctx context.Context, tenants []*tenantRig, seed uint64) {
	for _, t := range tenants {
		for d, key := range t.keys {
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.device(ctx, t, key, rand.New(rand.NewPCG(seed, uint64(t.idx)<<32|uint64(d))))
			}()
		}
	}
}

// stop tells the devices to send nothing new and waits up to grace for
// the requests in progress; the rest are cancelled (counted abandoned).
func (f *fleet) stop(cancel context.CancelFunc, grace time.Duration) {
	close(f.stopping)
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		cancel()
		<-done
	}
	f.transport.CloseIdleConnections()
}

// retryAfter remembers the Retry-After of the last answer: the SDK's
// *client.Error does not carry the header.
type retryAfter struct {
	next http.RoundTripper
	secs atomic.Int64
}

func (r *retryAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil {
		n, _ := strconv.Atoi(resp.Header.Get(api.HeaderRetryAfter))
		r.secs.Store(int64(n))
	}
	return resp, err
}

// device is one simulated device: it infers, waits for the answer, checks
// it, pauses as its tenant's mode says, and again.
func (f *fleet) device(ctx context.Context, t *tenantRig, key string, rng *rand.Rand) {
	ra := &retryAfter{next: f.transport}
	cl, err := client.New(f.base, key, client.WithHTTPClient(&http.Client{Transport: ra}), client.WithUserAgent("hegate-loadtest"))
	if err != nil {
		panic(err)
	}
	fresh := true // just became active: start after a random part of the think time
	// The first attempt of the inference in progress: after a refusal the
	// device tries again, and the time to its answer counts from here.
	var firstTry time.Time
	firstPhase := 0
	for {
		m := mode(t.mode.Load())
		if m == idle {
			select {
			case <-f.stopping:
				return
			case <-f.wakeChan():
			}
			fresh = true
			continue
		}
		if fresh && m == paced {
			fresh = false
			if !f.pause(t, m, time.Duration(rng.Float64()*float64(t.think))) {
				return
			}
			continue
		}
		fresh = false
		select {
		case <-f.stopping:
			return
		default:
		}
		phase := int(f.phase.Load())
		i := rng.IntN(len(t.cts))
		f.inflight.Add(1)
		start := time.Now()
		result, _, err := cl.Infer(ctx, f.model, t.ksID, t.cts[i], client.InferOptions{Wait: true})
		lat := time.Since(start)
		f.inflight.Add(-1)
		out, refused := classify(err)
		if out == outAbandoned {
			f.abandoned.Add(1)
			return
		}
		if err == nil {
			if cerr := t.check(i, result); cerr != nil {
				out = outDecryptFailed
				f.rec.note(out, cerr.Error())
			}
		} else if kindOf(out) != kindRefused {
			f.rec.note(out, err.Error())
		}
		f.rec.add(phase, t.idx, out, lat)
		switch {
		case firstTry.IsZero() && refused:
			firstTry, firstPhase = start, phase
		case err == nil:
			if firstTry.IsZero() {
				firstTry, firstPhase = start, phase
			}
			f.e2e.add(firstPhase, t.idx, outOK, time.Since(firstTry))
			firstTry = time.Time{}
		case !refused:
			firstTry = time.Time{} // a failure: the device gives this one up
		}

		var d time.Duration
		switch {
		case m == flood && refused:
			d = f.floodBackoff
		case m == flood && err == nil:
			d = 0
		case refused:
			wait := time.Duration(ra.secs.Load()) * time.Second
			if wait <= 0 {
				wait = time.Second
			}
			d = min(wait, 30*time.Second) + time.Duration(rng.Float64()*float64(500*time.Millisecond))
		default:
			d = time.Duration((0.5 + rng.Float64()) * float64(t.think))
		}
		if d > 0 && !f.pause(t, m, d) {
			return
		}
	}
}

// pause sleeps d, cut short when the tenant's mode changes; false when the
// fleet stops.
func (f *fleet) pause(t *tenantRig, m mode, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-f.stopping:
			return false
		case <-timer.C:
			return true
		case <-f.wakeChan():
			if mode(t.mode.Load()) != m {
				return true
			}
		}
	}
}

// Outcomes that are not an HTTP status.
const (
	outOK            = "200"
	outAbandoned     = "abandoned"
	outTransport     = "transport error"
	outDecryptFailed = "200 but decryption failed"
)

// classify names the outcome of an inference: "200", the status and the
// problem's reason ("503 concurrency-tenant") or type, or a transport
// error. refused is true for 429 and 503: a limit answered, and the
// device should come back after Retry-After.
func classify(err error) (outcome string, refused bool) {
	if err == nil {
		return outOK, false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return outAbandoned, false
	}
	var e *client.Error
	if errors.As(err, &e) {
		reason := e.Problem.Reason
		if reason == "" {
			reason = strings.TrimPrefix(e.Problem.Type, api.ProblemTypeBase)
		}
		out := strconv.Itoa(e.StatusCode)
		if reason != "" {
			out += " " + reason
		}
		return out, e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusServiceUnavailable
	}
	return outTransport, false
}

// Kinds of outcome, for the verdicts.
const (
	kindOK       = "ok"
	kindRefused  = "refused by a documented limit"
	kindDeadline = "503 other (deadline or store)"
	kindFailure  = "failure"
)

// kindOf sorts an outcome: a success; a documented refusal (429 of a rate
// limit or the active-jobs quota, 503 of an admission cap, 403 of a
// storage quota); another 503 (the request deadline or the store, which
// docs/operations.md documents too, but which says the store could not
// keep up); or a failure (any other status, a transport error, a result
// that does not decrypt).
func kindOf(outcome string) string {
	status, reason, _ := strings.Cut(outcome, " ")
	switch {
	case outcome == outOK:
		return kindOK
	case status == "429" && (strings.HasPrefix(reason, "rate-") || reason == api.ReasonQuotaActiveJobs):
		return kindRefused
	case status == "503" && strings.HasPrefix(reason, "concurrency-"):
		return kindRefused
	case status == "403" && strings.HasPrefix(reason, "quota-"):
		return kindRefused
	case status == "503":
		return kindDeadline
	}
	return kindFailure
}

// Package storagetest is the conformance suite that every storage.Store and
// storage.Blobs implementation runs, so both engines are held to the same
// documented outcomes.
//
// Each engine's test calls Exercise with a function that opens a fresh,
// migrated, empty store on a given clock and closes it at the test's
// cleanup; Ready is the common end of such a function:
//
//	func open(t *testing.T, now func() time.Time) storage.Store {
//		s, err := engine.Open(t.Context(), engine.Config{..., Now: now})
//		return storagetest.Ready(t, s, err)
//	}
//
//	func TestStore(t *testing.T) { storagetest.Exercise(t, open) }
//
// Subtests are named ok/... for documented successes and fail/... for
// documented failures, run in parallel, and each opens its own store, so a
// failure points at one behaviour and nothing leaks between them.
//
// The stores an Opener returns must also implement QueueInspector, so that
// the transaction tests can see the job queue itself.
package storagetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// waitLimit bounds every wait for workers.
const waitLimit = 30 * time.Second

// Opener opens a fresh, migrated, empty store whose clock is now (time.Now
// when nil) and closes it when t ends. The store must implement
// QueueInspector too.
type Opener func(t *testing.T, now func() time.Time) storage.Store

// QueueInspector looks at the job queue behind a store, below the storage
// interface. A worker skips a work item whose job row does not exist, so
// only this can tell that a rolled-back job left no work item behind.
// Engines implement it in their tests, with their own SQL.
type QueueInspector interface {
	// QueuedInference returns the job ids of every inference work item in
	// the queue, whatever its state, in no particular order.
	QueuedInference(ctx context.Context) ([]hegate.JobID, error)
}

// bundle is what setup returns: a fresh store with two tenants, and the
// Opener for a test that needs a store of its own.
type bundle struct {
	ctx   context.Context
	store storage.Store
	a, b  storage.Tenant
	open  Opener
}

// test is one conformance test.
type test struct {
	name string
	run  func(t *testing.T, b bundle)
}

// Exercise runs the conformance suite. open is called at least once per
// subtest, from parallel subtests.
func Exercise(t *testing.T, open Opener) {
	t.Helper()
	var tests []test
	tests = append(tests, storeTests...)
	tests = append(tests, tenantTests...)
	tests = append(tests, apiKeyTests...)
	tests = append(tests, keySetTests...)
	tests = append(tests, uploadTests...)
	tests = append(tests, jobTests...)
	tests = append(tests, retentionTests...)
	tests = append(tests, blobReferenceTests...)
	tests = append(tests, modelTests...)
	tests = append(tests, workerTests...)
	tests = append(tests, compileWorkerTests...)
	tests = append(tests, budgetTests...)
	tests = append(tests, attestTests...)
	tests = append(tests, quotaTests...)
	tests = append(tests, consoleTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, setup(t, open))
		})
	}
}

// Ready ends an engine's Opener: it fails t if err, the error of opening s,
// is not nil, closes s when t ends, and migrates s.
func Ready(t *testing.T, s storage.Store, err error) storage.Store {
	t.Helper()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

// setup opens a store and creates tenants "a" and "b" in it.
func setup(t *testing.T, open Opener) bundle {
	t.Helper()
	ctx := t.Context()
	s := open(t, nil)
	t.Cleanup(func() {
		// Workers a test started stop before the store closes (cleanups
		// run last-registered first, and open registered Close earlier).
		stopCtx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := s.StopWorkers(stopCtx); err != nil {
			t.Errorf("StopWorkers at cleanup: %v", err)
		}
	})
	b := bundle{ctx: ctx, store: s, open: open}
	b.a = mustTenant(t, b, "tenant-a")
	b.b = mustTenant(t, b, "tenant-b")
	return b
}

func mustTenant(t *testing.T, b bundle, name string) storage.Tenant {
	t.Helper()
	tn, err := b.store.CreateTenant(b.ctx, storage.CreateTenantParams{Name: name})
	if err != nil {
		t.Fatalf("CreateTenant(%q): %v", name, err)
	}
	return tn
}

// hashOf returns the SHA-256 of s, as an API key's stored hash.
func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func mustAPIKey(t *testing.T, b bundle, tenant hegate.TenantID, secret string) storage.APIKey {
	t.Helper()
	k, err := b.store.CreateAPIKey(b.ctx, storage.CreateAPIKeyParams{
		TenantID: tenant, Name: "key " + secret, Prefix: secret[:4], Hash: hashOf(secret),
	})
	if err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	return k
}

func keySetID(s string) hegate.KeySetID {
	h := sha256.Sum256([]byte(s))
	return hegate.KeySetID(fmt.Sprintf("%x", h))
}

func newKeySet(tenant hegate.TenantID, content string) storage.KeySet {
	id := keySetID(content)
	return storage.KeySet{
		ID: id, TenantID: tenant, Model: "mnist-cryptonets", ParamsID: "params-" + content,
		SizeBytes: int64(len(content)), BlobKey: string(id),
	}
}

func mustKeySet(t *testing.T, b bundle, tenant hegate.TenantID, content string) storage.KeySet {
	t.Helper()
	ks, created, err := b.store.PutKeySet(b.ctx, newKeySet(tenant, content))
	if err != nil || !created {
		t.Fatalf("PutKeySet: created %v, err %v", created, err)
	}
	return ks
}

func jobParams(tenant hegate.TenantID, idempotencyKey string) storage.CreateJobParams {
	return storage.CreateJobParams{
		TenantID: tenant, Model: "mnist-cryptonets", KeySetID: keySetID("keys"),
		InputBlob: strings.Repeat("ab", 32), InputBytes: 1234, IdempotencyKey: idempotencyKey,
	}
}

func mustJob(t *testing.T, b bundle, tenant hegate.TenantID) storage.Job {
	t.Helper()
	j, created, err := b.store.CreateJob(b.ctx, jobParams(tenant, ""))
	if err != nil || !created {
		t.Fatalf("CreateJob: created %v, err %v", created, err)
	}
	return j
}

// wantErr fails unless errors.Is(err, want).
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

// noErr fails if err is not nil.
func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// equal fails unless got and want are deeply equal.
func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// recent fails unless ts is a UTC time within a minute of now.
func recent(t *testing.T, what string, ts time.Time) {
	t.Helper()
	if ts.Location() != time.UTC {
		t.Errorf("%s: %v is not in UTC", what, ts)
	}
	if d := time.Since(ts); d < -time.Minute || d > time.Minute {
		t.Errorf("%s: %v is not close to now", what, ts)
	}
}

// eventually polls cond until it holds or waitLimit passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", waitLimit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// counter records how often the handler saw each job.
type counter struct {
	mu   sync.Mutex
	seen map[hegate.JobID]int
}

func newCounter() *counter { return &counter{seen: make(map[hegate.JobID]int)} }

// add counts one call for id and returns the count so far.
func (c *counter) add(id hegate.JobID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[id]++
	return c.seen[id]
}

func (c *counter) get(id hegate.JobID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[id]
}

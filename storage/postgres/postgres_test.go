package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/internal/jobqueue"
	"github.com/hegate/hegate/storage/postgres"
	"github.com/hegate/hegate/storage/storagetest"
)

const defaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// databaseURL is the test database: HEGATE_TEST_DATABASE_URL or defaultURL.
func databaseURL() string {
	if u := os.Getenv("HEGATE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return defaultURL
}

// redactedURL is databaseURL without its password, for messages.
func redactedURL() string {
	u, err := url.Parse(databaseURL())
	if err != nil {
		return "(unparsable HEGATE_TEST_DATABASE_URL)"
	}
	return u.Redacted()
}

// reachable checks once per test binary that PostgreSQL answers.
var reachable = sync.OnceValue(func() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
})

// requirePostgres skips t when PostgreSQL is unreachable, or fails it when
// the CI environment variable is set.
func requirePostgres(t *testing.T) {
	t.Helper()
	if err := reachable(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL at %s is unreachable and CI is set: %v", redactedURL(), err)
		}
		t.Skipf("PostgreSQL at %s is unreachable (set HEGATE_TEST_DATABASE_URL): %v", redactedURL(), err)
	}
}

// freshSchema creates a schema with a random name and drops it, with
// everything in it, when t ends.
func freshSchema(t *testing.T) string {
	t.Helper()
	requirePostgres(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "hegate_test_" + hex.EncodeToString(b[:])
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, databaseURL())
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, databaseURL())
		if err != nil {
			t.Errorf("connecting to drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return schema
}

// open returns a migrated store in a fresh schema, on the clock now.
func open(t *testing.T, now func() time.Time) storage.Store {
	t.Helper()
	schema := freshSchema(t)
	s, err := postgres.Open(t.Context(), postgres.Config{URL: databaseURL(), Schema: schema, MaxConns: 8, Now: now})
	storagetest.Ready(t, s, err)
	return testStore{Store: s, schema: schema}
}

// testStore is a Store that the suite can look behind.
type testStore struct {
	*postgres.Store
	schema string
}

var _ storagetest.QueueInspector = testStore{}

// QueuedInference reads River's table in the store's schema.
func (s testStore) QueuedInference(ctx context.Context) ([]hegate.JobID, error) {
	conn, err := pgx.Connect(ctx, databaseURL())
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT args->>'job_id' FROM `+s.schema+`.river_job WHERE kind = $1`, jobqueue.Kind)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[hegate.JobID])
}

func TestStore(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	storagetest.Exercise(t, open)
}

// TestSeparateWorkerProcess runs workers on one Store and enqueues through
// another on the same schema, as `hegate serve` and `hegate worker` do.
func TestSeparateWorkerProcess(t *testing.T) {
	t.Parallel()
	schema := freshSchema(t)
	ctx := t.Context()
	cfg := postgres.Config{URL: databaseURL(), Schema: schema}
	serve, err := postgres.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer serve.Close()
	if err := serve.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	worker, err := postgres.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer worker.Close()
	if err := worker.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}

	done := make(chan string, 1)
	compiled := make(chan string, 1)
	err = worker.StartWorkers(ctx, storage.WorkerConfig{
		Concurrency: 1, MaxAttempts: 1,
		Handler: func(ctx context.Context, id hegate.JobID) error {
			if _, err := worker.StartJob(ctx, id); err != nil {
				return err
			}
			_, err := worker.CompleteJob(ctx, id, "r", 1)
			done <- string(id)
			return err
		},
		CompileHandler: func(ctx context.Context, tenant hegate.TenantID, name hegate.ModelID, version int) error {
			_, err := worker.MarkModelReady(ctx, tenant, name, version, "g", nil)
			compiled <- fmt.Sprintf("%s/%d", name, version)
			return err
		},
	})
	if err != nil {
		t.Fatalf("StartWorkers: %v", err)
	}
	defer worker.StopWorkers(context.Background())

	tn, err := serve.CreateTenant(ctx, storage.CreateTenantParams{Name: "a"})
	if err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	j, _, err := serve.CreateJob(ctx, storage.CreateJobParams{TenantID: tn.ID, Model: "m", KeySetID: "k", InputBlob: "b"})
	if err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	select {
	case id := <-done:
		if id != string(j.ID) {
			t.Fatalf("worker ran %s, want %s", id, j.ID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker process did not run the job within 30s")
	}

	v, _, err := serve.CreateModelVersion(ctx, storage.CreateModelVersionParams{
		TenantID: tn.ID, Name: "uploaded", SourceBlob: "src", SourceFormat: storage.ModelFormatONNX,
	})
	if err != nil {
		t.Fatalf("CreateModelVersion: %v", err)
	}
	select {
	case got := <-compiled:
		if want := fmt.Sprintf("uploaded/%d", v.Version); got != want {
			t.Fatalf("worker compiled %s, want %s", got, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker process did not compile the model within 30s")
	}
	ready, err := serve.GetModelVersion(ctx, tn.ID, "uploaded", 0)
	if err != nil || ready.Version != v.Version {
		t.Fatalf("GetModelVersion(0) after the worker compiled: %+v, %v", ready, err)
	}
}

// TestTwoGatewaysShareBudgets reserves, concurrently, through two Stores
// on one schema, as two gateway processes do: neither a global budget that
// two tenants share nor a tenant's own budget is ever overspent.
func TestTwoGatewaysShareBudgets(t *testing.T) {
	t.Parallel()
	schema := freshSchema(t)
	ctx := t.Context()
	var gateways [2]*postgres.Store
	for i := range gateways {
		s, err := postgres.Open(ctx, postgres.Config{URL: databaseURL(), Schema: schema, MaxConns: 6})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		gateways[i] = s
	}
	const (
		unit        = int64(1000)
		sharing     = 8  // tenants sharing model "shared" (each queues on its own usage row first)
		globalFits  = 29 // queries of model "shared", across those tenants
		tenantFits  = 17 // queries of model "own" by the last tenant
		perGateway  = 64 // submits per gateway and model
		model, mine = hegate.ModelID("shared"), hegate.ModelID("own")
	)
	var tenants []hegate.TenantID
	for i := range sharing + 1 {
		name := fmt.Sprintf("tenant-%d", i)
		tn, err := gateways[0].CreateTenant(ctx, storage.CreateTenantParams{Name: name})
		if err != nil {
			t.Fatalf("CreateTenant: %v", err)
		}
		tenants = append(tenants, tn.ID)
	}
	plenty := storage.BudgetLimit{Capacity: 1 << 40, Period: storage.BudgetDaily}
	if _, err := gateways[1].SetGlobalBudget(ctx, storage.SetGlobalBudgetParams{
		Model: model, Limit: storage.BudgetLimit{Capacity: globalFits * unit, Period: storage.BudgetDaily}, Actor: "test",
	}); err != nil {
		t.Fatalf("SetGlobalBudget: %v", err)
	}
	if _, err := gateways[0].SetBudget(ctx, storage.SetBudgetParams{
		TenantID: tenants[sharing], Model: mine, Limit: storage.BudgetLimit{Capacity: tenantFits * unit, Period: storage.BudgetMonthly}, Actor: "test",
	}); err != nil {
		t.Fatalf("SetBudget: %v", err)
	}

	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		accepted = map[hegate.ModelID]int{}
		errs     []error
	)
	submit := func(s *postgres.Store, tenant hegate.TenantID, m hegate.ModelID) {
		err := s.InTx(ctx, func(tx storage.Tx) error {
			j, _, err := tx.CreateJob(ctx, storage.CreateJobParams{TenantID: tenant, Model: m, KeySetID: "k", InputBlob: "b"})
			if err != nil {
				return err
			}
			_, err = tx.ReserveBudget(ctx, storage.ReserveBudgetParams{JobID: j.ID, Cost: unit, Default: plenty, Global: true, Actor: "test"})
			return err
		})
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			accepted[m]++
		case !errors.Is(err, storage.ErrBudgetExhausted):
			errs = append(errs, err)
		}
	}
	for i := range perGateway {
		for g, s := range gateways {
			wg.Go(func() { submit(s, tenants[(i+g)%sharing], model) }) // every sharing tenant on both gateways
			wg.Go(func() { submit(s, tenants[sharing], mine) })
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("submits: %v", errs)
	}
	if accepted[model] != globalFits || accepted[mine] != tenantFits {
		t.Fatalf("accepted %d queries of the shared model and %d of the last tenant's, want %d and %d",
			accepted[model], accepted[mine], globalFits, tenantFits)
	}
	for _, s := range gateways {
		gu, err := s.GlobalBudgetUsage(ctx, model)
		if err != nil || gu.Reserved != globalFits*unit || gu.Spent != 0 {
			t.Fatalf("GlobalBudgetUsage: %+v, %v", gu, err)
		}
		u, err := s.BudgetUsage(ctx, tenants[sharing], mine, plenty)
		if err != nil || u.Reserved != tenantFits*unit || u.Left() != 0 {
			t.Fatalf("BudgetUsage of the last tenant: %+v, %v", u, err)
		}
	}
	var sum int64
	for _, tn := range tenants[:sharing] {
		l, err := gateways[0].Ledger(ctx, storage.LedgerQuery{TenantID: tn, Model: model, Limit: storage.MaxLedgerEntries})
		if err != nil {
			t.Fatalf("Ledger: %v", err)
		}
		for _, e := range l {
			if e.Scope == storage.ScopeGlobal && e.Kind == storage.LedgerReserve {
				sum += e.Units
			}
		}
	}
	if sum != globalFits*unit {
		t.Fatalf("global reserve entries add up to %d, want %d", sum, globalFits*unit)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]postgres.Config{
		"fail/no-url":           {},
		"fail/schema-uppercase": {URL: defaultURL, Schema: "Hegate"},
		"fail/schema-injection": {URL: defaultURL, Schema: "x; DROP TABLE y"},
		"fail/schema-digit":     {URL: defaultURL, Schema: "1abc"},
		"fail/max-conns-1":      {URL: defaultURL, MaxConns: 1},
		"fail/max-conns-neg":    {URL: defaultURL, MaxConns: -1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := cfg.Validate(); err == nil {
				t.Fatal("Validate succeeded")
			}
		})
	}
	if err := (postgres.Config{URL: defaultURL, Schema: "hegate_1"}).Validate(); err != nil {
		t.Fatalf("Validate of a good config: %v", err)
	}
}

package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
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
	s, err := postgres.Open(t.Context(), postgres.Config{URL: databaseURL(), Schema: freshSchema(t), MaxConns: 8, Now: now})
	return storagetest.Ready(t, s, err)
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

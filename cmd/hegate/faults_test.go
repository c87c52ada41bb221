package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
)

// buildHegate builds this command into a temporary directory, for tests
// that need it as a process of its own (to kill it).
func buildHegate(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "hegate")
	cmd := exec.CommandContext(t.Context(), goBin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// syncBuffer is a bytes.Buffer that a process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rescueJobTimeout is the --job-timeout of the workers in
// TestKilledWorkerJobIsRescued.
const rescueJobTimeout = 20 * time.Second

// TestKilledWorkerJobIsRescued: a worker process is killed with SIGKILL
// while it works an inference job (the job row is running). A second
// worker runs it again and it finishes exactly once: succeeded, two
// attempts, one settlement of its privacy reservation, a result the
// device decrypts to the right digit, within the job timeout plus two
// minutes of the kill (River's default rescue took the timeout plus an
// hour).
func TestKilledWorkerJobIsRescued(t *testing.T) {
	if testing.Short() {
		t.Skip("encrypted inference in worker processes")
	}
	cli, apiKey := pgCLI(t, "hegate_rescue_")
	bin := buildHegate(t)
	ctx := t.Context()
	cli("budget", "set", "--tenant", "fleet", "--model", "mnist-cryptonets", "--epsilon", "1e8", "--delta", "1e-5", "--period", "month", "--sigma", "1", "--reason", "test")

	// The API only, in this process: it evaluates nothing.
	addr := freeAddr(t)
	srvCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := run(srvCtx, []string{"serve", "--workers", "0", "--addr", addr}, io.Discard, io.Discard); err != nil && srvCtx.Err() == nil {
			t.Errorf("hegate serve: %v", err)
		}
	}()
	defer func() { stop(); wg.Wait() }()
	waitReady(t, "http://"+addr+"/v2/health/ready")

	dev := deviceConfig{Server: "http://" + addr, APIKey: apiKey, Model: "mnist-cryptonets", Dir: t.TempDir()}
	t.Setenv("HEGATE_SERVER", dev.Server)
	t.Setenv("HEGATE_API_KEY", dev.APIKey)
	t.Setenv("HEGATE_DEVICE_DIR", dev.Dir)
	cli("keygen")
	cli("keys", "upload")

	// One inference, accepted and queued (no worker runs yet).
	d, sk, err := dev.loadDevice()
	if err != nil {
		t.Fatal(err)
	}
	idb, err := os.ReadFile(dev.path("keyset.id"))
	if err != nil {
		t.Fatal(err)
	}
	x, label, err := readInput("", 0, d)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := d.Encrypt(sk, x)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(dev.Server, dev.APIKey)
	if err != nil {
		t.Fatal(err)
	}
	_, jobID, err := cl.Infer(ctx, dev.Model, strings.TrimSpace(string(idb)), ct, client.InferOptions{})
	if err != nil {
		t.Fatal(err)
	}

	worker := func(name string) (*exec.Cmd, *syncBuffer) {
		t.Helper()
		logs := &syncBuffer{}
		cmd := exec.Command(bin, "worker", "--workers", "1", "--job-timeout", rescueJobTimeout.String(), "--log-level", "debug")
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
			if t.Failed() {
				t.Logf("%s's log:\n%s", name, logs.String())
			}
		})
		return cmd, logs
	}
	job := func() api.Job {
		t.Helper()
		j, err := cl.Job(ctx, jobID)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}

	// The first worker takes the job; it dies the moment the job is running.
	w1, _ := worker("worker 1")
	for deadline := time.Now().Add(2 * time.Minute); job().Status != api.JobRunning; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the job never ran: %+v", job())
		}
	}
	if err := w1.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = w1.Wait()
	killed := time.Now()
	if j := job(); j.Status != api.JobRunning {
		t.Fatalf("after the kill the job is %s, want running (the worker died too late)", j.Status)
	}
	if _, err := cl.CancelJob(ctx, jobID); client.StatusOf(err) != 409 {
		t.Fatalf("cancelling the running job: %v, want 409", err)
	}

	// A second worker: the job runs again there and finishes.
	worker("worker 2")
	limit := rescueJobTimeout + 2*time.Minute
	var last api.Job
	for last = job(); !last.Status.Terminal(); last = job() {
		if time.Since(killed) > limit {
			t.Fatalf("the killed worker's job is still %s %s after the kill (limit %s)", last.Status, time.Since(killed).Round(time.Second), limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("job %s %s %s after the kill", jobID, last.Status, time.Since(killed).Round(time.Second))
	if last.Status != api.JobSucceeded {
		t.Fatalf("job finished %s: %+v", last.Status, last)
	}
	result, err := cl.Result(ctx, jobID)
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Decrypt(sk, result)
	if err != nil {
		t.Fatal(err)
	}
	pred := client.Argmax(d.Tail(out))
	if tail := d.Tail(out); len(tail) == 1 {
		pred = int(tail[0]) // the model ends in ArgMax
	}
	if pred != label {
		t.Errorf("prediction %d, label %d; outputs %v", pred, label, out)
	}

	// Exactly once, as the database tells it.
	schema := os.Getenv("HEGATE_DATABASE_SCHEMA")
	conn, err := pgx.Connect(ctx, os.Getenv("HEGATE_DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var (
		attempts       int
		privacy        string
		units          int64
		spent, reserve int64
	)
	if err := conn.QueryRow(ctx, `SELECT attempts, privacy_state, privacy_units FROM `+schema+`.jobs WHERE id = $1`, jobID).Scan(&attempts, &privacy, &units); err != nil {
		t.Fatal(err)
	}
	// Two attempts: the killed one and the rescue. On a loaded machine an
	// attempt can also time out and be retried; that is more attempts, but
	// still one result and one settlement, which is what "exactly once"
	// means here (the ledger below).
	if attempts < 2 || privacy != "settled" {
		t.Errorf("job row: %d attempts, privacy %q; want at least 2, settled", attempts, privacy)
	}
	rows, err := conn.Query(ctx, `SELECT kind, count(*) FROM `+schema+`.budget_ledger WHERE job_id = $1 AND scope = 'tenant' GROUP BY kind ORDER BY kind`, jobID)
	if err != nil {
		t.Fatal(err)
	}
	kinds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var k string
		var n int
		err := r.Scan(&k, &n)
		return fmt.Sprintf("%s×%d", k, n), err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(kinds, " "); got != "reserve×1 settle×1" {
		t.Errorf("ledger entries of the job: %s, want reserve×1 settle×1", got)
	}
	if err := conn.QueryRow(ctx, `SELECT sum(spent), sum(reserved) FROM `+schema+`.budget_usage`).Scan(&spent, &reserve); err != nil {
		t.Fatal(err)
	}
	if spent != units || reserve != 0 {
		t.Errorf("budget usage: spent %d, reserved %d; want %d, 0", spent, reserve, units)
	}
	// River records its own completion a moment after the handler's.
	var (
		riverState   string
		riverAttempt int
	)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := conn.QueryRow(ctx, `SELECT state, attempt FROM `+schema+`.river_job WHERE args->>'job_id' = $1`, jobID).Scan(&riverState, &riverAttempt); err != nil {
			t.Fatal(err)
		}
		if riverState != "running" || time.Now().After(deadline) {
			break
		}
	}
	if riverState != "completed" || riverAttempt != attempts {
		t.Errorf("River job: %s after %d attempts, want completed after %d (the job row's)", riverState, riverAttempt, attempts)
	}
}

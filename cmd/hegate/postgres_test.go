package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/modelzoo"
)

// TestServeAndWorkerOnPostgres runs the production shape on PostgreSQL: a
// "serve --workers 0" that only takes requests and a separate "worker" that
// only evaluates, sharing the database (River) and the blob directory, and
// the device commands keygen, keys upload and infer against them.
func TestServeAndWorkerOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("encrypted inference")
	}
	cli, apiKey := pgCLI(t, "hegate_cmd_")
	ctx := context.Background()

	// The operator sets the tenant's budgets: the built-in model's, and
	// the one the tenant uploads below (the model need not exist yet).
	// Little noise, so predictions match labels; the budget is huge.
	for _, model := range []string{"mnist-cryptonets", "digits"} {
		cli("budget", "set", "--tenant", "fleet", "--model", model, "--epsilon", "1e8", "--delta", "1e-5", "--period", "month", "--sigma", "1", "--reason", "test")
	}
	addr := freeAddr(t)
	srvCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, args := range [][]string{{"serve", "--workers", "0", "--addr", addr}, {"worker", "--workers", "1"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(srvCtx, args, io.Discard, io.Discard); err != nil && srvCtx.Err() == nil {
				t.Errorf("hegate %v: %v", args, err)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()
	waitReady(t, "http://"+addr+"/v2/health/ready")

	t.Setenv("HEGATE_SERVER", "http://"+addr)
	t.Setenv("HEGATE_API_KEY", apiKey)
	t.Setenv("HEGATE_DEVICE_DIR", t.TempDir())
	cli("keygen")
	cli("keys", "upload")
	if out := cli("keys", "list"); !regexp.MustCompile(`(?m)^[0-9a-f]{64}\s+mnist-cryptonets\s+\d+\.\d MB`).MatchString(out) {
		t.Fatalf("keys list printed %q", out)
	}
	for i := 0; i < 3; i++ {
		out := cli("infer", "--mnist-index", fmt.Sprint(i))
		p := regexp.MustCompile(`prediction (\d+) \(label (\d+)\)`).FindStringSubmatch(out)
		if p == nil {
			t.Fatalf("infer printed %q", out)
		}
		t.Logf("image %d: %s", i, p[0])
		if p[1] != p[2] {
			t.Errorf("image %d: prediction %s, label %s (the model gets these right in plaintext)", i, p[1], p[2])
		}
	}

	// A model uploaded through the API while both processes run: the
	// worker process compiles it, the serving process serves it, with no
	// restart; another tenant does not see it.
	g, err := modelzoo.MNIST()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "digits.json")
	var gb bytes.Buffer
	if err := ir.Write(&gb, g); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, gb.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := cli("model", "import", file, "--name", "digits"); !strings.Contains(out, "ready: digits@v1") {
		t.Fatalf("model import printed %q", out)
	}
	t.Setenv("HEGATE_DEVICE_DIR", t.TempDir())
	cli("keygen", "--model", "digits@v1")
	cli("keys", "upload", "--model", "digits@v1")
	out := cli("infer", "--model", "digits@v1", "--mnist-index", "0")
	if p := regexp.MustCompile(`prediction (\d+) \(label (\d+)\)`).FindStringSubmatch(out); p == nil || p[1] != p[2] {
		t.Fatalf("infer on the uploaded model printed %q", out)
	}
	// A real ONNX export that needs more depth than a leveled preset has:
	// the version fails with the depth it needs.
	var errb bytes.Buffer
	onnxFile := filepath.Join("..", "..", "..", "shared", "data", "onnx", "keras-mnist-sm.onnx")
	if _, err := os.Stat(onnxFile); err == nil {
		err := run(ctx, []string{"model", "import", onnxFile, "--name", "keras-sm"}, io.Discard, &errb)
		if err == nil || !strings.Contains(err.Error(), "needs") || !strings.Contains(err.Error(), "levels") {
			t.Fatalf("importing the Keras model: %v", err)
		}
		t.Logf("keras-mnist-sm.onnx through the API: %v", err)
	} else if os.Getenv("CI") != "" {
		t.Fatalf("shared test data missing: %v", err)
	}
	other := regexp.MustCompile(`api key (hgk_\S+)`).FindStringSubmatch(cli("tenant", "create", "rival"))
	t.Setenv("HEGATE_API_KEY", other[1])
	if err := run(ctx, []string{"model", "versions", "digits"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("another tenant lists the model: %v", err)
	}
	if err := run(ctx, []string{"keygen", "--model", "digits@v1"}, io.Discard, io.Discard); err == nil {
		t.Fatal("another tenant fetched the model's manifest")
	}
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200", url)
}

//go:build boot16

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hegate/hegate/client"
	"math/rand/v2"
)

// TestResumableUploadOfAGigabyteKeySet is criterion 4 of issue 6: the
// 1.37 GB key set of a model on the 128-bit bootstrapping profile, made by
// the device, uploaded in 64 MiB chunks to a real "serve --workers 0"
// process; the upload is cut in the middle of the chunk after half of it
// was sent, resumed by its id from the last whole chunk, and completes
// with the key set listed. The gateway's RSS, sampled every 100 ms from
// /proc, stays under 256 MB throughout. PostgreSQL at 127.0.0.1:5432 (a
// worker process compiles the model); about 2 minutes:
//
//	go test -tags boot16 ./cmd/hegate -run TestResumableUploadOfAGigabyteKeySet -v -timeout 30m
func TestResumableUploadOfAGigabyteKeySet(t *testing.T) {
	cli, apiKey := pgCLI(t, "hegate_upload16_")
	bin := buildHegate(t)
	ctx := t.Context()
	addr := freeAddr(t)
	start := func(name string, args ...string) *exec.Cmd {
		logs := &syncBuffer{}
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("%s's log:\n%s", name, logs.String())
			}
		})
		return cmd
	}
	serve := start("serve", "serve", "--workers", "0", "--addr", addr)
	start("worker", "worker", "--workers", "1")
	waitReady(t, "http://"+addr+"/v2/health/ready")
	rest := vmRSS(serve.Process.Pid)

	g := deepGraph(rand.New(rand.NewPCG(61, 62)), 16)
	file := writeGraph(t, g)
	t.Setenv("HEGATE_SERVER", "http://"+addr)
	t.Setenv("HEGATE_API_KEY", apiKey)
	t.Setenv("HEGATE_DEVICE_DIR", t.TempDir())
	if out := cli("model", "import", file, "--name", "deep", "--preset", "n16-boot", "--output-range", "-2,2"); !strings.Contains(out, "ready: deep@v1") {
		t.Fatalf("model import printed %q", out)
	}
	cli("keygen", "--model", "deep@v1")
	beforeUpload := vmRSS(serve.Process.Pid)

	peak := sampleRSS(t, serve.Process.Pid)

	f, err := os.Open(filepath.Join(os.Getenv("HEGATE_DEVICE_DIR"), "keyset.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	size := st.Size()
	if size < 1e9 {
		t.Fatalf("key set of %d bytes: want at least 1 GB", size)
	}
	cl, err := client.New("http://"+addr, apiKey)
	if err != nil {
		t.Fatal(err)
	}
	// First attempt: cut 150 ms after the gateway holds half, which is in
	// the middle of the next 64 MiB chunk, with no retry.
	cut, cancel := context.WithCancel(ctx)
	defer cancel()
	var id string
	var cutAt atomic.Int64
	began := time.Now()
	_, err = cl.UploadKeySetResumable(cut, "deep@v1", f, size, client.ResumableOptions{
		Retries: -1,
		Started: func(s string) { id = s },
		Progress: func(done int64) {
			if done >= size/2 && cutAt.CompareAndSwap(0, done) {
				time.AfterFunc(150*time.Millisecond, cancel)
			}
		},
	})
	if err == nil || id == "" {
		t.Fatalf("the cut upload: %v (id %q)", err, id)
	}
	var resumedFrom atomic.Int64
	resumedFrom.Store(-1)
	ks, err := cl.UploadKeySetResumable(ctx, "deep@v1", f, size, client.ResumableOptions{
		UploadID: id,
		Progress: func(done int64) { resumedFrom.CompareAndSwap(-1, done) },
	})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	from := resumedFrom.Load()
	t.Logf("key set %d bytes; cut after %d bytes held, resumed from %d; stored as %s in %v (both attempts); gateway RSS %.0f MB at rest, %.0f MB before the upload, %.0f MB peak during it",
		size, cutAt.Load(), from, ks.ID, took, float64(rest)/1024, float64(beforeUpload)/1024, float64(peak())/1024)
	if from < size/2 || from >= size || from%client.DefaultUploadChunk != 0 {
		t.Errorf("resumed from %d: want the chunk boundary where the cut left it (at least half of %d)", from, size)
	}
	list, err := cl.KeySets(ctx)
	if err != nil || len(list) != 1 || list[0].ID != ks.ID || list[0].SizeBytes != size {
		t.Fatalf("key sets after the upload: %+v, %v", list, err)
	}
	if p := peak(); p*1024 >= 256e6 {
		t.Errorf("the gateway reached %.0f MB during the upload: want under 256 MB", float64(p)/1024)
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/gateway"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/internal/mnist/mnisteval"
)

// The demo runs the whole system in one process: an embedded gateway on a
// free loopback port with SQLite in a temporary folder and in-process
// workers, and a simulated device that makes its keys, uploads them, and
// classifies MNIST test images under encryption.

// maxLogitError is how far a decrypted logit may be from the plaintext
// reference before the demo calls the run failed.
const maxLogitError = 0.01

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	images := fs.Int("images", 20, "MNIST test images to classify")
	offset := fs.Int("offset", 0, "index of the first test image")
	modelName := fs.String("model", "mnist-cryptonets", "model to run")
	keep := fs.Bool("keep", false, "keep the temporary data folder")
	verbose := fs.Bool("v", false, "print the gateway's logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *images < 1 {
		return errors.New("--images must be at least 1")
	}

	dir, err := os.MkdirTemp("", "hegate-demo-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(stdout, "data folder %s (kept)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	logw := io.Discard
	if *verbose {
		logw = stderr
	}
	cfg := backendConfig{DataDir: dir, LogLevel: "info"}
	logger := cfg.logger(logw)

	// The gateway.
	t0 := time.Now()
	b, err := openBackend(ctx, cfg, logger, []string{*modelName})
	if err != nil {
		return err
	}
	defer b.close()
	model := b.models[0]
	graph := model.Graph()
	srv, err := b.server()
	if err != nil {
		return err
	}
	if err := b.startWorkers(ctx, workerFlags{Concurrency: 1, MaxAttempts: 2, JobTimeout: 5 * time.Minute}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srvCtx, stopSrv := context.WithCancel(ctx)
	srvDone := make(chan error, 1)
	go func() { srvDone <- serveHTTP(srvCtx, ln, srv.Handler()) }()
	defer func() { stopSrv(); <-srvDone }()
	base := "http://" + ln.Addr().String()
	tenant, apiKey, err := gateway.CreateTenant(ctx, b.store, "demo")
	if err != nil {
		return err
	}
	man := model.Manifest()
	fmt.Fprintf(stdout, "gateway   %s (SQLite in %s, tenant %s), ready in %s\n", base, dir, tenant.Name, time.Since(t0).Round(time.Millisecond))
	fmt.Fprintf(stdout, "model     %s: input %v, %d outputs, preset %s (logN %d, %d-bit security), %d levels, %d Galois keys\n",
		man.Name, man.Input, man.OutputSize, man.Params.Preset, man.Params.LogN, man.Params.SecurityBits, man.Levels, len(man.GaloisElements))
	fmt.Fprintf(stdout, "          per inference: %d rotations, %d plaintext mults, %d ciphertext mults, %d rescales\n",
		man.Cost.Rotations, man.Cost.PlainMults, man.Cost.CipherMults, man.Cost.Rescales)

	// The device: it knows only the served manifest, never the weights.
	counter := &countingTransport{next: http.DefaultTransport}
	cl, err := client.New(base, apiKey, client.WithHTTPClient(&http.Client{Transport: counter}))
	if err != nil {
		return err
	}
	served, err := cl.Model(ctx, *modelName)
	if err != nil {
		return fmt.Errorf("fetching manifest: %w", err)
	}
	dev, err := he.NewDevice(served, false)
	if err != nil {
		return err
	}
	sk, err := dev.GenerateSecretKey()
	if err != nil {
		return err
	}
	t0 = time.Now()
	pr, pw := io.Pipe()
	go func() {
		_, err := dev.WriteKeySet(pw, sk)
		pw.CloseWithError(err)
	}()
	ks, err := cl.UploadKeySet(ctx, *modelName, pr, served.KeySetBytes)
	pr.CloseWithError(errors.New("upload finished"))
	if err != nil {
		return fmt.Errorf("uploading key set: %w", err)
	}
	keyBytes := counter.sent.Load()
	fmt.Fprintf(stdout, "device    generated and uploaded key set %.12s… (%.1f MB, streamed) in %s\n\n", ks.ID, float64(keyBytes)/1e6, time.Since(t0).Round(time.Millisecond))

	set, err := mnist.LoadDefault(mnist.Test)
	if err != nil {
		return err
	}
	if *offset < 0 || *offset+*images > set.Len() {
		return fmt.Errorf("--offset %d --images %d: the test set has %d images", *offset, *images, set.Len())
	}

	fmt.Fprintf(stdout, "%5s  %5s  %10s  %7s  %9s  %s\n", "image", "label", "prediction", "latency", "max|err|", "")
	var correct, failures, completed int
	var totalLatency time.Duration
	worstErr := 0.0
	sent0, recv0 := counter.sent.Load(), counter.received.Load()
	for i := *offset; i < *offset+*images; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		x, label := mnisteval.Input(graph, set.Images[i]), set.Labels[i]
		want, err := graph.Run(x)
		if err != nil {
			return err
		}
		start := time.Now()
		ct, err := dev.Encrypt(sk, x)
		if err != nil {
			return err
		}
		result, _, err := cl.Infer(ctx, *modelName, ks.ID, ct, client.InferOptions{Wait: true})
		if err != nil {
			fmt.Fprintf(stdout, "%5d  %5d  %10s  error: %v\n", i, label, "-", err)
			failures++
			continue
		}
		got, err := dev.Decrypt(sk, result)
		if err != nil {
			return err
		}
		lat := time.Since(start)
		totalLatency += lat
		completed++
		diff := 0.0
		for k := range want {
			diff = math.Max(diff, math.Abs(got[k]-want[k]))
		}
		worstErr = math.Max(worstErr, diff)
		pred := client.Argmax(got)
		mark := ""
		if pred == label {
			correct++
		} else {
			mark = "✗"
		}
		if diff > maxLogitError || pred != client.Argmax(want) {
			mark += " differs from plaintext reference"
			failures++
		}
		fmt.Fprintf(stdout, "%5d  %5d  %10d  %7s  %9.1e  %s\n", i, label, pred, lat.Round(time.Millisecond), diff, mark)
	}
	n := *images
	sent, recv := counter.sent.Load()-sent0, counter.received.Load()-recv0
	fmt.Fprintf(stdout, "\naccuracy  %d/%d correct (%.1f%%) on MNIST test images %d..%d\n", correct, n, 100*float64(correct)/float64(n), *offset, *offset+n-1)
	if completed > 0 {
		fmt.Fprintf(stdout, "latency   %s mean per image (encrypt + upload + evaluate + download + decrypt)\n", (totalLatency / time.Duration(completed)).Round(time.Millisecond))
	}
	fmt.Fprintf(stdout, "traffic   keys %.1f MB once; per inference %.2f MB sent, %.2f MB received\n", float64(keyBytes)/1e6, float64(sent)/1e6/float64(n), float64(recv)/1e6/float64(n))
	fmt.Fprintf(stdout, "accuracy  max |encrypted - plaintext| logit difference %.2e (limit %.0e)\n", worstErr, maxLogitError)
	if failures > 0 {
		return fmt.Errorf("demo failed: %d of %d inferences failed or disagreed with the plaintext reference", failures, n)
	}
	return nil
}

// countingTransport counts the bytes of request and response bodies.
type countingTransport struct {
	next           http.RoundTripper
	sent, received atomic.Int64
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body = &countingReader{rc: req.Body, n: &t.sent}
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &countingReader{rc: resp.Body, n: &t.received}
	return resp, nil
}

type countingReader struct {
	rc io.ReadCloser
	n  *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.rc.Read(p)
	c.n.Add(int64(k))
	return k, err
}

func (c *countingReader) Close() error { return c.rc.Close() }

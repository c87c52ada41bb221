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
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/dp"
	"github.com/hegate/hegate/gateway"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/internal/mnist/mnisteval"
	"github.com/hegate/hegate/modelzoo"
	"github.com/hegate/hegate/storage"
)

// The demo runs the whole system in one process: an embedded gateway on a
// free loopback port with SQLite in a temporary folder and in-process
// workers, and a simulated device that makes its keys, uploads them, and
// classifies MNIST test images under encryption.

// maxLogitError is how far a decrypted logit may be from the plaintext
// reference, beyond noiseSigmas times the noise, before the demo calls the
// run failed.
const (
	maxLogitError = 0.01
	noiseSigmas   = 6
)

func newDemoCmd() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "run an embedded gateway and a simulated device on MNIST",
		Long: `Run the whole system in one process: an embedded gateway on a free loopback
port with SQLite in a temporary folder and in-process workers, and a
simulated device that attests, makes its keys, uploads them, and classifies
MNIST test images under encryption, checked against the plaintext model.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.images, "images", 20, "MNIST test images to classify")
	f.IntVar(&o.offset, "offset", 0, "index of the first test image")
	f.StringVar(&o.model, "model", modelzoo.MNISTName, "model to run")
	f.BoolVar(&o.compareSplit, "compare-split", false, "run "+modelzoo.ResNetName+" whole and split after its first block, and compare upload bytes and latency")
	f.Float64Var(&o.sigma, "noise-sigma", 1, "differential-privacy noise (standard deviation) on each output; the demo's budget pays for exactly --images answers at it")
	f.BoolVar(&o.keep, "keep", false, "keep the temporary data folder")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "print the gateway's logs")
	return cmd
}

// demoOptions are hegate demo's flags.
type demoOptions struct {
	images, offset     int
	model              string
	compareSplit, keep bool
	verbose            bool
	sigma              float64
}

func runDemo(ctx context.Context, o demoOptions, stdout, stderr io.Writer) error {
	if o.images < 1 {
		return errors.New("--images must be at least 1")
	}
	if !(o.sigma > 0) || math.IsInf(o.sigma, 0) {
		return errors.New("--noise-sigma must be a positive number")
	}
	names := []string{o.model}
	if o.compareSplit {
		names = []string{modelzoo.ResNetName, modelzoo.ResNetName + "-split"}
	}

	dir, err := os.MkdirTemp("", "hegate-demo-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(stdout, "data folder %s (kept)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	logw := io.Discard
	if o.verbose {
		logw = stderr
	}
	cfg := backendConfig{DataDir: dir, LogLevel: "info"}
	logger := cfg.logger(logw)

	// The gateway.
	t0 := time.Now()
	b, err := openBackend(ctx, cfg, logger, names)
	if err != nil {
		return err
	}
	defer b.close()
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
	go func() { srvDone <- serveHTTP(srvCtx, ln, srv.Handler(), 0) }()
	defer func() { stopSrv(); <-srvDone }()
	base := "http://" + ln.Addr().String()
	tenant, apiKey, err := gateway.CreateTenant(ctx, b.store, "demo")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "gateway   %s (SQLite in %s, tenant %s), ready in %s\n", base, dir, tenant.Name, time.Since(t0).Round(time.Millisecond))
	cred, err := demoEnroll(ctx, base, apiKey, filepath.Join(dir, "device"), stdout)
	if err != nil {
		return err
	}
	set, err := mnist.LoadDefault(mnist.Test)
	if err != nil {
		return err
	}
	if o.offset < 0 || o.offset+o.images > set.Len() {
		return fmt.Errorf("--offset %d --images %d: the test set has %d images", o.offset, o.images, set.Len())
	}
	var results []demoResult
	for i, m := range b.models {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if err := demoBudget(ctx, b.store, tenant.ID, m, o.sigma, o.images, stdout); err != nil {
			return err
		}
		r, err := demoModel(ctx, base, cred, m, set, o.offset, o.images, o.sigma, stdout)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if len(results) > 1 {
		fmt.Fprintf(stdout, "\n%-20s  %9s  %9s  %9s  %10s  %s\n", "model", "keys", "up/image", "latency", "on device", "correct")
		for _, r := range results {
			fmt.Fprintf(stdout, "%-20s  %6.1f MB  %6.2f MB  %9s  %10s  %d/%d\n", r.name, float64(r.keyBytes)/1e6, float64(r.sentPerImage)/1e6,
				r.latency.Round(time.Millisecond), r.head.Round(time.Millisecond), r.correct, r.n)
		}
	}
	for _, r := range results {
		if r.failures > 0 {
			return fmt.Errorf("demo failed: %d of %d inferences of %s failed or disagreed with the plaintext reference", r.failures, r.n, r.name)
		}
	}
	return nil
}

// demoResult is what one model's run measured.
type demoResult struct {
	name                        string
	n, correct, agree, failures int
	keyBytes, sentPerImage      int64
	latency, head               time.Duration // mean per image; head: the device's plaintext part
}

// demoEnroll makes the demo's simulated device attest: native evidence
// (a software Ed25519 key measuring this hegate binary) endorsed by the
// demo tenant, whose policy then admits only attested devices. It returns
// the device's credential.
func demoEnroll(ctx context.Context, base, apiKey, dir string, stdout io.Writer) (*client.DeviceCredential, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	admin, err := client.New(base, apiKey)
	if err != nil {
		return nil, err
	}
	id, err := loadOrCreateIdentity(dir, "native", "ed25519")
	if err != nil {
		return nil, err
	}
	ev, err := evidenceFor(dir, id)
	if err != nil {
		return nil, err
	}
	if _, err := admin.SetPolicy(ctx, "", api.Policy{AllowAPIKey: false, Formats: []string{"tpm", "psa", "native"}, Statuses: []string{"affirming"}}); err != nil {
		return nil, fmt.Errorf("setting the demo tenant's policy: %w", err)
	}
	dev, cred, err := enrollIdentity(ctx, admin, dir, id, ev, true, base)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "device    %s enrolled with native evidence (%s): attestation %s;\n", dev.ID, describeFormat(id), dev.AttestationStatus)
	fmt.Fprintf(stdout, "          the tenant's policy admits attested devices only, so every inference below carries its DPoP-bound credential\n")
	return cred, nil
}

// demoBudget sets the demo tenant's budget for model: exactly enough for
// images answers with noise sigma, and says what that is worth.
func demoBudget(ctx context.Context, store storage.Store, tenant hegate.TenantID, model *he.Model, sigma float64, images int, stdout io.Writer) error {
	mech := model.Privacy()
	if mech == nil {
		return fmt.Errorf("model %s has no privacy mechanism: %s", model.ID(), model.Manifest().PrivacyNote)
	}
	if sigma > mech.MaxSigma {
		return fmt.Errorf("--noise-sigma %g exceeds the %g that model %s's parameters hold", sigma, mech.MaxSigma, model.ID())
	}
	rho, err := mech.RhoAt(sigma)
	if err != nil {
		return err
	}
	per, err := dp.RhoUnitsCeil(rho)
	if err != nil {
		return fmt.Errorf("--noise-sigma %g: one answer would cost rho %g, more than a budget counts; use more noise", sigma, rho)
	}
	total, err := per.Times(int64(images))
	if err != nil {
		return fmt.Errorf("--noise-sigma %g: %d answers would cost more than a budget counts; use more noise or fewer images", sigma, images)
	}
	const delta = 1e-5
	epsQuery, _ := dp.ZCDPToEpsilon(rho, delta)
	epsTotal, _ := dp.ZCDPToEpsilon(total.Float64(), delta)
	if _, err := store.SetBudget(ctx, storage.SetBudgetParams{
		TenantID: tenant, Model: model.ID(), NoiseSigma: sigma, Actor: "demo", Reason: "the demo's budget",
		Limit: storage.BudgetLimit{Capacity: int64(total), Period: storage.BudgetNever, Epsilon: epsTotal, Delta: delta},
	}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "privacy   noise sigma %g on each output (sensitivity %.4g): one answer costs rho %s, epsilon %.4g at delta %g;\n", sigma, mech.Sensitivity, per, epsQuery, delta)
	fmt.Fprintf(stdout, "          the budget pays for %d answers: epsilon %.4g. The model's own default is sigma %.4g (epsilon %.4g per answer);\n", images, epsTotal, mech.Sigma, mech.Epsilon)
	fmt.Fprintf(stdout, "          see docs/privacy.md for what a meaningful epsilon costs in accuracy.\n")
	return nil
}

// demoModel runs a simulated device against the gateway at base: it
// fetches the manifest (never the weights, except a split model's head,
// which a device deploying that model has), makes and uploads its keys, and
// classifies the images under encryption.
func demoModel(ctx context.Context, base string, cred *client.DeviceCredential, model *he.Model, set *mnist.Set, offset, images int, sigma float64, stdout io.Writer) (demoResult, error) {
	name := string(model.ID())
	res := demoResult{name: name, n: images}
	graph := model.Graph()
	man := model.Manifest()
	fmt.Fprintf(stdout, "model     %s: input %v, %d outputs, preset %s (logN %d, %d-bit security), %d levels, %d Galois keys\n",
		man.Name, man.Input, man.OutputSize, man.Params.Preset, man.Params.LogN, man.Params.SecurityBits, man.Levels, len(man.GaloisElements))
	if s := man.Split; s != nil {
		fmt.Fprintf(stdout, "          split inference: the device runs %d nodes up to %q in the clear, then encrypts\n", s.HeadNodes, s.After)
	}
	fmt.Fprintf(stdout, "          per inference: %d rotations, %d plaintext mults, %d ciphertext mults, %d rescales\n",
		man.Cost.Rotations, man.Cost.PlainMults, man.Cost.CipherMults, man.Cost.Rescales)

	counter := &countingTransport{next: http.DefaultTransport}
	cl, err := client.New(base, "", client.WithHTTPClient(&http.Client{Transport: counter}), client.WithDeviceCredential(cred))
	if err != nil {
		return res, err
	}
	served, err := cl.Model(ctx, name)
	if err != nil {
		return res, fmt.Errorf("fetching manifest: %w", err)
	}
	dev, err := he.NewDevice(served, false)
	if err != nil {
		return res, err
	}
	head := model.Head()
	if s := dev.Split(); s != nil && (head == nil || head.Digest() != s.HeadDigest) {
		return res, fmt.Errorf("model %s: the device's head does not match the served model's", name)
	}
	sk, err := dev.GenerateSecretKey()
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	pr, pw := io.Pipe()
	go func() {
		_, err := dev.WriteKeySet(pw, sk)
		pw.CloseWithError(err)
	}()
	ks, err := cl.UploadKeySet(ctx, name, pr, served.KeySetBytes)
	pr.CloseWithError(errors.New("upload finished"))
	if err != nil {
		return res, fmt.Errorf("uploading key set: %w", err)
	}
	res.keyBytes = counter.sent.Load()
	fmt.Fprintf(stdout, "device    generated and uploaded key set %.12s… (%.1f MB, streamed) in %s\n\n", ks.ID, float64(res.keyBytes)/1e6, time.Since(t0).Round(time.Millisecond))

	fmt.Fprintf(stdout, "%5s  %5s  %10s  %7s  %9s  %s\n", "image", "label", "prediction", "latency", "max|err|", "")
	var completed int
	var totalLatency, totalHead time.Duration
	worstErr := 0.0
	sent0, recv0 := counter.sent.Load(), counter.received.Load()
	for i := offset; i < offset+images; i++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		x, label := mnisteval.Input(graph, set.Images[i]), set.Labels[i]
		want, err := model.Approximate(x)
		if err != nil {
			return res, err
		}
		start := time.Now()
		in := x
		if head != nil {
			if in, err = head.Run(x); err != nil {
				return res, err
			}
			totalHead += time.Since(start)
		}
		ct, err := dev.Encrypt(sk, in)
		if err != nil {
			return res, err
		}
		result, _, err := cl.Infer(ctx, name, ks.ID, ct, client.InferOptions{Wait: true})
		if err != nil {
			fmt.Fprintf(stdout, "%5d  %5d  %10s  error: %v\n", i, label, "-", err)
			res.failures++
			continue
		}
		got, err := dev.Decrypt(sk, result)
		if err != nil {
			return res, err
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
			res.correct++
		} else {
			mark = "✗"
		}
		if pred == client.Argmax(want) {
			res.agree++
		} else {
			mark += " (noise flipped the plaintext prediction)"
		}
		if diff > noiseSigmas*sigma+maxLogitError {
			mark += " differs from plaintext reference beyond the noise"
			res.failures++
		}
		fmt.Fprintf(stdout, "%5d  %5d  %10d  %7s  %9.1e  %s\n", i, label, pred, lat.Round(time.Millisecond), diff, mark)
	}
	n := images
	sent, recv := counter.sent.Load()-sent0, counter.received.Load()-recv0
	res.sentPerImage = sent / int64(n)
	fmt.Fprintf(stdout, "\naccuracy  %d/%d correct (%.1f%%) on MNIST test images %d..%d; %d/%d agree with the plaintext model's prediction\n",
		res.correct, n, 100*float64(res.correct)/float64(n), offset, offset+n-1, res.agree, n)
	if completed > 0 {
		res.latency = totalLatency / time.Duration(completed)
		res.head = totalHead / time.Duration(completed)
		fmt.Fprintf(stdout, "latency   %s mean per image (encrypt + upload + evaluate + download + decrypt)\n", res.latency.Round(time.Millisecond))
	}
	fmt.Fprintf(stdout, "traffic   keys %.1f MB once; per inference %.2f MB sent, %.2f MB received\n", float64(res.keyBytes)/1e6, float64(sent)/1e6/float64(n), float64(recv)/1e6/float64(n))
	fmt.Fprintf(stdout, "accuracy  max |encrypted - plaintext| logit difference %.3g (noise sigma %g; limit %g)\n", worstErr, sigma, noiseSigmas*sigma+maxLogitError)
	if bs, err := cl.Budget(ctx, name); err == nil {
		fmt.Fprintf(stdout, "budget    spent rho %s of %s (epsilon %.4g of %.4g at delta %g)\n", bs.SpentRho, bs.CapacityRho, bs.SpentEpsilon, bs.Epsilon, bs.Delta)
	}
	return res, nil
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

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/he/onnx"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/internal/mnist/mnisteval"
)

const modelUsage = `usage: hegate model SUBCOMMAND [flags]

  list                         the built-in models (and those in --models-dir)
  inspect NAME|FILE            the compile report: levels, depth per node,
                               approximations, rotations, key bytes (--json: the manifest)
  run NAME|FILE --mnist-index N [--approx]
                               the plaintext executor on one MNIST test image,
                               exact or with the compiled approximations
  accuracy NAME|FILE [--approx] [--images N] [--int8-head]
                               accuracy on the MNIST test set
  import FILE --name NAME      upload to a gateway (HEGATE_SERVER, HEGATE_API_KEY);
                               it compiles there in a job; waits for the result
  versions NAME                the versions of an uploaded model
  delete NAME                  delete an uploaded model

FILE is an ONNX file (.onnx) or a hegate graph (.json). Flags:
`

// modelFlags are the import and compile options every model subcommand takes.
type modelFlags struct {
	preset                string
	method, sign, maxpool string
	reluDegree, absDegree int
	margin                float64
	splitAfter            string
	deviceMACs            int64
	scale, mean, std      float64
	layout                string
	name                  string
	// privacy
	clip                           bool
	outputRange                    string
	noiseSigma, queryEps, queryDel float64
}

func (m *modelFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&m.clip, "clip", false, "privacy: clip the outputs with a public polynomial so the declared range holds for network outputs twice as far out (two more levels)")
	fs.StringVar(&m.outputRange, "output-range", "", "privacy: declared range of the outputs, low,high (default: calibrated)")
	fs.Float64Var(&m.noiseSigma, "noise-sigma", 0, "privacy: default noise standard deviation on each output (default: from --query-epsilon)")
	fs.Float64Var(&m.queryEps, "query-epsilon", 0, fmt.Sprintf("privacy: per-answer epsilon that sets the default noise (default %g)", he.DefaultQueryEpsilon))
	fs.Float64Var(&m.queryDel, "query-delta", 0, fmt.Sprintf("privacy: per-answer delta (default %g)", he.DefaultQueryDelta))
	fs.StringVar(&m.preset, "preset", "", "parameter preset ("+strings.Join(he.Presets(), ", ")+"); default: the smallest 128-bit preset the model fits")
	fs.StringVar(&m.method, "approx-method", "", "how ReLU and max are approximated: composite (default) or chebyshev")
	fs.StringVar(&m.maxpool, "maxpool", "", "max pooling as a polynomial max (max, the default) or replaced by average pooling (average)")
	fs.StringVar(&m.sign, "sign", "", "composite sign approximation ("+strings.Join(he.SignPresets(), ", ")+"; default "+he.DefaultSignPreset+")")
	fs.IntVar(&m.reluDegree, "relu-degree", 0, fmt.Sprintf("degree of the ReLU approximation (default %d)", he.DefaultReluDegree))
	fs.IntVar(&m.absDegree, "abs-degree", 0, fmt.Sprintf("degree of the |x| approximation inside max pooling (default %d)", he.DefaultAbsDegree))
	fs.Float64Var(&m.margin, "margin", 0, fmt.Sprintf("widening of calibrated ranges (default %g)", he.DefaultRangeMargin))
	fs.StringVar(&m.splitAfter, "split-after", "", "split inference: the value after which the device's head ends, or auto (the latest cut within --device-macs)")
	fs.Int64Var(&m.deviceMACs, "device-macs", 0, "split-after auto: the device's budget of multiply-accumulates per input")
	fs.Float64Var(&m.scale, "scale", 0, "input preprocessing x = (raw·scale − mean)/std (raw pixels 0..255); 0: the model's own, or 1/255")
	fs.Float64Var(&m.mean, "mean", 0, "input preprocessing mean")
	fs.Float64Var(&m.std, "std", 0, "input preprocessing std (0: 1)")
	fs.StringVar(&m.layout, "layout", "", "input layout, NCHW or NHWC (informational: 1-channel images are the same)")
	fs.StringVar(&m.name, "name", "", "model name (import; default: the file's base name)")
}

// preprocess is the preprocessing the flags give, or nil.
func (m *modelFlags) preprocess() *ir.Preprocess {
	if m.scale == 0 && m.mean == 0 && m.std == 0 && m.layout == "" {
		return nil
	}
	p := &ir.Preprocess{Scale: m.scale, Mean: m.mean, Std: m.std, Layout: m.layout}
	if p.Scale == 0 {
		p.Scale = 1.0 / 255
	}
	if p.Std == 0 {
		p.Std = 1
	}
	return p
}

func (m *modelFlags) compileOptions() (he.CompileOptions, error) {
	priv := he.PrivacyOptions{Clip: m.clip, Sigma: m.noiseSigma, QueryEpsilon: m.queryEps, QueryDelta: m.queryDel}
	if m.outputRange != "" {
		lo, hi, ok := strings.Cut(m.outputRange, ",")
		a, err1 := strconv.ParseFloat(strings.TrimSpace(lo), 64)
		b, err2 := strconv.ParseFloat(strings.TrimSpace(hi), 64)
		if !ok || err1 != nil || err2 != nil || !(a < b) {
			return he.CompileOptions{}, fmt.Errorf("--output-range %q: want low,high with low < high", m.outputRange)
		}
		priv.OutputRange = [2]float64{a, b}
	}
	return he.CompileOptions{Params: m.preset, SplitAfter: m.splitAfter, DeviceMACs: m.deviceMACs, Privacy: priv,
		Approx: he.ApproxOptions{Method: m.method, Sign: m.sign, MaxPool: m.maxpool, ReluDegree: m.reluDegree, AbsDegree: m.absDegree, Margin: m.margin}}, nil
}

// query is the upload's query parameters.
func (m *modelFlags) query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" && v != "0" {
			q.Set(k, v)
		}
	}
	set("preset", m.preset)
	set("approx_method", m.method)
	set("sign", m.sign)
	set("maxpool", m.maxpool)
	set("relu_degree", strconv.Itoa(m.reluDegree))
	set("abs_degree", strconv.Itoa(m.absDegree))
	set("margin", strconv.FormatFloat(m.margin, 'g', -1, 64))
	set("split_after", m.splitAfter)
	set("device_macs", strconv.FormatInt(m.deviceMACs, 10))
	if m.clip {
		q.Set("clip", "true")
	}
	set("output_range", m.outputRange)
	set("noise_sigma", strconv.FormatFloat(m.noiseSigma, 'g', -1, 64))
	set("query_epsilon", strconv.FormatFloat(m.queryEps, 'g', -1, 64))
	set("query_delta", strconv.FormatFloat(m.queryDel, 'g', -1, 64))
	if p := m.preprocess(); p != nil {
		q.Set("scale", strconv.FormatFloat(p.Scale, 'g', -1, 64))
		q.Set("mean", strconv.FormatFloat(p.Mean, 'g', -1, 64))
		q.Set("std", strconv.FormatFloat(p.Std, 'g', -1, 64))
		set("layout", p.Layout)
	}
	return q
}

func runModel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("model", stderr)
	var cfg backendConfig
	cfg.register(fs)
	var mf modelFlags
	mf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	approx := fs.Bool("approx", false, "run: with the compiled approximations (ReLU and max as polynomials)")
	mnistIndex := fs.Int("mnist-index", 0, "run: the MNIST test image")
	images := fs.Int("images", 10000, "accuracy: how many MNIST test images")
	int8Head := fs.Bool("int8-head", false, "accuracy: with --split-after, run the head int8-quantized as an edge runtime would")
	calibrate := fs.Int("calibrate", 0, "inspect: also check value ranges on this many MNIST test images")
	measure := fs.Bool("measure", false, "inspect: time the primitives on this machine at each step's level and estimate the latency")
	var dc deviceConfig
	fs.StringVar(&dc.Server, "server", envOr("HEGATE_SERVER", "http://127.0.0.1:8080"), "import/versions/delete: gateway URL [HEGATE_SERVER]")
	fs.StringVar(&dc.APIKey, "api-key", "", "import/versions/delete: tenant API key (default: $HEGATE_API_KEY)")
	fs.Usage = func() {
		fmt.Fprint(stderr, modelUsage)
		fs.PrintDefaults()
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		fs.Usage()
		return errors.New("model: missing subcommand")
	}
	sub, operand := rest[0], ""
	if len(rest) == 2 {
		operand = rest[1]
	} else if len(rest) > 2 || (len(rest) == 1 && sub != "list") {
		fs.Usage()
		return fmt.Errorf("model %s: want one NAME or FILE", sub)
	}
	switch sub {
	case "list":
		graphs, err := cfg.loadGraphs()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tINPUT\tOUTPUTS\tNODES")
		for _, g := range graphs {
			fmt.Fprintf(tw, "%s\t%v\t%d\t%d\n", g.Name, g.Input.Shape, ir.Prod(g.OutputShape()), len(g.Nodes))
		}
		return tw.Flush()
	case "inspect", "run", "accuracy":
		g, err := loadModelGraph(cfg, operand, &mf)
		if err != nil {
			return err
		}
		switch sub {
		case "inspect":
			return inspectModel(ctx, g, &mf, *asJSON, *calibrate, *measure, stdout)
		case "run":
			return runOne(ctx, g, &mf, *approx, *mnistIndex, *asJSON, stdout)
		default:
			return accuracy(ctx, g, &mf, *approx, *int8Head, *images, stdout)
		}
	case "import", "versions", "delete":
		dc.APIKey = apiKeyOrEnv(dc.APIKey)
		if dc.APIKey == "" {
			return errors.New("model " + sub + ": set HEGATE_API_KEY (or --api-key)")
		}
		cl, err := client.New(dc.Server, dc.APIKey)
		if err != nil {
			return err
		}
		switch sub {
		case "import":
			return importModel(ctx, cl, operand, &mf, *asJSON, stdout)
		case "versions":
			vs, err := cl.ModelVersions(ctx, operand)
			if err != nil {
				return err
			}
			printVersions(stdout, vs)
			return nil
		default:
			if err := cl.DeleteModel(ctx, operand); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "deleted model %s\n", operand)
			return nil
		}
	}
	fs.Usage()
	return fmt.Errorf("model: unknown subcommand %q", sub)
}

// loadModelGraph reads FILE (ONNX or IR JSON) or finds the built-in NAME,
// applying the preprocessing flags.
func loadModelGraph(cfg backendConfig, ref string, mf *modelFlags) (*ir.Graph, error) {
	var g *ir.Graph
	if st, err := os.Stat(ref); err == nil && !st.IsDir() {
		name := mf.name
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(ref), filepath.Ext(ref))
		}
		if strings.HasSuffix(ref, ".onnx") {
			if g, err = onnx.ImportFile(ref, onnx.Options{Name: name, Preprocess: mf.preprocess()}); err != nil {
				return nil, err
			}
		} else if g, err = readGraphFile(ref); err != nil {
			return nil, err
		}
	} else {
		graphs, err := cfg.loadGraphs()
		if err != nil {
			return nil, err
		}
		for _, cand := range graphs {
			if cand.Name == ref {
				g = cand
			}
		}
		if g == nil {
			return nil, fmt.Errorf("model %q: no such built-in model or file", ref)
		}
	}
	if p := mf.preprocess(); p != nil {
		g.Input.Preprocess = p
	}
	return g, nil
}

// inspectModel prints the compile report, or, when the model does not fit
// any preset, its depth and the compiler's reason.
func inspectModel(ctx context.Context, g *ir.Graph, mf *modelFlags, asJSON bool, calibrate int, measure bool, stdout io.Writer) error {
	opts, err := mf.compileOptions()
	if err != nil {
		return err
	}
	cal, err := calibrationFor(g)
	if err != nil {
		return err
	}
	opts.Calibration = cal
	t0 := time.Now()
	m, err := he.Compile(ctx, g, opts)
	if err != nil {
		if circ, lerr := he.Lower(ctx, g, opts); lerr == nil {
			fmt.Fprintf(stdout, "model %s does not compile for a leveled preset: it needs %d levels.%s\n", g.Name, circ.Levels(), circ.DepthReport())
		}
		return err
	}
	man := m.Manifest()
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if calibrate <= 0 {
			return enc.Encode(man)
		}
		samples, err := mnistSamples(calibrate, g)
		if err != nil {
			return err
		}
		report, calErr := m.Calibrate(samples)
		if err := enc.Encode(struct {
			Manifest    he.Manifest    `json:"manifest"`
			Calibration he.Calibration `json:"calibration"`
		}{man, report}); err != nil {
			return err
		}
		return calErr
	}
	fmt.Fprintf(stdout, "model      %s: input %v, %d outputs, compiled in %s\n", man.Name, man.Input, man.OutputSize, time.Since(t0).Round(time.Millisecond))
	fmt.Fprintf(stdout, "params     %s (logN %d, logQP %d, %d-bit security), %d of %d levels, 2^%d slots\n",
		man.Params.Preset, man.Params.LogN, man.Params.LogQP, man.Params.SecurityBits, man.Levels, man.Params.MaxLevel, man.LogSlots)
	c := man.Cost
	fmt.Fprintf(stdout, "per input  %d rotations, %d plaintext mults, %d ciphertext mults, %d rescales\n", c.Rotations, c.PlainMults, c.CipherMults, c.Rescales)
	fmt.Fprintf(stdout, "keys       %d Galois keys + relinearisation, %s to upload once\n", len(man.GaloisElements), mb(man.KeySetBytes))
	fmt.Fprintf(stdout, "traffic    %s up, %s down per inference\n", mb(man.CiphertextBytes), mb(man.ResultBytes))
	fmt.Fprintf(stdout, "memory     %s of pre-encoded weights per process; about %s more per evaluation (expanded keys, live ciphertexts)\n", mb(man.EncodedBytes), mb(man.EvaluationBytes))
	if pr := man.Privacy; pr != nil {
		fmt.Fprintf(stdout, "privacy    outputs declared in [%.4g, %.4g], L2 sensitivity %.4g; default noise sigma %.4g per output: rho %.4g, epsilon %.4g at delta %g per answer (max sigma %.4g)\n",
			pr.OutputRange[0], pr.OutputRange[1], pr.Sensitivity, pr.Sigma, pr.Rho, pr.Epsilon, pr.Delta, pr.MaxSigma)
		if pr.Clip {
			fmt.Fprintf(stdout, "           output clip: the range holds for network outputs in [%.4g, %.4g]\n", pr.ClipDomain[0], pr.ClipDomain[1])
		}
	} else {
		fmt.Fprintf(stdout, "privacy    none: %s\n", man.PrivacyNote)
	}
	if measure {
		byLevel := map[int]he.Primitives{}
		for _, st := range man.Steps {
			if _, ok := byLevel[st.Level]; !ok {
				p, err := he.MeasurePrimitives(man.Params.Preset, false, st.Level, 5)
				if err != nil {
					return err
				}
				byLevel[st.Level] = p
			}
		}
		fmt.Fprintf(stdout, "latency    about %s per evaluation on one core of this machine (primitives timed here at each step's level)\n", he.EstimateLatency(man.Steps, byLevel).Round(time.Millisecond))
	}
	if s := man.Split; s != nil {
		fmt.Fprintf(stdout, "split      the device runs %d nodes up to %q (%d multiply-accumulates), then encrypts\n", s.HeadNodes, s.After, s.HeadMACs)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tKIND\tLEVEL\tDEPTH\tDETAIL\tNODES")
	for i, st := range man.Steps {
		detail := ""
		switch st.Kind {
		case "linear":
			detail = fmt.Sprintf("%s, %d diagonals, %d baby + %d giant steps", st.Method, st.Diagonals, st.BabySteps, st.GiantSteps)
		case "poly":
			detail = fmt.Sprintf("%s degree %d", st.Function, st.Degree)
			if st.Function != "trained" {
				detail += fmt.Sprintf(" on [%.3g, %.3g], max error %.2g", st.Range[0], st.Range[1], st.MaxError)
			}
		case "square":
			detail = "x²"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\n", i, st.Kind, st.Level, st.Depth, detail, truncateName(st.Name, 60))
	}
	return tw.Flush()
}

func truncateName(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func mb(n int64) string { return fmt.Sprintf("%.2f MB", float64(n)/1e6) }

// predictor returns the plaintext executor of g: exact, or the compiled
// circuit with its approximations (which need not fit any preset), with an
// optional int8 head for split inference.
func predictor(ctx context.Context, g *ir.Graph, mf *modelFlags, approx, int8Head bool) (func([]float64) ([]float64, error), string, error) {
	run := g.Run
	what := "exact (float64 reference, exact ReLU and max)"
	head, tail := (*ir.Graph)(nil), g
	if mf.splitAfter != "" {
		var err error
		if head, tail, err = ir.Split(g, mf.splitAfter); err != nil {
			return nil, "", err
		}
	}
	if approx {
		opts, err := mf.compileOptions()
		if err != nil {
			return nil, "", err
		}
		opts.SplitAfter = ""
		cal, err := calibrationFor(g)
		if err != nil {
			return nil, "", err
		}
		if head != nil {
			for i, x := range cal {
				if cal[i], err = head.Run(x); err != nil {
					return nil, "", err
				}
			}
		}
		opts.Calibration = cal
		circ, err := he.Lower(ctx, tail, opts)
		if err != nil {
			return nil, "", err
		}
		run = circ.Run
		what = fmt.Sprintf("compiled circuit with approximations (float64; %d levels deep)", circ.Levels())
	}
	if head == nil {
		return run, what, nil
	}
	headRun := head.Run
	if int8Head {
		set, err := mnist.LoadDefault(mnist.Train)
		if err != nil {
			return nil, "", err
		}
		var samples [][]float64
		for _, img := range set.Images[:512] {
			samples = append(samples, mnisteval.Input(g, img))
		}
		q, err := ir.QuantizeInt8(head, samples)
		if err != nil {
			return nil, "", err
		}
		headRun = q.Run
		what += ", head int8"
	}
	if !approx {
		run = tail.Run
	}
	return func(x []float64) ([]float64, error) {
		y, err := headRun(x)
		if err != nil {
			return nil, err
		}
		return run(y)
	}, what + fmt.Sprintf(", split after %q", mf.splitAfter), nil
}

func runOne(ctx context.Context, g *ir.Graph, mf *modelFlags, approx bool, index int, asJSON bool, stdout io.Writer) error {
	set, err := mnist.LoadDefault(mnist.Test)
	if err != nil {
		return err
	}
	if index < 0 || index >= set.Len() {
		return fmt.Errorf("--mnist-index %d: the test set has %d images", index, set.Len())
	}
	if g.InputSize() != mnist.Pixels {
		return fmt.Errorf("model %s takes %d values, not a 28×28 image", g.Name, g.InputSize())
	}
	run, what, err := predictor(ctx, g, mf, approx, false)
	if err != nil {
		return err
	}
	out, err := run(mnisteval.Input(g, set.Images[index]))
	if err != nil {
		return err
	}
	withTail := g.ApplyTail(out)
	if asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{
			"model": g.Name, "index": index, "label": set.Labels[index], "executor": what,
			"outputs": out, "after_tail": withTail, "argmax": ir.ArgMax(out),
		})
	}
	fmt.Fprintf(stdout, "model %s, MNIST test image %d (label %d), %s\noutputs %s\nprediction %d\n",
		g.Name, index, set.Labels[index], what, formatFloats(out), ir.ArgMax(out))
	return nil
}

func accuracy(ctx context.Context, g *ir.Graph, mf *modelFlags, approx, int8Head bool, n int, stdout io.Writer) error {
	set, err := mnist.LoadDefault(mnist.Test)
	if err != nil {
		return err
	}
	run, what, err := predictor(ctx, g, mf, approx, int8Head)
	if err != nil {
		return err
	}
	t0 := time.Now()
	r, err := mnisteval.EvaluateFunc(set, n, func(img []float64) ([]float64, error) { return run(mnisteval.Input(g, img)) })
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "model %s: %d/%d correct (%.2f%%) on MNIST test images 0..%d, %s, in %s\n",
		g.Name, r.Correct, r.N, 100*r.Acc, r.N-1, what, time.Since(t0).Round(time.Second))
	return nil
}

func importModel(ctx context.Context, cl *client.Client, path string, mf *modelFlags, asJSON bool, stdout io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	name := mf.name
	if name == "" {
		name = strings.ToLower(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)))
	}
	ct := api.ContentTypeONNX
	if strings.HasSuffix(path, ".json") {
		ct = api.ContentTypeIRJSON
	}
	v, err := cl.UploadModel(ctx, client.ModelUpload{Name: name, ContentType: ct, Options: mf.query()}, f, st.Size())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "uploaded %s as %s version %d; compiling…\n", path, v.Name, v.Version)
	v, err = cl.WaitModel(ctx, v.Name, v.Version)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(v)
	}
	switch v.Status {
	case api.ModelStatusReady:
		man := v.Manifest
		fmt.Fprintf(stdout, "ready: %s (use it as --model %s): %s, %d levels, key set %s, %s per inference\n",
			v.KeyModel, v.KeyModel, man.Params.Preset, man.Levels, mb(man.KeySetBytes), mb(man.CiphertextBytes))
		return nil
	default:
		return fmt.Errorf("model %s version %d failed to compile: %s", v.Name, v.Version, v.Error)
	}
}

func printVersions(w io.Writer, vs []api.ModelVersion) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tVERSION\tSTATUS\tPRESET\tLEVELS\tKEY SET\tERROR")
	for _, v := range vs {
		preset, levels, keys := "", "", ""
		if v.Manifest != nil {
			preset, levels, keys = v.Manifest.Params.Preset, strconv.Itoa(v.Manifest.Levels), mb(v.Manifest.KeySetBytes)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", v.KeyModel, v.Version, v.Status, preset, levels, keys, v.Error)
	}
	tw.Flush()
}

// mnistSamples returns the first n MNIST test images as inputs of g.
func mnistSamples(n int, g *ir.Graph) ([][]float64, error) {
	if g.InputSize() != mnist.Pixels {
		return nil, fmt.Errorf("--calibrate uses MNIST images, but the model takes %d values, not %d", g.InputSize(), mnist.Pixels)
	}
	set, err := mnist.LoadDefault(mnist.Test)
	if err != nil {
		return nil, err
	}
	var out [][]float64
	for _, img := range set.Images[:min(n, set.Len())] {
		out = append(out, mnisteval.Input(g, img))
	}
	return out, nil
}

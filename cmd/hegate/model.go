package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/he/onnx"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/internal/mnist/mnisteval"
)

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

func (m *modelFlags) register(fs *pflag.FlagSet) {
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

func newModelCmd() *cobra.Command {
	return group("model", "models: list, inspect, run and measure them here; import them into a gateway",
		`Built-in models, models in --models-dir, and model files: an ONNX file
(.onnx, as PyTorch and Keras export it) or a hegate graph (.json). inspect,
run and accuracy compile and run them here, in plaintext; import uploads
one to a gateway, which compiles it in a job.`,
		newModelListCmd(), newModelInspectCmd(), newModelRunCmd(), newModelAccuracyCmd(),
		newModelImportCmd(), newModelVersionsCmd(), newModelDeleteCmd())
}

// completeModels completes the first argument with the built-in models'
// names, or a file.
func completeModels(_ *cobra.Command, a []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(a) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var cfg backendConfig
	cfg.ModelsDir = envOr("HEGATE_MODELS_DIR", "")
	graphs, err := cfg.loadGraphs()
	if err != nil {
		return nil, cobra.ShellCompDirectiveDefault
	}
	var names []string
	for _, g := range graphs {
		names = append(names, g.Name)
	}
	return names, cobra.ShellCompDirectiveDefault
}

func newModelListCmd() *cobra.Command {
	var cfg backendConfig
	var o *output
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list the built-in models (and those in --models-dir)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			graphs, err := cfg.loadGraphs()
			if err != nil {
				return err
			}
			type modelView struct {
				Name    string `json:"name"`
				Input   []int  `json:"input"`
				Outputs int    `json:"outputs"`
				Nodes   int    `json:"nodes"`
			}
			views := []modelView{}
			for _, g := range graphs {
				views = append(views, modelView{g.Name, g.Input.Shape, ir.Prod(g.OutputShape()), len(g.Nodes)})
			}
			w := cmd.OutOrStdout()
			if o.JSON() {
				return printJSON(w, views)
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "NAME\tINPUT\tOUTPUTS\tNODES")
			for _, v := range views {
				fmt.Fprintf(tw, "%s\t%v\t%d\t%d\n", v.Name, v.Input, v.Outputs, v.Nodes)
			}
			return tw.Flush()
		},
	}
	cfg.register(cmd.Flags())
	o = addOutputFlags(cmd, false)
	return cmd
}

// localModelCommand is a model command that works on NAME|FILE here.
func localModelCommand(use, short, long string, run func(cmd *cobra.Command, g *ir.Graph, mf *modelFlags) error) (*cobra.Command, *modelFlags) {
	var cfg backendConfig
	mf := &modelFlags{}
	cmd := &cobra.Command{
		Use:               use,
		Short:             short,
		Long:              long,
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: completeModels,
		RunE: func(cmd *cobra.Command, a []string) error {
			g, err := loadModelGraph(cfg, a[0], mf)
			if err != nil {
				return err
			}
			return run(cmd, g, mf)
		},
	}
	cfg.register(cmd.Flags())
	mf.register(cmd.Flags())
	return cmd, mf
}

func newModelInspectCmd() *cobra.Command {
	var o *output
	var calibrate int
	var measure bool
	cmd, _ := localModelCommand("inspect NAME|FILE", "the compile report: levels, depth per node, approximations, rotations, key bytes",
		"Compile the model here and print the report: parameters, levels, the depth of\neach step, approximations, rotations and key bytes (-o json: the manifest).",
		func(cmd *cobra.Command, g *ir.Graph, mf *modelFlags) error {
			return inspectModel(cmd, g, mf, o.JSON(), calibrate, measure)
		})
	o = addOutputFlags(cmd, true)
	cmd.Flags().IntVar(&calibrate, "calibrate", 0, "also check value ranges on this many MNIST test images")
	cmd.Flags().BoolVar(&measure, "measure", false, "time the primitives on this machine at each step's level and estimate the latency")
	return cmd
}

func newModelRunCmd() *cobra.Command {
	var o *output
	var approx bool
	var mnistIndex int
	cmd, _ := localModelCommand("run NAME|FILE --mnist-index N [--approx]", "run the plaintext executor on one MNIST test image, exact or with the compiled approximations", "",
		func(cmd *cobra.Command, g *ir.Graph, mf *modelFlags) error {
			return runOne(cmd.Context(), g, mf, approx, mnistIndex, o.JSON(), cmd.OutOrStdout())
		})
	o = addOutputFlags(cmd, true)
	cmd.Flags().BoolVar(&approx, "approx", false, "with the compiled approximations (ReLU and max as polynomials)")
	cmd.Flags().IntVar(&mnistIndex, "mnist-index", 0, "the MNIST test image")
	return cmd
}

func newModelAccuracyCmd() *cobra.Command {
	var approx, int8Head bool
	var images int
	cmd, _ := localModelCommand("accuracy NAME|FILE [--approx] [--images N] [--int8-head]", "accuracy on the MNIST test set, exact or with the compiled approximations", "",
		func(cmd *cobra.Command, g *ir.Graph, mf *modelFlags) error {
			return accuracy(cmd, g, mf, approx, int8Head, images)
		})
	cmd.Flags().BoolVar(&approx, "approx", false, "with the compiled approximations (ReLU and max as polynomials)")
	cmd.Flags().IntVar(&images, "images", 10000, "how many MNIST test images")
	cmd.Flags().BoolVar(&int8Head, "int8-head", false, "with --split-after, run the head int8-quantized as an edge runtime would")
	return cmd
}

// apiModelCommand is a model command through the API, with an API key.
func apiModelCommand(use, short string, check cobra.PositionalArgs, run func(cmd *cobra.Command, cl *client.Client, a []string) error) *cobra.Command {
	var dc deviceConfig
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(check),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := dc.resolve(cmd); err != nil {
				return err
			}
			cl, err := dc.apiClient("model " + cmd.Name())
			if err != nil {
				return err
			}
			return run(cmd, cl, a)
		},
	}
	dc.registerServer(cmd.Flags())
	return cmd
}

func newModelImportCmd() *cobra.Command {
	var mf modelFlags
	var o *output
	cmd := apiModelCommand("import FILE [--name NAME]", "upload a model file to a gateway; it compiles there in a job, and this waits for the result", cobra.ExactArgs(1),
		func(cmd *cobra.Command, cl *client.Client, a []string) error {
			return importModel(cmd, cl, a[0], &mf, o.JSON())
		})
	cmd.Long = "Upload a model file (ONNX or hegate graph JSON) to the gateway; it compiles\nthere in a job, and this waits for the result (an admin API key)."
	mf.register(cmd.Flags())
	o = addOutputFlags(cmd, true)
	return cmd
}

func newModelVersionsCmd() *cobra.Command {
	var o *output
	cmd := apiModelCommand("versions NAME", "list the versions of an uploaded model", cobra.ExactArgs(1),
		func(cmd *cobra.Command, cl *client.Client, a []string) error {
			vs, err := cl.ModelVersions(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			if o.JSON() {
				if vs == nil {
					vs = []api.ModelVersion{}
				}
				return printJSON(cmd.OutOrStdout(), vs)
			}
			printVersions(cmd.OutOrStdout(), vs)
			return nil
		})
	o = addOutputFlags(cmd, false)
	return cmd
}

func newModelDeleteCmd() *cobra.Command {
	return apiModelCommand("delete NAME", "delete every version of an uploaded model", cobra.ExactArgs(1),
		func(cmd *cobra.Command, cl *client.Client, a []string) error {
			if err := cl.DeleteModel(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted model %s\n", a[0])
			return nil
		})
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
func inspectModel(cmd *cobra.Command, g *ir.Graph, mf *modelFlags, asJSON bool, calibrate int, measure bool) error {
	ctx, stdout := cmd.Context(), cmd.OutOrStdout()
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
	spin := spinner(cmd, "compiling "+g.Name)
	m, err := he.Compile(ctx, g, opts)
	spin.finish()
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
	tw := newTable(stdout)
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

func accuracy(cmd *cobra.Command, g *ir.Graph, mf *modelFlags, approx, int8Head bool, n int) error {
	ctx, stdout := cmd.Context(), cmd.OutOrStdout()
	set, err := mnist.LoadDefault(mnist.Test)
	if err != nil {
		return err
	}
	run, what, err := predictor(ctx, g, mf, approx, int8Head)
	if err != nil {
		return err
	}
	t0 := time.Now()
	total := n
	if total <= 0 || total > set.Len() {
		total = set.Len()
	}
	bar := countMeter(cmd, total, "images")
	r, err := mnisteval.EvaluateFunc(set, n, func(img []float64) ([]float64, error) {
		defer bar.add(1)
		return run(mnisteval.Input(g, img))
	})
	bar.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "model %s: %d/%d correct (%.2f%%) on MNIST test images 0..%d, %s, in %s\n",
		g.Name, r.Correct, r.N, 100*r.Acc, r.N-1, what, time.Since(t0).Round(time.Second))
	return nil
}

func importModel(cmd *cobra.Command, cl *client.Client, path string, mf *modelFlags, asJSON bool) error {
	ctx, stdout := cmd.Context(), cmd.OutOrStdout()
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
	bar := byteMeter(cmd, st.Size(), "uploading "+filepath.Base(path))
	v, err := cl.UploadModel(ctx, client.ModelUpload{Name: name, ContentType: ct, Options: mf.query()}, bar.reader(f), st.Size())
	bar.finish()
	if err != nil {
		return err
	}
	if !asJSON {
		fmt.Fprintf(stdout, "uploaded %s as %s version %d; compiling…\n", path, v.Name, v.Version)
	}
	spin := spinner(cmd, "compiling on the gateway")
	v, err = cl.WaitModel(ctx, v.Name, v.Version)
	spin.finish()
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
	tw := newTable(w)
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

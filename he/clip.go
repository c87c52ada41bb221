package he

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he/ir"
)

// The output clip (PrivacyOptions.Clip).
//
// The mechanism's sensitivity holds when the outputs lie in the declared
// range, and CKKS cannot check the range of an encrypted value. The clip
// appends to the network the public odd polynomial
//
//	clip(x) = R · f(x/R),   f(u) = (3u − u³)/2,
//
// with R the larger end of the declared range. |f(u)| <= 1 exactly for
// |u| <= 2, and f is increasing on [−1, 1], so every output of the clipped
// network lies in [−R, R] for every exact output of the network in
// [−2R, 2R] (twice the range it was calibrated on), and the order of the
// outputs inside [−R, R] is kept. There is no approximation error to
// account for: the released value is the polynomial, and its bound on that
// domain is exact. f(0) = 0, so the slots that hold zero keep holding
// zero. It costs two levels; 1/R is folded into the last linear layer.

// clipDomainFactor is how far beyond R the clip's bound holds.
const clipDomainFactor = 2

// withOutputClip returns g with the clip appended and opts changed to
// compile it: the ranges calibrated on g (reused, so the clip does not
// move them) and the output range declared [−R, R].
func withOutputClip(ctx context.Context, g *ir.Graph, opts CompileOptions) (*ir.Graph, CompileOptions, error) {
	const op = "he.Compile"
	shapes, err := g.Shapes()
	if err != nil {
		return nil, opts, err
	}
	out := shapes[g.Output]
	if len(out) != 1 {
		return nil, opts, hegate.E(op, hegate.KindInvalid, nil, "model %s: the output clip needs a vector output, not %v", g.Name, out)
	}
	rg := Ranges{}
	if opts.Ranges != nil {
		rg = *opts.Ranges
	} else if rg, err = calibrateRanges(ctx, g, opts.Calibration); err != nil {
		return nil, opts, err
	}
	lo, hi := opts.Privacy.OutputRange[0], opts.Privacy.OutputRange[1]
	if !(lo < hi) {
		if rg.Output == nil {
			return nil, opts, hegate.E(op, hegate.KindInvalid, nil, "model %s: the output clip needs the output range: calibrate on sample inputs or declare it", g.Name)
		}
		w := math.Max(rg.Output[1]-rg.Output[0], 1e-9)
		lo, hi = rg.Output[0]-rangeWiden*w, rg.Output[1]+rangeWiden*w
	}
	r := math.Max(math.Abs(lo), math.Abs(hi))
	if !(r > 0) || math.IsInf(r, 0) {
		return nil, opts, hegate.E(op, hegate.KindInvalid, nil, "model %s: output range [%g, %g] cannot be clipped", g.Name, lo, hi)
	}
	n := out[0]
	scale := &ir.Node{Name: "privacy.clip.scale", Op: ir.OpDense, Inputs: []string{g.Output}, Output: "privacy.clip.scale",
		Dense: &ir.Dense{In: n, Out: n, Weights: make([]float64, n*n), Bias: make([]float64, n)}}
	for i := 0; i < n; i++ {
		scale.Dense.Weights[i*n+i] = 1 / r
	}
	clip := &ir.Node{Name: "privacy.clip", Op: ir.OpPoly, Inputs: []string{scale.Output}, Output: "privacy.clip",
		Poly: &ir.Poly{Coeffs: []float64{0, 1.5 * r, 0, -0.5 * r}}}
	for _, nd := range g.Nodes {
		if nd.Name == scale.Name || nd.Name == clip.Name || nd.Output == scale.Output || nd.Output == clip.Output {
			return nil, opts, hegate.E(op, hegate.KindInvalid, nil, "model %s: a node is already named %q", g.Name, nd.Name)
		}
	}
	g2 := g.Clone()
	if g2 == nil {
		return nil, opts, fmt.Errorf("%s: copying model %s", op, g.Name)
	}
	g2.Nodes = append(slices.Clone(g2.Nodes), scale, clip)
	g2.Output = clip.Output
	if err := g2.Validate(); err != nil {
		return nil, opts, fmt.Errorf("%s: model %s with the output clip: %w", op, g.Name, err)
	}
	opts.Ranges = &rg
	opts.Privacy.OutputRange = [2]float64{-r, r}
	return g2, opts, nil
}

// isClip reports whether the step is the output clip.
func (st *step) isClip() bool { return st.kind == kindPoly && st.name == "privacy.clip" }

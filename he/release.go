package he

import (
	"crypto/rand"
	"fmt"
	"io"
	"math"
	"math/big"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/dp"
)

// Release: how an evaluated result leaves the worker.
//
// Without it, the result's c1 and its error would be a deterministic
// function of the device's input, its keys and the model's weights, and the
// device, which holds the secret key, could test guesses about the weights
// against them. So Evaluate never returns the raw result: it adds
//
//  1. a fresh encryption of zero under the device's public key (uploaded
//     with its key set): c1 becomes an RLWE sample under a secret the
//     worker draws and forgets, unrelated from one release to the next;
//  2. to c0, a vector of N integers drawn exactly from the discrete
//     Gaussian N_Z(0, sigma_c^2) (dp.Sampler, Canonne–Kamath–Steinke 2020),
//     in the coefficient domain.
//
// The decrypted phase c0 + c1·s of a result is an integer vector (mod Q),
// so step 2 is the multivariate discrete Gaussian mechanism applied to the
// whole phase (CKS 2020, Theorem 14): it floods the evaluation error and
// adds the differential-privacy noise to the outputs in one draw. The
// canonical embedding of the power-of-two cyclotomic ring is a scaled
// isometry, so coefficient noise of sigma_c shows in each of the n decoded
// slots as noise of sigma_c·√n/Δ on the real part, independently.
//
// The outputs of a linear last step fill Outputs slots and repeat every
// Period slots (n/Period replicas); every other slot is 0 for every model.
// The device averages the replicas, so each output carries noise of
//
//	sigma = sigma_c · √Period / Δ,
//
// and the phase of two models (or two training sets) differs by at most
// the L2 sensitivity (in output units)
//
//	S = √Outputs · (hi − lo) + 2 · SlotError · √Period + 2 · E,
//
// with E the bound on the error in the coefficients that sparse slots do
// not decode (outsideSlotsError, about 1e-6 here),
// where [lo, hi] is the declared output range and SlotError the declared
// bound on one slot's evaluation error: one query is rho = S² / (2 sigma²)
// zCDP. What this assumes is in docs/security.md: the exact outputs lie
// in the declared range (the device's inputs are in range), the evaluation
// error stays within SlotError (tests measure it), and the device's public
// key is a well-formed RLWE public key (the hegate SDK makes it; a crafted
// public key can undo step 1 for that device's own results).

// Mechanism is a model's differential-privacy release, in its manifest.
type Mechanism struct {
	// OutputRange is the declared range of every output: calibrated on
	// sample inputs and widened by a tenth of its width on each side, or
	// given with the compile options.
	OutputRange [2]float64 `json:"output_range"`
	Outputs     int        `json:"outputs"` // outputs per replica
	Period      int        `json:"period"`  // the outputs repeat every Period slots
	Replicas    int        `json:"replicas"`
	// SlotError is the declared bound on |decrypted − exact| in any slot
	// before the noise: 2^-10 of the output range.
	SlotError float64 `json:"slot_error"`
	// Sensitivity is the L2 sensitivity S above, in output units.
	Sensitivity float64 `json:"sensitivity"`
	// Clip is set when the outputs pass through the output clip
	// (PrivacyOptions.Clip): OutputRange then holds for every exact output
	// of the network in ClipDomain.
	Clip       bool       `json:"clip,omitempty"`
	ClipDomain [2]float64 `json:"clip_domain,omitzero"`
	// Sigma is the default noise standard deviation of each output (after
	// the device averages the replicas); a tenant may be given another.
	Sigma float64 `json:"sigma"`
	// Rho is the zCDP cost of one query at Sigma; Epsilon its (epsilon,
	// Delta)-DP guarantee by the tight conversion.
	Rho     float64 `json:"rho"`
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	// MaxSigma is the largest sigma the parameters hold without the noisy
	// phase wrapping around the last modulus (or the sampler's limit).
	MaxSigma float64 `json:"max_sigma"`
}

// RhoAt is the zCDP cost of one query with noise sigma.
func (m Mechanism) RhoAt(sigma float64) (float64, error) {
	return dp.GaussianRho(m.Sensitivity, sigma)
}

// PrivacyOptions choose a model's mechanism (CompileOptions.Privacy).
type PrivacyOptions struct {
	// OutputRange, if set (lo < hi), is the declared output range;
	// otherwise it is calibrated on CompileOptions.Calibration.
	OutputRange [2]float64
	// Sigma, if > 0, is the default noise of each output. Otherwise it is
	// derived from QueryEpsilon and QueryDelta.
	Sigma float64
	// QueryEpsilon and QueryDelta are the per-query guarantee that sets
	// the default sigma: DefaultQueryEpsilon and DefaultQueryDelta if 0.
	QueryEpsilon, QueryDelta float64
	// Clip appends the output clip (clip.go): the declared range then
	// holds for network outputs up to twice as far out, at the cost of two
	// levels.
	Clip bool
}

// Defaults of PrivacyOptions.
const (
	DefaultQueryEpsilon = 8.0
	DefaultQueryDelta   = 1e-5
	// slotErrorFraction is SlotError as a fraction of the output range.
	slotErrorFraction = 1.0 / 1024
	// rangeWiden widens a calibrated output range on each side, as a
	// fraction of its width.
	rangeWiden = 0.1
	// wrapSigmas is how many standard deviations of coefficient noise the
	// last modulus must hold beyond the outputs: a coefficient wraps with
	// probability 2e-19, which garbles that answer (never its privacy).
	wrapSigmas = 9
)

// Release says how Evaluate releases one result.
type Release struct {
	// Sigma is the noise standard deviation of each output, > 0 and at most
	// the mechanism's MaxSigma. It is what the job paid for.
	Sigma float64
	// Rand is the randomness of the noise (crypto/rand.Reader; tests may
	// pass a seeded reader). Nil means crypto/rand.
	Rand io.Reader
}

// Privacy returns the model's mechanism, or nil if it has none: its output
// range is unknown (Evaluate still releases its results, but nobody can
// say what a query costs), or its last step is not linear (Evaluate
// refuses to release its results). Manifest().PrivacyNote says which.
func (m *Model) Privacy() *Mechanism {
	if m.manifest.Privacy == nil {
		return nil
	}
	p := *m.manifest.Privacy
	return &p
}

// releasePeriod is the period of the outputs in the slots of the result,
// or an error when the last step is not linear (its unused slots would not
// be known to be zero, and the device could read them).
func (c *compiled) releasePeriod() (int, error) {
	if len(c.steps) == 0 {
		return 0, fmt.Errorf("the model has no steps")
	}
	last := &c.steps[len(c.steps)-1]
	if c.clipOutput && last.isClip() && len(c.steps) > 1 {
		// The clip is slot-wise and maps 0 to 0: the layout of the
		// linear step before it holds.
		for i := len(c.steps) - 2; i >= 0; i-- {
			if c.steps[i].out == last.in[0] {
				last = &c.steps[i]
				break
			}
		}
	}
	if last.kind != kindLinear {
		return 0, fmt.Errorf("the model's last step is not linear (nor the output clip after a linear step), so its unused slots are not known to be zero")
	}
	period := last.lin.period
	if period < c.outputSize || period > c.n || c.n%period != 0 {
		return 0, fmt.Errorf("output period %d does not fit %d outputs in %d slots", period, c.outputSize, c.n)
	}
	return period, nil
}

// buildMechanism works out the mechanism of a compiled model whose
// results can be released with period, or explains why there is none.
func (c *compiled) buildMechanism(opts PrivacyOptions, period int, calibrated [2]float64) (*Mechanism, error) {
	rg := opts.OutputRange
	if !(rg[0] < rg[1]) {
		lo, hi := calibrated[0], calibrated[1]
		if !(lo <= hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
			return nil, fmt.Errorf("the output range is unknown: calibrate on sample inputs or declare it")
		}
		w := math.Max(hi-lo, 1e-3*math.Max(math.Abs(lo), math.Abs(hi))+1e-9)
		rg = [2]float64{lo - rangeWiden*w, hi + rangeWiden*w}
	}
	if math.IsNaN(rg[0]) || math.IsNaN(rg[1]) || math.IsInf(rg[0], 0) || math.IsInf(rg[1], 0) {
		return nil, fmt.Errorf("output range [%g, %g] is not finite", rg[0], rg[1])
	}
	width := rg[1] - rg[0]
	mech := &Mechanism{
		OutputRange: rg,
		Outputs:     c.outputSize,
		Period:      period,
		Replicas:    c.n / period,
		SlotError:   width * slotErrorFraction,
	}
	mech.Sensitivity = math.Sqrt(float64(mech.Outputs))*width + 2*mech.SlotError*math.Sqrt(float64(period)) + 2*c.outsideSlotsError(period)
	if c.clipOutput {
		r := math.Max(math.Abs(rg[0]), math.Abs(rg[1]))
		mech.Clip, mech.ClipDomain = true, [2]float64{-clipDomainFactor * r, clipDomainFactor * r}
	}
	maxAbs := math.Max(math.Abs(rg[0]), math.Abs(rg[1]))
	if maxAbs >= c.outputBound() {
		return nil, fmt.Errorf("output range [%g, %g] does not fit the last modulus (|output| < %g)", rg[0], rg[1], c.outputBound())
	}
	mech.MaxSigma = c.maxSigma(period, maxAbs)

	eps, delta := opts.QueryEpsilon, opts.QueryDelta
	if eps == 0 {
		eps = DefaultQueryEpsilon
	}
	if delta == 0 {
		delta = DefaultQueryDelta
	}
	sigma := opts.Sigma
	if sigma <= 0 {
		rho, err := dp.RhoForBudget(eps, delta)
		if err != nil {
			return nil, fmt.Errorf("per-query guarantee: %w", err)
		}
		if sigma, err = dp.SigmaForRho(mech.Sensitivity, rho); err != nil {
			return nil, err
		}
	}
	if sigma > mech.MaxSigma {
		return nil, fmt.Errorf("noise sigma %g exceeds the %g the parameters hold", sigma, mech.MaxSigma)
	}
	mech.Sigma, mech.Delta = sigma, delta
	var err error
	if mech.Rho, err = mech.RhoAt(sigma); err != nil {
		return nil, err
	}
	if mech.Epsilon, err = dp.ZCDPToEpsilon(mech.Rho, delta); err != nil {
		return nil, err
	}
	return mech, nil
}

// outsideSlotsError bounds, in output units as the sensitivity counts
// them, the L2 norm of the phase's error in the coefficients that the n
// slots do not decode (sparse packing leaves N − 2n of them): the last
// rescale's rounding, |r0 + r1·s| <= (1 + N)/2 per coefficient for a
// ternary s, taken as 4N for the key switches after it; scaled by √Period/Δ.
func (c *compiled) outsideSlotsError(period int) float64 {
	n := float64(c.params.ckks.N())
	return 4 * n * math.Sqrt(n) * math.Sqrt(float64(period)) / c.params.ckks.DefaultScale().Float64()
}

// outputBound is the largest |value| a result slot holds: q0 / (2Δ).
func (c *compiled) outputBound() float64 {
	p := c.params.ckks
	return float64(p.Q()[0]) / (2 * p.DefaultScale().Float64())
}

// maxSigma is the largest sigma that the sampler accepts for sigma_c
// (sigma·Δ/√period) and whose coefficient noise, wrapSigmas of it, fits in
// the last modulus beside outputs of at most maxAbs. Decryption is exact on
// the coefficients mod q0, and the message's coefficients are at most
// maxAbs·Δ (the embedding is a scaled isometry).
func (c *compiled) maxSigma(period int, maxAbs float64) float64 {
	wrap := (c.outputBound() - maxAbs) * math.Sqrt(float64(period)) / wrapSigmas
	return math.Min(wrap, math.Sqrt(float64(dp.MaxGaussianSigma2)*float64(period))/c.params.ckks.DefaultScale().Float64())
}

// releaseMaxSigma is the largest sigma release accepts: the mechanism's,
// or with outputs of unknown range half the last modulus.
func (c *compiled) releaseMaxSigma() float64 {
	if c.mechanism != nil {
		return c.mechanism.MaxSigma
	}
	return c.maxSigma(c.outputPeriod, c.outputBound()/2)
}

// floodSigma2 is sigma_c² = sigma²·Δ²/Period, exactly.
func (c *compiled) floodSigma2(sigma float64, period int) *big.Rat {
	s := new(big.Rat).SetFloat64(sigma)
	d := new(big.Rat).SetFloat64(c.params.ckks.DefaultScale().Float64())
	s.Mul(s, d)
	s.Mul(s, s)
	return s.Quo(s, new(big.Rat).SetInt64(int64(period)))
}

// release re-randomises and noises ct in place (see the top of this file).
func (c *compiled) release(ct *rlwe.Ciphertext, pk *rlwe.PublicKey, rel Release) error {
	const op = "he.Evaluate"
	switch {
	case c.outputPeriod == 0:
		return hegate.E(op, hegate.KindInvalid, nil, "model %s's results cannot be released: %s", c.name, c.privacyNote)
	case pk == nil:
		return hegate.E(op, hegate.KindInvalid, nil, "the key set has no public key; upload a key set made by this version")
	case !(rel.Sigma > 0) || math.IsInf(rel.Sigma, 0):
		return hegate.E(op, hegate.KindInvalid, nil, "noise sigma %g must be positive and finite", rel.Sigma)
	case rel.Sigma > c.releaseMaxSigma():
		return hegate.E(op, hegate.KindInvalid, nil, "noise sigma %g exceeds the %g that model %s's parameters hold", rel.Sigma, c.releaseMaxSigma(), c.name)
	}
	p := c.params.ckks
	level := ct.Level()
	ringQ := p.RingQ().AtLevel(level)

	zero := rlwe.NewCiphertext(p, 1, level)
	zero.MetaData = ct.MetaData.CopyNew()
	if err := rlwe.NewEncryptor(p, pk).EncryptZero(zero); err != nil {
		return fmt.Errorf("%s: encryption of zero: %w", op, err)
	}

	rnd := rel.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	noise, err := dp.NewSampler(rnd).DiscreteGaussianVector(c.floodSigma2(rel.Sigma, c.outputPeriod), p.N())
	if err != nil {
		return fmt.Errorf("%s: sampling noise: %w", op, err)
	}
	flood := ringQ.NewPoly()
	for j, q := range p.Q()[:level+1] {
		row := flood.Coeffs[j]
		for i, k := range noise {
			r := k % int64(q)
			if r < 0 {
				r += int64(q)
			}
			row[i] = uint64(r)
		}
	}
	if ct.IsNTT {
		ringQ.NTT(flood, flood)
	}
	ringQ.Add(zero.Value[0], flood, zero.Value[0])
	ringQ.Add(ct.Value[0], zero.Value[0], ct.Value[0])
	ringQ.Add(ct.Value[1], zero.Value[1], ct.Value[1])
	return nil
}

// averageReplicas returns the outputs averaged over their replicas.
func averageReplicas(values []float64, outputs, period int) []float64 {
	out := make([]float64, outputs)
	if period <= 0 || period < outputs {
		copy(out, values)
		return out
	}
	reps := len(values) / period
	for i := range out {
		s := 0.0
		for r := 0; r < reps; r++ {
			s += values[r*period+i]
		}
		out[i] = s / float64(reps)
	}
	return out
}

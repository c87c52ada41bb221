// Package nn holds what the trainers under tools/ share: the learning-rate
// schedule, the Adam constants, the soft magnitude penalty and softmax.
package nn

import "math"

// Adam hyper-parameters (Kingma & Ba defaults).
const (
	Beta1   = 0.9
	Beta2   = 0.999
	AdamEps = 1e-8
)

// LRAt is the learning rate at step t of total: linear warm-up over the
// first 2% of the steps, then cosine decay to zero.
func LRAt(peak float64, t, total int) float64 {
	warm := max(1, total/50)
	if t < warm {
		return peak * float64(t+1) / float64(warm)
	}
	return peak * 0.5 * (1 + math.Cos(math.Pi*float64(t-warm)/float64(total-warm)))
}

// Penalize adds the gradient of weight·Σ max(0, |z|−bound)², times scale,
// to dz and returns the penalty.
func Penalize(z, dz []float64, bound, weight, scale float64) float64 {
	if weight == 0 {
		return 0
	}
	pen := 0.0
	for i, v := range z {
		if e := math.Abs(v) - bound; e > 0 {
			pen += weight * e * e
			dz[i] += scale * weight * 2 * e * math.Copysign(1, v)
		}
	}
	return pen
}

// Softmax writes the softmax of z to p and returns log Σ exp(z_i).
func Softmax(z, p []float64) float64 {
	m := z[0]
	for _, v := range z {
		m = max(m, v)
	}
	s := 0.0
	for i, v := range z {
		p[i] = math.Exp(v - m)
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
	return m + math.Log(s)
}

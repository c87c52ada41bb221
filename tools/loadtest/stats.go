package main

import (
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// Summary is the distribution of a set of latencies.
type Summary struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted
// values: the smallest value that at least p% of the values do not
// exceed. It is 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = max(1, min(rank, n))
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// summarize sorts a copy of lat and summarises it.
func summarize(lat []time.Duration) Summary {
	if len(lat) == 0 {
		return Summary{}
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Summary{
		N:    len(s),
		Mean: ms(sum / time.Duration(len(s))),
		P50:  ms(percentile(s, 50)),
		P90:  ms(percentile(s, 90)),
		P99:  ms(percentile(s, 99)),
		Max:  ms(s[len(s)-1]),
	}
}

// recKey names one cell of the recorder: a phase, a tenant, an outcome.
type recKey struct {
	phase, tenant int
	outcome       string
}

// recorder collects the latency of every request by phase, tenant and
// outcome.
type recorder struct {
	mu  sync.Mutex
	lat map[recKey][]time.Duration
	// notes counts the error messages of failures, by outcome (a few
	// distinct ones each).
	notes map[string]map[string]int
}

func newRecorder() *recorder {
	return &recorder{lat: map[recKey][]time.Duration{}, notes: map[string]map[string]int{}}
}

// maxNotes bounds the distinct messages kept per outcome.
const maxNotes = 5

// note counts an error message of an outcome.
func (r *recorder) note(outcome, msg string) {
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.notes[outcome]
	if m == nil {
		m = map[string]int{}
		r.notes[outcome] = m
	}
	if _, ok := m[msg]; ok || len(m) < maxNotes {
		m[msg]++
	}
}

// allNotes returns a copy of the notes.
func (r *recorder) allNotes() map[string]map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]map[string]int{}
	for k, v := range r.notes {
		out[k] = map[string]int{}
		for m, n := range v {
			out[k][m] = n
		}
	}
	return out
}

func (r *recorder) add(phase, tenant int, outcome string, d time.Duration) {
	r.mu.Lock()
	k := recKey{phase, tenant, outcome}
	r.lat[k] = append(r.lat[k], d)
	r.mu.Unlock()
}

// cell returns the latencies of one phase and tenant, by outcome.
func (r *recorder) cell(phase, tenant int) map[string][]time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]time.Duration{}
	for k, v := range r.lat {
		if k.phase == phase && k.tenant == tenant {
			out[k.outcome] = slices.Clone(v)
		}
	}
	return out
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Flatness describes how a quantity sampled over time moved.
type Flatness struct {
	N     int     `json:"samples"`
	First float64 `json:"first"`
	Last  float64 `json:"last"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	// Spread is (max - min) / min: the band the samples stayed in,
	// relative to its bottom. "Flat within 10%" is Spread <= 0.10.
	Spread float64 `json:"spread"`
	// Growth is the mean of the last third of the samples against the
	// mean of the first third, relative: a leak shows as a steady rise,
	// noise as values going both ways.
	Growth float64 `json:"growth"`
	// SlopePerHour is the least-squares slope, in units per hour.
	SlopePerHour float64 `json:"slope_per_hour"`
}

// flatness summarises values sampled at times t (seconds).
func flatness(t, v []float64) Flatness {
	n := len(v)
	if n == 0 || len(t) != n {
		return Flatness{}
	}
	f := Flatness{N: n, First: v[0], Last: v[n-1], Min: v[0], Max: v[0]}
	for _, x := range v {
		f.Min = math.Min(f.Min, x)
		f.Max = math.Max(f.Max, x)
	}
	if f.Min > 0 {
		f.Spread = (f.Max - f.Min) / f.Min
	} else if f.Max > f.Min {
		f.Spread = math.Inf(1)
	}
	third := max(1, n/3)
	a, b := mean(v[:third]), mean(v[n-third:])
	if a > 0 {
		f.Growth = (b - a) / a
	} else if b > a {
		f.Growth = math.Inf(1)
	}
	f.SlopePerHour = slope(t, v) * 3600
	return f
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// slope is the least-squares slope of v against t (0 for fewer than two
// distinct times).
func slope(t, v []float64) float64 {
	mt, mv := mean(t), mean(v)
	var num, den float64
	for i := range t {
		num += (t[i] - mt) * (v[i] - mv)
		den += (t[i] - mt) * (t[i] - mt)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

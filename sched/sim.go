package sched

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Model is a model's figures as its cost report would give them.
type Model struct {
	Name       string
	EstRuntime time.Duration
	PeakBytes  int64
}

// Stream is a source of jobs of one model: Poisson arrivals at Rate per
// second, each with a relative deadline drawn uniformly from
// [DeadlineMin, DeadlineMax] (both zero: no deadline).
type Stream struct {
	Name                     string
	Model                    Model
	Rate                     float64
	DeadlineMin, DeadlineMax time.Duration
}

// SimConfig is a simulated cluster and its load.
type SimConfig struct {
	Workers     int
	MemoryLimit int64 // per worker
	Slots       int   // per worker; 0: memory only
	Streams     []Stream
	// Horizon: arrivals stop then; the simulation runs on until every
	// admitted job has completed.
	Horizon time.Duration
	// Noise is the standard deviation of ln(actual / estimated run time);
	// the actual run time is EstRuntime × exp(Noise·Z − Noise²/2), Z
	// standard normal, so its mean is EstRuntime.
	Noise float64
	Seed  uint64
}

// SimJob is a job of the simulation with its actual run time.
type SimJob struct {
	Job
	Stream int
	Actual time.Duration
}

// simEpoch is the simulated clock's origin.
var simEpoch = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

// Arrivals draws the jobs of c's streams over its horizon, in arrival
// order; the same Seed gives the same jobs.
func (c SimConfig) Arrivals() []SimJob {
	var jobs []SimJob
	for si, st := range c.Streams {
		if st.Rate <= 0 {
			continue
		}
		rng := rand.New(rand.NewPCG(c.Seed, uint64(si)+1))
		t := 0.0
		for n := 0; ; n++ {
			t += rng.ExpFloat64() / st.Rate
			at := time.Duration(t * float64(time.Second))
			if at >= c.Horizon {
				break
			}
			j := SimJob{Stream: si, Job: Job{
				ID:         fmt.Sprintf("%s-%05d", st.Name, n),
				Model:      st.Model.Name,
				Arrival:    simEpoch.Add(at),
				EstRuntime: st.Model.EstRuntime,
				PeakBytes:  st.Model.PeakBytes,
			}}
			if st.DeadlineMax > 0 {
				d := st.DeadlineMin + time.Duration(rng.Float64()*float64(st.DeadlineMax-st.DeadlineMin))
				j.Deadline = j.Arrival.Add(d)
			}
			f := math.Exp(c.Noise*rng.NormFloat64() - c.Noise*c.Noise/2)
			j.Actual = time.Duration(float64(st.Model.EstRuntime) * f)
			jobs = append(jobs, j)
		}
	}
	slices.SortStableFunc(jobs, func(a, b SimJob) int { return a.Arrival.Compare(b.Arrival) })
	return jobs
}

// OfferedLoad is the streams' mean demand: busy slots over all slots, and
// GB·s of estimated peak memory per second over all memory.
func (c SimConfig) OfferedLoad() (slots, memory float64) {
	for _, st := range c.Streams {
		busy := st.Rate * st.Model.EstRuntime.Seconds()
		slots += busy
		memory += busy * float64(st.Model.PeakBytes)
	}
	if c.Slots > 0 {
		slots /= float64(c.Workers * c.Slots)
	}
	return slots, memory / float64(int64(c.Workers)*c.MemoryLimit)
}

// Outcome is what happened to one job.
type Outcome struct {
	Refused    error // nil: admitted
	Worker     int
	Start, End time.Time
}

// Missed reports whether j was admitted and completed after its deadline.
func (o Outcome) Missed(j Job) bool {
	return o.Refused == nil && !j.Deadline.IsZero() && o.End.After(j.Deadline)
}

// Result is one policy's run of the simulation.
type Result struct {
	Name     string
	Jobs     []SimJob
	Outcomes []Outcome // by job
	// PeakMemory is each worker's largest Used; PeakRunning its most
	// jobs at once.
	PeakMemory  []int64
	PeakRunning []int
	MemoryLimit int64
	Streams     []Stream // the configuration's
	End         time.Time
}

// Stats summarise the jobs of a Result that match a filter.
type Stats struct {
	Jobs, WithDeadline, Admitted, Refused, Completed int
	// Missed counts admitted jobs with a deadline that completed after it.
	Missed   int
	P50, P99 time.Duration // latency (arrival to completion) of completed jobs

	refusedDL int // refused jobs with a deadline
}

// MissRate is Missed over the admitted jobs that had a deadline.
func (s Stats) MissRate() float64 {
	admittedDL := s.WithDeadline - s.refusedDL
	if admittedDL == 0 {
		return 0
	}
	return float64(s.Missed) / float64(admittedDL)
}

// FailRate is (Missed + refused) over the jobs that had a deadline: the
// share of deadlines not met, refusals included.
func (s Stats) FailRate() float64 {
	if s.WithDeadline == 0 {
		return 0
	}
	return float64(s.Missed+s.refusedDL) / float64(s.WithDeadline)
}

// Stats of the jobs for which keep is true (nil: all).
func (r *Result) Stats(keep func(SimJob) bool) Stats {
	var s Stats
	var lat []time.Duration
	for i, j := range r.Jobs {
		if keep != nil && !keep(j) {
			continue
		}
		o := r.Outcomes[i]
		s.Jobs++
		dl := !j.Deadline.IsZero()
		if dl {
			s.WithDeadline++
		}
		if o.Refused != nil {
			s.Refused++
			if dl {
				s.refusedDL++
			}
			continue
		}
		s.Admitted++
		if !o.End.IsZero() {
			s.Completed++
			lat = append(lat, o.End.Sub(j.Arrival))
		}
		if o.Missed(j.Job) {
			s.Missed++
		}
	}
	slices.Sort(lat)
	s.P50, s.P99 = quantile(lat, 0.50), quantile(lat, 0.99)
	return s
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// runEvent is a job ending on a worker.
type runEvent struct {
	end    time.Time
	job    int // index in jobs
	worker int
}

type eventHeap []runEvent

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if !h[i].end.Equal(h[j].end) {
		return h[i].end.Before(h[j].end)
	}
	return h[i].job < h[j].job
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(runEvent)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// Simulate runs jobs (from c.Arrivals) through s on c's workers: each
// arrival is admitted or refused by s.Admit; whenever a job arrives or
// ends, every worker asks s.Next until it starts nothing; a started job
// holds its PeakBytes and a slot for its actual run time. It returns an
// error if s ever starts a job that does not fit its worker (more memory
// than the limit or more jobs than slots), or if admitted jobs are left
// that no worker ever starts.
func Simulate(c SimConfig, jobs []SimJob, s Scheduler, name string) (*Result, error) {
	r := &Result{Name: name, Jobs: jobs, Outcomes: make([]Outcome, len(jobs)),
		PeakMemory: make([]int64, c.Workers), PeakRunning: make([]int, c.Workers), MemoryLimit: c.MemoryLimit, Streams: c.Streams}
	workers := make([]Worker, c.Workers)
	for i := range workers {
		workers[i] = Worker{ID: fmt.Sprintf("w%d", i), MemoryLimit: c.MemoryLimit, Slots: c.Slots}
	}
	index := make(map[string]int, len(jobs))
	for i, j := range jobs {
		index[j.ID] = i
	}
	var queue []Job
	var events eventHeap
	next := 0
	now := simEpoch
	for next < len(jobs) || events.Len() > 0 {
		// The next instant: an end or an arrival (ends first).
		switch {
		case events.Len() > 0 && (next >= len(jobs) || !jobs[next].Arrival.Before(events[0].end)):
			now = events[0].end
		default:
			now = jobs[next].Arrival
		}
		for events.Len() > 0 && !events[0].end.After(now) {
			e := heap.Pop(&events).(runEvent)
			w := &workers[e.worker]
			w.Running = slices.DeleteFunc(w.Running, func(run Run) bool { return run.Job.ID == jobs[e.job].ID })
			r.Outcomes[e.job].End = e.end
		}
		for next < len(jobs) && !jobs[next].Arrival.After(now) {
			j := jobs[next].Job
			if err := s.Admit(now, j, queue, workers); err != nil {
				r.Outcomes[next].Refused = err
			} else {
				queue = append(queue, j)
			}
			next++
		}
		for started := true; started; {
			started = false
			for x := range workers {
				for {
					j, ok := s.Next(now, queue, workers, x)
					if !ok {
						break
					}
					w := &workers[x]
					if !w.Fits(j) {
						return r, fmt.Errorf("%s: %s started %s (%s) on %s with %s free, %d/%d slots",
							name, now.Sub(simEpoch), j.ID, gb(j.PeakBytes), w.ID, gb(w.Free()), len(w.Running), w.Slots)
					}
					qi := slices.IndexFunc(queue, func(q Job) bool { return q.ID == j.ID })
					if qi < 0 {
						return r, fmt.Errorf("%s: Next returned %s, not queued", name, j.ID)
					}
					queue = slices.Delete(queue, qi, qi+1)
					w.Running = append(w.Running, Run{Job: j, Start: now})
					r.PeakMemory[x] = max(r.PeakMemory[x], w.Used())
					r.PeakRunning[x] = max(r.PeakRunning[x], len(w.Running))
					if w.Used() > w.MemoryLimit {
						return r, fmt.Errorf("%s: %s over its memory limit: %s > %s", name, w.ID, gb(w.Used()), gb(w.MemoryLimit))
					}
					ji := index[j.ID]
					r.Outcomes[ji].Worker, r.Outcomes[ji].Start = x, now
					heap.Push(&events, runEvent{end: now.Add(jobs[ji].Actual), job: ji, worker: x})
					started = true
				}
			}
		}
	}
	r.End = now
	if len(queue) > 0 {
		return r, fmt.Errorf("%s: %d admitted jobs never started (first %s)", name, len(queue), queue[0].ID)
	}
	return r, nil
}

// Table formats results as a Markdown table, one row per result.
func Table(results []*Result) string {
	var b strings.Builder
	b.WriteString("| policy | jobs | admitted | refused | completed | with deadline | missed (of admitted) | miss rate | missed or refused | p50 | p99 | peak memory per worker (GB) |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range results {
		s := r.Stats(nil)
		peaks := make([]string, len(r.PeakMemory))
		for i, p := range r.PeakMemory {
			peaks[i] = fmt.Sprintf("%.1f", float64(p)/1e9)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %.1f%% | %.1f%% | %s | %s | %s (limit %.0f) |\n",
			r.Name, s.Jobs, s.Admitted, s.Refused, s.Completed, s.WithDeadline, s.Missed,
			100*s.MissRate(), 100*s.FailRate(), dur(s.P50), dur(s.P99), strings.Join(peaks, " "), float64(r.MemoryLimit)/1e9)
	}
	return b.String()
}

// StreamTable formats, per stream, each result's missed deadlines (of
// admitted jobs), refusals and p99 latency.
func StreamTable(results []*Result) string {
	if len(results) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| stream | model | deadline | jobs |")
	for _, r := range results {
		fmt.Fprintf(&b, " %s: missed / refused / p99 |", r.Name)
	}
	b.WriteString("\n| --- | --- | --- | ---: |")
	for range results {
		b.WriteString(" ---: |")
	}
	b.WriteString("\n")
	for si, st := range results[0].Streams {
		keep := func(j SimJob) bool { return j.Stream == si }
		dl := "none"
		if st.DeadlineMax > 0 {
			dl = fmt.Sprintf("%g–%g s", st.DeadlineMin.Seconds(), st.DeadlineMax.Seconds())
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d |", st.Name, st.Model.Name, dl, results[0].Stats(keep).Jobs)
		for _, r := range results {
			s := r.Stats(keep)
			fmt.Fprintf(&b, " %d / %d / %s |", s.Missed, s.Refused, dur(s.P99))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func dur(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.0f s", d.Seconds())
}

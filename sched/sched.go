package sched

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Job is one queued inference as the scheduler sees it.
type Job struct {
	ID    string
	Model string
	// Arrival is when the job was submitted.
	Arrival time.Time
	// Deadline is when the job must have completed; zero: none.
	Deadline time.Time
	// EstRuntime is the cost report's estimate of one run, alone on a
	// slot of a worker.
	EstRuntime time.Duration
	// PeakBytes is the estimated peak memory of one run.
	PeakBytes int64
}

// Run is a job running on a worker since Start.
type Run struct {
	Job   Job
	Start time.Time
}

// Worker is one worker process: its memory budget, its slots and what it
// runs.
type Worker struct {
	ID string
	// MemoryLimit is the budget the PeakBytes of its running jobs share
	// (the worker's --memory-limit).
	MemoryLimit int64
	// Slots is how many jobs it runs at once at most; 0: as many as fit
	// in memory.
	Slots   int
	Running []Run
}

// Used is the sum of the running jobs' PeakBytes.
func (w *Worker) Used() int64 {
	var u int64
	for _, r := range w.Running {
		u += r.Job.PeakBytes
	}
	return u
}

// Free is MemoryLimit minus Used.
func (w *Worker) Free() int64 { return w.MemoryLimit - w.Used() }

// Fits reports whether j can start on w now: its PeakBytes within the
// free memory and a slot free.
func (w *Worker) Fits(j Job) bool {
	return j.PeakBytes <= w.Free() && (w.Slots <= 0 || len(w.Running) < w.Slots)
}

// canEverFit reports whether j fits w when w runs nothing.
func (w *Worker) canEverFit(j Job) bool { return j.PeakBytes <= w.MemoryLimit }

// Policy is the order in which a worker considers the queue.
type Policy int

const (
	// FIFO: by arrival.
	FIFO Policy = iota
	// EDF: earliest deadline first, jobs without a deadline last
	// (unless aged), first in, first out among equal deadlines.
	EDF
)

func (p Policy) String() string {
	switch p {
	case FIFO:
		return "FIFO"
	case EDF:
		return "EDF"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Scheduler is a scheduling policy. The zero value is FIFO without
// deadline admission, safety factor 1, no ageing, one reservation.
type Scheduler struct {
	Policy Policy
	// DeadlineAdmission: Admit refuses a job whose estimated completion
	// misses its deadline. Without it Admit refuses only jobs that fit no
	// worker.
	DeadlineAdmission bool
	// SafetyFactor multiplies every EstRuntime (the cost report's
	// estimate) wherever the scheduler predicts a time; values below 1
	// (and 0) mean 1.
	SafetyFactor float64
	// Aging (EDF only): a job without a deadline that has waited this
	// long sorts as if its deadline were Arrival+Aging. 0: never.
	Aging time.Duration
	// Reservations is how many blocked jobs (fitting no worker now) get a
	// reservation in Next; 0 means 1, negative none (a starving policy,
	// for comparison only).
	Reservations int
}

// Estimate is j's predicted run time: EstRuntime × SafetyFactor.
func (s Scheduler) Estimate(j Job) time.Duration {
	f := s.SafetyFactor
	if !(f > 1) {
		return j.EstRuntime
	}
	return time.Duration(math.Ceil(float64(j.EstRuntime) * f))
}

// EstimateCompletion is when j, started at start, is predicted to end.
func (s Scheduler) EstimateCompletion(start time.Time, j Job) time.Time {
	return start.Add(s.Estimate(j))
}

func (s Scheduler) safety() float64 { return max(s.SafetyFactor, 1) }

func (s Scheduler) reservations() int {
	switch {
	case s.Reservations == 0:
		return 1
	case s.Reservations < 0:
		return 0
	}
	return s.Reservations
}

// Errors of Admit; the *AdmissionError it returns wraps one of them.
var (
	ErrMissesDeadline = errors.New("estimated completion misses the deadline")
	ErrTooLarge       = errors.New("estimated peak memory exceeds every worker's memory limit")
)

// AdmissionError is a job refused at admission, with the figures behind
// the refusal.
type AdmissionError struct {
	Job    Job
	Reason error // ErrMissesDeadline or ErrTooLarge
	Now    time.Time
	// ErrMissesDeadline: the estimated start and completion, the jobs
	// queued ahead and the safety factor used.
	EstStart, EstCompletion time.Time
	Ahead                   int
	SafetyFactor            float64
	// ErrTooLarge: the largest worker memory limit.
	LargestLimit int64
}

func (e *AdmissionError) Unwrap() error { return e.Reason }

func (e *AdmissionError) Error() string {
	name := fmt.Sprintf("job %q (model %q) refused at admission", e.Job.ID, e.Job.Model)
	if e.Reason == ErrTooLarge {
		return fmt.Sprintf("%s: its estimated peak memory %s exceeds every worker's memory limit (the largest is %s)",
			name, gb(e.Job.PeakBytes), gb(e.LargestLimit))
	}
	run := e.EstCompletion.Sub(e.EstStart)
	return fmt.Sprintf("%s: estimated completion in %s (start in %s behind %d queued job(s) and the running ones, run %s = estimate %s × safety %.2f) is %s after its deadline in %s",
		name, secs(e.EstCompletion.Sub(e.Now)), secs(e.EstStart.Sub(e.Now)), e.Ahead,
		secs(run), secs(e.Job.EstRuntime), e.SafetyFactor,
		secs(e.EstCompletion.Sub(e.Job.Deadline)), secs(e.Job.Deadline.Sub(e.Now)))
}

func gb(b int64) string { return fmt.Sprintf("%.2f GB", float64(b)/1e9) }

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// Admit decides whether job, arriving at now, joins the queue. It returns
// nil, or an *AdmissionError wrapping ErrTooLarge (its PeakBytes exceed
// every worker's limit) or ErrMissesDeadline (DeadlineAdmission, and its
// estimated completion is after its deadline). queue is the waiting jobs
// (without job), in arrival order; workers are all the workers with what
// they run. Nothing is modified.
func (s Scheduler) Admit(now time.Time, job Job, queue []Job, workers []Worker) error {
	var largest int64 = -1
	for i := range workers {
		largest = max(largest, workers[i].MemoryLimit)
	}
	if job.PeakBytes > largest {
		return &AdmissionError{Job: job, Reason: ErrTooLarge, Now: now, LargestLimit: max(largest, 0)}
	}
	if !s.DeadlineAdmission || job.Deadline.IsZero() {
		return nil
	}
	start, ahead := s.estimateStart(now, job, queue, workers)
	done := s.EstimateCompletion(start, job)
	if done.After(job.Deadline) {
		return &AdmissionError{Job: job, Reason: ErrMissesDeadline, Now: now,
			EstStart: start, EstCompletion: done, Ahead: ahead, SafetyFactor: s.safety()}
	}
	return nil
}

// estimateStart predicts when job would start if it joined queue now and
// nothing else arrived: the jobs ahead of it in the policy's order and job
// itself are dispatched with Next's rule on copies of workers, each run
// lasting its Estimate. It returns the start and the number of jobs ahead.
func (s Scheduler) estimateStart(now time.Time, job Job, queue []Job, workers []Worker) (time.Time, int) {
	jk := s.key(now, job)
	var q []Job
	for _, o := range queue {
		if !jk.less(s.key(now, o)) { // o ahead of job: a smaller or equal key (it arrived earlier)
			q = append(q, o)
		}
	}
	ahead := len(q)
	slices.SortStableFunc(q, func(a, b Job) int { return s.key(now, a).cmp(s.key(now, b)) })
	q = append(q, job)

	ws := make([]Worker, len(workers))
	for i := range workers {
		ws[i] = workers[i]
		ws[i].Running = slices.Clone(workers[i].Running)
	}
	end := func(r Run) time.Time { return s.runEnd(now, r) }
	t := now
	for {
		for started := true; started; {
			started = false
			for x := range ws {
				for {
					i := s.pick(t, q, nil, ws, x)
					if i < 0 {
						break
					}
					if i == len(q)-1 {
						return t, ahead
					}
					ws[x].Running = append(ws[x].Running, Run{Job: q[i], Start: t})
					q = slices.Delete(q, i, i+1)
					started = true
				}
			}
		}
		// Advance to the next estimated end.
		var next time.Time
		for x := range ws {
			for _, r := range ws[x].Running {
				if e := end(r); next.IsZero() || e.Before(next) {
					next = e
				}
			}
		}
		if next.IsZero() {
			// Nothing runs and job cannot start: only if it fits no
			// worker, which Admit checked. Admit it; Next decides.
			return t, ahead
		}
		t = next
		for x := range ws {
			ws[x].Running = slices.DeleteFunc(ws[x].Running, func(r Run) bool { return !end(r).After(t) })
		}
	}
}

// runEnd is r's estimated end; a run past its estimate is expected to end
// at any moment (now + 1 ns).
func (s Scheduler) runEnd(now time.Time, r Run) time.Time {
	e := r.Start.Add(s.Estimate(r.Job))
	if !e.After(now) {
		e = now.Add(time.Nanosecond)
	}
	return e
}

// sortKey orders the queue: jobs with a key by key, then jobs without,
// each by arrival.
type sortKey struct {
	has     bool
	key     time.Time
	arrival time.Time
}

func (a sortKey) cmp(b sortKey) int {
	switch {
	case a.has && !b.has:
		return -1
	case !a.has && b.has:
		return 1
	case a.has && !a.key.Equal(b.key):
		return a.key.Compare(b.key)
	}
	return a.arrival.Compare(b.arrival)
}

func (a sortKey) less(b sortKey) bool { return a.cmp(b) < 0 }

// key is j's place in the policy's order at now.
func (s Scheduler) key(now time.Time, j Job) sortKey {
	if s.Policy != EDF {
		return sortKey{has: true, key: j.Arrival, arrival: j.Arrival}
	}
	switch {
	case !j.Deadline.IsZero():
		return sortKey{has: true, key: j.Deadline, arrival: j.Arrival}
	case s.Aging > 0 && now.Sub(j.Arrival) >= s.Aging:
		return sortKey{has: true, key: j.Arrival.Add(s.Aging), arrival: j.Arrival}
	}
	return sortKey{arrival: j.Arrival}
}

// Order returns the indices of queue in the policy's order at now (a
// stable sort: equal keys keep their queue order).
func (s Scheduler) Order(now time.Time, queue []Job) []int {
	keys := make([]sortKey, len(queue))
	ord := make([]int, len(queue))
	for i, j := range queue {
		keys[i] = s.key(now, j)
		ord[i] = i
	}
	slices.SortStableFunc(ord, func(a, b int) int { return keys[a].cmp(keys[b]) })
	return ord
}

// Next returns the job worker w (an index into workers) should start at
// now: the first job of queue in the policy's order that fits w and
// breaks no reservation (see the package comment). ok is false when w
// should start nothing. queue is the waiting jobs; workers are all the
// workers (the reservations depend on the others). Nothing is modified.
func (s Scheduler) Next(now time.Time, queue []Job, workers []Worker, w int) (Job, bool) {
	wk := &workers[w]
	if wk.Slots > 0 && len(wk.Running) >= wk.Slots {
		return Job{}, false
	}
	free, fits := wk.Free(), false
	for _, j := range queue {
		if j.PeakBytes <= free {
			fits = true
			break
		}
	}
	if !fits {
		return Job{}, false
	}
	i := s.pick(now, queue, s.Order(now, queue), workers, w)
	if i < 0 {
		return Job{}, false
	}
	return queue[i], true
}

// reservation: job is to start on worker at start.
type reservation struct {
	worker     int
	start, end time.Time
	job        Job
}

// interval is memory held on a worker over [start, end).
type interval struct {
	start, end time.Time
	mem        int64
}

// pick is Next on queue in the order ord (nil: queue's own order); it
// returns an index into queue or -1.
func (s Scheduler) pick(now time.Time, queue []Job, ord []int, workers []Worker, w int) int {
	var res []reservation
	n := s.reservations()
	for k := range queue {
		i := k
		if ord != nil {
			i = ord[k]
		}
		j := queue[i]
		if workers[w].Fits(j) {
			if s.respects(now, j, w, workers, res) {
				return i
			}
			continue
		}
		if len(res) >= n || fitsAnyNow(j, workers) {
			// Another worker can start it now; or no reservation left.
			continue
		}
		if r, ok := s.reserve(now, j, workers, res, -1, Job{}); ok {
			res = append(res, r)
		}
	}
	return -1
}

func fitsAnyNow(j Job, workers []Worker) bool {
	for i := range workers {
		if workers[i].Fits(j) {
			return true
		}
	}
	return false
}

// profile is what worker x holds from now on: its running jobs until
// their estimated ends, the reservations on it (but skip), and extra.
func (s Scheduler) profile(now time.Time, workers []Worker, x int, res []reservation, skip int, extra []interval) []interval {
	var ivs []interval
	for _, r := range workers[x].Running {
		ivs = append(ivs, interval{now, s.runEnd(now, r), r.Job.PeakBytes})
	}
	for k, r := range res {
		if r.worker == x && k != skip {
			ivs = append(ivs, interval{r.start, r.end, r.job.PeakBytes})
		}
	}
	return append(ivs, extra...)
}

// reserve finds the earliest start of j over all workers, given what they
// run, the reservations res and, if candW ≥ 0, cand starting now on
// worker candW.
func (s Scheduler) reserve(now time.Time, j Job, workers []Worker, res []reservation, candW int, cand Job) (reservation, bool) {
	best := reservation{worker: -1}
	d := s.Estimate(j)
	for x := range workers {
		wk := &workers[x]
		if !wk.canEverFit(j) {
			continue
		}
		var extra []interval
		if x == candW {
			extra = []interval{{now, now.Add(s.Estimate(cand)), cand.PeakBytes}}
		}
		t := earliestStart(s.profile(now, workers, x, res, -1, extra), wk.MemoryLimit, wk.Slots, j.PeakBytes, d, now)
		if best.worker < 0 || t.Before(best.start) {
			best = reservation{worker: x, start: t, end: t.Add(d), job: j}
		}
	}
	return best, best.worker >= 0
}

// respects reports whether cand may start on w now without breaking a
// reservation of res (see the package comment).
func (s Scheduler) respects(now time.Time, cand Job, w int, workers []Worker, res []reservation) bool {
	candIv := []interval{{now, now.Add(s.Estimate(cand)), cand.PeakBytes}}
	wk := &workers[w]
	for k, r := range res {
		if r.worker != w {
			continue
		}
		if feasible(s.profile(now, workers, w, res, k, candIv), wk.MemoryLimit, wk.Slots, r.job.PeakBytes, r.start, r.end) {
			continue
		}
		if s.Policy == EDF && !r.job.Deadline.IsZero() {
			// Soft reservation: cand may push r.job back within its
			// slack. Where would r.job start with cand running?
			others := slices.Delete(slices.Clone(res), k, k+1)
			if r2, ok := s.reserve(now, r.job, workers, others, w, cand); ok && !r2.end.After(r.job.Deadline) {
				continue
			}
		}
		return false
	}
	return true
}

// earliestStart is the earliest t ≥ from at which a job of mem bytes and
// duration d fits a worker of limit and slots holding ivs over [t, t+d).
func earliestStart(ivs []interval, limit int64, slots int, mem int64, d time.Duration, from time.Time) time.Time {
	cands := []time.Time{from}
	for _, iv := range ivs {
		if iv.end.After(from) {
			cands = append(cands, iv.end)
		}
	}
	slices.SortFunc(cands, time.Time.Compare)
	for _, c := range cands {
		if feasible(ivs, limit, slots, mem, c, c.Add(d)) {
			return c
		}
	}
	return cands[len(cands)-1] // after every interval: fits if mem ≤ limit
}

// feasible reports whether mem more bytes (and one slot) fit over [a, b)
// on a worker holding ivs.
func feasible(ivs []interval, limit int64, slots int, mem int64, a, b time.Time) bool {
	check := func(p time.Time) bool {
		var use int64
		n := 0
		for _, iv := range ivs {
			if !iv.start.After(p) && iv.end.After(p) {
				use += iv.mem
				n++
			}
		}
		return use+mem <= limit && (slots <= 0 || n+1 <= slots)
	}
	if !check(a) {
		return false
	}
	for _, iv := range ivs {
		if iv.start.After(a) && iv.start.Before(b) && !check(iv.start) {
			return false
		}
	}
	return true
}

package sched

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func secsD(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// job: id, arrival (s), deadline (s from t0; 0: none), estimate (s), peak (GB).
func job(id string, arrival, deadline, est, peakGB float64) Job {
	j := Job{ID: id, Model: "m", Arrival: at(arrival), EstRuntime: secsD(est), PeakBytes: int64(peakGB * 1e9)}
	if deadline != 0 {
		j.Deadline = at(deadline)
	}
	return j
}

func worker(limitGB float64, slots int, runs ...Run) Worker {
	return Worker{ID: "w", MemoryLimit: int64(limitGB * 1e9), Slots: slots, Running: runs}
}

func TestEstimate(t *testing.T) {
	j := job("a", 0, 0, 10, 1)
	for _, c := range []struct {
		f    float64
		want time.Duration
	}{{0, 10 * time.Second}, {0.5, 10 * time.Second}, {1, 10 * time.Second}, {1.2, 12 * time.Second}} {
		s := Scheduler{SafetyFactor: c.f}
		if got := s.Estimate(j); got != c.want {
			t.Errorf("safety %v: %v, want %v", c.f, got, c.want)
		}
		if got := s.EstimateCompletion(t0, j); !got.Equal(t0.Add(c.want)) {
			t.Errorf("safety %v: completion %v", c.f, got)
		}
	}
}

func TestWorkerFits(t *testing.T) {
	w := worker(12, 2, Run{job("r", 0, 0, 5, 11), t0})
	if w.Used() != 11e9 || w.Free() != 1e9 {
		t.Fatalf("used %d free %d", w.Used(), w.Free())
	}
	if !w.Fits(job("s", 0, 0, 1, 1)) || w.Fits(job("b", 0, 0, 1, 1.5)) {
		t.Error("memory fit")
	}
	w.Running = append(w.Running, Run{job("r2", 0, 0, 5, 0.5), t0})
	if w.Fits(job("s", 0, 0, 1, 0.1)) {
		t.Error("fits with no slot free")
	}
}

func TestAdmitTooLarge(t *testing.T) {
	ws := []Worker{worker(12, 2), worker(8, 2)}
	for _, s := range []Scheduler{{}, {Policy: EDF, DeadlineAdmission: true}} {
		err := s.Admit(t0, job("big", 0, 0, 10, 13), nil, ws)
		var ae *AdmissionError
		if !errors.Is(err, ErrTooLarge) || !errors.As(err, &ae) || ae.LargestLimit != 12e9 {
			t.Fatalf("%+v: %v", s, err)
		}
		if msg := err.Error(); !strings.Contains(msg, `job "big"`) || !strings.Contains(msg, "13.00 GB") || !strings.Contains(msg, "largest is 12.00 GB") {
			t.Errorf("message: %s", msg)
		}
		if err := s.Admit(t0, job("ok", 0, 0, 10, 12), nil, ws); err != nil {
			t.Errorf("12 GB on a 12 GB worker: %v", err)
		}
	}
	if err := (Scheduler{}).Admit(t0, job("x", 0, 0, 1, 1), nil, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("no workers: %v", err)
	}
}

// On idle workers a job is refused when its own estimate × safety
// already ends after its deadline, and only with DeadlineAdmission.
func TestAdmitOwnRuntime(t *testing.T) {
	ws := []Worker{worker(12, 2)}
	s := Scheduler{Policy: EDF, DeadlineAdmission: true, SafetyFactor: 1.2}
	err := s.Admit(t0, job("a", 0, 11, 10, 1), nil, ws)
	var ae *AdmissionError
	if !errors.Is(err, ErrMissesDeadline) || !errors.As(err, &ae) {
		t.Fatalf("%v", err)
	}
	if !ae.EstStart.Equal(t0) || !ae.EstCompletion.Equal(at(12)) || ae.Ahead != 0 {
		t.Errorf("start %v completion %v ahead %d", ae.EstStart, ae.EstCompletion, ae.Ahead)
	}
	msg := err.Error()
	for _, want := range []string{"refused at admission", "estimated completion in 12.0s", "estimate 10.0s × safety 1.20", "1.0s after its deadline in 11.0s"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	if err := s.Admit(t0, job("a", 0, 12, 10, 1), nil, ws); err != nil {
		t.Errorf("completion at the deadline: %v", err)
	}
	if err := s.Admit(t0, job("a", 0, 0, 10, 1), nil, ws); err != nil {
		t.Errorf("no deadline: %v", err)
	}
	s.DeadlineAdmission = false
	if err := s.Admit(t0, job("a", 0, 11, 10, 1), nil, ws); err != nil {
		t.Errorf("without deadline admission: %v", err)
	}
}

// The work queued ahead counts in the policy's order: under EDF a job
// with an earlier deadline overtakes the queue, under FIFO it waits.
func TestAdmitQueuedAhead(t *testing.T) {
	ws := []Worker{worker(12, 1, Run{job("r", -1, 0, 6, 1), at(-1)})} // ends at 5
	queue := []Job{job("a", -0.5, 40, 10, 1)}                         // 10 s, deadline 40
	j := job("j", 0, 17, 3, 1)                                        // 3 s, deadline 17

	edf := Scheduler{Policy: EDF, DeadlineAdmission: true}
	if err := edf.Admit(t0, j, queue, ws); err != nil {
		t.Errorf("EDF: %v", err) // starts at 5, done at 8
	}
	fifo := Scheduler{Policy: FIFO, DeadlineAdmission: true}
	err := fifo.Admit(t0, j, queue, ws) // behind a: starts at 15, done at 18 > 17
	var ae *AdmissionError
	if !errors.As(err, &ae) || !errors.Is(err, ErrMissesDeadline) {
		t.Fatalf("FIFO: %v", err)
	}
	if !ae.EstStart.Equal(at(15)) || !ae.EstCompletion.Equal(at(18)) || ae.Ahead != 1 {
		t.Errorf("FIFO: start %v completion %v ahead %d", ae.EstStart.Sub(t0), ae.EstCompletion.Sub(t0), ae.Ahead)
	}
	if !strings.Contains(err.Error(), "behind 1 queued job(s)") {
		t.Errorf("message: %v", err)
	}
	// Admit modifies nothing.
	if len(ws[0].Running) != 1 || len(queue) != 1 {
		t.Error("Admit changed its arguments")
	}
	// Jobs behind the new one (later deadline) do not count under EDF.
	j.Deadline = at(8)
	if err := edf.Admit(t0, j, queue, ws); err != nil {
		t.Errorf("EDF, done exactly at the deadline: %v", err)
	}
}

// Memory decides when the job can start: it waits for the running job
// whose end frees enough.
func TestAdmitMemory(t *testing.T) {
	ws := []Worker{
		worker(12, 2, Run{job("r0", 0, 0, 10, 11), t0}), // 1 GB free until 10
		worker(12, 2, Run{job("r1", 0, 0, 30, 11), t0}), // until 30
	}
	s := Scheduler{Policy: EDF, DeadlineAdmission: true}
	if err := s.Admit(t0, job("j", 0, 11, 1, 2), nil, ws); err != nil {
		t.Errorf("2 GB from 10 s: %v", err)
	}
	err := s.Admit(t0, job("j", 0, 10.5, 1, 2), nil, ws)
	var ae *AdmissionError
	if !errors.As(err, &ae) || !ae.EstStart.Equal(at(10)) {
		t.Fatalf("%v", err)
	}
	// 1 GB fits now beside r0.
	if err := s.Admit(t0, job("j", 0, 1, 1, 1), nil, ws); err != nil {
		t.Errorf("1 GB now: %v", err)
	}
	// A job past its estimate is expected to end at any moment.
	late := []Worker{worker(12, 1, Run{job("r", -20, 0, 10, 11), at(-20)})}
	if err := s.Admit(t0, job("j", 0, 1.1, 1, 2), nil, late); err != nil {
		t.Errorf("overrunning job: %v", err)
	}
}

func drain(t *testing.T, s Scheduler, now time.Time, queue []Job, ws []Worker) []string {
	t.Helper()
	var ids []string
	for len(queue) > 0 {
		j, ok := s.Next(now, queue, ws, 0)
		if !ok {
			t.Fatalf("nothing for an idle worker; left %v", queue)
		}
		ids = append(ids, j.ID)
		for i := range queue {
			if queue[i].ID == j.ID {
				queue = append(queue[:i:i], queue[i+1:]...)
				break
			}
		}
	}
	return ids
}

func TestNextOrder(t *testing.T) {
	queue := []Job{
		job("a", 0, 0, 1, 1),   // no deadline
		job("b", 1, 30, 1, 1),  // deadline 30
		job("c", 2, 10, 1, 1),  // deadline 10
		job("d", 3, 10, 1, 1),  // deadline 10, later
		job("e", 4, 0, 1, 1),   // no deadline, later
		job("f", 4, 100, 1, 1), // deadline 100
	}
	ws := []Worker{worker(12, 0)}
	now := at(5)
	got := strings.Join(drain(t, Scheduler{Policy: EDF}, now, queue, ws), " ")
	if got != "c d b f a e" {
		t.Errorf("EDF: %s", got)
	}
	got = strings.Join(drain(t, Scheduler{Policy: FIFO}, now, queue, ws), " ")
	if got != "a b c d e f" {
		t.Errorf("FIFO: %s", got)
	}
	// Ageing: a, waiting 5 s ≥ 3 s, sorts as if due at 3 (before c);
	// e has waited 1 s only.
	got = strings.Join(drain(t, Scheduler{Policy: EDF, Aging: 3 * time.Second}, now, queue, ws), " ")
	if got != "a c d b f e" {
		t.Errorf("EDF with ageing: %s", got)
	}
	ord := Scheduler{Policy: EDF}.Order(now, queue)
	if len(ord) != len(queue) || ord[0] != 2 || ord[5] != 4 {
		t.Errorf("Order: %v", ord)
	}
}

// A worker starts the first job in order that fits its free memory; a job
// that fits another worker now is left to it.
func TestNextMemoryFit(t *testing.T) {
	ws := []Worker{
		worker(12, 2, Run{job("r", 0, 0, 100, 10), t0}),
		worker(12, 2),
	}
	queue := []Job{job("big", 0, 10, 5, 11), job("small", 0, 20, 5, 1)}
	for _, s := range []Scheduler{{Policy: EDF}, {Policy: FIFO}} {
		if j, ok := s.Next(t0, queue, ws, 0); !ok || j.ID != "small" {
			t.Errorf("%v, worker 0: %v %v", s.Policy, j.ID, ok)
		}
		if j, ok := s.Next(t0, queue, ws, 1); !ok || j.ID != "big" {
			t.Errorf("%v, worker 1: %v %v", s.Policy, j.ID, ok)
		}
	}
	// Nothing fits: nothing starts.
	if j, ok := (Scheduler{Policy: EDF}).Next(t0, queue[:1], ws, 0); ok {
		t.Errorf("started %s on a worker without room", j.ID)
	}
	// A job that fits no worker at all does not block the others.
	never := []Job{job("huge", 0, 1, 5, 20), job("small", 0, 20, 5, 1)}
	if j, ok := (Scheduler{Policy: EDF}).Next(t0, never, ws, 1); !ok || j.ID != "small" {
		t.Errorf("behind an impossible job: %v %v", j.ID, ok)
	}
}

// The reservation rule: big (11.5 GB) heads the order and fits nowhere
// while r (1 GB) runs until 5 s; it is reserved at 5 s. A later small job
// of 1 GB would hold memory big needs at 5 s.
func TestNextReservation(t *testing.T) {
	ws := func() []Worker { return []Worker{worker(12, 2, Run{job("r", 0, 0, 5, 1), t0})} }
	queue := func(bigDeadline, smallEst float64) []Job {
		return []Job{job("big", 0, bigDeadline, 20, 11.5), job("small", 0.5, 200, smallEst, 1)}
	}
	cases := []struct {
		name      string
		s         Scheduler
		bigDL     float64
		smallEst  float64
		wantSmall bool
	}{
		// small delays big to 10 s, done at 30 ≤ 100: within big's slack.
		{"EDF, slack", Scheduler{Policy: EDF}, 100, 10, true},
		// done at 30 > 25: small would push big past its deadline.
		{"EDF, no slack", Scheduler{Policy: EDF}, 25, 10, false},
		// small ends at 3 s, before big's reserved start: no delay.
		{"EDF, ends before", Scheduler{Policy: EDF}, 25, 3, true},
		// FIFO reservations are strict: no delay at all.
		{"FIFO", Scheduler{Policy: FIFO}, 100, 10, false},
		{"FIFO, ends before", Scheduler{Policy: FIFO}, 100, 3, true},
		// A reserved job without a deadline is not pushed back either.
		{"EDF, big without deadline", Scheduler{Policy: EDF}, 0, 10, false},
		// Without reservations the small job starts and big waits.
		{"EDF, no reservations", Scheduler{Policy: EDF, Reservations: -1}, 25, 10, true},
	}
	for _, c := range cases {
		q := queue(c.bigDL, c.smallEst)
		if c.bigDL == 0 {
			q[1].Deadline = time.Time{} // big first in order either way
		}
		j, ok := c.s.Next(t0, q, ws(), 0)
		if got := ok && j.ID == "small"; got != c.wantSmall {
			t.Errorf("%s: started %q (%v), want small %v", c.name, j.ID, ok, c.wantSmall)
		}
	}
	// The safety factor scales every estimate: r, started 3 s ago with 8 s
	// estimated, ends at 5 s (factor 1) or 9 s (1.5); small, 5.5 s, ends
	// at 5.5 s or 8.25 s: across the reservation, then before it.
	late := []Worker{worker(12, 2, Run{job("r", -3, 0, 8, 1), at(-3)})}
	if j, ok := (Scheduler{Policy: FIFO}).Next(t0, queue(100, 5.5), late, 0); ok {
		t.Errorf("factor 1: started %s across the reservation", j.ID)
	}
	if j, ok := (Scheduler{Policy: FIFO, SafetyFactor: 1.5}).Next(t0, queue(100, 5.5), late, 0); !ok || j.ID != "small" {
		t.Errorf("factor 1.5: %v %v", j.ID, ok)
	}
	// A reservation on another worker does not restrict this one.
	two := append(ws(), worker(12, 2, Run{job("r2", 0, 0, 50, 1), t0}))
	if j, ok := (Scheduler{Policy: FIFO}).Next(t0, queue(100, 10), two, 1); !ok || j.ID != "small" {
		t.Errorf("worker 1 (big reserved on worker 0): %v %v", j.ID, ok)
	}
}

// No starvation: one worker, more 1 GB jobs with deadlines than it can
// run (so some are always queued), and one 11.5 GB job without a deadline
// at 1 s. Without reservations it never fits while arrivals last;
// with EDF and no ageing it never heads the queue; with ageing (EDF) or
// reservations (FIFO) it starts soon.
func TestNoStarvation(t *testing.T) {
	cfg := SimConfig{Workers: 1, MemoryLimit: 12 * gB, Slots: 2, Horizon: 120 * time.Second, Seed: 7,
		Streams: []Stream{{Name: "small", Model: Model{"small", time.Second, gB}, Rate: 3, DeadlineMin: 5 * time.Second, DeadlineMax: 10 * time.Second}}}
	base := cfg.Arrivals()
	big := SimJob{Job: job("big", 0, 0, 20, 11.5), Stream: 0, Actual: 20 * time.Second}
	big.Arrival = simEpoch.Add(time.Second)
	jobs := append(slices.Clone(base), big)
	slices.SortStableFunc(jobs, func(a, b SimJob) int { return a.Arrival.Compare(b.Arrival) })
	wait := func(s Scheduler) time.Duration {
		r, err := Simulate(cfg, jobs, s, "x")
		if err != nil {
			t.Fatal(err)
		}
		for i, j := range jobs {
			if j.ID == "big" {
				return r.Outcomes[i].Start.Sub(j.Arrival)
			}
		}
		t.Fatal("no big job")
		return 0
	}
	aging := 30 * time.Second
	if w := wait(Scheduler{Policy: EDF, Aging: aging}); w > aging+2*time.Second {
		t.Errorf("EDF with ageing: big waited %v", w)
	}
	if w := wait(Scheduler{Policy: FIFO}); w > 2*time.Second {
		t.Errorf("FIFO with a reservation: big waited %v", w)
	}
	if w := wait(Scheduler{Policy: EDF}); w < cfg.Horizon-2*time.Second {
		t.Errorf("EDF without ageing: big waited only %v (the test's premise is wrong)", w)
	}
	if w := wait(Scheduler{Policy: FIFO, Reservations: -1}); w < cfg.Horizon-2*time.Second {
		t.Errorf("FIFO without reservations: big waited only %v (the test's premise is wrong)", w)
	}
}

// The same seed gives the same arrivals and the same results.
func TestSimulateDeterministic(t *testing.T) {
	cfg := simConfig(0.2, 0.2, 3)
	cfg.Horizon = 5 * time.Minute
	a, b := cfg.Arrivals(), cfg.Arrivals()
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("%d and %d arrivals", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("arrival %d differs", i)
		}
	}
	s := Scheduler{Policy: EDF, DeadlineAdmission: true, SafetyFactor: 1.2}
	r1, err1 := Simulate(cfg, a, s, "x")
	r2, err2 := Simulate(cfg, b, s, "x")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if r1.Stats(nil) != r2.Stats(nil) {
		t.Errorf("%+v != %+v", r1.Stats(nil), r2.Stats(nil))
	}
}

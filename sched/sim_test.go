package sched

import (
	"errors"
	"flag"
	"testing"
	"time"
)

var (
	simSeed   = flag.Uint64("sched-seed", 1, "TestSimulation: seed of the arrivals")
	simLoad   = flag.Float64("sched-load", 1, "TestSimulation: multiplies every stream's rate")
	simNoise  = flag.Float64("sched-noise", 0.2, "TestSimulation: sd of ln(actual/estimated run time)")
	simSafety = flag.Float64("sched-safety", 1.2, "TestSimulation: the schedulers' safety factor")
)

const gB = int64(1e9)

// The models of the simulation, from this repository's measurements:
//
//   - mnist-cryptonets (n14-leveled): 274 ms on 1 core, 207 ms on 2
//     (docs/benchmarks.md, BenchmarkMNIST); a worker ran two evaluations
//     at once and its key-set cache in 2.24 GB of RSS (the load test), so
//     0.3 GB per evaluation (60 MB key set expanded twice, ciphertexts).
//   - mnist-resnet (n15-leveled): 2.40 s per image on 2 cores, key set
//     416 MB, peak RSS of the whole test (device included) 5.3 GB
//     (docs/benchmarks.md); 2 GB per evaluation assumed.
//   - mnist-resnet split after block 1 (n14-leveled): 0.90 s per image,
//     326 MB of keys, peak RSS of the test 2.7 GB; 1 GB assumed.
//   - a bootstrapped CNN (n16-boot-like): about 20 s per bootstrap and
//     11.1 GB peak RSS for Lattigo's logN 16 bootstrapping with the
//     issue's known parameters (issue 6; docs/bootstrapping.md: n16-boot
//     itself has not run, so these are the figures); 1, 2 or 3
//     bootstraps: 20, 40, 60 s.
//
// The per-evaluation peaks of the leveled models are assumptions within
// the 0.3–2 GB the measurements bound, not measured per job.
var (
	cryptonets  = Model{"mnist-cryptonets", 270 * time.Millisecond, 3 * gB / 10}
	resnet      = Model{"mnist-resnet", 2400 * time.Millisecond, 2 * gB}
	resnetSplit = Model{"mnist-resnet-split", 900 * time.Millisecond, 1 * gB}
	boot1       = Model{"cnn-boot-1", 20 * time.Second, 111 * gB / 10}
	boot2       = Model{"cnn-boot-2", 40 * time.Second, 111 * gB / 10}
	boot3       = Model{"cnn-boot-3", 60 * time.Second, 111 * gB / 10}
)

// simConfig: 5 workers of 12 GB and 2 slots (2 cores), 10 streams. Short
// deadlines are Prefer: wait=N (N ≤ 30 s, the gateway's WaitTimeout);
// the bootstrapped ones, longer than that, a deadline parameter.
func simConfig(load, noise float64, seed uint64) SimConfig {
	s := func(name string, m Model, rate float64, dmin, dmax time.Duration) Stream {
		return Stream{Name: name, Model: m, Rate: rate * load, DeadlineMin: dmin, DeadlineMax: dmax}
	}
	sec := time.Second
	return SimConfig{
		Workers: 5, MemoryLimit: 12 * gB, Slots: 2,
		Horizon: time.Hour, Noise: noise, Seed: seed,
		Streams: []Stream{
			s("cryptonets-interactive", cryptonets, 2.1, 1*sec, 3*sec),
			s("cryptonets-app", cryptonets, 2.1, 2*sec, 10*sec),
			s("cryptonets-batch", cryptonets, 1.4, 0, 0),
			s("resnet-interactive", resnet, 0.42, 5*sec, 15*sec),
			s("resnet-app", resnet, 0.42, 10*sec, 30*sec),
			s("resnet-split", resnetSplit, 0.7, 3*sec, 10*sec),
			s("boot-1", boot1, 0.028, 40*sec, 120*sec),
			s("boot-2", boot2, 0.028, 90*sec, 240*sec),
			s("boot-3", boot3, 0.021, 150*sec, 400*sec),
			s("boot-batch", boot2, 0.014, 0, 0),
		},
	}
}

// simPolicies are the rows of the table.
func simPolicies() []struct {
	name string
	s    Scheduler
} {
	safety := *simSafety
	return []struct {
		name string
		s    Scheduler
	}{
		{"FIFO", Scheduler{Policy: FIFO, SafetyFactor: safety}},
		{"FIFO+admission", Scheduler{Policy: FIFO, SafetyFactor: safety, DeadlineAdmission: true}},
		{"EDF", Scheduler{Policy: EDF, SafetyFactor: safety, Aging: 10 * time.Minute}},
		{"EDF+admission", Scheduler{Policy: EDF, SafetyFactor: safety, Aging: 10 * time.Minute, DeadlineAdmission: true}},
	}
}

// TestSimulation runs the same arrivals through FIFO, FIFO with deadline
// admission, EDF and EDF with deadline admission, prints the table and
// checks invariants (not numbers):
//
//	go test ./sched -run TestSimulation -v
func TestSimulation(t *testing.T) {
	cfg := simConfig(*simLoad, *simNoise, *simSeed)
	jobs := cfg.Arrivals()
	sl, ml := cfg.OfferedLoad()
	t.Logf("%d workers × %.0f GB × %d slots, %d streams, %v of arrivals: %d jobs; offered load %.0f%% of slots, %.0f%% of memory (estimated peaks); run-time noise sd %.2f (log), seed %d",
		cfg.Workers, float64(cfg.MemoryLimit)/1e9, cfg.Slots, len(cfg.Streams), cfg.Horizon, len(jobs), 100*sl, 100*ml, cfg.Noise, cfg.Seed)

	var results []*Result
	byName := map[string]*Result{}
	for _, p := range simPolicies() {
		start := time.Now()
		r, err := Simulate(cfg, jobs, p.s, p.name)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: simulated in %v, last completion %v after the start", p.name, time.Since(start).Round(time.Millisecond), r.End.Sub(simEpoch).Round(time.Second))
		results = append(results, r)
		byName[p.name] = r
	}
	t.Logf("\n%s", Table(results))
	t.Logf("per stream (missed of admitted / refused / p99 latency):\n%s", StreamTable(results))

	for _, r := range results {
		s := r.Stats(nil)
		// Memory: no worker's running peaks ever exceed its limit (Simulate
		// also fails at the first start that would), nor its slots.
		for w, p := range r.PeakMemory {
			if p > cfg.MemoryLimit || r.PeakRunning[w] > cfg.Slots {
				t.Errorf("%s: worker %d peaked at %s, %d jobs (limit %s, %d slots)", r.Name, w, gb(p), r.PeakRunning[w], gb(cfg.MemoryLimit), cfg.Slots)
			}
		}
		// Every job is accounted for; every admitted job completed.
		if s.Admitted+s.Refused != len(jobs) || s.Completed != s.Admitted {
			t.Errorf("%s: %d jobs, %d admitted, %d refused, %d completed", r.Name, len(jobs), s.Admitted, s.Refused, s.Completed)
		}
		// Every job fits a worker, so only deadline admission refuses,
		// and only with ErrMissesDeadline, and only jobs with a deadline.
		for i, o := range r.Outcomes {
			if o.Refused == nil {
				continue
			}
			var ae *AdmissionError
			if !errors.As(o.Refused, &ae) || !errors.Is(o.Refused, ErrMissesDeadline) || jobs[i].Deadline.IsZero() {
				t.Errorf("%s: %s refused: %v", r.Name, jobs[i].ID, o.Refused)
				break
			}
		}
		if !simAdmits(r.Name) && s.Refused > 0 {
			t.Errorf("%s: %d refused without deadline admission", r.Name, s.Refused)
		}
	}

	fifo, edfAdm := byName["FIFO"].Stats(nil), byName["EDF+admission"].Stats(nil)
	// The claim of the benchmark: EDF with admission misses fewer admitted
	// deadlines than FIFO on the same arrivals, and fails fewer deadlines
	// even when its refusals are counted as failures. Neither is a
	// theorem (run times are noisy, admission is an estimate); both hold
	// with a wide margin on this workload (see docs/bootstrapping.md).
	if edfAdm.Missed > fifo.Missed {
		t.Errorf("EDF+admission missed %d deadlines, FIFO %d", edfAdm.Missed, fifo.Missed)
	}
	if edfAdm.Missed+edfAdm.Refused > fifo.Missed {
		t.Errorf("EDF+admission missed %d and refused %d, FIFO missed %d", edfAdm.Missed, edfAdm.Refused, fifo.Missed)
	}

	// Not asserted, reported: admission is an estimate, so it may refuse a
	// job that the same order without admission happened to finish in
	// time.
	for _, c := range [][2]string{{"FIFO+admission", "FIFO"}, {"EDF+admission", "EDF"}, {"EDF+admission", "FIFO"}} {
		r, base := byName[c[0]], byName[c[1]]
		refused, onTime := 0, 0
		for i, o := range r.Outcomes {
			if o.Refused == nil {
				continue
			}
			refused++
			if !base.Outcomes[i].Missed(jobs[i].Job) {
				onTime++
			}
		}
		t.Logf("%s refused %d jobs; %s without admission finished %d of them by their deadline", c[0], refused, c[1], onTime)
	}
	for _, r := range results {
		for _, o := range r.Outcomes {
			if o.Refused != nil {
				t.Logf("%s: first refusal: %v", r.Name, o.Refused)
				break
			}
		}
	}
}

func simAdmits(name string) bool { return name == "FIFO+admission" || name == "EDF+admission" }

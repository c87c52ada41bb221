// Package sched is the scheduling policy of hegate's workers as pure code:
// which queued job a worker starts next, given its memory, and whether a
// job is admitted at all, given its deadline and the work queued ahead of
// it. It does no I/O; it knows nothing of HTTP, SQL or River. The workers
// do not call it yet (docs/bootstrapping.md, "Scheduling by memory and
// deadline", says how they would).
//
// # Jobs and workers
//
// A Job carries what a model's cost report gives before it runs: an
// estimated run time (EstRuntime) and an estimated peak memory
// (PeakBytes, he.Manifest.EvaluationBytes plus what the worker adds), and
// optionally a deadline (Prefer: wait=N, or a deadline parameter). A
// Worker has a memory budget (MemoryLimit, the worker's --memory-limit),
// at most Slots jobs at once, and the jobs it is running. A worker's free
// memory is its limit minus the PeakBytes of its running jobs; a job fits
// a worker when its PeakBytes is at most that and a slot is free. No
// policy here ever starts a job that does not fit, so the estimated peaks
// of a worker's jobs never add up to more than its limit.
//
// # Order
//
// FIFO orders the queue by arrival. EDF orders it by deadline, earliest
// first; jobs without a deadline come after every job with one, and jobs
// with equal keys stay first in, first out. Ageing (Scheduler.Aging): a
// job without a deadline that has waited Aging or longer sorts as if its
// deadline were Arrival+Aging, which is in the past, so it moves ahead of
// every job whose deadline has not passed; without ageing a steady stream
// of jobs with deadlines would keep it waiting for ever.
//
// # Next: memory fit and reservations
//
// Next walks the queue in the policy's order and starts the first job that
// fits the asking worker's free memory and does not break a reservation.
// A job that fits no worker now (a bootstrapped job of 11 GB while every
// worker runs smaller ones) would otherwise wait for ever behind a stream
// of small jobs that keep each worker's memory partly used. So the first
// Scheduler.Reservations such blocked jobs in order (default 1) each get a
// reservation: the earliest time, from the running jobs' estimated ends,
// at which some worker has room for them, and that worker. A later job may
// then start on the reserved worker only if it leaves the reservation
// intact: it ends (by its estimate) before the reserved start, or the
// worker still has room for both at that time. This is EASY backfilling.
// Under EDF a reservation for a job with a deadline is softer: a later
// job may also start if the reserved job, pushed back by it, still
// completes by its deadline (its estimate); the reserved job's slack is
// spent on the small jobs, never past its deadline. A reserved job
// without a deadline (FIFO, or an aged job) is never pushed back.
//
// # Admission
//
// Admit refuses a job whose PeakBytes is larger than every worker's
// memory limit (ErrTooLarge), and, when Scheduler.DeadlineAdmission is
// set, a job whose estimated completion already misses its deadline
// (ErrMissesDeadline). The estimate is what the policy would do with the
// work known now: the jobs running (each ending at its estimated end) and
// the jobs queued ahead of the new one in the policy's order, dispatched
// by Next on copies of the workers until the new job starts, plus its own
// estimated run time. Jobs queued behind it and jobs still to arrive are
// left out, so the estimate is optimistic: a job refused would miss its
// deadline even if nothing else arrived and every estimate held. Every
// estimate is the cost report's EstRuntime times Scheduler.SafetyFactor.
// Admission does not check whether the new job pushes an already admitted
// job past its deadline (under EDF it can, when it has the earlier
// deadline).
package sched

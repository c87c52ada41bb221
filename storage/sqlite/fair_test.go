package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/internal/jobqueue"
)

// riverOrder returns the job ids and priorities of the waiting River
// inference jobs in the order a worker fetches them (River's fetch:
// priority, scheduled time, id), through a connection of its own.
func (s testStore) riverOrder(ctx context.Context) (ids []hegate.JobID, prios []int, err error) {
	db, err := sql.Open("sqlite", s.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx,
		`SELECT json_extract(args, '$.job_id'), priority FROM river_job
		 WHERE kind = ?1 AND state = 'available' ORDER BY priority, scheduled_at, id`, jobqueue.Kind)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id hegate.JobID
			p  int
		)
		if err := rows.Scan(&id, &p); err != nil {
			return nil, nil, err
		}
		ids, prios = append(ids, id), append(prios, p)
	}
	return ids, prios, rows.Err()
}

// floodThenOne creates tenants A and B, 20 jobs of A, then one of B.
func floodThenOne(t *testing.T, s storage.Store) (a []hegate.JobID, b hegate.JobID) {
	_, a, bs := floodThen(t, s, 20, false, 1)
	return a, bs[0]
}

// floodThen creates tenants A and B, na jobs of A (all at once if
// concurrent), then nb of B one after another.
func floodThen(t *testing.T, s storage.Store, na int, concurrent bool, nb int) (tenants [2]hegate.TenantID, a, b []hegate.JobID) {
	t.Helper()
	ctx := t.Context()
	for i, name := range []string{"a", "b"} {
		tn, err := s.CreateTenant(ctx, storage.CreateTenantParams{Name: name})
		if err != nil {
			t.Fatalf("CreateTenant: %v", err)
		}
		tenants[i] = tn.ID
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	submit := func() {
		j, _, err := s.CreateJob(ctx, storage.CreateJobParams{TenantID: tenants[0], Model: "m", KeySetID: "k", InputBlob: "a"})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		a = append(a, j.ID)
	}
	for range na {
		if concurrent {
			wg.Go(submit)
		} else {
			submit()
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("CreateJob of A: %v", errs)
	}
	for range nb {
		j, _, err := s.CreateJob(ctx, storage.CreateJobParams{TenantID: tenants[1], Model: "m", KeySetID: "k", InputBlob: "b"})
		if err != nil {
			t.Fatalf("CreateJob of B: %v", err)
		}
		b = append(b, j.ID)
	}
	return tenants, a, b
}

// TestFairOrder: after tenant A queued 20 jobs, tenant B's one job is the
// next a worker takes, and A's follow in their own order.
func TestFairOrder(t *testing.T) {
	t.Parallel()
	s := open(t, nil).(testStore)
	a, b := floodThenOne(t, s)
	ids, prios, err := s.riverOrder(t.Context())
	if err != nil {
		t.Fatalf("reading river_job: %v", err)
	}
	if want := append([]hegate.JobID{b}, a...); !slices.Equal(ids, want) {
		t.Fatalf("fetch order %v,\nwant B's job %s first, then A's in order %v", ids, b, a)
	}
	// B has no backlog: 1; A's 20th job saw 19 ahead: 4, and moved A's
	// other waiting jobs there.
	if prios[0] != 1 || prios[1] != jobqueue.Priority(19) || prios[len(prios)-1] != jobqueue.Priority(19) {
		t.Fatalf("priorities %v, want B at 1 and A's all at %d", prios, jobqueue.Priority(19))
	}
}

// TestFairOrderConcurrent: tenant A submits 50 jobs at once, as a tenant
// that starts to flood does; they all commit (no deadlock between the
// submissions reprioritizing A's jobs), all end in A's last band, and B's
// job, inserted after them, is still the next a worker takes.
func TestFairOrderConcurrent(t *testing.T) {
	t.Parallel()
	s := open(t, nil).(testStore)
	_, _, bs := floodThen(t, s, 50, true, 1)
	b := bs[0]
	ids, prios, err := s.riverOrder(t.Context())
	if err != nil {
		t.Fatalf("reading river_job: %v", err)
	}
	if len(ids) != 51 || ids[0] != b {
		t.Fatalf("fetch order %v (priorities %v), want B's job %s first of 51", ids, prios, b)
	}
	for i, p := range prios[1:] {
		if p != jobqueue.Priority(49) {
			t.Fatalf("A's job %s has priority %d, want all of A's at %d (priorities %v)", ids[i+1], p, jobqueue.Priority(49), prios)
		}
	}
}

// TestFairHeavyTenants: tenants A and B both have backlogs past the last
// band (20 and 30 jobs): they share it, first in, first out, and A's next
// job does not overtake B's for having the smaller backlog (a rule that
// let it starved the tenant that fell behind).
func TestFairHeavyTenants(t *testing.T) {
	t.Parallel()
	s := open(t, nil).(testStore)
	tenants, a, b := floodThen(t, s, 20, false, 30)
	j, _, err := s.CreateJob(t.Context(), storage.CreateJobParams{TenantID: tenants[0], Model: "m", KeySetID: "k", InputBlob: "a"})
	if err != nil {
		t.Fatalf("CreateJob of A: %v", err)
	}
	ids, prios, err := s.riverOrder(t.Context())
	if err != nil {
		t.Fatalf("reading river_job: %v", err)
	}
	want := append(append(slices.Clone(a), b...), j.ID)
	if !slices.Equal(ids, want) {
		t.Fatalf("fetch order %v (priorities %v),\nwant A's %v, B's %v, then A's %s", ids, prios, a, b, j.ID)
	}
	for _, p := range prios {
		if p != jobqueue.LowestPriority {
			t.Fatalf("priorities %v, want all %d", prios, jobqueue.LowestPriority)
		}
	}
}

// TestFairWorker runs a real worker with one slot on A's 20 jobs and B's
// one: B's runs first, then all of A's (a tenant alone is not starved),
// one of them after a failed first attempt (a retried job keeps its place
// in the queue and completes).
func TestFairWorker(t *testing.T) {
	t.Parallel()
	s := open(t, nil).(testStore)
	a, b := floodThenOne(t, s)
	ctx := t.Context()
	retried := a[2]
	var (
		mu    sync.Mutex
		order []hegate.JobID
		tries = map[hegate.JobID]int{}
		done  = make(chan struct{})
	)
	err := s.StartWorkers(ctx, storage.WorkerConfig{
		Concurrency: 1, MaxAttempts: 2,
		Handler: func(ctx context.Context, id hegate.JobID) error {
			mu.Lock()
			tries[id]++
			first := tries[id] == 1
			mu.Unlock()
			if _, err := s.StartJob(ctx, id); err != nil {
				return err
			}
			if id == retried && first {
				return errors.New("first attempt fails")
			}
			if _, err := s.CompleteJob(ctx, id, "r", 1); err != nil {
				return err
			}
			mu.Lock()
			order = append(order, id)
			if len(order) == len(a)+1 {
				close(done)
			}
			mu.Unlock()
			return nil
		},
	})
	if err != nil {
		t.Fatalf("StartWorkers: %v", err)
	}
	defer s.StopWorkers(context.Background())
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("after 60 s the worker finished %d of %d jobs: %v", len(order), len(a)+1, order)
	}
	mu.Lock()
	defer mu.Unlock()
	if order[0] != b {
		t.Fatalf("the worker ran %s first, want B's job %s (order %v)", order[0], b, order)
	}
	rest := slices.DeleteFunc(slices.Clone(order[1:]), func(id hegate.JobID) bool { return id == retried })
	if want := slices.DeleteFunc(slices.Clone(a), func(id hegate.JobID) bool { return id == retried }); !slices.Equal(rest, want) {
		t.Fatalf("A's jobs ran in order %v, want %v", rest, want)
	}
	if tries[retried] != 2 {
		t.Fatalf("the job that failed once ran %d times, want 2", tries[retried])
	}
	if ids, _, err := s.riverOrder(ctx); err != nil || len(ids) > 0 {
		t.Fatalf("River jobs still waiting after the run: %v, %v", ids, err)
	}
}

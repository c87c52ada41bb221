package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/client"
	"github.com/hegate/hegate/dp"
	"github.com/hegate/hegate/internal/pgtest"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/postgres"
)

// postgresStore opens a migrated PostgreSQL store in a fresh schema, or
// skips the test when PostgreSQL is not reachable (outside CI).
func postgresStore(t *testing.T) storage.Store {
	t.Helper()
	url, schema := pgtest.Schema(t, "hegate_gw_")
	ctx := context.Background()
	s, err := postgres.Open(ctx, postgres.Config{URL: url, Schema: schema, MaxConns: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// engines are the stores the budget tests run on.
var engines = []struct {
	name string
	open func(t *testing.T) storage.Store
}{{"sqlite", nil}, {"postgres", postgresStore}}

// queryCost is what one inference of the bundle's model costs, in units,
// rounded up exactly as the gateway rounds.
func (bd *bundle) queryCost(t *testing.T) int64 {
	t.Helper()
	rho, err := bd.model.Privacy().RhoAt(testSigma)
	if err != nil {
		t.Fatal(err)
	}
	units, err := dp.RhoUnitsCeil(rho)
	if err != nil {
		t.Fatal(err)
	}
	return int64(units)
}

// binaryInfer is the body and headers of an inference with the binary
// tensor extension.
func binaryInfer(t *testing.T, ksID string, ct []byte, idem string) ([]byte, http.Header) {
	t.Helper()
	elem := api.AppendBytesElement(nil, ct)
	body, hdr := inferBody(t, bytesInput(api.Parameters{api.ParamContentType: api.ContentTypeCiphertext, api.ParamKeySetID: ksID, api.ParamBinaryDataSize: len(elem)}), ct)
	if idem != "" {
		hdr.Set(api.HeaderIdempotencyKey, idem)
	}
	return body, hdr
}

func ledgerOf(t *testing.T, bd *bundle, tenant hegate.TenantID) []storage.LedgerEntry {
	t.Helper()
	es, err := bd.store.Ledger(bd.ctx, storage.LedgerQuery{TenantID: tenant, Limit: storage.MaxLedgerEntries})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func tenantOf(t *testing.T, bd *bundle, name string) hegate.TenantID {
	t.Helper()
	tn, err := bd.store.GetTenantByName(bd.ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return tn.ID
}

// TestBudgetConcurrentInferences sends 200 inferences at once against a
// budget that pays for exactly 57: 57 are accepted, 143 answer 429 with
// the budget-exhausted problem and Retry-After at the renewal; the ledger
// sums to what is reserved; replaying the 57 with their Idempotency-Keys
// charges nothing. On both engines.
func TestBudgetConcurrentInferences(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			var opts []setupOption
			opts = append(opts, withoutWorkers(), withoutLimits()) // 200 at once: the budget must refuse, not the rate limits
			if eng.open != nil {
				opts = append(opts, withStore(eng.open))
			}
			bd := setup(t, opts...)
			cost := bd.queryCost(t)
			const fits, requests = 57, 200
			tenant := tenantOf(t, bd, "tenant-a")
			if _, err := bd.store.SetBudget(bd.ctx, storage.SetBudgetParams{
				TenantID: tenant, Model: "tiny", Actor: "test", NoiseSigma: testSigma,
				Limit: storage.BudgetLimit{Capacity: fits * cost, Period: storage.BudgetMonthly, Epsilon: 1, Delta: 1e-5},
			}); err != nil {
				t.Fatal(err)
			}
			ksID := bd.upload(t, bd.a)
			_, ct := bd.input(t, bd.a, 1)
			codes := make([]int, requests)
			retry := make([]string, requests)
			var wg sync.WaitGroup
			for i := range requests {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body, hdr := binaryInfer(t, ksID, ct, fmt.Sprintf("key-%d", i))
					req, _ := http.NewRequestWithContext(bd.ctx, http.MethodPost, bd.ts.URL+"/v2/models/tiny/infer", bytes.NewReader(body))
					req.Header = hdr
					req.Header.Set("Authorization", "Bearer "+bd.a.secret)
					resp, err := bd.ts.Client().Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					defer resp.Body.Close()
					var p api.Problem
					if resp.StatusCode == http.StatusTooManyRequests {
						_ = json.NewDecoder(resp.Body).Decode(&p)
						if p.Type != api.ProblemBudgetExhausted {
							t.Errorf("429 of type %q, want %q", p.Type, api.ProblemBudgetExhausted)
						}
					}
					codes[i], retry[i] = resp.StatusCode, resp.Header.Get("Retry-After")
				}()
			}
			wg.Wait()
			accepted := map[int]bool{}
			count := map[int]int{}
			_, renews := storage.BudgetMonthly.Bounds(time.Now())
			for i, c := range codes {
				count[c]++
				switch c {
				case http.StatusAccepted:
					accepted[i] = true
				case http.StatusTooManyRequests:
					secs, err := strconv.Atoi(retry[i])
					if want := time.Until(renews).Seconds(); err != nil || math.Abs(float64(secs)-want) > 120 {
						t.Errorf("Retry-After %q, want about %.0f s (the renewal)", retry[i], want)
					}
				}
			}
			if count[http.StatusAccepted] != fits || count[http.StatusTooManyRequests] != requests-fits {
				t.Fatalf("statuses %v, want %d × 202 and %d × 429", count, fits, requests-fits)
			}
			usage := func() storage.BudgetUsage {
				u, err := bd.store.BudgetUsage(bd.ctx, tenant, "tiny", testBudget)
				if err != nil {
					t.Fatal(err)
				}
				return u
			}
			if u := usage(); u.Reserved != fits*cost || u.Spent != 0 || u.Left() != 0 {
				t.Fatalf("usage %+v, want %d reserved", u, fits*cost)
			}
			sum, reserves := int64(0), 0
			for _, e := range ledgerOf(t, bd, tenant) {
				if e.Kind == storage.LedgerReserve && e.Scope == storage.ScopeTenant {
					sum += e.Units
					reserves++
				}
			}
			if reserves != fits || sum != fits*cost {
				t.Fatalf("ledger: %d reserve entries summing to %d, want %d summing to %d", reserves, sum, fits, fits*cost)
			}
			// Replays of the accepted requests answer their jobs and charge nothing.
			for i := range accepted {
				body, hdr := binaryInfer(t, ksID, ct, fmt.Sprintf("key-%d", i))
				resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(body), hdr)
				if resp.StatusCode != http.StatusAccepted {
					b, _ := io.ReadAll(resp.Body)
					t.Fatalf("replay of key-%d: status %d: %s", i, resp.StatusCode, b)
				}
			}
			if u := usage(); u.Reserved != fits*cost {
				t.Fatalf("replays changed the reservation to %d", u.Reserved)
			}
			jobs, err := bd.store.ListJobs(bd.ctx, tenant, 1000)
			if err != nil || len(jobs) != fits {
				t.Fatalf("%d jobs (%v), want %d: a refused request must leave no job", len(jobs), err, fits)
			}
		})
	}
}

// TestBudgetSettlesOnRelease runs one inference to its result: the job is
// charged its cost, settled; the budget API shows the spend and what a
// query costs; the ledger has the reserve and the settle.
func TestBudgetSettlesOnRelease(t *testing.T) {
	bd := setup(t)
	cost := bd.queryCost(t)
	ksID := bd.upload(t, bd.a)
	x, ct := bd.input(t, bd.a, 2)
	res, jobID, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, ct, client.InferOptions{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	bd.checkResult(t, bd.a, x, res)
	j, err := bd.a.client.Job(bd.ctx, jobID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Privacy == nil || j.Privacy.State != storage.PrivacySettled || j.Privacy.NoiseSigma != testSigma {
		t.Fatalf("job privacy %+v, want settled with sigma %v", j.Privacy, testSigma)
	}
	b, err := bd.a.client.Budget(bd.ctx, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if !b.Default || b.SpentRho != j.Privacy.Rho || b.ReservedRho != "0" || b.Query == nil || b.Query.Rho != j.Privacy.Rho {
		t.Fatalf("budget %+v (query %+v), want the default with %s spent", b, b.Query, j.Privacy.Rho)
	}
	tenant := tenantOf(t, bd, "tenant-a")
	var kinds []string
	for _, e := range ledgerOf(t, bd, tenant) {
		if e.JobID == hegate.JobID(jobID) && e.Scope == storage.ScopeTenant {
			kinds = append(kinds, e.Kind)
			if e.Units != cost {
				t.Fatalf("ledger %s of %d units, want %d", e.Kind, e.Units, cost)
			}
		}
	}
	if fmt.Sprint(kinds) != "[settle reserve]" {
		t.Fatalf("ledger entries of the job %v, want settle then reserve (newest first)", kinds)
	}
	list, err := bd.a.client.Budgets(bd.ctx)
	if err != nil || len(list) != 1 || list[0].Model != "tiny" {
		t.Fatalf("budgets %+v, %v", list, err)
	}
	page, err := bd.a.client.Ledger(bd.ctx, "tiny", 0, 1)
	if err != nil || len(page.Entries) != 1 || page.Next == "" {
		t.Fatalf("ledger page %+v, %v: want one entry and a next link", page, err)
	}
	// The other tenant's budget is untouched and its ledger empty.
	if b, err := bd.b.client.Budget(bd.ctx, "tiny"); err != nil || b.SpentRho != "0" {
		t.Fatalf("tenant b budget %+v, %v", b, err)
	}
	if page, err := bd.b.client.Ledger(bd.ctx, "", 0, 0); err != nil || len(page.Entries) != 0 {
		t.Fatalf("tenant b ledger %+v, %v", page, err)
	}
}

// TestBudgetRefunds checks that a job that ends without a release gives
// its reservation back: cancelled while queued, or failed because its key
// set was deleted.
func TestBudgetRefunds(t *testing.T) {
	bd := setup(t, withoutWorkers())
	tenant := tenantOf(t, bd, "tenant-a")
	ksID := bd.upload(t, bd.a)
	submit := func(seed uint64) string {
		_, ct := bd.input(t, bd.a, seed)
		_, jobID, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, ct, client.InferOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return jobID
	}
	cancelled := submit(3)
	failed := submit(4)
	if _, err := bd.a.client.CancelJob(bd.ctx, cancelled); err != nil {
		t.Fatal(err)
	}
	if err := bd.a.client.DeleteKeySet(bd.ctx, ksID); err != nil {
		t.Fatal(err)
	}
	if err := bd.runner.Handle(bd.ctx, hegate.JobID(failed)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{cancelled, failed} {
		j, err := bd.store.GetJob(bd.ctx, tenant, hegate.JobID(id))
		if err != nil {
			t.Fatal(err)
		}
		if !j.Status.Terminal() || j.Status == storage.JobSucceeded || j.PrivacyState != storage.PrivacyRefunded {
			t.Fatalf("job %s: %s, privacy %q; want failed or cancelled and refunded", id, j.Status, j.PrivacyState)
		}
	}
	u, err := bd.store.BudgetUsage(bd.ctx, tenant, "tiny", testBudget)
	if err != nil || u.Spent != 0 || u.Reserved != 0 {
		t.Fatalf("usage %+v, %v: want nothing spent or reserved", u, err)
	}
}

// TestBudgetRetryChargesOnce is a worker killed mid-job: the first attempt
// started and never finished, the job runs again, and it is charged once.
func TestBudgetRetryChargesOnce(t *testing.T) {
	bd := setup(t, withoutWorkers())
	cost := bd.queryCost(t)
	tenant := tenantOf(t, bd, "tenant-a")
	ksID := bd.upload(t, bd.a)
	_, ct := bd.input(t, bd.a, 5)
	_, jobID, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, ct, client.InferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := hegate.JobID(jobID)
	if _, err := bd.store.StartJob(bd.ctx, id); err != nil { // the attempt that was killed
		t.Fatal(err)
	}
	if err := bd.runner.Handle(bd.ctx, id); err != nil {
		t.Fatal(err)
	}
	j, err := bd.store.GetJob(bd.ctx, tenant, id)
	if err != nil || j.Status != storage.JobSucceeded || j.Attempts != 2 || j.PrivacyState != storage.PrivacySettled {
		t.Fatalf("job %+v, %v: want succeeded on attempt 2, settled", j, err)
	}
	u, _ := bd.store.BudgetUsage(bd.ctx, tenant, "tiny", testBudget)
	settles := 0
	for _, e := range ledgerOf(t, bd, tenant) {
		if e.Kind == storage.LedgerSettle && e.JobID == id {
			settles++
		}
	}
	if u.Spent != cost || u.Reserved != 0 || settles != 1 {
		t.Fatalf("spent %d, reserved %d, %d settles; want %d, 0, 1", u.Spent, u.Reserved, settles, cost)
	}
}

// TestBudgetRefusals checks 403 without any budget, 429 once spent, and
// the admin API's rules.
func TestBudgetRefusals(t *testing.T) {
	t.Run("fail/no-budget-no-default", func(t *testing.T) {
		bd := setup(t, withoutWorkers(), withConfig(func(c *Config) { c.DefaultBudget = storage.BudgetLimit{} }))
		ksID := bd.upload(t, bd.a)
		_, ct := bd.input(t, bd.a, 6)
		body, hdr := binaryInfer(t, ksID, ct, "")
		wantProblem(t, bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(body), hdr), http.StatusForbidden, "no privacy budget is set")
	})
	t.Run("fail/exhausted-never-renews", func(t *testing.T) {
		var cost int64
		bd := setup(t, withoutWorkers(), withConfig(func(c *Config) {
			rho, _ := c.Models[0].Privacy().RhoAt(testSigma)
			units, _ := dp.RhoUnitsCeil(rho)
			cost = int64(units)
			c.DefaultBudget = storage.BudgetLimit{Capacity: cost + cost/2, Period: storage.BudgetNever, Epsilon: 1, Delta: 1e-5}
		}))
		ksID := bd.upload(t, bd.a)
		_, ct := bd.input(t, bd.a, 7)
		if _, _, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, ct, client.InferOptions{}); err != nil {
			t.Fatal(err)
		}
		body, hdr := binaryInfer(t, ksID, ct, "")
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(body), hdr)
		p := wantProblem(t, resp, http.StatusTooManyRequests, "privacy budget")
		if p.Type != api.ProblemBudgetExhausted || resp.Header.Get("Retry-After") != "" {
			t.Fatalf("problem %q, Retry-After %q: want budget-exhausted and none (the budget never renews)", p.Type, resp.Header.Get("Retry-After"))
		}
	})
	t.Run("fail/tenant-set-budget-on-a-built-in", func(t *testing.T) {
		// A row written through the API for the tenant's own model of a
		// name that a built-in now has: never used for the built-in.
		bd := setup(t, withoutWorkers())
		if _, err := bd.store.SetBudget(bd.ctx, storage.SetBudgetParams{
			TenantID: tenantOf(t, bd, "tenant-a"), Model: "tiny", Actor: "api-key:key_x", NoiseSigma: 1e-9,
			Limit: storage.BudgetLimit{Capacity: math.MaxInt64 / 4, Period: storage.BudgetNever, Epsilon: 1e9, Delta: 1e-5},
		}); err != nil {
			t.Fatal(err)
		}
		ksID := bd.upload(t, bd.a)
		_, ct := bd.input(t, bd.a, 8)
		body, hdr := binaryInfer(t, ksID, ct, "")
		wantProblem(t, bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(body), hdr), http.StatusForbidden, "built-in model")
	})
	t.Run("fail/one-answer-costs-more-than-the-budget", func(t *testing.T) {
		bd := setup(t, withoutWorkers(), withConfig(func(c *Config) {
			c.DefaultBudget = storage.BudgetLimit{Capacity: 1, Period: storage.BudgetMonthly, Epsilon: 1e-9, Delta: 1e-5}
		}))
		ksID := bd.upload(t, bd.a)
		_, ct := bd.input(t, bd.a, 9)
		body, hdr := binaryInfer(t, ksID, ct, "")
		resp := bd.call(t, http.MethodPost, "/v2/models/tiny/infer", bd.a.secret, bytes.NewReader(body), hdr)
		wantProblem(t, resp, http.StatusForbidden, "more than the whole budget")
	})
	t.Run("fail/runner-refuses-an-unpaid-job", func(t *testing.T) {
		bd := setup(t, withoutWorkers())
		tenant := tenantOf(t, bd, "tenant-a")
		ksID := bd.upload(t, bd.a)
		_, ct := bd.input(t, bd.a, 10)
		blob, err := bd.blobs.Put(bd.ctx, bytes.NewReader(ct), int64(len(ct)))
		if err != nil {
			t.Fatal(err)
		}
		// A job that bypassed the gateway (or predates budgets): no reservation.
		job, _, err := bd.store.CreateJob(bd.ctx, storage.CreateJobParams{TenantID: tenant, Model: "tiny", KeySetID: hegate.KeySetID(ksID), InputBlob: blob.Key, InputBytes: blob.Size, NoiseSigma: testSigma})
		if err != nil {
			t.Fatal(err)
		}
		if err := bd.runner.Handle(bd.ctx, job.ID); err != nil {
			t.Fatal(err)
		}
		j, err := bd.store.GetJob(bd.ctx, tenant, job.ID)
		if err != nil || j.Status != storage.JobFailed || j.ResultBlob != "" {
			t.Fatalf("unpaid job: %+v, %v; want failed without a result", j, err)
		}
	})
	t.Run("fail/admin-api", func(t *testing.T) {
		bd := setup(t, withoutWorkers())
		tenant := tenantOf(t, bd, "tenant-a")
		clientKey, err := CreateAPIKey(bd.ctx, bd.store, tenant, "device", storage.RoleClient)
		if err != nil {
			t.Fatal(err)
		}
		put := func(key, model, body string) *http.Response {
			return bd.call(t, http.MethodPut, "/v1/budgets/"+model, key, bytes.NewReader([]byte(body)), http.Header{"Content-Type": {"application/json"}})
		}
		good := `{"epsilon": 2, "delta": 1e-6, "period": "week", "reason": "pilot"}`
		wantProblem(t, put(bd.a.secret, "mine", good), http.StatusNotFound, "no model mine")
		// An uploaded model (compiling is enough: no workers here).
		body := graphJSON(t, testGraph("mine", 3))
		if _, err := bd.a.client.UploadModel(bd.ctx, client.ModelUpload{Name: "mine", ContentType: api.ContentTypeIRJSON, Options: testUploadOptions}, bytes.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
		clientCl, err := client.New(bd.ts.URL, clientKey, client.WithHTTPClient(bd.ts.Client()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := clientCl.UploadModel(bd.ctx, client.ModelUpload{Name: "theirs", ContentType: api.ContentTypeIRJSON, Options: testUploadOptions}, bytes.NewReader(body), int64(len(body))); client.StatusOf(err) != http.StatusForbidden {
			t.Fatalf("a client key uploaded a model: %v", err)
		}
		if err := clientCl.DeleteModel(bd.ctx, "mine"); client.StatusOf(err) != http.StatusForbidden {
			t.Fatalf("a client key deleted a model: %v", err)
		}
		if _, err := clientCl.Ledger(bd.ctx, "", 0, 0); client.StatusOf(err) != http.StatusForbidden {
			t.Fatalf("a client key read the ledger: %v", err)
		}
		wantProblem(t, put(clientKey, "mine", good), http.StatusForbidden, "admin API key")
		wantProblem(t, put(bd.a.secret, "mine", `{"epsilon": 2, "delta": 1e-6, "period": "week", "reason": "bad\u0000"}`), http.StatusBadRequest, "control")
		wantProblem(t, put(bd.a.secret, "tiny", good), http.StatusForbidden, "built in")
		wantProblem(t, put(bd.a.secret, "mine", `{"epsilon": 2, "delta": 1e-6, "period": "fortnight"}`), http.StatusBadRequest, "period")
		wantProblem(t, put(bd.a.secret, "mine", `{"epsilon": -1, "delta": 1e-6, "period": "week"}`), http.StatusBadRequest, "epsilon")
		wantProblem(t, put(bd.a.secret, "mine", `{"epsilon": 2, "delta": 1e-6, "period": "week", "extra": 1}`), http.StatusBadRequest, "unknown field")
		wantProblem(t, put(bd.a.secret, "Bad Name", good), http.StatusBadRequest, "model name")
		resp := put(bd.a.secret, "mine", good)
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("admin PUT: %d %s", resp.StatusCode, b)
		}
		var b api.Budget
		if err := json.NewDecoder(resp.Body).Decode(&b); err != nil || b.Default || b.Epsilon != 2 || b.Period != "week" || b.RenewsAt == nil {
			t.Fatalf("budget %+v, %v", b, err)
		}
		got, err := bd.store.GetBudget(bd.ctx, tenant, "mine")
		if err != nil || got.UpdatedBy == "" || got.Capacity <= 0 {
			t.Fatalf("stored budget %+v, %v", got, err)
		}
		if _, err := bd.store.GetBudget(bd.ctx, tenantOf(t, bd, "tenant-b"), "mine"); err == nil {
			t.Fatal("the budget is visible to the other tenant")
		}
		del := func(key string) *http.Response {
			return bd.call(t, http.MethodDelete, "/v1/budgets/mine?reason=done", key, nil, nil)
		}
		wantProblem(t, del(clientKey), http.StatusForbidden, "admin")
		wantProblem(t, bd.call(t, http.MethodDelete, "/v1/budgets/mine?reason=%00", bd.a.secret, nil, nil), http.StatusBadRequest, "control")
		if resp := del(bd.a.secret); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE: %d", resp.StatusCode)
		}
		wantProblem(t, del(bd.a.secret), http.StatusNotFound, "no budget")
		kinds := map[string]int{}
		for _, e := range ledgerOf(t, bd, tenant) {
			kinds[e.Kind]++
		}
		if kinds[storage.LedgerSet] != 1 || kinds[storage.LedgerDelete] != 1 {
			t.Fatalf("ledger kinds %v, want one set and one delete", kinds)
		}
		wantProblem(t, bd.call(t, http.MethodGet, "/v1/budget/ledger?limit=0", bd.a.secret, nil, nil), http.StatusBadRequest, "limit")
	})
}

// TestBudgetPeriodChangeKeepsTheSpend changes a budget's period while it
// has reservations: they are carried into the new period, so the change
// hands out nothing new.
func TestBudgetPeriodChangeKeepsTheSpend(t *testing.T) {
	bd := setup(t, withoutWorkers())
	cost := bd.queryCost(t)
	tenant := tenantOf(t, bd, "tenant-a")
	set := func(period storage.BudgetPeriod) {
		t.Helper()
		if _, err := service.SetBudgetCarrying(bd.ctx, bd.store, storage.SetBudgetParams{
			TenantID: tenant, Model: "tiny", Actor: "test",
			Limit: storage.BudgetLimit{Capacity: 3 * cost, Period: period, Epsilon: 1, Delta: 1e-5},
		}, testBudget); err != nil {
			t.Fatal(err)
		}
	}
	set(storage.BudgetDaily)
	ksID := bd.upload(t, bd.a)
	infer := func(seed uint64) error {
		_, ct := bd.input(t, bd.a, seed)
		_, _, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, ct, client.InferOptions{})
		return err
	}
	for i := range 2 {
		if err := infer(uint64(20 + i)); err != nil {
			t.Fatal(err)
		}
	}
	set(storage.BudgetNever)
	if err := infer(30); err != nil {
		t.Fatalf("the third query fits: %v", err)
	}
	if err := infer(31); client.StatusOf(err) != http.StatusTooManyRequests {
		t.Fatalf("a fourth query after the period change: %v, want 429 (the change must not reset the spend)", err)
	}
}

// TestReleasedNoiseThroughTheGateway runs 1,000 inferences through HTTP,
// the job queue and a worker, decrypts each, and checks that the outputs
// minus the float64 reference have mean 0 and the standard deviation the
// job was charged for (within 5 standard errors).
func TestReleasedNoiseThroughTheGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 encrypted inferences")
	}
	// 1,000 inferences from one key, faster than its rate limit.
	bd := setup(t, withoutLimits())
	const sigma = 0.1 // the tenant's noise, cheaper than the model's
	if _, err := bd.store.SetBudget(bd.ctx, storage.SetBudgetParams{
		TenantID: tenantOf(t, bd, "tenant-a"), Model: "tiny", Actor: "test", NoiseSigma: sigma,
		Limit: storage.BudgetLimit{Capacity: math.MaxInt64 / 2, Period: storage.BudgetNever, Epsilon: 1e9, Delta: 1e-5},
	}); err != nil {
		t.Fatal(err)
	}
	ksID := bd.upload(t, bd.a)
	const queries = 1000
	var sum, sum2 float64
	n := 0
	for q := range queries {
		x, ct := bd.input(t, bd.a, uint64(1000+q))
		res, jobID, err := bd.a.client.Infer(bd.ctx, "tiny", ksID, ct, client.InferOptions{Wait: true})
		if err != nil {
			t.Fatal(err)
		}
		if q == 0 {
			j, err := bd.a.client.Job(bd.ctx, jobID)
			if err != nil || j.Privacy == nil || j.Privacy.NoiseSigma != sigma {
				t.Fatalf("job %+v, %v: want noise sigma %v", j, err, sigma)
			}
		}
		got, err := bd.model.Decrypt(bd.a.sk, res)
		if err != nil {
			t.Fatal(err)
		}
		want, err := bd.graph.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			d := got[i] - want[i]
			sum += d
			sum2 += d * d
			n++
		}
	}
	mean := sum / float64(n)
	std := math.Sqrt(sum2/float64(n) - mean*mean)
	if tol := 5 * sigma / math.Sqrt(float64(n)); math.Abs(mean) > tol {
		t.Errorf("mean noise %.6f over %d outputs, want 0 ± %.6f", mean, n, tol)
	}
	if tol := 5 / math.Sqrt(2*float64(n)); math.Abs(std/sigma-1) > tol {
		t.Errorf("noise standard deviation %.6f over %d outputs, want %v ± %.1f%%", std, n, sigma, 100*tol)
	}
	t.Logf("%d inferences, %d outputs: noise mean %.6f, std %.6f (sigma %v)", queries, n, mean, std, sigma)
}

// TestJobIDWithNULIsNotFound is the issue-9 reproduction: a NUL in a job id
// answered 500 on PostgreSQL (SQLSTATE 22021). It is 404 on both engines.
func TestJobIDWithNULIsNotFound(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			var opts []setupOption
			opts = append(opts, withoutWorkers())
			if eng.open != nil {
				opts = append(opts, withStore(eng.open))
			}
			bd := setup(t, opts...)
			for path, status := range map[string]int{
				"/v1/jobs/job_%00": 404, "/v1/jobs/job_%00/result": 404, "/v1/jobs/job_%C3%28": 404,
				"/v1/keys/%00": 400, "/v1/models/x%00": 404, "/v1/budget/x%00": 400, "/v2/models/x%00": 404, "/v1/models/x%00/versions/1": 404, "/v2/models/x%00/versions/1": 404,
			} {
				resp := bd.call(t, http.MethodGet, path, bd.a.secret, nil, nil)
				if resp.StatusCode != status {
					t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, status)
				}
			}
		})
	}
}

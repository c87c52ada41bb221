package web

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// The overview: whether the gateway serves, the jobs of the last minutes,
// the privacy budget left per model and the devices. Every role sees it.

const (
	// overviewWindow is how far back the jobs are counted, by minute.
	overviewWindow = 15
	// overviewMaxJobs bounds the jobs read.
	overviewMaxJobs = 500
)

type overviewData struct {
	Serving bool
	Health  string // why not, when the health check says so
	Jobs    jobsSummary
	Budgets []overviewBudget
	// BudgetError is why the budgets are missing ("" when they are not).
	BudgetError string
	Devices     deviceSummary
	DeviceError string
}

type jobsSummary struct {
	Minutes int
	Total   int
	// AtLeast: more jobs than overviewMaxJobs were created in the window,
	// and the counts are of the newest of them.
	AtLeast  bool
	ByStatus []statusCount
	PerMin   []minuteCount
	Chart    chartIsland
	Error    string
}

type statusCount struct {
	Status string
	Class  string
	Count  int
}

type minuteCount struct {
	At    string
	Count int
}

type overviewBudget struct {
	Model    hegate.ModelID
	Left     string
	Capacity string
	Percent  string
	EpsOK    bool
	EpsSpent string
	EpsLeft  string
	Period   string
}

type deviceSummary struct {
	Total, Active, Revoked int
	Attestation            []statusCount
}

func (c *Console) overviewPage() page {
	return page{path: Prefix + "/", get: c.overview}
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := principal(r)
	data := overviewData{Serving: true}
	if err := c.health(ctx); err != nil {
		data.Serving = false
		data.Health = hegate.DetailOf(err)
		c.log.WarnContext(ctx, "console: the gateway reports it cannot serve", "error", err.Error())
	}
	data.Jobs = c.jobsSummary(ctx, p)
	if sts, err := c.svc.Budgets(ctx, p); err != nil {
		data.BudgetError = errText(err)
	} else {
		for _, st := range sts {
			u := st.Usage
			b := overviewBudget{Model: u.Model, Left: rhoText(u.Left()), Capacity: rhoText(u.Limit.Capacity), Period: string(u.Limit.Period)}
			if u.Limit.Capacity > 0 {
				b.Percent = fmt.Sprintf("%.0f%%", 100*float64(u.Left())/float64(u.Limit.Capacity))
			}
			if spent, left, ok := st.SpentEpsilon(); ok {
				b.EpsOK, b.EpsSpent, b.EpsLeft = true, fmtFloat(spent), fmtFloat(left)
			}
			data.Budgets = append(data.Budgets, b)
		}
	}
	if ds, err := c.svc.ListDevices(ctx, p); err != nil {
		data.DeviceError = errText(err)
	} else {
		data.Devices = deviceSummaryOf(ds)
	}
	c.render(w, r, http.StatusOK, "overview", frame(r, "Overview", "overview", data, doneFlash(w, r)...))
}

// jobsSummary counts the jobs created in the last overviewWindow minutes
// (the current one included), reading at most overviewMaxJobs of them.
func (c *Console) jobsSummary(ctx context.Context, p service.Principal) jobsSummary {
	now := c.svc.Now().UTC()
	start := now.Truncate(time.Minute).Add(-(overviewWindow - 1) * time.Minute)
	s := jobsSummary{Minutes: overviewWindow}
	perMin := make([]int, overviewWindow)
	byStatus := map[storage.JobStatus]int{}
	var before hegate.JobID
	read := 0
scan:
	for read < overviewMaxJobs {
		jobs, next, err := c.svc.JobsPage(ctx, p, storage.JobFilter{Before: before, Limit: min(storage.MaxPageLimit, overviewMaxJobs-read)})
		if err != nil {
			s.Error = errText(err)
			return s
		}
		for _, j := range jobs {
			read++
			if j.CreatedAt.Before(start) {
				break scan
			}
			i := min(int(j.CreatedAt.Sub(start)/time.Minute), overviewWindow-1)
			perMin[i]++
			byStatus[j.Status]++
			s.Total++
		}
		if next == "" {
			break
		}
		if read >= overviewMaxJobs {
			s.AtLeast = true
			break
		}
		before = next
	}
	for _, st := range []storage.JobStatus{storage.JobQueued, storage.JobRunning, storage.JobSucceeded, storage.JobFailed, storage.JobCancelled} {
		s.ByStatus = append(s.ByStatus, statusCount{Status: string(st), Class: jobStatusClass(st), Count: byStatus[st]})
	}
	s.Chart = chartIsland{Label: "Jobs per minute", Step: true, XLabel: "Time", YLabel: "jobs"}
	for i, n := range perMin {
		at := start.Add(time.Duration(i) * time.Minute)
		s.PerMin = append(s.PerMin, minuteCount{At: at.Format("15:04"), Count: n})
		s.Chart.X = append(s.Chart.X, at.Unix())
		s.Chart.Y = append(s.Chart.Y, float64(n))
	}
	// The last minute's step ends with it.
	s.Chart.X = append(s.Chart.X, start.Add(overviewWindow*time.Minute).Unix())
	s.Chart.Y = append(s.Chart.Y, float64(perMin[overviewWindow-1]))
	return s
}

func jobStatusClass(st storage.JobStatus) string {
	switch st {
	case storage.JobSucceeded:
		return "ok"
	case storage.JobFailed:
		return "danger"
	case storage.JobCancelled:
		return "warning"
	}
	return "neutral"
}

func deviceSummaryOf(ds []storage.Device) deviceSummary {
	var s deviceSummary
	att := map[string]int{}
	for _, d := range ds {
		s.Total++
		if d.Status == storage.DeviceRevoked {
			s.Revoked++
		} else {
			s.Active++
		}
		st := d.AttestationStatus
		if st == "" {
			st = "none"
		}
		att[st]++
	}
	for st, n := range att {
		class := "warning"
		if st == "affirming" {
			class = "ok"
		}
		s.Attestation = append(s.Attestation, statusCount{Status: st, Class: class, Count: n})
	}
	sort.Slice(s.Attestation, func(i, j int) bool { return s.Attestation[i].Status < s.Attestation[j].Status })
	return s
}

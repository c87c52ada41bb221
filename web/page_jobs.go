package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// The jobs page: the tenant's inference jobs, filtered by status and
// model, 50 a page, whose table refreshes itself every 2 s (htmx) so that
// a queued job turns succeeded without a reload; and one job's page, which
// polls itself until the job is final, with a cancel form while it is
// queued.

// jobsPageSize is how many jobs a page lists.
const jobsPageSize = 50

type jobsData struct {
	Filter   jobsFilter
	Statuses []string
	Errors   map[string]string
	Table    jobsTable
}

type jobsFilter struct {
	Status string
	Model  string
	Before string
}

// values is the filter as a query, without the cursor.
func (f jobsFilter) values() url.Values { return queryOf("status", f.Status, "model", f.Model) }

// jobsTable is the fragment that htmx refreshes.
type jobsTable struct {
	Rows []jobRow
	// Self is the fragment's own URL (the same filter and cursor).
	Self string
	// Live says whether the fragment keeps polling: on the newest page
	// (new jobs appear there), or while a job listed is not final.
	Live bool
	// Pager links the newest page and the next older one.
	Pager cursorPager
	// Filtered says a filter is set (for the empty-table message).
	Filtered bool
}

type jobRow struct {
	ID       string
	Model    string
	Status   string
	Badge    string // the badge class of the status
	Device   string // "" for a job created with an API key
	Created  string
	Duration string
	Cost     string
}

var jobsStatuses = []string{
	string(storage.JobQueued), string(storage.JobRunning), string(storage.JobSucceeded), string(storage.JobFailed), string(storage.JobCancelled),
}

func (c *Console) jobsPage() page {
	return page{
		path: Prefix + "/jobs",
		get:  c.jobs,
		gets: map[string]http.HandlerFunc{
			"/table":      c.jobsTable,
			"/{id}":       c.job,
			"/{id}/panel": c.jobPanel,
		},
		posts: map[string]http.HandlerFunc{
			"/{id}/cancel": c.cancelJob,
		},
	}
}

func jobsFilterOf(r *http.Request) jobsFilter {
	q := r.URL.Query()
	return jobsFilter{Status: strings.TrimSpace(q.Get("status")), Model: strings.TrimSpace(q.Get("model")), Before: strings.TrimSpace(q.Get("before"))}
}

// loadJobs reads the page of jobs f selects; a filter the service
// refuses is told in errs, any other failure in err.
func (c *Console) loadJobs(r *http.Request, f jobsFilter) (jobsTable, map[string]string, error) {
	jobs, next, err := c.svc.JobsPage(r.Context(), principal(r), storage.JobFilter{
		Status: storage.JobStatus(f.Status), Model: hegate.ModelID(f.Model), Before: hegate.JobID(f.Before), Limit: jobsPageSize,
	})
	if err != nil {
		if fe, ok := fieldErrors(err); ok {
			return jobsTable{}, fe, nil
		}
		return jobsTable{}, nil, err
	}
	now := c.svc.Now()
	t := jobsTable{
		Self: Prefix + "/jobs/table", Live: f.Before == "", Filtered: f.Status != "" || f.Model != "",
		Pager: newCursorPager("Pages of jobs", Prefix+"/jobs", f.values(), f.Before, string(next)),
	}
	if q := cursorQuery(f.values(), f.Before); q != "" {
		t.Self += "?" + q
	}
	for _, j := range jobs {
		if !j.Status.Terminal() {
			t.Live = true
		}
		t.Rows = append(t.Rows, jobRowOf(now, j))
	}
	return t, nil, nil
}

func jobRowOf(now time.Time, j storage.Job) jobRow {
	row := jobRow{
		ID: string(j.ID), Model: jobModelAt(j), Status: string(j.Status), Badge: jobBadge(j.Status),
		Device: string(j.DeviceID), Created: j.CreatedAt.UTC().Format("2006-01-02 15:04:05"),
		Duration: jobDuration(now, j), Cost: jobRho(j.PrivacyUnits),
	}
	return row
}

func (c *Console) jobs(w http.ResponseWriter, r *http.Request) {
	f := jobsFilterOf(r)
	t, errs, err := c.loadJobs(r, f)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if errs != nil {
		status = http.StatusUnprocessableEntity
	}
	data := jobsData{Filter: f, Statuses: jobsStatuses, Errors: errs, Table: t}
	if data.Errors == nil {
		data.Errors = map[string]string{}
	}
	c.render(w, r, status, "jobs", frame(r, "Jobs", "jobs", data, doneFlash(w, r)...))
}

// jobsTable is the table alone, for htmx to swap in.
func (c *Console) jobsTable(w http.ResponseWriter, r *http.Request) {
	t, errs, err := c.loadJobs(r, jobsFilterOf(r))
	if err == nil && errs != nil {
		for _, text := range errs {
			err = hegate.E("jobs.list", hegate.KindInvalid, nil, "%s", text)
		}
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.fragment(w, r, "jobs", "jobs-table", t)
}

// jobView is the data of a job's page and of its panel.
type jobView struct {
	Job          storage.Job
	Model        string
	Status       string
	Badge        string
	Terminal     bool
	Device       string
	Created      string
	Started      string
	Finished     string
	Duration     string
	Cost         string
	BlobsExpired string
	// CanCancel: the job is queued and the user may change things.
	CanCancel bool
}

func (c *Console) loadJob(r *http.Request) (jobView, error) {
	p := principal(r)
	j, err := c.svc.GetJob(r.Context(), p, hegate.JobID(chi.URLParam(r, "id")))
	if err != nil {
		return jobView{}, err
	}
	now := c.svc.Now()
	v := jobView{
		Job: j, Model: jobModelAt(j), Status: string(j.Status), Badge: jobBadge(j.Status), Terminal: j.Status.Terminal(),
		Device: "none (an API key)", Created: jobTime(&j.CreatedAt), Started: jobTime(j.StartedAt), Finished: jobTime(j.FinishedAt),
		Duration: jobDuration(now, j), Cost: jobRho(j.PrivacyUnits), BlobsExpired: jobTime(j.BlobsExpiredAt),
		CanCancel: j.Status == storage.JobQueued && canEdit(p.Role),
	}
	if j.DeviceID != "" {
		v.Device = string(j.DeviceID)
	}
	return v, nil
}

func (c *Console) job(w http.ResponseWriter, r *http.Request) {
	v, err := c.loadJob(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "job", frame(r, "Job "+string(v.Job.ID), "jobs", v, doneFlash(w, r)...))
}

// jobPanel is the job's facts alone, which the page polls.
func (c *Console) jobPanel(w http.ResponseWriter, r *http.Request) {
	v, err := c.loadJob(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.fragment(w, r, "job", "job-poll", v)
}

func (c *Console) cancelJob(w http.ResponseWriter, r *http.Request) {
	j, err := c.svc.CancelJob(r.Context(), principal(r), hegate.JobID(chi.URLParam(r, "id")))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	seeOther(w, r, Prefix+"/jobs/"+url.PathEscape(string(j.ID)), "Job "+string(j.ID)+" is cancelled: its privacy reservation is given back.")
}

// jobModelAt is "model@version", or the model alone for a built-in one.
func jobModelAt(j storage.Job) string {
	if j.ModelVersion == 0 {
		return string(j.Model)
	}
	return string(j.Model) + "@" + strconv.Itoa(j.ModelVersion)
}

func jobBadge(s storage.JobStatus) string {
	switch s {
	case storage.JobSucceeded:
		return "ok"
	case storage.JobFailed:
		return "danger"
	}
	return "neutral"
}

// jobDuration is how long the job ran (so far, while running); "" before
// it started.
func jobDuration(now time.Time, j storage.Job) string {
	if j.StartedAt == nil {
		return ""
	}
	end := now
	if j.FinishedAt != nil {
		end = *j.FinishedAt
	}
	d := end.Sub(*j.StartedAt)
	switch {
	case d < 0:
		d = 0
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	}
	return d.Round(time.Second).String()
}

// jobRho formats a privacy cost in units of 1e-9 jobRho.
func jobRho(units int64) string {
	if units == 0 {
		return "0"
	}
	return strconv.FormatFloat(float64(units)/1e9, 'g', 6, 64)
}

func jobTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// The audit log page: the tenant's audit events, newest first, filtered by
// actor and action prefix, 50 a page.

// auditPageSize is how many events a page lists.
const auditPageSize = 50

type auditData struct {
	Filter auditFilter
	Rows   []auditRow
	// Pager links the newest page and the next older one.
	Pager cursorPager
}

type auditFilter struct {
	Actor  string
	Action string
	Before int64
}

// values is the filter as a query, without the cursor.
func (f auditFilter) values() url.Values { return queryOf("actor", f.Actor, "action", f.Action) }

// auditCursor is an event number as a page cursor, "" for none (0).
func auditCursor(id int64) string {
	if id <= 0 {
		return ""
	}
	return strconv.FormatInt(id, 10)
}

type auditRow struct {
	ID    int64
	When  string
	Actor string
	// ActorName is the console user's name when the actor is one.
	ActorName string
	// ActorFilter is the URL that lists this actor's events.
	ActorFilter string
	Action      string
	Object      string
	Outcome     string
	Badge       string
	From        string
	RequestID   string
	Detail      string // indented JSON, "" for none
}

func (c *Console) auditPage() page {
	return page{path: Prefix + "/audit", get: c.audit}
}

func (c *Console) audit(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	q := r.URL.Query()
	f := auditFilter{Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action"))}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			c.fail(w, r, hegate.E("audit.list", hegate.KindInvalid, nil, "the page cursor is not an event number"))
			return
		}
		f.Before = n
	}
	evs, next, err := c.svc.ListAudit(r.Context(), p, service.AuditQuery{Actor: f.Actor, Action: f.Action, Before: f.Before, Limit: auditPageSize})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	names, err := c.auditActorNames(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data := auditData{Filter: f, Pager: newCursorPager("Pages of the audit log", Prefix+"/audit", f.values(), auditCursor(f.Before), auditCursor(next))}
	for _, ev := range evs {
		data.Rows = append(data.Rows, auditRowOf(ev, names))
	}
	c.render(w, r, http.StatusOK, "audit", frame(r, "Audit log", "audit", data, doneFlash(w, r)...))
}

func auditRowOf(ev storage.AuditEvent, names map[string]string) auditRow {
	row := auditRow{
		ID: ev.ID, When: ev.At.UTC().Format("2006-01-02 15:04:05"), Actor: ev.Actor, ActorName: names[ev.Actor],
		ActorFilter: Prefix + "/audit?" + auditFilter{Actor: ev.Actor}.values().Encode(),
		Action:      ev.Action, Object: ev.Object, Outcome: ev.Outcome, From: ev.From, RequestID: ev.RequestID,
		Detail: prettyJSON(ev.Detail),
	}
	switch ev.Outcome {
	case storage.AuditOK:
		row.Badge = "ok"
	case storage.AuditDenied:
		row.Badge = "warning"
	case storage.AuditFailed:
		row.Badge = "danger"
	default:
		row.Badge = "neutral"
	}
	return row
}

// auditActorNames maps the actor of each of the tenant's console users
// ("user:usr_...") to the user's name.
func (c *Console) auditActorNames(r *http.Request) (map[string]string, error) {
	users, err := c.svc.ListUsers(r.Context(), principal(r))
	if err != nil {
		return nil, err
	}
	names := make(map[string]string, len(users))
	for _, u := range users {
		names[service.Principal{User: u.ID}.Actor()] = u.Name
	}
	return names, nil
}

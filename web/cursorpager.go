package web

import "net/url"

// cursorPager is the navigation of a list paged by a cursor, newest first
// (the audit log, the jobs), which the partial "cursorpager" draws: the
// link to the newest page, "" on it, and the link to the next older page,
// "" on the last.
type cursorPager struct {
	Label  string // the navigation's accessible name
	Newest string
	Older  string
}

// newCursorPager links the pages of the list at path: filter is the list's
// query without the cursor, before the cursor of this page ("" on the
// newest) and next that of the next older page ("" on the last).
func newCursorPager(label, path string, filter url.Values, before, next string) cursorPager {
	pg := cursorPager{Label: label}
	if next != "" {
		pg.Older = path + "?" + cursorQuery(filter, next)
	}
	if before != "" {
		pg.Newest = path
		if q := filter.Encode(); q != "" {
			pg.Newest += "?" + q
		}
	}
	return pg
}

// cursorQuery is the query string of filter and the cursor before (none
// when "").
func cursorQuery(filter url.Values, before string) string {
	q := url.Values{}
	for k, vs := range filter {
		q[k] = vs
	}
	if before != "" {
		q.Set("before", before)
	}
	return q.Encode()
}

// queryOf is a query of the pairs kv (name, value, name, value...) whose
// value is not "".
func queryOf(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	return q
}

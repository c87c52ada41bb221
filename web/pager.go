package web

import (
	"net/http"
	"net/url"
	"strconv"
)

// pagePer is the rows per page of the console's offset-paginated tables
// (devices, key sets, API keys), whose lists the service returns whole.
const pagePer = 50

// pager is the navigation of one page of a table: links to the newer
// and older pages, "" where there is none.
type pager struct {
	Newer, Older string
	From, To     int // 1-based rows shown
	Total        int
}

// paginate cuts items to the page ?page=N (1-based) of r and returns the
// links around it, keeping r's other query parameters.
func paginate[T any](r *http.Request, items []T) ([]T, pager) {
	n, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || n < 1 {
		n = 1
	}
	pages := max(1, (len(items)+pagePer-1)/pagePer)
	n = min(n, pages)
	lo, hi := (n-1)*pagePer, min(n*pagePer, len(items))
	link := func(k int) string {
		q := url.Values{}
		for key, vs := range r.URL.Query() {
			q[key] = vs
		}
		q.Set("page", strconv.Itoa(k))
		return r.URL.Path + "?" + q.Encode()
	}
	pg := pager{Total: len(items), From: lo + 1, To: hi}
	if n > 1 {
		pg.Newer = link(n - 1)
	}
	if n < pages {
		pg.Older = link(n + 1)
	}
	return items[lo:hi], pg
}

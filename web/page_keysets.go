package web

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
)

// The key sets page: the evaluation keys the tenant's devices uploaded,
// one per model and device key, and their deletion.

type keysetsData struct {
	Pager   pager
	KeySets []keysetRow
	CanEdit bool
}

type keysetRow struct {
	ID      hegate.KeySetID
	Short   string // the first characters of ID
	Model   hegate.ModelID
	Params  string // the CKKS parameters' fingerprint, shortened
	Size    string
	Created string
}

func (c *Console) keysetsPage() page {
	return page{
		path:  Prefix + "/keysets",
		get:   c.keysets,
		posts: map[string]http.HandlerFunc{"/{id}/delete": c.deleteKeySet},
	}
}

func (c *Console) keysets(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	list, err := c.svc.ListKeySets(r.Context(), p)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data := keysetsData{CanEdit: canEdit(p.Role)}
	list, data.Pager = paginate(r, list)
	for _, ks := range list {
		data.KeySets = append(data.KeySets, keysetRow{
			ID: ks.ID, Short: shortID(string(ks.ID), 12), Model: ks.Model, Params: shortID(ks.ParamsID, 12),
			Size: megabytes(ks.SizeBytes), Created: stampUTC(ks.CreatedAt),
		})
	}
	c.render(w, r, http.StatusOK, "keysets", frame(r, "Key sets", "keysets", data, doneFlash(w, r)...))
}

func (c *Console) deleteKeySet(w http.ResponseWriter, r *http.Request) {
	id := hegate.KeySetID(chi.URLParam(r, "id"))
	if err := c.svc.DeleteKeySet(r.Context(), principal(r), id); err != nil {
		c.fail(w, r, err)
		return
	}
	seeOther(w, r, Prefix+"/keysets", "Key set "+shortID(string(id), 12)+"… is deleted: a device that used it uploads its keys again.")
}

// shortID is the first n bytes of an id (ids are ASCII).
func shortID(id string, n int) string {
	if len(id) <= n {
		return id
	}
	return id[:n]
}

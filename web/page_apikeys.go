package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// The API keys page: the tenant's keys (never a secret: the store keeps
// only hashes), creating one, whose secret the answer to the POST shows
// once and nothing keeps, and revoking one.

type apikeysData struct {
	Pager   pager
	Keys    []apikeyRow
	CanEdit bool
	Form    apikeyForm
	// Created is the key just created, with its secret: only in the
	// answer to the POST that created it.
	Created *apikeyCreated
}

type apikeyRow struct {
	ID       string
	Name     string
	Prefix   string
	Role     string
	Created  string
	LastUsed string
	Revoked  string // when, "" if it is live
}

type apikeyForm struct {
	Name   string
	Role   string
	Errors map[string]string
}

type apikeyCreated struct {
	ID     string
	Name   string
	Role   string
	Secret string
}

func (c *Console) apikeysPage() page {
	return page{
		path: Prefix + "/apikeys",
		get:  c.apikeys,
		posts: map[string]http.HandlerFunc{
			"":             c.createAPIKey,
			"/{id}/revoke": c.revokeAPIKey,
		},
	}
}

func (c *Console) apikeys(w http.ResponseWriter, r *http.Request) {
	c.renderAPIKeys(w, r, http.StatusOK, apikeyForm{Role: service.RoleClient, Errors: map[string]string{}}, nil, doneFlash(w, r)...)
}

func (c *Console) renderAPIKeys(w http.ResponseWriter, r *http.Request, status int, form apikeyForm, created *apikeyCreated, flash ...Flash) {
	p := principal(r)
	keys, err := c.svc.ListAPIKeys(r.Context(), p)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	now := c.svc.Now()
	data := apikeysData{CanEdit: canEdit(p.Role), Form: form, Created: created}
	keys, data.Pager = paginate(r, keys)
	for _, k := range keys {
		data.Keys = append(data.Keys, apikeyRowOf(now, k))
	}
	c.render(w, r, status, "apikeys", frame(r, "API keys", "apikeys", data, flash...))
}

func apikeyRowOf(now time.Time, k storage.APIKey) apikeyRow {
	row := apikeyRow{
		ID: string(k.ID), Name: k.Name, Prefix: k.Prefix, Role: k.Role,
		Created: k.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"), LastUsed: lastSeen(now, k.LastUsedAt),
	}
	if k.RevokedAt != nil {
		row.Revoked = k.RevokedAt.UTC().Format("2006-01-02 15:04 UTC")
	}
	return row
}

// createAPIKey answers with the page itself, showing the new secret: no
// redirect, so that the secret is in no URL, cookie or store, and
// Cache-Control: no-store, so that no cache keeps the answer.
func (c *Console) createAPIKey(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, err)
		return
	}
	form := apikeyForm{Name: strings.TrimSpace(r.PostForm.Get("name")), Role: r.PostForm.Get("role"), Errors: map[string]string{}}
	k, secret, err := c.svc.CreateAPIKey(r.Context(), principal(r), service.CreateAPIKeyParams{Name: form.Name, Role: form.Role})
	if err != nil {
		if fe, ok := fieldErrors(err); ok {
			form.Errors = fe
			c.renderAPIKeys(w, r, http.StatusUnprocessableEntity, form, nil)
			return
		}
		c.fail(w, r, err)
		return
	}
	created := &apikeyCreated{ID: string(k.ID), Name: k.Name, Role: k.Role, Secret: secret}
	c.renderAPIKeys(w, r, http.StatusOK, apikeyForm{Role: service.RoleClient, Errors: map[string]string{}}, created,
		Flash{Kind: FlashOK, Text: "API key " + k.Name + " is created."},
		Flash{Kind: FlashWarning, Text: "Copy its secret now: it is shown only this once, and nobody can show it again."})
}

func (c *Console) revokeAPIKey(w http.ResponseWriter, r *http.Request) {
	id := hegate.APIKeyID(chi.URLParam(r, "id"))
	if err := c.svc.RevokeAPIKey(r.Context(), principal(r), id); err != nil {
		c.fail(w, r, err)
		return
	}
	seeOther(w, r, Prefix+"/apikeys", "API key "+string(id)+" is revoked: its next request is refused.")
}

package web

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hegate/hegate/storage"
)

// The devices page: the tenant's enrolled devices, their attestation
// status and last appraisal, revocation, and how to enroll one.

type devicesData struct {
	Devices []deviceRow
	Pager   pager
	CanEdit bool
}

type deviceRow struct {
	storage.Device
	LastSeen string
}

func (c *Console) devicesPage() page {
	return page{
		path: Prefix + "/devices",
		get:  c.devices,
		gets: map[string]http.HandlerFunc{"/{id}": c.device},
		posts: map[string]http.HandlerFunc{
			"/{id}/revoke": c.revokeDevice,
		},
	}
}

func (c *Console) devices(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	ds, err := c.svc.ListDevices(r.Context(), p)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	now := c.svc.Now()
	data := devicesData{CanEdit: canEdit(p.Role)}
	ds, data.Pager = paginate(r, ds)
	for _, d := range ds {
		data.Devices = append(data.Devices, deviceRow{Device: d, LastSeen: lastSeen(now, d.LastSeenAt)})
	}
	c.render(w, r, http.StatusOK, "devices", frame(r, "Devices", "devices", data, doneFlash(w, r)...))
}

func (c *Console) device(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	d, err := c.svc.GetDevice(r.Context(), p, storage.DeviceID(chi.URLParam(r, "id")))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data := struct {
		Device   storage.Device
		LastSeen string
		Result   string
		CanEdit  bool
	}{d, lastSeen(c.svc.Now(), d.LastSeenAt), prettyJSON(d.Result), canEdit(p.Role)}
	c.render(w, r, http.StatusOK, "device", frame(r, "Device "+string(d.ID), "devices", data, doneFlash(w, r)...))
}

func (c *Console) revokeDevice(w http.ResponseWriter, r *http.Request) {
	d, err := c.svc.RevokeDevice(r.Context(), principal(r), storage.DeviceID(chi.URLParam(r, "id")))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	seeOther(w, r, Prefix+"/devices", "Device "+string(d.ID)+" is revoked: its next request is refused.")
}

func lastSeen(now time.Time, t *time.Time) string {
	if t == nil {
		return "never"
	}
	return since(now, *t)
}

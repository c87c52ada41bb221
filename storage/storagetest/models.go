package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// modelParams are the params of an upload of model name by tenant, whose
// source blob is named after the name.
func modelParams(tenant hegate.TenantID, name hegate.ModelID, idempotencyKey string) storage.CreateModelVersionParams {
	return storage.CreateModelVersionParams{
		TenantID: tenant, Name: name, SourceBlob: "src-" + string(name), SourceBytes: 4321,
		SourceFormat: storage.ModelFormatONNX, Options: []byte(`{"slots":4096}`), IdempotencyKey: idempotencyKey,
	}
}

func mustModel(t *testing.T, b bundle, tenant hegate.TenantID, name hegate.ModelID) storage.ModelVersion {
	t.Helper()
	v, created, err := b.store.CreateModelVersion(b.ctx, modelParams(tenant, name, ""))
	if err != nil || !created {
		t.Fatalf("CreateModelVersion(%s): created %v, err %v", name, created, err)
	}
	return v
}

// mustReady makes v ready with graph blob "graph-<name>-<version>".
func mustReady(t *testing.T, b bundle, v storage.ModelVersion) storage.ModelVersion {
	t.Helper()
	r, err := b.store.MarkModelReady(b.ctx, v.TenantID, v.Name, v.Version, graphOf(v), []byte(`{"levels":5}`))
	noErr(t, "MarkModelReady", err)
	return r
}

func graphOf(v storage.ModelVersion) string { return fmt.Sprintf("graph-%s-%d", v.Name, v.Version) }

// mustReadyModel uploads a version of name and makes it ready.
func mustReadyModel(t *testing.T, b bundle, tenant hegate.TenantID, name hegate.ModelID) storage.ModelVersion {
	t.Helper()
	return mustReady(t, b, mustModel(t, b, tenant, name))
}

func modelJob(tenant hegate.TenantID, v storage.ModelVersion) storage.CreateJobParams {
	p := jobParams(tenant, "")
	p.Model, p.ModelVersion = v.Name, v.Version
	return p
}

// changes returns every model change at or after since, paging as the
// interface documents, with pages of limit.
func changes(t *testing.T, b bundle, since time.Time, limit int) []storage.ModelVersion {
	t.Helper()
	var out []storage.ModelVersion
	for range 1000 {
		page, err := b.store.ModelsChangedSince(b.ctx, since, limit)
		noErr(t, "ModelsChangedSince", err)
		if page == nil {
			t.Fatal("ModelsChangedSince returned nil, want an empty list")
		}
		if len(page) > limit {
			t.Fatalf("ModelsChangedSince(limit %d) returned %d", limit, len(page))
		}
		out = append(out, page...)
		if len(page) > 0 {
			since = page[len(page)-1].UpdatedAt.Add(time.Microsecond)
		}
		if len(page) < limit {
			return out
		}
	}
	t.Fatal("ModelsChangedSince: paging does not end")
	return nil
}

// keysOf names versions "tenant/name/version" (deleted ones with a "-").
func keysOf(vs []storage.ModelVersion) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprintf("%s/%s/%d", v.TenantID, v.Name, v.Version)
		if v.Deleted() {
			out[i] += "-"
		}
	}
	return out
}

// strictlyOrdered fails unless the versions' UpdatedAt strictly increase.
func strictlyOrdered(t *testing.T, vs []storage.ModelVersion) {
	t.Helper()
	for i := 1; i < len(vs); i++ {
		if !vs[i].UpdatedAt.After(vs[i-1].UpdatedAt) {
			t.Fatalf("change %d at %v is not after change %d at %v", i, vs[i].UpdatedAt, i-1, vs[i-1].UpdatedAt)
		}
	}
}

var modelTests = []test{
	{"ok/model/create-get", func(t *testing.T, b bundle) {
		p := modelParams(b.a.ID, "digits", "")
		v, created, err := b.store.CreateModelVersion(b.ctx, p)
		noErr(t, "CreateModelVersion", err)
		if !created {
			t.Fatal("CreateModelVersion: created false")
		}
		recent(t, "CreatedAt", v.CreatedAt)
		want := storage.ModelVersion{
			TenantID: b.a.ID, Name: "digits", Version: 1, Status: storage.ModelCompiling,
			SourceBlob: p.SourceBlob, SourceBytes: p.SourceBytes, SourceFormat: p.SourceFormat, Options: p.Options,
			CreatedAt: v.CreatedAt, UpdatedAt: v.CreatedAt,
		}
		equal(t, "CreateModelVersion", v, want)
		got, err := b.store.GetModelVersion(b.ctx, b.a.ID, "digits", 1)
		noErr(t, "GetModelVersion", err)
		equal(t, "GetModelVersion", got, v)

		// No options, the other format; numbering goes on.
		p.Options, p.SourceFormat = nil, storage.ModelFormatIRJSON
		v2, created, err := b.store.CreateModelVersion(b.ctx, p)
		noErr(t, "second CreateModelVersion", err)
		if !created || v2.Version != 2 || v2.Options != nil || v2.SourceFormat != storage.ModelFormatIRJSON {
			t.Fatalf("second CreateModelVersion = %+v, created %v", v2, created)
		}
		// Another name, and another tenant, count from 1.
		if v := mustModel(t, b, b.a.ID, "other"); v.Version != 1 {
			t.Fatalf("first version of another name is %d", v.Version)
		}
		if v := mustModel(t, b, b.b.ID, "digits"); v.Version != 1 {
			t.Fatalf("first version of tenant b is %d", v.Version)
		}
		// Nothing is ready yet.
		_, err = b.store.GetModelVersion(b.ctx, b.a.ID, "digits", 0)
		wantErr(t, "GetModelVersion(0) with nothing ready", err, storage.ErrNotFound)
	}},
	{"ok/model/ready-failed-latest", func(t *testing.T, b bundle) {
		v1 := mustModel(t, b, b.a.ID, "m")
		v2 := mustModel(t, b, b.a.ID, "m")
		v3 := mustModel(t, b, b.a.ID, "m")
		v4 := mustModel(t, b, b.a.ID, "m")

		manifest := []byte(`{"levels":7}`)
		r1, err := b.store.MarkModelReady(b.ctx, b.a.ID, "m", 1, "graph-1", manifest)
		noErr(t, "MarkModelReady", err)
		want := v1
		want.Status, want.GraphBlob, want.Manifest, want.UpdatedAt = storage.ModelReady, "graph-1", manifest, r1.UpdatedAt
		equal(t, "MarkModelReady", r1, want)
		if !r1.UpdatedAt.After(v4.UpdatedAt) {
			t.Fatalf("UpdatedAt %v of the ready version is not after the last upload's %v", r1.UpdatedAt, v4.UpdatedAt)
		}
		r3 := mustReady(t, b, v3)
		f2, err := b.store.MarkModelFailed(b.ctx, b.a.ID, "m", 2, "the model has an unsupported op")
		noErr(t, "MarkModelFailed", err)
		if f2.Status != storage.ModelFailed || f2.Error != "the model has an unsupported op" || f2.SourceBlob != v2.SourceBlob ||
			f2.GraphBlob != "" || f2.Manifest != nil {
			t.Fatalf("MarkModelFailed = %+v", f2)
		}

		// Latest ready: v3, whatever the compiling v4 and failed v2.
		got, err := b.store.GetModelVersion(b.ctx, b.a.ID, "m", 0)
		noErr(t, "GetModelVersion(0)", err)
		equal(t, "latest ready", got, r3)
		list, err := b.store.ListModelVersions(b.ctx, b.a.ID, "m")
		noErr(t, "ListModelVersions", err)
		equal(t, "ListModelVersions", list, []storage.ModelVersion{v4, r3, f2, r1})

		// Repeating a transition with the same values changes nothing.
		again, err := b.store.MarkModelReady(b.ctx, b.a.ID, "m", 1, "graph-1", manifest)
		noErr(t, "repeated MarkModelReady", err)
		equal(t, "repeated MarkModelReady", again, r1)
		againF, err := b.store.MarkModelFailed(b.ctx, b.a.ID, "m", 2, "the model has an unsupported op")
		noErr(t, "repeated MarkModelFailed", err)
		equal(t, "repeated MarkModelFailed", againF, f2)
		if page, _ := b.store.ModelsChangedSince(b.ctx, r3.UpdatedAt.Add(time.Microsecond), 10); len(page) != 1 || page[0].Version != 2 {
			t.Fatalf("changes after the repeats: %v, want only version 2's failure", keysOf(page))
		}
	}},
	{"fail/model/transitions", func(t *testing.T, b bundle) {
		ready := mustReadyModel(t, b, b.a.ID, "m")
		failedV := mustModel(t, b, b.a.ID, "m")
		failed, err := b.store.MarkModelFailed(b.ctx, b.a.ID, "m", failedV.Version, "bad")
		noErr(t, "MarkModelFailed", err)
		compiling := mustModel(t, b, b.a.ID, "m")

		_, err = b.store.MarkModelReady(b.ctx, b.a.ID, "m", ready.Version, "other-graph", ready.Manifest)
		wantErr(t, "MarkModelReady with another graph", err, storage.ErrConflict)
		_, err = b.store.MarkModelReady(b.ctx, b.a.ID, "m", ready.Version, ready.GraphBlob, []byte(`{}`))
		wantErr(t, "MarkModelReady with another manifest", err, storage.ErrConflict)
		_, err = b.store.MarkModelFailed(b.ctx, b.a.ID, "m", ready.Version, "bad")
		wantErr(t, "MarkModelFailed of a ready version", err, storage.ErrConflict)
		_, err = b.store.MarkModelReady(b.ctx, b.a.ID, "m", failed.Version, "g", nil)
		wantErr(t, "MarkModelReady of a failed version", err, storage.ErrConflict)
		_, err = b.store.MarkModelFailed(b.ctx, b.a.ID, "m", failed.Version, "another reason")
		wantErr(t, "MarkModelFailed with another reason", err, storage.ErrConflict)

		for _, version := range []int{-1, 0, compiling.Version + 1} {
			_, err = b.store.MarkModelReady(b.ctx, b.a.ID, "m", version, "g", nil)
			wantErr(t, fmt.Sprintf("MarkModelReady of version %d", version), err, storage.ErrNotFound)
			_, err = b.store.MarkModelFailed(b.ctx, b.a.ID, "m", version, "x")
			wantErr(t, fmt.Sprintf("MarkModelFailed of version %d", version), err, storage.ErrNotFound)
			if version != 0 {
				_, err = b.store.GetModelVersion(b.ctx, b.a.ID, "m", version)
				wantErr(t, fmt.Sprintf("GetModelVersion of version %d", version), err, storage.ErrNotFound)
			}
		}
		_, err = b.store.MarkModelReady(b.ctx, b.a.ID, "none", 1, "g", nil)
		wantErr(t, "MarkModelReady of a missing model", err, storage.ErrNotFound)

		// Bad inputs change nothing.
		if _, err := b.store.MarkModelReady(b.ctx, b.a.ID, "m", compiling.Version, "", nil); err == nil {
			t.Error("MarkModelReady without a graph blob succeeded")
		}
		_, err = b.store.MarkModelReady(b.ctx, b.a.ID, "m", compiling.Version, "g", make([]byte, storage.MaxModelManifestBytes+1))
		wantErr(t, "MarkModelReady with a huge manifest", err, storage.ErrTooLarge)
		if _, err := b.store.MarkModelFailed(b.ctx, b.a.ID, "m", compiling.Version, ""); err == nil {
			t.Error("MarkModelFailed without a reason succeeded")
		}
		got, err := b.store.GetModelVersion(b.ctx, b.a.ID, "m", compiling.Version)
		noErr(t, "GetModelVersion", err)
		equal(t, "compiling version after refused changes", got, compiling)
		for _, v := range []storage.ModelVersion{ready, failed} {
			got, err := b.store.GetModelVersion(b.ctx, b.a.ID, "m", v.Version)
			noErr(t, "GetModelVersion", err)
			equal(t, "version after refused changes", got, v)
		}

		// The largest manifest is fine.
		big := []byte(`"` + strings.Repeat("x", storage.MaxModelManifestBytes-2) + `"`)
		r, err := b.store.MarkModelReady(b.ctx, b.a.ID, "m", compiling.Version, "g", big)
		noErr(t, "MarkModelReady with the largest manifest", err)
		if len(r.Manifest) != storage.MaxModelManifestBytes {
			t.Fatalf("manifest of %d bytes came back with %d", len(big), len(r.Manifest))
		}
	}},
	{"ok/model/idempotency-key", func(t *testing.T, b bundle) {
		first, created, err := b.store.CreateModelVersion(b.ctx, modelParams(b.a.ID, "m", "upload-1"))
		noErr(t, "CreateModelVersion", err)
		if !created || first.IdempotencyKey != "upload-1" {
			t.Fatalf("CreateModelVersion = %+v, created %v", first, created)
		}
		// A replay, even of other params (another name), is the first upload.
		for _, name := range []hegate.ModelID{"m", "other"} {
			again, created, err := b.store.CreateModelVersion(b.ctx, modelParams(b.a.ID, name, "upload-1"))
			noErr(t, "replayed CreateModelVersion", err)
			if created {
				t.Fatal("replayed CreateModelVersion: created true")
			}
			equal(t, "replayed CreateModelVersion", again, first)
		}
		// The replays used no version number and created no model.
		next, created, err := b.store.CreateModelVersion(b.ctx, modelParams(b.a.ID, "m", "upload-2"))
		noErr(t, "CreateModelVersion with another key", err)
		if !created || next.Version != 2 {
			t.Fatalf("upload with another key: version %d, created %v", next.Version, created)
		}
		models, err := b.store.ListModels(b.ctx, b.a.ID)
		noErr(t, "ListModels", err)
		equal(t, "models", keysOf(models), []string{string(b.a.ID) + "/m/2"})
		// Keys are per tenant.
		other, created, err := b.store.CreateModelVersion(b.ctx, modelParams(b.b.ID, "m", "upload-1"))
		noErr(t, "CreateModelVersion by tenant b", err)
		if !created || other.TenantID != b.b.ID || other.Version != 1 {
			t.Fatalf("tenant b with the same key: %+v, created %v", other, created)
		}
	}},
	{"ok/model/concurrent-create", func(t *testing.T, b bundle) {
		const n = 8
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			versions []int
			keyed    = map[int]int{} // version -> times returned for the shared key
			created  int
			errs     []error
		)
		for i := range n {
			wg.Go(func() {
				v, c, err := b.store.CreateModelVersion(b.ctx, modelParams(b.a.ID, "m", ""))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				if !c {
					errs = append(errs, fmt.Errorf("upload %d: created false", i))
				}
				versions = append(versions, v.Version)
			})
			wg.Go(func() {
				v, c, err := b.store.CreateModelVersion(b.ctx, modelParams(b.a.ID, "keyed", "same"))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				keyed[v.Version]++
				if c {
					created++
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("concurrent CreateModelVersion: %v", errs)
		}
		slices.Sort(versions)
		equal(t, "versions of concurrent uploads", versions, []int{1, 2, 3, 4, 5, 6, 7, 8})
		equal(t, "concurrent uploads with one key", keyed, map[int]int{1: n})
		if created != 1 {
			t.Fatalf("%d concurrent uploads with one key created %d versions", n, created)
		}
		list, err := b.store.ListModelVersions(b.ctx, b.a.ID, "m")
		noErr(t, "ListModelVersions", err)
		if len(list) != n {
			t.Fatalf("ListModelVersions has %d versions, want %d", len(list), n)
		}
		strictlyOrdered(t, changes(t, b, time.Time{}, storage.MaxModelChanges))
	}},
	{"ok/model/list-models", func(t *testing.T, b bundle) {
		mustReadyModel(t, b, b.a.ID, "b-model")
		bLatest := mustModel(t, b, b.a.ID, "b-model") // compiling, and the latest
		mustModel(t, b, b.a.ID, "a-model")
		aOnly, err := b.store.MarkModelFailed(b.ctx, b.a.ID, "a-model", 1, "bad")
		noErr(t, "MarkModelFailed", err)
		mustReadyModel(t, b, b.a.ID, "c-deleted")
		_, err = b.store.DeleteModel(b.ctx, b.a.ID, "c-deleted")
		noErr(t, "DeleteModel", err)
		mustModel(t, b, b.b.ID, "tenant-b-model")

		got, err := b.store.ListModels(b.ctx, b.a.ID)
		noErr(t, "ListModels", err)
		equal(t, "ListModels", got, []storage.ModelVersion{aOnly, bLatest})
		got, err = b.store.ListModels(b.ctx, mustTenant(t, b, "tenant-c").ID)
		noErr(t, "ListModels of a tenant without models", err)
		equal(t, "ListModels of a tenant without models", got, []storage.ModelVersion{})
		versions, err := b.store.ListModelVersions(b.ctx, b.a.ID, "none")
		noErr(t, "ListModelVersions of a missing model", err)
		equal(t, "ListModelVersions of a missing model", versions, []storage.ModelVersion{})
	}},
	{"fail/model/other-tenant", func(t *testing.T, b bundle) {
		ready := mustReadyModel(t, b, b.a.ID, "m")
		compiling := mustModel(t, b, b.a.ID, "m")
		for _, version := range []int{0, ready.Version, compiling.Version} {
			_, err := b.store.GetModelVersion(b.ctx, b.b.ID, "m", version)
			wantErr(t, fmt.Sprintf("GetModelVersion(%d) by another tenant", version), err, storage.ErrNotFound)
		}
		list, err := b.store.ListModelVersions(b.ctx, b.b.ID, "m")
		noErr(t, "ListModelVersions by another tenant", err)
		equal(t, "ListModelVersions by another tenant", list, []storage.ModelVersion{})
		models, err := b.store.ListModels(b.ctx, b.b.ID)
		noErr(t, "ListModels by another tenant", err)
		equal(t, "ListModels by another tenant", models, []storage.ModelVersion{})
		_, err = b.store.MarkModelReady(b.ctx, b.b.ID, "m", compiling.Version, "g", nil)
		wantErr(t, "MarkModelReady by another tenant", err, storage.ErrNotFound)
		_, err = b.store.MarkModelFailed(b.ctx, b.b.ID, "m", compiling.Version, "x")
		wantErr(t, "MarkModelFailed by another tenant", err, storage.ErrNotFound)
		_, err = b.store.DeleteModel(b.ctx, b.b.ID, "m")
		wantErr(t, "DeleteModel by another tenant", err, storage.ErrNotFound)
		_, _, err = b.store.CreateJob(b.ctx, modelJob(b.b.ID, ready))
		wantErr(t, "CreateJob on another tenant's version", err, storage.ErrNotFound)

		// Tenant b's own model of the same name is separate.
		own := mustModel(t, b, b.b.ID, "m")
		if own.Version != 1 {
			t.Fatalf("tenant b's first version is %d", own.Version)
		}
		got, err := b.store.ListModelVersions(b.ctx, b.a.ID, "m")
		noErr(t, "ListModelVersions", err)
		equal(t, "tenant a's versions", got, []storage.ModelVersion{compiling, ready})
	}},
	{"fail/model/params", func(t *testing.T, b bundle) {
		for name, change := range map[string]func(p *storage.CreateModelVersionParams){
			"no tenant":      func(p *storage.CreateModelVersionParams) { p.TenantID = "" },
			"no name":        func(p *storage.CreateModelVersionParams) { p.Name = "" },
			"no source":      func(p *storage.CreateModelVersionParams) { p.SourceBlob = "" },
			"negative bytes": func(p *storage.CreateModelVersionParams) { p.SourceBytes = -1 },
			"bad format":     func(p *storage.CreateModelVersionParams) { p.SourceFormat = "pickle" },
			"no format":      func(p *storage.CreateModelVersionParams) { p.SourceFormat = "" },
		} {
			p := modelParams(b.a.ID, "m", "")
			change(&p)
			if v, _, err := b.store.CreateModelVersion(b.ctx, p); err == nil {
				t.Errorf("CreateModelVersion with %s: %+v, want an error", name, v)
			}
		}
		p := modelParams(b.a.ID, "m", "")
		p.Options = make([]byte, storage.MaxModelOptionsBytes+1)
		_, _, err := b.store.CreateModelVersion(b.ctx, p)
		wantErr(t, "CreateModelVersion with huge options", err, storage.ErrTooLarge)
		for _, limit := range []int{0, -1, storage.MaxModelChanges + 1} {
			if _, err := b.store.ModelsChangedSince(b.ctx, time.Time{}, limit); err == nil {
				t.Errorf("ModelsChangedSince with limit %d succeeded", limit)
			}
		}
		got, err := b.store.ListModels(b.ctx, b.a.ID)
		noErr(t, "ListModels", err)
		equal(t, "models after refused uploads", got, []storage.ModelVersion{})
		// The largest options are fine.
		p.Options = make([]byte, storage.MaxModelOptionsBytes)
		v, _, err := b.store.CreateModelVersion(b.ctx, p)
		noErr(t, "CreateModelVersion with the largest options", err)
		if v.Version != 1 || len(v.Options) != storage.MaxModelOptionsBytes {
			t.Fatalf("CreateModelVersion with the largest options: version %d, %d bytes", v.Version, len(v.Options))
		}
	}},
	{"fail/model/missing-tenant", func(t *testing.T, b bundle) {
		_, _, err := b.store.CreateModelVersion(b.ctx, modelParams("ten_missing", "m", ""))
		wantErr(t, "CreateModelVersion for a missing tenant", err, storage.ErrNotFound)
		_, _, err = b.store.CreateModelVersion(b.ctx, modelParams("ten_missing", "m", "key"))
		wantErr(t, "CreateModelVersion with a key for a missing tenant", err, storage.ErrNotFound)
		if got := changes(t, b, time.Time{}, 10); len(got) != 0 {
			t.Fatalf("changes after refused uploads: %v", keysOf(got))
		}
	}},
	{"ok/model/changes-paging", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		t0 := clk.Now()
		a1 := mustModel(t, b, b.a.ID, "m") // t0
		clk.advance(time.Second)
		b1 := mustModel(t, b, b.b.ID, "m") // t0+1s
		a2 := mustModel(t, b, b.a.ID, "m") // the clock did not move: t0+1s+1µs
		clk.advance(time.Second)
		a1r := mustReady(t, b, a1) // t0+2s
		if a1.UpdatedAt != t0 || b1.UpdatedAt != t0.Add(time.Second) || a2.UpdatedAt != t0.Add(time.Second+time.Microsecond) ||
			a1r.UpdatedAt != t0.Add(2*time.Second) {
			t.Fatalf("stamps %v %v %v %v", a1.UpdatedAt, b1.UpdatedAt, a2.UpdatedAt, a1r.UpdatedAt)
		}
		if a1r.CreatedAt != a1.CreatedAt {
			t.Fatalf("MarkModelReady changed CreatedAt from %v to %v", a1.CreatedAt, a1r.CreatedAt)
		}

		all := []storage.ModelVersion{b1, a2, a1r} // a1 changed again: once, as it is now
		for _, limit := range []int{1, 2, 3, storage.MaxModelChanges} {
			equal(t, fmt.Sprintf("changes in pages of %d", limit), changes(t, b, time.Time{}, limit), all)
		}
		got, err := b.store.ModelsChangedSince(b.ctx, time.Time{}, 2)
		noErr(t, "ModelsChangedSince", err)
		equal(t, "first page", got, all[:2])
		// since is inclusive.
		got, err = b.store.ModelsChangedSince(b.ctx, a2.UpdatedAt, 10)
		noErr(t, "ModelsChangedSince(a2.UpdatedAt)", err)
		equal(t, "changes at or after a2", got, all[1:])
		got, err = b.store.ModelsChangedSince(b.ctx, a1r.UpdatedAt.Add(time.Microsecond), 10)
		noErr(t, "ModelsChangedSince after the last change", err)
		equal(t, "changes after the last", got, []storage.ModelVersion{})

		// A clock that goes back still stamps each change after the last.
		clk.advance(-time.Hour)
		f, err := b.store.MarkModelFailed(b.ctx, b.b.ID, "m", 1, "bad")
		noErr(t, "MarkModelFailed", err)
		if f.UpdatedAt != a1r.UpdatedAt.Add(time.Microsecond) {
			t.Fatalf("change on a clock an hour behind stamped %v, want %v", f.UpdatedAt, a1r.UpdatedAt.Add(time.Microsecond))
		}
		got, err = b.store.ModelsChangedSince(b.ctx, a1r.UpdatedAt.Add(time.Microsecond), 10)
		noErr(t, "ModelsChangedSince", err)
		equal(t, "the change after the clock went back", got, []storage.ModelVersion{f})
	}},
	{"ok/model/changes-report-deletion", func(t *testing.T, b bundle) {
		b, clk := clocked(t, b)
		v1 := mustReadyModel(t, b, b.a.ID, "m")
		v2 := mustModel(t, b, b.a.ID, "m")
		v2, err := b.store.MarkModelFailed(b.ctx, b.a.ID, "m", v2.Version, "bad")
		noErr(t, "MarkModelFailed", err)
		v3 := mustReadyModel(t, b, b.a.ID, "m")
		other := mustReadyModel(t, b, b.b.ID, "m")
		seen := changes(t, b, time.Time{}, 10)
		since := seen[len(seen)-1].UpdatedAt.Add(time.Microsecond)
		at := clk.advance(time.Minute)

		_, err = b.store.DeleteModel(b.ctx, b.a.ID, "m")
		noErr(t, "DeleteModel", err)
		got := changes(t, b, since, 2)
		if len(got) != 3 {
			t.Fatalf("changes after DeleteModel: %v, want the 3 versions", keysOf(got))
		}
		strictlyOrdered(t, got)
		for i, v := range []storage.ModelVersion{v1, v2, v3} {
			stamp := at.Add(time.Duration(i) * time.Microsecond)
			want := v
			want.SourceBlob, want.GraphBlob, want.UpdatedAt, want.DeletedAt = "", "", stamp, &stamp
			equal(t, fmt.Sprintf("deleted version %d", v.Version), got[i], want)
			if !got[i].Deleted() {
				t.Fatalf("version %d: Deleted() is false", v.Version)
			}
			_, err := b.store.GetModelVersion(b.ctx, b.a.ID, "m", v.Version)
			wantErr(t, "GetModelVersion of a deleted version", err, storage.ErrNotFound)
		}
		_, err = b.store.GetModelVersion(b.ctx, b.a.ID, "m", 0)
		wantErr(t, "GetModelVersion(0) of a deleted model", err, storage.ErrNotFound)
		list, err := b.store.ListModelVersions(b.ctx, b.a.ID, "m")
		noErr(t, "ListModelVersions", err)
		equal(t, "versions of a deleted model", list, []storage.ModelVersion{})
		_, err = b.store.MarkModelFailed(b.ctx, b.a.ID, "m", v1.Version, "x")
		wantErr(t, "MarkModelFailed of a deleted version", err, storage.ErrNotFound)
		_, err = b.store.DeleteModel(b.ctx, b.a.ID, "m")
		wantErr(t, "second DeleteModel", err, storage.ErrNotFound)
		// Tenant b's model of the same name stays.
		got2, err := b.store.GetModelVersion(b.ctx, b.b.ID, "m", 0)
		noErr(t, "GetModelVersion of tenant b", err)
		equal(t, "tenant b's model", got2, other)

		// Uploading the name again continues the numbering.
		clk.advance(time.Minute)
		v4 := mustModel(t, b, b.a.ID, "m")
		if v4.Version != 4 || v4.Deleted() {
			t.Fatalf("upload after delete: %+v", v4)
		}
		models, err := b.store.ListModels(b.ctx, b.a.ID)
		noErr(t, "ListModels", err)
		equal(t, "models after the new upload", models, []storage.ModelVersion{v4})
		equal(t, "every change", keysOf(changes(t, b, time.Time{}, 3)), []string{
			string(b.b.ID) + "/m/1",
			string(b.a.ID) + "/m/1-", string(b.a.ID) + "/m/2-", string(b.a.ID) + "/m/3-",
			string(b.a.ID) + "/m/4",
		})
	}},
	{"ok/model/delete", func(t *testing.T, b bundle) {
		ready := mustReadyModel(t, b, b.a.ID, "m")
		p := modelParams(b.a.ID, "m", "upload")
		p.SourceBlob = "src-failed"
		failed, _, err := b.store.CreateModelVersion(b.ctx, p)
		noErr(t, "CreateModelVersion", err)
		_, err = b.store.MarkModelFailed(b.ctx, b.a.ID, "m", failed.Version, "bad")
		noErr(t, "MarkModelFailed", err)

		free, err := b.store.DeleteModel(b.ctx, b.a.ID, "m")
		noErr(t, "DeleteModel", err)
		equal(t, "unreferenced blobs", free, []string{ready.GraphBlob, "src-failed", ready.SourceBlob})

		// The replay of a deleted upload is that version, deleted.
		again, created, err := b.store.CreateModelVersion(b.ctx, p)
		noErr(t, "replayed CreateModelVersion", err)
		if created || again.Version != failed.Version || !again.Deleted() {
			t.Fatalf("replay of a deleted upload: %+v, created %v", again, created)
		}
		_, err = b.store.DeleteModel(b.ctx, b.a.ID, "never")
		wantErr(t, "DeleteModel of a missing model", err, storage.ErrNotFound)
		_, err = b.store.DeleteModel(b.ctx, "ten_missing", "m")
		wantErr(t, "DeleteModel for a missing tenant", err, storage.ErrNotFound)
	}},
	{"fail/model/delete-busy", func(t *testing.T, b bundle) {
		v1 := mustReadyModel(t, b, b.a.ID, "m")
		before := changes(t, b, time.Time{}, 10)

		// A queued, then running job of the model: refused.
		j, _, err := b.store.CreateJob(b.ctx, modelJob(b.a.ID, v1))
		noErr(t, "CreateJob", err)
		_, err = b.store.DeleteModel(b.ctx, b.a.ID, "m")
		wantErr(t, "DeleteModel with a queued job", err, storage.ErrConflict)
		_, err = b.store.StartJob(b.ctx, j.ID)
		noErr(t, "StartJob", err)
		_, err = b.store.DeleteModel(b.ctx, b.a.ID, "m")
		wantErr(t, "DeleteModel with a running job", err, storage.ErrConflict)
		_, err = b.store.CompleteJob(b.ctx, j.ID, "res", 1)
		noErr(t, "CompleteJob", err)

		// A job of a built-in model of the same name counts too.
		builtin := jobParams(b.a.ID, "")
		builtin.Model = "m"
		jb, _, err := b.store.CreateJob(b.ctx, builtin)
		noErr(t, "CreateJob of version 0", err)
		_, err = b.store.DeleteModel(b.ctx, b.a.ID, "m")
		wantErr(t, "DeleteModel with a queued job of version 0", err, storage.ErrConflict)
		_, err = b.store.CancelJob(b.ctx, b.a.ID, jb.ID)
		noErr(t, "CancelJob", err)

		// A compiling version: refused until it fails.
		v2 := mustModel(t, b, b.a.ID, "m")
		_, err = b.store.DeleteModel(b.ctx, b.a.ID, "m")
		wantErr(t, "DeleteModel with a compiling version", err, storage.ErrConflict)
		got := changes(t, b, time.Time{}, 10)
		equal(t, "changes after refused deletes", got, append(before, v2))
		_, err = b.store.MarkModelFailed(b.ctx, b.a.ID, "m", v2.Version, "bad")
		noErr(t, "MarkModelFailed", err)

		// Jobs of other tenants and other models do not count.
		mustJob(t, b, b.b.ID)
		other := jobParams(b.a.ID, "")
		other.Model = "other"
		_, _, err = b.store.CreateJob(b.ctx, other)
		noErr(t, "CreateJob of another model", err)
		bj := jobParams(b.b.ID, "")
		bj.Model = "m"
		_, _, err = b.store.CreateJob(b.ctx, bj)
		noErr(t, "CreateJob of tenant b", err)
		_, err = b.store.DeleteModel(b.ctx, b.a.ID, "m")
		noErr(t, "DeleteModel after the jobs finished", err)

		// Now no job can be created on it.
		_, _, err = b.store.CreateJob(b.ctx, modelJob(b.a.ID, v1))
		wantErr(t, "CreateJob on a deleted version", err, storage.ErrNotFound)
		got2, err := b.store.GetJob(b.ctx, b.a.ID, j.ID)
		noErr(t, "GetJob of a deleted model's job", err)
		if got2.ModelVersion != v1.Version || got2.Status != storage.JobSucceeded {
			t.Fatalf("job of a deleted model: %+v", got2)
		}
	}},
	{"ok/model/delete-races-create-job", func(t *testing.T, b bundle) {
		// DeleteModel and CreateJob run at once: a job is created (and
		// the delete refused) or the model is deleted (and the job refused),
		// never both.
		const rounds, creators = 6, 4
		for r := range rounds {
			name := hegate.ModelID(fmt.Sprintf("m%d", r))
			v := mustReadyModel(t, b, b.a.ID, name)
			var (
				wg       sync.WaitGroup
				mu       sync.Mutex
				deleted  bool
				jobs     int
				problems []error
			)
			start := make(chan struct{})
			wg.Go(func() {
				<-start
				_, err := b.store.DeleteModel(b.ctx, b.a.ID, name)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					deleted = true
				case !errors.Is(err, storage.ErrConflict):
					problems = append(problems, fmt.Errorf("DeleteModel: %w", err))
				}
			})
			for range creators {
				wg.Go(func() {
					<-start
					_, _, err := b.store.CreateJob(b.ctx, modelJob(b.a.ID, v))
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						jobs++
					case !errors.Is(err, storage.ErrNotFound):
						problems = append(problems, fmt.Errorf("CreateJob: %w", err))
					}
				})
			}
			close(start)
			wg.Wait()
			if len(problems) > 0 {
				t.Fatalf("round %d: %v", r, problems)
			}
			if deleted && jobs > 0 {
				t.Fatalf("round %d: the model was deleted and %d jobs were created on it", r, jobs)
			}
			if !deleted && jobs == 0 {
				t.Fatalf("round %d: neither the delete nor any job succeeded", r)
			}
		}
	}},
	{"ok/model/job-model-version", func(t *testing.T, b bundle) {
		ready := mustReadyModel(t, b, b.a.ID, "m")
		j, created, err := b.store.CreateJob(b.ctx, modelJob(b.a.ID, ready))
		noErr(t, "CreateJob", err)
		if !created || j.Model != "m" || j.ModelVersion != ready.Version {
			t.Fatalf("CreateJob = %+v, created %v", j, created)
		}
		got, err := b.store.GetJob(b.ctx, b.a.ID, j.ID)
		noErr(t, "GetJob", err)
		equal(t, "GetJob", got, j)
		if builtin := mustJob(t, b, b.a.ID); builtin.ModelVersion != 0 {
			t.Fatalf("job of a built-in model has version %d", builtin.ModelVersion)
		}

		compiling := mustModel(t, b, b.a.ID, "m")
		_, _, err = b.store.CreateJob(b.ctx, modelJob(b.a.ID, compiling))
		wantErr(t, "CreateJob on a compiling version", err, storage.ErrConflict)
		_, err = b.store.MarkModelFailed(b.ctx, b.a.ID, "m", compiling.Version, "bad")
		noErr(t, "MarkModelFailed", err)
		_, _, err = b.store.CreateJob(b.ctx, modelJob(b.a.ID, compiling))
		wantErr(t, "CreateJob on a failed version", err, storage.ErrConflict)
		missing := ready
		missing.Version = 99
		_, _, err = b.store.CreateJob(b.ctx, modelJob(b.a.ID, missing))
		wantErr(t, "CreateJob on a missing version", err, storage.ErrNotFound)
		missing.Name = "none"
		missing.Version = 1
		_, _, err = b.store.CreateJob(b.ctx, modelJob(b.a.ID, missing))
		wantErr(t, "CreateJob on a missing model", err, storage.ErrNotFound)
		p := modelJob(b.a.ID, ready)
		p.ModelVersion = -1
		if _, _, err := b.store.CreateJob(b.ctx, p); err == nil {
			t.Fatal("CreateJob with version -1 succeeded")
		}

		// A replayed job is returned even once its model is gone.
		p = modelJob(b.a.ID, ready)
		p.IdempotencyKey = "req"
		keyed, _, err := b.store.CreateJob(b.ctx, p)
		noErr(t, "CreateJob with a key", err)
		_, err = b.store.StartJob(b.ctx, keyed.ID)
		noErr(t, "StartJob", err)
		_, err = b.store.FailJob(b.ctx, keyed.ID, "x")
		noErr(t, "FailJob", err)
		_, err = b.store.StartJob(b.ctx, j.ID)
		noErr(t, "StartJob", err)
		_, err = b.store.FailJob(b.ctx, j.ID, "x")
		noErr(t, "FailJob", err)
		// A queued job of another (built-in) model does not hold it.
		_, err = b.store.DeleteModel(b.ctx, b.a.ID, "m")
		noErr(t, "DeleteModel once its jobs failed", err)
		again, created, err := b.store.CreateJob(b.ctx, p)
		noErr(t, "replayed CreateJob", err)
		if created || again.ID != keyed.ID {
			t.Fatalf("replayed CreateJob: %+v, created %v", again, created)
		}
	}},
	{"ok/model/blob-references", func(t *testing.T, b bundle) {
		// The same source uploaded by two tenants, and blobs a model
		// shares by content with a key set and a job.
		pa := modelParams(b.a.ID, "m", "")
		pa.SourceBlob = "shared-src"
		va, _, err := b.store.CreateModelVersion(b.ctx, pa)
		noErr(t, "CreateModelVersion", err)
		pb := pa
		pb.TenantID = b.b.ID
		vb, _, err := b.store.CreateModelVersion(b.ctx, pb)
		noErr(t, "CreateModelVersion by tenant b", err)
		ks := mustKeySet(t, b, b.a.ID, "keys")
		_, err = b.store.MarkModelReady(b.ctx, b.a.ID, "m", va.Version, ks.BlobKey, nil)
		noErr(t, "MarkModelReady", err)
		_, err = b.store.MarkModelReady(b.ctx, b.b.ID, "m", vb.Version, "graph-b", nil)
		noErr(t, "MarkModelReady", err)
		job := finishedJob(t, b, b.b.ID, "graph-b", "res", succeed)

		got, err := b.store.UnreferencedBlobs(b.ctx, []string{"shared-src", ks.BlobKey, "graph-b", "free"})
		noErr(t, "UnreferencedBlobs", err)
		equal(t, "UnreferencedBlobs", got, []string{"free"})

		// The key set's blob is tenant a's graph: deleting the key set
		// keeps it.
		free, err := b.store.DeleteKeySet(b.ctx, b.a.ID, ks.ID)
		noErr(t, "DeleteKeySet", err)
		equal(t, "key set blob a model's graph names", free, "")
		// Tenant a's model: its source is tenant b's too, its graph no
		// longer anyone's.
		freed, err := b.store.DeleteModel(b.ctx, b.a.ID, "m")
		noErr(t, "DeleteModel", err)
		equal(t, "blobs freed by tenant a's delete", freed, []string{ks.BlobKey})
		// The job's input is tenant b's graph: expiring the job keeps it.
		expired, err := b.store.ExpireJobs(b.ctx, storage.ExpireJobsParams{FinishedBefore: time.Now().Add(time.Hour), Limit: 10})
		noErr(t, "ExpireJobs", err)
		equal(t, "expired", expired, storage.ExpiredJobs{Jobs: ids(job), Blobs: []string{"res"}})
		freed, err = b.store.DeleteModel(b.ctx, b.b.ID, "m")
		noErr(t, "DeleteModel by tenant b", err)
		equal(t, "blobs freed by tenant b's delete", freed, []string{"graph-b", "shared-src"})
		got, err = b.store.UnreferencedBlobs(b.ctx, []string{"shared-src", ks.BlobKey, "graph-b"})
		noErr(t, "UnreferencedBlobs", err)
		equal(t, "UnreferencedBlobs after the deletes", got, slices.Sorted(slices.Values([]string{"graph-b", ks.BlobKey, "shared-src"})))
	}},
}

package gateway

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/storage"
)

// orphanSweeper makes an OrphanSweeper over bd's store, blobs and metrics.
func orphanSweeper(t *testing.T, bd *bundle, clock func() time.Time) *OrphanSweeper {
	t.Helper()
	sw, err := NewOrphanSweeper(OrphanSweeperConfig{
		Store: bd.store, Blobs: bd.blobs.(ListableBlobs), Metrics: bd.srv.Metrics(), Clock: clock, BatchSize: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	return sw
}

// blobPath is where blobfs keeps a blob.
func (bd *bundle) blobPath(key string) string {
	return filepath.Join(bd.blobDir, key[0:2], key[2:4], key)
}

// age sets a blob's modification time d ago.
func (bd *bundle) age(t *testing.T, key string, d time.Duration) {
	t.Helper()
	old := time.Now().Add(-d)
	if err := os.Chtimes(bd.blobPath(key), old, old); err != nil {
		t.Fatal(err)
	}
}

func (bd *bundle) hasBlob(key string) bool {
	_, err := os.Stat(bd.blobPath(key))
	return err == nil
}

// TestOrphanSweep, on both engines and a real blob directory: a blob that
// no row names and is older than the grace goes; one younger stays (an
// upload in flight writes its blob before its row), and so do old blobs
// that a key set or a job names; an old temporary file of an interrupted
// upload goes, a fresh one stays. The deletions are counted in
// hegate_blobs_deleted_total.
func TestOrphanSweep(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			opts := []setupOption{withoutWorkers()}
			if eng.open != nil {
				opts = append(opts, withStore(eng.open))
			}
			bd := setup(t, opts...)
			put := func(content string) string {
				t.Helper()
				info, err := bd.blobs.Put(bd.ctx, strings.NewReader(content), 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				return info.Key
			}
			oldOrphan, youngOrphan, jobInput := put("old orphan"), put("young orphan"), put("a job's input")
			keySet := bd.upload(t, bd.a)
			key, err := bd.store.LookupAPIKey(bd.ctx, hashAPIKey(bd.a.secret))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := bd.store.CreateJob(bd.ctx, storage.CreateJobParams{
				TenantID: key.TenantID, Model: bd.model.ID(), KeySetID: hegate.KeySetID(keySet),
				InputBlob: jobInput, InputBytes: int64(len("a job's input")),
			}); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{oldOrphan, jobInput, keySet} {
				bd.age(t, k, 2*time.Hour)
			}
			bd.age(t, youngOrphan, 30*time.Minute)
			temp := func(name string, age time.Duration) string {
				p := filepath.Join(bd.blobDir, name)
				if err := os.WriteFile(p, []byte("part of an upload"), 0o600); err != nil {
					t.Fatal(err)
				}
				mod := time.Now().Add(-age)
				if err := os.Chtimes(p, mod, mod); err != nil {
					t.Fatal(err)
				}
				return p
			}
			oldTemp, freshTemp := temp(".put-killed", 3*time.Hour), temp(".put-inflight", time.Second)

			stats, err := orphanSweeper(t, bd, nil).Sweep(bd.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if stats.Listed != 4 || stats.Checked != 3 || stats.Deleted != 1 || stats.TempFiles != 1 ||
				stats.Bytes != int64(len("old orphan")+len("part of an upload")) {
				t.Errorf("stats %+v; want 4 listed, 3 checked, 1 deleted, 1 temporary file", stats)
			}
			for k, want := range map[string]bool{oldOrphan: false, youngOrphan: true, jobInput: true, keySet: true} {
				if got := bd.hasBlob(k); got != want {
					t.Errorf("blob %s exists: %v, want %v", k[:8], got, want)
				}
			}
			for p, want := range map[string]bool{oldTemp: false, freshTemp: true} {
				if _, err := os.Stat(p); (err == nil) != want {
					t.Errorf("%s exists: %v, want %v", filepath.Base(p), err == nil, want)
				}
			}
			// An hour later, the young orphan and the fresh temporary file
			// are old too; the rest stays.
			later := func() time.Time { return time.Now().Add(time.Hour) }
			if stats, err := orphanSweeper(t, bd, later).Sweep(bd.ctx); err != nil || stats.Deleted != 1 || stats.TempFiles != 1 {
				t.Errorf("second sweep: %+v, %v; want 1 deleted, 1 temporary file", stats, err)
			}
			if bd.hasBlob(youngOrphan) || !bd.hasBlob(jobInput) || !bd.hasBlob(keySet) {
				t.Errorf("after the second sweep: young orphan %v, job input %v, key set %v; want false, true, true",
					bd.hasBlob(youngOrphan), bd.hasBlob(jobInput), bd.hasBlob(keySet))
			}

			resp := bd.call(t, http.MethodGet, "/metrics", "", nil, nil)
			body, _ := io.ReadAll(resp.Body)
			for _, want := range []string{`hegate_blobs_deleted_total{reason="orphan"} 2`, `hegate_blobs_deleted_total{reason="upload_temp"} 2`} {
				if !strings.Contains(string(body), want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
		})
	}
}

// TestOrphanRewrittenBlobStays: a blob that no row names is old, but the
// same content is uploaded again (its row is on the way): the Put makes it
// young, and the sweep leaves it.
func TestOrphanRewrittenBlobStays(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	info, err := bd.blobs.Put(bd.ctx, strings.NewReader("content"), 100)
	if err != nil {
		t.Fatal(err)
	}
	bd.age(t, info.Key, 2*time.Hour)
	if _, err := bd.blobs.Put(bd.ctx, strings.NewReader("content"), 100); err != nil {
		t.Fatal(err)
	}
	stats, err := orphanSweeper(t, bd, nil).Sweep(bd.ctx)
	if err != nil || stats.Deleted != 0 || !bd.hasBlob(info.Key) {
		t.Fatalf("sweep: %+v, %v; blob exists %v", stats, err, bd.hasBlob(info.Key))
	}
}

// TestCutKeySetUploadOrphan is the reproduction: the database stops
// answering while a key set is being uploaded (authenticated, quota
// checked). The upload is stored in full, but its row cannot be written,
// nor can the handler find out whether anything else names the blob: it
// answers 503 and leaves the whole key set on disk with no row naming it.
// Once the database is back, the orphan sweeper leaves it alone within the
// grace (it could be an upload in flight) and deletes it after.
func TestCutKeySetUploadOrphan(t *testing.T) {
	t.Parallel()
	f := newPGFaults(t)
	bd := setup(t, withStore(f.open), withoutWorkers(), withConfig(func(c *Config) { c.RequestTimeout = 2 * time.Second }))
	t.Cleanup(func() { f.proxy.frozen.Store(false) })
	// Half the key set, then, once the gateway stores it (its temporary
	// file exists: authentication and quota are behind it), the freeze.
	body := &freezingReader{data: bd.a.keys, at: len(bd.a.keys) / 2, freeze: func() {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if m, _ := filepath.Glob(filepath.Join(bd.blobDir, ".put-*")); len(m) > 0 {
				break
			}
		}
		f.proxy.frozen.Store(true)
	}}
	req, err := http.NewRequestWithContext(bd.ctx, http.MethodPost, bd.ts.URL+"/v1/keys?model="+string(bd.model.ID()), body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(bd.a.keys))
	req.Header.Set("Content-Type", api.ContentTypeKeySet)
	req.Header.Set("Authorization", "Bearer "+bd.a.secret)
	start := time.Now()
	resp, err := bd.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	wantProblem(t, resp, http.StatusServiceUnavailable, "unavailable")
	t.Logf("cut upload: 503 after %s", time.Since(start).Round(time.Millisecond))
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if n := bd.blobFiles(t); n != 1 {
		t.Fatalf("%d blobs after the cut upload, want its 1 orphan", n)
	}
	f.proxy.frozen.Store(false)

	if stats, err := orphanSweeper(t, bd, nil).Sweep(bd.ctx); err != nil || stats.Deleted != 0 || bd.blobFiles(t) != 1 {
		t.Fatalf("sweep within the grace: %+v, %v; want the orphan kept", stats, err)
	}
	later := func() time.Time { return time.Now().Add(DefaultOrphanGrace + time.Minute) }
	stats, err := orphanSweeper(t, bd, later).Sweep(bd.ctx)
	if err != nil || stats.Deleted != 1 || stats.Bytes != int64(len(bd.a.keys)) || bd.blobFiles(t) != 0 {
		t.Fatalf("sweep after the grace: %+v, %v, %d blobs left; want the %d-byte orphan deleted", stats, err, bd.blobFiles(t), len(bd.a.keys))
	}
	bd.upload(t, bd.a) // the upload works again
}

// freezingReader reads data and calls freeze once at has been read.
type freezingReader struct {
	data   []byte
	at     int
	off    int
	freeze func()
}

func (r *freezingReader) Read(p []byte) (int, error) {
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	end := len(r.data)
	if r.off < r.at {
		end = r.at
	} else if r.freeze != nil {
		r.freeze()
		r.freeze = nil
	}
	n := copy(p, r.data[r.off:end])
	r.off += n
	return n, nil
}

func TestOrphanSweeperConfigValidate(t *testing.T) {
	t.Parallel()
	bd := setup(t, withoutWorkers())
	blobs := bd.blobs.(ListableBlobs)
	for name, cfg := range map[string]OrphanSweeperConfig{
		"no store":       {Blobs: blobs},
		"no blobs":       {Store: bd.store},
		"negative grace": {Store: bd.store, Blobs: blobs, Grace: -time.Second},
		"negative every": {Store: bd.store, Blobs: blobs, Interval: -time.Second},
		"negative batch": {Store: bd.store, Blobs: blobs, BatchSize: -1},
	} {
		if _, err := NewOrphanSweeper(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	sw, err := NewOrphanSweeper(OrphanSweeperConfig{Store: bd.store, Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	if sw.cfg.Grace != DefaultOrphanGrace || sw.cfg.Interval != 15*time.Minute || sw.cfg.BatchSize != DefaultOrphanBatch {
		t.Errorf("defaults: %+v", sw.cfg)
	}
	sw.Stop() // before Start: nothing
	if err := sw.Start(bd.ctx); err != nil {
		t.Fatal(err)
	}
	if err := sw.Start(bd.ctx); err == nil {
		t.Error("second Start: no error")
	}
	sw.Stop()
	sw.Stop()
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
)

// Defaults of SweeperConfig.
const (
	// DefaultSweepBatch is how many jobs one store transaction expires.
	DefaultSweepBatch = 500
)

// JobExpirer is what a Sweeper needs of the store; storage.Store has it.
type JobExpirer interface {
	ExpireJobs(ctx context.Context, p storage.ExpireJobsParams) (storage.ExpiredJobs, error)
}

// SweeperConfig is what a Sweeper needs.
type SweeperConfig struct {
	// Store expires jobs. Required.
	Store JobExpirer
	// Blobs holds the blobs to delete. Required.
	Blobs storage.Blobs
	// Retention is how long a finished job keeps its input and result
	// blobs. Required: > 0 (a process that should not sweep runs no Sweeper).
	Retention time.Duration
	// Interval is the time between sweeps. Required: > 0.
	Interval time.Duration
	// BatchSize is how many jobs one store transaction expires; 0 means
	// DefaultSweepBatch, at most storage.MaxExpireJobs.
	BatchSize int
	// Logger receives one line per sweep that did something, and every
	// failure; nil discards. It never receives blob content.
	Logger *slog.Logger
	// Metrics counts expired jobs and deleted blobs; nil makes a private set.
	Metrics *Metrics
	// Clock tells the time that Retention counts back from; nil means time.Now.
	Clock func() time.Time
}

// Validate reports the first problem with the configuration, naming the field.
func (c SweeperConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return hegate.E("gateway.SweeperConfig.Validate", hegate.KindInvalid, nil, "gateway: SweeperConfig."+format, args...)
	}
	switch {
	case c.Store == nil:
		return bad("Store is nil")
	case c.Blobs == nil:
		return bad("Blobs is nil")
	case c.Retention <= 0:
		return bad("Retention must be positive (%s)", c.Retention)
	case c.Interval <= 0:
		return bad("Interval must be positive (%s)", c.Interval)
	case c.BatchSize < 0 || c.BatchSize > storage.MaxExpireJobs:
		return bad("BatchSize is %d, want 0 (default) to %d", c.BatchSize, storage.MaxExpireJobs)
	}
	return nil
}

// Sweeper applies the retention policy in the background: every Interval
// it expires the jobs that finished more than Retention ago (their rows
// stay, their blob references go; see storage.Jobs.ExpireJobs) and deletes
// the blobs nothing references any more. Any number of processes may run
// one against the same store.
type Sweeper struct {
	cfg SweeperConfig
	log *slog.Logger
	m   *Metrics

	bg background
}

// NewSweeper validates cfg and builds a Sweeper.
func NewSweeper(cfg SweeperConfig) (*Sweeper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultSweepBatch
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	s := &Sweeper{cfg: cfg, log: cfg.Logger, m: cfg.Metrics}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.m == nil {
		s.m = NewMetrics()
	}
	return s, nil
}

// Start sweeps once right away and then every Interval, in a goroutine,
// until Stop or until ctx ends. A Sweeper starts at most once.
func (s *Sweeper) Start(ctx context.Context) error {
	return s.bg.start(ctx, "Sweeper", s.run)
}

// Stop ends the sweeping: a sweep in progress sees its context cancelled
// and Stop waits for it to return. Safe to call twice, or without Start.
func (s *Sweeper) Stop() { s.bg.stop() }

func (s *Sweeper) run(ctx context.Context) {
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		start := time.Now()
		stats, err := s.Sweep(ctx)
		attrs := []any{
			slog.Int("jobs_expired", stats.Jobs),
			slog.Int("blobs_deleted", stats.Blobs),
			millis("duration_ms", time.Since(start)),
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return // stopping
		case err != nil:
			s.log.ErrorContext(ctx, "retention sweep failed", append(attrs, slog.String("error", err.Error()))...)
		case stats.Jobs > 0:
			s.log.InfoContext(ctx, "retention sweep", attrs...)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// SweepStats is what one sweep did.
type SweepStats struct {
	Jobs  int // jobs whose blob references were removed
	Blobs int // blobs deleted from the blob store
}

// Sweep expires, batch after batch, every job that finished more than
// Retention before now, and deletes the blobs that nothing references any
// more. It stops at the first error and reports what it did until then.
// A blob already gone counts as deleted. A blob that cannot be deleted
// stays on disk with nothing naming it: Sweep logs its key, counts it in
// hegate_blob_delete_failures_total, and returns an error after finishing
// the batch.
func (s *Sweeper) Sweep(ctx context.Context) (SweepStats, error) {
	var stats SweepStats
	before := s.cfg.Clock().Add(-s.cfg.Retention)
	for {
		res, err := s.cfg.Store.ExpireJobs(ctx, storage.ExpireJobsParams{FinishedBefore: before, Limit: s.cfg.BatchSize})
		if err != nil {
			return stats, fmt.Errorf("retention sweep: %w", err)
		}
		stats.Jobs += len(res.Jobs)
		s.m.jobsExpired.Add(float64(len(res.Jobs)))
		// The references are gone: delete even if ctx ended meanwhile,
		// or nothing will ever delete these blobs.
		n, err := deleteBlobs(context.WithoutCancel(ctx), s.cfg.Blobs, s.m, s.log, reasonRetention, res.Blobs)
		stats.Blobs += n
		if err != nil {
			return stats, fmt.Errorf("retention sweep: %w", err)
		}
		if len(res.Jobs) < s.cfg.BatchSize {
			return stats, nil
		}
		if err := ctx.Err(); err != nil {
			return stats, err
		}
	}
}

// Why a blob was deleted: the reason label of hegate_blobs_deleted_total.
const (
	reasonRetention     = "retention"                 // its last job expired
	reasonKeySetDeleted = service.ReasonKeySetDeleted // its last key set was deleted
	reasonUnrecorded    = service.ReasonUnrecorded    // written for a row that was never recorded
)

// deleteBlobs deletes blobs that the store reported unreferenced and
// returns how many it deleted; a blob already gone counts. Each failure
// leaves a blob that nothing names: it is logged with its key and counted,
// and the failures are returned joined after every key was tried.
func deleteBlobs(ctx context.Context, blobs storage.Blobs, m *Metrics, log *slog.Logger, reason string, keys []string) (int, error) {
	var (
		deleted int
		errs    []error
	)
	for _, key := range keys {
		err := blobs.Delete(ctx, key)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			m.blobDeleteFailures.Inc()
			log.ErrorContext(ctx, "deleting an unreferenced blob failed; it stays on disk",
				slog.String("blob_key", key), slog.String("reason", reason), slog.String("error", err.Error()))
			errs = append(errs, err)
			continue
		}
		deleted++
		m.blobsDeleted.WithLabelValues(reason).Inc()
	}
	if len(errs) > 0 {
		return deleted, fmt.Errorf("%d of %d unreferenced blobs not deleted: %w", len(errs), len(keys), errors.Join(errs...))
	}
	return deleted, nil
}

// dropTimeout bounds dropUnrecorded, which a request that failed may wait
// for before it answers: the store it asks may be the very thing that
// failed, and the OrphanSweeper deletes what it leaves, after a while.
const dropTimeout = 5 * time.Second

// dropUnrecorded deletes a blob that the caller wrote but recorded no row
// for (the row already existed, another attempt recorded its own, or the
// store failed), if nothing else names it. It is best effort and outlives
// ctx's cancellation, for at most dropTimeout: failures are logged, not
// returned, and the blob is left to the OrphanSweeper.
func dropUnrecorded(ctx context.Context, refs storage.BlobReferences, blobs storage.Blobs, m *Metrics, log *slog.Logger, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dropTimeout)
	defer cancel()
	free, err := refs.UnreferencedBlobs(ctx, []string{key})
	if err != nil {
		log.WarnContext(ctx, "checking an unrecorded blob failed; it stays on disk until the orphan sweep",
			slog.String("blob_key", key), slog.String("error", err.Error()))
		return
	}
	_, _ = deleteBlobs(ctx, blobs, m, log, reasonUnrecorded, free)
}

// formatRetention writes a retention for people: "24h", "1h30m", "90s".
func formatRetention(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// UploadExpirer removes expired resumable uploads; *service.Service has it.
type UploadExpirer interface {
	SweepUploads(ctx context.Context, now time.Time) (int, error)
}

// UploadSweeperConfig is what an UploadSweeper needs.
type UploadSweeperConfig struct {
	// Uploads removes the expired uploads: Server.Service(). Required.
	Uploads UploadExpirer
	// Interval is the time between sweeps. Required: > 0.
	Interval time.Duration
	// Logger receives a line per sweep that removed something, and every
	// failure; nil discards.
	Logger *slog.Logger
	// Clock tells the time; nil means time.Now.
	Clock func() time.Time
}

// UploadSweeper removes, every Interval, the resumable key-set uploads
// that saw no chunk for service.UploadTTL, with their partial bytes. (A
// gateway without one still sweeps them, at most hourly, when an upload
// is created.) Any number of processes may run one against the same store.
type UploadSweeper struct {
	cfg UploadSweeperConfig
	log *slog.Logger
	bg  background
}

// NewUploadSweeper validates cfg and builds an UploadSweeper.
func NewUploadSweeper(cfg UploadSweeperConfig) (*UploadSweeper, error) {
	const op = "gateway.NewUploadSweeper"
	switch {
	case cfg.Uploads == nil:
		return nil, hegate.E(op, hegate.KindInvalid, nil, "gateway: UploadSweeperConfig.Uploads is nil")
	case cfg.Interval <= 0:
		return nil, hegate.E(op, hegate.KindInvalid, nil, "gateway: UploadSweeperConfig.Interval must be positive (%s)", cfg.Interval)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	s := &UploadSweeper{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Start sweeps once right away and then every Interval until Stop or ctx
// ends. An UploadSweeper starts at most once.
func (s *UploadSweeper) Start(ctx context.Context) error {
	return s.bg.start(ctx, "UploadSweeper", func(ctx context.Context) {
		tick := time.NewTicker(s.cfg.Interval)
		defer tick.Stop()
		for {
			n, err := s.cfg.Uploads.SweepUploads(ctx, s.cfg.Clock())
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case err != nil:
				s.log.ErrorContext(ctx, "upload sweep failed", slog.Int("uploads_removed", n), slog.String("error", err.Error()))
			case n > 0:
				s.log.InfoContext(ctx, "upload sweep", slog.Int("uploads_removed", n))
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
}

// Stop ends the sweeping and waits for a sweep in progress. Safe to call
// twice, or without Start.
func (s *UploadSweeper) Stop() { s.bg.stop() }

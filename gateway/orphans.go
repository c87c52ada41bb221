package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

// Defaults of OrphanSweeperConfig.
const (
	// DefaultOrphanGrace is how old a blob that no row names must be
	// before the OrphanSweeper deletes it.
	DefaultOrphanGrace = time.Hour
	// DefaultOrphanBatch is how many blob keys one store query checks.
	DefaultOrphanBatch = 500
	// maxOrphanInterval bounds the default Interval.
	maxOrphanInterval = 15 * time.Minute
)

// Why a blob was deleted (hegate_blobs_deleted_total's reason label).
const (
	reasonOrphan     = "orphan"      // no row named it for longer than the grace
	reasonUploadTemp = "upload_temp" // the temporary file of a Put that never ended
)

// ListableBlobs is a blob store that can list what it holds; blobfs.Store is one.
type ListableBlobs interface {
	storage.Blobs
	storage.BlobLister
}

// tempRemover is a blob store with temporary files of interrupted Puts
// to remove (blobfs.Store).
type tempRemover interface {
	RemoveTemp(ctx context.Context, before time.Time) (n int, bytes int64, err error)
}

// OrphanSweeperConfig is what an OrphanSweeper needs.
type OrphanSweeperConfig struct {
	// Store tells which blobs rows name. Required.
	Store storage.BlobReferences
	// Blobs lists and deletes the blobs. Required.
	Blobs ListableBlobs
	// Grace is how old (by its modification time) a blob must be before
	// it is deleted for want of a row naming it; 0 means
	// DefaultOrphanGrace. It must be longer than the longest time between
	// a blob's write and the commit of its row (an upload in flight writes
	// its blob first): seconds, bounded by the store's timeouts.
	Grace time.Duration
	// Interval is the time between sweeps; 0 means half the Grace, at
	// most 15 minutes.
	Interval time.Duration
	// BatchSize is how many keys one store query checks; 0 means
	// DefaultOrphanBatch.
	BatchSize int
	// Logger receives one line per blob deleted and per sweep that
	// deleted any, and every failure; nil discards.
	Logger *slog.Logger
	// Metrics counts the deletions (hegate_blobs_deleted_total, reasons
	// orphan and upload_temp); nil makes a private set.
	Metrics *Metrics
	// Clock tells the time the Grace counts back from; nil means time.Now.
	Clock func() time.Time
}

// Validate reports the first problem with the configuration, naming the field.
func (c OrphanSweeperConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return hegate.E("gateway.OrphanSweeperConfig.Validate", hegate.KindInvalid, nil, "gateway: OrphanSweeperConfig."+format, args...)
	}
	switch {
	case c.Store == nil:
		return bad("Store is nil")
	case c.Blobs == nil:
		return bad("Blobs is nil")
	case c.Grace < 0:
		return bad("Grace is negative (%s)", c.Grace)
	case c.Interval < 0:
		return bad("Interval is negative (%s)", c.Interval)
	case c.BatchSize < 0:
		return bad("BatchSize is negative (%d)", c.BatchSize)
	}
	return nil
}

// OrphanSweeper deletes, in the background, the blobs that no row names
// and that are older than a grace period: what a request leaves when its
// blob was written but its row never was, because the store failed in
// between (a key-set upload answered 503 leaves its whole key set), the
// process was killed, or the delete of a blob whose last row went failed.
// It also removes the temporary files of uploads a killed process left.
// A blob younger than the grace is never deleted: an upload in flight
// writes its blob before its row, and a Put of content already stored
// makes it young again. Any number of processes may run one against the
// same store and blobs.
type OrphanSweeper struct {
	cfg OrphanSweeperConfig
	log *slog.Logger
	m   *Metrics

	bg background
}

// NewOrphanSweeper validates cfg and builds an OrphanSweeper.
func NewOrphanSweeper(cfg OrphanSweeperConfig) (*OrphanSweeper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultOrphanGrace
	}
	if cfg.Interval == 0 {
		cfg.Interval = min(max(cfg.Grace/2, time.Second), maxOrphanInterval)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultOrphanBatch
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	s := &OrphanSweeper{cfg: cfg, log: cfg.Logger, m: cfg.Metrics}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.m == nil {
		s.m = NewMetrics()
	}
	return s, nil
}

// Start sweeps once right away and then every Interval, in a goroutine,
// until Stop or until ctx ends. An OrphanSweeper starts at most once.
func (s *OrphanSweeper) Start(ctx context.Context) error {
	return s.bg.start(ctx, "OrphanSweeper", s.run)
}

// Stop ends the sweeping: a sweep in progress sees its context cancelled
// and Stop waits for it to return. Safe to call twice, or without Start.
func (s *OrphanSweeper) Stop() { s.bg.stop() }

func (s *OrphanSweeper) run(ctx context.Context) {
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		start := time.Now()
		stats, err := s.Sweep(ctx)
		attrs := []any{
			slog.Int("blobs_listed", stats.Listed),
			slog.Int("blobs_checked", stats.Checked),
			slog.Int("blobs_deleted", stats.Deleted),
			slog.Int64("bytes_deleted", stats.Bytes),
			slog.Int("temp_files_removed", stats.TempFiles),
			millis("duration_ms", time.Since(start)),
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return // stopping
		case err != nil:
			s.log.ErrorContext(ctx, "orphan blob sweep failed", append(attrs, slog.String("error", err.Error()))...)
		case stats.Deleted > 0 || stats.TempFiles > 0:
			s.log.InfoContext(ctx, "orphan blob sweep", attrs...)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// OrphanStats is what one orphan sweep did.
type OrphanStats struct {
	Listed    int   // blobs in the store
	Checked   int   // of them older than the grace, asked about
	Deleted   int   // of them that no row named, deleted
	Bytes     int64 // their size, and that of the temporary files removed
	TempFiles int   // temporary files of interrupted uploads removed
}

// Sweep lists the blobs, asks the store in batches which of those older
// than the grace no row names, and deletes those, checking each one's age
// again just before (a Put of the same content may have made it young
// meanwhile). It then removes the temporary files older than the grace.
// It stops at the first error of the store or the listing and reports what
// it did until then; a blob that cannot be deleted is logged, counted in
// hegate_blob_delete_failures_total, and makes Sweep return an error at
// the end.
func (s *OrphanSweeper) Sweep(ctx context.Context) (OrphanStats, error) {
	var (
		stats   OrphanStats
		failed  []error
		cutoff  = s.cfg.Clock().Add(-s.cfg.Grace)
		batch   = make([]string, 0, s.cfg.BatchSize)
		sizes   = make(map[string]int64, s.cfg.BatchSize)
		modTime = make(map[string]time.Time, s.cfg.BatchSize)
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		stats.Checked += len(batch)
		free, err := s.cfg.Store.UnreferencedBlobs(ctx, batch)
		if err != nil {
			return fmt.Errorf("orphan sweep: checking %d blobs: %w", len(batch), err)
		}
		for _, key := range free {
			// Written again since it was listed (its row may be on the
			// way), or at this very moment: DeleteIfOlder keeps it.
			deleted, err := s.cfg.Blobs.DeleteIfOlder(ctx, key, cutoff)
			if err != nil {
				s.m.blobDeleteFailures.Inc()
				failed = append(failed, fmt.Errorf("orphan sweep: %w", err))
				continue
			}
			if !deleted {
				continue
			}
			s.m.blobsDeleted.WithLabelValues(reasonOrphan).Inc()
			stats.Deleted++
			stats.Bytes += sizes[key]
			s.log.InfoContext(ctx, "deleted a blob that no row names",
				slog.String("blob_key", key), slog.Int64("bytes", sizes[key]),
				slog.Time("modified", modTime[key]), slog.String("grace", formatRetention(s.cfg.Grace)))
		}
		batch = batch[:0]
		clear(sizes)
		clear(modTime)
		return nil
	}
	err := s.cfg.Blobs.ListBlobs(ctx, func(b storage.StoredBlob) error {
		stats.Listed++
		if !b.Modified.Before(cutoff) {
			return nil
		}
		batch = append(batch, b.Key)
		sizes[b.Key], modTime[b.Key] = b.Size, b.Modified
		if len(batch) < s.cfg.BatchSize {
			return nil
		}
		return flush()
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return stats, err
	}
	if tr, ok := s.cfg.Blobs.(tempRemover); ok {
		n, bytes, err := tr.RemoveTemp(ctx, cutoff)
		stats.TempFiles += n
		stats.Bytes += bytes
		s.m.blobsDeleted.WithLabelValues(reasonUploadTemp).Add(float64(n))
		if n > 0 {
			s.log.InfoContext(ctx, "removed temporary files of interrupted uploads",
				slog.Int("files", n), slog.Int64("bytes", bytes))
		}
		if err != nil {
			return stats, fmt.Errorf("orphan sweep: %w", err)
		}
	}
	if len(failed) > 0 {
		return stats, fmt.Errorf("orphan sweep: %w", errors.Join(failed...))
	}
	return stats, nil
}

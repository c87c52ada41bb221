package main

import (
	"context"
	"time"

	"github.com/hegate/hegate/gateway"
)

// orphanSweep is a backend's sweeper of blobs that no row names
// (gateway.OrphanSweeper): every serve and worker process runs one, with
// --orphan-grace.
type orphanSweep struct {
	grace   time.Duration // 0: none
	sweeper *gateway.OrphanSweeper
}

// start runs the sweeper over b's store and blobs, unless grace is 0 or
// the blob store cannot list its blobs.
func (o *orphanSweep) start(ctx context.Context, b *backend) error {
	if o.grace == 0 {
		b.logger.Info("orphan sweeper disabled: blobs that no row names stay")
		return nil
	}
	blobs, ok := b.blobs.(gateway.ListableBlobs)
	if !ok {
		b.logger.Warn("orphan sweeper disabled: the blob store cannot list its blobs")
		return nil
	}
	sw, err := gateway.NewOrphanSweeper(gateway.OrphanSweeperConfig{
		Store: b.store, Blobs: blobs, Grace: o.grace, Logger: b.logger, Metrics: b.metrics,
	})
	if err != nil {
		return err
	}
	if err := sw.Start(ctx); err != nil {
		return err
	}
	o.sweeper = sw
	return nil
}

// stop ends the sweeper, if it runs.
func (o *orphanSweep) stop() {
	if o.sweeper != nil {
		o.sweeper.Stop()
	}
}

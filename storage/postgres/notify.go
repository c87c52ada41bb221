package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/storage"
)

var _ storage.JobNotifier = (*Store)(nil)

// notifyChannel is the LISTEN/NOTIFY channel of job changes, per schema,
// so that deployments sharing a database do not hear each other.
func (s *Store) notifyChannel() string {
	if s.schema == "" {
		return "hegate_jobs"
	}
	return "hegate_jobs_" + s.schema // schemaRE keeps it an identifier
}

// NotifyJob sends the job id on the channel (pg_notify, delivered to every
// listener of the database).
func (s *Store) NotifyJob(ctx context.Context, id hegate.JobID) error {
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, s.notifyChannel(), string(id)); err != nil {
		return fmt.Errorf("notifying job %s: %w", id, translate(err))
	}
	return nil
}

// listenRetry is how long ListenJobs waits before it reconnects.
const listenRetry = time.Second

// ListenJobs holds one connection of the pool in LISTEN and calls f for
// every notification, reconnecting after a failure.
func (s *Store) ListenJobs(ctx context.Context, f func(hegate.JobID)) error {
	for {
		err := s.listenOnce(ctx, f)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.logger.Warn("listening for job notifications; reconnecting", "error", err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(listenRetry):
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, f func(hegate.JobID)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection that was in LISTEN must not go back to the pool with
	// its subscription: close it instead.
	defer func() {
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+s.notifyChannel()); err != nil {
		return err
	}
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Payload == "" || len(n.Payload) > 64 {
			continue
		}
		f(hegate.JobID(n.Payload))
	}
}

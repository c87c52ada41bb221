package storage

import (
	"context"

	"github.com/hegate/hegate"
)

// JobNotifier is implemented by stores that several processes share
// (PostgreSQL): a process that changes a job tells the others, so that a
// request waiting for the job ("Prefer: wait", the events stream) in
// another gateway process wakes at once instead of at its next poll.
// Notifications are a hint, never the truth: a waiter still reads the
// job from the store, and polls in case a notification is lost (a
// listener reconnecting, a process dying between its commit and its
// notify). Stores used by one process (SQLite) do not implement it; the
// process's own JobEvents suffice there.
type JobNotifier interface {
	// NotifyJob tells every listener that job id changed.
	NotifyJob(ctx context.Context, id hegate.JobID) error
	// ListenJobs calls f with the id of every job a NotifyJob names, from
	// any process, until ctx ends; it reconnects after a lost connection
	// and returns only ctx's error.
	ListenJobs(ctx context.Context, f func(hegate.JobID)) error
}

package sqlite

import (
	"context"
	"database/sql"

	"github.com/hegate/hegate/storage"
)

// transaction is a storage.Tx on a *sql.Tx.
type transaction struct {
	s  *Store
	tx *sql.Tx
}

var (
	_ storage.Tx         = (*transaction)(nil)
	_ storage.Transactor = (*Store)(nil)
)

// InTx runs fn in one IMMEDIATE transaction and commits if fn returns nil;
// see storage.Transactor. If fn returns an error or panics, the
// transaction rolls back and fn's error is returned as it is. The
// transaction holds the Store's only connection: fn must not call the
// Store itself.
func (s *Store) InTx(ctx context.Context, fn func(tx storage.Tx) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		return fn(&transaction{s: s, tx: tx})
	})
}

// CreateJob is Store.CreateJob inside the transaction; see createJob.
func (t *transaction) CreateJob(ctx context.Context, p storage.CreateJobParams) (storage.Job, bool, error) {
	return t.s.createJob(ctx, t.tx, p)
}

// ReserveBudget reserves the job's cost inside the transaction; see
// Store.reserveBudget.
func (t *transaction) ReserveBudget(ctx context.Context, p storage.ReserveBudgetParams) (storage.BudgetUsage, error) {
	return t.s.reserveBudget(ctx, t.tx, p)
}

// RecordAudit appends the event inside the transaction; see
// Store.recordAudit. It commits or rolls back with the transaction.
func (t *transaction) RecordAudit(ctx context.Context, e storage.AuditEvent) (storage.AuditEvent, error) {
	return t.s.recordAudit(ctx, t.tx, e)
}

package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/hegate/hegate/storage"
)

// transaction is a storage.Tx on a pgx transaction.
type transaction struct {
	s  *Store
	tx pgx.Tx
}

var (
	_ storage.Tx         = (*transaction)(nil)
	_ storage.Transactor = (*Store)(nil)
)

// InTx runs fn in one READ COMMITTED transaction and commits if fn returns
// nil; see storage.Transactor. If fn returns an error or panics, the
// transaction rolls back (pgx.BeginFunc's deferred rollback runs before
// the panic goes on) and fn's error is returned as it is.
func (s *Store) InTx(ctx context.Context, fn func(tx storage.Tx) error) error {
	var fnErr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		fnErr = fn(&transaction{s: s, tx: tx})
		return fnErr
	})
	switch {
	case fnErr != nil:
		return fnErr
	case err != nil:
		return fmt.Errorf("postgres transaction: %w", translate(err))
	}
	return nil
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

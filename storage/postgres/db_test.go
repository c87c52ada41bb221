package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hegate/hegate/storage"
)

// TestTranslateUnavailable: failures of the database wrap
// storage.ErrUnavailable (and keep their cause); the statement's own
// failures and the domain errors do not.
func TestTranslateUnavailable(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return fmt.Errorf("query: %w", &pgconn.PgError{Code: code}) }
	for name, tc := range map[string]struct {
		err  error
		want bool
	}{
		"statement timeout":     {pg("57014"), true},
		"lock timeout":          {pg("55P03"), true},
		"undefined table":       {pg("42P01"), true},
		"schema gone":           {pg("3F000"), true},
		"admin shutdown":        {pg("57P01"), true},
		"connection failure":    {pg("08006"), true},
		"too many connections":  {pg("53300"), true},
		"serialization failure": {pg("40001"), true},
		"deadline":              {fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		"connection reset":      {io.ErrUnexpectedEOF, true},
		"syntax error":          {pg("42601"), false},
		"check violation":       {pg("23514"), false},
		"data exception":        {pg("22P02"), false},
		"caller cancelled":      {context.Canceled, false},
		"no rows":               {pgx.ErrNoRows, false},
		"unique violation":      {pg(codeUniqueViolation), false},
		"some bug":              {errors.New("number of field descriptions must equal number of destinations"), false},
	} {
		got := translate(tc.err)
		if errors.Is(got, storage.ErrUnavailable) != tc.want {
			t.Errorf("%s: translate = %v, unavailable %v, want %v", name, got, !tc.want, tc.want)
		}
		if tc.want && !errors.Is(got, tc.err) && !errors.Is(got, errors.Unwrap(tc.err)) {
			t.Errorf("%s: translate lost the cause: %v", name, got)
		}
	}
	if got := translate(translate(pg("57014"))); got.Error() != translate(pg("57014")).Error() {
		t.Errorf("translating twice wraps twice: %v", got)
	}
}

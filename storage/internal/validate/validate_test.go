package validate

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/hegate/hegate/storage"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	hash := bytes.Repeat([]byte{1}, 32)
	for name, tc := range map[string]struct {
		err     error
		wantErr bool
	}{
		"ok/tenant":             {err: CreateTenant(storage.CreateTenantParams{Name: "a"})},
		"ok/api-key":            {err: CreateAPIKey(storage.CreateAPIKeyParams{Hash: hash})},
		"ok/lookup":             {err: LookupAPIKey(hash)},
		"ok/key-set":            {err: PutKeySet(storage.KeySet{ID: "k", TenantID: "ten_a"})},
		"fail/tenant-no-name":   {err: CreateTenant(storage.CreateTenantParams{}), wantErr: true},
		"fail/api-key-short":    {err: CreateAPIKey(storage.CreateAPIKeyParams{Hash: hash[:31]}), wantErr: true},
		"fail/key-set-no-id":    {err: PutKeySet(storage.KeySet{TenantID: "ten_a"}), wantErr: true},
		"fail/key-set-no-owner": {err: PutKeySet(storage.KeySet{ID: "k"}), wantErr: true},
		"ok/expire":             {err: ExpireJobs(storage.ExpireJobsParams{FinishedBefore: time.Now(), Limit: 1})},
		"ok/expire-max":         {err: ExpireJobs(storage.ExpireJobsParams{FinishedBefore: time.Now(), Limit: storage.MaxExpireJobs})},
		"fail/expire-no-cutoff": {err: ExpireJobs(storage.ExpireJobsParams{Limit: 1}), wantErr: true},
		"fail/expire-limit-0":   {err: ExpireJobs(storage.ExpireJobsParams{FinishedBefore: time.Now()}), wantErr: true},
		"fail/expire-limit-big": {err: ExpireJobs(storage.ExpireJobsParams{FinishedBefore: time.Now(), Limit: storage.MaxExpireJobs + 1}), wantErr: true},
	} {
		if (tc.err != nil) != tc.wantErr {
			t.Errorf("%s: error %v, want error %v", name, tc.err, tc.wantErr)
		}
	}
	for _, h := range [][]byte{nil, hash[:31], append(hash, 0)} {
		if err := LookupAPIKey(h); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("LookupAPIKey of %d bytes: %v, want ErrNotFound", len(h), err)
		}
	}
}

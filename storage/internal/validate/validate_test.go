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
	model := storage.CreateModelVersionParams{
		TenantID: "ten_a", Name: "m", SourceBlob: "blob", SourceBytes: 1, SourceFormat: storage.ModelFormatONNX,
	}
	with := func(f func(p *storage.CreateModelVersionParams)) storage.CreateModelVersionParams {
		p := model
		f(&p)
		return p
	}
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
		"ok/job-built-in":       {err: CreateJob(storage.CreateJobParams{})},
		"ok/job-version":        {err: CreateJob(storage.CreateJobParams{ModelVersion: 1})},
		"fail/job-version":      {err: CreateJob(storage.CreateJobParams{ModelVersion: -1}), wantErr: true},
		"ok/model":              {err: CreateModelVersion(model)},
		"ok/model-ir-json":      {err: CreateModelVersion(with(func(p *storage.CreateModelVersionParams) { p.SourceFormat = storage.ModelFormatIRJSON }))},
		"ok/model-max-options":  {err: CreateModelVersion(with(func(p *storage.CreateModelVersionParams) { p.Options = make([]byte, storage.MaxModelOptionsBytes) }))},
		"fail/model-no-tenant":  {err: CreateModelVersion(with(func(p *storage.CreateModelVersionParams) { p.TenantID = "" })), wantErr: true},
		"fail/model-no-name":    {err: CreateModelVersion(with(func(p *storage.CreateModelVersionParams) { p.Name = "" })), wantErr: true},
		"fail/model-no-source":  {err: CreateModelVersion(with(func(p *storage.CreateModelVersionParams) { p.SourceBlob = "" })), wantErr: true},
		"fail/model-bytes":      {err: CreateModelVersion(with(func(p *storage.CreateModelVersionParams) { p.SourceBytes = -1 })), wantErr: true},
		"fail/model-format":     {err: CreateModelVersion(with(func(p *storage.CreateModelVersionParams) { p.SourceFormat = "tflite" })), wantErr: true},
		"ok/ready":              {err: MarkModelReady("g", make([]byte, storage.MaxModelManifestBytes))},
		"fail/ready-no-graph":   {err: MarkModelReady("", nil), wantErr: true},
		"ok/failed":             {err: MarkModelFailed("bad")},
		"fail/failed-no-reason": {err: MarkModelFailed(""), wantErr: true},
		"ok/changes":            {err: ModelsChangedSince(storage.MaxModelChanges)},
		"fail/changes-0":        {err: ModelsChangedSince(0), wantErr: true},
		"fail/changes-big":      {err: ModelsChangedSince(storage.MaxModelChanges + 1), wantErr: true},
	} {
		if (tc.err != nil) != tc.wantErr {
			t.Errorf("%s: error %v, want error %v", name, tc.err, tc.wantErr)
		}
	}
	for what, err := range map[string]error{
		"options":  CreateModelVersion(with(func(p *storage.CreateModelVersionParams) { p.Options = make([]byte, storage.MaxModelOptionsBytes+1) })),
		"manifest": MarkModelReady("g", make([]byte, storage.MaxModelManifestBytes+1)),
	} {
		if !errors.Is(err, storage.ErrTooLarge) {
			t.Errorf("too large %s: %v, want ErrTooLarge", what, err)
		}
	}
	for _, h := range [][]byte{nil, hash[:31], append(hash, 0)} {
		if err := LookupAPIKey(h); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("LookupAPIKey of %d bytes: %v, want ErrNotFound", len(h), err)
		}
	}
}

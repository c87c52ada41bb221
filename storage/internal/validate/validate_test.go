package validate

import (
	"bytes"
	"errors"
	"math"
	"strings"
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
	limit := storage.BudgetLimit{Capacity: 1, Period: storage.BudgetMonthly, Epsilon: 1, Delta: 1e-6}
	set := storage.SetBudgetParams{TenantID: "ten_a", Model: "m", Limit: limit, Actor: "cli:root"}
	withSet := func(f func(p *storage.SetBudgetParams)) storage.SetBudgetParams {
		p := set
		f(&p)
		return p
	}
	adjust := storage.AdjustBudgetParams{TenantID: "ten_a", Model: "m", Units: -1, Actor: "cli:root", Reason: "fix"}
	reserve := storage.ReserveBudgetParams{JobID: "job_a", Cost: 1, Default: limit, Actor: "api-key:k"}
	for name, tc := range map[string]struct {
		err     error
		wantErr bool
	}{
		"ok/limit":                {err: BudgetLimit("Limit", limit)},
		"ok/limit-zero":           {err: BudgetLimit("Limit", storage.BudgetLimit{Period: storage.BudgetNever})},
		"fail/limit-capacity":     {err: BudgetLimit("Limit", storage.BudgetLimit{Capacity: -1, Period: storage.BudgetDaily}), wantErr: true},
		"fail/limit-period":       {err: BudgetLimit("Limit", storage.BudgetLimit{Period: "year"}), wantErr: true},
		"fail/limit-epsilon-nan":  {err: BudgetLimit("Limit", storage.BudgetLimit{Period: storage.BudgetDaily, Epsilon: math.NaN()}), wantErr: true},
		"fail/limit-epsilon-inf":  {err: BudgetLimit("Limit", storage.BudgetLimit{Period: storage.BudgetDaily, Epsilon: math.Inf(1)}), wantErr: true},
		"fail/limit-delta-1":      {err: BudgetLimit("Limit", storage.BudgetLimit{Period: storage.BudgetDaily, Delta: 1}), wantErr: true},
		"fail/limit-delta-nan":    {err: BudgetLimit("Limit", storage.BudgetLimit{Period: storage.BudgetDaily, Delta: math.NaN()}), wantErr: true},
		"ok/actor-max":            {err: Actor(strings.Repeat("a", storage.MaxActorBytes))},
		"fail/actor-empty":        {err: Actor(""), wantErr: true},
		"fail/actor-long":         {err: Actor(strings.Repeat("a", storage.MaxActorBytes+1)), wantErr: true},
		"ok/reason-empty":         {err: Reason("", false)},
		"ok/reason-max":           {err: Reason(strings.Repeat("r", storage.MaxReasonBytes), true)},
		"fail/reason-required":    {err: Reason("", true), wantErr: true},
		"fail/reason-long":        {err: Reason(strings.Repeat("r", storage.MaxReasonBytes+1), false), wantErr: true},
		"ok/set":                  {err: SetBudget(set)},
		"fail/set-no-model":       {err: SetBudget(withSet(func(p *storage.SetBudgetParams) { p.Model = "" })), wantErr: true},
		"fail/set-sigma":          {err: SetBudget(withSet(func(p *storage.SetBudgetParams) { p.NoiseSigma = -1 })), wantErr: true},
		"fail/set-limit":          {err: SetBudget(withSet(func(p *storage.SetBudgetParams) { p.Limit.Period = "" })), wantErr: true},
		"ok/set-global":           {err: SetGlobalBudget(storage.SetGlobalBudgetParams{Model: "m", Limit: limit, Actor: "a"})},
		"fail/set-global-actor":   {err: SetGlobalBudget(storage.SetGlobalBudgetParams{Model: "m", Limit: limit}), wantErr: true},
		"ok/delete":               {err: DeleteBudget("a", "")},
		"fail/delete-actor":       {err: DeleteBudget("", "why"), wantErr: true},
		"ok/adjust":               {err: AdjustBudget(adjust, limit)},
		"fail/adjust-zero":        {err: AdjustBudget(storage.AdjustBudgetParams{TenantID: "t", Model: "m", Actor: "a", Reason: "r"}, limit), wantErr: true},
		"fail/adjust-reason":      {err: AdjustBudget(storage.AdjustBudgetParams{TenantID: "t", Model: "m", Units: 1, Actor: "a"}, limit), wantErr: true},
		"fail/adjust-default":     {err: AdjustBudget(adjust, storage.BudgetLimit{}), wantErr: true},
		"ok/reserve":              {err: ReserveBudget(reserve)},
		"fail/reserve-cost":       {err: ReserveBudget(storage.ReserveBudgetParams{JobID: "j", Default: limit, Actor: "a"}), wantErr: true},
		"fail/reserve-no-job":     {err: ReserveBudget(storage.ReserveBudgetParams{Cost: 1, Default: limit, Actor: "a"}), wantErr: true},
		"fail/reserve-no-actor":   {err: ReserveBudget(storage.ReserveBudgetParams{JobID: "j", Cost: 1, Default: limit}), wantErr: true},
		"ok/ledger":               {err: Ledger(storage.LedgerQuery{TenantID: "t", Limit: storage.MaxLedgerEntries})},
		"fail/ledger-limit":       {err: Ledger(storage.LedgerQuery{TenantID: "t"}), wantErr: true},
		"fail/ledger-tenant":      {err: Ledger(storage.LedgerQuery{Limit: 1}), wantErr: true},
		"fail/ledger-before":      {err: Ledger(storage.LedgerQuery{TenantID: "t", Limit: 1, BeforeID: -1}), wantErr: true},
		"ok/job-sigma":            {err: CreateJob(storage.CreateJobParams{NoiseSigma: 0.5})},
		"fail/job-sigma-negative": {err: CreateJob(storage.CreateJobParams{NoiseSigma: -0.5}), wantErr: true},
		"fail/job-sigma-nan":      {err: CreateJob(storage.CreateJobParams{NoiseSigma: math.NaN()}), wantErr: true},
	} {
		if (tc.err != nil) != tc.wantErr {
			t.Errorf("%s: error %v, want error %v", name, tc.err, tc.wantErr)
		}
	}
	if err := BudgetLimit("Default", storage.BudgetLimit{Capacity: -5, Period: storage.BudgetDaily}); err == nil || !strings.Contains(err.Error(), "Default.Capacity") {
		t.Errorf("BudgetLimit error %v does not name the field", err)
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

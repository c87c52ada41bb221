package main

import (
	"io"
	"testing"

	"github.com/spf13/pflag"

	"github.com/hegate/hegate/gateway"
)

// TestLimitFlags: the defaults are the gateway's, and each flag's syntax
// reaches gateway.Config.
func TestLimitFlags(t *testing.T) {
	parse := func(args ...string) (gateway.Config, error) {
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var l limitFlags
		l.register(fs)
		if err := fs.Parse(args); err != nil {
			return gateway.Config{}, err
		}
		if err := l.Validate(); err != nil {
			return gateway.Config{}, err
		}
		var cfg gateway.Config
		l.apply(&cfg)
		return cfg, nil
	}
	cfg, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RateLimits != gateway.DefaultRateLimits || cfg.Quota.KeySetBytes != gateway.DefaultQuotaKeySetBytes ||
		cfg.Concurrency.InferPerTenant != gateway.DefaultInferPerTenant || cfg.Quota.ActiveJobs != gateway.DefaultQuotaActiveJobs {
		t.Fatalf("defaults: %+v %+v %+v", cfg.RateLimits, cfg.Quota, cfg.Concurrency)
	}
	cfg, err = parse("--rate-upload", "6/m,5", "--rate-infer", "off", "--rate-anonymous", "2,10",
		"--quota-key-set-bytes", "600MB", "--quota-blob-bytes", "1GiB", "--quota-key-sets", "-1",
		"--max-uploads-per-tenant", "0", "--max-inferences", "-1", "--client-ip-header", "X-Forwarded-For", "--no-rate-limits")
	if err != nil {
		t.Fatal(err)
	}
	rl := cfg.RateLimits
	if !rl.Disabled || rl.Upload != (gateway.RateLimit{PerSecond: 0.1, Burst: 5}) || rl.Infer.PerSecond >= 0 || rl.Anonymous != (gateway.RateLimit{PerSecond: 2, Burst: 10}) {
		t.Fatalf("rate limits %+v", rl)
	}
	if q := cfg.Quota; q.KeySetBytes != 600e6 || q.BlobBytes != 1<<30 || q.KeySets != -1 {
		t.Fatalf("quota %+v", q)
	}
	if c := cfg.Concurrency; c.UploadPerTenant != -1 || c.InferPerProcess != -1 || c.InferPerTenant != gateway.DefaultInferPerTenant {
		t.Fatalf("concurrency %+v", c)
	}
	if cfg.ClientIPHeader != "X-Forwarded-For" {
		t.Fatalf("client IP header %q", cfg.ClientIPHeader)
	}
	for _, bad := range [][]string{
		{"--rate-infer", "5"}, {"--rate-infer", "5/d,1"}, {"--rate-infer", "0,1"}, {"--rate-infer", "1,0"},
		{"--quota-key-sets", "0"}, {"--quota-key-set-bytes", "1.5GB"}, {"--max-uploads", "-2"},
		{"--client-ip-header", "X-Forwarded-For: x"},
	} {
		if _, err := parse(bad...); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}

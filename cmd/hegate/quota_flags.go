package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/hegate/hegate/gateway"
)

// limitFlags are hegate serve's rate limits, admission caps and quotas
// (gateway.Config.RateLimits, Concurrency, Quota, ClientIPHeader).
type limitFlags struct {
	noRateLimits bool
	rates        struct{ def, infer, upload, enroll, anonymous rateFlag }
	concurrency  gateway.Concurrency
	quota        struct{ keySets, keySetBytes, blobs, blobBytes, activeJobs sizeFlag }
	clientIP     string
}

func (l *limitFlags) register(fs *pflag.FlagSet) {
	d := gateway.DefaultRateLimits
	l.rates.def.set(d.Default)
	l.rates.infer.set(d.Infer)
	l.rates.upload.set(d.Upload)
	l.rates.enroll.set(d.Enroll)
	l.rates.anonymous.set(d.Anonymous)
	const rateHelp = " per API key or device, as RATE,BURST with RATE N/s, N/m or N/h (\"off\": none); per replica"
	fs.BoolVar(&l.noRateLimits, "no-rate-limits", false, "turn every rate limit off (a proxy in front does it)")
	fs.Var(&l.rates.def, "rate-default", "rate limit of authenticated routes without a stricter one (reads, deletes, settings),"+rateHelp)
	fs.Var(&l.rates.infer, "rate-infer", "rate limit of inferences,"+rateHelp)
	fs.Var(&l.rates.upload, "rate-upload", "rate limit of key-set and model uploads,"+rateHelp)
	fs.Var(&l.rates.enroll, "rate-enroll", "rate limit of enrollment challenges and enrollments,"+rateHelp)
	fs.Var(&l.rates.anonymous, "rate-anonymous", "rate limit per client address of unauthenticated requests, and apart of failed authentications, as RATE,BURST")
	fs.StringVar(&l.clientIP, "client-ip-header", envOr("HEGATE_CLIENT_IP_HEADER", ""), "header in which a trusted proxy puts the client address for --rate-anonymous, e.g. X-Forwarded-For (last address used; empty: the connection's) [HEGATE_CLIENT_IP_HEADER]")

	fs.IntVar(&l.concurrency.InferPerTenant, "max-inferences-per-tenant", gateway.DefaultInferPerTenant, "inferences of one tenant in progress at once on this replica; more answer 503 (-1: no cap)")
	fs.IntVar(&l.concurrency.InferPerProcess, "max-inferences", gateway.DefaultInferPerProcess, "inferences in progress at once on this replica; more answer 503 (-1: no cap)")
	fs.IntVar(&l.concurrency.UploadPerTenant, "max-uploads-per-tenant", gateway.DefaultUploadPerTenant, "key-set and model uploads of one tenant in progress at once on this replica (-1: no cap)")
	fs.IntVar(&l.concurrency.UploadPerProcess, "max-uploads", gateway.DefaultUploadPerProcess, "key-set and model uploads in progress at once on this replica (-1: no cap)")

	l.quota.keySets = sizeFlag{gateway.DefaultQuotaKeySets, false}
	l.quota.keySetBytes = sizeFlag{gateway.DefaultQuotaKeySetBytes, true}
	l.quota.blobs = sizeFlag{gateway.DefaultQuotaBlobs, false}
	l.quota.blobBytes = sizeFlag{gateway.DefaultQuotaBlobBytes, true}
	l.quota.activeJobs = sizeFlag{gateway.DefaultQuotaActiveJobs, false}
	fs.Var(&l.quota.keySets, "quota-key-sets", "key sets a tenant may store (-1: no limit)")
	fs.Var(&l.quota.keySetBytes, "quota-key-set-bytes", "bytes of key sets a tenant may store, e.g. 4GiB (an MNIST key set is about 60 MB, a ResNet one 420 MB; -1: no limit)")
	fs.Var(&l.quota.blobs, "quota-blobs", "blobs a tenant may store: key sets, job inputs and results until --retention expires them, models (-1: no limit)")
	fs.Var(&l.quota.blobBytes, "quota-blob-bytes", "bytes of those blobs a tenant may store, e.g. 16GiB (-1: no limit)")
	fs.Var(&l.quota.activeJobs, "quota-active-jobs", "queued and running jobs a tenant may have; more inferences answer 429 (-1: no limit)")
}

// apply puts the flags into cfg; a nil l (a command without these
// flags) leaves the gateway's defaults.
func (l *limitFlags) apply(cfg *gateway.Config) {
	if l == nil {
		return
	}
	cfg.RateLimits = gateway.RateLimits{
		Disabled:  l.noRateLimits,
		Default:   l.rates.def.l,
		Infer:     l.rates.infer.l,
		Upload:    l.rates.upload.l,
		Enroll:    l.rates.enroll.l,
		Anonymous: l.rates.anonymous.l,
	}
	// 0 would select the default: a flag of 0 means no cap, like -1.
	noZero := func(n int) int {
		if n == 0 {
			return -1
		}
		return n
	}
	cfg.Concurrency = gateway.Concurrency{
		InferPerTenant: noZero(l.concurrency.InferPerTenant), InferPerProcess: noZero(l.concurrency.InferPerProcess),
		UploadPerTenant: noZero(l.concurrency.UploadPerTenant), UploadPerProcess: noZero(l.concurrency.UploadPerProcess),
	}
	cfg.Quota = gateway.Quota{
		KeySets: l.quota.keySets.n, KeySetBytes: l.quota.keySetBytes.n,
		Blobs: l.quota.blobs.n, BlobBytes: l.quota.blobBytes.n, ActiveJobs: l.quota.activeJobs.n,
	}
	cfg.ClientIPHeader = l.clientIP
}

// Validate names the first bad setting.
func (l *limitFlags) Validate() error {
	for name, n := range map[string]int{
		"max-inferences-per-tenant": l.concurrency.InferPerTenant, "max-inferences": l.concurrency.InferPerProcess,
		"max-uploads-per-tenant": l.concurrency.UploadPerTenant, "max-uploads": l.concurrency.UploadPerProcess,
	} {
		if n < -1 {
			return fmt.Errorf("--%s %d: want a count, or -1 for no cap", name, n)
		}
	}
	if strings.ContainsAny(l.clientIP, " :\r\n") {
		return fmt.Errorf("--client-ip-header %q is not a header name", l.clientIP)
	}
	return nil
}

// rateFlag is a rate limit as RATE,BURST: "5/s,20", "6/m,5", "off".
type rateFlag struct{ l gateway.RateLimit }

func (f *rateFlag) set(l gateway.RateLimit) { f.l = l }

// Type names the value in -h (pflag.Value).
func (f *rateFlag) Type() string { return "rate" }

func (f *rateFlag) String() string {
	if f == nil || f.l.PerSecond == 0 && f.l.Burst == 0 {
		return ""
	}
	if f.l.PerSecond < 0 {
		return "off"
	}
	per, unit := f.l.PerSecond, "s"
	switch {
	case per < 1.0/60:
		per, unit = per*3600, "h"
	case per < 1:
		per, unit = per*60, "m"
	}
	return strconv.FormatFloat(per, 'g', 6, 64) + "/" + unit + "," + strconv.Itoa(f.l.Burst)
}

func (f *rateFlag) Set(s string) error {
	s = strings.TrimSpace(s)
	if s == "off" {
		f.l = gateway.RateLimit{PerSecond: -1, Burst: 1}
		return nil
	}
	rate, burst, ok := strings.Cut(s, ",")
	if !ok {
		return fmt.Errorf("%q: want RATE,BURST such as 5/s,20 or 6/m,5, or off", s)
	}
	num, unit, _ := strings.Cut(strings.TrimSpace(rate), "/")
	per, err := strconv.ParseFloat(num, 64)
	if err != nil || per <= 0 || math.IsInf(per, 0) || math.IsNaN(per) {
		return fmt.Errorf("%q: the rate %q is not a positive number", s, num)
	}
	switch unit {
	case "", "s":
	case "m":
		per /= 60
	case "h":
		per /= 3600
	default:
		return fmt.Errorf("%q: the rate's unit %q is not s, m or h", s, unit)
	}
	b, err := strconv.Atoi(strings.TrimSpace(burst))
	if err != nil || b < 1 {
		return fmt.Errorf("%q: the burst %q is not a whole number of at least 1", s, burst)
	}
	f.l = gateway.RateLimit{PerSecond: per, Burst: b}
	return nil
}

// sizeFlag is a count, or with bytes a size with an optional unit (KB, MB,
// GB, TB or KiB, MiB, GiB, TiB); -1 means no limit.
type sizeFlag struct {
	n     int64
	bytes bool
}

// Type names the value in -h (pflag.Value).
func (f *sizeFlag) Type() string {
	if f.bytes {
		return "size"
	}
	return "count"
}

func (f *sizeFlag) String() string {
	if f == nil {
		return ""
	}
	if f.bytes && f.n > 0 && f.n%(1<<30) == 0 {
		return strconv.FormatInt(f.n>>30, 10) + "GiB"
	}
	return strconv.FormatInt(f.n, 10)
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

func (f *sizeFlag) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := int64(1)
	if f.bytes {
		for _, u := range sizeUnits {
			if strings.HasSuffix(s, u.suffix) {
				s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
				break
			}
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a whole number", s)
	case n == -1 && mult == 1:
		f.n = -1
		return nil
	case n < 1:
		return fmt.Errorf("%d: want at least 1, or -1 for no limit", n)
	case n > math.MaxInt64/mult:
		return fmt.Errorf("%d×%d overflows", n, mult)
	}
	f.n = n * mult
	return nil
}

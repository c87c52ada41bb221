package catalog

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/hegate/hegate/he/ir"
)

// ParseOptions reads compile options from named text values, as a query
// string (POST /v1/models) or a form (the console's import) gives them:
// preset, approx_method, sign, maxpool, split_after, relu_degree,
// abs_degree, margin, device_macs, noise_sigma, query_epsilon,
// query_delta, clip (true|false), output_range ("low,high") or
// output_low and output_high, and the preprocessing scale, mean, std and
// layout. errs names each value that does not parse, by its name, with
// what is wrong; the options are then incomplete. It does not Validate.
func ParseOptions(get func(name string) string) (o Options, errs map[string]string) {
	errs = map[string]string{}
	val := func(k string) string { return strings.TrimSpace(get(k)) }
	num := func(k string, dst *float64) {
		s := val(k)
		if s == "" {
			return
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			errs[k] = fmt.Sprintf("%q is not a number", truncate(s, 40))
			return
		}
		*dst = f
	}
	integer := func(k string, dst *int) {
		s := val(k)
		if s == "" {
			return
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			errs[k] = fmt.Sprintf("%q is not a whole number", truncate(s, 40))
			return
		}
		*dst = n
	}
	o.Preset = val("preset")
	o.Method, o.Sign, o.MaxPool = val("approx_method"), val("sign"), val("maxpool")
	o.SplitAfter = val("split_after")
	integer("relu_degree", &o.ReluDegree)
	integer("abs_degree", &o.AbsDegree)
	num("margin", &o.Margin)
	var macs float64
	num("device_macs", &macs)
	if macs != 0 && !(macs >= 1 && macs <= 1<<53 && macs == math.Trunc(macs)) {
		errs["device_macs"] = "a whole number of at least 1"
	}
	o.DeviceMACs = int64(macs)
	num("noise_sigma", &o.NoiseSigma)
	num("query_epsilon", &o.QueryEpsilon)
	num("query_delta", &o.QueryDelta)
	switch val("clip") {
	case "", "false":
	case "true":
		o.Clip = true
	default:
		errs["clip"] = fmt.Sprintf("%q: want true or false", truncate(val("clip"), 40))
	}
	lo, hi := val("output_low"), val("output_high")
	if r := val("output_range"); r != "" {
		var ok bool
		if lo, hi, ok = strings.Cut(r, ","); !ok {
			errs["output_range"] = fmt.Sprintf("%q: want two numbers low,high", truncate(r, 40))
		}
		lo, hi = strings.TrimSpace(lo), strings.TrimSpace(hi)
	}
	switch {
	case errs["output_range"] != "":
	case lo == "" && hi == "":
	case lo == "":
		errs["output_low"] = "give both ends of the range, or neither"
	case hi == "":
		errs["output_high"] = "give both ends of the range, or neither"
	default:
		var r [2]float64
		bounds := map[string]string{"output_low": lo, "output_high": hi}
		for i, k := range []string{"output_low", "output_high"} {
			f, err := strconv.ParseFloat(bounds[k], 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				errs[k] = fmt.Sprintf("%q is not a number", truncate(bounds[k], 40))
				continue
			}
			r[i] = f
		}
		o.OutputRange = &r
	}
	if val("scale") != "" || val("mean") != "" || val("std") != "" || val("layout") != "" {
		pp := &ir.Preprocess{Scale: 1, Std: 1, Layout: val("layout")}
		num("scale", &pp.Scale)
		num("mean", &pp.Mean)
		num("std", &pp.Std)
		o.Preprocess = pp
	}
	return o, errs
}

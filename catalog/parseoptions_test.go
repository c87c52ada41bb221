package catalog

import (
	"testing"
)

// TestParseOptions: one parser for the API's query and the console's
// form: values parse, bad ones are named by field, both spellings of the
// output range work.
func TestParseOptions(t *testing.T) {
	vals := map[string]string{
		"preset": "n14-leveled", "relu_degree": "15", "margin": "0.1", "device_macs": "2000000",
		"noise_sigma": "4", "clip": "true", "output_range": "-3, 5", "scale": "0.5",
	}
	o, errs := ParseOptions(func(k string) string { return vals[k] })
	if len(errs) != 0 {
		t.Fatalf("errors %v", errs)
	}
	if o.Preset != "n14-leveled" || o.ReluDegree != 15 || o.Margin != 0.1 || o.DeviceMACs != 2000000 || o.NoiseSigma != 4 || !o.Clip ||
		o.OutputRange == nil || *o.OutputRange != [2]float64{-3, 5} || o.Preprocess == nil || o.Preprocess.Scale != 0.5 || o.Preprocess.Std != 1 {
		t.Errorf("options %+v", o)
	}
	form := map[string]string{"output_low": "-1", "output_high": "2"}
	if o, errs := ParseOptions(func(k string) string { return form[k] }); len(errs) != 0 || *o.OutputRange != [2]float64{-1, 2} {
		t.Errorf("form range: %+v %v", o.OutputRange, errs)
	}
	for field, bad := range map[string]map[string]string{
		"margin":       {"margin": "NaN"},
		"noise_sigma":  {"noise_sigma": "+Inf"},
		"device_macs":  {"device_macs": "2.5"},
		"relu_degree":  {"relu_degree": "x"},
		"clip":         {"clip": "yes"},
		"output_range": {"output_range": "3"},
		"output_high":  {"output_low": "1"},
	} {
		if _, errs := ParseOptions(func(k string) string { return bad[k] }); errs[field] == "" {
			t.Errorf("%v: no error on %s (%v)", bad, field, errs)
		}
	}
}

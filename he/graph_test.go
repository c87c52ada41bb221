package he

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hegate/hegate"
)

func TestReadGraph(t *testing.T) {
	var good bytes.Buffer
	if err := WriteGraph(&good, tinyCNN(rand.New(rand.NewPCG(1, 1)))); err != nil {
		t.Fatal(err)
	}
	g, err := ReadGraph(bytes.NewReader(good.Bytes()))
	if err != nil {
		t.Fatalf("ok/round-trip: %v", err)
	}
	if g.OutputSize() != 3 {
		t.Fatalf("ok/round-trip: output size %d", g.OutputSize())
	}
	tests := []struct{ name, json, want string }{
		{"fail/not-json", `{"name":`, "not valid JSON"},
		{"fail/unknown-field", `{"name":"x","input":[4],"layers":[],"extra":1}`, "not valid JSON"},
		{"fail/no-layers", `{"name":"x","input":[4],"layers":[]}`, "0 layers"},
		{"fail/unknown-op", `{"name":"x","input":[4],"layers":[{"op":"softmax"}]}`, "unknown op"},
		{"fail/weights", `{"name":"x","input":[4],"layers":[{"op":"dense","dense":{"in":4,"out":1,"weights":[1],"bias":[0]}}]}`, "1 weights, want 4"},
		{"fail/shape", `{"name":"x","input":[1,4,4],"layers":[{"op":"dense","dense":{"in":16,"out":1,"weights":[],"bias":[0]}}]}`, "add a flatten layer"},
		{"fail/kernel", `{"name":"x","input":[1,2,2],"layers":[{"op":"conv2d","conv":{"in_channels":1,"out_channels":1,"kernel":5,"stride":1,"padding":0,"weights":[],"bias":[0]}}]}`, "larger than padded input"},
		{"fail/huge-input", `{"name":"x","input":[100000,100000,100000],"layers":[{"op":"flatten"}]}`, "too large"},
		{"fail/overflow", `{"name":"x","input":[4194304,4194304,4194304],"layers":[{"op":"flatten"}]}`, "too large"},
		{"fail/mixed", `{"name":"x","input":[4],"layers":[{"op":"flatten","poly":{"coeffs":[1]}}]}`, "takes no parameters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadGraph(strings.NewReader(tc.json))
			if !hegate.Is(err, hegate.KindInvalid) || !strings.Contains(hegate.DetailOf(err), tc.want) {
				t.Fatalf("got %v, want invalid mentioning %q", err, tc.want)
			}
		})
	}
}

// FuzzReadGraph: any bytes either fail with KindInvalid/KindTooLarge or
// give a graph whose reference executor runs on a zero input.
func FuzzReadGraph(f *testing.F) {
	var good bytes.Buffer
	_ = WriteGraph(&good, tinyDense(rand.New(rand.NewPCG(2, 2))))
	f.Add(good.Bytes())
	f.Add([]byte(`{"name":"x","input":[1,3,3],"layers":[{"op":"conv2d","conv":{"in_channels":1,"out_channels":1,"kernel":2,"stride":1,"padding":1,"weights":[1,2,3,4],"bias":[0]}},{"op":"flatten"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := ReadGraph(bytes.NewReader(b))
		if err != nil {
			if k := hegate.KindOf(err); k != hegate.KindInvalid && k != hegate.KindTooLarge {
				t.Fatalf("kind %v: %v", k, err)
			}
			return
		}
		if g.InputSize() > 1<<16 {
			return // valid but too slow to run in a fuzz loop
		}
		if _, err := g.Reference(make([]float64, g.InputSize())); err != nil {
			t.Fatal(err)
		}
	})
}

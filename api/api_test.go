package api

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestBytesElements(t *testing.T) {
	t.Parallel()
	one := AppendBytesElement(nil, []byte("ciphertext"))
	two := AppendBytesElement(bytes.Clone(one), nil)
	tests := map[string]struct {
		data   []byte
		want   int
		ok     bool
		detail string
	}{
		"ok/one":            {one, 1, true, ""},
		"ok/two-with-empty": {two, 2, true, ""},
		"ok/none":           {nil, 0, true, ""},
		"fail/trailing":     {append(bytes.Clone(one), 0), 1, false, "after its 1 element"},
		"fail/truncated":    {one[:len(one)-1], 1, false, "length prefix says"},
		"fail/short-prefix": {[]byte{1, 0}, 1, false, "truncated length prefix"},
		"fail/too-few":      {one, 2, false, "has 1 element(s), want 2"},
		"fail/huge-prefix":  {[]byte{0xff, 0xff, 0xff, 0xff, 1}, 1, false, "length prefix says"},
		"fail/empty-want-1": {nil, 1, false, "has 0 element(s)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			elems, err := SplitBytesElements(tc.data, tc.want)
			if tc.ok {
				if err != nil || len(elems) != tc.want {
					t.Fatalf("got %d elements, %v", len(elems), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("err %v, want one mentioning %q", err, tc.detail)
			}
		})
	}
	if p := BytesElementPrefix(10); !bytes.Equal(p[:], one[:4]) {
		t.Fatalf("prefix %x, want %x", p, one[:4])
	}
}

func TestParameters(t *testing.T) {
	t.Parallel()
	var p Parameters
	if err := json.Unmarshal([]byte(`{"n":12,"f":1.5,"big":1e300,"s":"x","b":true,"neg":-4}`), &p); err != nil {
		t.Fatal(err)
	}
	if n, ok := p.Int64("n"); !ok || n != 12 {
		t.Errorf("Int64(n) = %d, %v", n, ok)
	}
	if n, ok := p.Int64("neg"); !ok || n != -4 {
		t.Errorf("Int64(neg) = %d, %v", n, ok)
	}
	for _, k := range []string{"f", "big", "s", "missing"} {
		if _, ok := p.Int64(k); ok {
			t.Errorf("Int64(%s) ok", k)
		}
	}
	if s, ok := p.String("s"); !ok || s != "x" {
		t.Errorf("String(s) = %q, %v", s, ok)
	}
	if _, ok := p.String("n"); ok {
		t.Error("String(n) ok")
	}
	if b, ok := p.Bool("b"); !ok || !b {
		t.Errorf("Bool(b) = %v, %v", b, ok)
	}
	if n, ok := (Parameters{"i": 7}).Int64("i"); !ok || n != 7 {
		t.Errorf("Int64 of an int = %d, %v", n, ok)
	}
}

func TestJobStatusTerminal(t *testing.T) {
	t.Parallel()
	for s, want := range map[JobStatus]bool{JobQueued: false, JobRunning: false, JobSucceeded: true, JobFailed: true, JobCancelled: true} {
		if s.Terminal() != want {
			t.Errorf("%s.Terminal() = %v", s, !want)
		}
	}
}

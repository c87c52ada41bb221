package dp

import (
	"errors"
	"math/big"
	"testing"
)

func TestSigmaToLattice(t *testing.T) {
	sigma, err := ParseRat("12.5")
	if err != nil {
		t.Fatal(err)
	}
	g := new(big.Rat).SetFrac64(1, 1<<20)
	s2, err := SigmaToLattice(sigma, g)
	if err != nil {
		t.Fatal(err)
	}
	// (12.5 * 2^20)^2 = 156.25 * 2^40 = 171798691840000, exactly.
	if want := new(big.Rat).SetInt64(171_798_691_840_000); s2.Cmp(want) != 0 {
		t.Errorf("SigmaToLattice(12.5, 2^-20) = %s, want %s", s2.RatString(), want.RatString())
	}
	// A decimal granularity: (0.3 / 0.001)^2 = 90000.
	s2, _ = SigmaToLattice(big.NewRat(3, 10), big.NewRat(1, 1000))
	if s2.Cmp(big.NewRat(90000, 1)) != 0 {
		t.Errorf("SigmaToLattice(0.3, 0.001) = %s, want 90000", s2.RatString())
	}
	// Non-integer results stay exact: (1/3 / 1/2)^2 = 4/9.
	s2, _ = SigmaToLattice(big.NewRat(1, 3), big.NewRat(1, 2))
	if s2.Cmp(big.NewRat(4, 9)) != 0 {
		t.Errorf("SigmaToLattice(1/3, 1/2) = %s, want 4/9", s2.RatString())
	}
	for _, tc := range []struct {
		name     string
		sigma, g *big.Rat
	}{
		{"nil sigma", nil, g},
		{"nil granularity", sigma, nil},
		{"zero sigma", new(big.Rat), g},
		{"negative granularity", sigma, big.NewRat(-1, 2)},
		{"zero granularity", sigma, new(big.Rat)},
	} {
		if _, err := SigmaToLattice(tc.sigma, tc.g); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("SigmaToLattice(%s): err = %v, want ErrInvalidParameter", tc.name, err)
		}
	}
}

func TestParseRat(t *testing.T) {
	for s, want := range map[string]*big.Rat{
		"12.5":  big.NewRat(25, 2),
		"1/3":   big.NewRat(1, 3),
		"1e-3":  big.NewRat(1, 1000),
		" 7 ":   big.NewRat(7, 1),
		"-0.25": big.NewRat(-1, 4),
	} {
		got, err := ParseRat(s)
		if err != nil || got.Cmp(want) != 0 {
			t.Errorf("ParseRat(%q) = %v, %v; want %s", s, got, err, want.RatString())
		}
	}
	long := make([]byte, 1001)
	for i := range long {
		long[i] = '1'
	}
	for _, bad := range []string{"", "x", "1/0", "NaN", "Inf", "0x1p-20", "1e401", string(long)} {
		if _, err := ParseRat(bad); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("ParseRat(%q): err = %v, want ErrInvalidParameter", bad, err)
		}
	}
}

package dp

import (
	"errors"
	"math"
	"testing"
)

func TestRhoUnitsRounding(t *testing.T) {
	for _, tc := range []struct {
		rho         float64
		ceil, floor Rho
	}{
		{0, 0, 0},
		{1.0 / 32, 31_250_000, 31_250_000}, // exact in binary and in units
		{1, RhoUnitsPerRho, RhoUnitsPerRho},
		// 0.1 as a float64 is 0.1000000000000000055511151231257827..., so it
		// is 100000000.0000000055511... units: spends round up, capacities
		// down.
		{0.1, 100_000_001, 100_000_000},
		{1e-10, 1, 0},
		{1e-13, 1, 0},
		{5e-324, 1, 0}, // the smallest positive float64 still costs a unit
	} {
		c, err := RhoUnitsCeil(tc.rho)
		if err != nil || c != tc.ceil {
			t.Errorf("RhoUnitsCeil(%v) = %d, %v; want %d", tc.rho, c, err, tc.ceil)
		}
		f, err := RhoUnitsFloor(tc.rho)
		if err != nil || f != tc.floor {
			t.Errorf("RhoUnitsFloor(%v) = %d, %v; want %d", tc.rho, f, err, tc.floor)
		}
	}
	for _, bad := range []float64{-1e-300, math.NaN(), math.Inf(1), 1e10} {
		if _, err := RhoUnitsCeil(bad); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("RhoUnitsCeil(%v): err = %v, want ErrInvalidParameter", bad, err)
		}
		if _, err := RhoUnitsFloor(bad); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("RhoUnitsFloor(%v): err = %v, want ErrInvalidParameter", bad, err)
		}
	}
	// Ceil is never below and floor never above the value, over a spread of
	// inputs.
	for x := 1e-13; x < 1e6; x *= 1.37 {
		c, _ := RhoUnitsCeil(x)
		f, _ := RhoUnitsFloor(x)
		if c < f || c-f > 1 {
			t.Errorf("rho %v: ceil %d, floor %d", x, c, f)
		}
		if float64(c) < x*RhoUnitsPerRho*(1-1e-15) || float64(f) > x*RhoUnitsPerRho*(1+1e-15) {
			t.Errorf("rho %v: ceil %d, floor %d do not bracket %v units", x, c, f, x*RhoUnitsPerRho)
		}
	}
}

func TestRhoFormatting(t *testing.T) {
	for _, tc := range []struct {
		r Rho
		s string
	}{
		{0, "0"},
		{31_250_000, "0.03125"},
		{2 * RhoUnitsPerRho, "2"},
		{1, "0.000000001"},
		{-1, "-0.000000001"},
		{1_500_000_000, "1.5"},
		{math.MaxInt64, "9223372036.854775807"},
		{math.MinInt64, "-9223372036.854775808"},
	} {
		if got := tc.r.String(); got != tc.s {
			t.Errorf("Rho(%d).String() = %q, want %q", int64(tc.r), got, tc.s)
		}
		back, err := ParseRho(tc.s)
		if err != nil || back != tc.r {
			t.Errorf("ParseRho(%q) = %d, %v; want %d", tc.s, back, err, tc.r)
		}
	}
	if got := Rho(31_250_000).Float64(); got != 0.03125 {
		t.Errorf("Float64 = %v, want 0.03125", got)
	}
	if got, err := ParseRho("1e-6"); err != nil || got != 1_000 {
		t.Errorf(`ParseRho("1e-6") = %d, %v; want 1000`, got, err)
	}
	for _, bad := range []string{"", "abc", "1e-10", "0.0000000001", "1e10", "NaN", "0x10", "1e999999999"} {
		if _, err := ParseRho(bad); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("ParseRho(%q): err = %v, want ErrInvalidParameter", bad, err)
		}
	}
}

func TestRhoArithmetic(t *testing.T) {
	perQuery, _ := RhoUnitsCeil(1.0 / 32)
	total, err := perQuery.Times(10)
	if err != nil || total != 312_500_000 || total.String() != "0.3125" {
		t.Errorf("10 queries of 1/32: %v, %v; want 0.3125", total, err)
	}
	if z, err := perQuery.Times(0); err != nil || z != 0 {
		t.Errorf("Times(0) = %v, %v", z, err)
	}
	if _, err := perQuery.Times(-1); !errors.Is(err, ErrInvalidParameter) {
		t.Errorf("Times(-1): err = %v", err)
	}
	if _, err := Rho(math.MaxInt64 / 2).Times(3); !errors.Is(err, ErrInvalidParameter) {
		t.Errorf("Times overflow: err = %v", err)
	}
	if s, err := Rho(5).Add(-7); err != nil || s != -2 {
		t.Errorf("5 + -7 = %v, %v", s, err)
	}
	if _, err := Rho(math.MaxInt64).Add(1); !errors.Is(err, ErrInvalidParameter) {
		t.Errorf("Add overflow: err = %v", err)
	}
	if _, err := Rho(math.MinInt64).Add(-1); !errors.Is(err, ErrInvalidParameter) {
		t.Errorf("Add underflow: err = %v", err)
	}
}

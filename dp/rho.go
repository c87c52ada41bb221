package dp

import (
	"fmt"
	"math"
	"math/big"
	"strings"
)

// Rho is an amount of zCDP privacy loss counted in exact integer units of
// 1e-9 rho ("nanorho"): Rho(31_250_000) is rho = 0.03125. Budgets are
// kept in these units so that spending and refunding are exact integer
// arithmetic with no rounding drift: spends are converted with RhoUnitsCeil
// (rounded up, never under-charged) and capacities with RhoUnitsFloor
// (rounded down, never over-granted). The largest representable amount is
// about 9.2e9 rho: far beyond any meaningful budget, and room for the huge
// per-query costs of weak mechanisms (a test's tiny noise), which a budget
// must still be able to count. A query cheaper than 1e-9 rho costs one unit.
type Rho int64

// RhoUnitsPerRho is the number of Rho units in rho = 1.
const RhoUnitsPerRho = 1_000_000_000

// RhoUnitsCeil converts rho >= 0 to Rho units, rounding up: the result is the
// smallest whole number of units that is at least rho. The conversion is
// exact (no float rounding in the multiplication).
func RhoUnitsCeil(rho float64) (Rho, error) {
	return rhoUnits(rho, true)
}

// RhoUnitsFloor converts rho >= 0 to Rho units, rounding down: the result is
// the largest whole number of units that is at most rho.
func RhoUnitsFloor(rho float64) (Rho, error) {
	return rhoUnits(rho, false)
}

func rhoUnits(rho float64, up bool) (Rho, error) {
	if err := checkNonNegative("rho", rho); err != nil {
		return 0, err
	}
	r := new(big.Rat).SetFloat64(rho) // exact: rho is finite
	r.Mul(r, new(big.Rat).SetInt64(RhoUnitsPerRho))
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if up && m.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("%w: rho = %v is too large for Rho units (max %v)", ErrInvalidParameter, rho, Rho(math.MaxInt64))
	}
	return Rho(q.Int64()), nil
}

// Float64 returns the amount in units of rho (rounded to the nearest float64).
func (r Rho) Float64() float64 {
	whole, frac := int64(r)/RhoUnitsPerRho, int64(r)%RhoUnitsPerRho
	return float64(whole) + float64(frac)/RhoUnitsPerRho
}

// String formats the amount as an exact decimal number of rho, without
// trailing zeros: "0.03125", "2", "-0.000000001".
func (r Rho) String() string {
	sign := ""
	u := uint64(r)
	if r < 0 {
		sign, u = "-", -u
	}
	whole, frac := u/RhoUnitsPerRho, u%RhoUnitsPerRho
	if frac == 0 {
		return fmt.Sprintf("%s%d", sign, whole)
	}
	return strings.TrimRight(fmt.Sprintf("%s%d.%09d", sign, whole, frac), "0")
}

// ParseRho parses an exact decimal number of rho ("0.03125", "1e-6") into Rho
// units. It refuses values with more precision than one unit (1e-9) and
// values out of range, instead of rounding them.
func ParseRho(s string) (Rho, error) {
	x, err := ParseRat(s)
	if err != nil {
		return 0, fmt.Errorf("parsing rho: %w", err)
	}
	x.Mul(x, new(big.Rat).SetInt64(RhoUnitsPerRho))
	if !x.IsInt() {
		return 0, fmt.Errorf("%w: rho %q has more precision than 1e-9", ErrInvalidParameter, s)
	}
	if !x.Num().IsInt64() {
		return 0, fmt.Errorf("%w: rho %q is out of range", ErrInvalidParameter, s)
	}
	return Rho(x.Num().Int64()), nil
}

// Add returns r + o, or an error if the sum overflows.
func (r Rho) Add(o Rho) (Rho, error) {
	s := r + o
	if (o > 0 && s < r) || (o < 0 && s > r) {
		return 0, fmt.Errorf("%w: Rho sum %d + %d overflows", ErrInvalidParameter, r, o)
	}
	return s, nil
}

// Times returns the cost of k queries of r each, k*r (zCDP composes
// additively), or an error if k is negative or the product overflows.
func (r Rho) Times(k int64) (Rho, error) {
	if k < 0 {
		return 0, fmt.Errorf("%w: number of queries must be non-negative, got %d", ErrInvalidParameter, k)
	}
	if k == 0 || r == 0 {
		return 0, nil
	}
	p := r * Rho(k)
	if p/Rho(k) != r {
		return 0, fmt.Errorf("%w: Rho product %d * %d overflows", ErrInvalidParameter, r, k)
	}
	return p, nil
}

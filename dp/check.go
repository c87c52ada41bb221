package dp

import (
	"fmt"
	"math"
)

// Argument checks shared by the accounting functions. Each returns an error
// wrapping ErrInvalidParameter that names the argument and its value.

func checkPositive(name string, x float64) error {
	if math.IsNaN(x) || math.IsInf(x, 0) || x <= 0 {
		return fmt.Errorf("%w: %s must be positive and finite, got %v", ErrInvalidParameter, name, x)
	}
	return nil
}

func checkNonNegative(name string, x float64) error {
	if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
		return fmt.Errorf("%w: %s must be non-negative and finite, got %v", ErrInvalidParameter, name, x)
	}
	return nil
}

// checkDelta requires 0 < delta < 1.
func checkDelta(delta float64) error {
	if math.IsNaN(delta) || delta <= 0 || delta >= 1 {
		return fmt.Errorf("%w: delta must be in (0, 1), got %v", ErrInvalidParameter, delta)
	}
	return nil
}

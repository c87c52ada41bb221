package dp

import "errors"

// ErrInvalidParameter is wrapped by every error that reports a bad argument
// (negative, zero, NaN, infinite or absurdly large). Test for it with
// errors.Is.
var ErrInvalidParameter = errors.New("dp: invalid parameter")

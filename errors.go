package hegate

import (
	"errors"
	"fmt"
)

// Kind classifies an error. Kinds become HTTP statuses and problem types in
// exactly one place, in package gateway.
type Kind uint8

// The kinds of errors.
const (
	KindInternal        Kind = iota // a server fault; nothing about it reaches the client
	KindInvalid                     // the request or its content is malformed or inconsistent
	KindNotFound                    // the object does not exist for this caller
	KindUnauthenticated             // no credential, or one that does not verify
	KindForbidden                   // the credential is good but may not do this
	KindConflict                    // the request conflicts with the current state
	KindTooLarge                    // a body or object exceeds a configured limit
	KindUnavailable                 // try again later (overload, shutting down, not ready)
	KindBudgetExhausted             // the tenant's privacy budget cannot pay for this
	KindRejected                    // attestation evidence or a policy check said no
	KindGone                        // the object existed but was removed (retention)
)

var kindNames = [...]string{
	KindInternal:        "internal",
	KindInvalid:         "invalid",
	KindNotFound:        "not found",
	KindUnauthenticated: "unauthenticated",
	KindForbidden:       "forbidden",
	KindConflict:        "conflict",
	KindTooLarge:        "too large",
	KindUnavailable:     "unavailable",
	KindBudgetExhausted: "budget exhausted",
	KindRejected:        "rejected",
	KindGone:            "gone",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Error is the service's error. Detail is safe to show to the client; Err is
// the internal cause and is only logged.
type Error struct {
	Op     string // the operation, e.g. "keys.upload"
	Kind   Kind
	Detail string // client-safe explanation; empty for internal errors
	Err    error  // the cause, may be nil
}

// E builds an *Error. Detail is formatted from format and args.
func E(op string, kind Kind, cause error, format string, args ...any) *Error {
	detail := format
	if len(args) > 0 {
		detail = fmt.Sprintf(format, args...)
	}
	return &Error{Op: op, Kind: kind, Detail: detail, Err: cause}
}

func (e *Error) Error() string {
	msg := e.Op + ": " + e.Kind.String()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// KindOf reports the Kind of the outermost *Error in err's chain, or
// KindInternal when there is none. Wrapping with fmt.Errorf("...: %w")
// never loses the Kind.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// DetailOf returns the client-safe detail of the outermost *Error in err's
// chain, or "" when there is none or it is internal.
func DetailOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != KindInternal {
		return e.Detail
	}
	return ""
}

// Is reports whether err carries the given Kind.
func Is(err error, kind Kind) bool { return err != nil && KindOf(err) == kind }

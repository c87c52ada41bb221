package cosesig

import (
	"errors"
	"reflect"
	"strings"

	"github.com/fxamacker/cbor/v2"

	"github.com/hegate/hegate/attest"
)

// decMode reads untrusted CBOR: definite lengths only, no tags, no
// duplicate map keys, at most attest.MaxNestingDepth levels and
// attest.MaxItems elements in any array or map. The decoder checks the
// whole item is well formed against these limits before it allocates, so a
// declared length larger than the input fails without the memory for it.
var decMode cbor.DecMode

// encMode writes CBOR in the core deterministic encoding (RFC 8949
// section 4.2.1): preferred lengths, map keys sorted.
var encMode cbor.EncMode

func init() {
	var err error
	decMode, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  attest.MaxNestingDepth,
		MaxArrayElements: attest.MaxItems,
		MaxMapPairs:      attest.MaxItems,
		IntDec:           cbor.IntDecConvertSignedOrFail,
		MapKeyByteString: cbor.MapKeyByteStringForbidden,
		DefaultMapType:   reflect.TypeOf(map[any]any(nil)),
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	opts := cbor.CoreDetEncOptions()
	opts.NilContainers = cbor.NilContainerAsEmpty // nil []byte is h'', not null
	encMode, err = opts.EncMode()
	if err != nil {
		panic(err)
	}
}

// Unmarshal decodes one CBOR data item b into v with the limits above.
// Every failure is an *attest.Error: too-large for a limit, malformed for
// anything else (including bytes after the item and duplicate map keys).
// what names the item in the error's detail.
func Unmarshal(b []byte, v any, what string) error {
	if len(b) > attest.MaxEvidenceBytes {
		return attest.Errorf(attest.ReasonTooLarge, "%s: %d bytes exceeds %d", what, len(b), attest.MaxEvidenceBytes)
	}
	if err := decMode.Unmarshal(b, v); err != nil {
		return decodeError(err, what)
	}
	return nil
}

// Marshal encodes v in the core deterministic encoding.
func Marshal(v any) ([]byte, error) {
	return encMode.Marshal(v)
}

// decodeError turns a decoder error into an *attest.Error.
func decodeError(err error, what string) *attest.Error {
	var (
		nested *cbor.MaxNestedLevelError
		arr    *cbor.MaxArrayElementsError
		pairs  *cbor.MaxMapPairsError
	)
	if errors.As(err, &nested) || errors.As(err, &arr) || errors.As(err, &pairs) ||
		// A declared length past the int range has no error type of its
		// own in fxamacker/cbor; it is over the element limits all the
		// same.
		strings.HasSuffix(err.Error(), "would cause integer overflow") {
		return attest.Errorf(attest.ReasonTooLarge, "%s: %v", what, err)
	}
	return attest.Errorf(attest.ReasonMalformed, "%s: %v", what, err)
}

// isDup reports whether err is a duplicate map key.
func isDup(err error) bool {
	var dup *cbor.DupMapKeyError
	return errors.As(err, &dup)
}

// majorType is the CBOR major type of the item that starts b, or -1 for
// no bytes.
func majorType(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0] >> 5)
}

// CBOR major types.
const (
	majorByteString = 2
	majorTextString = 3
	majorArray      = 4
	majorMap        = 5
	majorTag        = 6
)

// RawBytes decodes raw, which must be a CBOR byte string (major type 2),
// into its contents; anything else is malformed.
func RawBytes(raw cbor.RawMessage, what string) ([]byte, error) {
	if majorType(raw) != majorByteString {
		return nil, attest.Errorf(attest.ReasonMalformed, "%s is not a byte string", what)
	}
	var b []byte
	if err := Unmarshal(raw, &b, what); err != nil {
		return nil, err
	}
	return b, nil
}

// RawText decodes raw, which must be a CBOR text string, into a string.
func RawText(raw cbor.RawMessage, what string) (string, error) {
	if majorType(raw) != majorTextString {
		return "", attest.Errorf(attest.ReasonMalformed, "%s is not a text string", what)
	}
	var s string
	if err := Unmarshal(raw, &s, what); err != nil {
		return "", err
	}
	return s, nil
}

// RawInt decodes raw, which must be a CBOR integer (major type 0 or 1)
// that fits an int64.
func RawInt(raw cbor.RawMessage, what string) (int64, error) {
	if mt := majorType(raw); mt != 0 && mt != 1 {
		return 0, attest.Errorf(attest.ReasonMalformed, "%s is not an integer", what)
	}
	var n int64
	if err := Unmarshal(raw, &n, what); err != nil {
		return 0, err
	}
	return n, nil
}

// RawArray decodes raw, which must be a CBOR array, into its elements.
func RawArray(raw cbor.RawMessage, what string) ([]cbor.RawMessage, error) {
	if majorType(raw) != majorArray {
		return nil, attest.Errorf(attest.ReasonMalformed, "%s is not an array", what)
	}
	var a []cbor.RawMessage
	if err := Unmarshal(raw, &a, what); err != nil {
		return nil, err
	}
	return a, nil
}

// RawIntMap decodes raw, which must be a CBOR map whose keys are all
// integers, into key => raw value.
func RawIntMap(raw cbor.RawMessage, what string) (map[int64]cbor.RawMessage, error) {
	if majorType(raw) != majorMap {
		return nil, attest.Errorf(attest.ReasonMalformed, "%s is not a map", what)
	}
	var m map[int64]cbor.RawMessage
	if err := Unmarshal(raw, &m, what); err != nil {
		return nil, err
	}
	return m, nil
}

// RawTextMap decodes raw, which must be a CBOR map whose keys are all text
// strings, into key => raw value.
func RawTextMap(raw cbor.RawMessage, what string) (map[string]cbor.RawMessage, error) {
	if majorType(raw) != majorMap {
		return nil, attest.Errorf(attest.ReasonMalformed, "%s is not a map", what)
	}
	var m map[string]cbor.RawMessage
	if err := Unmarshal(raw, &m, what); err != nil {
		return nil, err
	}
	return m, nil
}

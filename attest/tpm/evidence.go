package tpm

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/hegate/hegate/attest"
)

// Evidence is the decoded evidence map; see the package documentation for
// its CBOR form. Its byte fields are the TPM's own encodings, kept as they
// came so that the signature is checked over exactly the bytes signed.
type Evidence struct {
	// Quote is the marshalled TPMS_ATTEST (the contents of TPM2B_ATTEST).
	Quote []byte `cbor:"quote"`
	// Signature is the marshalled TPMT_SIGNATURE over Quote.
	Signature []byte `cbor:"signature"`
	// AK is the marshalled TPMT_PUBLIC of the attestation key.
	AK []byte `cbor:"ak"`
	// AKCerts are DER certificates, leaf first, certifying AK's public key;
	// nil when the AK is pre-registered.
	AKCerts [][]byte `cbor:"ak_certs,omitempty"`
	// PCRs are the SHA-256 bank values of the quoted PCRs, by index.
	PCRs map[uint32][]byte `cbor:"pcrs"`
}

// pcrSize is the size of a SHA-256 bank PCR value.
const pcrSize = 32

// maxCerts bounds "ak_certs": a leaf and a few intermediates is all a TPM
// AK chain needs, and every certificate costs a signature check.
const maxCerts = 8

var (
	// decMode reads evidence with the limits every attest decoder keeps,
	// and refuses what would make two encodings of one evidence differ in
	// meaning (duplicate keys, case-folded or unknown field names).
	decMode cbor.DecMode
	// encMode writes evidence in core deterministic encoding.
	encMode cbor.EncMode
)

func init() {
	var err error
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   attest.MaxNestingDepth,
		MaxArrayElements:  attest.MaxItems,
		MaxMapPairs:       attest.MaxItems,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
	}.DecMode()
	if err != nil {
		panic("attest/tpm: CBOR decoding options: " + err.Error())
	}
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic("attest/tpm: CBOR encoding options: " + err.Error())
	}
}

// ParseEvidence decodes evidence bytes and checks the map's shape: the
// required fields, "ak_certs" non-empty when present, and 32-byte PCR
// values. It does not look inside the TPM structures; Verifier.Verify
// does. Errors are *attest.Error (too-large or malformed).
func ParseEvidence(b []byte) (*Evidence, error) {
	if len(b) > attest.MaxEvidenceBytes {
		return nil, attest.Errorf(attest.ReasonTooLarge, "evidence of %d bytes exceeds %d", len(b), attest.MaxEvidenceBytes)
	}
	if len(b) == 0 {
		return nil, attest.Errorf(attest.ReasonMalformed, "empty evidence")
	}
	var e Evidence
	if err := decMode.Unmarshal(b, &e); err != nil {
		var (
			nest *cbor.MaxNestedLevelError
			arr  *cbor.MaxArrayElementsError
			mp   *cbor.MaxMapPairsError
		)
		if errors.As(err, &nest) || errors.As(err, &arr) || errors.As(err, &mp) {
			return nil, attest.Errorf(attest.ReasonTooLarge, "evidence CBOR: %v", err)
		}
		return nil, attest.Errorf(attest.ReasonMalformed, "evidence is not the TPM evidence map: %v", err)
	}
	switch {
	case len(e.Quote) == 0:
		return nil, attest.Errorf(attest.ReasonMalformed, `evidence has no "quote"`)
	case len(e.Signature) == 0:
		return nil, attest.Errorf(attest.ReasonMalformed, `evidence has no "signature"`)
	case len(e.AK) == 0:
		return nil, attest.Errorf(attest.ReasonMalformed, `evidence has no "ak"`)
	case e.PCRs == nil:
		return nil, attest.Errorf(attest.ReasonMalformed, `evidence has no "pcrs"`)
	case e.AKCerts != nil && len(e.AKCerts) == 0:
		return nil, attest.Errorf(attest.ReasonMalformed, `"ak_certs" is present but empty`)
	case len(e.AKCerts) > maxCerts:
		return nil, attest.Errorf(attest.ReasonTooLarge, `"ak_certs" has %d certificates, at most %d are read`, len(e.AKCerts), maxCerts)
	}
	for i, c := range e.AKCerts {
		if len(c) == 0 {
			return nil, attest.Errorf(attest.ReasonMalformed, `"ak_certs"[%d] is empty`, i)
		}
	}
	for idx, v := range e.PCRs {
		if len(v) != pcrSize {
			return nil, attest.Errorf(attest.ReasonMalformed, `"pcrs"[%d] is %d bytes, a SHA-256 PCR is %d`, idx, len(v), pcrSize)
		}
	}
	return &e, nil
}

// Marshal writes the evidence in CBOR core deterministic encoding.
func (e *Evidence) Marshal() ([]byte, error) {
	b, err := encMode.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("attest/tpm: encoding evidence: %w", err)
	}
	return b, nil
}

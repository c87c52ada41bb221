package tpm

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// AK is an attestation key loaded in a TPM.
type AK struct {
	// Handle is the key's transient handle.
	Handle tpm2.TPMHandle
	// Name is the key's TPM name, which authorising its use needs.
	Name tpm2.TPM2BName
	// Public is the key's public area, sent as the evidence's "ak".
	Public tpm2.TPMTPublic
	// Certs are DER certificates for the key, leaf first, that Attest
	// sends as "ak_certs"; leave it empty when the tenant registers the
	// key itself.
	Certs [][]byte
}

// AKTemplate is the template CreateAK uses: an ECC NIST P-256 restricted
// signing key with ECDSA-SHA256, made and kept in the TPM (the attributes
// of go-tpm-tools' AKTemplateECC). Restricted is what makes quotes
// trustworthy: such a key refuses to sign anything that claims to come
// from the TPM unless the TPM made it.
func AKTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			Restricted:          true,
			SignEncrypt:         true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme: tpm2.TPMTECCScheme{
				Scheme: tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA,
					&tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
			Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
		}),
	}
}

// CreateAK makes the attestation key as a primary key of the endorsement
// hierarchy from AKTemplate, with an empty endorsement authorisation.
//
// A primary key is derived from the hierarchy's seed and the template, so
// the same TPM gives the same AK every boot: its name, the Result's
// InstanceID, stays the device's identity without storing a key blob. The
// endorsement hierarchy (rather than the owner's) is chosen because a TPM
// obfuscates the reset and restart counts in quotes signed by keys outside
// the endorsement and platform hierarchies, and the verifier compares those
// counts to refuse a clock that went back.
func CreateAK(t transport.TPM) (*AK, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(AKTemplate()),
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("attest/tpm: creating the attestation key: %w", err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		_ = flush(t, rsp.ObjectHandle)
		return nil, fmt.Errorf("attest/tpm: reading the attestation key's public area: %w", err)
	}
	return &AK{Handle: rsp.ObjectHandle, Name: rsp.Name, Public: *pub}, nil
}

// PublicKey returns the AK's public key, the one a tenant registers in its
// endorsements or a CA certifies.
func (ak *AK) PublicKey() (crypto.PublicKey, error) {
	return tpm2.Pub(ak.Public)
}

// Close flushes the AK from the TPM. CreateAK makes the same key again.
func (ak *AK) Close(t transport.TPM) error {
	return flush(t, ak.Handle)
}

func flush(t transport.TPM, h tpm2.TPMHandle) error {
	if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(t); err != nil {
		return fmt.Errorf("attest/tpm: flushing handle %#x: %w", uint32(h), err)
	}
	return nil
}

// maxPCR is one past the highest PCR index a PC Client TPM has.
const maxPCR = 24

// maxQualifyingData is the most a TPM2B_DATA is sure to hold: a SHA-512
// digest (TPM2B_DATA is sized as a TPMT_HA).
const maxQualifyingData = 64

// quoteAttempts bounds the retries when a PCR is extended between the
// quote and the reading of the PCR values.
const quoteAttempts = 3

// Attest quotes the SHA-256 bank PCRs pcrs with ak, nonce as the qualifying
// data, and returns the evidence: the quote, its signature, the AK's
// public area, ak.Certs and the PCR values. nonce is the value the
// verifier expects, attest.ExpectedNonce(attest.FormatTPM, challenge, jkt).
//
// The PCR values are read after the quote, so an extend in between would
// make them disagree with the quoted digest; Attest checks them against it
// and quotes again if they differ, rather than send evidence that cannot
// verify.
func Attest(t transport.TPM, ak *AK, pcrs []int, nonce []byte) ([]byte, error) {
	if len(nonce) == 0 || len(nonce) > maxQualifyingData {
		return nil, fmt.Errorf("attest/tpm: a nonce of %d bytes; 1 to %d fit a quote", len(nonce), maxQualifyingData)
	}
	if len(pcrs) == 0 {
		return nil, errors.New("attest/tpm: no PCR to quote")
	}
	for i, p := range pcrs {
		if p < 0 || p >= maxPCR {
			return nil, fmt.Errorf("attest/tpm: PCR %d is not 0 to %d", p, maxPCR-1)
		}
		if slices.Contains(pcrs[:i], p) {
			return nil, fmt.Errorf("attest/tpm: PCR %d is listed twice", p)
		}
	}
	ev, err := quote(t, ak, pcrs, nonce)
	if err != nil {
		return nil, err
	}
	return ev.Marshal()
}

// quote makes the evidence without checking its arguments, so tests can
// make evidence that Attest would not (an empty nonce).
func quote(t transport.TPM, ak *AK, pcrs []int, nonce []byte) (*Evidence, error) {
	sel := make([]uint, len(pcrs))
	for i, p := range pcrs {
		sel[i] = uint(p)
	}
	selection := tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash:      tpm2.TPMAlgSHA256,
		PCRSelect: tpm2.PCClientCompatible.PCRs(sel...),
	}}}
	hash, err := akHash(ak.Public)
	if err != nil {
		return nil, err
	}
	for range quoteAttempts {
		rsp, err := tpm2.Quote{
			SignHandle:     tpm2.AuthHandle{Handle: ak.Handle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)},
			QualifyingData: tpm2.TPM2BData{Buffer: nonce},
			InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
			PCRSelect:      selection,
		}.Execute(t)
		if err != nil {
			return nil, fmt.Errorf("attest/tpm: quoting: %w", err)
		}
		attested, err := rsp.Quoted.Contents()
		if err != nil {
			return nil, fmt.Errorf("attest/tpm: reading the quote: %w", err)
		}
		info, err := attested.Attested.Quote()
		if err != nil {
			return nil, fmt.Errorf("attest/tpm: reading the quote: %w", err)
		}
		idx, err := selectedPCRs(info.PCRSelect)
		if err != nil {
			return nil, fmt.Errorf("attest/tpm: the TPM quoted another selection: %w", err)
		}
		values, err := readPCRs(t, idx)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(pcrDigest(hash, idx, values), info.PCRDigest.Buffer) {
			continue // a PCR changed after the quote: quote again
		}
		return &Evidence{
			Quote:     rsp.Quoted.Bytes(),
			Signature: tpm2.Marshal(rsp.Signature),
			AK:        tpm2.Marshal(ak.Public),
			AKCerts:   ak.Certs,
			PCRs:      values,
		}, nil
	}
	return nil, fmt.Errorf("attest/tpm: the PCRs kept changing while quoting (%d attempts)", quoteAttempts)
}

// akHash is the hash of the AK's signing scheme, which TPM2_Quote uses for
// the PCR digest.
func akHash(pub tpm2.TPMTPublic) (crypto.Hash, error) {
	var alg tpm2.TPMAlgID
	switch pub.Type {
	case tpm2.TPMAlgECC:
		p, err := pub.Parameters.ECCDetail()
		if err != nil {
			return 0, fmt.Errorf("attest/tpm: ak parameters: %w", err)
		}
		s, err := p.Scheme.Details.ECDSA()
		if err != nil {
			return 0, fmt.Errorf("attest/tpm: ak is not an ECDSA key: %w", err)
		}
		alg = s.HashAlg
	case tpm2.TPMAlgRSA:
		p, err := pub.Parameters.RSADetail()
		if err != nil {
			return 0, fmt.Errorf("attest/tpm: ak parameters: %w", err)
		}
		switch p.Scheme.Scheme {
		case tpm2.TPMAlgRSASSA:
			s, err := p.Scheme.Details.RSASSA()
			if err != nil {
				return 0, fmt.Errorf("attest/tpm: ak scheme: %w", err)
			}
			alg = s.HashAlg
		case tpm2.TPMAlgRSAPSS:
			s, err := p.Scheme.Details.RSAPSS()
			if err != nil {
				return 0, fmt.Errorf("attest/tpm: ak scheme: %w", err)
			}
			alg = s.HashAlg
		}
	}
	h, ok := hashOf(alg)
	if !ok {
		return 0, fmt.Errorf("attest/tpm: the ak has no SHA-2 signing scheme")
	}
	return h, nil
}

// ReadPCRs reads the SHA-256 bank values of the given PCRs.
func ReadPCRs(t transport.TPM, pcrs []int) (map[int][]byte, error) {
	idx := make([]uint32, len(pcrs))
	for i, p := range pcrs {
		if p < 0 || p >= maxPCR {
			return nil, fmt.Errorf("attest/tpm: PCR %d is not 0 to %d", p, maxPCR-1)
		}
		idx[i] = uint32(p)
	}
	v, err := readPCRs(t, idx)
	if err != nil {
		return nil, err
	}
	out := make(map[int][]byte, len(v))
	for k, d := range v {
		out[int(k)] = d
	}
	return out, nil
}

// readPCRs reads PCRs one at a time: TPM2_PCR_Read returns at most eight
// digests per call and may return fewer than asked, so one call per PCR is
// the simplest way to know which value is which.
func readPCRs(t transport.TPM, idx []uint32) (map[uint32][]byte, error) {
	out := make(map[uint32][]byte, len(idx))
	for _, i := range idx {
		rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
			Hash:      tpm2.TPMAlgSHA256,
			PCRSelect: tpm2.PCClientCompatible.PCRs(uint(i)),
		}}}}.Execute(t)
		if err != nil {
			return nil, fmt.Errorf("attest/tpm: reading PCR %d: %w", i, err)
		}
		if len(rsp.PCRValues.Digests) != 1 || len(rsp.PCRValues.Digests[0].Buffer) != pcrSize {
			return nil, fmt.Errorf("attest/tpm: the TPM has no SHA-256 value for PCR %d", i)
		}
		out[i] = rsp.PCRValues.Digests[0].Buffer
	}
	return out, nil
}

// Measure extends SHA-256(data) into the SHA-256 bank of PCR pcr, as
// measured boot does for each stage it loads. It returns the digest
// extended.
func Measure(t transport.TPM, pcr int, data []byte) ([]byte, error) {
	if pcr < 0 || pcr >= maxPCR {
		return nil, fmt.Errorf("attest/tpm: PCR %d is not 0 to %d", pcr, maxPCR-1)
	}
	d := sha256.Sum256(data)
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: d[:]}}},
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("attest/tpm: extending PCR %d: %w", pcr, err)
	}
	return d[:], nil
}

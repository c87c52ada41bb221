package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/cloudflare/circl/pki"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

// MaxDocumentBytes bounds an endorsements or reference-values document.
const MaxDocumentBytes = 1 << 20

// Endorsements are what a tenant trusts to vouch for its devices, per
// format: public keys it registered, and CA roots whose certificates it
// accepts for TPM attestation keys.
type Endorsements struct {
	Keys  []TrustedKey
	Roots []*x509.Certificate
}

// TrustedKey is one endorsed public key.
type TrustedKey struct {
	// ID selects the key: the PSA instance id, or the native evidence's
	// COSE kid. TPM keys are matched by their public area, so ID may be
	// empty there.
	ID []byte
	// Public is an ed25519.PublicKey, *ecdsa.PublicKey, *rsa.PublicKey or
	// *mldsa65.PublicKey.
	Public crypto.PublicKey
	// ImplementationID, for a PSA key, is the implementation the key's
	// device must report; empty accepts the reference values' list.
	ImplementationID []byte
}

// ReferenceValues are the measurements a tenant allows, per format.
type ReferenceValues struct {
	// PCRs are the allowed TPM PCR values: a quote matches when every PCR
	// it covers has one of the listed values for its index. The bank is
	// SHA-256.
	PCRs map[int][][]byte
	// Components are the allowed PSA software components: a token matches
	// when every component's measurement value is listed (and, if the
	// listed entry has a signer id, the component's signer id equals it).
	Components []Component
	// ImplementationIDs are the PSA implementation ids allowed.
	ImplementationIDs [][]byte
	// Measurements are the allowed native measurements: name to digests.
	Measurements map[string][][]byte
}

// Component is one allowed PSA software component.
type Component struct {
	Type        string // measurement type, e.g. "BL"; informative
	Measurement []byte
	SignerID    []byte // optional
}

// Empty reports whether r allows nothing for format f.
func (r ReferenceValues) Empty(f Format) bool {
	switch f {
	case FormatTPM:
		return len(r.PCRs) == 0
	case FormatPSA:
		return len(r.Components) == 0
	case FormatNative:
		return len(r.Measurements) == 0
	}
	return true
}

// The JSON documents: what the admin API, the CLI's files and the store
// hold. Byte strings are lowercase hex; keys and certificates are PEM.
type (
	endorsementsDoc struct {
		Keys  []trustedKeyDoc `json:"keys,omitempty"`
		Roots []string        `json:"roots,omitempty"`
	}
	trustedKeyDoc struct {
		ID               string `json:"id,omitempty"`
		PublicKey        string `json:"public_key"`
		ImplementationID string `json:"implementation_id,omitempty"`
	}
	referenceValuesDoc struct {
		PCRs              map[string][]string `json:"pcrs,omitempty"`
		Components        []componentDoc      `json:"components,omitempty"`
		ImplementationIDs []string            `json:"implementation_ids,omitempty"`
		Measurements      map[string][]string `json:"measurements,omitempty"`
	}
	componentDoc struct {
		Type        string `json:"type,omitempty"`
		Measurement string `json:"measurement"`
		SignerID    string `json:"signer_id,omitempty"`
	}
)

// ParseEndorsements reads an endorsements document:
//
//	{"keys": [{"id": "<hex>", "public_key": "<PEM>", "implementation_id": "<hex>"}],
//	 "roots": ["<PEM certificate>"]}
func ParseEndorsements(b []byte) (Endorsements, error) {
	var doc endorsementsDoc
	if err := decodeDoc(b, &doc); err != nil {
		return Endorsements{}, fmt.Errorf("endorsements: %w", err)
	}
	if len(doc.Keys)+len(doc.Roots) > MaxItems {
		return Endorsements{}, fmt.Errorf("endorsements: more than %d keys and roots", MaxItems)
	}
	var e Endorsements
	for i, k := range doc.Keys {
		id, err := hexField(k.ID, fmt.Sprintf("keys[%d].id", i))
		if err != nil {
			return Endorsements{}, fmt.Errorf("endorsements: %w", err)
		}
		impl, err := hexField(k.ImplementationID, fmt.Sprintf("keys[%d].implementation_id", i))
		if err != nil {
			return Endorsements{}, fmt.Errorf("endorsements: %w", err)
		}
		pub, err := ParsePublicKeyPEM([]byte(k.PublicKey))
		if err != nil {
			return Endorsements{}, fmt.Errorf("endorsements: keys[%d].public_key: %w", i, err)
		}
		e.Keys = append(e.Keys, TrustedKey{ID: id, Public: pub, ImplementationID: impl})
	}
	for i, r := range doc.Roots {
		blk, rest := pem.Decode([]byte(r))
		if blk == nil || blk.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
			return Endorsements{}, fmt.Errorf("endorsements: roots[%d] is not one PEM CERTIFICATE", i)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return Endorsements{}, fmt.Errorf("endorsements: roots[%d]: %w", i, err)
		}
		if !c.IsCA || !c.BasicConstraintsValid {
			return Endorsements{}, fmt.Errorf("endorsements: roots[%d] (%s) is not a CA certificate", i, c.Subject)
		}
		e.Roots = append(e.Roots, c)
	}
	return e, nil
}

// MarshalJSON writes the document ParseEndorsements reads.
func (e Endorsements) MarshalJSON() ([]byte, error) {
	doc := endorsementsDoc{}
	for _, k := range e.Keys {
		p, err := MarshalPublicKeyPEM(k.Public)
		if err != nil {
			return nil, err
		}
		doc.Keys = append(doc.Keys, trustedKeyDoc{ID: hex.EncodeToString(k.ID), PublicKey: string(p),
			ImplementationID: hex.EncodeToString(k.ImplementationID)})
	}
	for _, c := range e.Roots {
		doc.Roots = append(doc.Roots, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	return json.Marshal(doc)
}

// ParseReferenceValues reads a reference-values document:
//
//	{"pcrs": {"0": ["<hex sha256>", ...], ...},
//	 "components": [{"type": "BL", "measurement": "<hex>", "signer_id": "<hex>"}],
//	 "implementation_ids": ["<hex>"],
//	 "measurements": {"<name>": ["<hex digest>", ...]}}
func ParseReferenceValues(b []byte) (ReferenceValues, error) {
	var doc referenceValuesDoc
	if err := decodeDoc(b, &doc); err != nil {
		return ReferenceValues{}, fmt.Errorf("reference values: %w", err)
	}
	var r ReferenceValues
	count := 0
	if len(doc.PCRs) > 0 {
		r.PCRs = make(map[int][][]byte)
	}
	for k, vs := range doc.PCRs {
		var idx int
		if _, err := fmt.Sscanf(k, "%d", &idx); err != nil || fmt.Sprint(idx) != k || idx < 0 || idx > 23 {
			return ReferenceValues{}, fmt.Errorf("reference values: pcrs key %q is not a PCR index 0..23", k)
		}
		for i, v := range vs {
			d, err := hexField(v, fmt.Sprintf("pcrs[%s][%d]", k, i))
			if err != nil {
				return ReferenceValues{}, fmt.Errorf("reference values: %w", err)
			}
			if len(d) != 32 {
				return ReferenceValues{}, fmt.Errorf("reference values: pcrs[%s][%d] is %d bytes, a SHA-256 PCR is 32", k, i, len(d))
			}
			r.PCRs[idx] = append(r.PCRs[idx], d)
			count++
		}
	}
	for i, c := range doc.Components {
		m, err := hexField(c.Measurement, fmt.Sprintf("components[%d].measurement", i))
		if err != nil {
			return ReferenceValues{}, fmt.Errorf("reference values: %w", err)
		}
		if len(m) == 0 {
			return ReferenceValues{}, fmt.Errorf("reference values: components[%d].measurement is empty", i)
		}
		s, err := hexField(c.SignerID, fmt.Sprintf("components[%d].signer_id", i))
		if err != nil {
			return ReferenceValues{}, fmt.Errorf("reference values: %w", err)
		}
		r.Components = append(r.Components, Component{Type: c.Type, Measurement: m, SignerID: s})
		count++
	}
	for i, v := range doc.ImplementationIDs {
		d, err := hexField(v, fmt.Sprintf("implementation_ids[%d]", i))
		if err != nil {
			return ReferenceValues{}, fmt.Errorf("reference values: %w", err)
		}
		r.ImplementationIDs = append(r.ImplementationIDs, d)
		count++
	}
	if len(doc.Measurements) > 0 {
		r.Measurements = make(map[string][][]byte)
	}
	for name, vs := range doc.Measurements {
		if name == "" || len(name) > 128 {
			return ReferenceValues{}, fmt.Errorf("reference values: measurement names are 1 to 128 bytes")
		}
		for i, v := range vs {
			d, err := hexField(v, fmt.Sprintf("measurements[%q][%d]", name, i))
			if err != nil {
				return ReferenceValues{}, fmt.Errorf("reference values: %w", err)
			}
			if len(d) == 0 {
				return ReferenceValues{}, fmt.Errorf("reference values: measurements[%q][%d] is empty", name, i)
			}
			r.Measurements[name] = append(r.Measurements[name], d)
			count++
		}
	}
	if count > 4*MaxItems {
		return ReferenceValues{}, fmt.Errorf("reference values: more than %d values", 4*MaxItems)
	}
	return r, nil
}

// MarshalJSON writes the document ParseReferenceValues reads.
func (r ReferenceValues) MarshalJSON() ([]byte, error) {
	doc := referenceValuesDoc{}
	hexes := func(bs [][]byte) []string {
		out := make([]string, len(bs))
		for i, b := range bs {
			out[i] = hex.EncodeToString(b)
		}
		return out
	}
	if len(r.PCRs) > 0 {
		doc.PCRs = make(map[string][]string)
		for k, v := range r.PCRs {
			doc.PCRs[fmt.Sprint(k)] = hexes(v)
		}
	}
	for _, c := range r.Components {
		doc.Components = append(doc.Components, componentDoc{Type: c.Type,
			Measurement: hex.EncodeToString(c.Measurement), SignerID: hex.EncodeToString(c.SignerID)})
	}
	doc.ImplementationIDs = hexes(r.ImplementationIDs)
	if len(r.Measurements) > 0 {
		doc.Measurements = make(map[string][]string)
		for k, v := range r.Measurements {
			doc.Measurements[k] = hexes(v)
		}
	}
	return json.Marshal(doc)
}

func decodeDoc(b []byte, v any) error {
	if len(b) > MaxDocumentBytes {
		return fmt.Errorf("document of %d bytes exceeds %d", len(b), MaxDocumentBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not a valid document: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("not a valid document: data after the JSON object")
	}
	return nil
}

func hexField(s, name string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil || strings.ToLower(s) != s {
		return nil, fmt.Errorf("%s is not lowercase hex", name)
	}
	return b, nil
}

// ParsePublicKeyPEM reads one PEM "PUBLIC KEY" (SubjectPublicKeyInfo):
// Ed25519, ECDSA (P-256, P-384, P-521), RSA of at least 2048 bits, or
// ML-DSA-65.
func ParsePublicKeyPEM(b []byte) (crypto.PublicKey, error) {
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("not one PEM PUBLIC KEY block")
	}
	return ParsePublicKeyDER(blk.Bytes)
}

// ParsePublicKeyDER reads a DER SubjectPublicKeyInfo; see ParsePublicKeyPEM.
func ParsePublicKeyDER(der []byte) (crypto.PublicKey, error) {
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		switch k := k.(type) {
		case ed25519.PublicKey, *ecdsa.PublicKey:
			return k, nil
		case *rsa.PublicKey:
			if k.N.BitLen() < 2048 {
				return nil, fmt.Errorf("RSA key of %d bits; at least 2048 are needed", k.N.BitLen())
			}
			return k, nil
		default:
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
	}
	k, err := pki.UnmarshalPKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("not a supported public key (Ed25519, ECDSA, RSA, ML-DSA-65)")
	}
	mk, ok := k.(*mldsa65.PublicKey)
	if !ok {
		return nil, fmt.Errorf("unsupported post-quantum key %s; only ML-DSA-65 is accepted", k.Scheme().Name())
	}
	return mk, nil
}

// MarshalPublicKeyPEM writes k as a PEM PUBLIC KEY.
func MarshalPublicKeyPEM(k crypto.PublicKey) ([]byte, error) {
	var der []byte
	var err error
	if mk, ok := k.(*mldsa65.PublicKey); ok {
		der, err = pki.MarshalPKIXPublicKey(mk)
	} else {
		der, err = x509.MarshalPKIXPublicKey(k)
	}
	if err != nil {
		return nil, fmt.Errorf("marshalling public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// KeyDigest is the SHA-256 of k's DER SubjectPublicKeyInfo (ML-DSA-65 as
// circl writes it). It is the instance id of TPM and native devices: the
// key their evidence's signature proves, unlike anything else the evidence
// says about the device, which its holder may choose freely.
func KeyDigest(k crypto.PublicKey) ([]byte, error) {
	var der []byte
	var err error
	if mk, ok := k.(*mldsa65.PublicKey); ok {
		der, err = pki.MarshalPKIXPublicKey(mk)
	} else {
		der, err = x509.MarshalPKIXPublicKey(k)
	}
	if err != nil {
		return nil, fmt.Errorf("marshalling public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return sum[:], nil
}

// AllowsPCR reports whether value is an allowed value of PCR index.
func (r ReferenceValues) AllowsPCR(index int, value []byte) bool {
	return containsBytes(r.PCRs[index], value)
}

// AllowsComponent reports whether a PSA software component with this
// measurement value and signer id is allowed.
func (r ReferenceValues) AllowsComponent(measurement, signerID []byte) bool {
	for _, c := range r.Components {
		if bytes.Equal(c.Measurement, measurement) && (len(c.SignerID) == 0 || bytes.Equal(c.SignerID, signerID)) {
			return true
		}
	}
	return false
}

// AllowsImplementation reports whether a PSA implementation id is allowed.
func (r ReferenceValues) AllowsImplementation(id []byte) bool {
	return containsBytes(r.ImplementationIDs, id)
}

// AllowsMeasurement reports whether a native measurement is allowed.
func (r ReferenceValues) AllowsMeasurement(name string, digest []byte) bool {
	return containsBytes(r.Measurements[name], digest)
}

func containsBytes(list [][]byte, b []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}

// Merge adds o's keys and roots that e does not have yet (a key is the
// same when its ID and public key are) and returns the result.
func (e Endorsements) Merge(o Endorsements) Endorsements {
	out := Endorsements{Keys: append([]TrustedKey(nil), e.Keys...), Roots: append([]*x509.Certificate(nil), e.Roots...)}
	for _, k := range o.Keys {
		dup := false
		for _, have := range out.Keys {
			if bytes.Equal(have.ID, k.ID) && sameKey(have.Public, k.Public) {
				dup = true
				break
			}
		}
		if !dup {
			out.Keys = append(out.Keys, k)
		}
	}
	for _, c := range o.Roots {
		dup := false
		for _, have := range out.Roots {
			if have.Equal(c) {
				dup = true
				break
			}
		}
		if !dup {
			out.Roots = append(out.Roots, c)
		}
	}
	return out
}

func sameKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if ea, ok := a.(equaler); ok {
		return ea.Equal(b)
	}
	return false
}

// Merge adds o's allowed values that r does not have yet and returns the
// result.
func (r ReferenceValues) Merge(o ReferenceValues) ReferenceValues {
	out := ReferenceValues{}
	addAll := func(dst map[int][][]byte, src map[int][][]byte) map[int][][]byte {
		for k, vs := range src {
			for _, v := range vs {
				if !containsBytes(dst[k], v) {
					if dst == nil {
						dst = make(map[int][][]byte)
					}
					dst[k] = append(dst[k], v)
				}
			}
		}
		return dst
	}
	out.PCRs = addAll(addAll(nil, r.PCRs), o.PCRs)
	for _, c := range append(append([]Component(nil), r.Components...), o.Components...) {
		dup := false
		for _, have := range out.Components {
			if bytes.Equal(have.Measurement, c.Measurement) && bytes.Equal(have.SignerID, c.SignerID) {
				dup = true
				break
			}
		}
		if !dup {
			out.Components = append(out.Components, c)
		}
	}
	for _, id := range append(append([][]byte(nil), r.ImplementationIDs...), o.ImplementationIDs...) {
		if !containsBytes(out.ImplementationIDs, id) {
			out.ImplementationIDs = append(out.ImplementationIDs, id)
		}
	}
	for _, m := range []map[string][][]byte{r.Measurements, o.Measurements} {
		for name, vs := range m {
			for _, v := range vs {
				if !containsBytes(out.Measurements[name], v) {
					if out.Measurements == nil {
						out.Measurements = make(map[string][][]byte)
					}
					out.Measurements[name] = append(out.Measurements[name], v)
				}
			}
		}
	}
	return out
}

package psa

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/internal/cosesig"
)

// SimulatedDevice makes PSA tokens in software, for development and for
// "hegate enroll --format psa-test": ES256 tokens in the
// http://arm.com/psa/2.0.0 profile, signed by a P-256 initial attestation
// key (IAK) that lives in this process's memory.
//
// It is a software stand-in with no hardware root of trust. Nothing
// protects its key, nothing measured its "software components" and its
// lifecycle is whatever the field says: a token it makes proves only that
// the holder of the key made it. A tenant that endorses its key gets
// PSA-shaped evidence for testing the enrollment path, not the assurance
// of a PSA RoT; endorse real devices' IAKs for that.
type SimulatedDevice struct {
	key *ecdsa.PrivateKey

	// ImplementationID is the implementation id the tokens claim (32
	// bytes); NewSimulatedDevice sets a fixed development value.
	ImplementationID []byte
	// Lifecycle is the security lifecycle the tokens claim; secured
	// (0x3000) by default.
	Lifecycle uint16
	// ClientID is the caller's partition id the tokens claim: -1 (a
	// non-secure caller) by default.
	ClientID int64
	// Components are the software components the tokens claim; by default
	// one "SPE" component with a fixed development measurement.
	Components []Component
}

// DevelopmentImplementationID is the implementation id a SimulatedDevice
// claims unless told otherwise: the ASCII text "hegate simulated PSA RoT"
// padded with zeros to 32 bytes.
var DevelopmentImplementationID = func() []byte {
	b := make([]byte, 32)
	copy(b, "hegate simulated PSA RoT")
	return b
}()

// NewSimulatedDevice makes a simulated device with a new random IAK.
func NewSimulatedDevice() (*SimulatedDevice, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("psa: generating the IAK: %w", err)
	}
	return SimulatedDeviceFromKey(k)
}

// SimulatedDeviceFromKey makes a simulated device whose IAK is key, a
// P-256 key (to keep one device across runs).
func SimulatedDeviceFromKey(key *ecdsa.PrivateKey) (*SimulatedDevice, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return nil, errors.New("psa: a simulated device's IAK is a P-256 key")
	}
	measurement := sha256.Sum256([]byte("hegate simulated secure processing environment"))
	return &SimulatedDevice{
		key:              key,
		ImplementationID: append([]byte(nil), DevelopmentImplementationID...),
		Lifecycle:        0x3000,
		ClientID:         -1,
		Components:       []Component{{Type: "SPE", Measurement: measurement[:], Version: "0.0.0", Description: "sha-256"}},
	}, nil
}

// Key returns the device's IAK.
func (d *SimulatedDevice) Key() *ecdsa.PrivateKey { return d.key }

// InstanceID is the device's instance id as PSA and Trusted Firmware-M
// derive it: 0x01 (UEID type RAND) followed by the SHA-256 of the IAK's
// public key as an uncompressed point.
func (d *SimulatedDevice) InstanceID() []byte {
	pub, err := d.key.PublicKey.Bytes()
	if err != nil {
		panic(err) // a P-256 key always encodes
	}
	h := sha256.Sum256(pub)
	return append([]byte{0x01}, h[:]...)
}

// Endorsement is the device's key as a tenant endorses it: ID the instance
// id, Public the IAK's public key, bound to the device's implementation id.
func (d *SimulatedDevice) Endorsement() attest.TrustedKey {
	return attest.TrustedKey{
		ID:               d.InstanceID(),
		Public:           &d.key.PublicKey,
		ImplementationID: append([]byte(nil), d.ImplementationID...),
	}
}

// ReferenceValues are reference values that admit the device's software
// components and implementation id.
func (d *SimulatedDevice) ReferenceValues() attest.ReferenceValues {
	var r attest.ReferenceValues
	for _, c := range d.Components {
		r.Components = append(r.Components, attest.Component{Type: c.Type,
			Measurement: append([]byte(nil), c.Measurement...), SignerID: append([]byte(nil), c.SignerID...)})
	}
	r.ImplementationIDs = [][]byte{append([]byte(nil), d.ImplementationID...)}
	return r
}

// Token makes a token answering nonce (32, 48 or 64 bytes; the gateway's
// is attest.ExpectedNonce(attest.FormatPSA, challenge, jkt)).
func (d *SimulatedDevice) Token(nonce []byte) ([]byte, error) {
	if n := len(nonce); n != 32 && n != 48 && n != 64 {
		return nil, fmt.Errorf("psa: a nonce of %d bytes; PSA takes 32, 48 or 64", n)
	}
	if len(d.Components) == 0 {
		return nil, errors.New("psa: a token needs at least one software component")
	}
	comps := make([]map[int64]any, len(d.Components))
	for i, c := range d.Components {
		m := map[int64]any{keyCompMeasurement: c.Measurement}
		if c.Type != "" {
			m[keyCompType] = c.Type
		}
		if c.Version != "" {
			m[keyCompVersion] = c.Version
		}
		if len(c.SignerID) > 0 {
			m[keyCompSignerID] = c.SignerID
		}
		if c.Description != "" {
			m[keyCompDescription] = c.Description
		}
		comps[i] = m
	}
	claims := map[int64]any{
		keyEATProfile:      Profile2,
		keyEATNonce:        nonce,
		keyEATUEID:         d.InstanceID(),
		keyPSAClientID:     d.ClientID,
		keyPSALifecycle:    d.Lifecycle,
		keyPSAImplID:       d.ImplementationID,
		keyPSASwComponents: comps,
	}
	payload, err := cosesig.Marshal(claims)
	if err != nil {
		return nil, fmt.Errorf("psa: encoding claims: %w", err)
	}
	return cosesig.Sign(rand.Reader, d.key, nil, payload)
}

package psa

import (
	"fmt"
	"strconv"

	"github.com/fxamacker/cbor/v2"

	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/internal/cosesig"
)

// The profiles a token may declare.
const (
	// ProfileIoT1 is the legacy profile of draft-tschofenig-rats-psa-token
	// up to -07, with claim keys -75000 to -75010. Trusted Firmware-M made
	// it up to its 1.x releases.
	ProfileIoT1 = "PSA_IOT_PROFILE_1"
	// Profile2 is the profile of draft-tschofenig-rats-psa-token-08 and
	// later drafts, with EAT claim keys; Trusted Firmware-M makes it.
	Profile2 = "http://arm.com/psa/2.0.0"
	// ProfileRFC9783 is the profile RFC 9783 registers for TF-M-style
	// tokens; its claims are those of Profile2 except the boot seed, which
	// is EAT's bootseed (268).
	ProfileRFC9783 = "tag:psacertified.org,2023:psa#tfm"
)

// Claim keys of PSA_IOT_PROFILE_1 (draft-tschofenig-rats-psa-token-07).
const (
	keyP1Profile        int64 = -75000
	keyP1ClientID       int64 = -75001
	keyP1Lifecycle      int64 = -75002
	keyP1ImplID         int64 = -75003
	keyP1BootSeed       int64 = -75004
	keyP1HWVersion      int64 = -75005
	keyP1SwComponents   int64 = -75006
	keyP1NoSwMeasurem   int64 = -75007
	keyP1Nonce          int64 = -75008
	keyP1InstanceID     int64 = -75009
	keyP1Origination    int64 = -75010
	keyEATNonce         int64 = 10
	keyEATUEID          int64 = 256
	keyEATProfile       int64 = 265
	keyEATBootSeed      int64 = 268
	keyPSAClientID      int64 = 2394
	keyPSALifecycle     int64 = 2395
	keyPSAImplID        int64 = 2396
	keyPSABootSeed      int64 = 2397
	keyPSACertification int64 = 2398
	keyPSASwComponents  int64 = 2399
	keyPSAVSI           int64 = 2400
)

// Keys of a software component (the same in every profile).
const (
	keyCompType        int64 = 1
	keyCompMeasurement int64 = 2
	keyCompEpoch       int64 = 3 // PSA_IOT_PROFILE_1 only: security epoch, obsolete
	keyCompVersion     int64 = 4
	keyCompSignerID    int64 = 5
	keyCompDescription int64 = 6
)

// claimKeys are one profile's claim keys.
type claimKeys struct {
	profile, clientID, lifecycle, implID, bootSeed, certRef, swComponents,
	nonce, instanceID, vsi int64
	noSwMeasurements int64 // 0 when the profile has no such claim
	bootSeedRequired bool
	minBootSeed      int
	componentEpoch   bool
}

var (
	keysP1 = claimKeys{
		profile: keyP1Profile, clientID: keyP1ClientID, lifecycle: keyP1Lifecycle, implID: keyP1ImplID,
		bootSeed: keyP1BootSeed, certRef: keyP1HWVersion, swComponents: keyP1SwComponents,
		nonce: keyP1Nonce, instanceID: keyP1InstanceID, vsi: keyP1Origination,
		noSwMeasurements: keyP1NoSwMeasurem, bootSeedRequired: true, minBootSeed: 32, componentEpoch: true,
	}
	keysP2 = claimKeys{
		profile: keyEATProfile, clientID: keyPSAClientID, lifecycle: keyPSALifecycle, implID: keyPSAImplID,
		bootSeed: keyPSABootSeed, certRef: keyPSACertification, swComponents: keyPSASwComponents,
		nonce: keyEATNonce, instanceID: keyEATUEID, vsi: keyPSAVSI, minBootSeed: 8,
	}
	// keysRFC9783 are those of Profile2 but for the boot seed, which RFC
	// 9783 carries in EAT's bootseed claim (268) and whose old key 2397 it
	// leaves reserved.
	keysRFC9783 = func() claimKeys {
		k := keysP2
		k.bootSeed = keyEATBootSeed
		return k
	}()
)

func (k claimKeys) known(key int64) bool {
	switch key {
	case k.profile, k.clientID, k.lifecycle, k.implID, k.bootSeed, k.certRef, k.swComponents,
		k.nonce, k.instanceID, k.vsi:
		return true
	}
	return k.noSwMeasurements != 0 && key == k.noSwMeasurements
}

// Claims are the claims of a PSA token, whatever its profile.
type Claims struct {
	// Profile is one of ProfileIoT1, Profile2 and ProfileRFC9783.
	Profile string
	// ClientID is the partition id of the caller that asked for the
	// token: negative for the non-secure side.
	ClientID int64
	// Lifecycle is the security lifecycle: major state in bits 15..8,
	// implementation-defined minor state in bits 7..0.
	Lifecycle uint16
	// ImplementationID identifies the immutable PSA RoT (32 bytes).
	ImplementationID []byte
	// InstanceID is the UEID of the attestation key: 0x01 followed by a
	// 32-byte hash of the IAK's public key.
	InstanceID []byte
	// Nonce is the challenge the token answers: 32, 48 or 64 bytes.
	Nonce []byte
	// BootSeed distinguishes boot sessions; optional in Profile2.
	BootSeed []byte
	// CertificationReference is the hardware version (EAN-13) or PSA
	// certification reference (EAN-13+5), if present.
	CertificationReference string
	// VerificationService is the verification service indicator, if any.
	VerificationService string
	// Components are the measured software components, at least one.
	Components []Component
}

// Component is one measured software component.
type Component struct {
	Type        string // measurement type, e.g. "BL", "SPE"; may be empty
	Measurement []byte // hash of the component: 32, 48 or 64 bytes
	Version     string // may be empty
	SignerID    []byte // hash of the signing key; may be empty
	Description string // measurement method, e.g. "SHA256"; may be empty
}

// Secured reports whether the lifecycle's major state is SECURED
// (0x3000 to 0x30FF), the only one whose claims hegate trusts: the other
// states are unknown, assembly and test, provisioning, debug (non-PSA-RoT
// or recoverable PSA-RoT) and decommissioned.
func (c *Claims) Secured() bool { return c.Lifecycle>>8 == 0x30 }

// DecodeClaims decodes and checks a token's payload. It refuses, each as
// an *attest.Error: CBOR that is not one map with integer keys, or over
// the limits (malformed, too-large); a profile claim that is missing, of
// another type, not one of the three profiles, or both profile keys at
// once (bad-profile); a claim key the profile does not define, a claim of
// the wrong type or size (malformed); no nonce (nonce-missing); a nonce not
// of 32, 48 or 64 bytes (nonce-length); no client id, lifecycle,
// implementation id, instance id, boot seed (PSA_IOT_PROFILE_1) or
// software components, or an empty list of components (missing-claim).
func DecodeClaims(payload []byte) (*Claims, error) {
	m, err := cosesig.RawIntMap(payload, "claims")
	if err != nil {
		return nil, err
	}
	c := &Claims{}
	rawP1, hasP1 := m[keyP1Profile]
	rawEAT, hasEAT := m[keyEATProfile]
	var keys claimKeys
	switch {
	case hasP1 && hasEAT:
		return nil, attest.Errorf(attest.ReasonBadProfile, "both a legacy (-75000) and an EAT (265) profile claim")
	case hasP1:
		p, err := cosesig.RawText(rawP1, "profile (-75000)")
		if err != nil || p != ProfileIoT1 {
			return nil, attest.Errorf(attest.ReasonBadProfile, "profile claim -75000 is not %q", ProfileIoT1)
		}
		c.Profile, keys = p, keysP1
	case hasEAT:
		p, err := cosesig.RawText(rawEAT, "eat_profile (265)")
		if err != nil || (p != Profile2 && p != ProfileRFC9783) {
			return nil, attest.Errorf(attest.ReasonBadProfile, "eat_profile is not %q or %q", Profile2, ProfileRFC9783)
		}
		c.Profile, keys = p, keysP2
		if p == ProfileRFC9783 {
			keys = keysRFC9783
		}
	default:
		return nil, attest.Errorf(attest.ReasonBadProfile, "no profile claim (-75000 or 265)")
	}
	for k := range m {
		if !keys.known(k) {
			return nil, attest.Errorf(attest.ReasonMalformed, "claim %d is not defined by profile %s", k, c.Profile)
		}
	}
	name := func(key int64, what string) string { return fmt.Sprintf("%s (%d)", what, key) }

	// Nonce first: its absence and length have reasons of their own.
	raw, ok := m[keys.nonce]
	if !ok {
		return nil, attest.Errorf(attest.ReasonNonceMissing, "no nonce claim (%d)", keys.nonce)
	}
	if c.Nonce, err = nonce(raw, keys, name(keys.nonce, "nonce")); err != nil {
		return nil, err
	}
	if n := len(c.Nonce); n != 32 && n != 48 && n != 64 {
		return nil, attest.Errorf(attest.ReasonNonceLength, "nonce of %d bytes; PSA allows 32, 48 or 64", n)
	}

	required := func(key int64, what string) (cbor.RawMessage, error) {
		raw, ok := m[key]
		if !ok {
			return nil, attest.Errorf(attest.ReasonMissingClaim, "no %s claim (%d)", what, key)
		}
		return raw, nil
	}
	if raw, err = required(keys.instanceID, "instance id"); err != nil {
		return nil, err
	}
	if c.InstanceID, err = cosesig.RawBytes(raw, name(keys.instanceID, "instance id")); err != nil {
		return nil, err
	}
	if len(c.InstanceID) != 33 || c.InstanceID[0] != 0x01 {
		return nil, attest.Errorf(attest.ReasonMalformed, "instance id is not 33 bytes of type RAND (0x01)")
	}

	if raw, err = required(keys.clientID, "client id"); err != nil {
		return nil, err
	}
	if c.ClientID, err = cosesig.RawInt(raw, name(keys.clientID, "client id")); err != nil {
		return nil, err
	}
	if c.ClientID == 0 || c.ClientID < -1<<31 || c.ClientID > 1<<31-1 {
		return nil, attest.Errorf(attest.ReasonMalformed, "client id %d is not a non-zero 32-bit partition id", c.ClientID)
	}

	if raw, err = required(keys.lifecycle, "security lifecycle"); err != nil {
		return nil, err
	}
	lc, err := cosesig.RawInt(raw, name(keys.lifecycle, "security lifecycle"))
	if err != nil {
		return nil, err
	}
	if lc < 0 || lc > 0xffff {
		return nil, attest.Errorf(attest.ReasonMalformed, "security lifecycle %d is not a 16-bit value", lc)
	}
	c.Lifecycle = uint16(lc)

	if raw, err = required(keys.implID, "implementation id"); err != nil {
		return nil, err
	}
	if c.ImplementationID, err = cosesig.RawBytes(raw, name(keys.implID, "implementation id")); err != nil {
		return nil, err
	}
	if len(c.ImplementationID) != 32 {
		return nil, attest.Errorf(attest.ReasonMalformed, "implementation id of %d bytes, not 32", len(c.ImplementationID))
	}

	if raw, ok := m[keys.bootSeed]; ok {
		if c.BootSeed, err = cosesig.RawBytes(raw, name(keys.bootSeed, "boot seed")); err != nil {
			return nil, err
		}
		if len(c.BootSeed) < keys.minBootSeed || len(c.BootSeed) > 32 {
			return nil, attest.Errorf(attest.ReasonMalformed, "boot seed of %d bytes, not %d to 32", len(c.BootSeed), keys.minBootSeed)
		}
	} else if keys.bootSeedRequired {
		return nil, attest.Errorf(attest.ReasonMissingClaim, "no boot seed claim (%d)", keys.bootSeed)
	}
	if raw, ok := m[keys.certRef]; ok {
		if c.CertificationReference, err = cosesig.RawText(raw, name(keys.certRef, "certification reference")); err != nil {
			return nil, err
		}
	}
	if raw, ok := m[keys.vsi]; ok {
		if c.VerificationService, err = cosesig.RawText(raw, name(keys.vsi, "verification service indicator")); err != nil {
			return nil, err
		}
	}

	raw, ok = m[keys.swComponents]
	if !ok {
		if _, none := m[keys.noSwMeasurements]; none && keys.noSwMeasurements != 0 {
			return nil, attest.Errorf(attest.ReasonMissingClaim, "the token asserts no software measurements (%d); hegate appraises software components", keys.noSwMeasurements)
		}
		return nil, attest.Errorf(attest.ReasonMissingClaim, "no software components claim (%d)", keys.swComponents)
	}
	if _, both := m[keys.noSwMeasurements]; both && keys.noSwMeasurements != 0 {
		return nil, attest.Errorf(attest.ReasonMalformed, "both software components and no-software-measurements")
	}
	if c.Components, err = components(raw, keys, name(keys.swComponents, "software components")); err != nil {
		return nil, err
	}
	return c, nil
}

// nonce decodes a nonce claim: a byte string, or in the EAT profiles an
// array holding exactly one (EAT allows several nonces; PSA one).
func nonce(raw cbor.RawMessage, keys claimKeys, what string) ([]byte, error) {
	if keys.nonce == keyEATNonce {
		if arr, err := cosesig.RawArray(raw, what); err == nil {
			if len(arr) != 1 {
				return nil, attest.Errorf(attest.ReasonMalformed, "%s: an array of %d nonces, not one", what, len(arr))
			}
			raw = arr[0]
		}
	}
	return cosesig.RawBytes(raw, what)
}

func components(raw cbor.RawMessage, keys claimKeys, what string) ([]Component, error) {
	arr, err := cosesig.RawArray(raw, what)
	if err != nil {
		return nil, err
	}
	if len(arr) == 0 {
		return nil, attest.Errorf(attest.ReasonMissingClaim, "%s: an empty list", what)
	}
	out := make([]Component, 0, len(arr))
	for i, rc := range arr {
		cw := fmt.Sprintf("software component %d", i)
		m, err := cosesig.RawIntMap(rc, cw)
		if err != nil {
			return nil, err
		}
		var c Component
		var hasMeasurement, hasSigner bool
		for k, v := range m {
			switch k {
			case keyCompType:
				c.Type, err = cosesig.RawText(v, cw+" measurement type")
			case keyCompMeasurement:
				c.Measurement, err = cosesig.RawBytes(v, cw+" measurement value")
				hasMeasurement = true
			case keyCompVersion:
				c.Version, err = cosesig.RawText(v, cw+" version")
			case keyCompSignerID:
				c.SignerID, err = cosesig.RawBytes(v, cw+" signer id")
				hasSigner = true
			case keyCompDescription:
				c.Description, err = cosesig.RawText(v, cw+" measurement description")
			case keyCompEpoch:
				if !keys.componentEpoch {
					return nil, attest.Errorf(attest.ReasonMalformed, "%s: key 3 (security epoch) is not defined by this profile", cw)
				}
				var epoch int64
				if epoch, err = cosesig.RawInt(v, cw+" security epoch"); err == nil && epoch < 0 {
					err = attest.Errorf(attest.ReasonMalformed, "%s: negative security epoch", cw)
				}
			default:
				return nil, attest.Errorf(attest.ReasonMalformed, "%s: unknown key %d", cw, k)
			}
			if err != nil {
				return nil, err
			}
		}
		if !hasMeasurement {
			return nil, attest.Errorf(attest.ReasonMissingClaim, "%s has no measurement value", cw)
		}
		if !hashSize(len(c.Measurement)) {
			return nil, attest.Errorf(attest.ReasonMalformed, "%s: measurement value of %d bytes, not 32, 48 or 64", cw, len(c.Measurement))
		}
		if hasSigner && !hashSize(len(c.SignerID)) {
			return nil, attest.Errorf(attest.ReasonMalformed, "%s: signer id of %d bytes, not 32, 48 or 64", cw, len(c.SignerID))
		}
		out = append(out, c)
	}
	return out, nil
}

func hashSize(n int) bool { return n == 32 || n == 48 || n == 64 }

// measurementNames names each component for attest.Result.Measurements:
// its measurement type, or its index when it has none or another
// component already took the name.
func measurementNames(cs []Component) []string {
	names := make([]string, len(cs))
	taken := make(map[string]bool, len(cs))
	for i, c := range cs {
		n := c.Type
		if n == "" || taken[n] {
			n = strconv.Itoa(i)
		}
		for taken[n] {
			n += "'"
		}
		taken[n] = true
		names[i] = n
	}
	return names
}

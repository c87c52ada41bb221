package psa

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"runtime"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/fxamacker/cbor/v2"
	cose "github.com/veraison/go-cose"

	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/internal/cosesig"
)

// realToken is one of the tokens in testdata (see testdata/README.md).
type realToken struct {
	file, key string
	profile   string
	nonce     []byte
}

var realTokens = []realToken{
	{"tfm-psa-iot-profile-1.cbor", "tfm-iak-legacy.pub.pem", ProfileIoT1, make([]byte, 64)},
	{"tfm-psa-2.0.0.cbor", "tfm-iak-legacy.pub.pem", Profile2, make([]byte, 64)},
	{"rfc9783-example.cbor", "rfc9783-iak.pub.pem", ProfileRFC9783, bytes.Repeat([]byte{0x01}, 32)},
}

// realInput endorses the token's published key under its instance id and
// allows its own implementation id and components.
func realInput(t testing.TB, rt realToken) (attest.Input, *Claims) {
	t.Helper()
	tok := readTestdata(t, rt.file)
	msg, err := cosesig.Decode(tok)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := DecodeClaims(msg.Payload)
	if err != nil {
		t.Fatal(err)
	}
	var ref attest.ReferenceValues
	for _, c := range claims.Components {
		ref.Components = append(ref.Components, attest.Component{Type: c.Type, Measurement: c.Measurement, SignerID: c.SignerID})
	}
	ref.ImplementationIDs = [][]byte{claims.ImplementationID}
	return attest.Input{
		Evidence:        tok,
		Nonce:           rt.nonce,
		Endorsements:    attest.Endorsements{Keys: []attest.TrustedKey{{ID: claims.InstanceID, Public: readPublicKey(t, rt.key)}}},
		ReferenceValues: ref,
	}, claims
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRealTokensVerify(t *testing.T) {
	for _, rt := range realTokens {
		t.Run(rt.file, func(t *testing.T) {
			in, claims := realInput(t, rt)
			res, err := verify(in)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if res.Status() != attest.StatusAffirming || len(res.Reasons()) != 0 {
				t.Fatalf("status %s, reasons %v; want affirming", res.Status(), res.Reasons())
			}
			a := res.Submods[string(attest.FormatPSA)]
			want := attest.TrustVector{InstanceIdentity: attest.InstanceTrusted, Configuration: attest.ConfigApproved,
				Executables: attest.ExecutablesApproved, Hardware: attest.HardwareGenuine}
			if a.TrustVector != want {
				t.Errorf("trust vector %+v; want %+v", a.TrustVector, want)
			}
			if res.Format != attest.FormatPSA || res.InstanceID != hex.EncodeToString(claims.InstanceID) {
				t.Errorf("format %q instance %q", res.Format, res.InstanceID)
			}
			if claims.Profile != rt.profile {
				t.Errorf("profile %q; want %q", claims.Profile, rt.profile)
			}
			if d := sha256.Sum256(in.Evidence); res.EvidenceDigest != hex.EncodeToString(d[:]) {
				t.Errorf("evidence digest %s", res.EvidenceDigest)
			}
			if res.IssuedAt != testNow.Unix() {
				t.Errorf("iat %d", res.IssuedAt)
			}
		})
	}
}

// TestTFMTokenClaims checks claim values of the two TF-M tokens.
func TestTFMTokenClaims(t *testing.T) {
	pub := readPublicKey(t, "tfm-iak-legacy.pub.pem").(*ecdsa.PublicKey)
	point, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(point)
	wantInstance := append([]byte{0x01}, h[:]...)
	for _, rt := range realTokens[:2] {
		t.Run(rt.file, func(t *testing.T) {
			in, c := realInput(t, rt)
			// TF-M derives the instance id from the IAK.
			if !bytes.Equal(c.InstanceID, wantInstance) {
				t.Errorf("instance id %x; want 0x01 || SHA-256(IAK) = %x", c.InstanceID, wantInstance)
			}
			if hex.EncodeToString(c.InstanceID) != "01fa58755f658627ce5460f29b75296713248cae7ad9e2984b90280efcbcb50248" {
				t.Errorf("instance id %x", c.InstanceID)
			}
			if c.ClientID != 3002 || c.Lifecycle != 0x3000 || !c.Secured() {
				t.Errorf("client id %d lifecycle %#x", c.ClientID, c.Lifecycle)
			}
			if !bytes.Equal(c.ImplementationID, mustHex(t, "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd")) {
				t.Errorf("implementation id %x", c.ImplementationID)
			}
			if !bytes.Equal(c.BootSeed, mustHex(t, "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf")) {
				t.Errorf("boot seed %x", c.BootSeed)
			}
			if c.CertificationReference != "0604565272829-10010" || c.VerificationService != "www.trustedfirmware.org" {
				t.Errorf("certification reference %q, verification service %q", c.CertificationReference, c.VerificationService)
			}
			if !bytes.Equal(c.Nonce, make([]byte, 64)) {
				t.Errorf("nonce %x", c.Nonce)
			}
			if len(c.Components) != 2 {
				t.Fatalf("%d components", len(c.Components))
			}
			spe, nspe := c.Components[0], c.Components[1]
			if spe.Type != "SPE" || spe.Version != "1.6.0" || spe.Description != "SHA256" ||
				!bytes.Equal(spe.SignerID, mustHex(t, "bfe6d86f8826f4ff97fb96c4e6fbc4993e4619fc565da26adf34c329489adc38")) {
				t.Errorf("SPE component %+v", spe)
			}
			if nspe.Type != "NSPE" || nspe.Version != "0.0.0" ||
				!bytes.Equal(nspe.Measurement, mustHex(t, "087d13c68f32aaafb8c4fc0a2253445432009765e216fb85c398c9580522c1bf")) ||
				!bytes.Equal(nspe.SignerID, mustHex(t, "b360caf5c98c6b942a4882fa9d4823efb166a9ef6a6e4aa37c1919ed1fccc049")) {
				t.Errorf("NSPE component %+v", nspe)
			}
			wantSPE := map[string]string{
				ProfileIoT1: "81e265884997ccc4fbb37738b99842bd6408dae6a02b4db709b1ac198840f05a",
				Profile2:    "96a2ec56c65120a60ce3a53ef8d2082233772aacd5b17935a92be12ac577f685",
			}[rt.profile]
			if hex.EncodeToString(spe.Measurement) != wantSPE {
				t.Errorf("SPE measurement %x; want %s", spe.Measurement, wantSPE)
			}
			res, err := verify(in)
			if err != nil {
				t.Fatal(err)
			}
			if res.Measurements["SPE"] != wantSPE || res.Measurements["NSPE"] != hex.EncodeToString(nspe.Measurement) {
				t.Errorf("result measurements %v", res.Measurements)
			}
		})
	}
}

func TestRFC9783ExampleClaims(t *testing.T) {
	in, c := realInput(t, realTokens[2])
	if c.ClientID != 0x7fffffff || c.Lifecycle != 0x3000 || !bytes.Equal(c.BootSeed, make([]byte, 8)) ||
		!bytes.Equal(c.ImplementationID, make([]byte, 32)) ||
		!bytes.Equal(c.InstanceID, append([]byte{1}, bytes.Repeat([]byte{2}, 32)...)) {
		t.Errorf("claims %+v", c)
	}
	if len(c.Components) != 1 || c.Components[0].Type != "PRoT" ||
		!bytes.Equal(c.Components[0].Measurement, bytes.Repeat([]byte{3}, 32)) ||
		!bytes.Equal(c.Components[0].SignerID, bytes.Repeat([]byte{4}, 32)) {
		t.Errorf("components %+v", c.Components)
	}
	res, err := verify(in)
	if err != nil {
		t.Fatal(err)
	}
	if res.Measurements["PRoT"] != hex.EncodeToString(bytes.Repeat([]byte{3}, 32)) {
		t.Errorf("measurements %v", res.Measurements)
	}
}

// TestRealTokensRefused checks that the real tokens fail as they should
// when the input does not fit them.
func TestRealTokensRefused(t *testing.T) {
	for _, rt := range realTokens {
		t.Run(rt.file, func(t *testing.T) {
			in, claims := realInput(t, rt)

			wrong := in
			wrong.Nonce = bytes.Repeat([]byte{0xee}, len(rt.nonce))
			_, err := verify(wrong)
			wantReason(t, err, attest.ReasonNonceMismatch)

			unendorsed := in
			unendorsed.Endorsements = attest.Endorsements{}
			_, err = verify(unendorsed)
			wantReason(t, err, attest.ReasonUnknownInstance)

			otherKey := in
			otherKey.Endorsements = attest.Endorsements{Keys: []attest.TrustedKey{{ID: claims.InstanceID, Public: &testKey(t, "other").PublicKey}}}
			_, err = verify(otherKey)
			wantReason(t, err, attest.ReasonBadSignature)

			edKey := in
			edKey.Endorsements = attest.Endorsements{Keys: []attest.TrustedKey{{ID: claims.InstanceID, Public: ed25519.NewKeyFromSeed(make([]byte, 32)).Public()}}}
			_, err = verify(edKey)
			wantReason(t, err, attest.ReasonAlgMismatch)

			fewer := in
			fewer.ReferenceValues.Components = in.ReferenceValues.Components[1:]
			if len(fewer.ReferenceValues.Components) == 0 {
				fewer.ReferenceValues.Components = []attest.Component{{Measurement: bytes.Repeat([]byte{9}, 32)}}
			}
			res, err := verify(fewer)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status() != attest.StatusContraindicated || !hasReason(res.Reasons(), attest.ReasonMeasurementUnknown) {
				t.Errorf("status %s reasons %v; want measurement-unknown", res.Status(), res.Reasons())
			}

			boundElsewhere := in
			boundElsewhere.Endorsements.Keys[0].ImplementationID = bytes.Repeat([]byte{0x42}, 32)
			res, err = verify(boundElsewhere)
			if err != nil {
				t.Fatal(err)
			}
			if !hasReason(res.Reasons(), attest.ReasonImplementationID) {
				t.Errorf("reasons %v; want implementation-unknown", res.Reasons())
			}
		})
	}
}

func TestSimulatedDevice(t *testing.T) {
	d, err := NewSimulatedDevice()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{32, 48, 64} {
		nonce := bytes.Repeat([]byte{byte(n)}, n)
		tok, err := d.Token(nonce)
		if err != nil {
			t.Fatal(err)
		}
		res, err := verify(deviceInput(d, tok, nonce))
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if res.Status() != attest.StatusAffirming {
			t.Fatalf("status %s reasons %v", res.Status(), res.Reasons())
		}
		if res.InstanceID != hex.EncodeToString(d.InstanceID()) || res.Measurements["SPE"] != hex.EncodeToString(d.Components[0].Measurement) {
			t.Errorf("instance %s measurements %v", res.InstanceID, res.Measurements)
		}
		msg, err := cosesig.Decode(tok)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Alg != cose.AlgorithmES256 || !msg.Tagged {
			t.Errorf("alg %v tagged %v", msg.Alg, msg.Tagged)
		}
		c, err := DecodeClaims(msg.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if c.Profile != Profile2 || !bytes.Equal(c.Nonce, nonce) {
			t.Errorf("profile %q nonce %x", c.Profile, c.Nonce)
		}
	}
	if _, err := d.Token(make([]byte, 20)); err == nil {
		t.Error("Token made a 20-byte nonce")
	}
	if _, err := SimulatedDeviceFromKey(nil); err == nil {
		t.Error("SimulatedDeviceFromKey(nil)")
	}
}

// TestProfiles checks a token of each profile made with a generated key,
// tagged and untagged.
func TestProfiles(t *testing.T) {
	d := testDevice(t, "profiles")
	nonce := testNonce("profiles")
	for name, claims := range map[string]map[int64]any{
		ProfileIoT1:    p1Claims(d, nonce),
		Profile2:       p2Claims(d, nonce),
		ProfileRFC9783: rfc9783Claims(d, nonce),
	} {
		t.Run(name, func(t *testing.T) {
			tok := signClaims(t, d, claims)
			for _, tagged := range []bool{true, false} {
				ev := tok
				if !tagged {
					ev = tok[1:]
				}
				res, err := verify(deviceInput(d, ev, nonce))
				if err != nil {
					t.Fatalf("tagged %v: %v", tagged, err)
				}
				if res.Status() != attest.StatusAffirming {
					t.Fatalf("status %s reasons %v", res.Status(), res.Reasons())
				}
			}
		})
	}
}

// TestEATNonceArray: the EAT profiles may carry the nonce as an array of
// one.
func TestEATNonceArray(t *testing.T) {
	d := testDevice(t, "nonce-array")
	nonce := testNonce("nonce-array")
	c := p2Claims(d, nonce)
	c[keyEATNonce] = [][]byte{nonce}
	if _, err := verify(deviceInput(d, signClaims(t, d, c), nonce)); err != nil {
		t.Fatal(err)
	}
	c[keyEATNonce] = [][]byte{nonce, nonce}
	_, err := verify(deviceInput(d, signClaims(t, d, c), nonce))
	wantReason(t, err, attest.ReasonMalformed)
}

// TestNegative asserts the reason of each way a token can be refused.
func TestNegative(t *testing.T) {
	d := testDevice(t, "negative")
	nonce := testNonce("negative")
	good := func() map[int64]any { return p2Claims(d, nonce) }
	payload := encodeCBOR(t, good())
	es256 := cosesig.ProtectedHeader(cose.AlgorithmES256, nil)
	n := new(big.Int).Set(d.Key().Curve.Params().N)

	fixedSig := func(r, s *big.Int) []byte {
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return cosesig.Assemble(es256, nil, payload, sig, true)
	}
	withClaims := func(edit func(map[int64]any)) []byte {
		c := good()
		edit(c)
		return signClaims(t, d, c)
	}
	tok := signClaims(t, d, good())

	cases := []struct {
		name  string
		token []byte
		input func(*attest.Input)
		want  attest.Reason
	}{
		{name: "tampered payload", token: func() []byte {
			b := bytes.Clone(tok)
			i := bytes.Index(b, []byte("hegate simulated"))
			b[i] ^= 1
			return b
		}(), want: attest.ReasonBadSignature},
		{name: "tampered signature", token: func() []byte {
			b := bytes.Clone(tok)
			b[len(b)-1] ^= 1
			return b
		}(), want: attest.ReasonBadSignature},
		{name: "tampered protected header", token: func() []byte {
			msg, err := cosesig.Decode(tok)
			if err != nil {
				t.Fatal(err)
			}
			p := encodeCBOR(t, map[int64]any{1: -7, 3: "application/eat+cwt"})
			return cosesig.Assemble(p, nil, msg.Payload, msg.Signature, true)
		}(), want: attest.ReasonBadSignature},
		{name: "wrong key", token: tok, input: func(in *attest.Input) {
			in.Endorsements.Keys[0].Public = &testKey(t, "someone else").PublicKey
		}, want: attest.ReasonBadSignature},
		{name: "unknown instance id", token: tok, input: func(in *attest.Input) {
			in.Endorsements.Keys[0].ID = append([]byte{1}, bytes.Repeat([]byte{7}, 32)...)
		}, want: attest.ReasonUnknownInstance},
		{name: "instance id endorsed as another's", token: withClaims(func(c map[int64]any) {
			c[keyEATUEID] = append([]byte{1}, bytes.Repeat([]byte{8}, 32)...)
		}), want: attest.ReasonUnknownInstance},
		{name: "no alg (empty protected header)", token: signWith(t, d.Key(), nil, payload), want: attest.ReasonAlgNone},
		{name: "no alg (kid only)", token: signWith(t, d.Key(), encodeCBOR(t, map[int64]any{4: []byte("k")}), payload), want: attest.ReasonAlgNone},
		{name: "alg 0", token: signWith(t, d.Key(), encodeCBOR(t, map[int64]any{1: 0}), payload), want: attest.ReasonAlgNone},
		{name: "alg \"none\"", token: signWith(t, d.Key(), encodeCBOR(t, map[int64]any{1: "none"}), payload), want: attest.ReasonAlgNone},
		{name: "alg only unprotected", token: func() []byte {
			s, _ := cosesig.NewSigner(d.Key())
			sig, _ := s.Sign(rand.Reader, cosesig.ToBeSigned(nil, payload))
			return cosesig.Assemble(nil, encodeCBOR(t, map[int64]any{1: -7}), payload, sig, true)
		}(), want: attest.ReasonAlgNone},
		{name: "alg unsupported (PS256)", token: signWith(t, d.Key(), encodeCBOR(t, map[int64]any{1: -37}), payload), want: attest.ReasonAlgUnsupported},
		{name: "alg unsupported (text)", token: signWith(t, d.Key(), encodeCBOR(t, map[int64]any{1: "ES256"}), payload), want: attest.ReasonAlgUnsupported},
		{name: "alg mismatch (ES384 header, P-256 key)", token: signWith(t, d.Key(), cosesig.ProtectedHeader(cose.AlgorithmES384, nil), payload), want: attest.ReasonAlgMismatch},
		{name: "alg mismatch (EdDSA header, P-256 key)", token: signWith(t, d.Key(), cosesig.ProtectedHeader(cose.AlgorithmEdDSA, nil), payload), want: attest.ReasonAlgMismatch},
		{name: "alg mismatch (ES256 header, Ed25519 key)", token: tok, input: func(in *attest.Input) {
			in.Endorsements.Keys[0].Public = ed25519.NewKeyFromSeed(make([]byte, 32)).Public()
		}, want: attest.ReasonAlgMismatch},
		{name: "alg mismatch (ES256 header, ML-DSA-65 key)", token: tok, input: func(in *attest.Input) {
			pk, _ := mldsa65.NewKeyFromSeed(new([mldsa65.SeedSize]byte))
			in.Endorsements.Keys[0].Public = pk
		}, want: attest.ReasonAlgMismatch},
		{name: "ECDSA r = s = 0", token: fixedSig(big.NewInt(0), big.NewInt(0)), want: attest.ReasonSignatureRange},
		{name: "ECDSA s = 0", token: fixedSig(big.NewInt(1), big.NewInt(0)), want: attest.ReasonSignatureRange},
		{name: "ECDSA s = N", token: fixedSig(big.NewInt(1), n), want: attest.ReasonSignatureRange},
		{name: "ECDSA s > N", token: fixedSig(big.NewInt(1), new(big.Int).Add(n, big.NewInt(5))), want: attest.ReasonSignatureRange},
		{name: "ECDSA r = N", token: fixedSig(n, big.NewInt(1)), want: attest.ReasonSignatureRange},
		{name: "ECDSA short signature", token: cosesig.Assemble(es256, nil, payload, make([]byte, 63), true), want: attest.ReasonBadSignature},
		{name: "unknown critical header", token: signWith(t, d.Key(), encodeCBOR(t, map[int64]any{1: -7, 2: []int64{99}, 99: 1}), payload), want: attest.ReasonBadProtectedHeader},
		{name: "critical header not in protected", token: signWith(t, d.Key(), encodeCBOR(t, map[int64]any{1: -7, 2: []int64{4}}), payload), want: attest.ReasonBadProtectedHeader},
		{name: "empty crit", token: signWith(t, d.Key(), encodeCBOR(t, map[int64]any{1: -7, 2: []int64{}}), payload), want: attest.ReasonBadProtectedHeader},
		{name: "duplicate protected label", token: signWith(t, d.Key(), []byte{0xa2, 0x01, 0x26, 0x01, 0x26}, payload), want: attest.ReasonBadProtectedHeader},
		{name: "duplicate protected label, other encoding", token: signWith(t, d.Key(), []byte{0xa2, 0x01, 0x26, 0x18, 0x01, 0x26}, payload), want: attest.ReasonBadProtectedHeader},
		{name: "label in both buckets", token: func() []byte {
			msg, _ := cosesig.Decode(tok)
			return cosesig.Assemble(msg.Protected, encodeCBOR(t, map[int64]any{1: -7}), msg.Payload, msg.Signature, true)
		}(), want: attest.ReasonBadProtectedHeader},
		{name: "protected header not a map", token: signWith(t, d.Key(), encodeCBOR(t, []int64{1, -7}), payload), want: attest.ReasonBadProtectedHeader},
		{name: "wrong nonce", token: tok, input: func(in *attest.Input) { in.Nonce = testNonce("other") }, want: attest.ReasonNonceMismatch},
		{name: "no expected nonce", token: tok, input: func(in *attest.Input) { in.Nonce = nil }, want: attest.ReasonNonceMismatch},
		{name: "missing nonce", token: withClaims(func(c map[int64]any) { delete(c, keyEATNonce) }), want: attest.ReasonNonceMissing},
		{name: "short nonce", token: withClaims(func(c map[int64]any) { c[keyEATNonce] = nonce[:16] }), want: attest.ReasonNonceLength},
		{name: "40-byte nonce", token: withClaims(func(c map[int64]any) { c[keyEATNonce] = make([]byte, 40) }), want: attest.ReasonNonceLength},
		{name: "nonce not bytes", token: withClaims(func(c map[int64]any) { c[keyEATNonce] = "nonce" }), want: attest.ReasonMalformed},
		{name: "unknown profile", token: withClaims(func(c map[int64]any) { c[keyEATProfile] = "http://arm.com/psa/3.0.0" }), want: attest.ReasonBadProfile},
		{name: "legacy profile name under 265", token: withClaims(func(c map[int64]any) { c[keyEATProfile] = ProfileIoT1 }), want: attest.ReasonBadProfile},
		{name: "profile as OID", token: withClaims(func(c map[int64]any) { c[keyEATProfile] = []byte{0x2b, 6, 1} }), want: attest.ReasonBadProfile},
		{name: "no profile", token: withClaims(func(c map[int64]any) { delete(c, keyEATProfile) }), want: attest.ReasonBadProfile},
		{name: "two profiles", token: withClaims(func(c map[int64]any) { c[keyP1Profile] = ProfileIoT1 }), want: attest.ReasonBadProfile},
		{name: "missing instance id", token: withClaims(func(c map[int64]any) { delete(c, keyEATUEID) }), want: attest.ReasonMissingClaim},
		{name: "missing implementation id", token: withClaims(func(c map[int64]any) { delete(c, keyPSAImplID) }), want: attest.ReasonMissingClaim},
		{name: "missing lifecycle", token: withClaims(func(c map[int64]any) { delete(c, keyPSALifecycle) }), want: attest.ReasonMissingClaim},
		{name: "missing client id", token: withClaims(func(c map[int64]any) { delete(c, keyPSAClientID) }), want: attest.ReasonMissingClaim},
		{name: "missing software components", token: withClaims(func(c map[int64]any) { delete(c, keyPSASwComponents) }), want: attest.ReasonMissingClaim},
		{name: "empty software components", token: withClaims(func(c map[int64]any) { c[keyPSASwComponents] = []any{} }), want: attest.ReasonMissingClaim},
		{name: "component without measurement", token: withClaims(func(c map[int64]any) {
			c[keyPSASwComponents] = []map[int64]any{{keyCompType: "BL"}}
		}), want: attest.ReasonMissingClaim},
		{name: "component with unknown key", token: withClaims(func(c map[int64]any) {
			c[keyPSASwComponents] = []map[int64]any{{keyCompMeasurement: make([]byte, 32), 9: 1}}
		}), want: attest.ReasonMalformed},
		{name: "component epoch outside profile 1", token: withClaims(func(c map[int64]any) {
			c[keyPSASwComponents] = []map[int64]any{{keyCompMeasurement: make([]byte, 32), keyCompEpoch: 0}}
		}), want: attest.ReasonMalformed},
		{name: "short measurement", token: withClaims(func(c map[int64]any) {
			c[keyPSASwComponents] = []map[int64]any{{keyCompMeasurement: make([]byte, 20)}}
		}), want: attest.ReasonMalformed},
		{name: "unknown claim", token: withClaims(func(c map[int64]any) { c[-70000] = 1 }), want: attest.ReasonMalformed},
		{name: "legacy claim in 2.0.0", token: withClaims(func(c map[int64]any) { c[keyP1Nonce] = nonce }), want: attest.ReasonMalformed},
		{name: "RFC 9783 boot seed in 2.0.0", token: withClaims(func(c map[int64]any) { c[keyEATBootSeed] = make([]byte, 8) }), want: attest.ReasonMalformed},
		{name: "2.0.0 boot seed in RFC 9783", token: func() []byte {
			c := rfc9783Claims(d, nonce)
			c[keyPSABootSeed] = make([]byte, 8)
			return signClaims(t, d, c)
		}(), want: attest.ReasonMalformed},
		{name: "text claim key", token: signClaims(t, d, map[any]any{keyEATProfile: Profile2, "nonce": nonce}), want: attest.ReasonMalformed},
		{name: "short instance id", token: withClaims(func(c map[int64]any) { c[keyEATUEID] = d.InstanceID()[:32] }), want: attest.ReasonMalformed},
		{name: "instance id not RAND", token: withClaims(func(c map[int64]any) {
			id := d.InstanceID()
			id[0] = 2
			c[keyEATUEID] = id
		}), want: attest.ReasonMalformed},
		{name: "short implementation id", token: withClaims(func(c map[int64]any) { c[keyPSAImplID] = make([]byte, 16) }), want: attest.ReasonMalformed},
		{name: "client id 0", token: withClaims(func(c map[int64]any) { c[keyPSAClientID] = 0 }), want: attest.ReasonMalformed},
		{name: "lifecycle over 16 bits", token: withClaims(func(c map[int64]any) { c[keyPSALifecycle] = 0x13000 }), want: attest.ReasonMalformed},
		{name: "lifecycle negative", token: withClaims(func(c map[int64]any) { c[keyPSALifecycle] = -1 }), want: attest.ReasonMalformed},
		{name: "boot seed too short", token: withClaims(func(c map[int64]any) { c[keyPSABootSeed] = make([]byte, 4) }), want: attest.ReasonMalformed},
		{name: "payload not a map", token: signClaims(t, d, []int64{1, 2}), want: attest.ReasonMalformed},
		{name: "empty evidence", token: nil, want: attest.ReasonMalformed},
		{name: "not CBOR", token: []byte("not a token"), want: attest.ReasonMalformed},
		{name: "other tag", token: append([]byte{0xd8, 0x3d}, tok[1:]...), want: attest.ReasonMalformed},
		{name: "COSE_Sign1 of 3 elements", token: append([]byte{0xd2, 0x83}, tok[2:len(tok)-66]...), want: attest.ReasonMalformed},
		{name: "detached payload", token: func() []byte {
			b := []byte{0xd2, 0x84}
			b = append(b, encodeCBOR(t, es256)...)
			b = append(b, 0xa0, 0xf6)
			return append(b, encodeCBOR(t, make([]byte, 64))...)
		}(), want: attest.ReasonMalformed},
		{name: "trailing bytes", token: append(bytes.Clone(tok), 0x00), want: attest.ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := deviceInput(d, tc.token, nonce)
			if tc.input != nil {
				tc.input(&in)
			}
			res, err := verify(in)
			if err == nil {
				t.Fatalf("verified (status %s); want %q", res.Status(), tc.want)
			}
			wantReason(t, err, tc.want)
		})
	}
}

// TestAppraisal checks the statuses a verified token can get.
func TestAppraisal(t *testing.T) {
	d := testDevice(t, "appraisal")
	nonce := testNonce("appraisal")
	cases := []struct {
		name   string
		claims func() map[int64]any
		input  func(*attest.Input)
		want   []attest.Reason
		check  func(*testing.T, attest.TrustVector)
	}{
		{name: "affirming", want: nil},
		{name: "debug lifecycle", claims: func() map[int64]any {
			c := p2Claims(d, nonce)
			c[keyPSALifecycle] = 0x4000
			return c
		}, want: []attest.Reason{attest.ReasonDebugLifecycle}, check: func(t *testing.T, v attest.TrustVector) {
			if v.Configuration != attest.ConfigContraindicated || v.Hardware != attest.HardwareGenuine {
				t.Errorf("vector %+v", v)
			}
		}},
		{name: "recoverable debug lifecycle", claims: func() map[int64]any {
			c := p2Claims(d, nonce)
			c[keyPSALifecycle] = 0x5000
			return c
		}, want: []attest.Reason{attest.ReasonDebugLifecycle}},
		{name: "decommissioned lifecycle", claims: func() map[int64]any {
			c := p2Claims(d, nonce)
			c[keyPSALifecycle] = 0x6000
			return c
		}, want: []attest.Reason{attest.ReasonDebugLifecycle}},
		{name: "unknown lifecycle", claims: func() map[int64]any {
			c := p2Claims(d, nonce)
			c[keyPSALifecycle] = 0
			return c
		}, want: []attest.Reason{attest.ReasonDebugLifecycle}},
		{name: "secured with minor state", claims: func() map[int64]any {
			c := p2Claims(d, nonce)
			c[keyPSALifecycle] = 0x30ff
			return c
		}},
		{name: "debug lifecycle, profile 1", claims: func() map[int64]any {
			c := p1Claims(d, nonce)
			c[keyP1Lifecycle] = 0x4000
			return c
		}, want: []attest.Reason{attest.ReasonDebugLifecycle}},
		{name: "implementation id not bound to the key", input: func(in *attest.Input) {
			in.Endorsements.Keys[0].ImplementationID = bytes.Repeat([]byte{0x55}, 32)
		}, want: []attest.Reason{attest.ReasonImplementationID}, check: func(t *testing.T, v attest.TrustVector) {
			if v.Hardware != attest.TierContraindicated || v.Configuration != attest.ConfigContraindicated {
				t.Errorf("vector %+v", v)
			}
		}},
		{name: "implementation id not in reference values", input: func(in *attest.Input) {
			in.Endorsements.Keys[0].ImplementationID = nil
			in.ReferenceValues.ImplementationIDs = [][]byte{bytes.Repeat([]byte{0x55}, 32)}
		}, want: []attest.Reason{attest.ReasonImplementationID}},
		{name: "implementation id in reference values", input: func(in *attest.Input) {
			in.Endorsements.Keys[0].ImplementationID = nil
		}},
		{name: "implementation id bound to the key, no list", input: func(in *attest.Input) {
			in.ReferenceValues.ImplementationIDs = nil
		}},
		{name: "measurement not in reference values", input: func(in *attest.Input) {
			in.ReferenceValues.Components = []attest.Component{{Type: "SPE", Measurement: bytes.Repeat([]byte{1}, 32)}}
		}, want: []attest.Reason{attest.ReasonMeasurementUnknown}, check: func(t *testing.T, v attest.TrustVector) {
			if v.Executables != attest.ExecutablesContraindicated || v.Configuration != attest.ConfigApproved {
				t.Errorf("vector %+v", v)
			}
		}},
		{name: "signer id mismatch", input: func(in *attest.Input) {
			in.ReferenceValues.Components[0].SignerID = bytes.Repeat([]byte{2}, 32)
		}, want: []attest.Reason{attest.ReasonMeasurementUnknown}},
		{name: "signer id matches", claims: func() map[int64]any {
			c := p2Claims(d, nonce)
			c[keyPSASwComponents] = []map[int64]any{{keyCompMeasurement: d.Components[0].Measurement, keyCompSignerID: bytes.Repeat([]byte{2}, 32)}}
			return c
		}, input: func(in *attest.Input) {
			in.ReferenceValues.Components[0].SignerID = bytes.Repeat([]byte{2}, 32)
		}},
		{name: "empty reference values", input: func(in *attest.Input) {
			in.ReferenceValues = attest.ReferenceValues{}
		}, want: []attest.Reason{attest.ReasonEmptyReferenceValues}},
		{name: "empty reference components", input: func(in *attest.Input) {
			in.ReferenceValues.Components = nil
		}, want: []attest.Reason{attest.ReasonEmptyReferenceValues}},
		{name: "everything wrong", claims: func() map[int64]any {
			c := p2Claims(d, nonce)
			c[keyPSALifecycle] = 0x4000
			c[keyPSAImplID] = make([]byte, 32)
			c[keyPSASwComponents] = []map[int64]any{{keyCompMeasurement: make([]byte, 32)}}
			return c
		}, want: []attest.Reason{attest.ReasonImplementationID, attest.ReasonDebugLifecycle, attest.ReasonMeasurementUnknown}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			claims := p2Claims(d, nonce)
			if tc.claims != nil {
				claims = tc.claims()
			}
			in := deviceInput(d, signClaims(t, d, claims), nonce)
			if tc.input != nil {
				tc.input(&in)
			}
			res, err := verify(in)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			wantStatus := attest.StatusAffirming
			if len(tc.want) > 0 {
				wantStatus = attest.StatusContraindicated
			}
			if res.Status() != wantStatus {
				t.Errorf("status %s; want %s", res.Status(), wantStatus)
			}
			got := res.Reasons()
			if len(got) != len(tc.want) {
				t.Fatalf("reasons %v; want %v", got, tc.want)
			}
			for _, r := range tc.want {
				if !hasReason(got, r) {
					t.Errorf("reasons %v; want %v", got, tc.want)
				}
			}
			a := res.Submods[string(attest.FormatPSA)]
			if a.TrustVector.InstanceIdentity != attest.InstanceTrusted {
				t.Errorf("instance identity %d", a.TrustVector.InstanceIdentity)
			}
			if tc.check != nil {
				tc.check(t, a.TrustVector)
			}
		})
	}
}

// TestProfile1NoSoftwareMeasurements: hegate appraises components, so a
// token without any is refused.
func TestProfile1NoSoftwareMeasurements(t *testing.T) {
	d := testDevice(t, "no-sw")
	nonce := testNonce("no-sw")
	c := p1Claims(d, nonce)
	delete(c, keyP1SwComponents)
	c[keyP1NoSwMeasurem] = 1
	_, err := verify(deviceInput(d, signClaims(t, d, c), nonce))
	wantReason(t, err, attest.ReasonMissingClaim)

	c = p1Claims(d, nonce)
	c[keyP1NoSwMeasurem] = 1
	_, err = verify(deviceInput(d, signClaims(t, d, c), nonce))
	wantReason(t, err, attest.ReasonMalformed)

	c = p1Claims(d, nonce)
	delete(c, keyP1BootSeed)
	_, err = verify(deviceInput(d, signClaims(t, d, c), nonce))
	wantReason(t, err, attest.ReasonMissingClaim)
}

func TestMeasurementNames(t *testing.T) {
	m := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	got := measurementNames([]Component{{Type: "BL", Measurement: m(1)}, {Measurement: m(2)}, {Type: "BL", Measurement: m(3)}, {Type: "2", Measurement: m(4)}})
	want := []string{"BL", "1", "2", "3"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("names %q; want %q", got, want)
		}
	}
}

// TestTruncated verifies every prefix of good tokens: each must be refused
// with a reason, none may panic.
func TestTruncated(t *testing.T) {
	d := testDevice(t, "truncated")
	nonce := testNonce("truncated")
	tokens := [][]byte{signClaims(t, d, p2Claims(d, nonce)), signClaims(t, d, p1Claims(d, nonce))}
	for _, rt := range realTokens {
		tokens = append(tokens, readTestdata(t, rt.file))
	}
	for _, tok := range tokens {
		for n := 0; n < len(tok); n++ {
			_, err := verify(deviceInput(d, tok[:n], nonce))
			if err == nil || attest.ReasonOf(err) == "" {
				t.Fatalf("prefix of %d of %d bytes: %v", n, len(tok), err)
			}
		}
	}
}

func TestLimits(t *testing.T) {
	d := testDevice(t, "limits")
	nonce := testNonce("limits")
	es256 := cosesig.ProtectedHeader(cose.AlgorithmES256, nil)
	sig := make([]byte, 64)
	deep := func(depth int) []byte {
		b := bytes.Repeat([]byte{0x81}, depth)
		return append(b, 0x00)
	}
	cases := []struct {
		name  string
		token []byte
		want  attest.Reason
	}{
		{"oversized", append([]byte{0xd2, 0x84}, make([]byte, attest.MaxEvidenceBytes)...), attest.ReasonTooLarge},
		{"deep payload", cosesig.Assemble(es256, nil, append([]byte{0xa1, 0x0a}, deep(attest.MaxNestingDepth)...), sig, true), attest.ReasonTooLarge},
		{"deep payload in a claim", cosesig.Assemble(es256, nil,
			encodeCBOR(t, map[int64]cbor.RawMessage{keyEATProfile: encodeCBOR(t, Profile2), keyPSASwComponents: deep(40)}), sig, true), attest.ReasonTooLarge},
		{"deep unprotected header", cosesig.Assemble(es256, append([]byte{0xa1, 0x05}, deep(100)...), encodeCBOR(t, 1), sig, true), attest.ReasonTooLarge},
		{"deep protected header", cosesig.Assemble(append([]byte{0xa2, 0x01, 0x26, 0x05}, deep(100)...), nil, encodeCBOR(t, 1), sig, true), attest.ReasonTooLarge},
		{"huge array", []byte{0xd2, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, attest.ReasonTooLarge},
		{"huge array in payload", cosesig.Assemble(es256, nil, []byte{0xa1, 0x0a, 0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, sig, true), attest.ReasonTooLarge},
		{"huge map in payload", cosesig.Assemble(es256, nil, []byte{0xbb, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00}, sig, true), attest.ReasonTooLarge},
		{"too many components", cosesig.Assemble(es256, nil, encodeCBOR(t, map[int64]any{keyEATProfile: Profile2,
			keyPSASwComponents: make([]int, attest.MaxItems+1)}), sig, true), attest.ReasonTooLarge},
		{"huge byte string", []byte{0xd2, 0x84, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}, attest.ReasonMalformed},
		{"huge byte string in payload", cosesig.Assemble(es256, nil, []byte{0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, sig, true), attest.ReasonMalformed},
		{"indefinite-length array", append([]byte{0xd2, 0x9f}, 0xff), attest.ReasonMalformed},
		{"tag in payload", cosesig.Assemble(es256, nil, []byte{0xc1, 0x00}, sig, true), attest.ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := verify(deviceInput(d, tc.token, nonce))
			runtime.ReadMemStats(&after)
			wantReason(t, err, tc.want)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 4*attest.MaxEvidenceBytes+(1<<20) {
				t.Errorf("allocated %d bytes for %d bytes of evidence", grew, len(tc.token))
			}
		})
	}
}

func TestFormat(t *testing.T) {
	if (Verifier{}).Format() != attest.FormatPSA {
		t.Fatal("format")
	}
}

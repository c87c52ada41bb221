package credential

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Key is one of the gateway's credential signing keys: Ed25519, used with
// the JWS algorithm "EdDSA" (RFC 8037 section 3.1).
type Key struct {
	// ID is the JWS kid. NewKey sets it to the key's RFC 7638 thumbprint,
	// so that anyone holding the JWK Set can check that a kid names the key
	// it claims to; any other unique string works as well.
	ID string
	// Private signs; nil for a key that only verifies.
	Private ed25519.PrivateKey
	// Public verifies.
	Public ed25519.PublicKey
	// NotAfter is when the key stops verifying; zero means never. Rotation
	// sets it on a retired key to the retirement time plus the longest token
	// lifetime, so that tokens it signed just before keep working until they
	// expire, and no longer.
	NotAfter time.Time
}

// KeySource gives the keys that sign and verify access tokens. The gateway
// implements it over its store, shared by every replica, with rotation;
// StaticKeys is a fixed set for tests and offline tools.
type KeySource interface {
	// SigningKey returns the key that signs new tokens. It must have a
	// Private part.
	SigningKey(ctx context.Context) (Key, error)
	// VerificationKeys returns every key that may still verify a token:
	// the signing key and retired keys. A source may leave out keys past
	// their NotAfter; the Verifier refuses those anyway
	// (ReasonTokenKeyRetired when the source still lists them).
	VerificationKeys(ctx context.Context) ([]Key, error)
}

// StaticKeys is a fixed KeySource: the first key with a private part signs,
// and every key verifies until its NotAfter. To rotate, put the new key
// first and keep the old one, with a NotAfter, after it.
type StaticKeys []Key

// SigningKey returns the first key with a private part.
func (s StaticKeys) SigningKey(context.Context) (Key, error) {
	for _, k := range s {
		if k.Private != nil {
			return k, nil
		}
	}
	return Key{}, errors.New("credential: no signing key")
}

// VerificationKeys returns every key, without its private part: verifying
// never needs it, and a copy that lacks it cannot leak it.
func (s StaticKeys) VerificationKeys(context.Context) ([]Key, error) {
	out := make([]Key, len(s))
	for i, k := range s {
		k.Private = nil
		out[i] = k
	}
	return out, nil
}

// NewKey makes an Ed25519 signing key from 32 bytes of rand (crypto/rand
// when nil). Its ID is the key's RFC 7638 thumbprint (see Thumbprint):
// derived, so it needs no coordination between replicas and cannot name
// two different keys.
func NewKey(random io.Reader) (Key, error) {
	if random == nil {
		random = rand.Reader
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(random, seed); err != nil {
		return Key{}, fmt.Errorf("credential: key seed: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	clear(seed)
	pub := priv.Public().(ed25519.PublicKey)
	kid, err := Thumbprint(pub)
	if err != nil {
		return Key{}, err
	}
	return Key{ID: kid, Private: priv, Public: pub}, nil
}

// jwkSetKey is one member of a JWK Set: only public parameters exist here,
// so no code path can put a private one in.
type jwkSetKey struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS returns keys as an RFC 7517 section 5 JWK Set: each an OKP key with
// crv "Ed25519" (RFC 8037 section 2), its kid, alg "EdDSA" and use "sig".
// Private parts are never included. Publish it (for example at
// /.well-known/jwks.json) with the keys of KeySource.VerificationKeys, so
// that relying services can verify tokens offline.
func JWKS(keys []Key) ([]byte, error) {
	set := struct {
		Keys []jwkSetKey `json:"keys"`
	}{Keys: make([]jwkSetKey, 0, len(keys))}
	for _, k := range keys {
		if len(k.Public) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("credential: key %q: public key is %d bytes, want %d", k.ID, len(k.Public), ed25519.PublicKeySize)
		}
		if k.ID == "" {
			return nil, errors.New("credential: key without an id")
		}
		set.Keys = append(set.Keys, jwkSetKey{
			Kty: "OKP",
			Crv: "Ed25519",
			X:   base64.RawURLEncoding.EncodeToString(k.Public),
			Kid: k.ID,
			Alg: "EdDSA",
			Use: "sig",
		})
	}
	return json.Marshal(set)
}

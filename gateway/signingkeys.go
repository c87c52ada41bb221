package gateway

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hegate/hegate/attest/credential"
	"github.com/hegate/hegate/storage"
)

// SigningKeys are the gateway's credential signing keys, kept in the store
// so that every replica signs and verifies with the same ones. It is the
// credential.KeySource of the Server, and what "hegate credential" rotates.
//
// With a key-encryption key (KEK, 32 bytes: HEGATE_CREDENTIAL_KEK), each
// private seed is stored sealed with AES-256-GCM, the key id as associated
// data, so that a copy of the database alone mints no credential. Without
// one the seeds are stored in clear, and the Server logs a warning.
type SigningKeys struct {
	store storage.Attestation
	now   func() time.Time
	aead  cipher.AEAD // nil: seeds in clear
}

// KEKBytes is the size of a key-encryption key.
const KEKBytes = 32

// sealedSeedVersion starts a sealed seed: version, nonce, ciphertext+tag.
const sealedSeedVersion = 0x01

// NewSigningKeys manages the signing keys in store; kek is nil or
// KEKBytes long. now tells the time (time.Now when nil).
func NewSigningKeys(store storage.Attestation, now func() time.Time, kek []byte) (*SigningKeys, error) {
	if now == nil {
		now = time.Now
	}
	k := &SigningKeys{store: store, now: now}
	if kek != nil {
		if len(kek) != KEKBytes {
			return nil, fmt.Errorf("credential key-encryption key: %d bytes, want %d", len(kek), KEKBytes)
		}
		block, err := aes.NewCipher(kek)
		if err != nil {
			return nil, err
		}
		if k.aead, err = cipher.NewGCM(block); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// ParseKEK reads a key-encryption key written as 64 hex digits; "" is none.
func ParseKEK(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != KEKBytes {
		return nil, fmt.Errorf("the credential key-encryption key must be %d hex digits (openssl rand -hex %d)", 2*KEKBytes, KEKBytes)
	}
	return b, nil
}

// Encrypted reports whether seeds are sealed.
func (k *SigningKeys) Encrypted() bool { return k.aead != nil }

func (k *SigningKeys) seal(id string, seed []byte) ([]byte, error) {
	if k.aead == nil {
		return seed, nil
	}
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append([]byte{sealedSeedVersion}, nonce...)
	return k.aead.Seal(out, nonce, seed, []byte(id)), nil
}

func (k *SigningKeys) open(id string, stored []byte) ([]byte, error) {
	if len(stored) == ed25519.SeedSize {
		// A seed stored in clear (no KEK then, or a key made before one
		// was set): still usable, so that setting a KEK breaks nothing;
		// rotate to seal the signing key.
		return stored, nil
	}
	if len(stored) == 0 || stored[0] != sealedSeedVersion {
		return nil, fmt.Errorf("credential signing key %s: stored private key of %d bytes is neither a seed nor sealed", id, len(stored))
	}
	if k.aead == nil {
		return nil, fmt.Errorf("credential signing key %s is sealed: set the key-encryption key (HEGATE_CREDENTIAL_KEK)", id)
	}
	ns := k.aead.NonceSize()
	if len(stored) < 1+ns+k.aead.Overhead() {
		return nil, fmt.Errorf("credential signing key %s: sealed private key too short", id)
	}
	seed, err := k.aead.Open(nil, stored[1:1+ns], stored[1+ns:], []byte(id))
	if err != nil {
		return nil, fmt.Errorf("credential signing key %s does not open with this key-encryption key", id)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("credential signing key %s: sealed seed of %d bytes", id, len(seed))
	}
	return seed, nil
}

// VerificationKeys are every key that still verifies: the public halves
// only, read on every call, so that a key another replica made by rotation
// verifies here the moment it exists, and no private seed is opened merely
// to verify a token.
func (k *SigningKeys) VerificationKeys(ctx context.Context) ([]credential.Key, error) {
	stored, err := k.store.ListSigningKeys(ctx, k.now())
	if err != nil {
		return nil, fmt.Errorf("reading credential signing keys: %w", err)
	}
	out := make([]credential.Key, 0, len(stored))
	for _, s := range stored {
		if s.Algorithm != signingAlgorithm || len(s.PublicKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("credential signing key %s: algorithm %q with a %d-byte public key is not Ed25519", s.ID, s.Algorithm, len(s.PublicKey))
		}
		key := credential.Key{ID: s.ID, Public: ed25519.PublicKey(s.PublicKey)}
		if s.VerifyUntil != nil {
			key.NotAfter = *s.VerifyUntil
		}
		out = append(out, key)
	}
	return out, nil
}

// SigningKey is the newest key that is not retired; the first credential
// a deployment issues makes one.
func (k *SigningKeys) SigningKey(ctx context.Context) (credential.Key, error) {
	for range 2 {
		keys, err := k.store.ListSigningKeys(ctx, k.now())
		if err != nil {
			return credential.Key{}, fmt.Errorf("reading credential signing keys: %w", err)
		}
		for _, s := range keys {
			if s.RetiredAt == nil {
				return k.privateKey(s)
			}
		}
		if err := k.Ensure(ctx); err != nil {
			return credential.Key{}, err
		}
	}
	return credential.Key{}, errors.New("no credential signing key could be made")
}

func (k *SigningKeys) privateKey(s storage.SigningKey) (credential.Key, error) {
	if s.Algorithm != signingAlgorithm {
		return credential.Key{}, fmt.Errorf("credential signing key %s: algorithm %q is not %s", s.ID, s.Algorithm, signingAlgorithm)
	}
	seed, err := k.open(s.ID, s.PrivateKey)
	if err != nil {
		return credential.Key{}, err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	if !pub.Equal(ed25519.PublicKey(s.PublicKey)) {
		return credential.Key{}, fmt.Errorf("credential signing key %s: the private key does not match the public key", s.ID)
	}
	key := credential.Key{ID: s.ID, Private: priv, Public: pub}
	if s.VerifyUntil != nil {
		key.NotAfter = *s.VerifyUntil
	}
	return key, nil
}

// Ensure makes a signing key if the store has none that signs. Replicas
// starting together may each make one; the newest signs and all verify,
// so that is harmless.
func (k *SigningKeys) Ensure(ctx context.Context) error {
	keys, err := k.store.ListSigningKeys(ctx, k.now())
	if err != nil {
		return fmt.Errorf("reading credential signing keys: %w", err)
	}
	for _, s := range keys {
		if s.RetiredAt == nil {
			return nil
		}
	}
	_, err = k.create(ctx)
	return err
}

// Rotate makes a new signing key and retires the others: they stop
// signing now and verify until the credentials they signed have expired.
// It returns the new key's id.
func (k *SigningKeys) Rotate(ctx context.Context) (string, error) {
	id, err := k.create(ctx)
	if err != nil {
		return "", err
	}
	now := k.now()
	if err := k.store.RetireSigningKeys(ctx, id, now, now.Add(credentialGrace)); err != nil {
		return "", fmt.Errorf("retiring old credential signing keys: %w", err)
	}
	return id, nil
}

func (k *SigningKeys) create(ctx context.Context) (string, error) {
	key, err := credential.NewKey(rand.Reader)
	if err != nil {
		return "", err
	}
	stored, err := k.seal(key.ID, key.Private.Seed())
	if err != nil {
		return "", err
	}
	if err := k.store.CreateSigningKey(ctx, storage.SigningKey{
		ID:         key.ID,
		Algorithm:  signingAlgorithm,
		PrivateKey: stored,
		PublicKey:  key.Public,
		CreatedAt:  k.now(),
	}); err != nil {
		return "", fmt.Errorf("storing credential signing key: %w", err)
	}
	return key.ID, nil
}

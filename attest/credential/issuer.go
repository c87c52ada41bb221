package credential

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token lifetimes. A DPoP-bound token is useless without the device's key,
// but it still carries an attestation result that ages: the device must
// come back with fresh evidence at least every MaxTTL.
const (
	DefaultTTL = 15 * time.Minute
	MaxTTL     = time.Hour
)

// The JOSE types (RFC 7515 section 4.1.9) of the two JWTs.
const (
	typeAccessToken = "at+jwt"   // RFC 9068 section 2.1
	typeDPoPProof   = "dpop+jwt" // RFC 9449 section 4.2
)

// Claims is what an access token says about the device holding it.
type Claims struct {
	// Tenant is the tenant the device enrolled with ("hegate_tenant").
	Tenant string
	// Device is the device id, the token's subject ("sub").
	Device string
	// Format is the attestation evidence format (attest.Format) the device
	// enrolled with ("hegate_format").
	Format string
	// Status is the EAR status of its attestation result (attest.Status)
	// ("hegate_status"). Policy decides what a non-affirming status may do.
	Status string
	// JKT is the RFC 7638 thumbprint of the device key, base64url (see
	// Thumbprint): the token's "cnf":{"jkt":...} (RFC 9449 section 6.1).
	JKT string

	// The fields below are set by Issue and filled in by Verify; Issue
	// ignores what the caller puts there.

	// ID is the token's "jti", random: for logs and revocation lists.
	ID string
	// IssuedAt and ExpiresAt are "iat" and "exp" (nbf equals iat).
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// tokenClaims is the access token's claim set: the registered claims RFC
// 9068 section 2.2 requires (iss, exp, aud, sub, client_id, iat, jti), nbf,
// the confirmation of RFC 9449 section 6.1, and hegate's private claims
// (RFC 7519 section 4.3, prefixed so they collide with nothing registered).
type tokenClaims struct {
	jwt.RegisteredClaims
	// ClientID is the device: in this deployment the device is the OAuth
	// client. Verify does not rely on it.
	ClientID string        `json:"client_id,omitempty"`
	Cnf      *confirmation `json:"cnf,omitempty"`
	Tenant   string        `json:"hegate_tenant,omitempty"`
	Format   string        `json:"hegate_format,omitempty"`
	Status   string        `json:"hegate_status,omitempty"`
}

// confirmation is the cnf claim (RFC 7800) with the JWK SHA-256 thumbprint
// confirmation method of RFC 9449 section 6.1.
type confirmation struct {
	JKT string `json:"jkt,omitempty"`
}

// Issuer makes access tokens.
type Issuer struct {
	// Issuer is the "iss" claim: the gateway's public base URL.
	Issuer string
	// Audience is the "aud" claim: who accepts the token (the inference
	// API's base URL).
	Audience string
	// TTL is the token lifetime: DefaultTTL when zero or negative, at most
	// MaxTTL.
	TTL time.Duration
	// Keys gives the signing key.
	Keys KeySource
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Issue signs an access token with the claims c for a device whose
// evidence was accepted. c.Device, c.Tenant and c.JKT are required (a token
// without them would be refused by every Verifier). The token is a JWS with
// header alg "EdDSA", typ "at+jwt" and the signing key's kid; its lifetime
// is the Issuer's TTL, cut short when the signing key stops verifying
// first, so that no token outlives its key. expiresAt is its "exp".
func (is *Issuer) Issue(ctx context.Context, c Claims) (token string, expiresAt time.Time, err error) {
	if is.Issuer == "" || is.Audience == "" || is.Keys == nil {
		return "", time.Time{}, errors.New("credential: Issuer needs Issuer, Audience and Keys")
	}
	switch {
	case c.Device == "":
		return "", time.Time{}, errors.New("credential: no device id")
	case c.Tenant == "":
		return "", time.Time{}, errors.New("credential: no tenant")
	case !validJKT(c.JKT):
		return "", time.Time{}, errors.New("credential: JKT is not a base64url SHA-256 thumbprint")
	}
	key, err := is.Keys.SigningKey(ctx)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("credential: signing key: %w", err)
	}
	if len(key.Private) != ed25519.PrivateKeySize || key.ID == "" {
		return "", time.Time{}, errors.New("credential: signing key has no private part or no id")
	}

	ttl := is.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	ttl = min(ttl, MaxTTL)
	// JWT dates are whole seconds (RFC 7519 section 2, and jwt.TimePrecision):
	// truncate first so that expiresAt is exactly the exp in the token.
	now := clock(is.Now).Truncate(time.Second)
	exp := now.Add(ttl)
	if !key.NotAfter.IsZero() {
		if !now.Before(key.NotAfter) {
			return "", time.Time{}, errors.New("credential: the signing key is past its NotAfter")
		}
		if na := key.NotAfter.Truncate(time.Second); na.Before(exp) {
			exp = na
		}
	}
	jti, err := randomID()
	if err != nil {
		return "", time.Time{}, err
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    is.Issuer,
			Subject:   c.Device,
			Audience:  jwt.ClaimStrings{is.Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
		ClientID: c.Device,
		Cnf:      &confirmation{JKT: c.JKT},
		Tenant:   c.Tenant,
		Format:   c.Format,
		Status:   c.Status,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["typ"] = typeAccessToken
	t.Header["kid"] = key.ID
	token, err = t.SignedString(key.Private)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("credential: sign token: %w", err)
	}
	return token, exp, nil
}

// validJKT reports whether s is the unpadded base64url of 32 bytes, the
// shape of an RFC 7638 SHA-256 thumbprint.
func validJKT(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(32) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == 32
}

// randomID returns 128 random bits, base64url: a jti (RFC 9449 section 4.2
// asks for at least 96 bits so that honest ids never collide).
func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("credential: random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// clock returns now(), or time.Now() when now is nil.
func clock(now func() time.Time) time.Time {
	if now == nil {
		return time.Now()
	}
	return now()
}

package credential

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier defaults.
const (
	// DefaultProofWindow is how far a proof's iat may be from now, either
	// side. RFC 9449 section 11.1 leaves it to the server; a minute covers
	// a request's transit and a device clock that drifts a little, and
	// bounds how long the replay cache must remember a proof.
	DefaultProofWindow = 60 * time.Second
	// DefaultLeeway is the clock skew allowed on top of every time check.
	DefaultLeeway = 5 * time.Second
)

// Verifier checks the credential of one request: the access token and the
// DPoP proof that must come with it.
type Verifier struct {
	// Issuer is the "iss" a token must have; Audience must be in its "aud".
	// Both are required: an empty one would turn its check off.
	Issuer, Audience string
	// Keys gives the keys that verify tokens.
	Keys KeySource
	// Replay remembers accepted proofs; required.
	Replay ReplayCache
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// ProofWindow is how old or how far in the future a proof's iat may
	// be: DefaultProofWindow when zero.
	ProofWindow time.Duration
	// Leeway is the clock skew allowed on exp, nbf, iat and the proof
	// window: DefaultLeeway when zero, none when negative.
	Leeway time.Duration
}

// Request is the credential of one HTTP request, as the gateway received
// it.
type Request struct {
	// Token is the access token, from "Authorization: DPoP <token>" (RFC
	// 9449 section 7.1).
	Token string
	// Proof is the DPoP header's value. The caller refuses a request with
	// more than one DPoP header (RFC 9449 section 4.3, check 1) before it
	// gets here.
	Proof string
	// Method is the request method, exactly as received ("POST").
	Method string
	// URL is the absolute URL the device addressed: scheme and host as
	// the device saw them (behind a proxy, the public ones), path, and
	// any query (ignored).
	URL string
}

// Proof is what a verified DPoP proof says.
type Proof struct {
	// JKT is the RFC 7638 thumbprint of the proof's key, base64url.
	JKT string
	// ID is its jti.
	ID string
	// IssuedAt is its iat.
	IssuedAt time.Time
}

// Verify checks r's access token and DPoP proof and returns the token's
// claims. The token must be a JWS by one of Keys' verification keys (alg
// pinned to EdDSA, typ at+jwt, RFC 9068 section 4), from Issuer for
// Audience, unexpired, and carry sub, hegate_tenant and cnf.jkt. The proof
// must pass the checks of RFC 9449 section 4.3 for r's method and URL,
// carry the hash of the token (ath) and be signed by the key the token is
// bound to (section 4.3 check 12, section 7.1). Only then is the proof
// recorded in Replay, so that requests that fail cannot fill it; a proof
// seen before is refused.
//
// A refusal is an *Error (see ReasonOf); any other error is an internal
// failure (misconfiguration, key source or replay cache down) and should
// be answered as such, not as the device's fault.
func (v *Verifier) Verify(ctx context.Context, r Request) (Claims, error) {
	if err := v.check(); err != nil {
		return Claims{}, err
	}
	now := clock(v.Now)
	claims, err := v.verifyToken(ctx, r.Token, now)
	if err != nil {
		return Claims{}, err
	}
	p, err := v.verifyProof(r, now)
	if err != nil {
		return Claims{}, err
	}
	if subtle.ConstantTimeCompare([]byte(p.JKT), []byte(claims.JKT)) != 1 {
		return Claims{}, errorf(ReasonProofKeyMismatch, "the proof is signed by another key than the token is bound to")
	}
	if err := v.use(ctx, p, now); err != nil {
		return Claims{}, err
	}
	return claims, nil
}

// VerifyProof checks a DPoP proof on its own, for requests that carry no
// access token yet, such as enrollment, where the proof shows that the
// device holds the key its credential will be bound to (RFC 9449 section
// 5). r.Token is optional: when set, the proof's ath must be its hash
// (the token itself is not verified); when empty, a proof with an ath is
// refused, as it was made for another request. The proof is recorded in
// Replay like in Verify.
func (v *Verifier) VerifyProof(ctx context.Context, r Request) (Proof, error) {
	if err := v.check(); err != nil {
		return Proof{}, err
	}
	now := clock(v.Now)
	if len(r.Token) > MaxTokenBytes {
		return Proof{}, errorf(ReasonTokenTooLarge, "over %d bytes", MaxTokenBytes)
	}
	p, err := v.verifyProof(r, now)
	if err != nil {
		return Proof{}, err
	}
	if err := v.use(ctx, p, now); err != nil {
		return Proof{}, err
	}
	return p, nil
}

// check refuses a Verifier whose configuration would switch checks off.
func (v *Verifier) check() error {
	if v.Issuer == "" || v.Audience == "" || v.Keys == nil || v.Replay == nil {
		return errors.New("credential: Verifier needs Issuer, Audience, Keys and Replay")
	}
	return nil
}

func (v *Verifier) window() time.Duration {
	if v.ProofWindow <= 0 {
		return DefaultProofWindow
	}
	return v.ProofWindow
}

func (v *Verifier) leeway() time.Duration {
	switch {
	case v.Leeway == 0:
		return DefaultLeeway
	case v.Leeway < 0:
		return 0
	}
	return v.Leeway
}

// verifyToken checks an access token.
func (v *Verifier) verifyToken(ctx context.Context, raw string, now time.Time) (Claims, error) {
	switch {
	case raw == "":
		return Claims{}, errorf(ReasonTokenMissing, "no access token")
	case len(raw) > MaxTokenBytes:
		return Claims{}, errorf(ReasonTokenTooLarge, "over %d bytes", MaxTokenBytes)
	case !compactJWS(raw):
		return Claims{}, errorf(ReasonTokenMalformed, "not a compact JWS")
	}
	parser := jwt.NewParser(
		// Pin the algorithm: the key is Ed25519, so anything else, from
		// "none" to HS256 keyed with the public key (RFC 8725 sections 2.1
		// and 3.1), is refused before a key is even looked up.
		jwt.WithValidMethods([]string{algEdDSA}),
		jwt.WithIssuer(v.Issuer),
		jwt.WithAudience(v.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway()),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithStrictDecoding(),
	)
	var sourceErr error
	keyFunc := func(t *jwt.Token) (any, error) {
		if !hasType(t.Header["typ"], typeAccessToken) { // RFC 9068 section 4
			return nil, errorf(ReasonTokenType, "typ is %s, want %q", short(t.Header["typ"]), typeAccessToken)
		}
		if _, ok := t.Header["crit"]; ok {
			// RFC 7515 section 4.1.11: extensions we do not understand.
			return nil, errorf(ReasonTokenMalformed, "crit header not supported")
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errorf(ReasonTokenUnknownKey, "no kid")
		}
		keys, err := v.Keys.VerificationKeys(ctx)
		if err != nil {
			sourceErr = err
			return nil, err
		}
		for _, k := range keys {
			if k.ID != kid {
				continue
			}
			if !k.NotAfter.IsZero() && !now.Before(k.NotAfter) {
				return nil, errorf(ReasonTokenKeyRetired, "the signing key stopped verifying at %s", k.NotAfter.UTC().Format(time.RFC3339))
			}
			return k.Public, nil
		}
		return nil, errorf(ReasonTokenUnknownKey, "no verification key has this kid")
	}
	var tc tokenClaims
	t, err := parser.ParseWithClaims(raw, &tc, keyFunc)
	if sourceErr != nil {
		return Claims{}, fmt.Errorf("credential: verification keys: %w", sourceErr)
	}
	if err != nil {
		return Claims{}, tokenError(t, err)
	}
	switch {
	case tc.Subject == "":
		return Claims{}, errorf(ReasonTokenClaims, "no sub")
	case tc.Tenant == "":
		return Claims{}, errorf(ReasonTokenClaims, "no hegate_tenant")
	case tc.Cnf == nil || tc.Cnf.JKT == "":
		return Claims{}, errorf(ReasonTokenClaims, "no cnf.jkt: the token is not bound to a key")
	case !validJKT(tc.Cnf.JKT):
		return Claims{}, errorf(ReasonTokenClaims, "cnf.jkt is not a SHA-256 thumbprint")
	case tc.ID == "":
		return Claims{}, errorf(ReasonTokenClaims, "no jti")
	case tc.IssuedAt == nil:
		return Claims{}, errorf(ReasonTokenClaims, "no iat")
	}
	return Claims{
		Tenant:    tc.Tenant,
		Device:    tc.Subject,
		Format:    tc.Format,
		Status:    tc.Status,
		JKT:       tc.Cnf.JKT,
		ID:        tc.ID,
		IssuedAt:  tc.IssuedAt.Time,
		ExpiresAt: tc.ExpiresAt.Time,
	}, nil
}

// tokenError maps a jwt parse error for an access token to a refusal.
func tokenError(t *jwt.Token, err error) error {
	var e *Error
	if errors.As(err, &e) { // from keyFunc
		return e
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errorf(ReasonTokenMalformed, "header, claims or signature do not decode")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// ParseUnverified's only unverifiable cases: alg absent or unknown.
		return errorf(ReasonTokenAlg, "alg %s is not %q", algOf(t), algEdDSA)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if t == nil || t.Method == nil || t.Method.Alg() != algEdDSA {
			return errorf(ReasonTokenAlg, "alg %s is not %q", algOf(t), algEdDSA)
		}
		return errorf(ReasonTokenSignature, "the signature does not verify")
	case errors.Is(err, jwt.ErrTokenExpired):
		return errorf(ReasonTokenExpired, "exp has passed")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errorf(ReasonTokenNotYetValid, "nbf is in the future")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errorf(ReasonTokenNotYetValid, "iat is in the future")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errorf(ReasonTokenIssuer, "iss is not this gateway")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return errorf(ReasonTokenAudience, "aud does not name this gateway")
	default: // required claim missing, or a claim of the wrong type
		return errorf(ReasonTokenClaims, "a required claim (exp, iss or aud) is missing or malformed")
	}
}

// verifyProof checks a DPoP proof for r (RFC 9449 section 4.3, checks 2
// to 12), without the replay check.
func (v *Verifier) verifyProof(r Request, now time.Time) (Proof, error) {
	switch {
	case r.Proof == "":
		return Proof{}, errorf(ReasonProofMissing, "no DPoP proof")
	case len(r.Proof) > MaxProofBytes:
		return Proof{}, errorf(ReasonProofTooLarge, "over %d bytes", MaxProofBytes)
	case !compactJWS(r.Proof):
		return Proof{}, errorf(ReasonProofMalformed, "not a compact JWS")
	}
	parser := jwt.NewParser(
		// Check 5: an asymmetric algorithm we support, never none or HMAC.
		jwt.WithValidMethods([]string{algEdDSA, algES256}),
		// Proofs have no exp or nbf; iat is checked below, with the window.
		jwt.WithoutClaimsValidation(),
		jwt.WithStrictDecoding(),
	)
	var pub crypto.PublicKey
	keyFunc := func(t *jwt.Token) (any, error) {
		if !hasType(t.Header["typ"], typeDPoPProof) { // check 4
			return nil, errorf(ReasonProofType, "typ is %s, want %q", short(t.Header["typ"]), typeDPoPProof)
		}
		if _, ok := t.Header["crit"]; ok {
			return nil, errorf(ReasonProofMalformed, "crit header not supported")
		}
		k, err := parseProofJWK(t.Header["jwk"]) // check 7
		if err != nil {
			return nil, err
		}
		if alg := keyAlg(k); alg != t.Method.Alg() {
			return nil, errorf(ReasonProofAlg, "alg %s does not fit the jwk (want %q)", short(t.Method.Alg()), alg)
		}
		pub = k
		return k, nil
	}
	var pc proofClaims
	t, err := parser.ParseWithClaims(r.Proof, &pc, keyFunc) // checks 2, 5 and 6
	if err != nil {
		return Proof{}, proofError(t, err)
	}

	switch { // check 3: the required claims
	case pc.ID == "":
		return Proof{}, errorf(ReasonProofJTI, "no jti")
	case len(pc.ID) > MaxJTIBytes:
		return Proof{}, errorf(ReasonProofJTI, "jti over %d bytes", MaxJTIBytes)
	}
	if pc.HTM != r.Method { // check 8: methods are case-sensitive (RFC 9110 section 9.1)
		return Proof{}, errorf(ReasonProofMethod, "htm does not match the request method %s", short(r.Method))
	}
	want, err := normalizeHTU(r.URL)
	if err != nil {
		return Proof{}, errorf(ReasonProofURL, "request URL: %v", err)
	}
	got, err := normalizeHTU(pc.HTU)
	if err != nil {
		return Proof{}, errorf(ReasonProofURL, "htu: %v", err)
	}
	if got != want { // check 9
		return Proof{}, errorf(ReasonProofURL, "htu does not match the request URL")
	}
	if pc.IssuedAt == nil { // check 11
		return Proof{}, errorf(ReasonProofIAT, "no iat")
	}
	iat := pc.IssuedAt.Time
	limit := v.window() + v.leeway()
	if d := now.Sub(iat); d > limit || d < -limit {
		return Proof{}, errorf(ReasonProofIAT, "iat is more than %s from now", limit)
	}
	ath := ""
	if r.Token != "" {
		ath = tokenHash(r.Token)
	}
	switch { // check 12
	case ath != "" && pc.ATH == "":
		return Proof{}, errorf(ReasonProofATH, "no ath, but the request has an access token")
	case ath == "" && pc.ATH != "":
		return Proof{}, errorf(ReasonProofATH, "ath, but the request has no access token")
	case subtle.ConstantTimeCompare([]byte(pc.ATH), []byte(ath)) != 1:
		return Proof{}, errorf(ReasonProofATH, "ath is not the hash of the access token")
	}
	jkt, err := Thumbprint(pub)
	if err != nil { // cannot happen: parseProofJWK made pub
		return Proof{}, errorf(ReasonProofKey, "jwk has no thumbprint")
	}
	return Proof{JKT: jkt, ID: pc.ID, IssuedAt: iat}, nil
}

// proofError maps a jwt parse error for a proof to a refusal.
func proofError(t *jwt.Token, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errorf(ReasonProofMalformed, "header, claims or signature do not decode")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return errorf(ReasonProofAlg, "alg %s is not EdDSA or ES256", algOf(t))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if t == nil || t.Method == nil || (t.Method.Alg() != algEdDSA && t.Method.Alg() != algES256) {
			return errorf(ReasonProofAlg, "alg %s is not EdDSA or ES256", algOf(t))
		}
		return errorf(ReasonProofSignature, "the signature does not verify under the jwk")
	default:
		return errorf(ReasonProofMalformed, "the proof does not parse")
	}
}

// use records a verified proof in the replay cache (RFC 9449 section
// 11.1). The id is SHA-256(jkt || jti): per key, so that one device cannot
// block another's jti, and fixed-length whatever the jti. A proof is
// accepted while its iat is within window plus leeway of now, so it is
// remembered until iat + window + leeway; a replay after that fails the iat
// check instead. ECDSA signatures are malleable, so a replay may differ
// from the original in its signature bytes: keying on the jti, not on the
// proof's bytes, catches it all the same.
func (v *Verifier) use(ctx context.Context, p Proof, now time.Time) error {
	h := sha256.New()
	h.Write([]byte(p.JKT))
	h.Write([]byte(p.ID))
	id := h.Sum(nil)
	expires := p.IssuedAt.Add(v.window() + v.leeway())
	if expires.Before(now) { // cannot happen after the iat check; be safe
		expires = now
	}
	err := v.Replay.Use(ctx, id, expires)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrReplay):
		return errorf(ReasonProofReplayed, "this key already used this jti")
	default:
		return fmt.Errorf("credential: replay cache: %w", err)
	}
}

// hasType reports whether the typ header v names want, compared as RFC 7515
// section 4.1.9 says: case-insensitively, with or without "application/".
func hasType(v any, want string) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	s = strings.ToLower(s)
	return s == want || s == "application/"+want
}

// compactJWS reports whether s has only the characters of a compact JWS:
// base64url and ".". The base64 decoder skips CR and LF, so without this
// check a token with line breaks in its signature would verify while being
// another string than the one signed, and its ath would differ.
func compactJWS(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// algOf quotes a parsed token's alg header for a Detail.
func algOf(t *jwt.Token) string {
	if t == nil {
		return "absent"
	}
	return short(t.Header["alg"])
}

package credential

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// proofClaims is a DPoP proof's claim set (RFC 9449 section 4.2). The
// embedded registered claims carry jti and iat; any others a proof has are
// ignored. The nonce claim (sections 8 and 9) is not used: freshness comes
// from iat and the replay cache.
type proofClaims struct {
	jwt.RegisteredClaims
	HTM string `json:"htm"`
	HTU string `json:"htu"`
	ATH string `json:"ath,omitempty"`
}

// NewProof makes a DPoP proof (RFC 9449 section 4.2) for one request: a JWS
// of typ "dpop+jwt" whose header carries the public JWK of key, with a
// random jti, htm method, htu the request URL without query and fragment
// (normalised as the Verifier does), iat now and, when token is not empty,
// ath the base64url SHA-256 of token (section 4.2: required with an access
// token). Make a new proof for every request: the gateway accepts each jti
// once.
//
// key is an ed25519.PrivateKey (alg EdDSA) or a P-256 ECDSA signer (alg
// ES256): an *ecdsa.PrivateKey or any crypto.Signer whose Public is a P-256
// *ecdsa.PublicKey and that returns ASN.1 signatures, such as a TPM- or
// keystore-backed key.
func NewProof(key crypto.Signer, method, rawURL, token string, now time.Time) (string, error) {
	if key == nil {
		return "", errors.New("credential: no proof key")
	}
	jwk, err := PublicJWK(key.Public())
	if err != nil {
		return "", err
	}
	_, _, _, _, alg, _ := publicParams(key.Public())
	if method == "" {
		return "", errors.New("credential: no method")
	}
	htu, err := normalizeHTU(rawURL)
	if err != nil {
		return "", fmt.Errorf("credential: url: %w", err)
	}
	jti, err := randomID()
	if err != nil {
		return "", err
	}
	claims := proofClaims{
		RegisteredClaims: jwt.RegisteredClaims{ID: jti, IssuedAt: jwt.NewNumericDate(now)},
		HTM:              method,
		HTU:              htu,
	}
	if token != "" {
		claims.ATH = tokenHash(token)
	}
	var m jwt.SigningMethod = jwt.SigningMethodEdDSA
	if alg == algES256 {
		m = jwt.SigningMethodES256
	}
	t := jwt.NewWithClaims(m, claims)
	t.Header["typ"] = typeDPoPProof
	t.Header["jwk"] = jwk
	if alg == algEdDSA {
		// jwt's EdDSA signs with any crypto.Signer holding an Ed25519 key.
		return t.SignedString(key)
	}
	// jwt's ES256 takes only an *ecdsa.PrivateKey; sign through the
	// crypto.Signer so that hardware keys work too, and convert its ASN.1
	// signature to the fixed r || s form JWS uses (RFC 7518 section 3.4).
	input, err := t.SigningString()
	if err != nil {
		return "", fmt.Errorf("credential: proof: %w", err)
	}
	digest := sha256.Sum256([]byte(input))
	der, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("credential: sign proof: %w", err)
	}
	sig, err := rawECDSASignature(der, 32)
	if err != nil {
		return "", err
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// rawECDSASignature converts an ASN.1 ECDSA signature to r || s, each n
// bytes big-endian.
func rawECDSASignature(der []byte, n int) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil || len(rest) != 0 || rs.R == nil || rs.S == nil ||
		rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 8*n || rs.S.BitLen() > 8*n {
		return nil, errors.New("credential: the signer's ECDSA signature is malformed")
	}
	out := make([]byte, 2*n)
	rs.R.FillBytes(out[:n])
	rs.S.FillBytes(out[n:])
	return out, nil
}

// tokenHash is the ath of a proof for token (RFC 9449 section 4.2): the
// base64url SHA-256 of its ASCII encoding.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// normalizeHTU returns the form of an http or https URL that proofs are
// compared in. RFC 9449 section 4.3 compares htu with the request's URI
// ignoring query and fragment, and recommends the syntax- and scheme-based
// normalisations of RFC 3986 sections 6.2.2 and 6.2.3 to avoid false
// refusals. Applied here, to both sides:
//
//   - scheme and host lowercased (6.2.2.1);
//   - the port written as a plain decimal and dropped when it is the
//     scheme's default, 80 or 443, or empty (6.2.3);
//   - percent-encodings of unreserved characters decoded and the others'
//     hex digits uppercased (6.2.2.1, 6.2.2.2);
//   - dot segments removed (6.2.2.3, RFC 3986 section 5.2.4);
//   - an empty path written "/" (6.2.3);
//   - query and fragment dropped.
//
// User info is refused: a request target never has it, and it would make
// two different-looking URLs equal.
func normalizeHTU(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("empty URL")
	}
	if len(raw) > MaxURLBytes {
		return "", fmt.Errorf("URL over %d bytes", MaxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("not an http or https URL")
	}
	if u.Opaque != "" || u.Host == "" {
		return "", errors.New("not an absolute URL with a host")
	}
	if u.User != nil {
		return "", errors.New("URL has user info")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", errors.New("URL has no host")
	}
	if !validHost(host) {
		return "", errors.New("URL host is not a DNS name or IP address")
	}
	if strings.Contains(host, ":") { // an IPv6 literal
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return "", errors.New("URL has an invalid port")
		}
		if !(scheme == "http" && n == 80 || scheme == "https" && n == 443) {
			host += ":" + strconv.FormatUint(n, 10)
		}
	}
	p := removeDotSegments(normalizePercent(u.EscapedPath()))
	if p == "" {
		p = "/"
	}
	out := scheme + "://" + host + p
	if len(out) > MaxURLBytes { // escaping can triple a path's length
		return "", fmt.Errorf("URL over %d bytes once escaped", MaxURLBytes)
	}
	return out, nil
}

// normalizePercent decodes the percent-encodings of unreserved characters
// (RFC 3986 section 2.3) and uppercases the hex digits of the others.
func normalizePercent(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v := unhex(s[i+1])<<4 | unhex(s[i+2])
			if isUnreserved(v) {
				b.WriteByte(v)
			} else {
				b.WriteByte('%')
				b.WriteString(strings.ToUpper(s[i+1 : i+3]))
			}
			i += 2
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// removeDotSegments is RFC 3986 section 5.2.4 for an absolute path: "."
// segments go, and ".." removes the segment before it (never the root).
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return strings.Join(out, "/")
}

// validHost reports whether the lowercased host is a DNS name or IPv4
// address (letters, digits, "-", ".", "_", "~") or an IPv6 literal without
// a zone (hex digits, ":" and "."). RFC 3986 allows more in a reg-name, but
// no request target the gateway serves has it, and refusing it keeps the
// normalisation simple and its output parseable again.
func validHost(h string) bool {
	v6 := strings.Contains(h, ":")
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case v6 && (isHex(c) || c == ':' || c == '.'):
		case !v6 && (isUnreserved(c) && !('A' <= c && c <= 'Z')):
		default:
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// keyAlg returns the JWS algorithm for a proof key, or "".
func keyAlg(pub crypto.PublicKey) string {
	switch pub.(type) {
	case ed25519.PublicKey:
		return algEdDSA
	case *ecdsa.PublicKey:
		return algES256
	}
	return ""
}

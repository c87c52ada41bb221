package client

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/attest"
	"github.com/hegate/hegate/attest/credential"
)

// DeviceCredential is an enrolled device's credential: the access token
// the gateway issued and the device key it is bound to. A client holding
// one signs a DPoP proof (RFC 9449) for every request with Key.
type DeviceCredential struct {
	Token     string
	ExpiresAt time.Time
	Device    string // the device id
	Key       crypto.Signer
	// Now tells the time for proofs; nil means time.Now.
	Now func() time.Time
}

func (d *DeviceCredential) authorize(req *http.Request) error {
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	proof, err := credential.NewProof(d.Key, req.Method, req.URL.String(), d.Token, now())
	if err != nil {
		return fmt.Errorf("client: signing DPoP proof: %w", err)
	}
	req.Header.Set("Authorization", "DPoP "+d.Token)
	req.Header.Set(api.HeaderDPoP, proof)
	return nil
}

// WithDeviceCredential makes the client authenticate as an enrolled
// device instead of with an API key.
func WithDeviceCredential(d *DeviceCredential) Option {
	return func(c *Client) { c.device = d }
}

// sendJSON sends body (nil for none) as JSON and decodes an answer with
// one of the ok statuses into out (nil to discard it).
func (c *Client) sendJSON(ctx context.Context, method, path string, body any, out any, ok ...int) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("client: encoding %s %s: %w", method, path, err)
		}
		r = bytes.NewReader(b)
	}
	req, err := c.request(ctx, method, path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", api.ContentTypeJSON)
	}
	resp, err := c.do(req, ok...)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJSONBytes))
		return nil
	}
	return decodeJSON(resp, out)
}

// Challenge asks the gateway for an enrollment nonce.
func (c *Client) Challenge(ctx context.Context) ([]byte, time.Time, error) {
	var v api.Challenge
	if err := c.sendJSON(ctx, http.MethodPost, "/v1/enroll/challenge", nil, &v, http.StatusCreated); err != nil {
		return nil, time.Time{}, err
	}
	nonce, err := base64.RawURLEncoding.DecodeString(v.Nonce)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("client: challenge nonce is not base64url: %w", err)
	}
	return nonce, v.ExpiresAt, nil
}

// Evidence makes attestation evidence of one format. nonce is the value
// the evidence must carry (attest.ExpectedNonce of the challenge and the
// device key's thumbprint); jkt is that raw RFC 7638 thumbprint, which
// formats that name the credential key in their claims (native) carry.
type Evidence interface {
	Format() attest.Format
	Evidence(ctx context.Context, nonce, jkt []byte) ([]byte, error)
}

// Enroll enrolls a device: it asks for a challenge, has ev answer it for
// deviceKey (Ed25519 or P-256), and returns the device and a credential
// bound to deviceKey.
func (c *Client) Enroll(ctx context.Context, ev Evidence, deviceKey crypto.Signer) (api.Device, *DeviceCredential, error) {
	jwkMap, err := credential.PublicJWK(deviceKey.Public())
	if err != nil {
		return api.Device{}, nil, fmt.Errorf("client: device key: %w", err)
	}
	jwk, err := json.Marshal(jwkMap)
	if err != nil {
		return api.Device{}, nil, fmt.Errorf("client: device key: %w", err)
	}
	jkt, err := credential.ThumbprintBytes(deviceKey.Public())
	if err != nil {
		return api.Device{}, nil, fmt.Errorf("client: device key: %w", err)
	}
	challenge, _, err := c.Challenge(ctx)
	if err != nil {
		return api.Device{}, nil, err
	}
	evidence, err := ev.Evidence(ctx, attest.ExpectedNonce(ev.Format(), challenge, jkt), jkt)
	if err != nil {
		return api.Device{}, nil, fmt.Errorf("client: making %s evidence: %w", ev.Format(), err)
	}
	var out api.EnrollResponse
	if err := c.sendJSON(ctx, http.MethodPost, "/v1/enroll", api.EnrollRequest{
		Format:    string(ev.Format()),
		Nonce:     base64.RawURLEncoding.EncodeToString(challenge),
		Evidence:  base64.RawURLEncoding.EncodeToString(evidence),
		DeviceKey: jwk,
	}, &out, http.StatusCreated); err != nil {
		return api.Device{}, nil, err
	}
	return out.Device, &DeviceCredential{
		Token:     out.Credential.AccessToken,
		ExpiresAt: out.Credential.ExpiresAt,
		Device:    out.Device.ID,
		Key:       deviceKey,
	}, nil
}

// Devices lists the tenant's enrolled devices (admin key).
func (c *Client) Devices(ctx context.Context) ([]api.Device, error) {
	var v api.DeviceList
	return v.Devices, c.getJSON(ctx, "/v1/devices", &v)
}

// EnrolledDevice returns one enrolled device (admin key, or the device
// itself).
func (c *Client) EnrolledDevice(ctx context.Context, id string) (api.Device, error) {
	var v api.Device
	return v, c.getJSON(ctx, "/v1/devices/"+url.PathEscape(id), &v)
}

// RevokeDevice revokes a device (admin key).
func (c *Client) RevokeDevice(ctx context.Context, id string) (api.Device, error) {
	var v api.Device
	return v, c.sendJSON(ctx, http.MethodPost, "/v1/devices/"+url.PathEscape(id)+"/revoke", nil, &v, http.StatusOK)
}

// SetAttestationDoc sets the tenant's endorsements or reference values
// ("endorsements", "reference-values") for a format (admin key).
func (c *Client) SetAttestationDoc(ctx context.Context, format attest.Format, kind string, doc json.RawMessage) (api.AttestationDoc, error) {
	var v api.AttestationDoc
	return v, c.sendJSON(ctx, http.MethodPut, "/v1/attestation/"+url.PathEscape(string(format))+"/"+url.PathEscape(kind), doc, &v, http.StatusOK)
}

// AttestationDoc returns one of the tenant's trust-anchor documents.
func (c *Client) AttestationDoc(ctx context.Context, format attest.Format, kind string) (api.AttestationDoc, error) {
	var v api.AttestationDoc
	return v, c.getJSON(ctx, "/v1/attestation/"+url.PathEscape(string(format))+"/"+url.PathEscape(kind), &v)
}

// policyPath is the route of a model's policy, or the tenant default's.
func policyPath(model string) string {
	if model == "" {
		return "/v1/policy"
	}
	return "/v1/policies/" + url.PathEscape(model)
}

// Policy returns the policy that applies to a model ("" for the tenant's
// default).
func (c *Client) Policy(ctx context.Context, model string) (api.Policy, error) {
	var v api.Policy
	return v, c.getJSON(ctx, policyPath(model), &v)
}

// SetPolicy sets a model's policy ("" for the tenant's default; admin key).
func (c *Client) SetPolicy(ctx context.Context, model string, p api.Policy) (api.Policy, error) {
	doc := struct {
		AllowAPIKey bool     `json:"allow_api_key"`
		Formats     []string `json:"formats"`
		Statuses    []string `json:"statuses"`
	}{p.AllowAPIKey, p.Formats, p.Statuses}
	if doc.Formats == nil {
		doc.Formats = []string{}
	}
	if doc.Statuses == nil {
		doc.Statuses = []string{}
	}
	var v api.Policy
	return v, c.sendJSON(ctx, http.MethodPut, policyPath(model), doc, &v, http.StatusOK)
}

// DeletePolicy removes a model's policy ("" for the tenant's default).
func (c *Client) DeletePolicy(ctx context.Context, model string) error {
	return c.sendJSON(ctx, http.MethodDelete, policyPath(model), nil, nil, http.StatusNoContent)
}

// AttestationDocs lists the tenant's trust-anchor documents (admin key).
func (c *Client) AttestationDocs(ctx context.Context) ([]api.AttestationDoc, error) {
	var v api.AttestationDocList
	return v.Documents, c.getJSON(ctx, "/v1/attestation", &v)
}

// DeleteAttestationDoc removes one of the tenant's trust-anchor documents
// (admin key).
func (c *Client) DeleteAttestationDoc(ctx context.Context, format attest.Format, kind string) error {
	return c.sendJSON(ctx, http.MethodDelete, "/v1/attestation/"+url.PathEscape(string(format))+"/"+url.PathEscape(kind), nil, nil, http.StatusNoContent)
}

package main

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hegate/hegate/client"
)

// An enrolled device's directory ("identity"): the key its credentials
// are bound to, what it attests with, and its current credential. Every
// file is the device's secret and is written 0600.
const (
	identityFile   = "identity.json"
	deviceKeyFile  = "device-key.pem"
	credentialFile = "credential.json"
)

// identity is identity.json: what hegate enroll needs to attest again.
type identity struct {
	Format string `json:"format"` // native, tpm-simulator or psa-test
	// Alg is the native attestation key's algorithm: ed25519 or ml-dsa-65.
	Alg string `json:"alg,omitempty"`
	// InstanceID is the native ueid or the PSA instance id, in hex.
	InstanceID string `json:"instance_id,omitempty"`
	// SimulatorSeed makes the TPM simulator's keys the same every run.
	SimulatorSeed int64     `json:"simulator_seed,omitempty"`
	Created       time.Time `json:"created"`
}

// storedCredential is credential.json.
type storedCredential struct {
	Server      string    `json:"server"`
	Device      string    `json:"device"`
	AccessToken string    `json:"access_token"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileWith(path, 0o600, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}

// loadOrCreateEd25519 reads a PKCS #8 Ed25519 key, making it first if
// the file does not exist.
func loadOrCreateEd25519(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		if err := writePEM(path, "PRIVATE KEY", der); err != nil {
			return nil, err
		}
		return priv, nil
	}
	if err != nil {
		return nil, err
	}
	k, err := parsePKCS8PEM(path, b)
	if err != nil {
		return nil, err
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s is not an Ed25519 key", path)
	}
	return priv, nil
}

func parsePKCS8PEM(path string, b []byte) (crypto.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s is not a PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func writePEM(path, typ string, der []byte) error {
	return writeFileWith(path, 0o600, func(w io.Writer) error {
		return pem.Encode(w, &pem.Block{Type: typ, Bytes: der})
	})
}

// loadCredential reads an enrolled device's credential and key.
func loadCredential(dir string) (*client.DeviceCredential, error) {
	var sc storedCredential
	if err := readJSONFile(filepath.Join(dir, credentialFile), &sc); err != nil {
		return nil, fmt.Errorf("reading the device credential (run hegate enroll first): %w", err)
	}
	if !time.Now().Before(sc.ExpiresAt) {
		return nil, fmt.Errorf("the credential of device %s expired at %s: attest again with hegate enroll --identity %s", sc.Device, sc.ExpiresAt.Format(time.RFC3339), dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, deviceKeyFile))
	if err != nil {
		return nil, err
	}
	k, err := parsePKCS8PEM(deviceKeyFile, b)
	if err != nil {
		return nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s is not a signing key", deviceKeyFile)
	}
	return &client.DeviceCredential{Token: sc.AccessToken, ExpiresAt: sc.ExpiresAt, Device: sc.Device, Key: signer}, nil
}

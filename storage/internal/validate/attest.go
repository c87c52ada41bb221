package validate

import (
	"errors"
	"fmt"
	"time"

	"github.com/hegate/hegate/storage"
)

// MaxDocumentBytes bounds the documents of storage.Attestation: an
// AttestationDoc's and a Policy's Document, 1 MiB, as storage documents.
// The migrations hold the columns to it too.
const MaxDocumentBytes = 1 << 20

// Challenge checks a challenge given to Attestation.CreateChallenge:
// TenantID, a nonce and ExpiresAt are required. CreatedAt is the store's.
func Challenge(c storage.Challenge) error {
	switch {
	case c.TenantID == "":
		return errors.New("TenantID is required")
	case len(c.Nonce) == 0:
		return errors.New("Nonce is required")
	case c.ExpiresAt.IsZero():
		return errors.New("ExpiresAt is required")
	}
	return nil
}

// AttestationDoc checks a document given to Attestation.PutAttestationDoc:
// TenantID and Format are required, Kind is one of the document kinds,
// Document is not empty and at most MaxDocumentBytes (storage.ErrTooLarge
// otherwise), and UpdatedBy names the actor. Storage does not parse the
// document: the caller did (attest.ParseEndorsements and
// attest.ParseReferenceValues), and keeps it exactly as the admin gave it.
func AttestationDoc(d storage.AttestationDoc) error {
	switch {
	case d.TenantID == "" || d.Format == "":
		return errors.New("TenantID and Format are required")
	case d.Kind != storage.DocEndorsements && d.Kind != storage.DocReferenceValues:
		return fmt.Errorf("Kind is %q, want %q or %q", d.Kind, storage.DocEndorsements, storage.DocReferenceValues)
	}
	return errors.Join(document(d.Document), updatedBy(d.UpdatedBy))
}

// Policy checks a policy given to Attestation.PutPolicy: TenantID is
// required (Model "" is the tenant's default), Document is not empty and at
// most MaxDocumentBytes (storage.ErrTooLarge otherwise), and UpdatedBy
// names the actor.
func Policy(p storage.Policy) error {
	if p.TenantID == "" {
		return errors.New("TenantID is required")
	}
	return errors.Join(document(p.Document), updatedBy(p.UpdatedBy))
}

// document checks a stored document's size.
func document(doc []byte) error {
	switch {
	case len(doc) == 0:
		return errors.New("Document is required")
	case len(doc) > MaxDocumentBytes:
		return fmt.Errorf("%w: Document is %d bytes, at most %d", storage.ErrTooLarge, len(doc), MaxDocumentBytes)
	}
	return nil
}

// updatedBy checks the actor of a document change as Actor checks that of
// a budget change: required, at most storage.MaxActorBytes.
func updatedBy(actor string) error {
	switch {
	case actor == "":
		return errors.New("UpdatedBy is required")
	case len(actor) > storage.MaxActorBytes:
		return fmt.Errorf("UpdatedBy is %d bytes, at most %d", len(actor), storage.MaxActorBytes)
	}
	return nil
}

// EnrollDevice checks the params of Attestation.EnrollDevice: every text
// field is required, as a device without a format, an instance, a bound
// key or an appraisal is nothing the gateway could have accepted. Result
// and Clock are stored as given.
func EnrollDevice(p storage.EnrollDeviceParams) error {
	if p.TenantID == "" || p.Format == "" || p.InstanceID == "" || p.KeyThumbprint == "" || p.AttestationStatus == "" {
		return errors.New("TenantID, Format, InstanceID, KeyThumbprint and AttestationStatus are required")
	}
	return nil
}

// SigningKey checks a key given to Attestation.CreateSigningKey: ID,
// Algorithm and both halves of the key are required.
func SigningKey(k storage.SigningKey) error {
	if k.ID == "" || k.Algorithm == "" || len(k.PrivateKey) == 0 || len(k.PublicKey) == 0 {
		return errors.New("ID, Algorithm, PrivateKey and PublicKey are required")
	}
	return nil
}

// RetireSigningKeys checks the times given to
// Attestation.RetireSigningKeys: both are required, and a key cannot stop
// verifying before it is retired.
func RetireSigningKeys(now, verifyUntil time.Time) error {
	switch {
	case now.IsZero() || verifyUntil.IsZero():
		return errors.New("now and verifyUntil are required")
	case verifyUntil.Before(now):
		return fmt.Errorf("verifyUntil %s is before now %s", verifyUntil.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// UseProof checks the inputs of Attestation.UseProof: an id and the time
// it expires are required.
func UseProof(id []byte, expiresAt time.Time) error {
	switch {
	case len(id) == 0:
		return errors.New("proof id is required")
	case expiresAt.IsZero():
		return errors.New("expiresAt is required")
	}
	return nil
}

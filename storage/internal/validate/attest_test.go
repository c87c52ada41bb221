package validate

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hegate/hegate/storage"
)

func TestValidateAttestation(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	doc := storage.AttestationDoc{
		TenantID: "ten_a", Format: "tpm", Kind: storage.DocEndorsements, Document: []byte(`{}`), UpdatedBy: "cli",
	}
	withDoc := func(f func(d *storage.AttestationDoc)) storage.AttestationDoc {
		d := doc
		f(&d)
		return d
	}
	policy := storage.Policy{TenantID: "ten_a", Document: []byte(`{}`), UpdatedBy: "key:key_a"}
	withPolicy := func(f func(p *storage.Policy)) storage.Policy {
		p := policy
		f(&p)
		return p
	}
	enroll := storage.EnrollDeviceParams{
		TenantID: "ten_a", Format: "native", InstanceID: "i", KeyThumbprint: "ab", AttestationStatus: "affirming",
	}
	withEnroll := func(f func(p *storage.EnrollDeviceParams)) storage.EnrollDeviceParams {
		p := enroll
		f(&p)
		return p
	}
	key := storage.SigningKey{ID: "k1", Algorithm: "EdDSA", PrivateKey: []byte{1}, PublicKey: []byte{2}}
	withKey := func(f func(k *storage.SigningKey)) storage.SigningKey {
		k := key
		f(&k)
		return k
	}
	challenge := storage.Challenge{TenantID: "ten_a", Nonce: []byte{1}, ExpiresAt: now}
	for name, tc := range map[string]struct {
		err     error
		wantErr bool
	}{
		"ok/challenge":              {err: Challenge(challenge)},
		"fail/challenge-no-tenant":  {err: Challenge(storage.Challenge{Nonce: []byte{1}, ExpiresAt: now}), wantErr: true},
		"fail/challenge-no-nonce":   {err: Challenge(storage.Challenge{TenantID: "ten_a", ExpiresAt: now}), wantErr: true},
		"fail/challenge-no-expiry":  {err: Challenge(storage.Challenge{TenantID: "ten_a", Nonce: []byte{1}}), wantErr: true},
		"ok/doc":                    {err: AttestationDoc(doc)},
		"ok/doc-reference-values":   {err: AttestationDoc(withDoc(func(d *storage.AttestationDoc) { d.Kind = storage.DocReferenceValues }))},
		"ok/doc-max":                {err: AttestationDoc(withDoc(func(d *storage.AttestationDoc) { d.Document = make([]byte, MaxDocumentBytes) }))},
		"fail/doc-no-tenant":        {err: AttestationDoc(withDoc(func(d *storage.AttestationDoc) { d.TenantID = "" })), wantErr: true},
		"fail/doc-no-format":        {err: AttestationDoc(withDoc(func(d *storage.AttestationDoc) { d.Format = "" })), wantErr: true},
		"fail/doc-no-kind":          {err: AttestationDoc(withDoc(func(d *storage.AttestationDoc) { d.Kind = "" })), wantErr: true},
		"fail/doc-kind":             {err: AttestationDoc(withDoc(func(d *storage.AttestationDoc) { d.Kind = "policy" })), wantErr: true},
		"fail/doc-empty":            {err: AttestationDoc(withDoc(func(d *storage.AttestationDoc) { d.Document = nil })), wantErr: true},
		"fail/doc-no-actor":         {err: AttestationDoc(withDoc(func(d *storage.AttestationDoc) { d.UpdatedBy = "" })), wantErr: true},
		"fail/doc-long-actor":       {err: AttestationDoc(withDoc(func(d *storage.AttestationDoc) { d.UpdatedBy = strings.Repeat("a", storage.MaxActorBytes+1) })), wantErr: true},
		"ok/policy":                 {err: Policy(policy)},
		"ok/policy-model":           {err: Policy(withPolicy(func(p *storage.Policy) { p.Model = "m" }))},
		"fail/policy-no-tenant":     {err: Policy(withPolicy(func(p *storage.Policy) { p.TenantID = "" })), wantErr: true},
		"fail/policy-empty":         {err: Policy(withPolicy(func(p *storage.Policy) { p.Document = []byte{} })), wantErr: true},
		"fail/policy-no-actor":      {err: Policy(withPolicy(func(p *storage.Policy) { p.UpdatedBy = "" })), wantErr: true},
		"ok/enroll":                 {err: EnrollDevice(enroll)},
		"fail/enroll-no-tenant":     {err: EnrollDevice(withEnroll(func(p *storage.EnrollDeviceParams) { p.TenantID = "" })), wantErr: true},
		"fail/enroll-no-format":     {err: EnrollDevice(withEnroll(func(p *storage.EnrollDeviceParams) { p.Format = "" })), wantErr: true},
		"fail/enroll-no-instance":   {err: EnrollDevice(withEnroll(func(p *storage.EnrollDeviceParams) { p.InstanceID = "" })), wantErr: true},
		"fail/enroll-no-thumbprint": {err: EnrollDevice(withEnroll(func(p *storage.EnrollDeviceParams) { p.KeyThumbprint = "" })), wantErr: true},
		"fail/enroll-no-status":     {err: EnrollDevice(withEnroll(func(p *storage.EnrollDeviceParams) { p.AttestationStatus = "" })), wantErr: true},
		"ok/key":                    {err: SigningKey(key)},
		"fail/key-no-id":            {err: SigningKey(withKey(func(k *storage.SigningKey) { k.ID = "" })), wantErr: true},
		"fail/key-no-algorithm":     {err: SigningKey(withKey(func(k *storage.SigningKey) { k.Algorithm = "" })), wantErr: true},
		"fail/key-no-private":       {err: SigningKey(withKey(func(k *storage.SigningKey) { k.PrivateKey = nil })), wantErr: true},
		"fail/key-no-public":        {err: SigningKey(withKey(func(k *storage.SigningKey) { k.PublicKey = nil })), wantErr: true},
		"ok/retire":                 {err: RetireSigningKeys(now, now.Add(time.Hour))},
		"ok/retire-now":             {err: RetireSigningKeys(now, now)},
		"fail/retire-no-now":        {err: RetireSigningKeys(time.Time{}, now), wantErr: true},
		"fail/retire-no-until":      {err: RetireSigningKeys(now, time.Time{}), wantErr: true},
		"fail/retire-backwards":     {err: RetireSigningKeys(now, now.Add(-time.Second)), wantErr: true},
		"ok/proof":                  {err: UseProof([]byte{1}, now)},
		"fail/proof-no-id":          {err: UseProof(nil, now), wantErr: true},
		"fail/proof-no-expiry":      {err: UseProof([]byte{1}, time.Time{}), wantErr: true},
	} {
		if (tc.err != nil) != tc.wantErr {
			t.Errorf("%s: error %v, want error %v", name, tc.err, tc.wantErr)
		}
	}
	big := make([]byte, MaxDocumentBytes+1)
	for what, err := range map[string]error{
		"doc":    AttestationDoc(withDoc(func(d *storage.AttestationDoc) { d.Document = big })),
		"policy": Policy(withPolicy(func(p *storage.Policy) { p.Document = big })),
	} {
		if !errors.Is(err, storage.ErrTooLarge) {
			t.Errorf("too large %s: %v, want ErrTooLarge", what, err)
		}
	}
}

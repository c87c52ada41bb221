package native

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"testing"
)

// TestInstanceIDIsTheEndorsedKey: the ueid is the device's own say, so the
// instance id is the endorsed key's: two keys claiming one ueid are two
// instances, and one key claiming another ueid is still the same one.
func TestInstanceIDIsTheEndorsedKey(t *testing.T) {
	a, b := newDevice(edKey("instance a"), "instance a"), newDevice(edKey("instance b"), "instance b")
	b.claims.UEID = a.claims.UEID
	ra, err := verify(a.input(a.sign(t)))
	if err != nil {
		t.Fatal(err)
	}
	rb, err := verify(b.input(b.sign(t)))
	if err != nil {
		t.Fatal(err)
	}
	if ra.InstanceID == rb.InstanceID {
		t.Fatalf("two endorsed keys claiming ueid %x are one instance %s", a.claims.UEID, ra.InstanceID)
	}
	der, _ := x509.MarshalPKIXPublicKey(a.key.Public())
	sum := sha256.Sum256(der)
	if ra.InstanceID != hex.EncodeToString(sum[:]) {
		t.Errorf("instance id %s; want the SHA-256 of the endorsed key's SubjectPublicKeyInfo %x", ra.InstanceID, sum)
	}
	if ra.UEID != hex.EncodeToString(a.claims.UEID) {
		t.Errorf("ueid %q; want %x", ra.UEID, a.claims.UEID)
	}
	a.claims.UEID = []byte("another ueid")
	ra2, err := verify(a.input(a.sign(t)))
	if err != nil {
		t.Fatal(err)
	}
	if ra2.InstanceID != ra.InstanceID {
		t.Fatalf("one key claiming another ueid is instance %s, not %s", ra2.InstanceID, ra.InstanceID)
	}
}

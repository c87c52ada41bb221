package ids

import (
	"regexp"
	"testing"
)

func TestNew(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^job_[a-z2-7]{26}$`)
	seen := make(map[string]bool)
	for range 1000 {
		id := New(Job)
		if !re.MatchString(id) {
			t.Fatalf("New(%q) = %q, want match %s", Job, id, re)
		}
		if seen[id] {
			t.Fatalf("New(%q) repeated %q", Job, id)
		}
		seen[id] = true
	}
}

func TestDevice(t *testing.T) {
	t.Parallel()
	// storage.DeviceID documents this shape.
	re := regexp.MustCompile(`^dev_[a-z2-7]{26}$`)
	if id := New(Device); !re.MatchString(id) {
		t.Fatalf("New(%q) = %q, want match %s", Device, id, re)
	}
}

func TestUser(t *testing.T) {
	t.Parallel()
	// hegate.UserID documents this shape.
	re := regexp.MustCompile(`^usr_[a-z2-7]{26}$`)
	if id := New(User); !re.MatchString(id) {
		t.Fatalf("New(%q) = %q, want match %s", User, id, re)
	}
}

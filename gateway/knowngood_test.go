package gateway

import (
	"strconv"
	"testing"
	"time"
)

// TestKnownGood: one key spelled many ways is one entry; one address
// cannot evict another's entries; the table stays bounded.
func TestKnownGood(t *testing.T) {
	now := time.Unix(1e9, 0)
	if goodKey("a", "Bearer hgk_x") != goodKey("a", "bearer \t  hgk_x ") || goodKey("a", "Bearer hgk_x") == goodKey("b", "Bearer hgk_x") {
		t.Fatal("goodKey is not canonical per address")
	}
	var g knownGood
	victim := goodKey("198.51.100.2", "Bearer victim")
	g.add(victim, "198.51.100.2", now)
	for i := range 1000 {
		g.add(goodKey("198.51.100.1", "Bearer key"+strconv.Itoa(i)), "198.51.100.1", now)
	}
	if n := g.byAddr["198.51.100.1"]; n != knownGoodPerAddress {
		t.Errorf("one address holds %d entries, want %d", n, knownGoodPerAddress)
	}
	if !g.seen(victim, now) {
		t.Error("another address's flood evicted the victim")
	}
	if g.seen(victim, now.Add(knownGoodTTL)) {
		t.Error("an entry outlives its TTL")
	}
	for i := range knownGoodMax + 100 {
		addr := "2001:db8::" + strconv.FormatInt(int64(i), 16)
		g.add(goodKey(addr, "Bearer k"), addr, now)
	}
	if g.lru.Len() != knownGoodMax || len(g.byKey) != knownGoodMax {
		t.Errorf("table holds %d/%d, want %d", g.lru.Len(), len(g.byKey), knownGoodMax)
	}
	total := 0
	for _, n := range g.byAddr {
		total += n
	}
	if total != knownGoodMax {
		t.Errorf("per-address counts sum to %d, want %d", total, knownGoodMax)
	}
}

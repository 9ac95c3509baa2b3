package statebackend

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// TestCompactionGate: a backend opened with compactions held runs none,
// however many L0 tables it has, until the gate opens; then Pebble compacts
// as it would by default.
func TestCompactionGate(t *testing.T) {
	b, err := open(t.TempDir(), Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	db := b.DB()
	// Twice the L0 compaction threshold of overlapping tables.
	for i := range 16 {
		for k := range 100 {
			if err := db.Set(fmt.Appendf(nil, "k%04d", k), fmt.Appendf(nil, "v%d", i), pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// Pebble's default scheduler would have started a compaction within
	// 100 ms.
	time.Sleep(500 * time.Millisecond)
	if m := db.Metrics(); m.Compact.Count != 0 || m.Levels[0].TablesCount < 16 {
		t.Fatalf("held: %d compactions ran, %d L0 tables; want 0 and 16", m.Compact.Count, m.Levels[0].TablesCount)
	}
	b.compactions.openGate()
	deadline := time.Now().Add(30 * time.Second)
	for db.Metrics().Compact.Count == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no compaction ran in 30 s after the gate opened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

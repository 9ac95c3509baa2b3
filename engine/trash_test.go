package engine

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestTrash: a discarded directory is gone from its place at once and
// deleted only once the tasks opened; trash left by a dead process is
// deleted by the next run's trash.
func TestTrash(t *testing.T) {
	state := t.TempDir()
	// Left by a process that died.
	left := filepath.Join(state, "trash", "123-1", "x")
	if err := os.MkdirAll(left, 0o755); err != nil {
		t.Fatal(err)
	}
	tr, err := newTrash(state)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(state, "operators", "op", "0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tr.discard(dir); err != nil {
		t.Fatal(err)
	}
	if err := tr.discard(filepath.Join(state, "absent")); err != nil {
		t.Fatalf("discard of a missing directory: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("discarded directory still in place: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := trashEntries(t, state); n != 2 {
		t.Fatalf("%d entries in the trash before the tasks opened, want 2", n)
	}
	tr.opened()
	deadline := time.Now().Add(10 * time.Second)
	for trashEntries(t, state) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("trash not emptied 10 s after the tasks opened")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Discarded later: deleted by close at the latest.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tr.discard(dir); err != nil {
		t.Fatal(err)
	}
	tr.close()
	if n := trashEntries(t, state); n != 0 {
		t.Fatalf("%d entries in the trash after close", n)
	}
}

func trashEntries(t *testing.T, state string) int {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(state, "trash"))
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

package statebackend

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

// TestTimers sets random timers on keys spread over every key group, takes
// a snapshot, fires the due ones a few at a time, and checks that each
// fires once, in time order, and that a backend restored from the snapshot
// fires the same ones again (they were set when it was taken).
func TestTimers(t *testing.T) {
	for _, changelog := range []bool{false, true} {
		t.Run(fmt.Sprint("changelog=", changelog), func(t *testing.T) {
			opts := Options{MaxParallelism: 16, KeyGroups: KeyGroupRange{Start: 0, End: 15}, Changelog: changelog}
			b, err := Open(filepath.Join(t.TempDir(), "db"), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			tm, err := NewTimers(b, "op/timers")
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(3, 4))
			set := map[string]bool{}
			for i := range 2000 {
				key := fmt.Sprint("k", i%300)
				ts := r.Int64N(1000) - 500 // negative times too
				b.SetCurrentKey(KeyGroupOf([]byte(key), 16), []byte(key))
				tm.Register(ts)
				set[fmt.Sprint(ts, "/", key)] = true
			}
			// One deleted.
			b.SetCurrentKey(KeyGroupOf([]byte("k0"), 16), []byte("k0"))
			for ts := int64(-500); ts < 500; ts++ {
				if set[fmt.Sprint(ts, "/k0")] {
					tm.Delete(ts)
					delete(set, fmt.Sprint(ts, "/k0"))
					break
				}
			}
			files, _ := snapshotNow(t, b, t.TempDir(), 1)

			fire := func(tm *Timers, upTo int64) []string {
				var fired []string
				last := int64(-1 << 62)
				for {
					due := tm.Due(upTo, 7)
					if len(due) == 0 {
						break
					}
					for _, d := range due {
						if d.Time < last || d.Time > upTo {
							t.Fatalf("timer at %d after one at %d, or after %d", d.Time, last, upTo)
						}
						if int(d.KeyGroup) != int(KeyGroupOf(d.Key, 16)) {
							t.Fatalf("timer of key %q in key group %d", d.Key, d.KeyGroup)
						}
						last = d.Time
						fired = append(fired, fmt.Sprint(d.Time, "/", string(d.Key)))
					}
				}
				if err := tm.b.Err(); err != nil {
					t.Fatal(err)
				}
				return fired
			}
			var want []string
			for k := range set {
				var ts int64
				fmt.Sscanf(k, "%d/", &ts)
				if ts <= 100 {
					want = append(want, k)
				}
			}
			slices.Sort(want)
			got := fire(tm, 100)
			if sorted := slices.Sorted(slices.Values(got)); !slices.Equal(sorted, want) {
				t.Fatalf("fired %d timers, want %d", len(got), len(want))
			}
			if again := fire(tm, 100); len(again) != 0 {
				t.Fatalf("%d timers fired twice", len(again))
			}
			rest := fire(tm, 1000)
			if len(rest) != len(set)-len(want) {
				t.Fatalf("%d timers after 100, want %d", len(rest), len(set)-len(want))
			}

			// Restored from the snapshot: every timer is set again.
			b2, err := OpenFromCheckpoint(filepath.Join(t.TempDir(), "db2"), files.Dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer b2.Close()
			tm2, err := NewTimers(b2, "op/timers")
			if err != nil {
				t.Fatal(err)
			}
			if got := fire(tm2, 1000); len(got) != len(set) {
				t.Fatalf("restored: %d timers fired, want %d", len(got), len(set))
			}
		})
	}
}

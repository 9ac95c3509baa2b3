package statebackend

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestOpenRescaled writes random state into p subtasks with checkpoints
// (a base and logs, so restored state comes from both), restores the last
// checkpoint at parallelism q, and compares every key of every state with a
// model: each new subtask holds exactly the keys of its key groups. Then the
// rescaled subtasks take a checkpoint of their own, which restores too.
func TestOpenRescaled(t *testing.T) {
	const maxPar = 16
	for _, tc := range []struct {
		p, q   int
		maxLog int64
		cache  int64
	}{
		{2, 4, 0, 0}, {4, 1, 0, 0}, {1, 3, 0, 0}, {3, 2, 0, 0}, {2, 3, 2 << 10, 0}, {4, 4, 0, 0}, {3, 16, 2 << 10, 0},
		{2, 4, 0, -1}, {4, 1, 0, -1}, {3, 2, 2 << 10, -1},
	} {
		t.Run(fmt.Sprintf("%d-to-%d/maxlog=%d/cache=%d", tc.p, tc.q, tc.maxLog, tc.cache), func(t *testing.T) {
			root := t.TempDir()
			r := rand.New(rand.NewPCG(uint64(tc.p), uint64(tc.q)))
			m := newModel()
			keys := make([]string, 300)
			for i := range keys {
				keys[i] = fmt.Sprintf("k%d", i)
			}
			opts := func(par, i int) Options {
				return Options{MaxParallelism: maxPar, KeyGroups: RangeForSubtask(maxPar, par, i), Changelog: true,
					MaxChangelogBytes: tc.maxLog, MemTableSize: 64 << 10, ValueCacheSize: tc.cache}
			}
			var last []string
			for i := range tc.p {
				b, err := Open(filepath.Join(root, fmt.Sprint("old", i)), opts(tc.p, i))
				if err != nil {
					t.Fatal(err)
				}
				s := register(t, b)
				var mine []string
				for _, k := range keys {
					if b.KeyGroups().Contains(int(KeyGroupOf([]byte(k), maxPar))) {
						mine = append(mine, k)
					}
				}
				var files *SnapshotFiles
				for cp := uint64(1); cp <= 4; cp++ {
					for range 200 {
						k := mine[r.IntN(len(mine))]
						setKey(b, k)
						switch r.IntN(5) {
						case 0:
							v := r.Int64N(1000)
							s.value.Set(v)
							m.values[k] = v
						case 1:
							s.value.Clear()
							delete(m.values, k)
						case 2:
							mk, rec := fmt.Sprint("m", r.IntN(4)), modelRec{N: r.Int64N(9), S: k}
							s.m.Put(mk, rec)
							if m.maps[k] == nil {
								m.maps[k] = map[string]modelRec{}
							}
							m.maps[k][mk] = rec
						case 3:
							v := fmt.Sprint(cp)
							s.list.Add(v)
							m.lists[k] = append(m.lists[k], v)
						case 4:
							s.sum.Add(2)
							m.sums[k] += 2
						}
					}
					files, _ = snapshotNow(t, b, filepath.Join(root, fmt.Sprint("old", i, "-ckpt")), cp)
				}
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
				last = append(last, files.Dir)
			}
			check := func(b *Backend, what string) {
				t.Helper()
				s := register(t, b)
				for _, k := range keys {
					if !b.KeyGroups().Contains(int(KeyGroupOf([]byte(k), maxPar))) {
						continue
					}
					if d := diffKey(b, s, m, k); d != "" {
						t.Fatalf("%s: %s", what, d)
					}
				}
				if err := b.Flush(); err != nil {
					t.Fatal(err)
				}
				it, err := b.DB().NewIter(&pebble.IterOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer it.Close()
				n := 0
				for it.First(); it.Valid(); it.Next() {
					n++
					if kg := int(binary.BigEndian.Uint16(it.Key())); !b.KeyGroups().Contains(kg) {
						t.Fatalf("%s: holds a key of key group %d, outside %v", what, kg, b.KeyGroups())
					}
				}
				if n == 0 {
					t.Fatalf("%s: no keys", what)
				}
			}
			var copied int64
			for j := range tc.q {
				b, st, err := OpenRescaled(filepath.Join(root, fmt.Sprint("new", j)), last, opts(tc.q, j))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = b.Close() })
				copied += st.Copied
				check(b, fmt.Sprintf("subtask %d of %d", j, tc.q))
				files, materialized := snapshotNow(t, b, filepath.Join(root, fmt.Sprint("new", j, "-ckpt")), 5)
				if !materialized {
					t.Errorf("the first checkpoint after a rescaled restore logged; want a new base")
				}
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
				rb, err := OpenFromCheckpoint(filepath.Join(root, fmt.Sprint("again", j)), files.Dir, opts(tc.q, j))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = rb.Close() })
				check(rb, fmt.Sprintf("subtask %d of %d after its own checkpoint", j, tc.q))
				if err := rb.Close(); err != nil {
					t.Fatal(err)
				}
			}
			// Scaling out from ranges that each hold the new one reads
			// no keys; merging ranges does.
			scaleOut := maxPar%tc.p == 0 && maxPar%tc.q == 0 && tc.q%tc.p == 0
			if scaleOut && copied != 0 {
				t.Errorf("scaling %d to %d copied %d keys, want 0", tc.p, tc.q, copied)
			}
			if tc.q < tc.p && copied == 0 {
				t.Errorf("scaling %d to %d copied no keys", tc.p, tc.q)
			}
		})
	}
}

func TestOpenRescaledErrors(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, o Options) string {
		b, err := Open(filepath.Join(root, name), o)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		files, _ := snapshotNow(t, b, filepath.Join(root, name+"-ckpt"), 1)
		return files.Dir
	}
	a := mk("a", Options{MaxParallelism: 8, KeyGroups: KeyGroupRange{Start: 0, End: 3}})
	b := mk("b", Options{MaxParallelism: 8, KeyGroups: KeyGroupRange{Start: 4, End: 7}})
	other := mk("c", Options{MaxParallelism: 16, KeyGroups: KeyGroupRange{Start: 0, End: 15}})
	all := Options{MaxParallelism: 8, KeyGroups: KeyGroupRange{Start: 0, End: 7}}
	for _, tc := range []struct {
		name string
		dirs []string
		want string
	}{
		{"gap", []string{a}, "cover 4 of the 8 key groups"},
		{"overlap", []string{a, a, b}, "overlap"},
		{"max parallelism", []string{other}, "max parallelism 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := OpenRescaled(filepath.Join(root, "x-"+tc.name), tc.dirs, all)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestOpenRescaledStates: old subtasks' snapshots that list a state with
// the same kind and codecs restore together even when one of them was
// written without codec schemas (an older version); other codecs are
// refused, naming both checkpoints.
func TestOpenRescaledStates(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, kgs KeyGroupRange, strip bool, register func(b *Backend) error) string {
		b, err := Open(filepath.Join(root, name), Options{MaxParallelism: 8, KeyGroups: kgs})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := register(b); err != nil {
			t.Fatal(err)
		}
		files, _ := snapshotNow(t, b, filepath.Join(root, name+"-ckpt"), 1)
		if strip {
			path := filepath.Join(files.Dir, SnapshotMetaFile)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var meta map[string]any
			if err := json.Unmarshal(data, &meta); err != nil {
				t.Fatal(err)
			}
			for _, st := range meta["states"].([]any) {
				delete(st.(map[string]any), "ValueSchema")
				delete(st.(map[string]any), "KeySchema")
			}
			if data, err = json.Marshal(meta); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return files.Dir
	}
	int64State := func(b *Backend) error { _, err := NewValue(b, "op/n", MustCodecFor[int64]()); return err }
	stringState := func(b *Backend) error { _, err := NewValue(b, "op/n", MustCodecFor[string]()); return err }
	lo := mk("lo", KeyGroupRange{Start: 0, End: 3}, false, int64State)
	hiOld := mk("hi-old", KeyGroupRange{Start: 4, End: 7}, true, int64State)
	hiString := mk("hi-string", KeyGroupRange{Start: 4, End: 7}, false, stringState)
	all := Options{MaxParallelism: 8, KeyGroups: KeyGroupRange{Start: 0, End: 7}}

	b, _, err := OpenRescaled(filepath.Join(root, "ok"), []string{hiOld, lo}, all)
	if err != nil {
		t.Fatalf("snapshots with and without schemas: %v", err)
	}
	defer b.Close()
	if rs := b.RestoredStates(); len(rs) != 1 || rs[0].ValueSchema == "" {
		t.Fatalf("restored states %+v, want op/n with its value schema", rs)
	}
	_, _, err = OpenRescaled(filepath.Join(root, "bad"), []string{lo, hiString}, all)
	if !errors.Is(err, ErrIncompatibleState) || !strings.Contains(err.Error(), lo) || !strings.Contains(err.Error(), hiString) {
		t.Fatalf("another codec: err = %v, want ErrIncompatibleState naming both checkpoints", err)
	}
}

package statebackend

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func (m *model) clone() *model {
	c := &model{
		values: maps.Clone(m.values), recs: maps.Clone(m.recs), sums: maps.Clone(m.sums),
		maps: map[string]map[string]modelRec{}, imaps: map[string]map[int64]int64{},
		lists: map[string][]string{},
	}
	for k, v := range m.maps {
		c.maps[k] = maps.Clone(v)
	}
	for k, v := range m.imaps {
		c.imaps[k] = maps.Clone(v)
	}
	for k, v := range m.lists {
		c.lists[k] = slices.Clone(v)
	}
	return c
}

// diffKey compares every state of key in b with m ("" if equal).
func diffKey(b *Backend, s *states, m *model, key string) string {
	setKey(b, key)
	var d []string
	if got, ok := s.value.Lookup(); got != m.values[key] || ok != hasKey(m.values, key) {
		d = append(d, fmt.Sprintf("value = %d, %v; want %d", got, ok, m.values[key]))
	}
	if got, ok := s.rec.Lookup(); !reflect.DeepEqual(got, m.recs[key]) || ok != hasKey(m.recs, key) {
		d = append(d, fmt.Sprintf("rec = %+v, %v; want %+v", got, ok, m.recs[key]))
	}
	var got, want []string
	for k, v := range s.m.All() {
		got = append(got, fmt.Sprintf("%q=%+v", k, v))
	}
	for _, k := range slices.Sorted(maps.Keys(m.maps[key])) {
		want = append(want, fmt.Sprintf("%q=%+v", k, m.maps[key][k]))
	}
	if !slices.Equal(got, want) {
		d = append(d, fmt.Sprintf("map = %v; want %v", got, want))
	}
	got, want = nil, nil
	for k, v := range s.im.All() {
		got = append(got, fmt.Sprint(k, v))
	}
	for _, k := range slices.Sorted(maps.Keys(m.imaps[key])) {
		want = append(want, fmt.Sprint(k, m.imaps[key][k]))
	}
	if !slices.Equal(got, want) {
		d = append(d, fmt.Sprintf("imap = %v; want %v", got, want))
	}
	if got := s.list.Get(); !slices.Equal(got, m.lists[key]) {
		d = append(d, fmt.Sprintf("list = %q; want %q", got, m.lists[key]))
	}
	if got, ok := s.sum.Get(); got != m.sums[key] || ok != hasKey(m.sums, key) {
		d = append(d, fmt.Sprintf("sum = %d, %v; want %d", got, ok, m.sums[key]))
	}
	if err := b.Err(); err != nil {
		d = append(d, fmt.Sprintf("Err = %v", err))
	}
	if d == nil {
		return ""
	}
	return fmt.Sprintf("key %q: %s", key, strings.Join(d, "; "))
}

// TestSnapshotModel extends TestModel with snapshots: seeded random writes
// interleaved with Snapshot at random points, Persist run at once, on another
// goroutine concurrently with later writes, or only after further writes, and
// sometimes Abort. The live backend must match the model after every
// operation, and restoring each persisted snapshot must equal the model's
// copy taken at its barrier. Reproduce a failure with -seed.
func TestSnapshotModel(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	for _, cfg := range []struct {
		name string
		opts Options
	}{
		{"default/memtable=64KB", Options{MemTableSize: 64 << 10}},
		{"no-cache/commit=1", Options{ValueCacheSize: -1, CommitEvery: 1, MemTableSize: 64 << 10}},
		{"tiny-cache/commit=7", Options{ValueCacheSize: 2 << 10, CommitEvery: 7, MaxParallelism: 1}},
		// With a changelog: logs only after the first snapshot, or a
		// materialization every few snapshots.
		{"changelog", Options{Changelog: true, MemTableSize: 64 << 10}},
		{"changelog/max=4KB", Options{Changelog: true, MaxChangelogBytes: 4 << 10, MemTableSize: 64 << 10}},
		{"changelog/no-cache/commit=1", Options{Changelog: true, MaxChangelogBytes: 16 << 10, ValueCacheSize: -1, CommitEvery: 1}},
		{"changelog/tiny-cache/commit=7", Options{Changelog: true, MaxChangelogBytes: 8 << 10, ValueCacheSize: 2 << 10, CommitEvery: 7, MaxParallelism: 1}},
	} {
		t.Run(cfg.name, func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("reproduce with: go test ./statebackend/ -run 'TestSnapshotModel/%s' -seed=%d", cfg.name, seed)
				}
			})
			ops := *modelOps
			if ops == 0 {
				ops = 3000
				if raceEnabled {
					ops = 1500
				}
			}
			runSnapshotModel(t, seed, ops, cfg.opts)
		})
	}
}

func runSnapshotModel(t *testing.T, seed uint64, ops int, opts Options) {
	r := rand.New(rand.NewPCG(seed, 0x5ab))
	root := t.TempDir()
	b, err := Open(filepath.Join(root, "state"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { b.Close() }()
	s := register(t, b)
	m := newModel()
	keys := []string{"", "k1\x00"}
	for i := range 60 {
		keys = append(keys, fmt.Sprintf("k%d", i))
	}
	randString := func() string { return strings.Repeat(string(rune('a'+r.IntN(3))), r.IntN(4)) }

	type persisted struct {
		cp    uint64
		dir   string
		model *model
	}
	var done []persisted
	var (
		snap      *Snapshot
		snapModel *model
		snapDir   string
		endAt     int  // op at which the snapshot ends
		started   bool // Persist started on another goroutine
		abort     bool
		cp        uint64
	)
	var trace []string
	kinds := map[bool]int{} // snapshots by materialize
	fail := func(format string, args ...any) {
		t.Helper()
		start := max(0, len(trace)-15)
		t.Fatalf("seed %d, op %d: %s\nlast operations:\n  %s", seed, len(trace), fmt.Sprintf(format, args...), strings.Join(trace[start:], "\n  "))
	}
	endSnapshot := func() {
		if abort {
			if err := b.Abort(snap); err != nil {
				fail("Abort: %v", err)
			}
			trace = append(trace, fmt.Sprintf("abort %d", cp))
		} else {
			if !started {
				if _, err := snap.Persist(context.Background(), snapDir); err != nil {
					fail("Persist: %v", err)
				}
			}
			<-snap.Done()
			if _, err := snap.Result(); err != nil {
				fail("Persist: %v", err)
			}
			if err := b.Release(snap); err != nil {
				fail("Release: %v", err)
			}
			done = append(done, persisted{cp, snapDir, snapModel})
			trace = append(trace, fmt.Sprintf("release %d", cp))
		}
		snap = nil
	}

	restores := 0
	for op := range ops {
		if snap != nil && op >= endAt {
			endSnapshot()
		}
		if snap == nil && len(done) > 0 && r.IntN(300) == 0 {
			// Crash: continue from the last persisted snapshot.
			p := done[len(done)-1]
			if err := b.Close(); err != nil {
				fail("close before restore: %v", err)
			}
			restores++
			if b, err = OpenFromCheckpoint(filepath.Join(root, fmt.Sprint("continue", restores)), p.dir, opts); err != nil {
				fail("restore %d to continue: %v", p.cp, err)
			}
			s, m = register(t, b), p.model.clone()
			trace = append(trace, fmt.Sprintf("restore %d and continue", p.cp))
		}
		if snap == nil && r.IntN(100) == 0 {
			cp++
			if snap, err = b.Snapshot(cp); err != nil {
				fail("Snapshot: %v", err)
			}
			snapModel, snapDir = m.clone(), filepath.Join(root, fmt.Sprint("cp", cp))
			endAt, started, abort = op+r.IntN(150), false, r.IntN(8) == 0
			kinds[snap.materialize]++
			mode := "persist later"
			if !abort && r.IntN(2) == 0 {
				started, mode = true, "persist concurrently"
				go func(s *Snapshot, dir string) { _, _ = s.Persist(context.Background(), dir) }(snap, snapDir)
			}
			if abort {
				mode = "abort later"
			}
			trace = append(trace, fmt.Sprintf("snapshot %d (%s at op %d)", cp, mode, endAt))
		}
		key := keys[r.IntN(len(keys))]
		setKey(b, key)
		var desc string
		switch n := r.IntN(100); {
		case n < 15:
			v := r.Int64N(100)
			desc = fmt.Sprintf("value.Set(%d)", v)
			s.value.Set(v)
			m.values[key] = v
		case n < 25:
			desc = "value.Set(Get()+1)"
			s.value.Set(s.value.Get() + 1)
			m.values[key]++
		case n < 30:
			desc = "value.Clear()"
			s.value.Clear()
			delete(m.values, key)
		case n < 38:
			rec := modelRec{N: r.Int64N(100), S: randString()}
			desc = fmt.Sprintf("rec.Set(%+v)", rec)
			s.rec.Set(rec)
			m.recs[key] = rec
		case n < 50:
			mk, rec := randString(), modelRec{N: r.Int64N(100)}
			desc = fmt.Sprintf("map.Put(%q, %+v)", mk, rec)
			s.m.Put(mk, rec)
			if m.maps[key] == nil {
				m.maps[key] = map[string]modelRec{}
			}
			m.maps[key][mk] = rec
		case n < 55:
			mk := randString()
			desc = fmt.Sprintf("map.Delete(%q)", mk)
			s.m.Delete(mk)
			delete(m.maps[key], mk)
		case n < 57:
			desc = "map.Clear()"
			s.m.Clear()
			delete(m.maps, key)
		case n < 65:
			k, v := r.Int64N(20), r.Int64()
			desc = fmt.Sprintf("imap.Put(%d, %d)", k, v)
			s.im.Put(k, v)
			if m.imaps[key] == nil {
				m.imaps[key] = map[int64]int64{}
			}
			m.imaps[key][k] = v
		case n < 75:
			v := randString()
			desc = fmt.Sprintf("list.Add(%q)", v)
			s.list.Add(v)
			m.lists[key] = append(m.lists[key], v)
		case n < 78:
			vs := []string{randString()}
			desc = fmt.Sprintf("list.Update(%q)", vs)
			s.list.Update(vs)
			m.lists[key] = vs
		case n < 80:
			desc = "list.Clear()"
			s.list.Clear()
			delete(m.lists, key)
		case n < 92:
			v := r.Int64N(10)
			desc = fmt.Sprintf("sum.Add(%d)", v)
			s.sum.Add(v)
			m.sums[key] += v
		case n < 94:
			desc = "sum.Clear()"
			s.sum.Clear()
			delete(m.sums, key)
		default:
			desc = "Flush()"
			if err := b.Flush(); err != nil {
				fail("Flush: %v", err)
			}
		}
		trace = append(trace, fmt.Sprintf("%d: key %q: %s", op, key, desc))
		if d := diffKey(b, s, m, key); d != "" {
			fail("live backend: %s", d)
		}
	}
	if snap != nil {
		endSnapshot()
	}
	for _, k := range keys {
		if d := diffKey(b, s, m, k); d != "" {
			fail("live backend at the end: %s", d)
		}
	}
	if len(done) == 0 {
		t.Logf("seed %d: no snapshot persisted", seed)
	}
	t.Logf("%d snapshots materialized, %d logged, %d restores to continue", kinds[true], kinds[false], restores)
	// A seed with few snapshots may log less than MaxChangelogBytes in all
	// of them (seen under -race, which halves the operations: 1 of 9
	// snapshots materialized); with 12 or more, a second materialization
	// is due.
	if opts.Changelog && (kinds[true]+kinds[false] >= 8 && kinds[false] == 0 ||
		kinds[true]+kinds[false] >= 12 && opts.MaxChangelogBytes > 0 && kinds[true] < 2) {
		fail("changelog: %d snapshots materialized, %d logged: both paths should run", kinds[true], kinds[false])
	}
	for _, p := range done {
		rb, err := OpenFromCheckpoint(filepath.Join(root, fmt.Sprint("restored", p.cp)), p.dir, opts)
		if err != nil {
			fail("restore %d: %v", p.cp, err)
		}
		rs := register(t, rb)
		for _, k := range keys {
			if d := diffKey(rb, rs, p.model, k); d != "" {
				fail("checkpoint %d restored: %s", p.cp, d)
			}
		}
		if err := rb.Close(); err != nil {
			fail("close restored %d: %v", p.cp, err)
		}
	}
}

package statebackend

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// snapshotNow takes and persists a snapshot into root/cp<id>.
func snapshotNow(t *testing.T, b *Backend, root string, id uint64) (*SnapshotFiles, bool) {
	t.Helper()
	s, err := b.Snapshot(id)
	if err != nil {
		t.Fatal(err)
	}
	files, err := s.Persist(context.Background(), filepath.Join(root, fmt.Sprint("cp", id)))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Release(s); err != nil {
		t.Fatal(err)
	}
	return files, s.materialize
}

// counter opens (open) or restores (restore from checkpointDir) a backend
// and registers the value state "n"; the backend is closed with the test.
func counter(t *testing.T, dir, checkpointDir string, opts Options) (*Backend, *Value[int64]) {
	t.Helper()
	var (
		b   *Backend
		err error
	)
	if checkpointDir == "" {
		b, err = Open(dir, opts)
	} else {
		b, err = OpenFromCheckpoint(dir, checkpointDir, opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	v, err := NewValue(b, "n", MustCodecFor[int64]())
	if err != nil {
		t.Fatal(err)
	}
	return b, v
}

func countTo(t *testing.T, b *Backend, v *Value[int64], keys, from int) {
	t.Helper()
	for i := range keys {
		setKey(b, fmt.Sprint("k", i))
		v.Set(int64(from + i))
	}
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
}

func checkCounts(t *testing.T, b *Backend, v *Value[int64], keys, from int) {
	t.Helper()
	for i := range keys {
		setKey(b, fmt.Sprint("k", i))
		if got, want := v.Get(), int64(from+i); got != want {
			t.Fatalf("key k%d = %d, want %d", i, got, want)
		}
	}
}

// TestChangelogRestoreAndContinue: logging snapshots hold the base and every
// log since; a restored backend goes on logging on the restored chain, and
// its checkpoints restore too.
func TestChangelogRestoreAndContinue(t *testing.T) {
	root := t.TempDir()
	opts := Options{Changelog: true, MemTableSize: 256 << 10}
	b, v := counter(t, filepath.Join(root, "state"), "", opts)
	var logs []string
	for id := uint64(1); id <= 4; id++ {
		countTo(t, b, v, 1000, int(id)*1000)
		files, mat := snapshotNow(t, b, root, id)
		if mat != (id == 1) {
			t.Fatalf("checkpoint %d: materialized = %v", id, mat)
		}
		var got []string
		for _, f := range files.Files {
			if isLog(f.Name) {
				got = append(got, f.Name)
				if f.Kind != FileShared {
					t.Errorf("%s: kind %v, want shared", f.Name, f.Kind)
				}
			}
		}
		logs = append(logs, logName(id)) // the base's own log, then one per checkpoint
		if !slices.Equal(got, logs) {
			t.Fatalf("checkpoint %d holds logs %v, want %v", id, got, logs)
		}
	}
	r, rv := counter(t, filepath.Join(root, "restored"), filepath.Join(root, "cp4"), opts)
	checkCounts(t, r, rv, 1000, 4000)
	countTo(t, r, rv, 500, 5000)
	// The restored backend logs on top of the restored base and logs.
	files, mat := snapshotNow(t, r, root, 5)
	if mat {
		t.Fatal("first snapshot after a restore materialized; want it to log on the restored chain")
	}
	var got []string
	for _, f := range files.Files {
		if isLog(f.Name) {
			got = append(got, f.Name)
		}
	}
	if want := append(logs, logName(5)); !slices.Equal(got, want) {
		t.Fatalf("checkpoint 5 holds logs %v, want %v", got, want)
	}
	countTo(t, r, rv, 10, 6000)
	if _, mat := snapshotNow(t, r, root, 6); mat {
		t.Fatal("second snapshot after a restore materialized")
	}
	r2, rv2 := counter(t, filepath.Join(root, "restored2"), filepath.Join(root, "cp6"), opts)
	checkCounts(t, r2, rv2, 10, 6000)
	for i := 10; i < 500; i++ {
		setKey(r2, fmt.Sprint("k", i))
		if got := rv2.Get(); got != int64(5000+i) {
			t.Fatalf("k%d = %d, want %d", i, got, 5000+i)
		}
	}
	// The earlier checkpoints still restore: their directories hold links,
	// not the backend's base and logs, which materialization removed.
	r3, rv3 := counter(t, filepath.Join(root, "restored3"), filepath.Join(root, "cp3"), Options{})
	checkCounts(t, r3, rv3, 1000, 3000)
}

// TestChangelogMaterializesAtBound: once the logs since the base (but its own)
// reach MaxChangelogBytes the next snapshot materializes, and the backend
// drops the logs and the old base.
func TestChangelogMaterializesAtBound(t *testing.T) {
	root := t.TempDir()
	state := filepath.Join(root, "state")
	b, v := counter(t, state, "", Options{Changelog: true, MaxChangelogBytes: 60 << 10})
	var kinds []string
	for id := uint64(1); id <= 8; id++ {
		countTo(t, b, v, 1000, int(id)) // ~22 KB of log each
		if _, mat := snapshotNow(t, b, root, id); mat {
			kinds = append(kinds, "M")
		} else {
			kinds = append(kinds, "L")
		}
	}
	if got, want := strings.Join(kinds, ""), "MLLLMLLL"; got != want {
		t.Fatalf("snapshots %s, want %s (M materialized, L logged)", got, want)
	}
	logs, _ := filepath.Glob(filepath.Join(state, changelogDir, "*"))
	bases, _ := filepath.Glob(filepath.Join(state, basePrefix+"*"))
	wantLogs := []string{logName(5), logName(6), logName(7), logName(8)}
	var got []string
	for _, l := range logs {
		got = append(got, filepath.Base(l))
	}
	if !slices.Equal(got, wantLogs) || len(bases) != 1 || filepath.Base(bases[0]) != basePrefix+"5" {
		t.Fatalf("state directory holds logs %v and bases %v; want %v and %s5", got, bases, wantLogs, basePrefix)
	}
}

// TestChangelogDamaged: a damaged or missing log fails the restore with an
// error that names the file and the damage.
func TestChangelogDamaged(t *testing.T) {
	root := t.TempDir()
	b, v := counter(t, filepath.Join(root, "state"), "", Options{Changelog: true})
	for id := uint64(1); id <= 2; id++ {
		countTo(t, b, v, 100, 0)
		snapshotNow(t, b, root, id)
	}
	cp := filepath.Join(root, "cp2")
	log := filepath.Join(cp, logName(2))
	good, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"flipped byte", flip(good, len(good)/2), "CRC32C"},
		{"truncated", good[:len(good)-3], "trailer"},
		{"no header", append([]byte("XXXXXXXX"), good[8:]...), "header"},
		{"missing", nil, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.Remove(log); err != nil {
				t.Fatal(err)
			}
			if tc.data != nil {
				if err := os.WriteFile(log, tc.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() { _ = os.Remove(log); _ = os.WriteFile(log, good, 0o644) })
			_, err := OpenFromCheckpoint(filepath.Join(root, fmt.Sprint("r", i)), cp, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), logName(2)) {
				t.Fatalf("restore with a %s log: %v; want an error naming %s and %q", tc.name, err, logName(2), tc.want)
			}
			if tc.data != nil && !errors.Is(err, errCorruptLog) {
				t.Fatalf("error %v does not wrap errCorruptLog", err)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i] ^= 0x40
	return c
}

// TestFoldOp: replay folds a key's operations as Pebble would apply them.
func TestFoldOp(t *testing.T) {
	for _, tc := range []struct {
		ops  string // s=set, d=delete, m=merge, each with its one-letter value
		want string // kind and value of the folded operation
	}{
		{"sa", "SET a"},
		{"sa sb", "SET b"},
		{"sa d", "DEL "},
		{"ma", "MERGE a"},
		{"ma mb", "MERGE ab"},
		{"sa mb", "SET ab"},
		{"d mb", "SET b"},
		{"ma sb mc", "SET bc"},
		{"ma d", "DEL "},
	} {
		ops := map[string]*replayOp{}
		for _, op := range strings.Fields(tc.ops) {
			var v []byte
			if len(op) > 1 {
				v = []byte(op[1:])
			}
			kind := map[byte]pebbleKind{'s': kindSet, 'd': kindDelete, 'm': kindMerge}[op[0]]
			if err := foldOp(ops, kind, []byte("k"), v); err != nil {
				t.Fatal(err)
			}
		}
		o := ops["k"]
		got := map[pebbleKind]string{kindSet: "SET", kindDelete: "DEL", kindMerge: "MERGE"}[o.kind] + " " + string(o.val)
		if got != tc.want {
			t.Errorf("%s: folded to %q, want %q", tc.ops, got, tc.want)
		}
	}
}

type pebbleKind = pebble.InternalKeyKind

const (
	kindSet    = pebble.InternalKeyKindSet
	kindDelete = pebble.InternalKeyKindDelete
	kindMerge  = pebble.InternalKeyKindMerge
)

// BenchmarkRestoreChangelog restores a checkpoint whose base log holds
// WEIR_BENCH_KEYS (default 600K) dirty values of 100 bytes (about a full
// default value cache): one op is one restore.
func BenchmarkRestoreChangelog(b *testing.B) {
	keys := 600_000
	root := b.TempDir()
	src, err := Open(filepath.Join(root, "state"), Options{Changelog: true})
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewValue(src, "v", MustCodecFor[[]byte]())
	if err != nil {
		b.Fatal(err)
	}
	val := make([]byte, 100)
	for i := range keys {
		setKey(src, fmt.Sprint("key-", i))
		v.Set(val)
	}
	s, err := src.Snapshot(1)
	if err != nil {
		b.Fatal(err)
	}
	cp := filepath.Join(root, "cp")
	if _, err := s.Persist(context.Background(), cp); err != nil {
		b.Fatal(err)
	}
	if err := src.Release(s); err != nil {
		b.Fatal(err)
	}
	if err := src.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		r, err := OpenFromCheckpoint(filepath.Join(root, fmt.Sprint("r", i)), cp, Options{Changelog: true})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if n := len(r.vcache.m); n < keys*9/10 {
			b.Fatalf("restored %d cached entries, want about %d", n, keys)
		}
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// TestLogChecksumsDiffer: the engine tells local files apart by name, size
// and the CRC32C of the whole file, so two logs of the same size must not
// share it. (A CRC32C stored little endian after the bytes it covers makes
// the whole file's CRC32C the same constant for every log.)
func TestLogChecksumsDiffer(t *testing.T) {
	fs := vfs.NewMem()
	sum := func(name string, val byte) uint32 {
		l, err := createLog(fs, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeFrozen(l, []*cacheEntry{{key: "k", val: []byte{val}, present: true}}, false); err != nil {
			t.Fatal(err)
		}
		if _, err := l.finish(); err != nil {
			t.Fatal(err)
		}
		f, err := fs.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		data, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseLog(name, data); err != nil {
			t.Fatal(err)
		}
		return crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	}
	if a, b := sum("a", 1), sum("b", 2); a == b {
		t.Fatalf("two different logs of one size have the same CRC32C %08x", a)
	}
}

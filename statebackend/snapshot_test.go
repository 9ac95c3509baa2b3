package statebackend

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// isoStates are the states of TestSnapshotIsolation.
type isoStates struct {
	v   *Value[string]
	m   *Map[string, string]
	l   *List[string]
	sum *Reducing[int64]
}

func registerIso(t testing.TB, b *Backend) *isoStates {
	t.Helper()
	var s isoStates
	var errs [4]error
	s.v, errs[0] = NewValue(b, "iso/value", MustCodecFor[string]())
	s.m, errs[1] = NewMap(b, "iso/map", MustCodecFor[string](), MustCodecFor[string]())
	s.l, errs[2] = NewList(b, "iso/list", MustCodecFor[string]())
	s.sum, errs[3] = NewReducing(b, "iso/sum", MustCodecFor[int64](), func(a, b int64) int64 { return a + b })
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatal(err)
	}
	return &s
}

// write sets every state of key to version ver.
func (s *isoStates) write(b *Backend, key, ver string) {
	setKey(b, key)
	s.v.Set(ver)
	s.m.Put("a", ver)
	s.l.Add(ver)
	s.sum.Add(1)
}

func (s *isoStates) check(t *testing.T, b *Backend, key, ver string, list []string, sum int64) {
	t.Helper()
	setKey(b, key)
	if got := s.v.Get(); got != ver {
		t.Errorf("key %q: value = %q, want %q", key, got, ver)
	}
	if got, _ := s.m.Get("a"); got != ver {
		t.Errorf("key %q: map[a] = %q, want %q", key, got, ver)
	}
	if got := s.l.Get(); !slices.Equal(got, list) {
		t.Errorf("key %q: list = %q, want %q", key, got, list)
	}
	if got, _ := s.sum.Get(); got != sum {
		t.Errorf("key %q: sum = %d, want %d", key, got, sum)
	}
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotIsolation is the test the design note asks for: k=v1, barrier,
// k=v2 and enough other writes to fill many memtables while Persist is held
// at a failpoint and then runs concurrently with more writes; restoring the
// checkpoint reads v1 and no post-barrier key. The original backend reads
// v2 after Release. With holding disabled the same test must see the leak.
func TestSnapshotIsolation(t *testing.T) {
	for _, tc := range []struct {
		hold  bool
		cache int64
	}{{true, 0}, {true, -1}, {true, 4 << 10}, {false, 0}} {
		t.Run(fmt.Sprintf("hold=%v/valuecache=%d", tc.hold, tc.cache), func(t *testing.T) {
			testSnapshotIsolation(t, tc.hold, Options{MemTableSize: 256 << 10, ValueCacheSize: tc.cache, CommitEvery: 64})
		})
	}
}

func testSnapshotIsolation(t *testing.T, hold bool, opts Options) {
	root := t.TempDir()
	b, err := Open(filepath.Join(root, "state"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.testNoHold = !hold
	s := registerIso(t, b)
	const pre = 300
	for i := range pre {
		s.write(b, fmt.Sprint("pre", i), "v1")
	}
	s.write(b, "k", "v1")

	snap, err := b.Snapshot(7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Snapshot(8); !errors.Is(err, ErrSnapshotInFlight) {
		t.Fatalf("second Snapshot: %v, want ErrSnapshotInFlight", err)
	}
	if err := b.Release(snap); !errors.Is(err, ErrSnapshotNotDone) {
		t.Fatalf("Release before Persist: %v, want ErrSnapshotNotDone", err)
	}
	flushes := b.DB().Metrics().Flush.Count

	proceed := make(chan struct{})
	snap.testHook = func(_ context.Context, step string) {
		if step == "apply" {
			<-proceed
		}
	}
	ckpt := filepath.Join(root, "ckpt-7")
	go func() { _, _ = snap.Persist(context.Background(), ckpt) }()

	// Post-barrier writes: ~4 MB, 16 memtables' worth, while Persist waits.
	post := 0
	writePost := func(n int) {
		for range n {
			s.write(b, fmt.Sprint("post", post), strings.Repeat("x", 200))
			post++
		}
	}
	s.write(b, "k", "v2")
	for i := range pre {
		s.write(b, fmt.Sprint("pre", i), "v2")
	}
	writePost(8000)
	if hold {
		if b.HeldBytes() < 2<<20 {
			t.Fatalf("HeldBytes = %d after 4 MB of writes", b.HeldBytes())
		}
		if n := b.DB().Metrics().Flush.Count; n != flushes {
			t.Fatalf("%d memtable flushes while holding", n-flushes)
		}
	} else if n := b.DB().Metrics().Flush.Count; n < flushes+2 {
		// Holding is what keeps these writes out of the memtables.
		t.Fatalf("only %d memtable flushes for 4 MB of writes", n-flushes)
	}
	close(proceed)
	// Keep writing (and reading) while Persist runs.
	for done := false; !done; {
		select {
		case <-snap.Done():
			done = true
		default:
			writePost(50)
		}
	}
	files, err := snap.Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Release(snap); err != nil {
		t.Fatal(err)
	}
	// Without holding, Persist's write of the frozen cache entries can
	// also overwrite newer values in the original backend: check only the
	// leak into the checkpoint.
	if hold {
		checkOriginal(t, b, s, files)
	}

	r, err := OpenFromCheckpoint(filepath.Join(root, "restored"), ckpt, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rs := registerIso(t, r)
	setKey(r, "k")
	leaked := rs.v.Get() != "v1"
	setKey(r, "post0")
	leaked = leaked || rs.m.Contains("a")
	if !hold {
		if !leaked {
			t.Fatal("without holding, post-barrier writes should reach the checkpoint")
		}
		return
	}
	rs.check(t, r, "k", "v1", []string{"v1"}, 1)
	for i := range pre {
		rs.check(t, r, fmt.Sprint("pre", i), "v1", []string{"v1"}, 1)
	}
	n := 0
	r.iterate(nil, func(k, _ []byte) bool {
		if strings.Contains(string(k), "post") {
			t.Fatalf("post-barrier key %q in checkpoint", k)
		}
		n++
		return true
	})
	if n != 4*(pre+1) {
		t.Fatalf("checkpoint holds %d entries, want %d", n, 4*(pre+1))
	}
	if got := r.RestoredStates(); !slices.Equal(got, b.States()) {
		t.Fatalf("RestoredStates = %v, want %v", got, b.States())
	}
}

func checkOriginal(t *testing.T, b *Backend, s *isoStates, files *SnapshotFiles) {
	t.Helper()
	if b.Holding() || b.HeldBytes() != 0 {
		t.Fatalf("after Release: holding %v, %d held bytes", b.Holding(), b.HeldBytes())
	}
	s.check(t, b, "k", "v2", []string{"v1", "v2"}, 2)
	s.check(t, b, "post0", strings.Repeat("x", 200), []string{strings.Repeat("x", 200)}, 1)
	if err := files.Verify(nil); err != nil {
		t.Fatal(err)
	}
	var sst, meta bool
	for _, f := range files.Files {
		sst = sst || f.Kind == FileShared
		meta = meta || (f.Name == SnapshotMetaFile && f.Kind == FilePrivate)
	}
	if !sst || !meta {
		t.Fatalf("files %v: want an SST and %s", files.Files, SnapshotMetaFile)
	}
}

// Persist runs once; Abort before or during Persist ends the snapshot and
// leaves the backend usable; errors while linking leave no directory.
func TestSnapshotAbortAndErrors(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T, fs vfs.FS) (*Backend, *Value[int64]) {
		b, err := Open("/state", Options{FS: fs, MemTableSize: 256 << 10})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		v, _ := NewValue(b, "v", MustCodecFor[int64]())
		setKey(b, "k")
		v.Set(1)
		return b, v
	}
	// after checks that a snapshot in flight ended well: post-barrier
	// writes are visible and a new snapshot persists them.
	after := func(t *testing.T, b *Backend, v *Value[int64], fs vfs.FS, dir string) {
		t.Helper()
		if b.Holding() {
			t.Fatal("still holding")
		}
		setKey(b, "k")
		v.Set(v.Get() + 1)
		s, err := b.Snapshot(99)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Persist(ctx, dir); err != nil {
			t.Fatal(err)
		}
		if err := b.Release(s); err != nil {
			t.Fatal(err)
		}
		r, err := OpenFromCheckpoint("/restored", dir, Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rv, _ := NewValue(r, "v", MustCodecFor[int64]())
		setKey(r, "k")
		if got := rv.Get(); got != 3 {
			t.Fatalf("restored %d, want 3", got)
		}
	}

	t.Run("abort-before-persist", func(t *testing.T) {
		fs := vfs.NewMem()
		b, v := setup(t, fs)
		s, _ := b.Snapshot(1)
		v.Set(2)
		if err := b.Abort(s); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Persist(ctx, "/ckpt"); !errors.Is(err, ErrSnapshotAborted) {
			t.Fatalf("Persist after Abort: %v", err)
		}
		if _, err := fs.Stat("/ckpt"); err == nil {
			t.Fatal("Persist after Abort created its directory")
		}
		after(t, b, v, fs, "/ckpt2")
	})
	t.Run("abort-during-persist", func(t *testing.T) {
		fs := vfs.NewMem()
		b, v := setup(t, fs)
		s, _ := b.Snapshot(1)
		v.Set(2)
		at := make(chan struct{})
		s.testHook = func(ctx context.Context, step string) {
			if step == "checkpoint" {
				close(at)
				<-ctx.Done() // until Abort cancels
			}
		}
		res := make(chan error, 1)
		go func() {
			_, err := s.Persist(ctx, "/ckpt")
			res <- err
		}()
		<-at
		if err := b.Abort(s); err != nil {
			t.Fatal(err)
		}
		if err := <-res; !errors.Is(err, ErrSnapshotAborted) {
			t.Fatalf("Persist: %v", err)
		}
		if _, err := s.Persist(ctx, "/ckpt"); !errors.Is(err, ErrSnapshotAborted) {
			t.Fatalf("second Persist: %v", err)
		}
		after(t, b, v, fs, "/ckpt2")
	})
	t.Run("dir-exists", func(t *testing.T) {
		fs := vfs.NewMem()
		b, v := setup(t, fs)
		_ = fs.MkdirAll("/ckpt", 0o755)
		s, _ := b.Snapshot(1)
		v.Set(2)
		if _, err := s.Persist(ctx, "/ckpt"); err == nil {
			t.Fatal("Persist into an existing directory succeeded")
		}
		if _, err := s.Result(); err == nil {
			t.Fatal("Result: no error")
		}
		if err := b.Release(s); err != nil {
			t.Fatal(err)
		}
		after(t, b, v, fs, "/ckpt2")
	})
	t.Run("link-error", func(t *testing.T) {
		inj := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
			if strings.HasPrefix(op.Path, "/ckpt/") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
				return errorfs.ErrInjected
			}
			return nil
		})}
		fs := errorfs.Wrap(vfs.NewMem(), inj)
		b, v := setup(t, fs)
		for i := range 2000 { // some tables to link
			setKey(b, fmt.Sprint(i))
			v.Set(int64(i))
		}
		setKey(b, "k")
		s, _ := b.Snapshot(1)
		v.Set(2)
		inj.On()
		_, err := s.Persist(ctx, "/ckpt")
		inj.Off()
		if !errors.Is(err, errorfs.ErrInjected) {
			t.Fatalf("Persist: %v, want the injected error", err)
		}
		if _, err := fs.Stat("/ckpt"); err == nil {
			t.Fatal("failed Persist left its directory")
		}
		if err := b.Release(s); err != nil {
			t.Fatal(err)
		}
		if err := b.Err(); err != nil {
			t.Fatal(err)
		}
		after(t, b, v, fs, "/ckpt2")
	})
	t.Run("close-in-flight", func(t *testing.T) {
		fs := vfs.NewMem()
		b, _ := setup(t, fs)
		s, _ := b.Snapshot(1)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Persist(ctx, "/ckpt"); !errors.Is(err, ErrSnapshotAborted) {
			t.Fatalf("Persist after Close: %v", err)
		}
	})
	t.Run("failed-backend", func(t *testing.T) {
		b, v := setup(t, vfs.NewMem())
		b.SetCurrentKey(0, nil)
		b.SetCurrentKey(uint16(b.MaxParallelism()), nil) // out of range: sticky error
		v.Set(1)
		if _, err := b.Snapshot(1); !errors.Is(err, ErrKeyGroupRange) {
			t.Fatalf("Snapshot of a failed backend: %v", err)
		}
	})
}

// OpenFromCheckpoint checks options, the target directory and every state
// registration against the snapshot.
func TestOpenFromCheckpointChecks(t *testing.T) {
	fs := vfs.NewMem()
	b, err := Open("/state", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := NewValue(b, "v", MustCodecFor[int64]()); err != nil {
		t.Fatal(err)
	}
	s, _ := b.Snapshot(1)
	files, err := s.Persist(context.Background(), "/ckpt")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Release(s); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFromCheckpoint("/r1", "/ckpt", Options{FS: fs, MaxParallelism: 64, KeyGroups: KeyGroupRange{0, 63}}); err == nil {
		t.Fatal("restore with another max parallelism succeeded")
	}
	_ = fs.MkdirAll("/r2", 0o755)
	f, _ := fs.Create("/r2/x", vfs.WriteCategoryUnspecified)
	f.Close()
	if _, err := OpenFromCheckpoint("/r2", "/ckpt", Options{FS: fs}); err == nil {
		t.Fatal("restore into a non-empty directory succeeded")
	}
	if _, err := OpenFromCheckpoint("/r3", "/state", Options{FS: fs}); err == nil {
		t.Fatal("restore from a directory without " + SnapshotMetaFile + " succeeded")
	}
	r, err := OpenFromCheckpoint("/r4", "/ckpt", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := NewValue(r, "v", MustCodecFor[string]()); !errors.Is(err, ErrIncompatibleState) {
		t.Fatalf("registering another codec after restore: %v", err)
	}
	if _, err := NewMap(r, "v", MustCodecFor[int64](), MustCodecFor[int64]()); !errors.Is(err, ErrIncompatibleState) {
		t.Fatalf("registering another kind after restore: %v", err)
	}
	if _, err := NewValue(r, "v", MustCodecFor[int64]()); err != nil {
		t.Fatal(err)
	}
	// Restoring did not change the checkpoint directory (local recovery can
	// use it again).
	if err := files.Verify(fs); err != nil {
		t.Fatal(err)
	}
	f, _ = fs.Create("/ckpt/extra", vfs.WriteCategoryUnspecified)
	f.Close()
	if err := files.Verify(fs); err == nil {
		t.Fatal("Verify accepted an extra file")
	}
}

// A checkpoint of one backend: freeze at the barrier, persist on another
// goroutine while writing on, release, restore.
func ExampleBackend_Snapshot() {
	fs := vfs.NewMem()
	b, _ := Open("/state", Options{FS: fs})
	n, _ := NewValue(b, "count/n", MustCodecFor[int64]())
	b.SetCurrentKey(KeyGroupOf([]byte("k"), b.MaxParallelism()), []byte("k"))
	n.Set(1)

	s, err := b.Snapshot(1) // at barrier 1, on the task goroutine
	if err != nil {
		panic(err) // e.g. ErrSnapshotInFlight: decline the checkpoint
	}
	go func() { _, _ = s.Persist(context.Background(), "/checkpoints/1") }()
	n.Set(2)   // after the barrier: held, not in checkpoint 1
	<-s.Done() // the task polls this between batches
	files, err := s.Result()
	if err != nil {
		panic(err)
	}
	if err := b.Release(s); err != nil {
		panic(err)
	}
	for _, f := range files.Files {
		if f.Kind == FileShared {
			fmt.Println("shared file:", strings.HasSuffix(f.Name, ".sst"))
		}
	}
	b.Close()

	r, _ := OpenFromCheckpoint("/restored", "/checkpoints/1", Options{FS: fs})
	defer r.Close()
	rn, _ := NewValue(r, "count/n", MustCodecFor[int64]())
	r.SetCurrentKey(KeyGroupOf([]byte("k"), r.MaxParallelism()), []byte("k"))
	fmt.Println("restored:", rn.Get())
	// Output:
	// shared file: true
	// restored: 1
}

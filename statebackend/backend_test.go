package statebackend

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

func openTest(t testing.TB, opts Options) *Backend {
	t.Helper()
	b, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func setKey(b *Backend, key string) {
	b.SetCurrentKey(KeyGroupOf([]byte(key), b.MaxParallelism()), []byte(key))
}

func TestLockSameProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, Options{})
	checkLocked(t, err, dir)
	// Another spelling of the same directory is the same directory.
	_, err = Open(dir+"/.", Options{})
	checkLocked(t, err, dir+"/.")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("reopen after Close: %v", err)
	}
	b2.Close()
}

func checkLocked(t *testing.T, err error, dir string) {
	t.Helper()
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: got %v, want ErrLocked", err)
	}
	want := fmt.Sprintf("statebackend: state directory %q is in use by another job", dir)
	if err.Error() != want {
		t.Fatalf("error message %q, want %q", err, want)
	}
}

const lockHelperEnv = "WEIR_STATEBACKEND_LOCK_HELPER"

// TestLockHelperProcess is not a real test: TestLockOtherProcess runs the test
// binary again with it to hold a state directory from another process.
func TestLockHelperProcess(t *testing.T) {
	dir := os.Getenv(lockHelperEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	b, err := Open(dir, Options{})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin) // hold the lock until stdin closes
	b.Close()
	os.Exit(0)
}

func TestLockOtherProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper process said %q (%v)", line, err)
	}
	_, err = Open(dir, Options{})
	checkLocked(t, err, dir)
	var le *lockedError
	if !errors.As(err, &le) || le.cause == nil {
		t.Fatalf("expected the OS lock error as cause, got %#v", err)
	}

	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper process: %v", err)
	}
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after the other process exited: %v", err)
	}
	b.Close()
}

func TestOpenOptions(t *testing.T) {
	b := openTest(t, Options{})
	if b.MaxParallelism() != DefaultMaxParallelism || b.KeyGroups() != (KeyGroupRange{0, DefaultMaxParallelism - 1}) {
		t.Fatalf("zero Options: maxP %d, %v", b.MaxParallelism(), b.KeyGroups())
	}
	b2 := openTest(t, Options{MaxParallelism: 128, KeyGroups: KeyGroupRange{0, 0}})
	if b2.KeyGroups() != (KeyGroupRange{0, 0}) {
		t.Fatalf("explicit single key group became %v", b2.KeyGroups())
	}
	for _, opts := range []Options{
		{MaxParallelism: -1},
		{MaxParallelism: UpperBoundMaxParallelism + 1},
		{MaxParallelism: 8, KeyGroups: KeyGroupRange{4, 8}},
		{MaxParallelism: 8, KeyGroups: KeyGroupRange{5, 4}},
	} {
		if _, err := Open(t.TempDir(), opts); err == nil {
			t.Errorf("Open(%+v) succeeded", opts)
		}
	}
}

func TestRegistration(t *testing.T) {
	b := openTest(t, Options{})
	v1, err := NewValue(b, "op/x", MustCodecFor[int64]())
	if err != nil {
		t.Fatal(err)
	}
	// Same name, kind and codec: the same state.
	v2, err := NewValue(b, "op/x", MustCodecFor[int64]())
	if err != nil {
		t.Fatal(err)
	}
	setKey(b, "k")
	v1.Set(5)
	if v2.Get() != 5 {
		t.Fatal("two handles of one state disagree")
	}
	for _, err := range []error{
		errOf(NewValue(b, "op/x", MustCodecFor[string]())),
		errOf(NewList(b, "op/x", MustCodecFor[int64]())),
		errOf(NewMap(b, "op/x", MustCodecFor[int64](), MustCodecFor[int64]())),
		errOf(NewReducing(b, "op/x", MustCodecFor[int64](), func(a, b int64) int64 { return a + b })),
	} {
		if !errors.Is(err, ErrIncompatibleState) || !strings.Contains(err.Error(), `"op/x"`) {
			t.Errorf("got %v, want ErrIncompatibleState naming the state", err)
		}
	}
	if _, err := NewValue(b, "", MustCodecFor[int64]()); err == nil {
		t.Error("empty name accepted")
	}
	if _, err := NewValue[int64](b, "nil", nil); err == nil {
		t.Error("nil codec accepted")
	}
	if _, err := NewReducing(b, "nilfn", MustCodecFor[int64](), nil); err == nil {
		t.Error("nil reduce accepted")
	}
	// A forced id collision is detected.
	b.ids[StateID("other")] = &stateInfo{StateInfo{Name: "impostor"}}
	if _, err := NewValue(b, "other", MustCodecFor[int64]()); !errors.Is(err, ErrIncompatibleState) || !strings.Contains(err.Error(), "same id") {
		t.Errorf("id collision: got %v", err)
	}
	got := b.States()
	if len(got) != 1 || got[0].Name != "op/x" || got[0].Kind != KindValue || got[0].ValueFingerprint != "int64/be" {
		t.Errorf("States() = %+v", got)
	}
}

func errOf[T any](_ T, err error) error { return err }

func TestStickyErrors(t *testing.T) {
	b := openTest(t, Options{MaxParallelism: 8, KeyGroups: KeyGroupRange{0, 3}})
	v, _ := NewValue(b, "v", MustCodecFor[int64]())
	if got := v.Get(); got != 0 || !errors.Is(b.Err(), ErrNoCurrentKey) {
		t.Fatalf("Get without key: %d, Err %v", got, b.Err())
	}
	b2 := openTest(t, Options{MaxParallelism: 8, KeyGroups: KeyGroupRange{0, 3}})
	b2.SetCurrentKey(5, []byte("k"))
	if !errors.Is(b2.Err(), ErrKeyGroupRange) {
		t.Fatalf("foreign key group: Err %v", b2.Err())
	}
	// Sticky: the first error stays.
	b2.SetCurrentKey(6, []byte("k"))
	if !strings.Contains(b2.Err().Error(), "key group 5") {
		t.Fatalf("Err changed to %v", b2.Err())
	}
}

func TestUseAfterClose(t *testing.T) {
	b, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewValue(b, "v", MustCodecFor[int64]())
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	setKey(b, "k")
	v.Set(1)
	if v.Get() != 0 || !errors.Is(b.Err(), ErrClosed) {
		t.Fatalf("use after Close: Err %v", b.Err())
	}
	if !errors.Is(b.Flush(), ErrClosed) {
		t.Fatal("Flush after Close")
	}
	if _, err := NewValue(b, "w", MustCodecFor[int64]()); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewValue after Close: %v", err)
	}
}

// A stored value that does not decode is recorded and read as zero.
func TestDecodeError(t *testing.T) {
	for _, cacheSize := range []int64{0, -1} {
		b := openTest(t, Options{ValueCacheSize: cacheSize})
		v, _ := NewValue(b, "v", MustCodecFor[int64]())
		setKey(b, "k")
		key := append([]byte(nil), b.key[:b.keyLen]...)
		binary.BigEndian.PutUint32(key[2:], StateID("v"))
		if err := b.DB().Set(key, []byte("bad"), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if got, ok := v.Lookup(); got != 0 || ok {
			t.Fatalf("Lookup of a corrupt value = %d, %v", got, ok)
		}
		if err := b.Err(); err == nil || !strings.Contains(err.Error(), `state "v": decode value`) {
			t.Fatalf("Err = %v", err)
		}
	}
}

// Flush makes every write visible in DB(), at the documented key layout.
func TestFlushAndLayout(t *testing.T) {
	b := openTest(t, Options{MaxParallelism: 16})
	v, _ := NewValue(b, "op/v", MustCodecFor[int64]())
	m, _ := NewMap(b, "op/m", MustCodecFor[string](), MustCodecFor[int64]())
	l, _ := NewList(b, "op/l", MustCodecFor[string]())
	setKey(b, "key")
	v.Set(-2)
	m.Put("mk", 7)
	l.Add("x")
	l.Add("yz")
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	kg := KeyGroupOf([]byte("key"), 16)
	prefix := func(state string) string {
		id := StateID(state)
		return string([]byte{byte(kg >> 8), byte(kg), byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id), 3}) + "key"
	}
	want := map[string]string{
		prefix("op/v"):        string(MustCodecFor[int64]().Append(nil, -2)),
		prefix("op/m") + "mk": string(MustCodecFor[int64]().Append(nil, 7)),
		prefix("op/l"):        "\x01x\x02yz",
	}
	got := map[string]string{}
	it, err := b.DB().NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		got[string(it.Key())] = string(it.Value())
	}
	it.Close()
	if !maps.Equal(got, want) {
		t.Fatalf("stored entries\n got %q\nwant %q", got, want)
	}
}

// The entries of key "a" never include those of key "ab" (or "a\x00") even
// though one is a prefix of the other.
func TestKeyPrefixIsolation(t *testing.T) {
	b := openTest(t, Options{MaxParallelism: 1}) // one key group for all keys
	m, _ := NewMap(b, "m", MustCodecFor[string](), MustCodecFor[int]())
	keys := []string{"", "a", "ab", "a\x00", "b"}
	for i, k := range keys {
		setKey(b, k)
		m.Put("x", i)
		m.Put("y"+k, i)
	}
	setKey(b, "a")
	m.Clear()
	for i, k := range keys {
		setKey(b, k)
		got := map[string]int{}
		for mk, v := range m.All() {
			got[mk] = v
		}
		want := map[string]int{"x": i, "y" + k: i}
		if k == "a" {
			want = map[string]int{}
		}
		if !maps.Equal(got, want) {
			t.Errorf("key %q: map %v, want %v", k, got, want)
		}
		if m.IsEmpty() != (k == "a") {
			t.Errorf("key %q: IsEmpty = %v", k, m.IsEmpty())
		}
	}
}

// Map.All sees the map as of the start of iteration; writes during it apply.
func TestMapWritesDuringIteration(t *testing.T) {
	b := openTest(t, Options{CommitEvery: 2}) // commits while iterating
	m, _ := NewMap(b, "m", MustCodecFor[int](), MustCodecFor[int]())
	setKey(b, "k")
	for i := range 10 {
		m.Put(i, i)
	}
	var seen []int
	for k, v := range m.All() {
		seen = append(seen, k)
		m.Delete(k)
		m.Put(k+100, v)
	}
	if !slices.Equal(seen, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("iteration saw %v", seen)
	}
	var after []int
	for k := range m.Keys() {
		after = append(after, k)
	}
	if !slices.Equal(after, []int{100, 101, 102, 103, 104, 105, 106, 107, 108, 109}) {
		t.Fatalf("after iteration: %v", after)
	}
	// Breaking out of the loop closes the iterator.
	for range m.All() {
		break
	}
	if b.openIters != 0 {
		t.Fatalf("%d iterators left open", b.openIters)
	}
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestMapNumericOrder(t *testing.T) {
	b := openTest(t, Options{})
	m, _ := NewMap(b, "m", MustCodecFor[float64](), MustCodecFor[bool]())
	setKey(b, "k")
	in := []float64{3, -1, 0, -100.5, 1e9, -1e-9}
	for _, f := range in {
		m.Put(f, true)
	}
	var got []float64
	for k := range m.Keys() {
		got = append(got, k)
	}
	slices.Sort(in)
	if !slices.Equal(got, in) {
		t.Fatalf("keys in order %v, want %v", got, in)
	}
}

// Data survives Close and Open once flushed to SSTables (as a restored
// checkpoint would be).
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewValue(b, "v", MustCodecFor[string]())
	setKey(b, "k")
	v.Set("hello")
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	v, _ = NewValue(b, "v", MustCodecFor[string]())
	setKey(b, "k")
	if got := v.Get(); got != "hello" {
		t.Fatalf("after reopen: %q", got)
	}
}

// A read error from the file system is recorded in Err and the accessor
// returns zero values.
func TestReadErrorInjected(t *testing.T) {
	inj := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpFileReadAt && strings.HasSuffix(op.Path, ".sst") {
			return errorfs.ErrInjected
		}
		return nil
	})}
	b, err := Open("/state", Options{FS: errorfs.Wrap(vfs.NewMem(), inj), ValueCacheSize: -1, CacheSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	v, _ := NewValue(b, "v", MustCodecFor[int64]())
	for i := range 100 {
		setKey(b, fmt.Sprint(i))
		v.Set(int64(i))
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	inj.On()
	setKey(b, "42")
	got, ok := v.Lookup()
	inj.Off()
	if got != 0 || ok {
		t.Fatalf("Lookup under read errors = %d, %v", got, ok)
	}
	if err := b.Err(); !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("Err = %v, want the injected error", err)
	}
}

// The value cache writes evicted entries back and reads them again.
func TestValueCacheEviction(t *testing.T) {
	b := openTest(t, Options{ValueCacheSize: 4 << 10}) // ~30 entries
	v, _ := NewValue(b, "v", MustCodecFor[int64]())
	for round := range 3 {
		for i := range 1000 {
			setKey(b, fmt.Sprint(i))
			if got := v.Get(); got != int64(round*i) {
				t.Fatalf("round %d key %d: got %d", round, i, got)
			}
			v.Set(int64((round + 1) * i))
		}
	}
	if n := len(b.vcache.m); n > 100 {
		t.Fatalf("cache holds %d entries, capacity ~30", n)
	}
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
}

func Example() {
	dir, _ := os.MkdirTemp("", "statebackend-example")
	defer os.RemoveAll(dir)
	b, err := Open(dir, Options{MaxParallelism: 128, KeyGroups: RangeForSubtask(128, 1, 0)})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	count, err := NewValue(b, "wordcount/n", MustCodecFor[int64]())
	if err != nil {
		panic(err)
	}
	for _, w := range strings.Fields("to be or not to be") {
		key := []byte(w)
		b.SetCurrentKey(KeyGroupOf(key, 128), key)
		count.Set(count.Get() + 1)
		fmt.Println(w, count.Get())
	}
	if err := b.Err(); err != nil {
		panic(err)
	}
	// Output:
	// to 1
	// be 1
	// or 1
	// not 1
	// to 2
	// be 2
}

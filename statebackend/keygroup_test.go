package statebackend

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// The hash is part of the state format: these values must never change.
func TestHashKeyGolden(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want uint64
	}{
		// Computed independently (FNV-1a 64, then murmur3 fmix64).
		{"", 0xefd01f60ba992926},
		{"a", 0x82a2a958a9bece5b},
		{"hello", 0xe9c562c0fdb23244},
		{"weir/key-group", 0x40d4fb00ed245c17},
	} {
		if got := HashKey([]byte(tc.key)); got != tc.want {
			t.Errorf("HashKey(%q) = %#x, want %#x", tc.key, got, tc.want)
		}
	}
}

func TestHashKeyAllocs(t *testing.T) {
	key := []byte("some key")
	if n := testing.AllocsPerRun(100, func() { KeyGroupOf(key, 128) }); n != 0 {
		t.Fatalf("KeyGroupOf allocates %v times", n)
	}
}

func TestKeyGroupOfSpread(t *testing.T) {
	// Sequential integer keys must spread evenly over the key groups.
	const maxP, n = 128, 128 * 1000
	var counts [maxP]int
	var buf []byte
	for i := range n {
		buf = binary.BigEndian.AppendUint64(buf[:0], uint64(i))
		counts[KeyGroupOf(buf, maxP)]++
	}
	for kg, c := range counts {
		if c < 850 || c > 1150 {
			t.Errorf("key group %d got %d of %d keys (expected ~1000)", kg, c, n)
		}
	}
}

func TestKeyGroupRanges(t *testing.T) {
	for maxP := 1; maxP <= 300; maxP++ {
		for p := 1; p <= maxP; p++ {
			next := 0
			for i := range p {
				r := RangeForSubtask(maxP, p, i)
				if r.Start != next || r.Len() < 1 {
					t.Fatalf("maxP=%d p=%d subtask %d: range %v, want start %d and non-empty", maxP, p, i, r, next)
				}
				for kg := r.Start; kg <= r.End; kg++ {
					if got := SubtaskForKeyGroup(maxP, p, kg); got != i {
						t.Fatalf("maxP=%d p=%d: SubtaskForKeyGroup(%d) = %d, but %v belongs to subtask %d", maxP, p, kg, got, r, i)
					}
				}
				next = r.End + 1
			}
			if next != maxP {
				t.Fatalf("maxP=%d p=%d: ranges end at %d, want %d", maxP, p, next-1, maxP-1)
			}
		}
	}
}

func TestKeyGroupRangeMethods(t *testing.T) {
	r := KeyGroupRange{Start: 3, End: 5}
	if r.Len() != 3 || !r.Contains(3) || !r.Contains(5) || r.Contains(2) || r.Contains(6) {
		t.Fatalf("bad methods on %v", r)
	}
	if got := r.String(); got != "key groups [3, 5]" {
		t.Fatalf("String() = %q", got)
	}
	if e := (KeyGroupRange{Start: 1, End: 0}); e.Len() != 0 || e.Contains(0) || e.String() != "key groups []" {
		t.Fatalf("bad empty range %v", e)
	}
}

// KeyBounds of consecutive subtasks' ranges adjoin, and every key of a key
// group lies inside the bounds of the range holding it, whatever follows the
// key group bytes.
func TestKeyBoundsContiguous(t *testing.T) {
	const maxP, p = 128, 5
	var prevUpper []byte
	for i := range p {
		r := RangeForSubtask(maxP, p, i)
		lo, hi := r.KeyBounds()
		if i > 0 && !bytes.Equal(prevUpper, lo) {
			t.Fatalf("subtask %d lower bound %x != previous upper bound %x", i, lo, prevUpper)
		}
		prevUpper = hi
		for kg := r.Start - 1; kg <= r.End+1; kg++ {
			if kg < 0 {
				continue
			}
			for _, rest := range [][]byte{nil, {0}, {0xff, 0xff, 0xff, 0xff, 0xff}} {
				key := append(binary.BigEndian.AppendUint16(nil, uint16(kg)), rest...)
				in := bytes.Compare(lo, key) <= 0 && bytes.Compare(key, hi) < 0
				if in != r.Contains(kg) {
					t.Fatalf("%v: key %x inside bounds [%x, %x) = %v", r, key, lo, hi, in)
				}
			}
		}
	}
}

func TestKeyGroupPanics(t *testing.T) {
	for _, f := range []func(){
		func() { RangeForSubtask(128, 0, 0) },
		func() { RangeForSubtask(128, 4, 4) },
		func() { RangeForSubtask(128, 129, 0) },
		func() { SubtaskForKeyGroup(128, 4, 128) },
		func() { KeyGroupOf(nil, 0) },
		func() { KeyGroupOf(nil, UpperBoundMaxParallelism+1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic")
				}
			}()
			f()
		}()
	}
}

func ExampleRangeForSubtask() {
	for i := range 3 {
		r := RangeForSubtask(128, 3, i)
		fmt.Println(i, r, SubtaskForKeyGroup(128, 3, r.Start), SubtaskForKeyGroup(128, 3, r.End))
	}
	// Output:
	// 0 key groups [0, 42] 0 0
	// 1 key groups [43, 85] 1 1
	// 2 key groups [86, 127] 2 2
}

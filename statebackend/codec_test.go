package statebackend

import (
	"bytes"
	"cmp"
	"errors"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func roundTrip[T any](t *testing.T, vals ...T) {
	t.Helper()
	c, err := CodecFor[T]()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vals {
		enc := c.Append(nil, v)
		got, err := c.Decode(enc)
		if err != nil {
			t.Fatalf("%T %#v: decode: %v", v, v, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("%T: round trip of %#v gave %#v (encoding %x)", v, v, got, enc)
		}
		// Append must append, not overwrite.
		if enc2 := c.Append([]byte("prefix"), v); !bytes.Equal(enc2[6:], enc) || string(enc2[:6]) != "prefix" {
			t.Fatalf("%T %#v: Append to non-empty dst gave %x", v, v, enc2)
		}
	}
}

type (
	UserID   int64
	Name     string
	Raw      []byte
	Celsius  float32
	Flag     bool
	SmallInt int8
)

func TestBuiltinRoundTrip(t *testing.T) {
	roundTrip(t, false, true)
	roundTrip(t, 0, 1, -1, math.MaxInt, math.MinInt)
	roundTrip[int8](t, 0, 1, -1, math.MaxInt8, math.MinInt8)
	roundTrip[int16](t, 0, 1, -1, math.MaxInt16, math.MinInt16)
	roundTrip[int32](t, 0, 1, -1, math.MaxInt32, math.MinInt32)
	roundTrip[int64](t, 0, 1, -1, math.MaxInt64, math.MinInt64)
	roundTrip[uint](t, 0, 1, math.MaxUint)
	roundTrip[uint8](t, 0, 1, math.MaxUint8)
	roundTrip[uint16](t, 0, 1, math.MaxUint16)
	roundTrip[uint32](t, 0, 1, math.MaxUint32)
	roundTrip[uint64](t, 0, 1, math.MaxUint64)
	roundTrip[float32](t, 0, 1.5, -1.5, math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, float32(math.Inf(1)), float32(math.Inf(-1)))
	roundTrip(t, 0, 1.5, -1.5, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1))
	roundTrip(t, "", "a", "héllo", "\x00\xff")
	roundTrip(t, []byte{}, []byte{0}, []byte("abc"))
	roundTrip[UserID](t, -7, 7)
	roundTrip[Name](t, "", "x")
	roundTrip(t, Raw("raw"))
	roundTrip[Celsius](t, -40, 21.5)
	roundTrip[Flag](t, true)
	roundTrip[SmallInt](t, -128, 127)
}

// NaN and -0 round-trip bit for bit (DeepEqual cannot check NaN).
func TestFloatBitsRoundTrip(t *testing.T) {
	c := MustCodecFor[float64]()
	for _, bits := range []uint64{
		math.Float64bits(math.NaN()), math.Float64bits(math.Copysign(0, -1)),
		0x7ff0000000000001, 0xfff8000000000000, 0xffffffffffffffff,
	} {
		got, err := c.Decode(c.Append(nil, math.Float64frombits(bits)))
		if err != nil || math.Float64bits(got) != bits {
			t.Errorf("float64 bits %#x came back as %#x (%v)", bits, math.Float64bits(got), err)
		}
	}
	c32 := MustCodecFor[float32]()
	for _, bits := range []uint32{0x7fc00000, 0x80000000, 0xffffffff, 0x7f800001} {
		got, err := c32.Decode(c32.Append(nil, math.Float32frombits(bits)))
		if err != nil || math.Float32bits(got) != bits {
			t.Errorf("float32 bits %#x came back as %#x (%v)", bits, math.Float32bits(got), err)
		}
	}
}

// Byte order of the built-in encodings is numeric order.
func checkOrder[T any](t *testing.T, compare func(a, b T) int, vals []T) {
	t.Helper()
	c := MustCodecFor[T]()
	for i := range vals {
		for j := range vals {
			want := compare(vals[i], vals[j])
			got := bytes.Compare(c.Append(nil, vals[i]), c.Append(nil, vals[j]))
			if got != want {
				t.Fatalf("%T: order of %v vs %v: bytes %d, values %d", vals[i], vals[i], vals[j], got, want)
			}
		}
	}
}

func intSamples[T int8 | int16 | int32 | int64 | int](r *rand.Rand, lo, hi T) []T {
	vals := []T{lo, lo + 1, -1, 0, 1, hi - 1, hi}
	for range 40 {
		vals = append(vals, T(r.Uint64()))
	}
	return vals
}

func uintSamples[T uint8 | uint16 | uint32 | uint64 | uint](r *rand.Rand, hi T) []T {
	vals := []T{0, 1, hi - 1, hi}
	for range 40 {
		vals = append(vals, T(r.Uint64()))
	}
	return vals
}

func TestBuiltinOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	checkOrder(t, cmp.Compare, intSamples[int8](r, math.MinInt8, math.MaxInt8))
	checkOrder(t, cmp.Compare, intSamples[int16](r, math.MinInt16, math.MaxInt16))
	checkOrder(t, cmp.Compare, intSamples[int32](r, math.MinInt32, math.MaxInt32))
	checkOrder(t, cmp.Compare, intSamples[int64](r, math.MinInt64, math.MaxInt64))
	checkOrder(t, cmp.Compare, intSamples[int](r, math.MinInt, math.MaxInt))
	checkOrder(t, cmp.Compare, uintSamples[uint8](r, math.MaxUint8))
	checkOrder(t, cmp.Compare, uintSamples[uint16](r, math.MaxUint16))
	checkOrder(t, cmp.Compare, uintSamples[uint32](r, math.MaxUint32))
	checkOrder(t, cmp.Compare, uintSamples[uint64](r, math.MaxUint64))
	checkOrder(t, cmp.Compare, uintSamples[uint](r, math.MaxUint))
	checkOrder(t, func(a, b bool) int {
		return cmp.Compare(boolInt(a), boolInt(b))
	}, []bool{false, true})
	checkOrder(t, strings.Compare, []string{"", "a", "aa", "ab", "b", "\xff"})

	floats := []float64{math.Inf(-1), -math.MaxFloat64, -1e10, -1.5, -math.SmallestNonzeroFloat64,
		0, math.SmallestNonzeroFloat64, 1, 1.5, 1e300, math.MaxFloat64, math.Inf(1)}
	for range 40 {
		floats = append(floats, r.NormFloat64()*math.Pow(10, float64(r.IntN(40)-20)))
	}
	checkOrder(t, cmp.Compare, floats) // no NaN, no -0: cmp.Compare treats -0 == +0
	var f32 []float32
	for _, f := range floats {
		if g := float32(f); g != 0 || !math.Signbit(float64(g)) { // skip -0 from underflow
			f32 = append(f32, g)
		}
	}
	checkOrder(t, cmp.Compare, f32)

	// Documented positions of -0, NaN.
	c := MustCodecFor[float64]()
	order := []float64{math.Copysign(math.NaN(), -1), math.Inf(-1), -1, math.Copysign(0, -1), 0, 1, math.Inf(1), math.NaN()}
	for i := 1; i < len(order); i++ {
		if bytes.Compare(c.Append(nil, order[i-1]), c.Append(nil, order[i])) >= 0 {
			t.Errorf("encoding of %v does not sort before %v", order[i-1], order[i])
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestBuiltinAllocFree(t *testing.T) {
	buf := make([]byte, 0, 64)
	check := func(name string, f func()) {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: Append allocates %v times", name, n)
		}
	}
	ci, cu, cf, cs, cb, cbool := MustCodecFor[int64](), MustCodecFor[uint32](), MustCodecFor[float64](), MustCodecFor[string](), MustCodecFor[[]byte](), MustCodecFor[bool]()
	cid := MustCodecFor[UserID]()
	s, b := "hello", []byte("bytes")
	check("int64", func() { buf = ci.Append(buf[:0], 42) })
	check("uint32", func() { buf = cu.Append(buf[:0], 42) })
	check("float64", func() { buf = cf.Append(buf[:0], 4.2) })
	check("string", func() { buf = cs.Append(buf[:0], s) })
	check("[]byte", func() { buf = cb.Append(buf[:0], b) })
	check("bool", func() { buf = cbool.Append(buf[:0], true) })
	check("UserID", func() { buf = cid.Append(buf[:0], 42) })
	enc := ci.Append(nil, 42)
	if n := testing.AllocsPerRun(100, func() { _, _ = ci.Decode(enc) }); n != 0 {
		t.Errorf("int64 Decode allocates %v times", n)
	}
}

func TestBuiltinDecodeErrors(t *testing.T) {
	if _, err := MustCodecFor[int64]().Decode([]byte{1, 2, 3}); err == nil {
		t.Error("int64 from 3 bytes: no error")
	}
	if _, err := MustCodecFor[bool]().Decode([]byte{2}); err == nil {
		t.Error("bool from 0x02: no error")
	}
	if _, err := MustCodecFor[float32]().Decode(nil); err == nil {
		t.Error("float32 from nothing: no error")
	}
}

func TestFingerprints(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{MustCodecFor[int64]().Fingerprint(), "int64/be"},
		{MustCodecFor[UserID]().Fingerprint(), "int64/be"},
		{MustCodecFor[int]().Fingerprint(), "int64/be"}, // same bytes as int64
		{MustCodecFor[float64]().Fingerprint(), "float64/be-ordered"},
		{MustCodecFor[string]().Fingerprint(), "string/raw"},
	} {
		if tc.got != tc.want {
			t.Errorf("fingerprint %q, want %q", tc.got, tc.want)
		}
	}
	type A struct{ X, Y int }
	type B struct{ X, Y int } // same schema, other name: same encoding
	type C struct{ Y, X int } // other field order
	type D struct {
		X int
		Y int32 // same wire type (zig-zag varint) but other width
	}
	fa, fb, fc := MustCodecFor[A]().Fingerprint(), MustCodecFor[B]().Fingerprint(), MustCodecFor[C]().Fingerprint()
	if fa != fb {
		t.Errorf("same schema, different fingerprints %s %s", fa, fb)
	}
	if fa == fc {
		t.Errorf("reordered fields, same fingerprint %s", fa)
	}
	if !strings.HasPrefix(fa, "bin1/") || len(fa) != len("bin1/")+16 {
		t.Errorf("unexpected fingerprint format %q", fa)
	}
	_ = MustCodecFor[D]()
}

type Inner struct {
	Tags  []string
	Score float64
	When  time.Time
}

type Event struct {
	ID       int64
	User     UserID
	Name     string
	OK       bool
	Small    int8
	U16      uint16
	F32      float32
	C        complex128
	Payload  []byte
	Inner    Inner
	PInner   *Inner
	Nums     []int32
	Grid     [2][3]int
	Hash     [4]byte
	Attrs    map[string]int
	Nested   map[int64][]Inner
	Addr     netip.Addr // encoding.BinaryMarshaler
	Skipped  string     `weir:"-"`
	internal int
}

type Node struct {
	Val  int
	Next *Node
	Kids []Node
}

type Loop []Loop

func sampleEvent() Event {
	when := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	return Event{
		ID: -5, User: 77, Name: "name", OK: true, Small: -3, U16: 65535, F32: 1.25, C: complex(1, -2),
		Payload: []byte{1, 2, 3},
		Inner:   Inner{Tags: []string{"a", ""}, Score: -0.5, When: when},
		PInner:  &Inner{Tags: []string{}, When: when.In(time.FixedZone("X", 3600))},
		Nums:    []int32{math.MinInt32, 0, math.MaxInt32},
		Grid:    [2][3]int{{1, 2, 3}, {-4, -5, -6}},
		Hash:    [4]byte{0xde, 0xad, 0xbe, 0xef},
		Attrs:   map[string]int{"x": 1, "y": -2, "": 0},
		Nested:  map[int64][]Inner{-1: nil, 2: {{Score: 1}}},
		Addr:    netip.MustParseAddr("2001:db8::1"),
	}
}

func TestBinaryCodecRoundTrip(t *testing.T) {
	e := sampleEvent()
	c := MustCodecFor[Event]()
	got, err := c.Decode(c.Append(nil, e))
	if err != nil {
		t.Fatal(err)
	}
	// time.Time with a fixed zone comes back as an unnamed fixed zone.
	if !got.PInner.When.Equal(e.PInner.When) {
		t.Fatalf("time %v came back as %v", e.PInner.When, got.PInner.When)
	}
	if _, off := got.PInner.When.Zone(); off != 3600 {
		t.Fatalf("zone offset %d, want 3600", off)
	}
	got.PInner.When = e.PInner.When
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, e)
	}

	// Unexported and `weir:"-"` fields are not encoded.
	skipped, err := c.Decode(c.Append(nil, Event{ID: 1, internal: 5, Skipped: "x"}))
	if err != nil || skipped.ID != 1 || skipped.internal != 0 || skipped.Skipped != "" {
		t.Fatalf("skipped fields: %+v, %v", skipped, err)
	}

	roundTrip(t, Event{}) // zero value: nil slices, maps and pointers stay nil
	roundTrip(t, Event{Payload: []byte{}, Nums: []int32{}, Attrs: map[string]int{}})
	roundTrip(t, Node{Val: 1, Next: &Node{Val: 2, Next: &Node{Val: 3}}, Kids: []Node{{Val: 4}}})
	roundTrip(t, Loop{nil, Loop{}, Loop{Loop{}}})
	roundTrip(t, []string{"a", "b"}, nil, []string{})
	roundTrip(t, map[string][]int{"a": {1}, "b": nil})
	roundTrip(t, [3]float64{1, 2, 3})
	roundTrip(t, time.Time{}, time.Unix(-1e10, 5).UTC(), time.Unix(1e10, 999999999).UTC())
	roundTrip(t, struct{}{})
	roundTrip(t, struct{ A struct{} }{})
	p := 5
	roundTrip(t, &p, (*int)(nil))

	// Local times come back in Local.
	now := time.Now().Round(0) // strip the monotonic reading
	got2, err := MustCodecFor[time.Time]().Decode(MustCodecFor[time.Time]().Append(nil, now))
	if err != nil || !got2.Equal(now) || got2.Location() != time.Local {
		t.Fatalf("local time %v came back as %v (%v)", now, got2, err)
	}
}

// Equal maps encode to equal bytes whatever their iteration order.
func TestBinaryCodecMapDeterministic(t *testing.T) {
	c := MustCodecFor[map[string]int]()
	m := map[string]int{}
	for i := range 100 {
		m[strings.Repeat("k", i%7)+string(rune('a'+i%26))+string(rune('A'+i/26))] = i
	}
	first := c.Append(nil, m)
	for range 20 {
		if !bytes.Equal(first, c.Append(nil, m)) {
			t.Fatal("map encoding is not deterministic")
		}
	}
}

func TestBinaryCodecUnsupported(t *testing.T) {
	type WithChan struct {
		A int
		B struct{ C chan int }
	}
	type WithFunc struct{ F []func() }
	type WithIface struct {
		M map[string]any
	}
	type Unexported struct{ a, b int }
	_ = Unexported{a: 1, b: 2}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{codecErr[WithChan](), "chan int at statebackend.WithChan.B.C"},
		{codecErr[WithFunc](), "func() at statebackend.WithFunc.F[]"},
		{codecErr[WithIface](), "interface {} at statebackend.WithIface.M[value]"},
		{codecErr[Unexported](), "only unexported fields"},
		{codecErr[any](), "interface {} at interface {}"},
	} {
		if !errors.Is(tc.err, ErrUnsupportedType) || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("error %v, want ErrUnsupportedType mentioning %q", tc.err, tc.want)
		}
	}
}

func codecErr[T any]() error {
	_, err := CodecFor[T]()
	return err
}

// Every truncation or corruption of an encoding decodes to an error, never a
// panic, and never silently to a value with trailing garbage accepted.
func TestBinaryCodecCorruptInput(t *testing.T) {
	c := MustCodecFor[Event]()
	enc := c.Append(nil, sampleEvent())
	for i := range len(enc) {
		if _, err := c.Decode(enc[:i]); err == nil {
			t.Fatalf("decoding %d of %d bytes: no error", i, len(enc))
		}
	}
	if _, err := c.Decode(append(enc, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		bad := slices.Clone(enc)
		bad[r.IntN(len(bad))] = byte(r.Uint32())
		_, _ = c.Decode(bad) // must not panic
	}
	// A huge length prefix must not allocate a huge slice.
	if _, err := MustCodecFor[[]int64]().Decode([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}); err == nil {
		t.Fatal("absurd slice length accepted")
	}
}

func TestBinaryCodecAllocs(t *testing.T) {
	type Small struct {
		A int64
		B float64
		C bool
	}
	c := MustCodecFor[Small]()
	buf := make([]byte, 0, 64)
	v := Small{1, 2, true}
	n := testing.AllocsPerRun(100, func() { buf = c.Append(buf[:0], v) })
	t.Logf("binary codec Append of a flat struct: %v allocs", n)
	if n > 1 {
		t.Errorf("Append allocates %v times", n)
	}
}

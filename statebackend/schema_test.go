package statebackend

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// normJSON parses JSON with numbers kept exact, for comparison.
func normJSON(t *testing.T, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON %s: %v", data, err)
	}
	if dec.More() {
		t.Fatalf("trailing data after JSON %s", data)
	}
	return v
}

// decodeJSON decodes src with the schema of codec c.
func decodeJSON(c any, src []byte) ([]byte, error) {
	s, err := ParseSchema(SchemaOf(c))
	if err != nil {
		return nil, err
	}
	return s.AppendJSON(nil, src)
}

// roundTrip encodes v with CodecFor[T], decodes it with the schema and
// compares with want (encoding/json of v when want is nil).
func schemaRoundTrip[T any](t *testing.T, v T, want []byte) {
	t.Helper()
	c, err := CodecFor[T]()
	if err != nil {
		t.Fatal(err)
	}
	enc := c.Append(nil, v)
	got, err := decodeJSON(c, enc)
	if err != nil {
		t.Fatalf("%T %+v (schema %s): %v", v, v, SchemaOf(c), err)
	}
	if want == nil {
		if want, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(normJSON(t, got), normJSON(t, want)) {
		t.Errorf("%T (schema %s):\n got %s\nwant %s", v, SchemaOf(c), got, want)
	}
}

type accountID int64

type inner struct {
	A string
	B []int32
}

type blob struct{ data []byte }

func (b blob) MarshalBinary() ([]byte, error)     { return bytes.Clone(b.data), nil }
func (b *blob) UnmarshalBinary(data []byte) error { b.data = bytes.Clone(data); return nil }

// MarshalJSON is what the schema decoder writes for a BinaryMarshaler:
// its bytes in base64.
func (b blob) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.StdEncoding.EncodeToString(b.data))
}

type allKinds struct {
	I8      int8
	U8      uint8
	I16     int16
	I32     int32
	I64     int64
	I       int
	U       uint
	U16     uint16
	U32     uint32
	U64     uint64
	Uptr    uintptr
	F32     float32
	F64     float64
	S       string
	B       bool
	Bytes   []byte
	NilB    []byte
	Arr     [3]byte
	I8s     []int8
	I8a     [2]int8
	T       time.Time
	P       *int
	NilP    *string
	Strs    []string
	NilInts []int
	M       map[string]int
	MI      map[int]string
	MI8     map[int8]bool
	MU8     map[uint8]uint16
	NilM    map[string]int
	In      inner
	Ins     []inner
	PIn     *inner
	Blob    blob
	ID      accountID
	Deep    map[string][]map[int]*inner
}

type tree struct {
	Name   string
	Kids   []tree
	Next   *tree
	ByName map[string]*tree
}

type list struct {
	V    int
	Next *list
}

func TestSchemaRoundTripBuiltins(t *testing.T) {
	for _, v := range []int64{0, 1, -1, math.MaxInt64, math.MinInt64} {
		schemaRoundTrip(t, v, nil)
		schemaRoundTrip(t, int(v), nil)
		schemaRoundTrip(t, accountID(v), nil)
	}
	for _, v := range []int8{0, 1, -1, math.MaxInt8, math.MinInt8} {
		schemaRoundTrip(t, v, nil)
	}
	for _, v := range []int16{0, -300, math.MaxInt16, math.MinInt16} {
		schemaRoundTrip(t, v, nil)
	}
	for _, v := range []int32{0, -70000, math.MaxInt32, math.MinInt32} {
		schemaRoundTrip(t, v, nil)
	}
	for _, v := range []uint64{0, 1, math.MaxUint64} {
		schemaRoundTrip(t, v, nil)
		schemaRoundTrip(t, uint(v), nil)
		schemaRoundTrip(t, uint8(v), nil)
		schemaRoundTrip(t, uint16(v), nil)
		schemaRoundTrip(t, uint32(v), nil)
	}
	for _, v := range []float64{0, 1.5, -2.25, 1e-7, 1e21, -1e300, math.SmallestNonzeroFloat64, math.MaxFloat64, math.Copysign(0, -1)} {
		schemaRoundTrip(t, v, nil)
		if f := float32(v); !math.IsInf(float64(f), 0) {
			schemaRoundTrip(t, f, nil)
		}
	}
	schemaRoundTrip(t, math.NaN(), []byte(`"NaN"`))
	schemaRoundTrip(t, math.Inf(1), []byte(`"+Inf"`))
	schemaRoundTrip(t, float32(math.Inf(-1)), []byte(`"-Inf"`))
	schemaRoundTrip(t, true, nil)
	schemaRoundTrip(t, false, nil)
	for _, s := range []string{"", "hello", "ünïcödé ✓", "quote \" back \\ nl \n tab \t ctl \x01", "<html>&", "bad \xff utf8 \xc3", "sep \u2028 \u2029"} {
		schemaRoundTrip(t, s, nil)
		schemaRoundTrip(t, []byte(s), nil)
	}
	schemaRoundTrip(t, []byte{}, []byte(`""`))
}

func TestSchemaRoundTripBinary(t *testing.T) {
	one := 1
	v := allKinds{
		I8: -5, U8: 250, I16: -30000, I32: math.MinInt32, I64: math.MaxInt64, I: -1, U: math.MaxUint64 >> 1,
		U16: 65535, U32: 1 << 31, U64: math.MaxUint64, Uptr: 42, F32: -1.25, F64: 3.141592653589793,
		S: "weir \"stream\" ✓", B: true, Bytes: []byte{0, 1, 2, 255}, Arr: [3]byte{7, 8, 9},
		I8s: []int8{-128, 0, 127}, I8a: [2]int8{-1, 1},
		T: time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.UTC), P: &one,
		Strs: []string{"a", "", "c"}, M: map[string]int{"x": 1, "y": -2}, MI: map[int]string{-3: "m3", 10: "ten"},
		MI8: map[int8]bool{-1: true, 2: false}, MU8: map[uint8]uint16{200: 65535},
		In: inner{A: "in", B: []int32{1, -2}}, Ins: []inner{{A: "x"}, {B: []int32{}}}, PIn: &inner{A: "p"},
		Blob: blob{data: []byte("opaque")}, ID: 99,
		Deep: map[string][]map[int]*inner{"k": {{1: {A: "d"}, 2: nil}, nil}},
	}
	schemaRoundTrip(t, v, nil)
	schemaRoundTrip(t, allKinds{}, nil)
	schemaRoundTrip(t, &v, nil)
	schemaRoundTrip(t, []allKinds{v, {}}, nil)
	schemaRoundTrip(t, map[string]allKinds{"a": v}, nil)
	schemaRoundTrip(t, [2]inner{{A: "0"}, {A: "1"}}, nil)
	schemaRoundTrip(t, []*int{nil, &one}, nil)
	schemaRoundTrip(t, []int8(nil), nil)
	schemaRoundTrip(t, []string(nil), nil)
	schemaRoundTrip(t, map[string]int(nil), nil)
	schemaRoundTrip(t, map[accountID]string{1: "one"}, nil)

	// Times: zone names are not stored, RFC 3339 shows offsets only.
	for _, tm := range []time.Time{
		{},
		time.Date(1969, 12, 31, 23, 59, 59, 1, time.UTC),
		time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600)),
		time.Date(2030, 1, 2, 3, 4, 5, 600, time.FixedZone("", -(5*3600+30*60))),
		time.Date(2030, 6, 1, 0, 0, 0, 0, time.Local),
		time.Unix(1700000000, 5).In(time.FixedZone("UTC", 0)),
	} {
		schemaRoundTrip(t, tm, nil)
		schemaRoundTrip(t, struct{ At *time.Time }{&tm}, nil)
	}

	// Recursive types.
	tr := tree{Name: "root", Kids: []tree{{Name: "a", Kids: []tree{{Name: "a1"}}}, {Name: "b", Next: &tree{Name: "n"}}},
		ByName: map[string]*tree{"x": {Name: "x", ByName: map[string]*tree{"y": nil}}}}
	schemaRoundTrip(t, tr, nil)
	schemaRoundTrip(t, []tree{tr, {}}, nil)
	schemaRoundTrip(t, &list{1, &list{2, &list{3, nil}}}, nil)

	// Not expressible in encoding/json: maps without string or integer
	// keys (pairs), complex numbers ([re, im]), non-finite floats.
	schemaRoundTrip(t, map[float64]string{-1.5: "neg", 2: "two"}, []byte(`[[2,"two"],[-1.5,"neg"]]`)) // in stored order
	schemaRoundTrip(t, map[bool]int{true: 1}, []byte(`[[true,1]]`))
	type point struct{ X, Y int }
	schemaRoundTrip(t, map[point]int{{1, -2}: 1}, []byte(`[[{"X":1,"Y":-2},1]]`))
	schemaRoundTrip(t, struct{ C64 complex64 }{complex(1, -2)}, []byte(`{"C64":[1,-2]}`))
	schemaRoundTrip(t, []complex128{complex(0.5, math.Inf(1))}, []byte(`[[0.5,"+Inf"]]`))
	schemaRoundTrip(t, []float64{math.NaN(), math.Inf(-1)}, []byte(`["NaN","-Inf"]`))
	schemaRoundTrip(t, blob{data: []byte{1, 2, 3}}, nil)
	schemaRoundTrip(t, struct {
		Skip int `weir:"-"`
		Keep int
	}{1, 2}, []byte(`{"Keep":2}`))
}

func TestSchemaStrings(t *testing.T) {
	for _, c := range []struct {
		codec any
		want  string
	}{
		{MustCodecFor[int64](), "int64/be"},
		{MustCodecFor[int](), "int64/be"},
		{MustCodecFor[uint16](), "uint16/be"},
		{MustCodecFor[float32](), "float32/be-ordered"},
		{MustCodecFor[string](), "string/raw"},
		{MustCodecFor[[]byte](), "bytes/raw"},
		{MustCodecFor[bool](), "bool/1"},
		{MustCodecFor[inner](), "bin1:struct{A:str;B:[]zz;}"},
		{MustCodecFor[[]int8](), "bin1:[]i8"},
		{MustCodecFor[[4]uint8](), "bin1:[4]byte"},
		{MustCodecFor[list](), "bin1:struct{V:zz;Next:*@0;}"},
		{MustCodecFor[map[string]*list](), "bin1:map[str]*struct{V:zz;Next:@1;}"},
		{MustCodecFor[blob](), "bin1:bin(statebackend.blob)"},
		{struct{}{}, ""},
	} {
		if got := SchemaOf(c.codec); got != c.want {
			t.Errorf("SchemaOf(%T) = %q, want %q", c.codec, got, c.want)
		}
	}
	// The schema refines desc without changing the fingerprint: int8 and
	// uint8 share "byte" in desc.
	if a, b := MustCodecFor[struct{ A int8 }](), MustCodecFor[struct{ A uint8 }](); a.Fingerprint() != b.Fingerprint() {
		t.Fatalf("int8 and uint8 fields have fingerprints %s and %s: the schema changed the fingerprint of checkpoints written before it", a.Fingerprint(), b.Fingerprint())
	}
	tc, err := compileType(reflect.TypeFor[struct{ A int8 }]())
	if err != nil {
		t.Fatal(err)
	}
	if tc.desc != "struct{A:byte;}" || tc.schema != "struct{A:i8;}" {
		t.Fatalf("desc %q, schema %q", tc.desc, tc.schema)
	}
}

func TestSchemaWindowKey(t *testing.T) {
	for _, c := range []struct {
		schema string
		key    []byte
		want   string
	}{
		{"window(string/raw)", []byte("user"), `{"key":"user","window_end":-1}`},
		{"window(int64/be)", MustCodecFor[int64]().Append(nil, -7), `{"key":-7,"window_end":-1}`},
		{"window(bin1:struct{A:str;B:[]zz;})", MustCodecFor[inner]().Append(nil, inner{A: "a"}), `{"key":{"A":"a","B":null},"window_end":-1}`},
	} {
		s, err := ParseSchema(c.schema)
		if err != nil {
			t.Fatal(err)
		}
		src := binary.BigEndian.AppendUint64(bytes.Clone(c.key), math.MaxUint64)
		got, err := s.AppendJSON(nil, src)
		if err != nil || string(got) != c.want {
			t.Errorf("%s: %s, %v; want %s", c.schema, got, err, c.want)
		}
		if _, err := s.AppendJSON(nil, src[:7]); err == nil {
			t.Errorf("%s: 7 bytes decoded", c.schema)
		}
	}
}

func TestParseSchemaErrors(t *testing.T) {
	if _, err := ParseSchema(""); !errors.Is(err, ErrNoSchema) {
		t.Errorf("empty schema: %v", err)
	}
	for _, s := range []string{
		"int128/be", "bin1:", "bin1:struct{", "bin1:struct{A:zz}", "bin1:struct{:zz;}", "bin1:[x]zz", "bin1:[3", "bin1:map[str",
		"bin1:map[str]", "bin1:@0", "bin1:*@1", "bin1:bin(x", "bin1:zzz", "bin1:strx", "bin1:[]", "window(", "window()", "window(bin1:q)",
		"bin1:" + strings.Repeat("*", maxSchemaDepth+2) + "zz",
	} {
		if _, err := ParseSchema(s); err == nil {
			t.Errorf("ParseSchema(%q) succeeded", s)
		}
	}
}

// TestSchemaMalformed feeds truncated and mutated encodings: the decoder
// never panics, names the offset, and whenever the Go codec decodes the
// bytes, it decodes them too, to the same JSON.
func TestSchemaMalformed(t *testing.T) {
	one := 1
	tr := tree{Name: "root", Kids: []tree{{Name: "a"}}, Next: &tree{Name: "n"}, ByName: map[string]*tree{"x": {Name: "x"}}}
	checkMalformed(t, allKinds{I8: -3, S: "s", Bytes: []byte{1}, T: time.Unix(5, 6).UTC(), P: &one, M: map[string]int{"a": 1, "b": 2},
		MI: map[int]string{1: "x"}, Ins: []inner{{A: "i", B: []int32{5}}}, Blob: blob{data: []byte("b")}})
	checkMalformed(t, tr)
	checkMalformed(t, []string{"a", "bc", ""})
	checkMalformed(t, map[int][]float64{1: {1.5}, -2: nil})
	checkMalformed(t, &list{1, &list{2, nil}})
	checkMalformed(t, int64(-5))
	checkMalformed(t, int16(300))
	checkMalformed(t, float32(2.5))
	checkMalformed(t, true)
	checkMalformed(t, "raw string")
}

func checkMalformed[T any](t *testing.T, v T) {
	t.Helper()
	c := MustCodecFor[T]()
	s, err := ParseSchema(SchemaOf(c))
	if err != nil {
		t.Fatal(err)
	}
	valid := c.Append(nil, v)
	_, builtin := builtinSchemas[s.String()]
	try := func(src []byte) {
		t.Helper()
		got, err := func() (got []byte, err error) {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("%T: schema decoder panicked on %x: %v", v, src, r)
				}
			}()
			return s.AppendJSON(nil, src)
		}()
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Offset < 0 || de.Offset > len(src) || !strings.Contains(err.Error(), fmt.Sprintf("at offset %d", de.Offset)) {
				t.Fatalf("%T: error %v for %x does not name an offset in the input", v, err, src)
			}
		}
		gv, gerr := c.Decode(src)
		if gerr != nil {
			return
		}
		want, jerr := json.Marshal(gv)
		if jerr != nil {
			return // not expressible in encoding/json (NaN, odd years)
		}
		if err != nil {
			t.Fatalf("%T: Go codec decodes %x, schema decoder fails: %v", v, src, err)
		}
		if !reflect.DeepEqual(normJSON(t, got), normJSON(t, want)) {
			t.Fatalf("%T: %x decodes as %s, Go codec as %s", v, src, got, want)
		}
	}
	for n := 0; n < len(valid); n++ {
		try(valid[:n])
		if !builtin {
			if _, err := s.AppendJSON(nil, valid[:n]); err == nil {
				t.Fatalf("%T: truncation to %d of %d bytes decoded", v, n, len(valid))
			}
		}
	}
	try(append(bytes.Clone(valid), 0))
	rng := rand.New(rand.NewPCG(1, uint64(len(valid))))
	for range 3000 {
		src := bytes.Clone(valid)
		for range 1 + rng.IntN(3) {
			switch op := rng.IntN(4); {
			case op == 0 && len(src) > 0:
				src[rng.IntN(len(src))] = byte(rng.Uint32())
			case op == 1 && len(src) > 0:
				src[rng.IntN(len(src))] ^= 1 << rng.IntN(8)
			case op == 2:
				i := rng.IntN(len(src) + 1)
				src = append(src[:i], append([]byte{byte(rng.Uint32())}, src[i:]...)...)
			case len(src) > 0:
				i := rng.IntN(len(src))
				src = append(src[:i], src[i+1:]...)
			}
		}
		try(src)
	}
	for range 500 {
		src := make([]byte, rng.IntN(40))
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		try(src)
	}
}

// TestSchemaHostile checks that schemas the Go compiler cannot produce (a
// type that contains itself without consuming input) fail instead of
// recursing without end.
func TestSchemaHostile(t *testing.T) {
	s, err := ParseSchema("bin1:[2]@0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendJSON(nil, nil); err == nil || !strings.Contains(err.Error(), "nested") {
		t.Fatalf("self-containing array: %v", err)
	}
	s, err = ParseSchema("bin1:[]struct{}")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendJSON(nil, binary.AppendUvarint(nil, 1<<40)); err == nil {
		t.Fatal("2^40 empty structs decoded")
	}
}

func TestStateInfoSchemas(t *testing.T) {
	b, err := Open(t.TempDir(), Options{KeySchema: "string/raw"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := NewMap(b, "m", MustCodecFor[string](), MustCodecFor[inner]()); err != nil {
		t.Fatal(err)
	}
	if _, err := NewList(b, "l", MustCodecFor[int32]()); err != nil {
		t.Fatal(err)
	}
	if _, err := NewTimers(b, "timers"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetCurrentKeySchema("timers", "window(string/raw)"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetCurrentKeySchema("nope", "x"); err == nil {
		t.Fatal("schema of an unregistered state set")
	}
	got := map[string][3]string{}
	for _, si := range b.States() {
		got[si.Name] = [3]string{si.KeySchema, si.ValueSchema, si.CurrentKeySchema}
	}
	want := map[string][3]string{
		"m":      {"string/raw", "bin1:struct{A:str;B:[]zz;}", ""},
		"l":      {"", "int32/be", ""},
		"timers": {"", "", "window(string/raw)"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("schemas %v, want %v", got, want)
	}
	b.SetCurrentKey(0, []byte("k"))
	snap, err := b.Snapshot(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() + "/chk"
	if _, err := snap.Persist(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(snap); err != nil {
		t.Fatal(err)
	}
	info, err := ReadSnapshotInfo(nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.KeySchema != "string/raw" || len(info.States) != 3 || info.States[1].ValueSchema != "bin1:struct{A:str;B:[]zz;}" {
		t.Fatalf("snapshot info %+v", info)
	}
}

// TestReadSnapshotInfoWithoutSchemas reads a WEIR-SNAPSHOT written before
// schemas were recorded: the schema fields are empty.
func TestReadSnapshotInfoWithoutSchemas(t *testing.T) {
	dir := t.TempDir()
	old := `{"version": 2, "checkpoint": 7, "max_parallelism": 128, "key_groups": {"Start": 0, "End": 63},
	"states": [{"Name": "op/n", "ID": 1234, "Kind": 1, "KeyFingerprint": "", "ValueFingerprint": "int64/be"}]}`
	if err := os.WriteFile(dir+"/"+SnapshotMetaFile, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := ReadSnapshotInfo(nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []StateInfo{{Name: "op/n", ID: 1234, Kind: KindValue, ValueFingerprint: "int64/be"}}
	if info.Checkpoint != 7 || info.KeySchema != "" || !reflect.DeepEqual(info.States, want) {
		t.Fatalf("%+v", info)
	}
}

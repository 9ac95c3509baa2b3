package statebackend

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// The general binary codec. A type is compiled once (by reflection) into a
// tree of encode/decode functions that work on unsafe pointers to the value,
// so encoding touches no reflect.Value on the hot path except for maps.
//
// Wire format (no field names, no type information; the fingerprint guards
// compatibility):
//
//	bool                 1 byte, 0 or 1
//	int8, uint8          1 byte
//	other ints           zig-zag varint (signed), uvarint (unsigned)
//	float32, float64     4 / 8 bytes, IEEE 754 bits, little endian
//	complex64/128        real then imaginary part as floats
//	string               uvarint length, bytes
//	slice, map           uvarint 0 for nil, else length+1, then the elements
//	                     (map entries sorted by encoded key: deterministic)
//	[]byte               uvarint 0 for nil, else length+1, then the bytes
//	array                the elements
//	pointer              0 for nil, else 1 and the element
//	struct               the exported fields in declaration order
//	time.Time            zig-zag varint Unix seconds, uvarint nanoseconds, zone
//	                     byte: 0 UTC, 1 Local, 2 fixed offset + zig-zag varint
//	                     seconds east of UTC (zone names are not kept)
//	BinaryMarshaler      uvarint length, MarshalBinary/AppendBinary bytes

type encFunc func(dst []byte, p unsafe.Pointer) []byte
type decFunc func(src []byte, p unsafe.Pointer) ([]byte, error)

// typeCodec is the compiled codec of one Go type. enc and dec are set once
// compilation finishes; recursive types reach them through the pointer.
type typeCodec struct {
	typ  reflect.Type
	enc  encFunc
	dec  decFunc
	desc string // canonical schema, the input of the fingerprint
	// schema is desc with int8 told from uint8 ("i8" where desc has
	// "byte"): what DecodeJSON reads. desc cannot change (it would change
	// every fingerprint), so the two are kept side by side.
	schema  string
	minSize int // minimal encoded size, to reject absurd lengths
	fp      string
}

var compiled sync.Map // reflect.Type -> *typeCodec

func compileType(t reflect.Type) (*typeCodec, error) {
	if tc, ok := compiled.Load(t); ok {
		return tc.(*typeCodec), nil
	}
	c := compiler{inProgress: map[reflect.Type]int{}}
	tc, err := c.compile(t, t.String())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(tc.desc))
	tc.fp = "bin1/" + hex.EncodeToString(sum[:8])
	actual, _ := compiled.LoadOrStore(t, tc)
	return actual.(*typeCodec), nil
}

type compiler struct {
	// inProgress maps struct types being compiled to their position on the
	// stack, so a recursive reference compiles to a back-reference.
	inProgress map[reflect.Type]int
	stack      []*typeCodec
}

var (
	timeType             = reflect.TypeFor[time.Time]()
	binaryMarshalerType  = reflect.TypeFor[encoding.BinaryMarshaler]()
	binaryUnmarshalerTyp = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	binaryAppenderType   = reflect.TypeFor[encoding.BinaryAppender]()
)

func unsupported(t reflect.Type, path string) error {
	return fmt.Errorf("%w %s at %s", ErrUnsupportedType, t, path)
}

func (c *compiler) compile(t reflect.Type, path string) (*typeCodec, error) {
	if i, ok := c.inProgress[t]; ok {
		// Recursive type: bind late through the pointer.
		tc := c.stack[i]
		return &typeCodec{
			typ:    t,
			enc:    func(dst []byte, p unsafe.Pointer) []byte { return tc.enc(dst, p) },
			dec:    func(src []byte, p unsafe.Pointer) ([]byte, error) { return tc.dec(src, p) },
			desc:   "@" + strconv.Itoa(i),
			schema: "@" + strconv.Itoa(i),
		}, nil
	}
	if t == timeType {
		return &typeCodec{typ: t, enc: encTime, dec: decTime, desc: "time", schema: "time", minSize: 3}, nil
	}
	pt := reflect.PointerTo(t)
	if t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface &&
		pt.Implements(binaryMarshalerType) && pt.Implements(binaryUnmarshalerTyp) {
		return compileMarshaler(t), nil
	}
	var compose func(reflect.Type, string) (*typeCodec, error)
	switch t.Kind() {
	case reflect.Bool:
		return &typeCodec{typ: t, enc: encBool, dec: decBool, desc: "bool", schema: "bool", minSize: 1}, nil
	case reflect.Int8:
		return &typeCodec{typ: t, enc: encByte, dec: decByte, desc: "byte", schema: "i8", minSize: 1}, nil
	case reflect.Uint8:
		return &typeCodec{typ: t, enc: encByte, dec: decByte, desc: "byte", schema: "byte", minSize: 1}, nil
	case reflect.Int, reflect.Int16, reflect.Int32, reflect.Int64:
		enc, dec := varintFuncs(t.Kind())
		return &typeCodec{typ: t, enc: enc, dec: dec, desc: "zz", schema: "zz", minSize: 1}, nil
	case reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		enc, dec := uvarintFuncs(t.Kind())
		return &typeCodec{typ: t, enc: enc, dec: dec, desc: "uv", schema: "uv", minSize: 1}, nil
	case reflect.Float32:
		return &typeCodec{typ: t, enc: encF32, dec: decF32, desc: "f32", schema: "f32", minSize: 4}, nil
	case reflect.Float64:
		return &typeCodec{typ: t, enc: encF64, dec: decF64, desc: "f64", schema: "f64", minSize: 8}, nil
	case reflect.Complex64:
		return &typeCodec{typ: t, enc: encC64, dec: decC64, desc: "c64", schema: "c64", minSize: 8}, nil
	case reflect.Complex128:
		return &typeCodec{typ: t, enc: encC128, dec: decC128, desc: "c128", schema: "c128", minSize: 16}, nil
	case reflect.String:
		return &typeCodec{typ: t, enc: encString, dec: decString, desc: "str", schema: "str", minSize: 1}, nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return &typeCodec{typ: t, enc: encBytes, dec: decBytes, desc: "bytes", schema: "bytes", minSize: 1}, nil
		}
		compose = c.compileSlice
	case reflect.Array:
		compose = c.compileArray
	case reflect.Map:
		compose = c.compileMap
	case reflect.Pointer:
		compose = c.compilePointer
	case reflect.Struct:
		compose = c.compileStruct
	default: // Chan, Func, Interface, UnsafePointer
		return nil, unsupported(t, path)
	}
	// Composite types may refer to themselves: register a placeholder that
	// recursive references bind to, then fill it in.
	tc := &typeCodec{typ: t}
	c.inProgress[t] = len(c.stack)
	c.stack = append(c.stack, tc)
	built, err := compose(t, path)
	delete(c.inProgress, t)
	c.stack = c.stack[:len(c.stack)-1]
	if err != nil {
		return nil, err
	}
	*tc = *built
	return tc, nil
}

func (c *compiler) compileStruct(t reflect.Type, path string) (*typeCodec, error) {
	tc := &typeCodec{typ: t}
	type field struct {
		off uintptr
		tc  *typeCodec
	}
	var fields []field
	var desc, schema strings.Builder
	desc.WriteString("struct{")
	schema.WriteString("struct{")
	unexported := 0
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			unexported++
			continue
		}
		if f.Tag.Get("weir") == "-" {
			continue
		}
		ftc, err := c.compile(f.Type, path+"."+f.Name)
		if err != nil {
			return nil, err
		}
		fields = append(fields, field{off: f.Offset, tc: ftc})
		tc.minSize += ftc.minSize
		fmt.Fprintf(&desc, "%s:%s;", f.Name, ftc.desc)
		fmt.Fprintf(&schema, "%s:%s;", f.Name, ftc.schema)
	}
	desc.WriteString("}")
	schema.WriteString("}")
	if len(fields) == 0 && unexported > 0 {
		return nil, fmt.Errorf("%w %s at %s: struct has only unexported fields (they would be lost)", ErrUnsupportedType, t, path)
	}
	tc.desc = desc.String()
	tc.schema = schema.String()
	tc.enc = func(dst []byte, p unsafe.Pointer) []byte {
		for i := range fields {
			dst = fields[i].tc.enc(dst, unsafe.Add(p, fields[i].off))
		}
		return dst
	}
	tc.dec = func(src []byte, p unsafe.Pointer) ([]byte, error) {
		var err error
		for i := range fields {
			if src, err = fields[i].tc.dec(src, unsafe.Add(p, fields[i].off)); err != nil {
				return nil, err
			}
		}
		return src, nil
	}
	return tc, nil
}

// sliceHeader is the memory layout of every Go slice.
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

func (c *compiler) compileSlice(t reflect.Type, path string) (*typeCodec, error) {
	et := t.Elem()
	etc, err := c.compile(et, path+"[]")
	if err != nil {
		return nil, err
	}
	size := et.Size()
	tc := &typeCodec{typ: t, desc: "[]" + etc.desc, schema: "[]" + etc.schema, minSize: 1}
	tc.enc = func(dst []byte, p unsafe.Pointer) []byte {
		s := (*sliceHeader)(p)
		if s.data == nil {
			return append(dst, 0)
		}
		dst = binary.AppendUvarint(dst, uint64(s.len)+1)
		for i := 0; i < s.len; i++ {
			dst = etc.enc(dst, unsafe.Add(s.data, uintptr(i)*size))
		}
		return dst
	}
	tc.dec = func(src []byte, p unsafe.Pointer) ([]byte, error) {
		n, src, err := decLen(src, etc.minSize, t)
		if err != nil || n < 0 {
			*(*sliceHeader)(p) = sliceHeader{}
			return src, err
		}
		v := reflect.MakeSlice(t, n, n)
		data := v.UnsafePointer()
		for i := 0; i < n; i++ {
			if src, err = etc.dec(src, unsafe.Add(data, uintptr(i)*size)); err != nil {
				return nil, err
			}
		}
		*(*sliceHeader)(p) = sliceHeader{data: data, len: n, cap: n}
		return src, nil
	}
	return tc, nil
}

func (c *compiler) compileArray(t reflect.Type, path string) (*typeCodec, error) {
	et := t.Elem()
	n := t.Len()
	if et.Kind() == reflect.Uint8 {
		tc := &typeCodec{typ: t, desc: fmt.Sprintf("[%d]byte", n), schema: fmt.Sprintf("[%d]byte", n), minSize: n}
		tc.enc = func(dst []byte, p unsafe.Pointer) []byte {
			return append(dst, unsafe.Slice((*byte)(p), n)...)
		}
		tc.dec = func(src []byte, p unsafe.Pointer) ([]byte, error) {
			if len(src) < n {
				return nil, errShort(t)
			}
			copy(unsafe.Slice((*byte)(p), n), src)
			return src[n:], nil
		}
		return tc, nil
	}
	etc, err := c.compile(et, path+"[]")
	if err != nil {
		return nil, err
	}
	size := et.Size()
	tc := &typeCodec{typ: t, desc: fmt.Sprintf("[%d]%s", n, etc.desc), schema: fmt.Sprintf("[%d]%s", n, etc.schema), minSize: n * etc.minSize}
	tc.enc = func(dst []byte, p unsafe.Pointer) []byte {
		for i := 0; i < n; i++ {
			dst = etc.enc(dst, unsafe.Add(p, uintptr(i)*size))
		}
		return dst
	}
	tc.dec = func(src []byte, p unsafe.Pointer) ([]byte, error) {
		var err error
		for i := 0; i < n; i++ {
			if src, err = etc.dec(src, unsafe.Add(p, uintptr(i)*size)); err != nil {
				return nil, err
			}
		}
		return src, nil
	}
	return tc, nil
}

type mapScratch struct {
	buf  []byte
	ents [][3]int // key start, key end (= value start), value end in buf
}

var mapScratchPool = sync.Pool{New: func() any { return new(mapScratch) }}

func (c *compiler) compileMap(t reflect.Type, path string) (*typeCodec, error) {
	kt, vt := t.Key(), t.Elem()
	ktc, err := c.compile(kt, path+"[key]")
	if err != nil {
		return nil, err
	}
	vtc, err := c.compile(vt, path+"[value]")
	if err != nil {
		return nil, err
	}
	tc := &typeCodec{typ: t, desc: "map[" + ktc.desc + "]" + vtc.desc, schema: "map[" + ktc.schema + "]" + vtc.schema, minSize: 1}
	tc.enc = func(dst []byte, p unsafe.Pointer) []byte {
		m := reflect.NewAt(t, p).Elem()
		if m.IsNil() {
			return append(dst, 0)
		}
		n := m.Len()
		dst = binary.AppendUvarint(dst, uint64(n)+1)
		if n == 0 {
			return dst
		}
		// Encode the entries into scratch, then emit them sorted by
		// encoded key so equal maps have equal encodings.
		s := mapScratchPool.Get().(*mapScratch)
		s.buf, s.ents = s.buf[:0], s.ents[:0]
		k, v := reflect.New(kt).Elem(), reflect.New(vt).Elem()
		kp, vp := k.Addr().UnsafePointer(), v.Addr().UnsafePointer()
		for it := m.MapRange(); it.Next(); {
			k.SetIterKey(it)
			v.SetIterValue(it)
			start := len(s.buf)
			s.buf = ktc.enc(s.buf, kp)
			mid := len(s.buf)
			s.buf = vtc.enc(s.buf, vp)
			s.ents = append(s.ents, [3]int{start, mid, len(s.buf)})
		}
		slices.SortFunc(s.ents, func(a, b [3]int) int {
			return bytes.Compare(s.buf[a[0]:a[1]], s.buf[b[0]:b[1]])
		})
		for _, e := range s.ents {
			dst = append(dst, s.buf[e[0]:e[2]]...)
		}
		if cap(s.buf) <= 64<<10 {
			mapScratchPool.Put(s)
		}
		return dst
	}
	tc.dec = func(src []byte, p unsafe.Pointer) ([]byte, error) {
		n, src, err := decLen(src, ktc.minSize+vtc.minSize, t)
		mv := reflect.NewAt(t, p).Elem()
		if err != nil || n < 0 {
			mv.SetZero()
			return src, err
		}
		m := reflect.MakeMapWithSize(t, n)
		k, v := reflect.New(kt).Elem(), reflect.New(vt).Elem()
		kp, vp := k.Addr().UnsafePointer(), v.Addr().UnsafePointer()
		for i := 0; i < n; i++ {
			if src, err = ktc.dec(src, kp); err != nil {
				return nil, err
			}
			if src, err = vtc.dec(src, vp); err != nil {
				return nil, err
			}
			m.SetMapIndex(k, v)
		}
		mv.Set(m)
		return src, nil
	}
	return tc, nil
}

func (c *compiler) compilePointer(t reflect.Type, path string) (*typeCodec, error) {
	et := t.Elem()
	etc, err := c.compile(et, path)
	if err != nil {
		return nil, err
	}
	tc := &typeCodec{typ: t, desc: "*" + etc.desc, schema: "*" + etc.schema, minSize: 1}
	tc.enc = func(dst []byte, p unsafe.Pointer) []byte {
		q := *(*unsafe.Pointer)(p)
		if q == nil {
			return append(dst, 0)
		}
		return etc.enc(append(dst, 1), q)
	}
	tc.dec = func(src []byte, p unsafe.Pointer) ([]byte, error) {
		if len(src) == 0 {
			return nil, errShort(t)
		}
		switch src[0] {
		case 0:
			*(*unsafe.Pointer)(p) = nil
			return src[1:], nil
		case 1:
			q := reflect.New(et).UnsafePointer()
			src, err := etc.dec(src[1:], q)
			if err != nil {
				return nil, err
			}
			*(*unsafe.Pointer)(p) = q
			return src, nil
		default:
			return nil, fmt.Errorf("statebackend: decode %s: invalid pointer tag %d", t, src[0])
		}
	}
	return tc, nil
}

func compileMarshaler(t reflect.Type) *typeCodec {
	appender := reflect.PointerTo(t).Implements(binaryAppenderType)
	tc := &typeCodec{typ: t, desc: "bin(" + t.String() + ")", schema: "bin(" + t.String() + ")", minSize: 1}
	tc.enc = func(dst []byte, p unsafe.Pointer) []byte {
		v := reflect.NewAt(t, p).Interface()
		if appender {
			// Append the body, then insert its length in front.
			start := len(dst)
			body, err := v.(encoding.BinaryAppender).AppendBinary(dst)
			if err != nil {
				panic(fmt.Errorf("statebackend: encode %s: %w", t, err))
			}
			n := len(body) - start
			var lenBuf [binary.MaxVarintLen64]byte
			l := binary.PutUvarint(lenBuf[:], uint64(n))
			body = append(body, lenBuf[:l]...)
			copy(body[start+l:], body[start:start+n])
			copy(body[start:], lenBuf[:l])
			return body
		}
		b, err := v.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			panic(fmt.Errorf("statebackend: encode %s: %w", t, err))
		}
		dst = binary.AppendUvarint(dst, uint64(len(b)))
		return append(dst, b...)
	}
	tc.dec = func(src []byte, p unsafe.Pointer) ([]byte, error) {
		n, k := binary.Uvarint(src)
		if k <= 0 || n > uint64(len(src)-k) {
			return nil, errShort(t)
		}
		b := bytes.Clone(src[k : k+int(n)])
		if err := reflect.NewAt(t, p).Interface().(encoding.BinaryUnmarshaler).UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("statebackend: decode %s: %w", t, err)
		}
		return src[k+int(n):], nil
	}
	return tc
}

func errShort(t reflect.Type) error {
	return fmt.Errorf("statebackend: decode %s: %w", t, errTruncated)
}

var errTruncated = errors.New("truncated input")

// decLen reads the length prefix of a nil-able collection: -1 for nil.
func decLen(src []byte, elemMin int, t reflect.Type) (int, []byte, error) {
	n, rest, err := readLen(src, elemMin)
	switch {
	case err == errLenShort:
		return 0, nil, errShort(t)
	case err != nil:
		return 0, nil, fmt.Errorf("statebackend: decode %s: %w", t, err)
	}
	return n, rest, nil
}

var errLenShort = errors.New("invalid or truncated length")

// readLen reads the length prefix of a slice, map or []byte: -1 for nil,
// else the count, which must fit the rest of src at elemMin bytes an
// element (the JSON decoder of schema.go reads the same format).
func readLen(src []byte, elemMin int) (int, []byte, error) {
	x, k := binary.Uvarint(src)
	if k <= 0 {
		return 0, nil, errLenShort
	}
	src = src[k:]
	if x == 0 {
		return -1, src, nil
	}
	n := x - 1
	limit := uint64(len(src))
	if elemMin > 0 {
		limit /= uint64(elemMin)
	} else {
		limit = 1 << 24 // zero-size elements: cap the count anyway
	}
	if n > limit {
		return 0, nil, fmt.Errorf("length %d exceeds the input", n)
	}
	return int(n), src, nil
}

func encBool(dst []byte, p unsafe.Pointer) []byte {
	if *(*bool)(p) {
		return append(dst, 1)
	}
	return append(dst, 0)
}

func decBool(src []byte, p unsafe.Pointer) ([]byte, error) {
	if len(src) == 0 || src[0] > 1 {
		return nil, errors.New("statebackend: decode bool: invalid or truncated")
	}
	*(*bool)(p) = src[0] == 1
	return src[1:], nil
}

func encByte(dst []byte, p unsafe.Pointer) []byte { return append(dst, *(*byte)(p)) }

func decByte(src []byte, p unsafe.Pointer) ([]byte, error) {
	if len(src) == 0 {
		return nil, errors.New("statebackend: decode byte: truncated")
	}
	*(*byte)(p) = src[0]
	return src[1:], nil
}

func varintFuncs(k reflect.Kind) (encFunc, decFunc) {
	var load func(unsafe.Pointer) int64
	var store func(unsafe.Pointer, int64) bool
	switch k {
	case reflect.Int:
		load = func(p unsafe.Pointer) int64 { return int64(*(*int)(p)) }
		store = func(p unsafe.Pointer, x int64) bool { *(*int)(p) = int(x); return int64(int(x)) == x }
	case reflect.Int16:
		load = func(p unsafe.Pointer) int64 { return int64(*(*int16)(p)) }
		store = func(p unsafe.Pointer, x int64) bool { *(*int16)(p) = int16(x); return int64(int16(x)) == x }
	case reflect.Int32:
		load = func(p unsafe.Pointer) int64 { return int64(*(*int32)(p)) }
		store = func(p unsafe.Pointer, x int64) bool { *(*int32)(p) = int32(x); return int64(int32(x)) == x }
	default:
		return encInt64, decInt64
	}
	enc := func(dst []byte, p unsafe.Pointer) []byte { return binary.AppendVarint(dst, load(p)) }
	dec := func(src []byte, p unsafe.Pointer) ([]byte, error) {
		x, n := binary.Varint(src)
		if n <= 0 {
			return nil, errors.New("statebackend: decode varint: invalid or truncated")
		}
		if !store(p, x) {
			return nil, fmt.Errorf("statebackend: decode %s: %d overflows", k, x)
		}
		return src[n:], nil
	}
	return enc, dec
}

func encInt64(dst []byte, p unsafe.Pointer) []byte { return binary.AppendVarint(dst, *(*int64)(p)) }

func decInt64(src []byte, p unsafe.Pointer) ([]byte, error) {
	x, n := binary.Varint(src)
	if n <= 0 {
		return nil, errors.New("statebackend: decode varint: invalid or truncated")
	}
	*(*int64)(p) = x
	return src[n:], nil
}

func uvarintFuncs(k reflect.Kind) (encFunc, decFunc) {
	var load func(unsafe.Pointer) uint64
	var store func(unsafe.Pointer, uint64) bool
	switch k {
	case reflect.Uint:
		load = func(p unsafe.Pointer) uint64 { return uint64(*(*uint)(p)) }
		store = func(p unsafe.Pointer, x uint64) bool { *(*uint)(p) = uint(x); return uint64(uint(x)) == x }
	case reflect.Uintptr:
		load = func(p unsafe.Pointer) uint64 { return uint64(*(*uintptr)(p)) }
		store = func(p unsafe.Pointer, x uint64) bool { *(*uintptr)(p) = uintptr(x); return uint64(uintptr(x)) == x }
	case reflect.Uint16:
		load = func(p unsafe.Pointer) uint64 { return uint64(*(*uint16)(p)) }
		store = func(p unsafe.Pointer, x uint64) bool { *(*uint16)(p) = uint16(x); return uint64(uint16(x)) == x }
	case reflect.Uint32:
		load = func(p unsafe.Pointer) uint64 { return uint64(*(*uint32)(p)) }
		store = func(p unsafe.Pointer, x uint64) bool { *(*uint32)(p) = uint32(x); return uint64(uint32(x)) == x }
	default:
		return encUint64, decUint64
	}
	enc := func(dst []byte, p unsafe.Pointer) []byte { return binary.AppendUvarint(dst, load(p)) }
	dec := func(src []byte, p unsafe.Pointer) ([]byte, error) {
		x, n := binary.Uvarint(src)
		if n <= 0 {
			return nil, errors.New("statebackend: decode uvarint: invalid or truncated")
		}
		if !store(p, x) {
			return nil, fmt.Errorf("statebackend: decode %s: %d overflows", k, x)
		}
		return src[n:], nil
	}
	return enc, dec
}

func encUint64(dst []byte, p unsafe.Pointer) []byte {
	return binary.AppendUvarint(dst, *(*uint64)(p))
}

func decUint64(src []byte, p unsafe.Pointer) ([]byte, error) {
	x, n := binary.Uvarint(src)
	if n <= 0 {
		return nil, errors.New("statebackend: decode uvarint: invalid or truncated")
	}
	*(*uint64)(p) = x
	return src[n:], nil
}

func encF32(dst []byte, p unsafe.Pointer) []byte {
	return binary.LittleEndian.AppendUint32(dst, math.Float32bits(*(*float32)(p)))
}

func decF32(src []byte, p unsafe.Pointer) ([]byte, error) {
	if len(src) < 4 {
		return nil, errors.New("statebackend: decode float32: truncated")
	}
	*(*float32)(p) = math.Float32frombits(binary.LittleEndian.Uint32(src))
	return src[4:], nil
}

func encF64(dst []byte, p unsafe.Pointer) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(*(*float64)(p)))
}

func decF64(src []byte, p unsafe.Pointer) ([]byte, error) {
	if len(src) < 8 {
		return nil, errors.New("statebackend: decode float64: truncated")
	}
	*(*float64)(p) = math.Float64frombits(binary.LittleEndian.Uint64(src))
	return src[8:], nil
}

func encC64(dst []byte, p unsafe.Pointer) []byte {
	return encF32(encF32(dst, p), unsafe.Add(p, 4))
}

func decC64(src []byte, p unsafe.Pointer) ([]byte, error) {
	src, err := decF32(src, p)
	if err != nil {
		return nil, err
	}
	return decF32(src, unsafe.Add(p, 4))
}

func encC128(dst []byte, p unsafe.Pointer) []byte {
	return encF64(encF64(dst, p), unsafe.Add(p, 8))
}

func decC128(src []byte, p unsafe.Pointer) ([]byte, error) {
	src, err := decF64(src, p)
	if err != nil {
		return nil, err
	}
	return decF64(src, unsafe.Add(p, 8))
}

func encString(dst []byte, p unsafe.Pointer) []byte {
	s := *(*string)(p)
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func decString(src []byte, p unsafe.Pointer) ([]byte, error) {
	n, k := binary.Uvarint(src)
	if k <= 0 || n > uint64(len(src)-k) {
		return nil, errors.New("statebackend: decode string: invalid or truncated")
	}
	end := k + int(n)
	*(*string)(p) = string(src[k:end])
	return src[end:], nil
}

func encBytes(dst []byte, p unsafe.Pointer) []byte {
	b := *(*[]byte)(p)
	if b == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b))+1)
	return append(dst, b...)
}

func decBytes(src []byte, p unsafe.Pointer) ([]byte, error) {
	x, k := binary.Uvarint(src)
	if k <= 0 || (x > 0 && x-1 > uint64(len(src)-k)) {
		return nil, errors.New("statebackend: decode []byte: invalid or truncated")
	}
	if x == 0 {
		*(*[]byte)(p) = nil
		return src[k:], nil
	}
	end := k + int(x-1)
	*(*[]byte)(p) = append(make([]byte, 0, end-k), src[k:end]...)
	return src[end:], nil
}

const (
	zoneUTC   = 0
	zoneLocal = 1
	zoneFixed = 2
)

func encTime(dst []byte, p unsafe.Pointer) []byte {
	t := *(*time.Time)(p)
	dst = binary.AppendVarint(dst, t.Unix())
	dst = binary.AppendUvarint(dst, uint64(t.Nanosecond()))
	switch loc := t.Location(); loc {
	case time.UTC:
		return append(dst, zoneUTC)
	case time.Local:
		return append(dst, zoneLocal)
	default:
		_, off := t.Zone()
		return binary.AppendVarint(append(dst, zoneFixed), int64(off))
	}
}

var errBadTime = errors.New("statebackend: decode time.Time: invalid or truncated")

func decTime(src []byte, p unsafe.Pointer) ([]byte, error) {
	t, rest, ok := parseTime(src)
	if !ok {
		return nil, errBadTime
	}
	*(*time.Time)(p) = t
	return rest, nil
}

// parseTime reads a time.Time as encTime wrote it.
func parseTime(src []byte) (t time.Time, rest []byte, ok bool) {
	sec, n := binary.Varint(src)
	if n <= 0 {
		return t, nil, false
	}
	src = src[n:]
	nsec, n := binary.Uvarint(src)
	if n <= 0 || nsec >= 1e9 || len(src) == n {
		return t, nil, false
	}
	src = src[n:]
	t = time.Unix(sec, int64(nsec))
	switch src[0] {
	case zoneUTC:
		t = t.UTC()
		src = src[1:]
	case zoneLocal:
		src = src[1:]
	case zoneFixed:
		off, n := binary.Varint(src[1:])
		if n <= 0 {
			return t, nil, false
		}
		t = t.In(time.FixedZone("", int(off)))
		src = src[1+n:]
	default:
		return t, nil, false
	}
	return t, src, true
}

// binaryCodec is the Codec of the general binary format for one type.
type binaryCodec[T any] struct{ tc *typeCodec }

// Append encodes v. Append has no error result: it panics with an error if a
// BinaryMarshaler inside v fails, the only way encoding can fail.
func (c *binaryCodec[T]) Append(dst []byte, v T) []byte {
	return c.tc.enc(dst, unsafe.Pointer(&v))
}

func (c *binaryCodec[T]) Decode(src []byte) (T, error) {
	var v T
	rest, err := c.tc.dec(src, unsafe.Pointer(&v))
	if err != nil {
		var zero T
		return zero, err
	}
	if len(rest) != 0 {
		var zero T
		return zero, fmt.Errorf("statebackend: decode %s: %d trailing bytes", c.tc.typ, len(rest))
	}
	return v, nil
}

func (c *binaryCodec[T]) Fingerprint() string { return c.tc.fp }

// Schema returns "bin1:" and the canonical schema of T (SchemaCodec).
func (c *binaryCodec[T]) Schema() string { return "bin1:" + c.tc.schema }

package statebackend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"unsafe"
)

// Codec encodes and decodes values of T.
//
// Append appends the encoding of v to dst and returns the extended slice. It
// must not retain dst. Decode decodes exactly src (the whole slice is one
// value) and must not retain src: state backends pass buffers they reuse.
//
// Fingerprint is a stable description of the encoding (not of the Go type
// name): two codecs with the same fingerprint read each other's bytes. It is
// stored with checkpoints to check that restored state is compatible.
type Codec[T any] interface {
	Append(dst []byte, v T) []byte
	Decode(src []byte) (T, error)
	Fingerprint() string
}

// SchemaCodec is implemented by codecs that can describe their wire format,
// so that a tool without the job's Go types (weir state export) can decode
// the values they wrote (DecodeJSON). It is separate from Codec so that
// codecs written for earlier versions keep compiling; a codec without a
// schema is exported as raw bytes. Every codec of CodecFor implements it:
//
//   - the built-in codecs return their fingerprint ("int64/be",
//     "float64/be-ordered", "string/raw", "bytes/raw", ...), which names the
//     encoding exactly;
//   - the general binary codec returns "bin1:" followed by the canonical
//     schema of the type (see codec_binary.go), such as
//     "bin1:struct{Name:str;Count:zz;}".
type SchemaCodec interface {
	Schema() string
}

// SchemaOf returns the schema of codec c, or "" if c does not implement
// SchemaCodec.
func SchemaOf(c any) string {
	if s, ok := c.(SchemaCodec); ok {
		return s.Schema()
	}
	return ""
}

// ErrUnsupportedType is returned (wrapped, with the type and field named) by
// CodecFor for a type it cannot encode.
var ErrUnsupportedType = errors.New("statebackend: unsupported type")

// CodecFor returns the codec weir uses for values of T.
//
// Types whose underlying type is a bool, integer, float, string or []byte get
// a built-in codec whose Append does not allocate. Integers and floats encode
// as fixed-width big-endian with the sign bit flipped, so byte order is
// numeric order and map state iterates in numeric order (see doc.go for the
// NaN and -0 rules). Strings and []byte encode as their raw bytes, so they
// also sort naturally. Named types (type UserID int64) share the encoding of
// their underlying type.
//
// Every other type gets the general binary codec compiled once per type by
// reflection: structs (exported fields, in declaration order; a field tagged
// `weir:"-"` is skipped), slices, arrays, maps, pointers, time.Time and types
// implementing encoding.BinaryMarshaler and BinaryUnmarshaler. Channels,
// functions, interfaces and unsafe pointers are rejected with an error
// wrapping ErrUnsupportedType that names the type and the field path.
func CodecFor[T any]() (Codec[T], error) {
	t := reflect.TypeFor[T]()
	if c := builtinCodec[T](t); c != nil {
		return c, nil
	}
	tc, err := compileType(t)
	if err != nil {
		return nil, err
	}
	return &binaryCodec[T]{tc: tc}, nil
}

// MustCodecFor is CodecFor for use in variable initializations and tests; it
// panics on an unsupported type.
func MustCodecFor[T any]() Codec[T] {
	c, err := CodecFor[T]()
	if err != nil {
		panic(err)
	}
	return c
}

// builtinCodec returns the fixed-size or raw-bytes codec for T, or nil.
func builtinCodec[T any](t reflect.Type) Codec[T] {
	var c any
	switch t.Kind() {
	case reflect.Bool:
		c = boolCodec[T]{}
	case reflect.Int:
		c = intCodec[T]{}
	case reflect.Int8:
		c = int8Codec[T]{}
	case reflect.Int16:
		c = int16Codec[T]{}
	case reflect.Int32:
		c = int32Codec[T]{}
	case reflect.Int64:
		c = int64Codec[T]{}
	case reflect.Uint:
		c = uintCodec[T]{}
	case reflect.Uint8:
		c = uint8Codec[T]{}
	case reflect.Uint16:
		c = uint16Codec[T]{}
	case reflect.Uint32:
		c = uint32Codec[T]{}
	case reflect.Uint64:
		c = uint64Codec[T]{}
	case reflect.Float32:
		c = float32Codec[T]{}
	case reflect.Float64:
		c = float64Codec[T]{}
	case reflect.String:
		c = stringCodec[T]{}
	case reflect.Slice:
		if t.Elem().Kind() != reflect.Uint8 {
			return nil
		}
		c = bytesCodec[T]{}
	default:
		return nil
	}
	return c.(Codec[T])
}

// as reinterprets v as a B. The built-in codecs are only instantiated (by
// builtinCodec) for a T whose underlying type is B.
func as[B, T any](v *T) B { return *(*B)(unsafe.Pointer(v)) }

func from[T, B any](b B) T { return *(*T)(unsafe.Pointer(&b)) }

func lenError(kind string, want, got int) error {
	return fmt.Errorf("statebackend: decode %s: want %d bytes, got %d", kind, want, got)
}

const (
	sign8  = 1 << 7
	sign16 = 1 << 15
	sign32 = 1 << 31
	sign64 = 1 << 63
)

type boolCodec[T any] struct{}

func (boolCodec[T]) Append(dst []byte, v T) []byte {
	if as[bool](&v) {
		return append(dst, 1)
	}
	return append(dst, 0)
}

func (boolCodec[T]) Decode(src []byte) (T, error) {
	if len(src) != 1 || src[0] > 1 {
		var zero T
		return zero, fmt.Errorf("statebackend: decode bool: invalid encoding %x", src)
	}
	return from[T](src[0] == 1), nil
}

func (boolCodec[T]) Fingerprint() string { return "bool/1" }

func (boolCodec[T]) Schema() string { return "bool/1" }

type int8Codec[T any] struct{}

func (int8Codec[T]) Append(dst []byte, v T) []byte {
	return append(dst, uint8(as[int8](&v))^sign8)
}

func (int8Codec[T]) Decode(src []byte) (T, error) {
	if len(src) != 1 {
		var zero T
		return zero, lenError("int8", 1, len(src))
	}
	return from[T](int8(src[0] ^ sign8)), nil
}

func (int8Codec[T]) Fingerprint() string { return "int8/be" }

func (int8Codec[T]) Schema() string { return "int8/be" }

type int16Codec[T any] struct{}

func (int16Codec[T]) Append(dst []byte, v T) []byte {
	return binary.BigEndian.AppendUint16(dst, uint16(as[int16](&v))^sign16)
}

func (int16Codec[T]) Decode(src []byte) (T, error) {
	if len(src) != 2 {
		var zero T
		return zero, lenError("int16", 2, len(src))
	}
	return from[T](int16(binary.BigEndian.Uint16(src) ^ sign16)), nil
}

func (int16Codec[T]) Fingerprint() string { return "int16/be" }

func (int16Codec[T]) Schema() string { return "int16/be" }

type int32Codec[T any] struct{}

func (int32Codec[T]) Append(dst []byte, v T) []byte {
	return binary.BigEndian.AppendUint32(dst, uint32(as[int32](&v))^sign32)
}

func (int32Codec[T]) Decode(src []byte) (T, error) {
	if len(src) != 4 {
		var zero T
		return zero, lenError("int32", 4, len(src))
	}
	return from[T](int32(binary.BigEndian.Uint32(src) ^ sign32)), nil
}

func (int32Codec[T]) Fingerprint() string { return "int32/be" }

func (int32Codec[T]) Schema() string { return "int32/be" }

type int64Codec[T any] struct{}

func (int64Codec[T]) Append(dst []byte, v T) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(as[int64](&v))^sign64)
}

func (int64Codec[T]) Decode(src []byte) (T, error) {
	if len(src) != 8 {
		var zero T
		return zero, lenError("int64", 8, len(src))
	}
	return from[T](int64(binary.BigEndian.Uint64(src) ^ sign64)), nil
}

func (int64Codec[T]) Fingerprint() string { return "int64/be" }

func (int64Codec[T]) Schema() string { return "int64/be" }

// intCodec encodes int as 8 bytes on every platform, so state moves between
// 32- and 64-bit machines (decoding a value beyond 32 bits on a 32-bit
// machine is an error).
type intCodec[T any] struct{}

func (intCodec[T]) Append(dst []byte, v T) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(int64(as[int](&v)))^sign64)
}

func (intCodec[T]) Decode(src []byte) (T, error) {
	var zero T
	if len(src) != 8 {
		return zero, lenError("int", 8, len(src))
	}
	x := int64(binary.BigEndian.Uint64(src) ^ sign64)
	if int64(int(x)) != x {
		return zero, fmt.Errorf("statebackend: decode int: %d overflows int", x)
	}
	return from[T](int(x)), nil
}

func (intCodec[T]) Fingerprint() string { return "int64/be" }

func (intCodec[T]) Schema() string { return "int64/be" }

type uint8Codec[T any] struct{}

func (uint8Codec[T]) Append(dst []byte, v T) []byte { return append(dst, as[uint8](&v)) }

func (uint8Codec[T]) Decode(src []byte) (T, error) {
	if len(src) != 1 {
		var zero T
		return zero, lenError("uint8", 1, len(src))
	}
	return from[T](src[0]), nil
}

func (uint8Codec[T]) Fingerprint() string { return "uint8/be" }

func (uint8Codec[T]) Schema() string { return "uint8/be" }

type uint16Codec[T any] struct{}

func (uint16Codec[T]) Append(dst []byte, v T) []byte {
	return binary.BigEndian.AppendUint16(dst, as[uint16](&v))
}

func (uint16Codec[T]) Decode(src []byte) (T, error) {
	if len(src) != 2 {
		var zero T
		return zero, lenError("uint16", 2, len(src))
	}
	return from[T](binary.BigEndian.Uint16(src)), nil
}

func (uint16Codec[T]) Fingerprint() string { return "uint16/be" }

func (uint16Codec[T]) Schema() string { return "uint16/be" }

type uint32Codec[T any] struct{}

func (uint32Codec[T]) Append(dst []byte, v T) []byte {
	return binary.BigEndian.AppendUint32(dst, as[uint32](&v))
}

func (uint32Codec[T]) Decode(src []byte) (T, error) {
	if len(src) != 4 {
		var zero T
		return zero, lenError("uint32", 4, len(src))
	}
	return from[T](binary.BigEndian.Uint32(src)), nil
}

func (uint32Codec[T]) Fingerprint() string { return "uint32/be" }

func (uint32Codec[T]) Schema() string { return "uint32/be" }

type uint64Codec[T any] struct{}

func (uint64Codec[T]) Append(dst []byte, v T) []byte {
	return binary.BigEndian.AppendUint64(dst, as[uint64](&v))
}

func (uint64Codec[T]) Decode(src []byte) (T, error) {
	if len(src) != 8 {
		var zero T
		return zero, lenError("uint64", 8, len(src))
	}
	return from[T](binary.BigEndian.Uint64(src)), nil
}

func (uint64Codec[T]) Fingerprint() string { return "uint64/be" }

func (uint64Codec[T]) Schema() string { return "uint64/be" }

// uintCodec encodes uint as 8 bytes on every platform (see intCodec).
type uintCodec[T any] struct{}

func (uintCodec[T]) Append(dst []byte, v T) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(as[uint](&v)))
}

func (uintCodec[T]) Decode(src []byte) (T, error) {
	var zero T
	if len(src) != 8 {
		return zero, lenError("uint", 8, len(src))
	}
	x := binary.BigEndian.Uint64(src)
	if uint64(uint(x)) != x {
		return zero, fmt.Errorf("statebackend: decode uint: %d overflows uint", x)
	}
	return from[T](uint(x)), nil
}

func (uintCodec[T]) Fingerprint() string { return "uint64/be" }

func (uintCodec[T]) Schema() string { return "uint64/be" }

// Order-preserving float encoding: for positive numbers (sign bit clear) set
// the sign bit; for negative numbers invert all bits. The mapping is a
// bijection on bit patterns, so every value, NaN payloads and -0 included,
// round-trips exactly.
func float64Key(f float64) uint64 {
	b := math.Float64bits(f)
	if b&sign64 != 0 {
		return ^b
	}
	return b | sign64
}

func float64FromKey(k uint64) float64 {
	if k&sign64 != 0 {
		return math.Float64frombits(k &^ sign64)
	}
	return math.Float64frombits(^k)
}

func float32Key(f float32) uint32 {
	b := math.Float32bits(f)
	if b&sign32 != 0 {
		return ^b
	}
	return b | sign32
}

func float32FromKey(k uint32) float32 {
	if k&sign32 != 0 {
		return math.Float32frombits(k &^ sign32)
	}
	return math.Float32frombits(^k)
}

type float32Codec[T any] struct{}

func (float32Codec[T]) Append(dst []byte, v T) []byte {
	return binary.BigEndian.AppendUint32(dst, float32Key(as[float32](&v)))
}

func (float32Codec[T]) Decode(src []byte) (T, error) {
	if len(src) != 4 {
		var zero T
		return zero, lenError("float32", 4, len(src))
	}
	return from[T](float32FromKey(binary.BigEndian.Uint32(src))), nil
}

func (float32Codec[T]) Fingerprint() string { return "float32/be-ordered" }

func (float32Codec[T]) Schema() string { return "float32/be-ordered" }

type float64Codec[T any] struct{}

func (float64Codec[T]) Append(dst []byte, v T) []byte {
	return binary.BigEndian.AppendUint64(dst, float64Key(as[float64](&v)))
}

func (float64Codec[T]) Decode(src []byte) (T, error) {
	if len(src) != 8 {
		var zero T
		return zero, lenError("float64", 8, len(src))
	}
	return from[T](float64FromKey(binary.BigEndian.Uint64(src))), nil
}

func (float64Codec[T]) Fingerprint() string { return "float64/be-ordered" }

func (float64Codec[T]) Schema() string { return "float64/be-ordered" }

type stringCodec[T any] struct{}

func (stringCodec[T]) Append(dst []byte, v T) []byte { return append(dst, as[string](&v)...) }

func (stringCodec[T]) Decode(src []byte) (T, error) { return from[T](string(src)), nil }

func (stringCodec[T]) Fingerprint() string { return "string/raw" }

func (stringCodec[T]) Schema() string { return "string/raw" }

// bytesCodec decodes an empty encoding as an empty, non-nil slice.
type bytesCodec[T any] struct{}

func (bytesCodec[T]) Append(dst []byte, v T) []byte { return append(dst, as[[]byte](&v)...) }

func (bytesCodec[T]) Decode(src []byte) (T, error) {
	return from[T](append(make([]byte, 0, len(src)), src...)), nil
}

func (bytesCodec[T]) Fingerprint() string { return "bytes/raw" }

func (bytesCodec[T]) Schema() string { return "bytes/raw" }

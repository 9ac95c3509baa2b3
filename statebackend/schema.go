package statebackend

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Schema-driven decoding: tools that do not have the job's Go types (weir
// state export) decode stored keys and values from the schema strings that
// snapshots record (SchemaOf, StateInfo.KeySchema and ValueSchema,
// Options.KeySchema) into JSON.
//
// Schema strings, as SchemaOf returns them:
//
//	bool/1, int8/be ... int64/be,      the built-in codecs (codec.go): their
//	uint8/be ... uint64/be,            fingerprint, fixed width big endian
//	float32/be-ordered,                with the sign bit flipped (floats:
//	float64/be-ordered,                order-preserving), or the raw bytes
//	string/raw, bytes/raw              of the whole value
//	bin1:T                             the general binary codec
//	                                   (codec_binary.go) of type schema T
//	window(S)                          a window operator's current key: the
//	                                   key (schema S) then the window end,
//	                                   8 bytes big endian
//
// Type schemas T (typeCodec.schema, which is typeCodec.desc with "i8" for
// int8 where desc has "byte"):
//
//	bool byte i8 zz uv f32 f64 c64 c128 str bytes time
//	[]T  [N]T  map[T]T  *T  struct{Name:T;...}  bin(GoType)
//	@N   the N-th composite type (slice, array, map, pointer, struct) on
//	     the path from the root, counting from 0: a recursive type
//
// JSON produced, matching encoding/json of the Go value where it can: ints
// and floats as numbers (NaN and infinities, which JSON lacks, as the
// strings "NaN", "+Inf", "-Inf"), complex numbers as [re, im], strings as
// strings (invalid UTF-8 replaced by U+FFFD), []byte and BinaryMarshaler
// bytes as base64 strings, nil slices, maps and pointers as null, structs
// as objects in field order, maps with string or integer keys as objects,
// other maps as arrays of [key, value] pairs in stored order, time.Time
// as RFC 3339 with nanoseconds (zone names are not stored: a fixed offset
// or Z), window keys as {"key": K, "window_end": N}. Embedded structs are
// objects under the type's name (encoding/json would inline them), and
// json struct tags are not known.

// Schema is a parsed schema string, safe for concurrent use.
type Schema struct {
	text string
	root *schemaNode
}

type schemaKind uint8

const (
	sBool schemaKind = iota + 1
	sByte
	sI8
	sZigzag
	sUvarint
	sF32
	sF64
	sC64
	sC128
	sStr
	sBytes
	sTime
	sSlice
	sArray
	sMap
	sPtr
	sStruct
	sMarshaler
	sRef
	// built-in codecs: the whole input
	sFixedInt  // size bytes, big endian, sign bit flipped
	sFixedUint // size bytes, big endian
	sOrderedF32
	sOrderedF64
	sRawString
	sRawBytes
	sBool1
	// window(S)
	sWindow
)

type schemaNode struct {
	kind    schemaKind
	size    int // array length; fixed integer width
	elem    *schemaNode
	key     *schemaNode
	fields  []schemaField
	target  *schemaNode // sRef
	name    string      // sMarshaler: the Go type
	minSize int
}

type schemaField struct {
	name string
	node *schemaNode
}

// maxSchemaDepth bounds the nesting of decoded values (and of schemas): a
// recursive type consumes input at every level, so only a malformed schema
// or input reaches it.
const maxSchemaDepth = 10000

var builtinSchemas = map[string]schemaNode{
	"bool/1":             {kind: sBool1},
	"int8/be":            {kind: sFixedInt, size: 1},
	"int16/be":           {kind: sFixedInt, size: 2},
	"int32/be":           {kind: sFixedInt, size: 4},
	"int64/be":           {kind: sFixedInt, size: 8},
	"uint8/be":           {kind: sFixedUint, size: 1},
	"uint16/be":          {kind: sFixedUint, size: 2},
	"uint32/be":          {kind: sFixedUint, size: 4},
	"uint64/be":          {kind: sFixedUint, size: 8},
	"float32/be-ordered": {kind: sOrderedF32, size: 4},
	"float64/be-ordered": {kind: sOrderedF64, size: 8},
	"string/raw":         {kind: sRawString},
	"bytes/raw":          {kind: sRawBytes},
}

// ErrNoSchema is returned by ParseSchema for an empty schema: the codec
// did not describe itself (it does not implement SchemaCodec).
var ErrNoSchema = errors.New("statebackend: no schema")

// ParseSchema parses a schema string (see SchemaOf).
func ParseSchema(s string) (*Schema, error) {
	root, err := parseTop(s, 0)
	if err != nil {
		return nil, err
	}
	return &Schema{text: s, root: root}, nil
}

func parseTop(s string, depth int) (*schemaNode, error) {
	if s == "" {
		return nil, ErrNoSchema
	}
	if depth > 8 {
		return nil, fmt.Errorf("statebackend: schema %q: nested too deeply", s)
	}
	if b, ok := builtinSchemas[s]; ok {
		n := b
		return &n, nil
	}
	if t, ok := strings.CutPrefix(s, "bin1:"); ok {
		p := schemaParser{s: t}
		n, err := p.parse(0)
		if err == nil && p.pos != len(t) {
			err = p.errorf("unexpected %q", t[p.pos:])
		}
		if err != nil {
			return nil, fmt.Errorf("statebackend: schema %q: %w", s, err)
		}
		return n, nil
	}
	if inner, ok := strings.CutPrefix(s, "window("); ok && strings.HasSuffix(inner, ")") {
		k, err := parseTop(inner[:len(inner)-1], depth+1)
		if err != nil {
			return nil, err
		}
		return &schemaNode{kind: sWindow, elem: k}, nil
	}
	return nil, fmt.Errorf("statebackend: schema %q: unknown codec", s)
}

// String returns the schema string.
func (s *Schema) String() string { return s.text }

type schemaParser struct {
	s     string
	pos   int
	stack []*schemaNode // composites being parsed, for @N
}

func (p *schemaParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at %d: %s", p.pos, fmt.Sprintf(format, args...))
}

var leafSchemas = []struct {
	name    string
	kind    schemaKind
	minSize int
}{
	// A leaf is followed by ';', ']' or the end ("str" is not "struct{").
	{"bytes", sBytes, 1}, {"byte", sByte, 1}, {"bool", sBool, 1}, {"i8", sI8, 1},
	{"zz", sZigzag, 1}, {"uv", sUvarint, 1}, {"f32", sF32, 4}, {"f64", sF64, 8},
	{"c64", sC64, 8}, {"c128", sC128, 16}, {"str", sStr, 1}, {"time", sTime, 3},
}

func (p *schemaParser) parse(depth int) (*schemaNode, error) {
	if depth > maxSchemaDepth {
		return nil, p.errorf("nested too deeply")
	}
	rest := p.s[p.pos:]
	for _, l := range leafSchemas {
		if strings.HasPrefix(rest, l.name) && (len(rest) == len(l.name) || rest[len(l.name)] == ';' || rest[len(l.name)] == ']') {
			p.pos += len(l.name)
			return &schemaNode{kind: l.kind, minSize: l.minSize}, nil
		}
	}
	switch {
	case strings.HasPrefix(rest, "@"):
		p.pos++
		i := p.pos
		for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
			p.pos++
		}
		n, err := strconv.Atoi(p.s[i:p.pos])
		if err != nil || n >= len(p.stack) {
			return nil, p.errorf("back-reference @%s to no enclosing type", p.s[i:p.pos])
		}
		return &schemaNode{kind: sRef, target: p.stack[n]}, nil
	case strings.HasPrefix(rest, "bin("):
		p.pos += len("bin(")
		start, open := p.pos, 1
		for ; p.pos < len(p.s); p.pos++ {
			switch p.s[p.pos] {
			case '(':
				open++
			case ')':
				open--
			}
			if open == 0 {
				break
			}
		}
		if open != 0 {
			return nil, p.errorf("unterminated bin(")
		}
		name := p.s[start:p.pos]
		p.pos++
		return &schemaNode{kind: sMarshaler, name: name, minSize: 1}, nil
	}
	// Composite types: pushed while their parts are parsed, as the
	// compiler does (codec_binary.go), so @N means the same.
	n := &schemaNode{}
	p.stack = append(p.stack, n)
	defer func() { p.stack = p.stack[:len(p.stack)-1] }()
	var err error
	switch {
	case strings.HasPrefix(rest, "[]"):
		p.pos += 2
		n.kind, n.minSize = sSlice, 1
		n.elem, err = p.parse(depth + 1)
	case strings.HasPrefix(rest, "["):
		p.pos++
		i := p.pos
		for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
			p.pos++
		}
		size, aerr := strconv.Atoi(p.s[i:p.pos])
		if aerr != nil || size > 1<<30 || p.pos >= len(p.s) || p.s[p.pos] != ']' {
			return nil, p.errorf("bad array length")
		}
		p.pos++
		n.kind, n.size = sArray, size
		if n.elem, err = p.parse(depth + 1); err == nil {
			n.minSize = size * n.elem.minSize
		}
	case strings.HasPrefix(rest, "map["):
		p.pos += len("map[")
		n.kind, n.minSize = sMap, 1
		if n.key, err = p.parse(depth + 1); err != nil {
			return nil, err
		}
		if !strings.HasPrefix(p.s[p.pos:], "]") {
			return nil, p.errorf("want ] after the map key")
		}
		p.pos++
		n.elem, err = p.parse(depth + 1)
	case strings.HasPrefix(rest, "*"):
		p.pos++
		n.kind, n.minSize = sPtr, 1
		n.elem, err = p.parse(depth + 1)
	case strings.HasPrefix(rest, "struct{"):
		p.pos += len("struct{")
		n.kind = sStruct
		for err == nil {
			if strings.HasPrefix(p.s[p.pos:], "}") {
				p.pos++
				break
			}
			colon := strings.IndexByte(p.s[p.pos:], ':')
			if colon <= 0 {
				return nil, p.errorf("want a field name and ':'")
			}
			f := schemaField{name: p.s[p.pos : p.pos+colon]}
			p.pos += colon + 1
			if f.node, err = p.parse(depth + 1); err != nil {
				break
			}
			if !strings.HasPrefix(p.s[p.pos:], ";") {
				return nil, p.errorf("want ';' after field %s", f.name)
			}
			p.pos++
			n.fields = append(n.fields, f)
			n.minSize += f.node.minSize
		}
	default:
		return nil, p.errorf("unknown type %q", rest)
	}
	if err != nil {
		return nil, err
	}
	return n, nil
}

// DecodeError is a stored key or value that does not decode with its
// schema.
type DecodeError struct {
	Schema string
	Offset int // of the byte where decoding failed, in the whole input
	Reason string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("statebackend: decode with schema %q: at offset %d: %s", e.Schema, e.Offset, e.Reason)
}

type jsonDecoder struct {
	s   *Schema
	src []byte
	out []byte
}

func (d *jsonDecoder) fail(off int, format string, args ...any) error {
	return &DecodeError{Schema: d.s.text, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// AppendJSON decodes src, one whole key or value written by a codec with
// this schema, and appends its JSON to dst. Malformed input returns a
// *DecodeError naming the offset; it never panics.
func (s *Schema) AppendJSON(dst, src []byte) ([]byte, error) {
	d := &jsonDecoder{s: s, out: dst}
	if err := d.top(s.root, src); err != nil {
		return dst, err
	}
	return d.out, nil
}

// top decodes src whole with a top-level schema node.
func (d *jsonDecoder) top(n *schemaNode, src []byte) error {
	switch n.kind {
	case sBool1:
		if len(src) != 1 || src[0] > 1 {
			return d.fail(0, "bool: want 1 byte 0 or 1, got %x", src)
		}
		d.out = strconv.AppendBool(d.out, src[0] == 1)
		return nil
	case sFixedInt, sFixedUint, sOrderedF32, sOrderedF64:
		if len(src) != n.size {
			return d.fail(0, "want %d bytes, got %d", n.size, len(src))
		}
		var x uint64
		for _, c := range src {
			x = x<<8 | uint64(c)
		}
		switch n.kind {
		case sFixedInt:
			sign := uint64(1) << (8*n.size - 1)
			v := int64(x) - int64(sign) // undo the flipped sign bit (wraps for 8 bytes)
			d.out = strconv.AppendInt(d.out, v, 10)
		case sFixedUint:
			d.out = strconv.AppendUint(d.out, x, 10)
		case sOrderedF32:
			d.out = appendJSONFloat(d.out, float64(float32FromKey(uint32(x))), 32)
		default:
			d.out = appendJSONFloat(d.out, float64FromKey(x), 64)
		}
		return nil
	case sRawString:
		d.out = appendJSONString(d.out, src)
		return nil
	case sRawBytes:
		d.out = appendBase64(d.out, src)
		return nil
	case sWindow:
		if len(src) < 8 {
			return d.fail(0, "window key: %d bytes, want at least 8 (the window end)", len(src))
		}
		d.out = append(d.out, `{"key":`...)
		if err := d.top(n.elem, src[:len(src)-8]); err != nil {
			return err
		}
		end := int64(binary.BigEndian.Uint64(src[len(src)-8:]))
		d.out = append(d.out, `,"window_end":`...)
		d.out = strconv.AppendInt(d.out, end, 10)
		d.out = append(d.out, '}')
		return nil
	}
	d.src = src
	rest, err := d.value(n, src, 0)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return d.fail(len(src)-len(rest), "%d trailing bytes", len(rest))
	}
	return nil
}

// off returns the offset of rest (a suffix of d.src) in the input.
func (d *jsonDecoder) off(rest []byte) int { return len(d.src) - len(rest) }

// length reads the length prefix of a nil-able collection (-1: nil), with
// the binary codec's bound on the count (decLen).
func (d *jsonDecoder) length(src []byte, elemMin int, what string) (int, []byte, error) {
	n, rest, err := readLen(src, elemMin)
	if err != nil {
		return 0, nil, d.fail(d.off(src), "%s: %v", what, err)
	}
	return n, rest, nil
}

func (d *jsonDecoder) value(n *schemaNode, src []byte, depth int) ([]byte, error) {
	if depth > maxSchemaDepth {
		return nil, d.fail(d.off(src), "nested more than %d deep", maxSchemaDepth)
	}
	switch n.kind {
	case sBool:
		if len(src) == 0 || src[0] > 1 {
			return nil, d.fail(d.off(src), "bool: invalid or truncated")
		}
		d.out = strconv.AppendBool(d.out, src[0] == 1)
		return src[1:], nil
	case sByte, sI8:
		if len(src) == 0 {
			return nil, d.fail(d.off(src), "byte: truncated")
		}
		if n.kind == sI8 {
			d.out = strconv.AppendInt(d.out, int64(int8(src[0])), 10)
		} else {
			d.out = strconv.AppendUint(d.out, uint64(src[0]), 10)
		}
		return src[1:], nil
	case sZigzag:
		x, k := binary.Varint(src)
		if k <= 0 {
			return nil, d.fail(d.off(src), "varint: invalid or truncated")
		}
		d.out = strconv.AppendInt(d.out, x, 10)
		return src[k:], nil
	case sUvarint:
		x, k := binary.Uvarint(src)
		if k <= 0 {
			return nil, d.fail(d.off(src), "uvarint: invalid or truncated")
		}
		d.out = strconv.AppendUint(d.out, x, 10)
		return src[k:], nil
	case sF32:
		if len(src) < 4 {
			return nil, d.fail(d.off(src), "float32: truncated")
		}
		d.out = appendJSONFloat(d.out, float64(math.Float32frombits(binary.LittleEndian.Uint32(src))), 32)
		return src[4:], nil
	case sF64:
		if len(src) < 8 {
			return nil, d.fail(d.off(src), "float64: truncated")
		}
		d.out = appendJSONFloat(d.out, math.Float64frombits(binary.LittleEndian.Uint64(src)), 64)
		return src[8:], nil
	case sC64, sC128:
		part := &schemaNode{kind: sF32}
		if n.kind == sC128 {
			part.kind = sF64
		}
		d.out = append(d.out, '[')
		src, err := d.value(part, src, depth+1)
		if err != nil {
			return nil, err
		}
		d.out = append(d.out, ',')
		if src, err = d.value(part, src, depth+1); err != nil {
			return nil, err
		}
		d.out = append(d.out, ']')
		return src, nil
	case sStr:
		x, k := binary.Uvarint(src)
		if k <= 0 || x > uint64(len(src)-k) {
			return nil, d.fail(d.off(src), "string: invalid or truncated")
		}
		end := k + int(x)
		d.out = appendJSONString(d.out, src[k:end])
		return src[end:], nil
	case sBytes:
		x, k := binary.Uvarint(src)
		if k <= 0 || (x > 0 && x-1 > uint64(len(src)-k)) {
			return nil, d.fail(d.off(src), "[]byte: invalid or truncated")
		}
		if x == 0 {
			d.out = append(d.out, "null"...)
			return src[k:], nil
		}
		end := k + int(x-1)
		d.out = appendBase64(d.out, src[k:end])
		return src[end:], nil
	case sMarshaler:
		x, k := binary.Uvarint(src)
		if k <= 0 || x > uint64(len(src)-k) {
			return nil, d.fail(d.off(src), "%s: invalid or truncated length", n.name)
		}
		end := k + int(x)
		d.out = appendBase64(d.out, src[k:end])
		return src[end:], nil
	case sTime:
		return d.time(src)
	case sRef:
		return d.value(n.target, src, depth+1)
	case sPtr:
		if len(src) == 0 {
			return nil, d.fail(d.off(src), "pointer: truncated")
		}
		switch src[0] {
		case 0:
			d.out = append(d.out, "null"...)
			return src[1:], nil
		case 1:
			return d.value(n.elem, src[1:], depth+1)
		default:
			return nil, d.fail(d.off(src), "invalid pointer tag %d", src[0])
		}
	case sStruct:
		d.out = append(d.out, '{')
		var err error
		for i, f := range n.fields {
			if i > 0 {
				d.out = append(d.out, ',')
			}
			d.out = appendJSONString(d.out, []byte(f.name))
			d.out = append(d.out, ':')
			if src, err = d.value(f.node, src, depth+1); err != nil {
				return nil, err
			}
		}
		d.out = append(d.out, '}')
		return src, nil
	case sArray:
		return d.elems(n.elem, n.size, src, depth)
	case sSlice:
		count, src, err := d.length(src, n.elem.minSize, "slice")
		if err != nil {
			return nil, err
		}
		if count < 0 {
			d.out = append(d.out, "null"...)
			return src, nil
		}
		return d.elems(n.elem, count, src, depth)
	case sMap:
		return d.mapValue(n, src, depth)
	}
	return nil, d.fail(d.off(src), "schema node %d cannot be nested", n.kind)
}

func (d *jsonDecoder) elems(e *schemaNode, count int, src []byte, depth int) ([]byte, error) {
	d.out = append(d.out, '[')
	var err error
	for i := 0; i < count; i++ {
		if i > 0 {
			d.out = append(d.out, ',')
		}
		if src, err = d.value(e, src, depth+1); err != nil {
			return nil, err
		}
	}
	d.out = append(d.out, ']')
	return src, nil
}

// objectKey reports whether a map key of schema k is a JSON object key
// (encoding/json writes maps with string and integer keys as objects).
func objectKey(k *schemaNode) bool {
	for k.kind == sRef {
		k = k.target
	}
	switch k.kind {
	case sStr, sZigzag, sUvarint, sByte, sI8:
		return true
	}
	return false
}

func (d *jsonDecoder) mapValue(n *schemaNode, src []byte, depth int) ([]byte, error) {
	count, src, err := d.length(src, n.key.minSize+n.elem.minSize, "map")
	if err != nil {
		return nil, err
	}
	if count < 0 {
		d.out = append(d.out, "null"...)
		return src, nil
	}
	obj := objectKey(n.key)
	if obj {
		d.out = append(d.out, '{')
	} else {
		d.out = append(d.out, '[')
	}
	for i := 0; i < count; i++ {
		if i > 0 {
			d.out = append(d.out, ',')
		}
		if obj {
			// A number key is quoted: decode it, then quote what was
			// written unless it already is a string.
			start := len(d.out)
			if src, err = d.value(n.key, src, depth+1); err != nil {
				return nil, err
			}
			if d.out[start] != '"' {
				d.out = append(d.out, '"')
				copy(d.out[start+1:], d.out[start:len(d.out)-1])
				d.out[start] = '"'
				d.out = append(d.out, '"')
			}
			d.out = append(d.out, ':')
		} else {
			d.out = append(d.out, '[')
			if src, err = d.value(n.key, src, depth+1); err != nil {
				return nil, err
			}
			d.out = append(d.out, ',')
		}
		if src, err = d.value(n.elem, src, depth+1); err != nil {
			return nil, err
		}
		if !obj {
			d.out = append(d.out, ']')
		}
	}
	if obj {
		d.out = append(d.out, '}')
	} else {
		d.out = append(d.out, ']')
	}
	return src, nil
}

// time mirrors decTime.
func (d *jsonDecoder) time(src []byte) ([]byte, error) {
	t, rest, ok := parseTime(src)
	if !ok {
		return nil, d.fail(d.off(src), "time.Time: invalid or truncated")
	}
	d.out = append(d.out, '"')
	d.out = t.AppendFormat(d.out, time.RFC3339Nano)
	d.out = append(d.out, '"')
	return rest, nil
}

// appendJSONFloat formats f as encoding/json does; NaN and infinities,
// which JSON lacks, become the strings "NaN", "+Inf" and "-Inf".
func appendJSONFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(dst, `"+Inf"`...)
	case math.IsInf(f, -1):
		return append(dst, `"-Inf"`...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, invalid UTF-8 replaced by
// U+FFFD as encoding/json does (without its HTML escaping).
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

func appendBase64(dst, b []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

// SnapshotInfo is what a persisted snapshot records about its state, for
// tools (weir state export).
type SnapshotInfo struct {
	Checkpoint     uint64
	MaxParallelism int
	KeyGroups      KeyGroupRange
	// KeySchema is the schema of the operator's key (Options.KeySchema),
	// "" if the snapshot does not record one.
	KeySchema string
	States    []StateInfo
}

// ReadSnapshotInfo reads SnapshotMetaFile of the persisted snapshot in dir
// (fs nil: the operating system's).
func ReadSnapshotInfo(fs vfs.FS, dir string) (*SnapshotInfo, error) {
	if fs == nil {
		fs = vfs.Default
	}
	m, err := readMeta(fs, dir)
	if err != nil {
		return nil, err
	}
	return &SnapshotInfo{Checkpoint: m.Checkpoint, MaxParallelism: m.MaxParallelism, KeyGroups: m.KeyGroups,
		KeySchema: m.KeySchema, States: m.States}, nil
}

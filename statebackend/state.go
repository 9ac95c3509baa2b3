package statebackend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
)

// StateKind is the kind of a registered state.
type StateKind uint8

// State kinds.
const (
	KindValue StateKind = iota + 1
	KindMap
	KindList
	KindReducing
)

func (k StateKind) String() string {
	switch k {
	case KindValue:
		return "value"
	case KindMap:
		return "map"
	case KindList:
		return "list"
	case KindReducing:
		return "reducing"
	case KindTimers:
		return "timers"
	default:
		return fmt.Sprintf("StateKind(%d)", uint8(k))
	}
}

// StateInfo describes a registered state: what snapshot code stores to check
// that restored state is read with compatible codecs.
type StateInfo struct {
	Name string
	// ID is the state's 4-byte id in every stored key (see doc.go).
	ID   uint32
	Kind StateKind
	// KeyFingerprint is the map key codec's fingerprint (map state only).
	KeyFingerprint string
	// ValueFingerprint is the value (or element) codec's fingerprint.
	ValueFingerprint string
	// KeySchema and ValueSchema are the schemas (SchemaOf) of the map key
	// and value codecs, "" for a codec without one: what weir state export
	// decodes stored values with. They play no part in compatibility
	// checks, and snapshots written before they existed lack them.
	KeySchema   string `json:",omitempty"`
	ValueSchema string `json:",omitempty"`
	// CurrentKeySchema, if set, is the schema of this state's current keys
	// where they are not the operator's key (Options.KeySchema): the window
	// operators key some states by (key, window end). See
	// SetCurrentKeySchema.
	CurrentKeySchema string `json:",omitempty"`
}

// StateID returns the id that a state named name has in stored keys: the high
// 32 bits of HashKey of the name. It is part of the state format.
func StateID(name string) uint32 {
	return uint32(HashKey([]byte(name)) >> 32)
}

type stateInfo struct{ StateInfo }

// register records a state, or returns the earlier registration of the same
// name if it is compatible. kc and vc are the codecs (kc nil but for map
// state), whose schemas are recorded.
func (b *Backend) register(name string, kind StateKind, keyFP, valueFP string, kc, vc any) (*stateInfo, error) {
	if b == nil {
		return nil, errors.New("statebackend: nil Backend")
	}
	if b.closed {
		return nil, ErrClosed
	}
	if name == "" {
		return nil, errors.New("statebackend: empty state name")
	}
	if si, ok := b.states[name]; ok {
		if si.Kind != kind || si.KeyFingerprint != keyFP || si.ValueFingerprint != valueFP {
			return nil, fmt.Errorf("%w: state %q is registered as %s, now as %s",
				ErrIncompatibleState, name, si.describe(), describe(kind, keyFP, valueFP))
		}
		return si, nil
	}
	if si, ok := b.restored[name]; ok && (si.Kind != kind || si.KeyFingerprint != keyFP || si.ValueFingerprint != valueFP) {
		return nil, fmt.Errorf("%w: state %q was checkpointed as %s, now registered as %s",
			ErrIncompatibleState, name, describe(si.Kind, si.KeyFingerprint, si.ValueFingerprint), describe(kind, keyFP, valueFP))
	}
	id := StateID(name)
	if other, ok := b.ids[id]; ok {
		return nil, fmt.Errorf("%w: state names %q and %q have the same id %08x; rename one",
			ErrIncompatibleState, other.Name, name, id)
	}
	si := &stateInfo{StateInfo{Name: name, ID: id, Kind: kind, KeyFingerprint: keyFP, ValueFingerprint: valueFP,
		KeySchema: SchemaOf(kc), ValueSchema: SchemaOf(vc)}}
	b.states[name] = si
	b.ids[id] = si
	return si, nil
}

func describe(kind StateKind, keyFP, valueFP string) string {
	if kind == KindMap {
		return fmt.Sprintf("map state (key codec %s, value codec %s)", keyFP, valueFP)
	}
	return fmt.Sprintf("%s state (codec %s)", kind, valueFP)
}

func (si *stateInfo) describe() string {
	return describe(si.Kind, si.KeyFingerprint, si.ValueFingerprint)
}

// SetCurrentKeySchema records that the current keys of the registered state
// name are described by schema (DecodeKeyJSON), not by Options.KeySchema.
// Only tools read it; it changes nothing in how state is stored.
func (b *Backend) SetCurrentKeySchema(name, schema string) error {
	si, ok := b.states[name]
	if !ok {
		return fmt.Errorf("statebackend: set current key schema: no state %q is registered", name)
	}
	si.CurrentKeySchema = schema
	return nil
}

// States returns the registered states, sorted by name.
func (b *Backend) States() []StateInfo {
	out := make([]StateInfo, 0, len(b.states))
	for _, si := range b.states {
		out = append(out, si.StateInfo)
	}
	slices.SortFunc(out, func(x, y StateInfo) int { return strings.Compare(x.Name, y.Name) })
	return out
}

func (b *Backend) decodeErr(si *stateInfo, what string, err error) {
	b.setErr(fmt.Errorf("statebackend: state %q: decode %s: %w", si.Name, what, err))
}

func checkCodec(c any, what string) error {
	if c == nil {
		return fmt.Errorf("statebackend: nil %s codec", what)
	}
	return nil
}

// Value is a single value per key. The zero V stands for "absent" in Get;
// use Lookup to tell the two apart.
//
// Like all state handles, its methods act on the backend's current key and
// return no error: a storage or decode error is recorded in Backend.Err and
// the method returns zero values.
type Value[V any] struct {
	b  *Backend
	si *stateInfo
	c  Codec[V]
}

// NewValue registers (or finds) the value state name.
func NewValue[V any](b *Backend, name string, c Codec[V]) (*Value[V], error) {
	if err := checkCodec(c, "value"); err != nil {
		return nil, err
	}
	si, err := b.register(name, KindValue, "", c.Fingerprint(), nil, c)
	if err != nil {
		return nil, err
	}
	return &Value[V]{b: b, si: si, c: c}, nil
}

// Get returns the value of the current key, or the zero V if there is none.
func (s *Value[V]) Get() V {
	v, _ := s.Lookup()
	return v
}

// Lookup returns the value of the current key and whether there is one.
func (s *Value[V]) Lookup() (V, bool) {
	var zero V
	k, ok := s.b.prefix(s.si.ID)
	if !ok {
		return zero, false
	}
	var raw []byte
	if s.b.vcache != nil {
		e := s.b.cacheEntry(s.si.ID, k, true)
		if !e.present {
			return zero, false
		}
		raw = e.val
	} else {
		var closer io.Closer
		var found bool
		if raw, closer, found = s.b.get(k); !found {
			return zero, false
		}
		defer s.b.closeQuiet(closer)
	}
	v, err := s.c.Decode(raw)
	if err != nil {
		s.b.decodeErr(s.si, "value", err)
		return zero, false
	}
	return v, true
}

// Set sets the value of the current key.
func (s *Value[V]) Set(v V) {
	k, ok := s.b.prefix(s.si.ID)
	if !ok {
		return
	}
	if s.b.vcache != nil {
		e := s.b.cacheEntry(s.si.ID, k, false)
		old := cap(e.val)
		e.val = s.c.Append(e.val[:0], v)
		e.present = true
		s.b.vcache.markDirty(e, old)
		return
	}
	s.b.val = s.c.Append(s.b.val[:0], v)
	s.b.set(k, s.b.val)
}

// Clear removes the value of the current key.
func (s *Value[V]) Clear() {
	k, ok := s.b.prefix(s.si.ID)
	if !ok {
		return
	}
	if s.b.vcache != nil {
		e := s.b.cacheEntry(s.si.ID, k, false)
		e.present = false
		s.b.vcache.markDirty(e, cap(e.val))
		return
	}
	s.b.delete(k)
}

// Map is a map per key, stored as one Pebble entry per map entry, so reading
// or writing one entry costs the same however large the map is.
type Map[K, V any] struct {
	b  *Backend
	si *stateInfo
	kc Codec[K]
	vc Codec[V]
}

// NewMap registers (or finds) the map state name.
func NewMap[K, V any](b *Backend, name string, kc Codec[K], vc Codec[V]) (*Map[K, V], error) {
	if err := checkCodec(kc, "map key"); err != nil {
		return nil, err
	}
	if err := checkCodec(vc, "map value"); err != nil {
		return nil, err
	}
	si, err := b.register(name, KindMap, kc.Fingerprint(), vc.Fingerprint(), kc, vc)
	if err != nil {
		return nil, err
	}
	return &Map[K, V]{b: b, si: si, kc: kc, vc: vc}, nil
}

// entryKey returns the stored key of map key k for the current key.
func (s *Map[K, V]) entryKey(k K) ([]byte, bool) {
	p, ok := s.b.prefix(s.si.ID)
	if !ok {
		return nil, false
	}
	full := s.kc.Append(p, k)
	s.b.key = full[:s.b.keyLen] // keep a grown buffer
	return full, true
}

// Get returns the value of map key k and whether it is present.
func (s *Map[K, V]) Get(k K) (V, bool) {
	var zero V
	ek, ok := s.entryKey(k)
	if !ok {
		return zero, false
	}
	raw, closer, found := s.b.get(ek)
	if !found {
		return zero, false
	}
	v, err := s.vc.Decode(raw)
	s.b.closeQuiet(closer)
	if err != nil {
		s.b.decodeErr(s.si, "map value", err)
		return zero, false
	}
	return v, true
}

// Contains reports whether map key k is present.
func (s *Map[K, V]) Contains(k K) bool {
	ek, ok := s.entryKey(k)
	if !ok {
		return false
	}
	_, closer, found := s.b.get(ek)
	if found {
		s.b.closeQuiet(closer)
	}
	return found
}

// Put sets map key k to v.
func (s *Map[K, V]) Put(k K, v V) {
	ek, ok := s.entryKey(k)
	if !ok {
		return
	}
	s.b.val = s.vc.Append(s.b.val[:0], v)
	s.b.set(ek, s.b.val)
}

// Delete removes map key k.
func (s *Map[K, V]) Delete(k K) {
	if ek, ok := s.entryKey(k); ok {
		s.b.delete(ek)
	}
}

// All iterates over the map of the current key in the order of the encoded
// map keys (numeric order for integer and float keys, byte order for strings).
// It sees the map as it was when iteration started: Put and Delete during
// iteration are allowed and take effect, but the running iteration does not
// see them. The current key must not change during iteration.
func (s *Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		p, ok := s.b.prefix(s.si.ID)
		if !ok {
			return
		}
		n := len(p)
		s.b.iterate(p, func(ek, raw []byte) bool {
			k, err := s.kc.Decode(ek[n:])
			if err != nil {
				s.b.decodeErr(s.si, "map key", err)
				return false
			}
			v, err := s.vc.Decode(raw)
			if err != nil {
				s.b.decodeErr(s.si, "map value", err)
				return false
			}
			return yield(k, v)
		})
	}
}

// Keys iterates over the map keys of the current key, like All.
func (s *Map[K, V]) Keys() iter.Seq[K] {
	return func(yield func(K) bool) {
		p, ok := s.b.prefix(s.si.ID)
		if !ok {
			return
		}
		n := len(p)
		s.b.iterate(p, func(ek, _ []byte) bool {
			k, err := s.kc.Decode(ek[n:])
			if err != nil {
				s.b.decodeErr(s.si, "map key", err)
				return false
			}
			return yield(k)
		})
	}
}

// IsEmpty reports whether the map of the current key has no entries.
func (s *Map[K, V]) IsEmpty() bool {
	p, ok := s.b.prefix(s.si.ID)
	if !ok {
		return true
	}
	empty := true
	s.b.iterate(p, func(_, _ []byte) bool {
		empty = false
		return false
	})
	return empty
}

// Clear removes every entry of the map of the current key. It deletes the
// entries one by one (point tombstones): a range tombstone per cleared map
// would slow down every later read in the batch and memtable.
func (s *Map[K, V]) Clear() {
	p, ok := s.b.prefix(s.si.ID)
	if !ok {
		return
	}
	s.b.iterate(p, func(ek, _ []byte) bool {
		s.b.delete(ek)
		return true
	})
}

// List is a list per key, stored as one Pebble entry whose value is the
// concatenation of length-prefixed elements. Add writes a Pebble merge
// operand (Pebble's default concatenating merger), so it does not read the
// list.
type List[V any] struct {
	b  *Backend
	si *stateInfo
	c  Codec[V]
	// scratch for one encoded element
	elem []byte
}

// NewList registers (or finds) the list state name.
func NewList[V any](b *Backend, name string, c Codec[V]) (*List[V], error) {
	if err := checkCodec(c, "list element"); err != nil {
		return nil, err
	}
	si, err := b.register(name, KindList, "", c.Fingerprint(), nil, c)
	if err != nil {
		return nil, err
	}
	return &List[V]{b: b, si: si, c: c}, nil
}

func (s *List[V]) appendElem(dst []byte, v V) []byte {
	s.elem = s.c.Append(s.elem[:0], v)
	dst = binary.AppendUvarint(dst, uint64(len(s.elem)))
	return append(dst, s.elem...)
}

// Add appends v to the list of the current key.
func (s *List[V]) Add(v V) {
	k, ok := s.b.prefix(s.si.ID)
	if !ok {
		return
	}
	s.b.val = s.appendElem(s.b.val[:0], v)
	s.b.merge(k, s.b.val)
}

// raw returns a copy of the stored list of the current key.
func (s *List[V]) raw() ([]byte, bool) {
	k, ok := s.b.prefix(s.si.ID)
	if !ok {
		return nil, false
	}
	v, closer, found := s.b.get(k)
	if !found {
		return nil, false
	}
	out := append([]byte(nil), v...)
	s.b.closeQuiet(closer)
	return out, true
}

// decodeEach calls fn for each element of the encoded list raw until fn
// returns false.
func (s *List[V]) decodeEach(raw []byte, fn func(V) bool) {
	for len(raw) > 0 {
		n, k := binary.Uvarint(raw)
		if k <= 0 || n > uint64(len(raw)-k) {
			s.b.decodeErr(s.si, "list", errors.New("corrupt element framing"))
			return
		}
		v, err := s.c.Decode(raw[k : k+int(n)])
		if err != nil {
			s.b.decodeErr(s.si, "list element", err)
			return
		}
		raw = raw[k+int(n):]
		if !fn(v) {
			return
		}
	}
}

// All iterates over the list of the current key, oldest element first. It
// sees the list as it was when iteration started.
func (s *List[V]) All() iter.Seq[V] {
	return func(yield func(V) bool) {
		if raw, ok := s.raw(); ok {
			s.decodeEach(raw, yield)
		}
	}
}

// Get returns the list of the current key (nil if empty).
func (s *List[V]) Get() []V {
	var out []V
	if raw, ok := s.raw(); ok {
		s.decodeEach(raw, func(v V) bool {
			out = append(out, v)
			return true
		})
	}
	return out
}

// Update replaces the list of the current key with vs (clears it if vs is
// empty).
func (s *List[V]) Update(vs []V) {
	k, ok := s.b.prefix(s.si.ID)
	if !ok {
		return
	}
	if len(vs) == 0 {
		s.b.delete(k)
		return
	}
	buf := s.b.val[:0]
	for _, v := range vs {
		buf = s.appendElem(buf, v)
	}
	s.b.val = buf
	s.b.set(k, buf)
}

// Clear removes the list of the current key.
func (s *List[V]) Clear() {
	if k, ok := s.b.prefix(s.si.ID); ok {
		s.b.delete(k)
	}
}

// Reducing keeps one value per key, folding every added value into it with
// reduce (Flink's ReducingState). reduce must be deterministic; it is not
// stored, so a restored job must pass the same function.
type Reducing[V any] struct {
	v      Value[V]
	reduce func(acc, v V) V
}

// NewReducing registers (or finds) the reducing state name.
func NewReducing[V any](b *Backend, name string, c Codec[V], reduce func(acc, v V) V) (*Reducing[V], error) {
	if err := checkCodec(c, "value"); err != nil {
		return nil, err
	}
	if reduce == nil {
		return nil, errors.New("statebackend: nil reduce function")
	}
	si, err := b.register(name, KindReducing, "", c.Fingerprint(), nil, c)
	if err != nil {
		return nil, err
	}
	return &Reducing[V]{v: Value[V]{b: b, si: si, c: c}, reduce: reduce}, nil
}

// Add folds v into the value of the current key (stores v if there is none).
func (s *Reducing[V]) Add(v V) {
	if acc, ok := s.v.Lookup(); ok {
		v = s.reduce(acc, v)
	}
	s.v.Set(v)
}

// Get returns the reduced value of the current key and whether there is one.
func (s *Reducing[V]) Get() (V, bool) { return s.v.Lookup() }

// Clear removes the value of the current key.
func (s *Reducing[V]) Clear() { s.v.Clear() }

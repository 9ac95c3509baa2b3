package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strings"
)

// Manifest is the commit record of one checkpoint: everything needed to
// restore it. It is immutable once written.
type Manifest struct {
	Version        uint16 // format version; Encode writes ManifestVersion when zero
	JobName        string
	CheckpointID   uint64 // > 0
	ParentID       uint64 // the previous completed checkpoint, 0 if none; < CheckpointID
	CreatedUnixMs  int64  // passed in by the coordinator
	MaxParallelism int    // number of key groups, in [1, MaxKeyGroups]
	Operators      []OperatorState
}

// OperatorState is the state of one operator; Subtasks[i] is subtask i.
type OperatorState struct {
	UID      string
	Subtasks []SubtaskState // len is the operator's parallelism
}

// SubtaskState is the state of one subtask.
type SubtaskState struct {
	KeyGroups      KeyGroupRange
	Files          []StateFile
	Descriptors    []StateDescriptor
	SourcePosition []byte // opaque, owned by the source; nil if none
	PendingCommit  []byte // opaque, owned by the sink; nil if none
}

// KeyGroupRange is the inclusive range [Start, End] of key groups.
type KeyGroupRange struct {
	Start, End int
}

// StateFile is one file of a subtask's state.
type StateFile struct {
	LocalName string // file name in the local state directory; one element
	Object    string // stored object name (shared or private)
	Size      int64
	CRC32C    uint32
}

// StateDescriptor records a registered state and the codecs it was written with.
type StateDescriptor struct {
	Name       string
	Kind       string // e.g. "value", "list", "map"
	KeyCodec   string // codec fingerprint
	ValueCodec string // codec fingerprint
}

// Format constants.
const (
	ManifestVersion = 1
	manifestMagic   = "WEIRMFST"

	MaxManifestSize = 64 << 20 // bytes
	MaxKeyGroups    = 1 << 15
	maxStringLen    = MaxNameLen
	maxOperators    = 1 << 16
	maxFiles        = 1 << 20 // per subtask
	maxDescriptors  = 1 << 12 // per subtask
)

// Encoding (version 1), integers as minimal unsigned varints (CreatedUnixMs:
// minimal zig-zag varint), strings and byte slices as varint length + bytes,
// lists as varint count + elements:
//
//	"WEIRMFST" | version uint16 LE | body | CRC32C-Castagnoli uint32 LE of all preceding bytes
//	body     = job checkpoint parent created maxParallelism count(operator)
//	operator = uid count(subtask)
//	subtask  = kgStart kgEnd count(file) count(descriptor) sourcePosition pendingCommit
//	file     = localName object size crc32c(uint32 LE)
//	descriptor = name kind keyCodec valueCodec

// Encode validates m and returns its encoding.
func Encode(m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	v := m.Version
	if v == 0 {
		v = ManifestVersion
	}
	b := []byte(manifestMagic)
	b = binary.LittleEndian.AppendUint16(b, v)
	b = appendString(b, m.JobName)
	b = binary.AppendUvarint(b, m.CheckpointID)
	b = binary.AppendUvarint(b, m.ParentID)
	b = binary.AppendVarint(b, m.CreatedUnixMs)
	b = binary.AppendUvarint(b, uint64(m.MaxParallelism))
	b = binary.AppendUvarint(b, uint64(len(m.Operators)))
	for _, op := range m.Operators {
		b = appendString(b, op.UID)
		b = binary.AppendUvarint(b, uint64(len(op.Subtasks)))
		for _, st := range op.Subtasks {
			b = binary.AppendUvarint(b, uint64(st.KeyGroups.Start))
			b = binary.AppendUvarint(b, uint64(st.KeyGroups.End))
			b = binary.AppendUvarint(b, uint64(len(st.Files)))
			for _, f := range st.Files {
				b = appendString(b, f.LocalName)
				b = appendString(b, f.Object)
				b = binary.AppendUvarint(b, uint64(f.Size))
				b = binary.LittleEndian.AppendUint32(b, f.CRC32C)
			}
			b = binary.AppendUvarint(b, uint64(len(st.Descriptors)))
			for _, d := range st.Descriptors {
				b = appendString(b, d.Name)
				b = appendString(b, d.Kind)
				b = appendString(b, d.KeyCodec)
				b = appendString(b, d.ValueCodec)
			}
			b = appendString(b, string(st.SourcePosition))
			b = appendString(b, string(st.PendingCommit))
		}
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("storage: manifest of checkpoint %d: %d bytes exceeds %d", m.CheckpointID, len(b), MaxManifestSize)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decode parses and validates an encoded manifest. Every length and count is
// checked against the remaining input and a fixed bound before allocating.
// Errors wrap ErrCorruptManifest or ErrUnknownVersion.
func Decode(data []byte) (*Manifest, error) {
	const header = len(manifestMagic) + 2
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrCorruptManifest, len(data), MaxManifestSize)
	}
	if len(data) < header+4 || string(data[:len(manifestMagic)]) != manifestMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorruptManifest)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, fmt.Errorf("%w: checksum %08x, want %08x", ErrCorruptManifest, got, sum)
	}
	m := &Manifest{Version: binary.LittleEndian.Uint16(data[len(manifestMagic):])}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("%w: %d (this build reads %d)", ErrUnknownVersion, m.Version, ManifestVersion)
	}
	d := decoder{b: body[header:]}
	m.JobName = d.string()
	m.CheckpointID = d.uvarint()
	m.ParentID = d.uvarint()
	m.CreatedUnixMs = d.varint()
	m.MaxParallelism = d.int(MaxKeyGroups)
	m.Operators = make([]OperatorState, d.count(maxOperators, 2))
	for i := range m.Operators {
		op := &m.Operators[i]
		op.UID = d.string()
		op.Subtasks = make([]SubtaskState, d.count(MaxKeyGroups, 6))
		for j := range op.Subtasks {
			st := &op.Subtasks[j]
			st.KeyGroups.Start = d.int(MaxKeyGroups)
			st.KeyGroups.End = d.int(MaxKeyGroups)
			if n := d.count(maxFiles, 7); n > 0 {
				st.Files = make([]StateFile, n)
			}
			for k := range st.Files {
				f := &st.Files[k]
				f.LocalName = d.string()
				f.Object = d.string()
				f.Size = int64(d.int(math.MaxInt64))
				f.CRC32C = d.uint32()
			}
			if n := d.count(maxDescriptors, 4); n > 0 {
				st.Descriptors = make([]StateDescriptor, n)
			}
			for k := range st.Descriptors {
				ds := &st.Descriptors[k]
				ds.Name, ds.Kind, ds.KeyCodec, ds.ValueCodec = d.string(), d.string(), d.string(), d.string()
			}
			st.SourcePosition = d.bytes()
			st.PendingCommit = d.bytes()
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// decoder reads the body; after the first error every read returns zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorruptManifest, fmt.Sprintf(format, args...))
		d.b = nil
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 || n != len(binary.AppendVarint(nil, v)) {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int(limit uint64) int {
	v := d.uvarint()
	if v > limit {
		d.fail("value %d exceeds %d", v, limit)
		return 0
	}
	return int(v)
}

// count reads a list length, bounded by limit and by the remaining input,
// given that each element takes at least minSize bytes.
func (d *decoder) count(limit uint64, minSize int) int {
	n := d.int(limit)
	if n > len(d.b)/minSize {
		d.fail("count %d exceeds remaining input", n)
		return 0
	}
	return n
}

func (d *decoder) uint32() uint32 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 4 {
		d.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.count(MaxManifestSize, 1)
	if d.err != nil || n == 0 {
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.count(maxStringLen, 1)
	if d.err != nil {
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

// Validate checks m's invariants; Encode and Decode call it. Errors wrap
// ErrCorruptManifest (or ErrUnknownVersion) and name the offending part.
func (m *Manifest) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: checkpoint %d: %s", ErrCorruptManifest, m.CheckpointID, fmt.Sprintf(format, args...))
	}
	if m.Version != 0 && m.Version != ManifestVersion {
		return fmt.Errorf("%w: %d", ErrUnknownVersion, m.Version)
	}
	if m.JobName == "" || len(m.JobName) > maxStringLen {
		return bad("job name length %d not in [1, %d]", len(m.JobName), maxStringLen)
	}
	if m.CheckpointID == 0 {
		return bad("checkpoint id 0")
	}
	if m.ParentID >= m.CheckpointID {
		return bad("parent %d not below checkpoint id", m.ParentID)
	}
	if m.MaxParallelism < 1 || m.MaxParallelism > MaxKeyGroups {
		return bad("max parallelism %d not in [1, %d]", m.MaxParallelism, MaxKeyGroups)
	}
	if len(m.Operators) > maxOperators {
		return bad("%d operators", len(m.Operators))
	}
	uids := make(map[string]bool, len(m.Operators))
	for _, op := range m.Operators {
		if _, err := EscapeUID(op.UID); err != nil {
			return bad("operator: %v", err)
		}
		if uids[op.UID] {
			return bad("operator %q twice", op.UID)
		}
		uids[op.UID] = true
		if n := len(op.Subtasks); n < 1 || n > m.MaxParallelism {
			return bad("operator %q: parallelism %d not in [1, %d]", op.UID, n, m.MaxParallelism)
		}
		for i, st := range op.Subtasks {
			if err := m.validateSubtask(&st); err != nil {
				return bad("operator %q subtask %d: %v", op.UID, i, err)
			}
		}
	}
	return nil
}

func (m *Manifest) validateSubtask(st *SubtaskState) error {
	kg := st.KeyGroups
	if kg.Start < 0 || kg.Start > kg.End || kg.End >= m.MaxParallelism {
		return fmt.Errorf("key groups [%d, %d] not within [0, %d]", kg.Start, kg.End, m.MaxParallelism-1)
	}
	if len(st.Files) > maxFiles || len(st.Descriptors) > maxDescriptors {
		return errors.New("too many files or descriptors")
	}
	locals := make(map[string]bool, len(st.Files))
	for _, f := range st.Files {
		if err := ValidElement(f.LocalName); err != nil {
			return fmt.Errorf("file: %v", err)
		}
		if locals[f.LocalName] {
			return fmt.Errorf("file %q twice", f.LocalName)
		}
		locals[f.LocalName] = true
		obj, err := ParseObject(f.Object)
		if err != nil {
			return fmt.Errorf("file %q: %v", f.LocalName, err)
		}
		switch {
		case obj.Kind == KindManifest:
			return fmt.Errorf("file %q: refers to a manifest", f.LocalName)
		case obj.Kind == KindPrivate && obj.Checkpoint > m.CheckpointID:
			return fmt.Errorf("file %q: refers to later checkpoint %d", f.LocalName, obj.Checkpoint)
		}
		if f.Size < 0 {
			return fmt.Errorf("file %q: negative size", f.LocalName)
		}
	}
	for _, d := range st.Descriptors {
		if d.Name == "" {
			return errors.New("state descriptor without name")
		}
		for _, s := range []string{d.Name, d.Kind, d.KeyCodec, d.ValueCodec} {
			if len(s) > maxStringLen || strings.ContainsRune(s, 0) {
				return fmt.Errorf("state descriptor %q: bad field", d.Name)
			}
		}
	}
	if len(st.SourcePosition) > MaxManifestSize || len(st.PendingCommit) > MaxManifestSize {
		return errors.New("opaque field too large")
	}
	return nil
}

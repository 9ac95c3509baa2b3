package sources

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/weirstream/weir"
)

// ErrPosition marks errors caused by a stored reader position that cannot be
// restored: corrupt, truncated, of an unknown version, written by another kind
// of source, for another subtask or parallelism, or out of range for the
// source. Check with errors.Is.
var ErrPosition = errors.New("sources: invalid position")

// A position, as returned by CheckpointedReader.Position, is
//
//	version      1 byte, positionVersion
//	kind         1 byte, the source type (posSlice, ...)
//	parallelism  uvarint
//	index        uvarint
//	fields       uvarints, fixed in number and meaning per kind
//	checksum     4 bytes, big-endian CRC-32C of everything before
//
// The fields of each kind are a fingerprint of the input (so that a position
// is not applied to a different input) followed by how far the reader got:
//
//	slice     len(values), records returned
//	sequence  Keys, records returned
//	lines     file size, byte offset of the next line
//	words     uint64(Seed), WordsPerLine, records returned
//	lanes     a rescaled sequence or words (lanes.go)
const positionVersion = 1

type posKind byte

const (
	posSlice posKind = iota + 1
	posSequence
	posLines
	posWords
	posLanes // a generator after a rescale, see lanes.go
)

func (k posKind) String() string {
	switch k {
	case posSlice:
		return "slice"
	case posSequence:
		return "sequence"
	case posLines:
		return "lines"
	case posWords:
		return "words"
	case posLanes:
		return "lanes"
	}
	return fmt.Sprintf("unknown source kind %d", byte(k))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodePosition returns the position of subtask index of p of a source of
// kind, with the kind's fields (see positionVersion).
func encodePosition(kind posKind, index, p int, fields ...uint64) []byte {
	b := make([]byte, 0, 2+binary.MaxVarintLen64*(2+len(fields))+4)
	b = append(b, positionVersion, byte(kind))
	b = binary.AppendUvarint(b, uint64(p))
	b = binary.AppendUvarint(b, uint64(index))
	for _, f := range fields {
		b = binary.AppendUvarint(b, f)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// positionErrorf returns an error wrapping ErrPosition, for example
// "sources: invalid position: lines: truncated".
func positionErrorf(source posKind, format string, args ...any) error {
	return fmt.Errorf("%w: %s: "+format, append([]any{ErrPosition, source}, args...)...)
}

// decodePosition checks that b is a position of a source of kind written by
// subtask info.Index of info.Parallelism and returns its n fields.
func decodePosition(kind posKind, info weir.SubtaskInfo, b []byte, n int) ([]uint64, error) {
	f, err := decodeFields(kind, info, b)
	if err != nil {
		return nil, err
	}
	if len(f) != n {
		return nil, positionErrorf(kind, "%d fields, want %d", len(f), n)
	}
	return f, nil
}

// owned returns how many of the items i, i+p, i+2p, ... are < n.
func owned(n int64, i, p int) int64 {
	if int64(i) >= n {
		return 0
	}
	return (n-int64(i)-1)/int64(p) + 1
}

package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/weirstream/weir"
)

// ErrPosition marks a checkpointed source position that cannot be used:
// damaged, of another topic, or of another subtask or parallelism.
var ErrPosition = errors.New("kafka source: invalid position")

// A source position is
//
//	version      1 byte (1)
//	parallelism  uvarint
//	index        uvarint
//	topic        uvarint length, then the name
//	count        uvarint
//	count times: partition uvarint, next offset varint, newest timestamp varint
//	checksum     4 bytes, big-endian CRC-32C of everything before
const positionVersion = 1

type partPosition struct {
	next    int64
	highest int64
}

func encodeSourcePosition(topic string, info weir.SubtaskInfo, parts []*partState) []byte {
	b := []byte{positionVersion}
	b = binary.AppendUvarint(b, uint64(info.Parallelism))
	b = binary.AppendUvarint(b, uint64(info.Index))
	b = binary.AppendUvarint(b, uint64(len(topic)))
	b = append(b, topic...)
	b = binary.AppendUvarint(b, uint64(len(parts)))
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(p.partition))
		b = binary.AppendVarint(b, p.next)
		b = binary.AppendVarint(b, p.highest)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeSourcePosition(b []byte, topic string, info weir.SubtaskInfo) (map[int32]partPosition, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: topic %s subtask %d: %s", ErrPosition, topic, info.Index, fmt.Sprintf(format, args...))
	}
	if len(b) < 5 {
		return nil, bad("%d bytes, too short", len(b))
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(b[len(b)-4:]); got != want {
		return nil, bad("checksum %08x, want %08x", got, want)
	}
	if body[0] != positionVersion {
		return nil, bad("version %d, want %d", body[0], positionVersion)
	}
	d := &wire{b: body[1:]}
	p, idx := d.uvarint(), d.uvarint()
	if int(p) != info.Parallelism || int(idx) != info.Index {
		return nil, bad("taken by subtask %d of %d, restored into subtask %d of %d", idx, p, info.Index, info.Parallelism)
	}
	if t := string(d.bytes(int(d.uvarint()))); d.err != nil {
		return nil, bad("truncated topic name")
	} else if t != topic {
		return nil, bad("taken from topic %q", t)
	}
	n := d.uvarint()
	out := make(map[int32]partPosition, min(n, 1<<16))
	for range n {
		part := d.uvarint()
		pp := partPosition{next: d.varint(), highest: d.varint()}
		if d.err != nil {
			return nil, bad("truncated")
		}
		out[int32(part)] = pp
	}
	if len(d.b) != 0 {
		return nil, bad("%d bytes after the partitions", len(d.b))
	}
	return out, nil
}

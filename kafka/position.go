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
	d := body[1:]
	uv := func() uint64 {
		v, n := binary.Uvarint(d)
		if n <= 0 {
			d = nil
			return 0
		}
		d = d[n:]
		return v
	}
	sv := func() int64 {
		v, n := binary.Varint(d)
		if n <= 0 {
			d = nil
			return 0
		}
		d = d[n:]
		return v
	}
	p, idx := uv(), uv()
	if int(p) != info.Parallelism || int(idx) != info.Index {
		return nil, bad("taken by subtask %d of %d, restored into subtask %d of %d (rescaling a Kafka source is not supported yet)", idx, p, info.Index, info.Parallelism)
	}
	tl := uv()
	if uint64(len(d)) < tl {
		return nil, bad("truncated topic name")
	}
	if t := string(d[:tl]); t != topic {
		return nil, bad("taken from topic %q", t)
	}
	d = d[tl:]
	n := uv()
	out := make(map[int32]partPosition, n)
	for range n {
		part := uv()
		pp := partPosition{next: sv(), highest: sv()}
		if d == nil {
			return nil, bad("truncated")
		}
		out[int32(part)] = pp
	}
	if len(d) != 0 {
		return nil, bad("%d bytes after the partitions", len(d))
	}
	return out, nil
}

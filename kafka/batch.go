package kafka

import (
	"encoding/binary"
	"hash/crc32"
)

// Message is one Kafka record as a sink writes it.
type Message struct {
	Key     []byte // nil: no key (spread over partitions)
	Value   []byte
	Headers []Header
	Time    int64 // milliseconds since the epoch; 0: the time of writing
}

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// batchBuilder encodes records into one record batch of the v2 format
// (magic 2), the only format Kafka 4 writes: a header (base offset, length,
// leader epoch, magic, CRC-32C, attributes, last offset delta, first and
// max timestamp, producer id and epoch, base sequence, record count), then
// the records, each with varint lengths and deltas. It writes the int32 size
// prefix of a record set too, as a produce request carries it.
type batchBuilder struct {
	buf     []byte
	count   int32
	firstTS int64
	maxTS   int64
}

const (
	setSizeLen     = 4
	batchHeaderLen = 61
	// attrLogAppendTime marks a batch whose timestamps the broker set.
	attrLogAppendTime = 1 << 3
	// attrTransactional marks the records of a transaction.
	attrTransactional = 1 << 4
)

func (b *batchBuilder) reset() {
	b.buf = b.buf[:0]
	b.count = 0
}

func (b *batchBuilder) empty() bool { return b.count == 0 }

// size is the encoded size so far.
func (b *batchBuilder) size() int { return len(b.buf) }

// add appends one record; ts is in milliseconds.
func (b *batchBuilder) add(m *Message, ts int64) {
	if b.count == 0 {
		b.buf = append(b.buf[:0], make([]byte, setSizeLen+batchHeaderLen)...)
		b.firstTS, b.maxTS = ts, ts
	}
	if ts > b.maxTS {
		b.maxTS = ts
	}
	var body [5 * binary.MaxVarintLen64]byte
	h := body[:0]
	h = append(h, 0) // attributes
	h = binary.AppendVarint(h, ts-b.firstTS)
	h = binary.AppendVarint(h, int64(b.count))
	size := len(h) + bytesLen(m.Key) + bytesLen(m.Value) + varintLen(int64(len(m.Headers)))
	for _, hd := range m.Headers {
		size += varintLen(int64(len(hd.Key))) + len(hd.Key) + bytesLen(hd.Value)
	}
	b.buf = binary.AppendVarint(b.buf, int64(size))
	b.buf = append(b.buf, h...)
	b.buf = appendBytes(b.buf, m.Key)
	b.buf = appendBytes(b.buf, m.Value)
	b.buf = binary.AppendVarint(b.buf, int64(len(m.Headers)))
	for _, hd := range m.Headers {
		b.buf = binary.AppendVarint(b.buf, int64(len(hd.Key)))
		b.buf = append(b.buf, hd.Key...)
		b.buf = appendBytes(b.buf, hd.Value)
	}
	b.count++
}

// appendBytes appends a varint length and the bytes; nil is null (-1), as
// a tombstone's value must be.
func appendBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	return append(binary.AppendVarint(b, int64(len(v))), v...)
}

func bytesLen(v []byte) int {
	if v == nil {
		return varintLen(-1)
	}
	return varintLen(int64(len(v))) + len(v)
}

func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// finish fills in the header and returns the record set: size prefix and
// batch. producerID -1 writes a batch outside any producer session.
func (b *batchBuilder) finish(producerID int64, epoch int16, baseSequence int32, transactional bool) []byte {
	buf := b.buf
	be := binary.BigEndian
	be.PutUint32(buf[0:], uint32(len(buf)-setSizeLen))
	h := buf[setSizeLen:]
	be.PutUint64(h[0:], 0)                              // base offset
	be.PutUint32(h[8:], uint32(len(buf)-setSizeLen-12)) // batch length: after this field
	be.PutUint32(h[12:], 0xffffffff)                    // partition leader epoch: -1
	h[16] = 2                                           // magic
	var attrs uint16
	if transactional {
		attrs |= attrTransactional
	}
	be.PutUint16(h[21:], attrs)
	be.PutUint32(h[23:], uint32(b.count-1)) // last offset delta
	be.PutUint64(h[27:], uint64(b.firstTS))
	be.PutUint64(h[35:], uint64(b.maxTS))
	be.PutUint64(h[43:], uint64(producerID))
	be.PutUint16(h[51:], uint16(epoch))
	be.PutUint32(h[53:], uint32(baseSequence))
	be.PutUint32(h[57:], uint32(b.count))
	be.PutUint32(h[17:], crc32.Checksum(h[21:], castagnoli))
	return buf
}

// murmur2 is the hash of the Java client's default partitioner
// (org.apache.kafka.common.utils.Utils.murmur2).
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := binary.LittleEndian.Uint32(data[i:])
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

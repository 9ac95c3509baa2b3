package kafka

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/fetch"
	"github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/segmentio/kafka-go/protocol/saslauthenticate"
	"github.com/segmentio/kafka-go/protocol/saslhandshake"
	"github.com/segmentio/kafka-go/sasl"
)

// The source fetches on a connection of its own rather than through
// kafka-go's Transport: the Transport decodes a fetch response's records
// through kafka-go's generic reader, copying every record twice, and that
// halved the source's throughput. A fetchConn writes requests with
// kafka-go's protocol encoder (the same fetch.Request, version 11) and
// parses the response itself, records in place in the response buffer,
// batch CRCs checked, aborted-transaction lists kept.

const fetchVersion = 11

// fetchConn is a connection to one broker for fetch requests: TLS and SASL
// as the Conn says, one request at a time.
type fetchConn struct {
	nc       net.Conn
	r        *bufio.Reader
	clientID string
	corr     int32
	req      bytes.Buffer
}

func (c *client) dialFetch(ctx context.Context, addr string) (*fetchConn, error) {
	timeout := c.conn.DialTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		nc.SetDeadline(deadline)
	}
	host, portStr, _ := net.SplitHostPort(addr)
	if c.conn.TLS != nil {
		cfg := c.conn.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS with %s: %w", addr, err)
		}
		nc = tc
	}
	fc := &fetchConn{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), clientID: c.t.ClientID}
	if m := c.conn.SASL; m != nil {
		port, _ := strconv.Atoi(portStr)
		if err := fc.authenticate(sasl.WithMetadata(ctx, &sasl.Metadata{Host: host, Port: port}), m); err != nil {
			nc.Close()
			return nil, fmt.Errorf("SASL %s with %s: %w", m.Name(), addr, err)
		}
	}
	nc.SetDeadline(time.Time{})
	return fc, nil
}

func (fc *fetchConn) roundTrip(version int16, req protocol.Message) (protocol.Message, error) {
	fc.corr++
	return protocol.RoundTrip(struct {
		io.Reader
		io.Writer
	}{fc.r, fc.nc}, version, fc.corr, fc.clientID, req)
}

func (fc *fetchConn) authenticate(ctx context.Context, m sasl.Mechanism) error {
	res, err := fc.roundTrip(1, &saslhandshake.Request{Mechanism: m.Name()})
	if err != nil {
		return err
	}
	if code := res.(*saslhandshake.Response).ErrorCode; code != 0 {
		return kafkago.Error(code)
	}
	sess, state, err := m.Start(ctx)
	if err != nil {
		return err
	}
	for done := false; !done; {
		res, err := fc.roundTrip(1, &saslauthenticate.Request{AuthBytes: state})
		if err != nil {
			if errors.Is(err, io.EOF) {
				return kafkago.SASLAuthenticationFailed
			}
			return err
		}
		ar := res.(*saslauthenticate.Response)
		if ar.ErrorCode != 0 {
			return fmt.Errorf("%w: %s", kafkago.Error(ar.ErrorCode), ar.ErrorMessage)
		}
		if done, state, err = sess.Next(ctx, ar.AuthBytes); err != nil {
			return err
		}
	}
	return nil
}

func (fc *fetchConn) close() { fc.nc.Close() }

// fetch sends req and returns the parsed response. deadline bounds the
// round trip (the broker holds a fetch up to its MaxWaitTime).
func (fc *fetchConn) fetch(req *fetch.Request, deadline time.Time) (*fetchResponse, error) {
	fc.corr++
	fc.req.Reset()
	if err := protocol.WriteRequest(&fc.req, fetchVersion, fc.corr, fc.clientID, req); err != nil {
		return nil, err
	}
	fc.nc.SetDeadline(deadline)
	if _, err := fc.nc.Write(fc.req.Bytes()); err != nil {
		return nil, err
	}
	var hdr [8]byte
	if _, err := io.ReadFull(fc.r, hdr[:]); err != nil {
		return nil, err
	}
	size := int(binary.BigEndian.Uint32(hdr[:4]))
	if corr := int32(binary.BigEndian.Uint32(hdr[4:])); corr != fc.corr {
		return nil, fmt.Errorf("fetch response for request %d, want %d", corr, fc.corr)
	}
	if size < 4 || size > 1<<30 {
		return nil, fmt.Errorf("fetch response of %d bytes", size)
	}
	body := make([]byte, size-4)
	if _, err := io.ReadFull(fc.r, body); err != nil {
		return nil, err
	}
	return parseFetchResponse(body)
}

// fetchResponse is a fetch response (version 11), with each partition's
// records still encoded.
type fetchResponse struct {
	errorCode int16
	parts     []fetchPartition
}

type fetchPartition struct {
	topic         string
	partition     int32
	errorCode     int16
	highWatermark int64
	lastStable    int64 // last stable offset: the end of what read_committed may read
	aborted       []abortedTxn
	records       []byte // record batches, as on the wire
}

// wire reads big-endian fields; the first error sticks.
type wire struct {
	b   []byte
	err error
}

func (w *wire) need(n int) bool {
	if w.err == nil && len(w.b) < n {
		w.err = io.ErrUnexpectedEOF
	}
	return w.err == nil
}

func (w *wire) i8() int8 {
	if !w.need(1) {
		return 0
	}
	v := int8(w.b[0])
	w.b = w.b[1:]
	return v
}

func (w *wire) i16() int16 {
	if !w.need(2) {
		return 0
	}
	v := int16(binary.BigEndian.Uint16(w.b))
	w.b = w.b[2:]
	return v
}

func (w *wire) i32() int32 {
	if !w.need(4) {
		return 0
	}
	v := int32(binary.BigEndian.Uint32(w.b))
	w.b = w.b[4:]
	return v
}

func (w *wire) i64() int64 {
	if !w.need(8) {
		return 0
	}
	v := int64(binary.BigEndian.Uint64(w.b))
	w.b = w.b[8:]
	return v
}

func (w *wire) bytes(n int) []byte {
	if n < 0 || !w.need(n) {
		if n < 0 && w.err == nil {
			w.err = fmt.Errorf("negative length %d", n)
		}
		return nil
	}
	v := w.b[:n:n]
	w.b = w.b[n:]
	return v
}

func (w *wire) varint() int64 {
	if w.err != nil {
		return 0
	}
	v, n := binary.Varint(w.b)
	if n <= 0 {
		w.err = errors.New("bad varint")
		return 0
	}
	w.b = w.b[n:]
	return v
}

func (w *wire) uvarint() uint64 {
	if w.err != nil {
		return 0
	}
	v, n := binary.Uvarint(w.b)
	if n <= 0 {
		w.err = errors.New("bad uvarint")
		return 0
	}
	w.b = w.b[n:]
	return v
}

// varBytes reads a varint length and that many bytes; -1 is nil.
func (w *wire) varBytes() []byte {
	n := w.varint()
	if n == -1 {
		return nil
	}
	return w.bytes(int(n))
}

func parseFetchResponse(b []byte) (*fetchResponse, error) {
	w := &wire{b: b}
	w.i32() // throttle time
	res := &fetchResponse{errorCode: w.i16()}
	w.i32() // session id
	for range w.i32() {
		topic := string(w.bytes(int(w.i16())))
		for range w.i32() {
			p := fetchPartition{topic: topic, partition: w.i32(), errorCode: w.i16(), highWatermark: w.i64()}
			p.lastStable = w.i64()
			w.i64() // log start offset
			if n := w.i32(); n > 0 {
				p.aborted = make([]abortedTxn, n)
				for i := range p.aborted {
					p.aborted[i] = abortedTxn{producerID: w.i64(), firstOffset: w.i64()}
				}
			}
			w.i32() // preferred read replica
			if n := w.i32(); n > 0 {
				p.records = w.bytes(int(n))
			}
			if w.err != nil {
				return nil, fmt.Errorf("fetch response: %w", w.err)
			}
			res.parts = append(res.parts, p)
		}
	}
	if w.err != nil {
		return nil, fmt.Errorf("fetch response: %w", w.err)
	}
	return res, nil
}

// parseBatches decodes the record batches of one partition, in place:
// keys, values and headers point into b (or into a decompressed copy). A
// batch cut off at the end (the broker stops at the size limit) is left
// for the next fetch. Records are v2 (magic 2), the only format Kafka 4
// stores.
func parseBatches(topic string, part int32, b []byte, out []fetchedBatch) ([]fetchedBatch, error) {
	for len(b) >= 12 {
		base := int64(binary.BigEndian.Uint64(b))
		length := int(int32(binary.BigEndian.Uint32(b[8:])))
		if length < 49 || len(b) < 12+length {
			break // cut off
		}
		batch := b[12 : 12+length]
		b = b[12+length:]
		if magic := batch[4]; magic != 2 {
			return out, fmt.Errorf("batch at offset %d: message format v%d (magic %d), want v2", base, magic, magic)
		}
		if got, want := crc32.Checksum(batch[9:], castagnoli), binary.BigEndian.Uint32(batch[5:]); got != want {
			return out, fmt.Errorf("batch at offset %d: CRC-32C %08x, want %08x (corrupt)", base, got, want)
		}
		h := &wire{b: batch[9:]}
		attrs := h.i16()
		lastDelta := h.i32()
		firstTS := h.i64()
		maxTS := h.i64()
		fb := fetchedBatch{base: base, last: base + int64(lastDelta), producerID: h.i64(),
			transactional: attrs&attrTransactional != 0, control: attrs&(1<<5) != 0}
		h.i16() // producer epoch
		h.i32() // base sequence
		n := int(h.i32())
		body := h.b
		if c := compress.Compression(attrs & 7); c != 0 {
			codec := c.Codec()
			if codec == nil {
				return out, fmt.Errorf("batch at offset %d: unknown compression codec %d", base, c)
			}
			r := codec.NewReader(bytes.NewReader(body))
			var err error
			body, err = io.ReadAll(r)
			r.Close()
			if err != nil {
				return out, fmt.Errorf("batch at offset %d: %s: %w", base, c, err)
			}
		}
		rw := &wire{b: body}
		if fb.control {
			// One control record: key = version int16, type int16 (0
			// abort, 1 commit).
			if n > 0 {
				rw.varint() // length
				rw.i8()     // attributes
				rw.varint() // timestamp delta
				rw.varint() // offset delta
				key := rw.varBytes()
				if rw.err == nil && len(key) >= 4 {
					fb.abortMarker = binary.BigEndian.Uint16(key[2:]) == 0
				}
			}
			out = append(out, fb)
			continue
		}
		fb.records = make([]Record, 0, n)
		for range n {
			rw.varint() // length
			rw.i8()     // attributes
			tsDelta := rw.varint()
			offDelta := rw.varint()
			r := Record{Topic: topic, Partition: part, Offset: base + offDelta, Time: firstTS + tsDelta}
			if attrs&attrLogAppendTime != 0 {
				// The broker stamped the batch: its max timestamp is
				// every record's time.
				r.Time = maxTS
			}
			r.Key = rw.varBytes()
			r.Value = rw.varBytes()
			if nh := rw.varint(); nh > 0 {
				r.Headers = make([]Header, nh)
				for i := range r.Headers {
					r.Headers[i] = Header{Key: string(rw.varBytes()), Value: rw.varBytes()}
				}
			}
			if rw.err != nil {
				return out, fmt.Errorf("batch at offset %d: record %d: %w", base, len(fb.records), rw.err)
			}
			fb.records = append(fb.records, r)
		}
		out = append(out, fb)
	}
	return out, nil
}

// leaders returns the address of the leader of each partition of topic.
func (c *client) leaders(ctx context.Context, topic string) (map[int32]string, error) {
	res, err := c.roundTrip(ctx, &metadata.Request{TopicNames: []string{topic}})
	if err != nil {
		return nil, err
	}
	md := res.(*metadata.Response)
	addrs := map[int32]string{}
	for _, b := range md.Brokers {
		addrs[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
	}
	out := map[int32]string{}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.ErrorCode != 0 {
			return nil, fmt.Errorf("metadata of topic %q: %w", topic, kafkago.Error(t.ErrorCode))
		}
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return nil, fmt.Errorf("metadata of topic %q partition %d: %w", topic, p.PartitionIndex, kafkago.Error(p.ErrorCode))
			}
			a, ok := addrs[p.LeaderID]
			if !ok {
				return nil, fmt.Errorf("topic %q partition %d: no leader", topic, p.PartitionIndex)
			}
			out[p.PartitionIndex] = a
		}
	}
	return out, nil
}

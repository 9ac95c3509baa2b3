package kafka

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/weirstream/weir"
)

// TestBatchDecodes encodes batches and decodes them with kafka-go's own
// decoder, which checks the CRC, and compares every field.
func TestBatchDecodes(t *testing.T) {
	var b batchBuilder
	msgs := []Message{
		{Key: []byte("k1"), Value: []byte("v1")},
		{Key: nil, Value: []byte("no key"), Headers: []Header{{Key: "h", Value: []byte("x")}, {Key: "empty"}}},
		{Key: []byte{}, Value: nil},
		{Key: []byte("big"), Value: bytes.Repeat([]byte("z"), 300)},
	}
	for i := range msgs {
		b.add(&msgs[i], 1_700_000_000_000+int64(i)*7)
	}
	for _, tc := range []struct {
		pid   int64
		epoch int16
		seq   int32
		txn   bool
	}{{-1, -1, -1, false}, {4242, 3, 17, true}} {
		set := b.finish(tc.pid, tc.epoch, tc.seq, tc.txn)
		var rs protocol.RecordSet
		if _, err := rs.ReadFrom(bufio.NewReader(bytes.NewReader(set))); err != nil {
			t.Fatal(err)
		}
		stream := rs.Records.(*protocol.RecordStream)
		if len(stream.Records) != 1 {
			t.Fatalf("%d batches, want 1", len(stream.Records))
		}
		rb := stream.Records[0].(*protocol.RecordBatch)
		if rb.ProducerID != tc.pid || rb.ProducerEpoch != tc.epoch || rb.BaseSequence != tc.seq || rb.Attributes.Transactional() != tc.txn {
			t.Fatalf("batch header %+v, want %+v", rb, tc)
		}
		batches, err := parseBatches("t", 0, set[4:], nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(batches) != 1 || batches[0].producerID != tc.pid || batches[0].transactional != tc.txn || batches[0].last != int64(len(msgs)-1) {
			t.Fatalf("parsed batch %+v", batches)
		}
		got := batches[0].records
		if len(got) != len(msgs) {
			t.Fatalf("%d records, want %d", len(got), len(msgs))
		}
		for i, r := range got {
			m := msgs[i]
			if r.Offset != int64(i) || r.Time != 1_700_000_000_000+int64(i)*7 || !bytes.Equal(r.Key, m.Key) || (r.Key == nil) != (m.Key == nil) || !bytes.Equal(r.Value, m.Value) || len(r.Headers) != len(m.Headers) {
				t.Fatalf("record %d: %+v, want %+v", i, r, m)
			}
			for j, h := range r.Headers {
				if h.Key != m.Headers[j].Key || !bytes.Equal(h.Value, m.Headers[j].Value) {
					t.Fatalf("record %d header %d: %+v, want %+v", i, j, h, m.Headers[j])
				}
			}
		}
	}
	// A damaged byte fails the CRC.
	set := b.finish(-1, -1, -1, false)
	set[len(set)-3] ^= 1
	if _, err := parseBatches("t", 0, set[4:], nil); err == nil || !strings.Contains(err.Error(), "CRC") {
		t.Fatalf("a damaged batch: %v, want a CRC error", err)
	}
	// A batch cut off at the end is left for the next fetch.
	set = b.finish(-1, -1, -1, false)
	if got, err := parseBatches("t", 0, set[4:len(set)-10], nil); err != nil || len(got) != 0 {
		t.Fatalf("a cut-off batch: %v, %v", got, err)
	}
}

// TestMurmur2 checks the partitioner against the Java client's murmur2
// (values from Kafka's UtilsTest) and against kafka-go's port.
func TestMurmur2(t *testing.T) {
	for s, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := int32(murmur2([]byte(s))); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", s, got, want)
		}
	}
	parts := []int{0, 1, 2, 3, 4, 5, 6}
	for i := range 1000 {
		key := []byte{byte(i), byte(i >> 8), 'k', byte(i * 7)}[:1+i%4]
		want := kafkago.Murmur2Balancer{Consistent: true}.Balance(kafkago.Message{Key: key}, parts...)
		if got := int((murmur2(key) & 0x7fffffff) % 7); got != want {
			t.Fatalf("key %x: partition %d, kafka-go's %d", key, got, want)
		}
	}
}

func TestSourcePositionRoundTrip(t *testing.T) {
	info := weir.SubtaskInfo{Index: 1, Parallelism: 3}
	parts := []*partState{{partition: 1, next: 42, highest: weir.NoWatermark}, {partition: 4, next: 0, highest: 1234}}
	b := encodeSourcePosition("in", info, parts)
	got, err := decodeSourcePosition(b, "in", info)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].next != 42 || got[1].highest != weir.NoWatermark || got[4].highest != 1234 {
		t.Fatalf("decoded %+v", got)
	}
	for name, bad := range map[string]func() ([]byte, string, weir.SubtaskInfo){
		"other topic":   func() ([]byte, string, weir.SubtaskInfo) { return b, "out", info },
		"other subtask": func() ([]byte, string, weir.SubtaskInfo) { return b, "in", weir.SubtaskInfo{Index: 2, Parallelism: 3} },
		"rescaled":      func() ([]byte, string, weir.SubtaskInfo) { return b, "in", weir.SubtaskInfo{Index: 1, Parallelism: 4} },
		"damaged":       func() ([]byte, string, weir.SubtaskInfo) { c := bytes.Clone(b); c[5] ^= 1; return c, "in", info },
		"truncated":     func() ([]byte, string, weir.SubtaskInfo) { return b[:3], "in", info },
	} {
		p, topic, in := bad()
		if _, err := decodeSourcePosition(p, topic, in); !errors.Is(err, ErrPosition) {
			t.Errorf("%s: err %v, want ErrPosition", name, err)
		}
	}
}

func TestTxnStateRoundTrip(t *testing.T) {
	s := txnState{index: 2, pool: 3, pending: []pendingTxn{{slot: 0, id: "job-out-2-0", pid: 1000, epoch: 4, checkpoint: 7, started: 1_700_000_000_000}, {slot: 2, id: "job-out-2-2", pid: 1001, epoch: 0, checkpoint: 8, started: 1_700_000_001_000}}}
	got, err := decodeTxnState(s.encode(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if got.pool != 3 || len(got.pending) != 2 || got.pending[1] != s.pending[1] || got.pending[0] != s.pending[0] {
		t.Fatalf("decoded %+v, want %+v", got, s)
	}
	if _, err := decodeTxnState(s.encode(), 1); !errors.Is(err, ErrPendingTxn) {
		t.Fatalf("other subtask: %v", err)
	}
	b := s.encode()
	b[3] ^= 0x40
	if _, err := decodeTxnState(b, 2); !errors.Is(err, ErrPendingTxn) {
		t.Fatalf("damaged: %v", err)
	}
}

func TestDeserializers(t *testing.T) {
	type point struct {
		X, Y int
	}
	r := &Record{Key: []byte("k"), Value: []byte(`{"X":1,"Y":2}`)}
	if p, err := JSON[point]()(r); err != nil || p != (point{1, 2}) {
		t.Fatalf("JSON: %v, %v", p, err)
	}
	if _, err := JSON[point]()(&Record{Value: []byte(`{"X":`)}); err == nil {
		t.Fatal("JSON accepted a truncated object")
	}
	if s, _ := Strings()(r); s != `{"X":1,"Y":2}` {
		t.Fatalf("Strings: %q", s)
	}
	if b, _ := Bytes()(r); string(b) != `{"X":1,"Y":2}` {
		t.Fatalf("Bytes: %q", b)
	}
	if rec, _ := Records()(r); string(rec.Key) != "k" {
		t.Fatalf("Records: %+v", rec)
	}
}

// TestSubtaskWithoutPartitionsIsIdle: with more subtasks than partitions,
// a subtask that reads nothing is idle at once, even without an idle
// timeout, so it does not hold the job's event time back.
func TestSubtaskWithoutPartitionsIsIdle(t *testing.T) {
	r := &sourceReader[[]byte]{src: NewSource(Conn{}, "t", Bytes(), EventTime(0, 0)), now: time.Now, sent: weir.NoWatermark}
	if idle, changed := r.Idle(false); !idle || !changed {
		t.Fatalf("Idle = %v, %v; want true, true", idle, changed)
	}
	if idle, changed := r.Idle(false); !idle || changed {
		t.Fatalf("second Idle = %v, %v; want true, false", idle, changed)
	}
	if _, ok := r.Watermark(); ok {
		t.Fatal("a subtask without partitions emitted a watermark")
	}
}

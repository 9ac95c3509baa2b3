package kafka

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/produce"
	"github.com/segmentio/kafka-go/protocol/rawproduce"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/internal/testenv"
)

// The tests in this file run against a real broker that scripts/test
// starts (integration/kafka/broker.sh); see package testenv.

func testConn(t *testing.T) Conn {
	t.Helper()
	return Conn{Brokers: []string{testenv.Kafka(t)}, RequestTimeout: 20 * time.Second}
}

var topicSeq int

// testTopic creates a topic of partitions on the test broker and returns
// the connection, the topic and a client closed when the test ends.
func testTopic(t *testing.T, partitions int) (Conn, string, *client) {
	t.Helper()
	conn := testConn(t)
	topic := createTopic(t, conn, partitions)
	c, err := newClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return conn, topic, c
}

// createTopic creates a topic with a name unique to the test.
func createTopic(t *testing.T, c Conn, partitions int) string {
	t.Helper()
	topicSeq++
	name := fmt.Sprintf("%s-%d-%d", t.Name(), time.Now().UnixNano(), topicSeq)
	name = sanitize(name)
	cl := &kafkago.Client{Addr: kafkago.TCP(c.Brokers...), Timeout: 20 * time.Second}
	res, err := cl.CreateTopics(context.Background(), &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{Topic: name, NumPartitions: partitions, ReplicationFactor: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Errors[name]; err != nil {
		t.Fatal(err)
	}
	return name
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// rawProduce writes one batch to a partition: plain when pid is -1,
// else transactional.
func rawProduce(t *testing.T, c *client, txn string, topic string, part int32, pid int64, epoch int16, seq int32, values ...string) {
	t.Helper()
	var b batchBuilder
	for _, v := range values {
		b.add(&Message{Value: []byte(v)}, time.Now().UnixMilli())
	}
	produceSet(t, c, txn, topic, part, b.finish(pid, epoch, seq, pid >= 0))
}

// produceAt writes plain records with the timestamp ts to a partition.
func produceAt(t *testing.T, c *client, topic string, part int32, ts int64, values ...string) {
	t.Helper()
	var b batchBuilder
	for _, v := range values {
		b.add(&Message{Value: []byte(v)}, ts)
	}
	produceSet(t, c, "", topic, part, b.finish(-1, -1, -1, false))
}

// produceSet writes a record set to a partition. A new topic's partitions
// may not have a leader yet: errors that say so (nothing was written) are
// retried for a while.
func produceSet(t *testing.T, c *client, txn string, topic string, part int32, set []byte) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := c.roundTrip(context.Background(), &rawproduce.Request{TransactionalID: txn, Acks: -1, Timeout: 10000,
			Topics: []rawproduce.RequestTopic{{Topic: topic, Partitions: []rawproduce.RequestPartition{{Partition: part, RecordSet: protocol.RawRecordSet{Reader: bytes.NewReader(set)}}}}}})
		if err != nil {
			t.Fatal(err)
		}
		var failed kafkago.Error
		for _, tp := range res.(*produce.Response).Topics {
			for _, p := range tp.Partitions {
				if p.ErrorCode != 0 {
					failed = kafkago.Error(p.ErrorCode)
				}
			}
		}
		switch {
		case failed == 0:
			return
		case (failed == kafkago.NotLeaderForPartition || failed == kafkago.LeaderNotAvailable || failed == kafkago.UnknownTopicOrPartition) && time.Now().Before(deadline):
			time.Sleep(100 * time.Millisecond)
		default:
			t.Fatalf("produce: %v", failed)
		}
	}
}

// readAll reads a topic to its current end with weir's source, one
// subtask over all partitions.
func readAll[T any](t *testing.T, c Conn, topic string, d Deserializer[T], opts ...SourceOption) []T {
	t.Helper()
	ctx := context.Background()
	src := NewSource(c, topic, d, append([]SourceOption{Bounded()}, opts...)...)
	r, err := src.Open(ctx, weir.SubtaskInfo{Index: 0, Parallelism: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []T
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		buf, err := r.Read(ctx, make([]T, 0, 256))
		out = append(out, buf...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("reading the topic took more than a minute")
	return nil
}

// TestReadCommittedAgainstBroker writes plain records, committed and
// aborted transactions, interleaved, and reads them back: read_committed
// returns exactly the plain and committed records, in offset order, and
// never a control record.
func TestReadCommittedAgainstBroker(t *testing.T) {
	conn, topic, c := testTopic(t, 1)
	ctx := context.Background()
	a, err := c.initProducer(ctx, topic+"-a", time.Minute, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.initProducer(ctx, topic+"-b", time.Minute, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range []txnID{a, b} {
		if err := c.addPartitions(ctx, tx, topic, []int32{0}); err != nil {
			t.Fatal(err)
		}
	}
	rawProduce(t, c, "", topic, 0, -1, -1, -1, "plain-1")
	rawProduce(t, c, a.id, topic, 0, a.pid, a.epoch, 0, "aborted-1", "aborted-2")
	rawProduce(t, c, b.id, topic, 0, b.pid, b.epoch, 0, "committed-1")
	rawProduce(t, c, "", topic, 0, -1, -1, -1, "plain-2")
	rawProduce(t, c, a.id, topic, 0, a.pid, a.epoch, 2, "aborted-3")
	rawProduce(t, c, b.id, topic, 0, b.pid, b.epoch, 1, "committed-2", "committed-3")
	if err := c.endTxn(ctx, a, false); err != nil {
		t.Fatal(err)
	}
	if err := c.endTxn(ctx, b, true); err != nil {
		t.Fatal(err)
	}
	// The same producer commits after an abort.
	a2, err := c.initProducer(ctx, a.id, time.Minute, a.pid, a.epoch)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.addPartitions(ctx, a2, topic, []int32{0}); err != nil {
		t.Fatal(err)
	}
	rawProduce(t, c, a2.id, topic, 0, a2.pid, a2.epoch, 0, "committed-4")
	if err := c.endTxn(ctx, a2, true); err != nil {
		t.Fatal(err)
	}
	rawProduce(t, c, "", topic, 0, -1, -1, -1, "plain-3")

	got := readAll(t, conn, topic, Strings())
	want := []string{"plain-1", "committed-1", "plain-2", "committed-2", "committed-3", "committed-4", "plain-3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read_committed read\n%q\nwant\n%q", got, want)
	}
	// read_uncommitted sees the aborted records too, and still no
	// markers: 10 records at offsets 0..12 (3 markers).
	all := readAll(t, conn, topic, Records(), ReadUncommitted())
	if len(all) != 10 {
		t.Fatalf("read_uncommitted read %d records, want 10", len(all))
	}
	for _, r := range all {
		if len(r.Value) == 0 {
			t.Fatalf("read_uncommitted returned a record without value (a control record?) at offset %d", r.Offset)
		}
	}
}

// TestSinkTransactions drives the exactly-once writer by hand: records are
// invisible to read_committed readers until Commit, a commit lost in a
// crash is redone by Recover from the pending description, a redo of an
// already finished commit changes nothing, and a writer that was replaced
// is fenced.
func TestSinkTransactions(t *testing.T) {
	conn := testConn(t)
	topic := createTopic(t, conn, 3)
	ctx := context.Background()
	info := weir.SubtaskInfo{Job: "test", UID: topic, Index: 0, Parallelism: 1, Logger: slog.New(slog.DiscardHandler)}
	sink := NewSink(conn, topic, StringValues(), WithDelivery(ExactlyOnce), TransactionalIDPrefix(topic))
	if err := sink.Recover(ctx, info, nil); err != nil {
		t.Fatal(err)
	}
	sw, err := sink.Open(ctx, info)
	if err != nil {
		t.Fatal(err)
	}
	w := sw.(*sinkWriter[string])
	write := func(w *sinkWriter[string], from, n int) {
		t.Helper()
		var batch []string
		for i := from; i < from+n; i++ {
			batch = append(batch, strconv.Itoa(i))
		}
		if err := w.Write(batch); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int { return len(readAll(t, conn, topic, Strings())) }

	write(w, 0, 100)
	p1, err := w.PreCommit(1)
	if err != nil {
		t.Fatal(err)
	}
	write(w, 100, 50) // the next transaction, open
	if n := count(); n != 0 {
		t.Fatalf("before the commit, read_committed sees %d records", n)
	}
	if err := w.Commit(1); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 100 {
		t.Fatalf("after commit 1: %d records, want 100", n)
	}
	p2, err := w.PreCommit(2)
	if err != nil {
		t.Fatal(err)
	}
	write(w, 150, 10) // lost with the crash
	// Crash: the writer is abandoned without Commit(2) or Close.

	sink2 := NewSink(conn, topic, StringValues(), WithDelivery(ExactlyOnce), TransactionalIDPrefix(topic))
	if err := sink2.Recover(ctx, info, p2); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 150 {
		t.Fatalf("after recovery: %d records, want 150 (the pending commit redone, the open transaction aborted)", n)
	}
	// The old writer is fenced: its next commit fails.
	if _, err := w.PreCommit(3); err == nil {
		if err := w.Commit(3); err == nil {
			t.Fatal("the replaced writer committed")
		}
	}
	// Redoing an older, finished commit is harmless.
	if err := NewSink(conn, topic, StringValues(), WithDelivery(ExactlyOnce), TransactionalIDPrefix(topic)).Recover(ctx, info, p1); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 150 {
		t.Fatalf("after redoing commit 1: %d records, want 150", n)
	}
	// The same redo with a transaction older than the timeout is
	// refused: the broker may have aborted it, which looks like a commit.
	st, err := decodeTxnState(p1, 0)
	if err != nil {
		t.Fatal(err)
	}
	st.pending[0].started = time.Now().Add(-time.Hour).UnixMilli()
	err = NewSink(conn, topic, StringValues(), WithDelivery(ExactlyOnce), TransactionalIDPrefix(topic)).Recover(ctx, info, st.encode())
	if err == nil || !strings.Contains(err.Error(), "beyond the transaction timeout") {
		t.Fatalf("redo of an hour-old fenced transaction: %v, want a refusal", err)
	}
	// No transaction is left open: read_committed reaches the end.
	cl := &kafkago.Client{Addr: kafkago.TCP(conn.Brokers...)}
	for p := range 3 {
		lso, err := cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: {kafkago.LastOffsetOf(p)}}, IsolationLevel: kafkago.ReadCommitted})
		if err != nil {
			t.Fatal(err)
		}
		hw, err := cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: {kafkago.LastOffsetOf(p)}}})
		if err != nil {
			t.Fatal(err)
		}
		if l, h := lso.Topics[topic][0].LastOffset, hw.Topics[topic][0].LastOffset; l != h {
			t.Errorf("partition %d: last stable offset %d, high watermark %d: a transaction is open", p, l, h)
		}
	}
}

// TestPartitionWatermarks reads two partitions with event time: the
// subtask's watermark is the least of its partitions', a partition that
// delivered nothing for the idle timeout stops holding it back, and when
// all are idle the subtask is.
func TestPartitionWatermarks(t *testing.T) {
	conn, topic, c := testTopic(t, 2)
	produceAt(t, c, topic, 0, 1000, "v")
	produceAt(t, c, topic, 0, 3000, "v")
	produceAt(t, c, topic, 0, 2000, "v")
	produceAt(t, c, topic, 1, 500, "v")
	const idle = 300 * time.Millisecond
	src := NewSource(conn, topic, Bytes(), EventTime(0, idle))
	sr, err := src.Open(context.Background(), weir.SubtaskInfo{Index: 0, Parallelism: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	r := sr.(*sourceReader[[]byte])
	readN := func(n int) {
		t.Helper()
		got := 0
		for deadline := time.Now().Add(10 * time.Second); got < n && time.Now().Before(deadline); {
			buf, err := r.Read(context.Background(), make([][]byte, 0, 16))
			if err != nil {
				t.Fatal(err)
			}
			got += len(buf)
		}
		if got != n {
			t.Fatalf("read %d records, want %d", got, n)
		}
	}
	readN(4)
	if wm, ok := r.Watermark(); !ok || wm != 499 {
		t.Fatalf("watermark %d (%v), want 499: the least of the partitions' (3000-1, 500-1)", wm, ok)
	}
	time.Sleep(idle + 100*time.Millisecond)
	produceAt(t, c, topic, 0, 4000, "v")
	readN(1)
	if wm, ok := r.Watermark(); !ok || wm != 3999 {
		t.Fatalf("watermark %d (%v), want 3999: partition 1 is idle and no longer holds it", wm, ok)
	}
	if idle, _ := r.Idle(true); idle {
		t.Fatal("idle right after reading a record")
	}
	time.Sleep(idle + 100*time.Millisecond)
	if isIdle, changed := r.Idle(false); !isIdle || !changed {
		t.Fatalf("Idle = %v, %v after %v without records, want true, true", isIdle, changed, idle)
	}
}

// TestSinkChecksTransactionTimeout: a transaction timeout that a checkpoint
// interval plus a restart could outlast, or that the broker refuses, stops
// the sink at start with an error that names the setting to change.
func TestSinkChecksTransactionTimeout(t *testing.T) {
	conn := testConn(t)
	topic := createTopic(t, conn, 1)
	ctx := context.Background()
	info := weir.SubtaskInfo{Job: "test", UID: topic, Parallelism: 1, Logger: slog.New(slog.DiscardHandler),
		CheckpointInterval: 14 * time.Minute, MaxRestartDelay: 2 * time.Minute}
	err := NewSink(conn, topic, StringValues(), WithDelivery(ExactlyOnce), TransactionalIDPrefix(topic)).Recover(ctx, info, nil)
	if err == nil || !strings.Contains(err.Error(), "--checkpoint-interval") || !strings.Contains(err.Error(), "TransactionTimeout") {
		t.Fatalf("interval 14m + restart 2m with a 15m timeout: %v", err)
	}
	info.CheckpointInterval = time.Second
	err = NewSink(conn, topic, StringValues(), WithDelivery(ExactlyOnce), TransactionalIDPrefix(topic), TransactionTimeout(20*time.Minute)).Recover(ctx, info, nil)
	if err == nil || !strings.Contains(err.Error(), "transaction.max.timeout.ms") {
		t.Fatalf("a 20m timeout against the broker's 15m maximum: %v", err)
	}
}

// TestBadRecordPolicies: a record the deserializer rejects fails the read
// with an error naming topic, partition and offset, or is skipped and
// counted.
func TestBadRecordPolicies(t *testing.T) {
	conn, topic, c := testTopic(t, 1)
	rawProduce(t, c, "", topic, 0, -1, -1, -1, "1", "2", "x", "4")
	parse := func(r *Record) (int, error) { return strconv.Atoi(string(r.Value)) }
	ctx := context.Background()
	info := weir.SubtaskInfo{Parallelism: 1, Logger: slog.New(slog.DiscardHandler)}
	read := func(src *Source[int]) ([]int, error) {
		r, err := src.Open(ctx, info)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var out []int
		for {
			buf, err := r.Read(ctx, make([]int, 0, 16))
			out = append(out, buf...)
			if err != nil {
				return out, err
			}
		}
	}
	_, err := read(NewSource(conn, topic, parse, Bounded()))
	want := fmt.Sprintf("topic %s partition 0 offset 2", topic)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("fail policy: %v, want an error naming %q", err, want)
	}
	src := NewSource(conn, topic, parse, Bounded(), BadRecords(SkipBadRecords))
	got, err := read(src)
	if err != io.EOF || fmt.Sprint(got) != "[1 2 4]" || src.Skipped() != 1 {
		t.Fatalf("skip policy: read %v (%v), skipped %d; want [1 2 4], EOF, 1", got, err, src.Skipped())
	}
}

// TestStartPositions: without a checkpoint a partition starts at the
// earliest record, after the newest (Latest), at a time (AtTime), or at the
// group's committed offset (GroupOffsets, else the fallback).
func TestStartPositions(t *testing.T) {
	conn, topic, c := testTopic(t, 1)
	produceAt(t, c, topic, 0, 1_000_000, "a", "b")
	produceAt(t, c, topic, 0, 2_000_000, "c", "d")
	ctx := context.Background()
	info := weir.SubtaskInfo{Parallelism: 1, Logger: slog.New(slog.DiscardHandler)}
	first := func(opts ...SourceOption) (string, error) {
		r, err := NewSource(conn, topic, Strings(), opts...).Open(ctx, info)
		if err != nil {
			return "", err
		}
		defer r.Close()
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
			buf, err := r.Read(ctx, make([]string, 0, 1))
			if err != nil {
				return "", err
			}
			if len(buf) > 0 {
				return buf[0], nil
			}
		}
		return "(nothing)", nil
	}
	check := func(name, want string, opts ...SourceOption) {
		t.Helper()
		if got, err := first(opts...); err != nil || got != want {
			t.Errorf("%s: first record %q (%v), want %q", name, got, err, want)
		}
	}
	check("earliest", "a")
	check("latest", "(nothing)", StartFrom(Latest()))
	check("at a time", "c", StartFrom(AtTime(time.UnixMilli(1_500_000))))
	check("after the newest time", "(nothing)", StartFrom(AtTime(time.UnixMilli(3_000_000))))
	group := topic + "-g"
	check("group without offsets", "a", StartFrom(GroupOffsets(false)), Group(group))
	kc := &kafkago.Client{Addr: c.addr, Transport: c.t}
	if _, err := kc.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafkago.OffsetCommit{topic: {{Partition: 0, Offset: 3}}}}); err != nil {
		t.Fatal(err)
	}
	check("group offsets", "d", StartFrom(GroupOffsets(false)), Group(group))
	if _, err := first(StartFrom(GroupOffsets(false))); err == nil {
		t.Error("GroupOffsets without a Group: no error")
	}
}

// TestSinkFailsBeforeTransactionTimeout: a transaction that no checkpoint
// committed within half the timeout fails the writer, so that recovery
// aborts and replays it while the broker still has it.
func TestSinkFailsBeforeTransactionTimeout(t *testing.T) {
	conn := testConn(t)
	topic := createTopic(t, conn, 1)
	ctx := context.Background()
	info := weir.SubtaskInfo{Job: "test", UID: topic, Parallelism: 1, Logger: slog.New(slog.DiscardHandler)}
	sink := NewSink(conn, topic, StringValues(), WithDelivery(ExactlyOnce), TransactionTimeout(2*time.Second))
	w, err := sink.Open(ctx, info)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Write([]string{"a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.(*sinkWriter[string]).PreCommit(1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if err := w.Write([]string{"b"}); err == nil || !strings.Contains(err.Error(), "half the transaction timeout") {
		t.Fatalf("write with a transaction past half its timeout: %v", err)
	}
}

// TestSourceLag: the lag a reader reports is what the partition holds
// beyond the records it returned, as of its last fetch.
func TestSourceLag(t *testing.T) {
	conn, topic, c := testTopic(t, 1)
	produceAt(t, c, topic, 0, 1_000_000, "a", "b", "c", "d", "e", "f", "g", "h", "i", "j")
	ctx := context.Background()
	r, err := NewSource(conn, topic, Strings()).Open(ctx, weir.SubtaskInfo{Parallelism: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lr, ok := r.(weir.LagReporter)
	if !ok {
		t.Fatalf("the Kafka reader (%T) does not report its lag", r)
	}
	lagIs := func(want int64) {
		t.Helper()
		var got []weir.PartitionLag
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if got = lr.Lag(); len(got) == 1 && got[0].Lag == want {
				return
			}
		}
		t.Fatalf("lag %+v, want %d for partition 0 of %s", got, want, topic)
	}
	read := 0
	for deadline := time.Now().Add(10 * time.Second); read < 3 && time.Now().Before(deadline); {
		buf, err := r.Read(ctx, make([]string, 0, 3-read))
		if err != nil {
			t.Fatal(err)
		}
		read += len(buf)
	}
	lagIs(7)
	for deadline := time.Now().Add(10 * time.Second); read < 10 && time.Now().Before(deadline); {
		buf, err := r.Read(ctx, make([]string, 0, 10))
		if err != nil {
			t.Fatal(err)
		}
		read += len(buf)
	}
	lagIs(0)
	produceAt(t, c, topic, 0, 2_000_000, "k", "l")
	lagIs(2)
}

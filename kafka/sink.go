package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/produce"
	"github.com/segmentio/kafka-go/protocol/rawproduce"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/internal/failpoint"
)

// Serializer turns a record of the job into a Kafka message.
type Serializer[T any] func(T) (Message, error)

// StringValues writes strings as record values, without keys.
func StringValues() Serializer[string] {
	return func(s string) (Message, error) { return Message{Value: []byte(s)}, nil }
}

// JSONValues writes records as JSON values, keyed by key (nil: no key).
func JSONValues[T any](key func(T) []byte) Serializer[T] {
	return func(v T) (Message, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return Message{}, err
		}
		m := Message{Value: b}
		if key != nil {
			m.Key = key(v)
		}
		return m, nil
	}
}

// Messages writes Messages as they are.
func Messages() Serializer[Message] {
	return func(m Message) (Message, error) { return m, nil }
}

// Delivery is a sink's guarantee.
type Delivery int

const (
	// AtLeastOnce flushes the records at every checkpoint barrier: after a
	// failure, records written since the last checkpoint are written again.
	AtLeastOnce Delivery = iota
	// ExactlyOnce writes the records of each checkpoint interval in a
	// Kafka transaction that commits once the checkpoint is complete.
	// Readers with isolation.level=read_committed see every record once.
	ExactlyOnce
)

// ParseDelivery parses "exactly-once" or "at-least-once".
func ParseDelivery(s string) (Delivery, error) {
	switch s {
	case "exactly-once":
		return ExactlyOnce, nil
	case "at-least-once":
		return AtLeastOnce, nil
	}
	return 0, fmt.Errorf("delivery %q: want exactly-once or at-least-once", s)
}

// SinkOption configures a Kafka sink.
type SinkOption func(*sinkConfig)

type sinkConfig struct {
	delivery    Delivery
	prefix      string
	txnTimeout  time.Duration
	batchBytes  int
	bufferBytes int
}

// WithDelivery sets the sink's guarantee (AtLeastOnce by default).
func WithDelivery(d Delivery) SinkOption { return func(c *sinkConfig) { c.delivery = d } }

// TransactionalIDPrefix sets the prefix of the sink's transactional ids,
// PREFIX-UID-SUBTASK-K (default: the job's name). Two jobs writing to one
// cluster must not share it, or they fence each other.
func TransactionalIDPrefix(p string) SinkOption { return func(c *sinkConfig) { c.prefix = p } }

// TransactionTimeout sets how long the broker keeps a transaction open
// before it aborts it (15 minutes by default, the brokers' default
// transaction.max.timeout.ms). It must exceed a checkpoint interval plus
// the restart delay, or a transaction may be aborted before its commit.
func TransactionTimeout(d time.Duration) SinkOption { return func(c *sinkConfig) { c.txnTimeout = d } }

// Sink writes records to one Kafka topic. Keyed messages go to the
// partition the Java client's default partitioner picks (murmur2 of the
// key), so weir and Java producers agree; messages without a key are
// spread round robin.
type Sink[T any] struct {
	conn  Conn
	topic string
	ser   Serializer[T]
	cfg   sinkConfig

	mu        sync.Mutex
	recovered map[int]*recoveredPool // by subtask, from Recover to Open
}

// poolSize is the number of transactional ids of a sink subtask: one for
// the open transaction, the others for transactions waiting for their
// checkpoint (normally one; more while checkpoints fail or run
// concurrently). Recovery fences all of them.
const poolSize = 8

type recoveredPool struct {
	slots []txnID
}

var (
	_ weir.Sink[int]      = (*Sink[int])(nil)
	_ weir.RecoveringSink = (*Sink[int])(nil)
)

// NewSink returns a sink that writes to topic.
func NewSink[T any](conn Conn, topic string, ser Serializer[T], opts ...SinkOption) *Sink[T] {
	s := &Sink[T]{conn: conn, topic: topic, ser: ser, cfg: sinkConfig{
		txnTimeout:  15 * time.Minute,
		batchBytes:  256 << 10,
		bufferBytes: 1 << 20,
	}, recovered: map[int]*recoveredPool{}}
	for _, o := range opts {
		o(&s.cfg)
	}
	return s
}

// slotID is the transactional id K of subtask info.Index: PREFIX-UID-
// SUBTASK-K. The operator's UID is always part of it, so two sinks of one
// job never share ids even with one explicit prefix.
func (s *Sink[T]) slotID(info weir.SubtaskInfo, k int) string {
	p := s.cfg.prefix
	if p == "" {
		p = info.Job
	}
	return fmt.Sprintf("%s-%s-%d-%d", p, info.UID, info.Index, k)
}

func (s *Sink[T]) check(info weir.SubtaskInfo) error {
	if s.topic == "" {
		return errors.New("kafka sink: no topic")
	}
	if s.ser == nil {
		return fmt.Errorf("kafka sink %q: no serializer", s.topic)
	}
	if s.cfg.delivery != ExactlyOnce {
		return nil
	}
	if need := info.CheckpointInterval + info.MaxRestartDelay; info.CheckpointInterval > 0 && need >= s.cfg.txnTimeout {
		return weir.Permanent(fmt.Errorf("kafka sink %q: exactly-once: the checkpoint interval (%v) plus the restart delay (%v) is not below the transaction timeout (%v), so a transaction could be aborted before it commits: shorten --checkpoint-interval or --restart-delay, or raise kafka.TransactionTimeout (and the brokers' transaction.max.timeout.ms)",
			s.topic, info.CheckpointInterval, info.MaxRestartDelay, s.cfg.txnTimeout))
	}
	return nil
}

// Recover implements weir.RecoveringSink: it completes the commits that
// pending describes, then fences and aborts whatever transactions of
// failed attempts are open on the subtask's transactional ids.
func (s *Sink[T]) Recover(ctx context.Context, info weir.SubtaskInfo, pending []byte) error {
	if s.cfg.delivery != ExactlyOnce {
		return nil
	}
	if err := s.check(info); err != nil {
		return err
	}
	var st txnState
	if pending != nil {
		var err error
		if st, err = decodeTxnState(pending, info.Index); err != nil {
			return err
		}
	}
	c, err := newClient(s.conn)
	if err != nil {
		return err
	}
	defer c.close()
	if _, err := c.partitions(ctx, s.topic); err != nil {
		return fmt.Errorf("kafka sink: %w", err)
	}
	pool, err := s.recover(ctx, c, info, st)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.recovered[info.Index] = pool
	s.mu.Unlock()
	return nil
}

func (s *Sink[T]) recover(ctx context.Context, c *client, info weir.SubtaskInfo, st txnState) (*recoveredPool, error) {
	for _, p := range st.pending {
		t := txnID{id: p.id, pid: p.pid, epoch: p.epoch}
		err := c.endTxn(ctx, t, true)
		var ke kafkago.Error
		switch {
		case err == nil:
			info.Logger.Info("kafka sink: committed a transaction of the restored checkpoint", "transactional_id", t.id, "checkpoint", p.checkpoint)
		case fenced(err) || errors.As(err, &ke) && ke == kafkago.InvalidProducerIDMapping:
			// The epoch was raised (or, once epochs ran out, the
			// producer id replaced), which the sink does only after
			// the commit succeeded, unless the broker aborted the
			// transaction on its timeout, which looks the same: tell
			// them apart by the transaction's age.
			if age := time.Since(time.UnixMilli(p.started)); age >= s.cfg.txnTimeout-timeoutMargin {
				return nil, fmt.Errorf("kafka sink %q: transaction %s of checkpoint %d is %v old, beyond the transaction timeout %v: the broker may have aborted it, and its records would be lost; the job was down or checkpoints failed for too long (raise kafka.TransactionTimeout and the brokers' transaction.max.timeout.ms): %w",
					s.topic, t.id, p.checkpoint, age.Round(time.Second), s.cfg.txnTimeout, err)
			}
			info.Logger.Debug("kafka sink: transaction of the restored checkpoint was committed before", "transactional_id", t.id, "checkpoint", p.checkpoint)
		default:
			return nil, fmt.Errorf("kafka sink %q: commit transaction %s of checkpoint %d: %w", s.topic, t.id, p.checkpoint, err)
		}
	}
	// Fence every id of the pool: the pool has a fixed size, so the ids a
	// failed attempt may have used are known without probing.
	pool := &recoveredPool{}
	for k := range max(poolSize, st.pool) {
		t, err := c.initProducer(ctx, s.slotID(info, k), s.cfg.txnTimeout, -1, -1)
		if err != nil {
			return nil, fmt.Errorf("kafka sink %q: fence transactional id: %w", s.topic, err)
		}
		pool.slots = append(pool.slots, t)
	}
	return pool, nil
}

// Open implements weir.Sink.
func (s *Sink[T]) Open(ctx context.Context, info weir.SubtaskInfo) (weir.SinkWriter[T], error) {
	if err := s.check(info); err != nil {
		return nil, err
	}
	c, err := newClient(s.conn)
	if err != nil {
		return nil, err
	}
	parts, err := c.partitions(ctx, s.topic)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	w := &sinkWriter[T]{s: s, c: c, info: info, parts: parts, builders: make([]batchBuilder, len(parts)),
		jobs: make(chan produceJob, 2), results: make(chan error, 2)}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	if s.cfg.delivery == ExactlyOnce {
		s.mu.Lock()
		pool := s.recovered[info.Index]
		delete(s.recovered, info.Index)
		s.mu.Unlock()
		if pool == nil {
			// Not recovered (no checkpoints): fence what a failed run
			// left open.
			if pool, err = s.recover(ctx, c, info, txnState{}); err != nil {
				c.close()
				return nil, err
			}
		}
		w.slots = pool.slots
		w.free = make([]bool, len(w.slots))
		for i := range w.free {
			w.free[i] = true
		}
	}
	go w.sendLoop()
	return w, nil
}

type sinkWriter[T any] struct {
	s      *Sink[T]
	c      *client
	info   weir.SubtaskInfo
	parts  []int32
	ctx    context.Context // cancelled by Close: requests still retrying give up
	cancel context.CancelFunc

	builders []batchBuilder // by partition index
	buffered int
	rr       int // round robin for messages without a key

	// Sending: one job at a time, in order, so a partition's batches
	// reach the broker in the order of their sequence numbers.
	jobs     chan produceJob
	results  chan error
	inFlight int
	err      error // sticky: the writer failed

	// Exactly once.
	slots   []txnID
	free    []bool
	cur     *openTxn
	pending []pendingTxn
}

type openTxn struct {
	slot    int
	started int64   // ms since the epoch
	added   []bool  // by partition index
	seq     []int32 // next sequence number, by partition index
}

type produceJob struct {
	txn   string // transactional id, "" outside transactions
	parts []int32
	sets  [][]byte
}

// Write implements weir.SinkWriter.
func (w *sinkWriter[T]) Write(batch []T) error {
	if w.err != nil {
		return w.err
	}
	if err := w.checkAge(); err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	for _, v := range batch {
		m, err := w.s.ser(v)
		if err != nil {
			// The record itself is not in the message: it may hold secrets.
			return w.fail(fmt.Errorf("kafka sink %q: serialize a %T: %w", w.s.topic, v, err))
		}
		var p int
		if m.Key == nil {
			p = w.rr % len(w.parts)
			w.rr++
		} else {
			p = int((murmur2(m.Key) & 0x7fffffff) % uint32(len(w.parts)))
		}
		ts := m.Time
		if ts == 0 {
			ts = now
		}
		b := &w.builders[p]
		before := b.size()
		b.add(&m, ts)
		w.buffered += b.size() - before
		if b.size() >= w.s.cfg.batchBytes || w.buffered >= w.s.cfg.bufferBytes {
			if err := w.flush(false); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkAge fails the writer when its oldest transaction, open or waiting
// for its checkpoint, has lived half the transaction timeout: checkpoints
// are failing, and if the broker aborted the transaction on its timeout,
// recovery could not tell that from a commit. Failing now makes recovery
// abort it and replay its records from the last completed checkpoint.
func (w *sinkWriter[T]) checkAge() error {
	oldest := int64(math.MaxInt64)
	if w.cur != nil {
		oldest = w.cur.started
	}
	if len(w.pending) > 0 {
		oldest = min(oldest, w.pending[0].started)
	}
	if oldest == math.MaxInt64 {
		return nil
	}
	if age := time.Since(time.UnixMilli(oldest)); age > w.s.cfg.txnTimeout/2 {
		return w.fail(fmt.Errorf("kafka sink %q: a transaction has been open for %v, half the transaction timeout %v, and no checkpoint committed it (are checkpoints failing?): failing so that recovery aborts it and replays its records before the broker would time it out",
			w.s.topic, age.Round(time.Second), w.s.cfg.txnTimeout))
	}
	return nil
}

func (w *sinkWriter[T]) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// flush hands the buffered batches to the sender; with wait it also waits
// until the broker acknowledged all of them.
func (w *sinkWriter[T]) flush(wait bool) error {
	if w.buffered > 0 {
		job := produceJob{}
		eos := w.s.cfg.delivery == ExactlyOnce
		if eos {
			if err := w.begin(); err != nil {
				return w.fail(err)
			}
			job.txn = w.slots[w.cur.slot].id
			var add []int32
			for i := range w.builders {
				if !w.builders[i].empty() && !w.cur.added[i] {
					add = append(add, w.parts[i])
					w.cur.added[i] = true
				}
			}
			if len(add) > 0 {
				if err := w.c.addPartitions(w.ctx, w.slots[w.cur.slot], w.s.topic, add); err != nil {
					return w.fail(fmt.Errorf("kafka sink %q: %w", w.s.topic, err))
				}
			}
		}
		for i := range w.builders {
			b := &w.builders[i]
			if b.empty() {
				continue
			}
			var set []byte
			if eos {
				t := w.slots[w.cur.slot]
				set = b.finish(t.pid, t.epoch, w.cur.seq[i], true)
				w.cur.seq[i] += b.count
			} else {
				set = b.finish(-1, -1, -1, false)
			}
			job.parts = append(job.parts, w.parts[i])
			job.sets = append(job.sets, bytes.Clone(set))
			b.reset()
		}
		w.buffered = 0
		for w.inFlight >= cap(w.jobs) {
			if err := w.collect(); err != nil {
				return err
			}
		}
		w.jobs <- job
		w.inFlight++
	}
	for wait && w.inFlight > 0 {
		if err := w.collect(); err != nil {
			return err
		}
	}
	return w.err
}

func (w *sinkWriter[T]) collect() error {
	err := <-w.results
	w.inFlight--
	if err != nil {
		return w.fail(err)
	}
	return nil
}

// begin opens a transaction on a free transactional id if none is open.
func (w *sinkWriter[T]) begin() error {
	if w.cur != nil {
		return nil
	}
	slot := -1
	for i, f := range w.free {
		if f {
			slot = i
			break
		}
	}
	if slot < 0 {
		return fmt.Errorf("kafka sink %q: all %d transactional ids hold transactions waiting for their checkpoints to complete (checkpoints failing?); failing so that recovery aborts them and replays their records", w.s.topic, len(w.slots))
	}
	w.free[slot] = false
	w.cur = &openTxn{slot: slot, started: time.Now().UnixMilli(), added: make([]bool, len(w.parts)), seq: make([]int32, len(w.parts))}
	return nil
}

// sendLoop sends produce requests, one job at a time.
func (w *sinkWriter[T]) sendLoop() {
	for job := range w.jobs {
		w.results <- w.send(job)
	}
}

func (w *sinkWriter[T]) send(job produceJob) error {
	// One request per partition, concurrently: kafka-go routes each to
	// the partition's leader over its pooled connections.
	errs := make([]error, len(job.parts))
	var wg sync.WaitGroup
	for i := range job.parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.produce(job.txn, job.parts[i], job.sets[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (w *sinkWriter[T]) produce(txn string, part int32, set []byte) error {
	return w.c.retry(w.ctx, fmt.Sprintf("produce to %s partition %d", w.s.topic, part), func(ctx context.Context) error {
		res, err := w.c.roundTrip(ctx, &rawproduce.Request{
			TransactionalID: txn,
			Acks:            -1,
			Timeout:         int32(w.s.conn.requestTimeout().Milliseconds()),
			Topics: []rawproduce.RequestTopic{{Topic: w.s.topic, Partitions: []rawproduce.RequestPartition{{
				Partition: part, RecordSet: protocol.RawRecordSet{Reader: bytes.NewReader(set)},
			}}}},
		})
		if err != nil {
			return err
		}
		for _, t := range res.(*produce.Response).Topics {
			for _, p := range t.Partitions {
				switch e := kafkago.Error(p.ErrorCode); {
				case p.ErrorCode == 0, e == kafkago.DuplicateSequenceNumber:
				case p.ErrorMessage != "":
					return fmt.Errorf("%w: %s", e, p.ErrorMessage)
				default:
					return e
				}
			}
		}
		return nil
	})
}

// PreCommit implements weir.CommittingWriter: at barrier n it flushes the
// records before the barrier and waits for the broker's acknowledgement;
// under exactly-once it ends the open transaction's part in checkpoint n.
func (w *sinkWriter[T]) PreCommit(checkpoint uint64) ([]byte, error) {
	if err := w.checkAge(); err != nil {
		return nil, err
	}
	if err := w.flush(true); err != nil {
		return nil, err
	}
	failpoint.Hit("kafka-after-flush")
	if w.s.cfg.delivery != ExactlyOnce {
		return nil, nil
	}
	if w.cur != nil {
		t := w.slots[w.cur.slot]
		w.pending = append(w.pending, pendingTxn{slot: w.cur.slot, id: t.id, pid: t.pid, epoch: t.epoch, checkpoint: checkpoint, started: w.cur.started})
		w.cur = nil
	}
	return txnState{index: w.info.Index, pool: len(w.slots), pending: w.pending}.encode(), nil
}

// Commit implements weir.CommittingWriter: it commits the transactions
// pre-committed up to checkpoint and raises their ids' epochs.
func (w *sinkWriter[T]) Commit(checkpoint uint64) error {
	if w.err != nil {
		return w.err
	}
	for len(w.pending) > 0 && w.pending[0].checkpoint <= checkpoint {
		p := w.pending[0]
		t := txnID{id: w.slots[p.slot].id, pid: p.pid, epoch: p.epoch}
		failpoint.Hit("kafka-before-endtxn")
		if failpoint.Enabled() {
			// Killed while the EndTxn request is on its way.
			go w.c.endTxn(w.ctx, t, true)
			time.Sleep(time.Millisecond)
			failpoint.Hit("kafka-during-endtxn")
		}
		if err := w.c.endTxn(w.ctx, t, true); err != nil {
			return w.fail(fmt.Errorf("kafka sink %q: commit transaction %s of checkpoint %d: %w", w.s.topic, t.id, p.checkpoint, err))
		}
		failpoint.Hit("kafka-after-endtxn")
		next, err := w.c.initProducer(w.ctx, t.id, w.s.cfg.txnTimeout, t.pid, t.epoch)
		if err != nil {
			return w.fail(fmt.Errorf("kafka sink %q: %w", w.s.topic, err))
		}
		w.slots[p.slot] = next
		w.free[p.slot] = true
		w.pending = w.pending[1:]
	}
	return nil
}

// Finish implements weir.SinkWriter. Without checkpoints it flushes, and
// under exactly-once commits the open transaction.
func (w *sinkWriter[T]) Finish() error {
	if err := w.flush(true); err != nil {
		return err
	}
	if w.s.cfg.delivery == ExactlyOnce && w.cur != nil {
		t := w.slots[w.cur.slot]
		if err := w.c.endTxn(w.ctx, t, true); err != nil {
			return w.fail(fmt.Errorf("kafka sink %q: commit %s: %w", w.s.topic, t.id, err))
		}
		w.cur = nil
	}
	return nil
}

// Close implements weir.SinkWriter. An open transaction is left to the
// next start, which aborts it.
func (w *sinkWriter[T]) Close() error {
	w.cancel()
	for w.inFlight > 0 {
		<-w.results
		w.inFlight--
	}
	close(w.jobs)
	w.c.close()
	return nil
}

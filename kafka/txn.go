package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/addpartitionstotxn"
	"github.com/segmentio/kafka-go/protocol/endtxn"
	"github.com/segmentio/kafka-go/protocol/initproducerid"

	"github.com/weirstream/weir"
)

// Transactions, on kafka-go's protocol layer.
//
// Each sink subtask owns a fixed pool of transactional ids,
// PREFIX-UID-SUBTASK-K for K = 0..poolSize-1: one transaction runs per
// checkpoint interval, and a pre-committed one waits for its checkpoint to
// complete while the next one already runs, so two ids are used unless
// checkpoints fail (a writer with no free id fails, and recovers). A transaction ends with EndTxn
// and then an InitProducerID that names the id's current producer id and
// epoch, which raises the epoch: every transaction of an id has an epoch of
// its own. That is what makes redoing a commit safe. A checkpoint stores,
// for each pre-committed transaction, its id, producer id and epoch; on
// recovery EndTxn(commit) with that epoch either commits it (the crash came
// before the commit), is answered as a retry of a finished commit, or is
// refused as fenced because the epoch was raised, which the sink does only
// after the commit succeeded. The broker raises it too when it aborts a
// transaction on its timeout, so a fenced transaction older than the
// timeout is an error, not a commit, and a writer whose transaction waited
// half the timeout fails itself to recover in time. Then every id of the
// pool gets an InitProducerID
// without an epoch: the coordinator aborts whatever transaction of a failed
// attempt is open on it and raises the epoch, so a zombie process (paused,
// not dead) is fenced on its next request.

type txnID struct {
	id    string
	pid   int64
	epoch int16
}

// pendingTxn is a transaction pre-committed at checkpoint.
type pendingTxn struct {
	slot       int
	id         string // the transactional id, stored whole: recovery needs no job name or UID to rebuild it
	pid        int64
	epoch      int16
	checkpoint uint64
	started    int64 // when the transaction began (its first AddPartitionsToTxn), ms since the epoch
}

// timeoutMargin is the slack for clocks and delays when a transaction's
// age is compared with its timeout.
const timeoutMargin = time.Minute

// txnState is what a sink subtask stores in a checkpoint: the size of its
// pool and the transactions that were pre-committed and not known to be
// committed.
//
//	version     1 byte (2)
//	index       uvarint, the subtask
//	pool        uvarint
//	count       uvarint
//	count times: slot uvarint, transactional id (uvarint length, bytes),
//	             producer id varint, epoch varint, checkpoint uvarint,
//	             start time varint (ms)
//	checksum    4 bytes, big-endian CRC-32C of everything before
type txnState struct {
	index   int
	pool    int
	pending []pendingTxn
}

const txnStateVersion = 2

// ErrPendingTxn marks a damaged pending-transaction description in a
// checkpoint.
var ErrPendingTxn = errors.New("kafka sink: invalid pending transactions")

func (s txnState) encode() []byte {
	b := []byte{txnStateVersion}
	b = binary.AppendUvarint(b, uint64(s.index))
	b = binary.AppendUvarint(b, uint64(s.pool))
	b = binary.AppendUvarint(b, uint64(len(s.pending)))
	for _, p := range s.pending {
		b = binary.AppendUvarint(b, uint64(p.slot))
		b = binary.AppendUvarint(b, uint64(len(p.id)))
		b = append(b, p.id...)
		b = binary.AppendVarint(b, p.pid)
		b = binary.AppendVarint(b, int64(p.epoch))
		b = binary.AppendUvarint(b, p.checkpoint)
		b = binary.AppendVarint(b, p.started)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeTxnState(b []byte, index int) (txnState, error) {
	var s txnState
	if len(b) < 5 {
		return s, fmt.Errorf("%w: %d bytes", ErrPendingTxn, len(b))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return s, fmt.Errorf("%w: checksum mismatch", ErrPendingTxn)
	}
	if body[0] != txnStateVersion {
		return s, fmt.Errorf("%w: version %d, want %d", ErrPendingTxn, body[0], txnStateVersion)
	}
	d := &wire{b: body[1:]}
	s.index, s.pool = int(d.uvarint()), int(d.uvarint())
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		p := pendingTxn{slot: int(d.uvarint())}
		p.id = string(d.bytes(int(d.uvarint())))
		p.pid, p.epoch, p.checkpoint, p.started = d.varint(), int16(d.varint()), d.uvarint(), d.varint()
		s.pending = append(s.pending, p)
	}
	if d.err != nil || len(d.b) != 0 {
		return s, fmt.Errorf("%w: truncated or trailing bytes", ErrPendingTxn)
	}
	if s.index != index {
		return s, fmt.Errorf("%w: written by subtask %d, restored into subtask %d", ErrPendingTxn, s.index, index)
	}
	return s, nil
}

// coordinatorBusy reports errors that a transaction coordinator answers
// while it loads, moves or finishes an earlier request: retry them.
func coordinatorBusy(e kafkago.Error) bool {
	switch e {
	case kafkago.ConcurrentTransactions, kafkago.GroupCoordinatorNotAvailable, kafkago.NotCoordinatorForGroup,
		kafkago.GroupLoadInProgress, kafkago.RequestTimedOut:
		return true
	}
	return e.Temporary()
}

// retry runs f until it succeeds, fails with an error that is not worth
// retrying, or the connection's request timeout passes.
func (c *client) retry(ctx context.Context, what string, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.conn.requestTimeout())
	defer cancel()
	delay := 20 * time.Millisecond
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		var ke kafkago.Error
		busy := errors.As(err, &ke) && coordinatorBusy(ke)
		if !busy && !retriable(err) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if sleep(ctx, delay) != nil {
			return fmt.Errorf("%s: gave up after %v: %w", what, c.conn.requestTimeout(), err)
		}
		delay = min(2*delay, time.Second)
	}
}

// initProducer calls InitProducerID for id. With pid and epoch -1 it
// starts a new producer session, fencing every earlier one; with the
// current pid and epoch it raises the epoch after a finished transaction.
// (kafka-go's Client.InitProducerID sends 0 and 0 for a fresh id; the
// protocol needs -1 and -1.)
func (c *client) initProducer(ctx context.Context, id string, timeout time.Duration, pid int64, epoch int16) (txnID, error) {
	out := txnID{id: id}
	err := c.retry(ctx, "InitProducerID "+id, func(ctx context.Context) error {
		res, err := c.roundTrip(ctx, &initproducerid.Request{
			TransactionalID: id, TransactionTimeoutMs: int32(timeout.Milliseconds()), ProducerID: pid, ProducerEpoch: epoch,
		})
		if err != nil {
			return err
		}
		r := res.(*initproducerid.Response)
		if r.ErrorCode != 0 {
			e := kafkago.Error(r.ErrorCode)
			if e == kafkago.InvalidTransactionTimeout {
				return weir.Permanent(fmt.Errorf("%w: the transaction timeout %v is above the broker's transaction.max.timeout.ms: lower it (kafka.TransactionTimeout) or raise transaction.max.timeout.ms on the brokers", e, timeout))
			}
			return e
		}
		out.pid, out.epoch = r.ProducerID, r.ProducerEpoch
		return nil
	})
	return out, err
}

// endTxn commits (or aborts) the transaction of id at pid and epoch.
func (c *client) endTxn(ctx context.Context, t txnID, commit bool) error {
	return c.retry(ctx, "EndTxn "+t.id, func(ctx context.Context) error {
		res, err := c.roundTrip(ctx, &endtxn.Request{TransactionalID: t.id, ProducerID: t.pid, ProducerEpoch: t.epoch, Committed: commit})
		if err != nil {
			return err
		}
		if code := res.(*endtxn.Response).ErrorCode; code != 0 {
			return kafkago.Error(code)
		}
		return nil
	})
}

// addPartitions adds partitions of topic to the open transaction of t.
func (c *client) addPartitions(ctx context.Context, t txnID, topic string, parts []int32) error {
	return c.retry(ctx, "AddPartitionsToTxn "+t.id, func(ctx context.Context) error {
		res, err := c.roundTrip(ctx, &addpartitionstotxn.Request{
			TransactionalID: t.id, ProducerID: t.pid, ProducerEpoch: t.epoch,
			Topics: []addpartitionstotxn.RequestTopic{{Name: topic, Partitions: parts}},
		})
		if err != nil {
			return err
		}
		for _, r := range res.(*addpartitionstotxn.Response).Results {
			for _, p := range r.Results {
				if p.ErrorCode != 0 {
					return kafkago.Error(p.ErrorCode)
				}
			}
		}
		return nil
	})
}

// fenced reports the answers to a stale epoch.
func fenced(err error) bool {
	var ke kafkago.Error
	return errors.As(err, &ke) && (ke == kafkago.ProducerFenced || ke == kafkago.InvalidProducerEpoch)
}

package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/fetch"

	"github.com/weirstream/weir"
)

// Deserializer turns a Kafka record into a record of the job. An error
// makes the record bad: the source's BadRecords policy says what happens.
type Deserializer[T any] func(r *Record) (T, error)

// Bytes reads record values as they are.
func Bytes() Deserializer[[]byte] {
	return func(r *Record) ([]byte, error) { return r.Value, nil }
}

// Strings reads record values as UTF-8 text.
func Strings() Deserializer[string] {
	return func(r *Record) (string, error) { return string(r.Value), nil }
}

// JSON reads record values as JSON objects into T.
func JSON[T any]() Deserializer[T] {
	return func(r *Record) (T, error) {
		var v T
		err := json.Unmarshal(r.Value, &v)
		return v, err
	}
}

// Records reads whole records: key, value, headers, timestamp, offset.
func Records() Deserializer[Record] {
	return func(r *Record) (Record, error) { return *r, nil }
}

// StartPosition says where a partition is read from when no checkpoint
// holds its offset.
type StartPosition struct {
	kind     startKind
	at       time.Time
	fallback startKind
}

type startKind int

const (
	startEarliest startKind = iota
	startLatest
	startTime
	startGroup
)

// Earliest starts at the oldest record kept (the default).
func Earliest() StartPosition { return StartPosition{kind: startEarliest} }

// Latest starts after the newest record (the last stable offset under
// read_committed).
func Latest() StartPosition { return StartPosition{kind: startLatest} }

// AtTime starts at the first record with a timestamp at or after t
// (after the newest record when there is none).
func AtTime(t time.Time) StartPosition { return StartPosition{kind: startTime, at: t} }

// GroupOffsets starts at the offsets the source's consumer group (see
// Group) committed, and where it has none at the earliest (latest: true at
// the latest) record.
func GroupOffsets(latest bool) StartPosition {
	fb := startEarliest
	if latest {
		fb = startLatest
	}
	return StartPosition{kind: startGroup, fallback: fb}
}

// BadRecordPolicy says what a source does with a record its Deserializer
// rejects.
type BadRecordPolicy int

const (
	// FailOnBadRecord fails the job with an error naming the topic,
	// partition and offset (the default).
	FailOnBadRecord BadRecordPolicy = iota
	// SkipBadRecords drops the record and counts it (Source.Skipped).
	SkipBadRecords
)

// SourceOption configures a Kafka source.
type SourceOption func(*sourceConfig)

type sourceConfig struct {
	start          StartPosition
	group          string
	readCommitted  bool
	bad            BadRecordPolicy
	eventTime      bool
	outOfOrderness time.Duration
	idleTimeout    time.Duration
	maxWait        time.Duration
	partitionBytes int32
	bounded        bool
	commitOffsets  bool
}

// CommitOffsets commits the offsets of every completed checkpoint to the
// source's consumer group (see Group), so that lag tools (kafka-consumer-
// groups, Burrow, exporters) see the job's progress. weir does not read
// them back unless the start position is GroupOffsets and there is no
// checkpoint. A failed commit is logged, never fatal.
func CommitOffsets() SourceOption { return func(c *sourceConfig) { c.commitOffsets = true } }

// Bounded makes the source end (and a job of bounded sources finish) once
// it has read every partition up to the end it had when the subtask
// opened: the high watermark, or the last stable offset under
// read_committed.
func Bounded() SourceOption { return func(c *sourceConfig) { c.bounded = true } }

// StartFrom sets where partitions without a checkpointed offset start.
func StartFrom(p StartPosition) SourceOption { return func(c *sourceConfig) { c.start = p } }

// Group names the consumer group whose committed offsets GroupOffsets
// starts from. weir never relies on group offsets for correctness: the
// offsets it resumes from are in its checkpoints.
func Group(id string) SourceOption { return func(c *sourceConfig) { c.group = id } }

// ReadUncommitted also reads the records of open and aborted
// transactions. The default, read_committed, reads only committed ones.
func ReadUncommitted() SourceOption { return func(c *sourceConfig) { c.readCommitted = false } }

// BadRecords sets the policy for records the Deserializer rejects.
func BadRecords(p BadRecordPolicy) SourceOption { return func(c *sourceConfig) { c.bad = p } }

// EventTime makes the records' Kafka timestamps their event time and
// tracks a watermark per partition: the newest timestamp read from it minus
// outOfOrderness (and 1 ms). The subtask's watermark is the least of its
// partitions'. A partition that delivered nothing for idleTimeout (0:
// never) is idle and does not hold the watermark back; when all of a
// subtask's partitions are idle, the subtask is.
func EventTime(outOfOrderness, idleTimeout time.Duration) SourceOption {
	return func(c *sourceConfig) {
		c.eventTime, c.outOfOrderness, c.idleTimeout = true, outOfOrderness, idleTimeout
	}
}

// Source reads one Kafka topic. Its partitions are assigned to the source's
// subtasks round robin, in partition order (partition i to subtask i mod
// parallelism), so the same partitions go to the same subtask on every run
// at the same parallelism. Offsets are taken at every checkpoint barrier,
// and a restored source resumes exactly after the records it had returned.
type Source[T any] struct {
	conn    Conn
	topic   string
	decode  Deserializer[T]
	cfg     sourceConfig
	skipped atomic.Int64
}

var _ weir.RescalableSource[int] = (*Source[int])(nil)

// NewSource returns a source of topic's records, decoded by d.
func NewSource[T any](conn Conn, topic string, d Deserializer[T], opts ...SourceOption) *Source[T] {
	s := &Source[T]{conn: conn, topic: topic, decode: d, cfg: sourceConfig{
		readCommitted:  true,
		maxWait:        100 * time.Millisecond,
		partitionBytes: 1 << 20,
	}}
	for _, o := range opts {
		o(&s.cfg)
	}
	return s
}

// Skipped returns how many bad records the source dropped under
// SkipBadRecords.
func (s *Source[T]) Skipped() int64 { return s.skipped.Load() }

// Open implements weir.Source.
func (s *Source[T]) Open(ctx context.Context, info weir.SubtaskInfo) (weir.SourceReader[T], error) {
	return s.open(ctx, info, nil)
}

// Restore implements weir.RestorableSource.
func (s *Source[T]) Restore(ctx context.Context, info weir.SubtaskInfo, position []byte) (weir.SourceReader[T], error) {
	pos, err := decodeSourcePosition(position, s.topic, info)
	if err != nil {
		return nil, err
	}
	return s.open(ctx, info, pos)
}

// RestoreRescaled implements weir.RescalableSource: the partitions are
// assigned as at any start (partition i to subtask i mod parallelism), each
// with the offset of the old subtask that read it.
func (s *Source[T]) RestoreRescaled(ctx context.Context, info weir.SubtaskInfo, positions [][]byte) (weir.SourceReader[T], error) {
	all := map[int32]partPosition{}
	for j, b := range positions {
		if len(b) == 0 {
			continue
		}
		old := info
		old.Index, old.Parallelism = j, len(positions)
		pos, err := decodeSourcePosition(b, s.topic, old)
		if err != nil {
			return nil, err
		}
		for p, pp := range pos {
			if _, dup := all[p]; dup {
				return nil, fmt.Errorf("%w: topic %s: partition %d is in the positions of two subtasks", ErrPosition, s.topic, p)
			}
			all[p] = pp
		}
	}
	return s.open(ctx, info, all)
}

func (s *Source[T]) open(ctx context.Context, info weir.SubtaskInfo, restored map[int32]partPosition) (weir.SourceReader[T], error) {
	if s.topic == "" {
		return nil, errors.New("kafka source: no topic")
	}
	if s.decode == nil {
		return nil, fmt.Errorf("kafka source %q: no deserializer", s.topic)
	}
	if (s.cfg.start.kind == startGroup || s.cfg.commitOffsets) && s.cfg.group == "" {
		return nil, weir.Permanent(fmt.Errorf("kafka source %q: GroupOffsets and CommitOffsets need a Group", s.topic))
	}
	c, err := newClient(s.conn)
	if err != nil {
		return nil, err
	}
	all, err := c.partitions(ctx, s.topic)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("kafka source: %w", err)
	}
	r := &sourceReader[T]{src: s, c: c, info: info, chunks: make(chan chunk[T], 4), now: time.Now, sent: weir.NoWatermark}
	var fresh []int32
	for i, p := range all {
		if i%info.Parallelism != info.Index {
			continue
		}
		ps := &partState{partition: p, highest: weir.NoWatermark}
		if rp, ok := restored[p]; ok {
			ps.next, ps.highest = rp.next, rp.highest
			ps.read.Store(rp.next)
		} else {
			fresh = append(fresh, p)
		}
		r.parts = append(r.parts, ps)
	}
	if len(fresh) > 0 {
		kind := s.cfg.start.kind
		if restored != nil {
			// A partition added since the checkpoint: all its records
			// are new to the job, as Flink does.
			kind = startEarliest
		}
		var offs map[int32]int64
		err := c.retry(ctx, "start offsets", func(ctx context.Context) (err error) {
			offs, err = s.startOffsets(ctx, c, fresh, kind)
			return err
		})
		if err != nil {
			c.close()
			return nil, fmt.Errorf("kafka source %q: start offsets: %w", s.topic, err)
		}
		for _, ps := range r.parts {
			if o, ok := offs[ps.partition]; ok {
				ps.next = o
				ps.read.Store(o)
			}
		}
	}
	if s.cfg.bounded && len(r.parts) > 0 {
		ids := make([]int32, len(r.parts))
		for i, ps := range r.parts {
			ids[i] = ps.partition
		}
		var ends map[int32]int64
		err := c.retry(ctx, "end offsets", func(ctx context.Context) (err error) {
			ends, err = s.startOffsets(ctx, c, ids, startLatest)
			return err
		})
		if err != nil {
			c.close()
			return nil, fmt.Errorf("kafka source %q: end offsets: %w", s.topic, err)
		}
		for _, ps := range r.parts {
			ps.end = ends[ps.partition]
		}
	}
	var parts []partition
	for i, ps := range r.parts {
		if !s.cfg.bounded || ps.next < ps.end {
			parts = append(parts, partition{index: i, id: ps.partition, offset: ps.next, end: ps.end})
		}
	}
	fctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done = make(chan struct{})
	go r.fetchLoop(fctx, parts)
	return r, nil
}

// startOffsets resolves the start position for partitions.
func (s *Source[T]) startOffsets(ctx context.Context, c *client, parts []int32, kind startKind) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.conn.requestTimeout())
	defer cancel()
	kc := &kafkago.Client{Addr: c.addr, Transport: c.t}
	out := map[int32]int64{}
	if kind == startGroup {
		ints := make([]int, len(parts))
		for i, p := range parts {
			ints[i] = int(p)
		}
		res, err := kc.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: s.cfg.group, Topics: map[string][]int{s.topic: ints}})
		if err != nil {
			return nil, fmt.Errorf("committed offsets of group %q: %w", s.cfg.group, err)
		}
		if res.Error != nil {
			return nil, fmt.Errorf("committed offsets of group %q: %w", s.cfg.group, res.Error)
		}
		var rest []int32
		for _, p := range res.Topics[s.topic] {
			if p.Error != nil {
				return nil, fmt.Errorf("committed offset of group %q, partition %d: %w", s.cfg.group, p.Partition, p.Error)
			}
			if p.CommittedOffset >= 0 {
				out[int32(p.Partition)] = p.CommittedOffset
			}
		}
		for _, p := range parts {
			if _, ok := out[p]; !ok {
				rest = append(rest, p)
			}
		}
		parts, kind = rest, s.cfg.start.fallback
		if len(parts) == 0 {
			return out, nil
		}
	}
	reqs := make([]kafkago.OffsetRequest, len(parts))
	for i, p := range parts {
		switch kind {
		case startEarliest:
			reqs[i] = kafkago.FirstOffsetOf(int(p))
		case startLatest:
			reqs[i] = kafkago.LastOffsetOf(int(p))
		case startTime:
			reqs[i] = kafkago.TimeOffsetOf(int(p), s.cfg.start.at)
		}
	}
	iso := kafkago.ReadUncommitted
	if s.cfg.readCommitted {
		iso = kafkago.ReadCommitted
	}
	res, err := kc.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{s.topic: reqs}, IsolationLevel: iso})
	if err != nil {
		return nil, err
	}
	for _, po := range res.Topics[s.topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("partition %d: %w", po.Partition, po.Error)
		}
		switch kind {
		case startEarliest:
			out[int32(po.Partition)] = po.FirstOffset
		case startLatest:
			out[int32(po.Partition)] = po.LastOffset
		case startTime:
			o := int64(-1)
			for off := range po.Offsets {
				o = off
			}
			out[int32(po.Partition)] = o
		}
	}
	if kind == startTime {
		// No record at or after the time: start after the newest.
		var late []int32
		for _, p := range parts {
			if out[p] < 0 {
				late = append(late, p)
			}
		}
		if len(late) > 0 {
			more, err := s.startOffsets(ctx, c, late, startLatest)
			if err != nil {
				return nil, err
			}
			for p, o := range more {
				out[p] = o
			}
		}
	}
	for _, p := range parts {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("partition %d: no offset in the broker's answer", p)
		}
	}
	return out, nil
}

type partState struct {
	partition int32
	next      int64 // offset after the last record returned (or skipped)
	// For the lag metric, read on another goroutine: next, and the end
	// of what the source may read (the last stable offset with
	// read_committed, else the high watermark) at the last fetch.
	read, avail atomic.Int64
	end         int64 // Bounded: where reading stops
	highest     int64 // newest timestamp returned, or weir.NoWatermark
	lastActive  time.Time
}

// partition is the fetcher's view of one partition.
type partition struct {
	index  int // in sourceReader.parts
	id     int32
	offset int64 // next offset to fetch
	end    int64 // Bounded: where fetching stops
}

// chunk is what one fetch returned for one partition, decoded.
type chunk[T any] struct {
	part int // index in sourceReader.parts
	recs []T
	offs []int64
	ts   []int64
	next int64 // offset to read after the chunk
	err  error
}

type sourceReader[T any] struct {
	src  *Source[T]
	c    *client
	info weir.SubtaskInfo

	parts  []*partState
	chunks chan chunk[T]
	cur    chunk[T]
	at     int // next record of cur to return
	has    bool

	cancel func()
	done   chan struct{}
	now    func() time.Time

	// Watermarks.
	sent int64
	idle bool

	// CommitOffsets: the offsets taken at each checkpoint not yet
	// complete, and whether a commit is on its way.
	taken      []takenOffsets
	commitMu   sync.Mutex
	committing bool
	toCommit   map[int32]int64
	toCommitID uint64
	commits    sync.WaitGroup
}

type takenOffsets struct {
	checkpoint uint64
	offsets    map[int32]int64
}

// Lag implements weir.LagReporter: per partition, the records the
// broker has that the source has not returned yet, as of the last fetch.
func (r *sourceReader[T]) Lag() []weir.PartitionLag {
	out := make([]weir.PartitionLag, 0, len(r.parts))
	for _, ps := range r.parts {
		if avail := ps.avail.Load(); avail > 0 {
			out = append(out, weir.PartitionLag{Topic: r.src.topic, Partition: ps.partition, Lag: max(avail-ps.read.Load(), 0)})
		}
	}
	return out
}

// Read implements weir.SourceReader: it returns the records fetched so
// far, waiting at most a short while when there are none.
func (r *sourceReader[T]) Read(ctx context.Context, buf []T) ([]T, error) {
	if r.src.cfg.bounded && !r.has && r.ended() {
		return buf, io.EOF
	}
	wait := time.NewTimer(50 * time.Millisecond)
	defer wait.Stop()
	for len(buf) < cap(buf) {
		if !r.has {
			var c chunk[T]
			if len(buf) == 0 {
				select {
				case c = <-r.chunks:
				case <-wait.C:
					return buf, nil
				case <-ctx.Done():
					return buf, ctx.Err()
				}
			} else {
				select {
				case c = <-r.chunks:
				default:
					return buf, nil
				}
			}
			if c.err != nil {
				return buf, c.err
			}
			r.cur, r.at, r.has = c, 0, true
		}
		ps := r.parts[r.cur.part]
		n := min(cap(buf)-len(buf), len(r.cur.recs)-r.at)
		if n > 0 {
			buf = append(buf, r.cur.recs[r.at:r.at+n]...)
			for _, t := range r.cur.ts[r.at : r.at+n] {
				if t > ps.highest {
					ps.highest = t
				}
			}
			r.at += n
			ps.next = r.cur.offs[r.at-1] + 1
			ps.read.Store(ps.next)
			ps.lastActive = r.now()
		}
		if r.at == len(r.cur.recs) {
			ps.next = r.cur.next
			ps.read.Store(ps.next)
			clear(r.cur.recs)
			r.has = false
		}
	}
	return buf, nil
}

// ended reports whether every partition was read to its end (Bounded).
func (r *sourceReader[T]) ended() bool {
	for _, ps := range r.parts {
		if ps.next < ps.end {
			return false
		}
	}
	return true
}

// Position implements weir.CheckpointedReader.
func (r *sourceReader[T]) Position() ([]byte, error) {
	return encodeSourcePosition(r.src.topic, r.info, r.parts), nil
}

// CheckpointTaken implements weir.CheckpointListener.
func (r *sourceReader[T]) CheckpointTaken(id uint64) {
	if !r.src.cfg.commitOffsets {
		return
	}
	offs := make(map[int32]int64, len(r.parts))
	for _, ps := range r.parts {
		offs[ps.partition] = ps.next
	}
	r.taken = append(r.taken, takenOffsets{id, offs})
	if len(r.taken) > 64 { // checkpoints that never complete
		r.taken = r.taken[len(r.taken)-64:]
	}
}

// CheckpointComplete implements weir.CheckpointListener: it commits the
// offsets of checkpoint id to the consumer group, in the background; while
// a commit is on its way, newer offsets wait for it and replace older ones.
func (r *sourceReader[T]) CheckpointComplete(id uint64) error {
	var offs map[int32]int64
	for len(r.taken) > 0 && r.taken[0].checkpoint <= id {
		offs = r.taken[0].offsets
		r.taken = r.taken[1:]
	}
	if len(offs) == 0 {
		return nil
	}
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	r.toCommit, r.toCommitID = offs, id
	if r.committing {
		return nil
	}
	r.committing = true
	r.commits.Add(1)
	go r.commitLoop()
	return nil
}

func (r *sourceReader[T]) commitLoop() {
	defer r.commits.Done()
	s := r.src
	kc := &kafkago.Client{Addr: r.c.addr, Transport: r.c.t}
	for {
		r.commitMu.Lock()
		offs, id := r.toCommit, r.toCommitID
		r.toCommit = nil
		if offs == nil {
			r.committing = false
			r.commitMu.Unlock()
			return
		}
		r.commitMu.Unlock()
		var commits []kafkago.OffsetCommit
		for p, o := range offs {
			commits = append(commits, kafkago.OffsetCommit{Partition: int(p), Offset: o})
		}
		// The group's coordinator may be loading or moving (the first
		// group request of a new cluster creates __consumer_offsets):
		// retry that.
		err := r.c.retry(context.Background(), "OffsetCommit", func(ctx context.Context) error {
			res, err := kc.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{GroupID: s.cfg.group, GenerationID: -1, Topics: map[string][]kafkago.OffsetCommit{s.topic: commits}})
			if err != nil {
				return err
			}
			for _, ps := range res.Topics[s.topic] {
				if ps.Error != nil {
					return ps.Error
				}
			}
			return nil
		})
		if err != nil && r.info.Logger != nil {
			r.info.Logger.Warn("kafka source: commit offsets to the consumer group", "group", s.cfg.group, "topic", s.topic, "checkpoint", id, "err", err)
		}
	}
}

// Watermark implements engine.Watermarker: the least watermark of the
// partitions that are not idle.
func (r *sourceReader[T]) Watermark() (int64, bool) {
	if !r.src.cfg.eventTime {
		return 0, false
	}
	now := r.now()
	wm := int64(math.MaxInt64)
	active := 0
	for _, ps := range r.parts {
		if r.partIdle(ps, now) {
			continue
		}
		active++
		if ps.highest == weir.NoWatermark {
			return 0, false
		}
		wm = min(wm, ps.highest-r.src.cfg.outOfOrderness.Milliseconds()-1)
	}
	if active == 0 {
		return 0, false
	}
	if wm <= r.sent {
		return 0, false
	}
	r.sent = wm
	return wm, true
}

func (r *sourceReader[T]) partIdle(ps *partState, now time.Time) bool {
	t := r.src.cfg.idleTimeout
	if t <= 0 {
		return false
	}
	if ps.lastActive.IsZero() {
		ps.lastActive = now
	}
	return now.Sub(ps.lastActive) >= t
}

// Idle implements engine.Watermarker: the subtask is idle when all its
// partitions are, and always when it has none.
func (r *sourceReader[T]) Idle(read bool) (idle, changed bool) {
	if !r.src.cfg.eventTime {
		return false, false
	}
	if len(r.parts) == 0 {
		// More subtasks than partitions: this one will never read, so
		// it must not hold event time back, whatever the idle timeout.
		changed = !r.idle
		r.idle = true
		return true, changed
	}
	if r.src.cfg.idleTimeout <= 0 {
		return false, false
	}
	now := r.now()
	idle = true
	for _, ps := range r.parts {
		if !r.partIdle(ps, now) {
			idle = false
			break
		}
	}
	changed = idle != r.idle
	r.idle = idle
	return idle, changed
}

// Close implements weir.SourceReader.
func (r *sourceReader[T]) Close() error {
	r.cancel()
	<-r.done
	r.commits.Wait()
	r.c.close()
	return nil
}

// fetchLoop fetches the partitions' records and hands them to Read,
// decoded, until ctx ends or an error that retrying does not cure. It
// fetches the partitions of each leader broker in one request, on a
// connection of its own.
func (r *sourceReader[T]) fetchLoop(ctx context.Context, parts []partition) {
	defer close(r.done)
	if len(parts) == 0 {
		<-ctx.Done()
		return
	}
	s := r.src
	iso := int8(0)
	if s.cfg.readCommitted {
		iso = 1
	}
	conns := map[string]*fetchConn{}
	defer func() {
		for _, fc := range conns {
			fc.close()
		}
	}()
	var failingSince time.Time
	// fail reports whether to go on: it waits a little after an error
	// worth retrying, or hands the error to Read.
	fail := func(err error) bool {
		if failingSince.IsZero() {
			failingSince = time.Now()
		}
		if time.Since(failingSince) < s.conn.requestTimeout() && retriable(err) {
			return sleep(ctx, 200*time.Millisecond) == nil
		}
		select {
		case r.chunks <- chunk[T]{err: err}:
		case <-ctx.Done():
		}
		return false
	}
	var (
		leaders map[int32]string
		batches []fetchedBatch
		recs    []Record
	)
	for ctx.Err() == nil {
		if leaders == nil {
			var err error
			if leaders, err = r.c.leaders(ctx, s.topic); err != nil {
				leaders = nil
				if ctx.Err() != nil || !fail(fmt.Errorf("kafka source: %w", err)) {
					return
				}
				continue
			}
		}
		groups := map[string][]int{}
		var order []string
		for i, p := range parts {
			if s.cfg.bounded && p.offset >= p.end {
				continue
			}
			a := leaders[p.id]
			if _, ok := groups[a]; !ok {
				order = append(order, a)
			}
			groups[a] = append(groups[a], i)
		}
		if len(order) == 0 {
			<-ctx.Done() // Bounded: all read
			return
		}
		progress := true
		for _, addr := range order {
			idxs := groups[addr]
			fc := conns[addr]
			if fc == nil {
				var err error
				if fc, err = r.c.dialFetch(ctx, addr); err != nil {
					leaders, progress = nil, false
					if ctx.Err() != nil || !fail(fmt.Errorf("kafka source: connect to %s: %w", addr, err)) {
						return
					}
					break
				}
				conns[addr] = fc
			}
			req := &fetch.Request{
				ReplicaID:      -1,
				MaxWaitTime:    int32(s.cfg.maxWait.Milliseconds()),
				MinBytes:       1,
				MaxBytes:       int32(len(idxs)) * s.cfg.partitionBytes,
				IsolationLevel: iso,
				SessionEpoch:   -1,
				Topics:         []fetch.RequestTopic{{Topic: s.topic}},
			}
			for _, i := range idxs {
				req.Topics[0].Partitions = append(req.Topics[0].Partitions, fetch.RequestPartition{
					Partition: parts[i].id, CurrentLeaderEpoch: -1, FetchOffset: parts[i].offset, LogStartOffset: -1, PartitionMaxBytes: s.cfg.partitionBytes,
				})
			}
			res, err := fc.fetch(req, time.Now().Add(s.cfg.maxWait+s.conn.requestTimeout()))
			if err == nil && res.errorCode != 0 {
				err = kafkago.Error(res.errorCode)
			}
			if err != nil {
				fc.close()
				delete(conns, addr)
				leaders, progress = nil, false
				if ctx.Err() != nil || !fail(fmt.Errorf("kafka source: fetch %s from %s: %w", s.topic, addr, err)) {
					return
				}
				break
			}
			for _, pr := range res.parts {
				i := -1
				for _, j := range idxs {
					if parts[j].id == pr.partition {
						i = j
					}
				}
				if i < 0 || pr.topic != s.topic {
					continue
				}
				p := &parts[i]
				if pr.errorCode == 0 {
					end := pr.highWatermark
					if s.cfg.readCommitted && pr.lastStable >= 0 {
						end = pr.lastStable
					}
					r.parts[p.index].avail.Store(end)
				}
				if pr.errorCode != 0 {
					e := kafkago.Error(pr.errorCode)
					err := fmt.Errorf("kafka source: topic %s partition %d offset %d: %w", s.topic, p.id, p.offset, e)
					if e == kafkago.OffsetOutOfRange {
						err = fmt.Errorf("%w (the offset is no longer, or not yet, in the log: retention deleted records the job had not read, or the topic was recreated)", err)
					}
					leaders, progress = nil, false
					if !fail(err) {
						return
					}
					continue
				}
				var err error
				batches, err = parseBatches(s.topic, p.id, pr.records, batches[:0])
				if err != nil {
					if !fail(fmt.Errorf("kafka source: topic %s partition %d offset %d: %w", s.topic, p.id, p.offset, err)) {
						return
					}
					progress = false
					continue
				}
				aborted := pr.aborted
				if !s.cfg.readCommitted {
					aborted = nil
				}
				var next int64
				recs, next = readCommitted(batches, aborted, p.offset, recs[:0])
				if next == p.offset {
					continue
				}
				if s.cfg.bounded {
					// Records past the end are not this run's.
					k := len(recs)
					for k > 0 && recs[k-1].Offset >= p.end {
						k--
					}
					recs = recs[:k]
					next = min(next, max(p.end, p.offset))
				}
				c, err := r.decodeChunk(p.index, recs, next)
				if err != nil {
					if !fail(err) {
						return
					}
					progress = false
					continue
				}
				p.offset = next
				select {
				case r.chunks <- c:
				case <-ctx.Done():
					return
				}
			}
		}
		if progress {
			failingSince = time.Time{}
		}
	}
}

func (r *sourceReader[T]) decodeChunk(part int, recs []Record, next int64) (c chunk[T], err error) {
	s := r.src
	defer func() {
		// The Deserializer is the user's and runs on the fetch
		// goroutine: its panic fails the job like an operator's would.
		if p := recover(); p != nil {
			err = fmt.Errorf("kafka source: topic %s: the deserializer panicked: %v", s.topic, p)
		}
	}()
	c = chunk[T]{part: part, next: next, recs: make([]T, 0, len(recs)), offs: make([]int64, 0, len(recs)), ts: make([]int64, 0, len(recs))}
	for i := range recs {
		v, err := s.decode(&recs[i])
		if err != nil {
			if s.cfg.bad == SkipBadRecords {
				s.skipped.Add(1)
				continue
			}
			return c, fmt.Errorf("kafka source: bad record at topic %s partition %d offset %d: %w", s.topic, recs[i].Partition, recs[i].Offset, err)
		}
		c.recs = append(c.recs, v)
		c.offs = append(c.offs, recs[i].Offset)
		c.ts = append(c.ts, recs[i].Time)
	}
	return c, nil
}

// retriable reports whether an error may pass by itself: the network, a
// leader election, a broker restart.
func retriable(err error) bool {
	var ke kafkago.Error
	if errors.As(err, &ke) {
		return coordinatorBusy(ke)
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE, syscall.ECONNABORTED, io.EOF, io.ErrUnexpectedEOF, net.ErrClosed, context.DeadlineExceeded} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	s := err.Error()
	for _, m := range []string{"connection refused", "connection reset", "broken pipe", "EOF", "i/o timeout"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

package sources

import (
	"context"
	"io"
	"math"
	"time"

	"github.com/weirstream/weir"
)

// Seq is a record of the Sequence source: the seq-th record of key Key.
type Seq struct {
	Key int64 `json:"key"`
	Seq int64 `json:"seq"`
}

// SequenceConfig configures the Sequence source.
type SequenceConfig struct {
	// Keys is the number of keys, 0..Keys-1; must be > 0.
	Keys int
	// Count is the number of records per key, seq 1..Count; must be >= 0.
	Count int64
	// Rate is the number of records per second over all subtasks;
	// 0 means as fast as possible.
	Rate float64
}

// maxWait bounds how long a rate-limited Read sleeps before it returns a
// partial or empty batch.
const maxWait = 50 * time.Millisecond

// Sequence returns a deterministic bounded source that emits (key, seq) for
// seq 1..Count and every key 0..Keys-1, in seq-major order: every key's seq 1,
// then every key's seq 2, and so on.
//
// Keys are split between subtasks by key % parallelism == index, so each
// key's records come from one subtask, in increasing seq order.
//
// With Rate > 0 the output is paced against the time of the first Read, so
// the rate does not drift however the batches fall. Each subtask gets the
// share of Rate proportional to the number of keys it owns (Rate/p when p
// divides Keys), so all subtasks finish together and the total is Rate.
//
// The configuration is checked when a subtask opens; errors wrap ErrConfig
// and name the field.
func Sequence(cfg SequenceConfig) weir.Source[Seq] {
	return &sequenceSource{cfg: cfg}
}

func (c SequenceConfig) validate() error {
	if c.Keys <= 0 {
		return configErrorf("SequenceConfig.Keys must be > 0, got %d", c.Keys)
	}
	if c.Count < 0 {
		return configErrorf("SequenceConfig.Count must be >= 0, got %d", c.Count)
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		return configErrorf("SequenceConfig.Rate must be a finite number >= 0, got %v", c.Rate)
	}
	return nil
}

type sequenceSource struct {
	cfg SequenceConfig
}

func (s *sequenceSource) Open(_ context.Context, info weir.SubtaskInfo) (weir.SourceReader[Seq], error) {
	return s.open(info)
}

func (s *sequenceSource) open(info weir.SubtaskInfo) (*sequenceReader, error) {
	if err := s.cfg.validate(); err != nil {
		return nil, err
	}
	if err := checkInfo("sequence", info); err != nil {
		return nil, err
	}
	keys, p, i := int64(s.cfg.Keys), int64(info.Parallelism), int64(info.Index)
	mine := owned(keys, info.Index, info.Parallelism) // keys k with k % p == i
	if mine > 0 && s.cfg.Count > math.MaxInt64/mine {
		return nil, configErrorf("SequenceConfig: Keys*Count overflows int64 (Keys %d, Count %d)", s.cfg.Keys, s.cfg.Count)
	}
	r := &sequenceReader{
		first: i,
		step:  p,
		keys:  keys,
		owned: mine,
		key:   i,
		seq:   1,
		total: mine * s.cfg.Count,
		now:   time.Now,
	}
	if s.cfg.Rate > 0 {
		r.rate = s.cfg.Rate * float64(mine) / float64(keys)
	}
	r.sleep = r.sleepTimer
	return r, nil
}

// Restore opens subtask info.Index at a position returned by its reader's
// Position; an empty position means the start. The position holds the number
// of records returned and Keys, which must not change; Count may. With a Rate
// the restored reader paces from its first Read, without catching up on the
// time the job was down.
func (s *sequenceSource) Restore(_ context.Context, info weir.SubtaskInfo, position []byte) (weir.SourceReader[Seq], error) {
	r, err := s.open(info)
	if err != nil || len(position) == 0 {
		return r, err
	}
	f, err := decodePosition(posSequence, info, position, 2)
	if err != nil {
		return nil, err
	}
	keys, produced := f[0], f[1]
	if keys != uint64(s.cfg.Keys) {
		return nil, positionErrorf(posSequence, "position of a sequence of %d keys, source has %d", keys, s.cfg.Keys)
	}
	if produced > uint64(r.total) {
		return nil, positionErrorf(posSequence, "%d records returned, but subtask %d of %d has only %d",
			produced, info.Index, info.Parallelism, r.total)
	}
	if n := int64(produced); n > 0 {
		// Record number n (0-based) is key first+(n%owned)*step, seq n/owned+1.
		r.key = r.first + n%r.owned*r.step
		r.seq = n/r.owned + 1
		r.produced, r.base = n, n
	}
	return r, nil
}

var (
	_ weir.RestorableSource[Seq] = (*sequenceSource)(nil)
	_ weir.CheckpointedReader    = (*sequenceReader)(nil)
)

type sequenceReader struct {
	first, step, keys int64 // this subtask's keys: first, first+step, ... < keys
	owned             int64 // number of keys of this subtask
	key, seq          int64 // next record
	produced, total   int64 // records emitted so far and in all

	rate  float64   // records per second for this subtask; 0 = unlimited
	start time.Time // time of the first Read, when rate > 0
	base  int64     // records produced at start: pacing counts from there

	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	timer *time.Timer
}

func (r *sequenceReader) Read(ctx context.Context, buf []Seq) ([]Seq, error) {
	if err := ctx.Err(); err != nil {
		return buf, err
	}
	n := int64(space(buf))
	if left := r.total - r.produced; left < n {
		n = left
	}
	if r.rate > 0 && n > 0 {
		due, err := r.pace(ctx)
		if err != nil {
			return buf, err
		}
		if due < n {
			n = due
		}
	}
	if n > 0 {
		buf = r.fill(buf, int(n))
	}
	if r.produced == r.total {
		return buf, io.EOF
	}
	return buf, nil
}

// fill appends the next n records to buf.
func (r *sequenceReader) fill(buf []Seq, n int) []Seq {
	l := len(buf)
	buf = buf[:l+n]
	out := buf[l:]
	key, seq := r.key, r.seq
	step, keys, first := r.step, r.keys, r.first
	for j := range out {
		out[j] = Seq{Key: key, Seq: seq}
		key += step
		if key >= keys {
			key = first
			seq++
		}
	}
	r.key, r.seq = key, seq
	r.produced += int64(n)
	return buf
}

// pace returns how many records may be emitted now. When none is due yet it
// sleeps until the next one is, but never longer than maxWait, so it may
// return 0.
func (r *sequenceReader) pace(ctx context.Context) (int64, error) {
	now := r.now()
	if r.start.IsZero() {
		r.start = now
	}
	sent := r.produced - r.base
	due := r.dueAt(now)
	if due > sent {
		return due - sent, nil
	}
	// Record number sent (0-based) is due at start + sent/rate.
	wait := float64(sent)/r.rate - now.Sub(r.start).Seconds()
	d := maxWait
	if wait < maxWait.Seconds() {
		d = time.Duration(wait*float64(time.Second)) + 1
	}
	if d > 0 {
		if err := r.sleep(ctx, d); err != nil {
			return 0, err
		}
	}
	return r.dueAt(r.now()) - sent, nil
}

// dueAt returns how many records should have been emitted since the start
// by time now: record k (0-based, counted from base) is due k/rate seconds
// after the start.
func (r *sequenceReader) dueAt(now time.Time) int64 {
	total := r.total - r.base
	f := now.Sub(r.start).Seconds() * r.rate
	if f >= float64(total) {
		return total
	}
	due := int64(f) + 1
	if due > total {
		return total
	}
	return due
}

// Position returns the number of records returned so far (see Restore).
func (r *sequenceReader) Position() ([]byte, error) {
	return encodePosition(posSequence, int(r.first), int(r.step), uint64(r.keys), uint64(r.produced)), nil
}

func (r *sequenceReader) sleepTimer(ctx context.Context, d time.Duration) error {
	if r.timer == nil {
		r.timer = time.NewTimer(d)
	} else {
		r.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		r.timer.Stop()
		return ctx.Err()
	case <-r.timer.C:
		return nil
	}
}

func (r *sequenceReader) Close() error {
	if r.timer != nil {
		r.timer.Stop()
	}
	return nil
}

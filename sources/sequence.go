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
	return s.openLanes(info, []lane{{first: int64(info.Index), step: int64(info.Parallelism)}})
}

// openLanes opens a reader of the keys of lanes (see lanes.go; done counts
// records, a round is one seq of every key of the lane).
func (s *sequenceSource) openLanes(info weir.SubtaskInfo, lanes []lane) (*sequenceReader, error) {
	if err := s.cfg.validate(); err != nil {
		return nil, err
	}
	if err := checkInfo("sequence", info); err != nil {
		return nil, err
	}
	keys := int64(s.cfg.Keys)
	r := &sequenceReader{info: info, keys: keys, count: s.cfg.Count, now: time.Now}
	var mine int64
	for _, l := range lanes {
		size := l.size(keys)
		if size == 0 {
			continue
		}
		mine += size
		if s.cfg.Count > 0 && mine > math.MaxInt64/s.cfg.Count {
			return nil, configErrorf("SequenceConfig: Keys*Count overflows int64 (Keys %d, Count %d)", s.cfg.Keys, s.cfg.Count)
		}
		if l.done < 0 || l.done > size*s.cfg.Count {
			return nil, positionErrorf(posSequence, "%d records returned, but subtask %d of %d has only %d",
				l.done, info.Index, info.Parallelism, size*s.cfg.Count)
		}
		r.lanes = append(r.lanes, seqLane{lane: l, size: size})
		r.produced += l.done
	}
	r.total = mine * s.cfg.Count
	r.base = r.produced
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
	if len(position) == 0 {
		return s.open(info)
	}
	fp, lanes, err := decodeLanes(posSequence, info, position, 1)
	if err != nil {
		return nil, err
	}
	if err := s.checkKeys(fp[0]); err != nil {
		return nil, err
	}
	return s.openLanes(info, lanes)
}

// RestoreRescaled implements weir.RescalableSource: subtask i of the new
// parallelism q continues every key k with k mod q == i from the seq its old
// subtask had reached, as a fresh start at q would split the keys.
func (s *sequenceSource) RestoreRescaled(_ context.Context, info weir.SubtaskInfo, positions [][]byte) (weir.SourceReader[Seq], error) {
	fp, old, err := oldLanes(posSequence, info, positions, 1)
	if err != nil {
		return nil, err
	}
	if fp != nil {
		if err := s.checkKeys(fp[0]); err != nil {
			return nil, err
		}
	}
	return s.openLanes(info, rescaleLanes(old, int64(s.cfg.Keys), info))
}

func (s *sequenceSource) checkKeys(keys uint64) error {
	if keys != uint64(s.cfg.Keys) {
		return positionErrorf(posSequence, "position of a sequence of %d keys, source has %d", keys, s.cfg.Keys)
	}
	return nil
}

var (
	_ weir.RescalableSource[Seq] = (*sequenceSource)(nil)
	_ weir.CheckpointedReader    = (*sequenceReader)(nil)
)

// seqLane is a lane of keys (see lanes.go): the next record is key
// first+(done%size)*step, seq done/size+1.
type seqLane struct {
	lane
	size int64 // keys in the lane
}

type sequenceReader struct {
	info            weir.SubtaskInfo
	keys, count     int64
	lanes           []seqLane
	produced, total int64 // records emitted so far and in all

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
		buf = r.fill(buf, n)
	}
	if r.produced == r.total {
		return buf, io.EOF
	}
	return buf, nil
}

// fill appends the next n records to buf: seq-major, the lane with the
// lowest seq first (lanes differ only after a rescale).
func (r *sequenceReader) fill(buf []Seq, n int64) []Seq {
	if len(r.lanes) == 1 {
		// One lane (no rescale): across rounds in one tight loop.
		l := &r.lanes[0]
		m := min(n, l.size*r.count-l.done)
		start := len(buf)
		buf = buf[:start+int(m)]
		out := buf[start:]
		key, seq := l.first+l.done%l.size*l.step, l.done/l.size+1
		first, step, last := l.first, l.step, l.first+(l.size-1)*l.step
		for j := range out {
			out[j] = Seq{Key: key, Seq: seq}
			if key == last {
				key = first
				seq++
			} else {
				key += step
			}
		}
		l.done += m
		r.produced += m
		return buf
	}
	for n > 0 {
		var l *seqLane
		for i := range r.lanes {
			c := &r.lanes[i]
			if c.done < c.size*r.count && (l == nil || c.done/c.size < l.done/l.size) {
				l = c
			}
		}
		if l == nil {
			break
		}
		m := min(n, l.size-l.done%l.size) // to the end of the round
		key, seq := l.first+l.done%l.size*l.step, l.done/l.size+1
		for range m {
			buf = append(buf, Seq{Key: key, Seq: seq})
			key += l.step
		}
		l.done += m
		r.produced += m
		n -= m
	}
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

// Position returns the number of records returned so far (see Restore), or
// after a rescale, those of each lane.
func (r *sequenceReader) Position() ([]byte, error) {
	if l := r.lanes; len(l) == 1 && l[0].first == int64(r.info.Index) && l[0].step == int64(r.info.Parallelism) {
		return encodePosition(posSequence, r.info.Index, r.info.Parallelism, uint64(r.keys), uint64(r.produced)), nil
	}
	lanes := make([]lane, len(r.lanes))
	for i, l := range r.lanes {
		lanes[i] = l.lane
	}
	return encodeLanes(posSequence, r.info, []uint64{uint64(r.keys)}, lanes), nil
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

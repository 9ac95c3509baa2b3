package weir

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/weirstream/weir/engine"
)

// WatermarkStrategy says how a source derives event time and watermarks
// from its records. Each source subtask tracks the highest event time it
// has read and, after every batch, sends the watermark
// highest - OutOfOrderness - 1 ms downstream when it advanced: a record of
// that subtask at least OutOfOrderness older than the newest one seen is
// late. A task with several inputs holds the minimum of their watermarks.
// When a bounded source ends, its watermark jumps to the end of time, so
// every window and timer fires before the job's final checkpoint.
type WatermarkStrategy[T any] struct {
	// Timestamp returns a record's event time in milliseconds since the
	// Unix epoch.
	Timestamp func(T) int64
	// OutOfOrderness bounds how much older than the newest record seen a
	// record may be (0: event time never goes back, "monotonous").
	OutOfOrderness time.Duration
	// IdleTimeout marks a subtask idle when it has read nothing for that
	// long (0: never): an idle subtask does not hold the watermark of the
	// tasks it feeds back, so a source subtask without input (more
	// subtasks than partitions, a quiet partition) does not stall event
	// time. It is active again with its next record.
	IdleTimeout time.Duration
}

// NoWatermark is the watermark before any: no event time is complete.
const NoWatermark int64 = math.MinInt64

// WithWatermarks returns src with watermarks derived by strategy. The
// highest event time read is part of each subtask's checkpointed position,
// so a restored source resumes with the watermark it had.
func WithWatermarks[T any](src Source[T], strategy WatermarkStrategy[T]) Source[T] {
	return &watermarkSource[T]{src: src, s: strategy}
}

type watermarkSource[T any] struct {
	src Source[T]
	s   WatermarkStrategy[T]
}

func (w *watermarkSource[T]) Open(ctx context.Context, info SubtaskInfo) (SourceReader[T], error) {
	if w.s.Timestamp == nil {
		return nil, errors.New("weir: WatermarkStrategy without a Timestamp function")
	}
	if w.s.OutOfOrderness < 0 || w.s.IdleTimeout < 0 {
		return nil, fmt.Errorf("weir: WatermarkStrategy: OutOfOrderness %v and IdleTimeout %v must not be negative", w.s.OutOfOrderness, w.s.IdleTimeout)
	}
	r, err := w.src.Open(ctx, info)
	if err != nil {
		return nil, err
	}
	return w.wrap(r, NoWatermark), nil
}

// Restore implements RestorableSource when the wrapped source does.
func (w *watermarkSource[T]) Restore(ctx context.Context, info SubtaskInfo, position []byte) (SourceReader[T], error) {
	rs, ok := w.src.(RestorableSource[T])
	if !ok {
		return nil, fmt.Errorf("weir: %T cannot restore a position (it does not implement weir.RestorableSource)", w.src)
	}
	if len(position) == 0 {
		r, err := rs.Restore(ctx, info, nil)
		if err != nil {
			return nil, err
		}
		return w.wrap(r, NoWatermark), nil
	}
	hi, rest, err := splitWatermark(position)
	if err != nil {
		return nil, err
	}
	r, err := rs.Restore(ctx, info, rest)
	if err != nil {
		return nil, err
	}
	return w.wrap(r, hi), nil
}

func splitWatermark(position []byte) (highest int64, rest []byte, err error) {
	if len(position) < len(watermarkMagic) || string(position[:len(watermarkMagic)]) != watermarkMagic {
		return 0, nil, fmt.Errorf("weir: source position without its watermark (%d bytes): taken before WithWatermarks was added?", len(position))
	}
	rest = position[len(watermarkMagic):]
	hi, n := binary.Varint(rest)
	if n <= 0 {
		return 0, nil, errors.New("weir: source position: damaged watermark")
	}
	return hi, rest[n:], nil
}

// RestoreRescaled implements RescalableSource when the wrapped source does.
// The restored readers start from the lowest of the old subtasks' highest
// event times, so no record counts as late that was not late before.
func (w *watermarkSource[T]) RestoreRescaled(ctx context.Context, info SubtaskInfo, positions [][]byte) (SourceReader[T], error) {
	rs, ok := w.src.(RescalableSource[T])
	if !ok {
		return nil, fmt.Errorf("weir: %T cannot be rescaled (it does not implement weir.RescalableSource)", w.src)
	}
	inner := make([][]byte, len(positions))
	lowest := int64(math.MaxInt64)
	for j, pos := range positions {
		if len(pos) == 0 {
			lowest = NoWatermark // read nothing that was stored
			continue
		}
		hi, rest, err := splitWatermark(pos)
		if err != nil {
			return nil, fmt.Errorf("subtask %d of %d: %w", j, len(positions), err)
		}
		lowest = min(lowest, hi) // NoWatermark (read nothing) is the lowest
		inner[j] = rest
	}
	if len(positions) == 0 {
		lowest = NoWatermark
	}
	r, err := rs.RestoreRescaled(ctx, info, inner)
	if err != nil {
		return nil, err
	}
	return w.wrap(r, lowest), nil
}

// CannotRescale says why the wrapped source cannot be rescaled, or "".
func (w *watermarkSource[T]) CannotRescale() string { return noRescale(w.src) }

// watermarkMagic starts a position written by WithWatermarks: then the
// highest event time read (varint), then the wrapped reader's position.
const watermarkMagic = "WM1"

func (w *watermarkSource[T]) wrap(r SourceReader[T], highest int64) SourceReader[T] {
	wr := &watermarkReader[T]{r: r, ts: w.s.Timestamp, bound: w.s.OutOfOrderness.Milliseconds(), highest: highest, sent: NoWatermark,
		idleAfter: w.s.IdleTimeout, now: time.Now}
	if _, ok := r.(CheckpointedReader); ok {
		return &checkpointedWatermarkReader[T]{wr}
	}
	return wr
}

type watermarkReader[T any] struct {
	r       SourceReader[T]
	ts      func(T) int64
	bound   int64
	highest int64 // highest event time read, or NoWatermark
	sent    int64 // last watermark returned

	idleAfter time.Duration // 0: never idle
	now       func() time.Time
	lastRead  time.Time // when a Read last returned records (or the first Idle call)
	idle      bool
}

var (
	_ engine.Watermarker    = (*watermarkReader[int])(nil)
	_ CheckpointedReader    = (*checkpointedWatermarkReader[int])(nil)
	_ RestorableSource[int] = (*watermarkSource[int])(nil)
)

func (w *watermarkReader[T]) Read(ctx context.Context, buf []T) ([]T, error) {
	l := len(buf)
	buf, err := w.r.Read(ctx, buf)
	for i := l; i < len(buf); i++ {
		if t := w.ts(buf[i]); t > w.highest {
			w.highest = t
		}
	}
	return buf, err
}

func (w *watermarkReader[T]) Close() error { return w.r.Close() }

// Watermark implements engine.Watermarker.
func (w *watermarkReader[T]) Watermark() (int64, bool) {
	if w.highest == NoWatermark {
		return 0, false
	}
	wm := w.highest - w.bound - 1
	if wm <= w.sent {
		return 0, false
	}
	w.sent = wm
	return wm, true
}

// Idle implements engine.Watermarker.
func (w *watermarkReader[T]) Idle(read bool) (idle, changed bool) {
	if w.idleAfter <= 0 {
		return false, false
	}
	now := w.now()
	if read || w.lastRead.IsZero() {
		w.lastRead = now
	}
	idle = !read && now.Sub(w.lastRead) >= w.idleAfter
	changed = idle != w.idle
	w.idle = idle
	return idle, changed
}

type checkpointedWatermarkReader[T any] struct{ *watermarkReader[T] }

func (c *checkpointedWatermarkReader[T]) Position() ([]byte, error) {
	pos, err := c.r.(CheckpointedReader).Position()
	if err != nil {
		return nil, err
	}
	b := binary.AppendVarint([]byte(watermarkMagic), c.highest)
	return append(b, pos...), nil
}

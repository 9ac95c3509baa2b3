package sources

import (
	"context"
	"io"
	"slices"

	"github.com/weirstream/weir"
)

// Slice returns a bounded source that replays values: subtask i of p emits
// values[i], values[i+p], values[i+2p], ... in that order, then io.EOF.
// values is copied, so the caller may reuse it.
//
// The source is a weir.RestorableSource and its readers are
// weir.CheckpointedReaders: a position records how many values the subtask
// returned (and len(values), which must be the same on restore).
func Slice[T any](values []T) weir.Source[T] {
	return &sliceSource[T]{values: slices.Clone(values)}
}

var (
	_ weir.RestorableSource[int] = (*sliceSource[int])(nil)
	_ weir.CheckpointedReader    = (*sliceReader[int])(nil)
)

type sliceSource[T any] struct {
	values []T
}

func (s *sliceSource[T]) Open(_ context.Context, info weir.SubtaskInfo) (weir.SourceReader[T], error) {
	if err := checkInfo("slice", info); err != nil {
		return nil, err
	}
	return &sliceReader[T]{values: s.values, first: info.Index, next: info.Index, step: info.Parallelism}, nil
}

// Restore opens subtask info.Index at a position returned by its reader's
// Position; an empty position means the start.
func (s *sliceSource[T]) Restore(ctx context.Context, info weir.SubtaskInfo, position []byte) (weir.SourceReader[T], error) {
	if err := checkInfo("slice", info); err != nil {
		return nil, err
	}
	if len(position) == 0 {
		return s.Open(ctx, info)
	}
	f, err := decodePosition(posSlice, info, position, 2)
	if err != nil {
		return nil, err
	}
	n, returned := f[0], f[1]
	if n != uint64(len(s.values)) {
		return nil, positionErrorf(posSlice, "position of a slice of %d values, source has %d", n, len(s.values))
	}
	if max := owned(int64(len(s.values)), info.Index, info.Parallelism); returned > uint64(max) {
		return nil, positionErrorf(posSlice, "%d values returned, but subtask %d of %d has only %d", returned, info.Index, info.Parallelism, max)
	}
	r := &sliceReader[T]{values: s.values, first: info.Index, step: info.Parallelism}
	r.next = r.first + int(returned)*r.step
	return r, nil
}

type sliceReader[T any] struct {
	values []T
	first  int // index in values of this subtask's first record
	next   int // index in values of the next record
	step   int
}

func (r *sliceReader[T]) Read(ctx context.Context, buf []T) ([]T, error) {
	if err := ctx.Err(); err != nil {
		return buf, err
	}
	for n := space(buf); n > 0 && r.next < len(r.values); n-- {
		buf = append(buf, r.values[r.next])
		r.next += r.step
	}
	if r.next >= len(r.values) {
		return buf, io.EOF
	}
	return buf, nil
}

// Position returns the number of values returned so far (see Slice).
func (r *sliceReader[T]) Position() ([]byte, error) {
	returned := (r.next - r.first) / r.step
	return encodePosition(posSlice, r.first, r.step, uint64(len(r.values)), uint64(returned)), nil
}

func (r *sliceReader[T]) Close() error { return nil }

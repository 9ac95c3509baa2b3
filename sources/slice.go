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
func Slice[T any](values []T) weir.Source[T] {
	return &sliceSource[T]{values: slices.Clone(values)}
}

type sliceSource[T any] struct {
	values []T
}

func (s *sliceSource[T]) Open(_ context.Context, info weir.SubtaskInfo) (weir.SourceReader[T], error) {
	if err := checkInfo("slice", info); err != nil {
		return nil, err
	}
	return &sliceReader[T]{values: s.values, next: info.Index, step: info.Parallelism}, nil
}

type sliceReader[T any] struct {
	values []T
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

func (r *sliceReader[T]) Close() error { return nil }

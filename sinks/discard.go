package sinks

import (
	"context"
	"sync/atomic"

	"github.com/weirstream/weir"
)

// Discarder is a sink for benchmarks that drops every record and counts
// them. It is safe for use by any number of subtasks.
type Discarder[T any] struct {
	n atomic.Int64
}

// Discard returns a sink that drops every record; its Count reports how many
// it dropped.
func Discard[T any]() *Discarder[T] {
	return &Discarder[T]{}
}

// Open implements weir.Sink.
func (d *Discarder[T]) Open(_ context.Context, info weir.SubtaskInfo) (weir.SinkWriter[T], error) {
	if err := checkInfo("discard", info); err != nil {
		return nil, err
	}
	return discardWriter[T]{d}, nil
}

// Count returns the number of records written to all subtasks so far.
func (d *Discarder[T]) Count() int64 { return d.n.Load() }

type discardWriter[T any] struct {
	d *Discarder[T]
}

func (w discardWriter[T]) Write(batch []T) error {
	w.d.n.Add(int64(len(batch)))
	return nil
}

func (w discardWriter[T]) Finish() error { return nil }
func (w discardWriter[T]) Close() error  { return nil }

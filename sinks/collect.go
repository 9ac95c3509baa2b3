package sinks

import (
	"context"
	"slices"
	"sync"

	"github.com/weirstream/weir"
)

// Collector is a sink for tests that keeps every record in memory. It is
// safe for use by any number of subtasks and by the test reading it.
type Collector[T any] struct {
	mu struct {
		sync.Mutex
		values   []T
		finished int
	}
}

// Collect returns an empty Collector.
func Collect[T any]() *Collector[T] {
	return &Collector[T]{}
}

// Open implements weir.Sink.
func (c *Collector[T]) Open(_ context.Context, info weir.SubtaskInfo) (weir.SinkWriter[T], error) {
	if err := checkInfo("collect", info); err != nil {
		return nil, err
	}
	return collectWriter[T]{c}, nil
}

// Values returns a copy of the records written so far, in arrival order.
// Records are visible as soon as they are written, before Finish.
func (c *Collector[T]) Values() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.mu.values)
}

// Len returns the number of records written so far.
func (c *Collector[T]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.mu.values)
}

// Finished returns how many subtasks have called Finish.
func (c *Collector[T]) Finished() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.finished
}

type collectWriter[T any] struct {
	c *Collector[T]
}

func (w collectWriter[T]) Write(batch []T) error {
	w.c.mu.Lock()
	w.c.mu.values = append(w.c.mu.values, batch...)
	w.c.mu.Unlock()
	return nil
}

func (w collectWriter[T]) Finish() error {
	w.c.mu.Lock()
	w.c.mu.finished++
	w.c.mu.Unlock()
	return nil
}

func (w collectWriter[T]) Close() error { return nil }

package engine

import "github.com/weirstream/weir/barrier"

// Output receives what an operator emits. Every operator of a chain is the
// Output of the operator before it; the last one hands batches to an
// exchange or a sink. All calls come from the task's goroutine.
type Output[T any] interface {
	// Push hands over a batch of records. The callee must not retain batch
	// (or sub-slices of it) after it returns: the caller reuses it.
	Push(batch []T) error
	// Control hands over a control event. The callee handles it after
	// every record pushed before it and forwards it downstream.
	Control(ev barrier.Event) error
}

// Envelope is what travels through a channel between tasks: a batch of
// records or a control event, tagged with the index of the sender among the
// senders of the receiving gate.
type Envelope[T any] struct {
	From  int32
	Event barrier.Event // Kind == barrier.None for a batch
	Batch []T
}

// discard is the Output of a node that has no consumer.
type discard[T any] struct{}

func (discard[T]) Push([]T) error              { return nil }
func (discard[T]) Control(barrier.Event) error { return nil }

// fanOut pushes to several outputs in order.
type fanOut[T any] []Output[T]

func (f fanOut[T]) Push(b []T) error {
	for _, o := range f {
		if err := o.Push(b); err != nil {
			return err
		}
	}
	return nil
}

func (f fanOut[T]) Control(ev barrier.Event) error {
	for _, o := range f {
		if err := o.Control(ev); err != nil {
			return err
		}
	}
	return nil
}

func combine[T any](outs []any) Output[T] {
	switch len(outs) {
	case 0:
		return discard[T]{}
	case 1:
		return outs[0].(Output[T])
	}
	f := make(fanOut[T], len(outs))
	for i, o := range outs {
		f[i] = o.(Output[T])
	}
	return f
}

package operators

import (
	"fmt"

	"github.com/weirstream/weir/barrier"
	"github.com/weirstream/weir/engine"
)

// Emitter receives the records a user function emits.
type Emitter[T any] interface {
	Emit(v T)
}

// emitter collects emitted records into a batch and hands full batches to
// the next operator. A downstream error is kept and returned by flush; the
// records emitted after it are dropped, since the job is failing anyway.
type emitter[T any] struct {
	next  engine.Output[T]
	buf   []T
	batch int
	err   error
}

func newEmitter[T any](next engine.Output[T], batch int) emitter[T] {
	return emitter[T]{next: next, buf: make([]T, 0, batch), batch: batch}
}

func (e *emitter[T]) Emit(v T) {
	if e.err != nil {
		return
	}
	e.buf = append(e.buf, v)
	if len(e.buf) >= e.batch {
		e.err = e.next.Push(e.buf)
		clear(e.buf)
		e.buf = e.buf[:0]
	}
}

func (e *emitter[T]) flush() error {
	if e.err == nil && len(e.buf) > 0 {
		e.err = e.next.Push(e.buf)
	}
	clear(e.buf)
	e.buf = e.buf[:0]
	err := e.err
	e.err = nil
	return err
}

// DefaultBatch is the size of the output batch of an operator whose output
// size is not bounded by its input (flatMap, process).
const DefaultBatch = 1024

// Map applies fn to every record.
func NewMap[In, Out any](fn func(In) Out) engine.OperatorFactory[In, Out] {
	return func(_ *engine.OpContext, next engine.Output[Out]) (engine.Output[In], error) {
		return &mapOp[In, Out]{fn: fn, next: next}, nil
	}
}

type mapOp[In, Out any] struct {
	fn   func(In) Out
	next engine.Output[Out]
	out  []Out
}

func (m *mapOp[In, Out]) Push(b []In) error {
	out := m.out[:0]
	for i := range b {
		out = append(out, m.fn(b[i]))
	}
	m.out = out
	err := m.next.Push(out)
	clear(out)
	return err
}

func (m *mapOp[In, Out]) Control(ev barrier.Event) error { return m.next.Control(ev) }

// NewFilter keeps the records for which fn returns true.
func NewFilter[T any](fn func(T) bool) engine.OperatorFactory[T, T] {
	return func(_ *engine.OpContext, next engine.Output[T]) (engine.Output[T], error) {
		return &filterOp[T]{fn: fn, next: next}, nil
	}
}

type filterOp[T any] struct {
	fn   func(T) bool
	next engine.Output[T]
	out  []T
}

func (f *filterOp[T]) Push(b []T) error {
	out := f.out[:0]
	for i := range b {
		if f.fn(b[i]) {
			out = append(out, b[i])
		}
	}
	f.out = out
	if len(out) == 0 {
		return nil
	}
	err := f.next.Push(out)
	clear(out)
	return err
}

func (f *filterOp[T]) Control(ev barrier.Event) error { return f.next.Control(ev) }

// NewFlatMap calls fn for every record; fn emits zero or more records.
func NewFlatMap[In, Out any](fn func(In, Emitter[Out])) engine.OperatorFactory[In, Out] {
	return func(_ *engine.OpContext, next engine.Output[Out]) (engine.Output[In], error) {
		return &flatMapOp[In, Out]{fn: fn, em: newEmitter(next, DefaultBatch)}, nil
	}
}

type flatMapOp[In, Out any] struct {
	fn func(In, Emitter[Out])
	em emitter[Out]
}

func (f *flatMapOp[In, Out]) Push(b []In) error {
	for i := range b {
		f.fn(b[i], &f.em)
		if f.em.err != nil {
			break
		}
	}
	return f.em.flush()
}

func (f *flatMapOp[In, Out]) Control(ev barrier.Event) error {
	if err := f.em.flush(); err != nil {
		return err
	}
	return f.em.next.Control(ev)
}

// Writer is the per-subtask half of a sink (weir.SinkWriter).
type Writer[T any] interface {
	Write(batch []T) error
	Finish() error
	Close() error
}

// NewSink adapts a sink writer, opened by open for every subtask, to an
// operator with no output.
func NewSink[T any](open func(oc *engine.OpContext) (Writer[T], error)) engine.OperatorFactory[T, struct{}] {
	return func(oc *engine.OpContext, _ engine.Output[struct{}]) (engine.Output[T], error) {
		w, err := open(oc)
		if err != nil {
			return nil, err
		}
		oc.OnClose(w.Close)
		s := &sinkOp[T]{w: w}
		oc.OnFinish(func() error {
			if !s.ended {
				return fmt.Errorf("sink finishing before the end of its input")
			}
			return w.Finish()
		})
		return s, nil
	}
}

// sinkOp writes batches; the writer's Finish runs once the whole job has
// consumed its input (OpContext.OnFinish), not when this subtask's input
// ends, so a failure elsewhere in the job leaves its output uncommitted.
type sinkOp[T any] struct {
	w     Writer[T]
	ended bool
}

func (s *sinkOp[T]) Push(b []T) error { return s.w.Write(b) }

func (s *sinkOp[T]) Control(ev barrier.Event) error {
	if ev.Kind == barrier.EndOfInput {
		s.ended = true
	}
	return nil
}

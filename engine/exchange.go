package engine

import (
	"context"
	"fmt"

	"github.com/weirstream/weir/barrier"
	"github.com/weirstream/weir/statebackend"
)

// Gate is the input of one subtask whose records arrive over an exchange:
// a bounded channel shared by all its senders (a single sender's envelopes
// stay in order) and a free list through which emptied batches go back to
// the senders, so a steady stream allocates nothing.
type Gate[T any] struct {
	inbox   chan Envelope[T]
	free    chan []T
	senders int
	batch   int
}

func newGate[T any](senders, queue, batch int) *Gate[T] {
	return &Gate[T]{
		inbox:   make(chan Envelope[T], queue),
		free:    make(chan []T, queue+2*senders),
		senders: senders,
		batch:   batch,
	}
}

// get returns an empty batch with capacity for g.batch records.
func (g *Gate[T]) get() []T {
	select {
	case b := <-g.free:
		return b
	default:
		return make([]T, 0, g.batch)
	}
}

func (g *Gate[T]) recycle(b []T) {
	if cap(b) < g.batch {
		return
	}
	clear(b) // drop references held by the records so the GC can free them
	select {
	case g.free <- b[:0]:
	default:
	}
}

// run delivers envelopes to head until every sender delivered end-of-input.
// When the inbox is empty it flushes the task's outputs before it blocks.
func (g *Gate[T]) run(ctx context.Context, t *task, head Output[T]) error {
	ended := make([]bool, g.senders)
	live := g.senders
	for live > 0 {
		var env Envelope[T]
		select {
		case env = <-g.inbox:
		default:
			if err := t.flush(); err != nil {
				return err
			}
			select {
			case env = <-g.inbox:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		switch env.Event.Kind {
		case barrier.None:
			err := head.Push(env.Batch)
			g.recycle(env.Batch)
			if err != nil {
				return err
			}
			if err := t.lingered(); err != nil {
				return err
			}
		case barrier.EndOfInput:
			if !ended[env.From] {
				ended[env.From] = true
				live--
			}
		default:
			// Watermarks and barriers arrive with event time and checkpoints.
			return fmt.Errorf("engine: unexpected control event %v from sender %d", env.Event, env.From)
		}
	}
	return head.Control(barrier.End)
}

// sender is the sending half of an exchange, held by one producer subtask:
// one batch under construction per consumer subtask.
type sender[T any] struct {
	ctx   context.Context
	from  int32
	gates []*Gate[T]
	bufs  [][]T
}

func newSender[T any](ctx context.Context, from int, gates []*Gate[T]) sender[T] {
	return sender[T]{ctx: ctx, from: int32(from), gates: gates, bufs: make([][]T, len(gates))}
}

func (s *sender[T]) add(i int, v T) error {
	b := s.bufs[i]
	if b == nil {
		b = s.gates[i].get()
	}
	b = append(b, v)
	s.bufs[i] = b
	if len(b) >= s.gates[i].batch {
		return s.send(i)
	}
	return nil
}

func (s *sender[T]) put(i int, env Envelope[T]) error {
	env.From = s.from
	ch := s.gates[i].inbox
	select {
	case ch <- env:
		return nil
	default:
	}
	select {
	case ch <- env:
		return nil
	case <-s.ctx.Done():
		return context.Cause(s.ctx)
	}
}

func (s *sender[T]) send(i int) error {
	b := s.bufs[i]
	if len(b) == 0 {
		return nil
	}
	s.bufs[i] = nil
	return s.put(i, Envelope[T]{Batch: b})
}

// Flush sends every partial batch.
func (s *sender[T]) Flush() error {
	for i := range s.bufs {
		if err := s.send(i); err != nil {
			return err
		}
	}
	return nil
}

// Control flushes every partial batch, then sends ev to every consumer.
func (s *sender[T]) Control(ev barrier.Event) error {
	if err := s.Flush(); err != nil {
		return err
	}
	for i := range s.gates {
		if err := s.put(i, Envelope[T]{Event: ev}); err != nil {
			return err
		}
	}
	return nil
}

// forwardSender sends everything to one consumer subtask.
type forwardSender[T any] struct{ sender[T] }

func (f *forwardSender[T]) Push(b []T) error {
	for len(b) > 0 {
		buf := f.bufs[0]
		if buf == nil {
			buf = f.gates[0].get()
		}
		n := min(len(b), f.gates[0].batch-len(buf))
		buf = append(buf, b[:n]...)
		b = b[n:]
		f.bufs[0] = buf
		if len(buf) >= f.gates[0].batch {
			if err := f.send(0); err != nil {
				return err
			}
		}
	}
	return nil
}

// rebalanceSender fills the batch of one consumer, sends it and moves to
// the next consumer: round robin by batch.
type rebalanceSender[T any] struct {
	sender[T]
	next int
}

func (r *rebalanceSender[T]) Push(b []T) error {
	for len(b) > 0 {
		i := r.next
		buf := r.bufs[i]
		if buf == nil {
			buf = r.gates[i].get()
		}
		n := min(len(b), r.gates[i].batch-len(buf))
		buf = append(buf, b[:n]...)
		b = b[n:]
		r.bufs[i] = buf
		if len(buf) >= r.gates[i].batch {
			if err := r.send(i); err != nil {
				return err
			}
			r.next = (i + 1) % len(r.gates)
		}
	}
	return nil
}

// Flush sends the partial batch of the current target and moves on to the
// next, so a trickle of records flushed by idleness still spreads over all
// consumers.
func (r *rebalanceSender[T]) Flush() error {
	if len(r.bufs[r.next]) == 0 {
		return nil
	}
	err := r.send(r.next)
	r.next = (r.next + 1) % len(r.gates)
	return err
}

// Keyed is a record on a keyed edge: the key, computed once by the sender,
// its key group, and the record.
type Keyed[K, T any] struct {
	Key      K
	KeyGroup uint16
	Value    T
}

// keyedSender routes every record by the key group of its encoded key.
type keyedSender[K, T any] struct {
	sender[Keyed[K, T]]
	key     func(T) K
	codec   statebackend.Codec[K]
	maxPar  int
	targets []uint16 // key group -> consumer subtask
	scratch []byte
}

func (k *keyedSender[K, T]) Push(b []T) error {
	for i := range b {
		key := k.key(b[i])
		k.scratch = k.codec.Append(k.scratch[:0], key)
		kg := statebackend.KeyGroupOf(k.scratch, k.maxPar)
		if err := k.add(int(k.targets[kg]), Keyed[K, T]{Key: key, KeyGroup: kg, Value: b[i]}); err != nil {
			return err
		}
	}
	return nil
}

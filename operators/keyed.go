package operators

import (
	"fmt"

	"github.com/weirstream/weir/barrier"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/statebackend"
)

// StateContext gives access to the keyed state of the current key. Only the
// operators of this package implement it.
type StateContext interface {
	stateScope() *scope
}

// KeyedContext is what a keyed process function sees besides the record:
// the current key and its keyed state (through Value, MapOf, List and
// Reducing).
type KeyedContext[K any] interface {
	StateContext
	// Key is the key of the record being processed.
	Key() K
	// KeyGroup is the key group of Key.
	KeyGroup() int
	// Subtask is the index of the parallel instance running the function.
	Subtask() int
}

// ProcessFunc is a keyed process function: it is called once for every
// record with the record's key set in ctx, and emits to out. An error fails
// the job.
type ProcessFunc[K, In, Out any] func(ctx KeyedContext[K], v In, out Emitter[Out]) error

// scope is the keyed state of one operator subtask: the states it
// registered, by name.
type scope struct {
	backend *statebackend.Backend
	uid     string
	states  map[string]any
}

func (s *scope) lookup(name string) any { return s.states[name] }

func (s *scope) fullName(name string) string { return s.uid + "/" + name }

type keyedCtx[K any] struct {
	scope   scope
	key     K
	kg      int
	subtask int
}

func (c *keyedCtx[K]) stateScope() *scope { return &c.scope }
func (c *keyedCtx[K]) Key() K             { return c.key }
func (c *keyedCtx[K]) KeyGroup() int      { return c.kg }
func (c *keyedCtx[K]) Subtask() int       { return c.subtask }

// keyed is the part shared by keyed operators: the backend, the key codec
// and the context whose current key it sets for every record.
type keyed[K any] struct {
	ctx     keyedCtx[K]
	codec   statebackend.Codec[K]
	backend *statebackend.Backend
	scratch []byte
}

func (k *keyed[K]) open(oc *engine.OpContext, codec statebackend.Codec[K]) error {
	b, err := oc.StateBackend()
	if err != nil {
		return err
	}
	k.backend = b
	k.codec = codec
	k.ctx = keyedCtx[K]{scope: scope{backend: b, uid: oc.UID, states: map[string]any{}}, subtask: oc.Index}
	return nil
}

func (k *keyed[K]) setKey(key K, kg uint16) {
	k.scratch = k.codec.Append(k.scratch[:0], key)
	k.backend.SetCurrentKey(kg, k.scratch)
	k.ctx.key = key
	k.ctx.kg = int(kg)
}

// NewProcess runs fn for every record of a keyed stream.
func NewProcess[K, In, Out any](codec statebackend.Codec[K], fn ProcessFunc[K, In, Out]) engine.OperatorFactory[engine.Keyed[K, In], Out] {
	return func(oc *engine.OpContext, next engine.Output[Out]) (engine.Output[engine.Keyed[K, In]], error) {
		p := &processOp[K, In, Out]{fn: fn, em: newEmitter(next, DefaultBatch)}
		if err := p.open(oc, codec); err != nil {
			return nil, err
		}
		return p, nil
	}
}

type processOp[K, In, Out any] struct {
	keyed[K]
	fn ProcessFunc[K, In, Out]
	em emitter[Out]
}

func (p *processOp[K, In, Out]) Push(b []engine.Keyed[K, In]) error {
	for i := range b {
		r := &b[i]
		p.setKey(r.Key, r.KeyGroup)
		if err := p.fn(&p.ctx, r.Value, &p.em); err != nil {
			p.em.flush()
			return err
		}
		if err := p.backend.Err(); err != nil {
			p.em.flush()
			return fmt.Errorf("keyed state: %w", err)
		}
		if p.em.err != nil {
			break
		}
	}
	return p.em.flush()
}

func (p *processOp[K, In, Out]) Control(ev barrier.Event) error {
	if err := p.em.flush(); err != nil {
		return err
	}
	return p.em.next.Control(ev)
}

// NewReduce keeps, per key, the reduction of all records so far and emits
// it after every record (a rolling reduce). A key's first record is its
// initial reduction.
func NewReduce[K, T any](codec statebackend.Codec[K], fn func(acc, v T) T) engine.OperatorFactory[engine.Keyed[K, T], T] {
	step := func(acc T, ok bool, v T) T {
		if !ok {
			return v
		}
		return fn(acc, v)
	}
	return newRolling(codec, "reduce", step, func(acc T) T { return acc })
}

// Aggregator folds records of type T into an accumulator A and derives a
// result R from it.
type Aggregator[T, A, R any] interface {
	// Zero is the accumulator of a key that has seen no record.
	Zero() A
	// Add folds v into acc.
	Add(acc A, v T) A
	// Result derives the emitted value from an accumulator.
	Result(acc A) R
}

// NewAggregate keeps, per key, an accumulator and emits its result after
// every record (a rolling aggregate).
func NewAggregate[K, T, A, R any](codec statebackend.Codec[K], agg Aggregator[T, A, R]) engine.OperatorFactory[engine.Keyed[K, T], R] {
	step := func(acc A, ok bool, v T) A {
		if !ok {
			acc = agg.Zero()
		}
		return agg.Add(acc, v)
	}
	return newRolling(codec, "aggregate", step, agg.Result)
}

func newRolling[K, T, A, R any](codec statebackend.Codec[K], state string, step func(acc A, ok bool, v T) A, result func(A) R) engine.OperatorFactory[engine.Keyed[K, T], R] {
	return func(oc *engine.OpContext, next engine.Output[R]) (engine.Output[engine.Keyed[K, T]], error) {
		a := &rollingOp[K, T, A, R]{step: step, result: result, next: next}
		if err := a.open(oc, codec); err != nil {
			return nil, err
		}
		ac, err := statebackend.CodecFor[A]()
		if err != nil {
			return nil, fmt.Errorf("%s state: %w", state, err)
		}
		a.acc, err = statebackend.NewValue(a.backend, a.ctx.scope.fullName(state), ac)
		if err != nil {
			return nil, err
		}
		return a, nil
	}
}

type rollingOp[K, T, A, R any] struct {
	keyed[K]
	step   func(acc A, ok bool, v T) A
	result func(A) R
	acc    *statebackend.Value[A]
	next   engine.Output[R]
	out    []R
}

func (a *rollingOp[K, T, A, R]) Push(b []engine.Keyed[K, T]) error {
	out := a.out[:0]
	for i := range b {
		r := &b[i]
		a.setKey(r.Key, r.KeyGroup)
		acc, ok := a.acc.Lookup()
		acc = a.step(acc, ok, r.Value)
		a.acc.Set(acc)
		out = append(out, a.result(acc))
	}
	a.out = out
	if err := a.backend.Err(); err != nil {
		return fmt.Errorf("keyed state: %w", err)
	}
	err := a.next.Push(out)
	clear(out)
	return err
}

func (a *rollingOp[K, T, A, R]) Control(ev barrier.Event) error { return a.next.Control(ev) }

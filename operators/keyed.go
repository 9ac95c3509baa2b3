package operators

import (
	"fmt"
	"math"

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
	// Timers are the event-time timers of the current key. Only a function
	// with an OnTimer callback (weir.KeyedProcess) may register them.
	Timers() TimerService
}

// TimerService sets event-time timers for the current key. A timer at t
// fires once the operator's watermark reaches t: OnTimer runs with the
// timer's key set, before the watermark goes further downstream. Timers are
// keyed state: checkpointed, restored, and fired exactly once across
// recovery.
type TimerService interface {
	// Register sets a timer at event time t (milliseconds since the
	// epoch); setting one twice is setting it once.
	Register(t int64)
	// Delete removes the timer at t, if set.
	Delete(t int64)
	// Watermark is the operator's current watermark (math.MinInt64 before
	// the first).
	Watermark() int64
	// RegisterProcessingTime sets a timer at wall-clock time t
	// (milliseconds since the epoch): it fires once the clock passes t,
	// while the task waits for input or between two batches. Like
	// event-time timers it is keyed state; one restored from a checkpoint
	// fires once its time has come.
	RegisterProcessingTime(t int64)
	// DeleteProcessingTime removes the processing-time timer at t, if set.
	DeleteProcessingTime(t int64)
	// Domain says, in OnTimer, which kind of timer fired.
	Domain() TimeDomain
}

// TimeDomain is the clock of a timer.
type TimeDomain uint8

// Time domains.
const (
	EventTime      TimeDomain = iota // the watermark
	ProcessingTime                   // the wall clock
)

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
	scope     scope
	key       K
	kg        int
	subtask   int
	timers    *statebackend.Timers // nil: the function has no OnTimer
	proc      *statebackend.Timers // processing-time timers (with timers)
	domain    TimeDomain           // of the timer firing
	watermark int64
}

func (c *keyedCtx[K]) Timers() TimerService { return c }

func (c *keyedCtx[K]) Register(t int64) {
	if c.timers == nil {
		panic("timers need an OnTimer callback: use weir.KeyedProcess")
	}
	c.timers.Register(t)
}

func (c *keyedCtx[K]) Delete(t int64) {
	if c.timers != nil {
		c.timers.Delete(t)
	}
}

func (c *keyedCtx[K]) Watermark() int64 { return c.watermark }

func (c *keyedCtx[K]) RegisterProcessingTime(t int64) {
	if c.proc == nil {
		panic("timers need an OnTimer callback: use weir.KeyedProcess")
	}
	c.proc.Register(t)
}

func (c *keyedCtx[K]) DeleteProcessingTime(t int64) {
	if c.proc != nil {
		c.proc.Delete(t)
	}
}

func (c *keyedCtx[K]) Domain() TimeDomain { return c.domain }

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
	oc.SetKeySchema(statebackend.SchemaOf(codec))
	b, err := oc.StateBackend()
	if err != nil {
		return err
	}
	k.backend = b
	k.codec = codec
	k.ctx = keyedCtx[K]{scope: scope{backend: b, uid: oc.UID, states: map[string]any{}}, subtask: oc.Index, watermark: math.MinInt64}
	return nil
}

// useTimers registers the operator's timer service.
func (k *keyed[K]) useTimers() error {
	t, err := statebackend.NewTimers(k.backend, k.ctx.scope.fullName("timers"))
	if err != nil {
		return err
	}
	k.ctx.timers = t
	return nil
}

// advance takes the watermark to wm and calls fire for every timer due, with
// its key set, in time order (timers that fire may set more).
func (k *keyed[K]) advance(wm int64, fire func(t int64) error) error {
	if wm <= k.ctx.watermark {
		return nil
	}
	k.ctx.watermark = wm
	if k.ctx.timers == nil {
		return nil
	}
	return k.fireDue(k.ctx.timers, wm, func(d statebackend.Timer) error {
		if err := k.setEncodedKey(d); err != nil {
			return err
		}
		return fire(d.Time)
	})
}

// setEncodedKey makes a timer's key the current key.
func (k *keyed[K]) setEncodedKey(d statebackend.Timer) error {
	key, err := k.codec.Decode(d.Key)
	if err != nil {
		return fmt.Errorf("timer of an undecodable key: %w", err)
	}
	k.setKey(key, d.KeyGroup)
	return nil
}

// fireDue calls fire for every timer of timers at or before upTo, a batch
// at a time until none is left (firing may set more), and checks the
// state for errors after each.
func (k *keyed[K]) fireDue(timers *statebackend.Timers, upTo int64, fire func(d statebackend.Timer) error) error {
	for {
		due := timers.Due(upTo, timerBatch)
		if err := k.backend.Err(); err != nil {
			return fmt.Errorf("keyed state: %w", err)
		}
		if len(due) == 0 {
			return nil
		}
		for _, d := range due {
			if err := fire(d); err != nil {
				return err
			}
			if err := k.backend.Err(); err != nil {
				return fmt.Errorf("keyed state: %w", err)
			}
		}
	}
}

func (k *keyed[K]) setKey(key K, kg uint16) {
	k.scratch = k.codec.Append(k.scratch[:0], key)
	k.backend.SetCurrentKey(kg, k.scratch)
	k.ctx.key = key
	k.ctx.kg = int(kg)
}

// NewProcess runs fn for every record of a keyed stream.
func NewProcess[K, In, Out any](codec statebackend.Codec[K], fn ProcessFunc[K, In, Out]) engine.OperatorFactory[engine.Keyed[K, In], Out] {
	return NewKeyedProcess(codec, fn, nil)
}

// TimerFunc is called when a timer of the current key fires, at event time
// t.
type TimerFunc[K, Out any] func(ctx KeyedContext[K], t int64, out Emitter[Out]) error

// NewKeyedProcess runs fn for every record of a keyed stream and onTimer
// for every timer that fires (nil: the function sets no timers).
func NewKeyedProcess[K, In, Out any](codec statebackend.Codec[K], fn ProcessFunc[K, In, Out], onTimer TimerFunc[K, Out]) engine.OperatorFactory[engine.Keyed[K, In], Out] {
	return func(oc *engine.OpContext, next engine.Output[Out]) (engine.Output[engine.Keyed[K, In]], error) {
		p := &processOp[K, In, Out]{fn: fn, onTimer: onTimer, em: newEmitter(next, DefaultBatch)}
		if err := p.open(oc, codec); err != nil {
			return nil, err
		}
		if onTimer != nil {
			if err := p.useTimers(); err != nil {
				return nil, err
			}
			proc, err := statebackend.NewTimers(p.backend, p.ctx.scope.fullName("processing-timers"))
			if err != nil {
				return nil, err
			}
			p.ctx.proc = proc
			oc.OnProcessingTime(p)
		}
		return p, nil
	}
}

type processOp[K, In, Out any] struct {
	keyed[K]
	fn      ProcessFunc[K, In, Out]
	onTimer TimerFunc[K, Out]
	em      emitter[Out]
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

// NextProcessingTime implements engine.ProcessingTimer.
func (p *processOp[K, In, Out]) NextProcessingTime() (int64, bool) { return p.ctx.proc.Next() }

// FireProcessingTime implements engine.ProcessingTimer.
func (p *processOp[K, In, Out]) FireProcessingTime(now int64) error {
	p.ctx.domain = ProcessingTime
	defer func() { p.ctx.domain = EventTime }()
	err := p.fireDue(p.ctx.proc, now, func(d statebackend.Timer) error {
		if err := p.setEncodedKey(d); err != nil {
			return err
		}
		return p.onTimer(&p.ctx, d.Time, &p.em)
	})
	if ferr := p.em.flush(); err == nil {
		err = ferr
	}
	return err
}

func (p *processOp[K, In, Out]) Control(ev barrier.Event) error {
	if ev.Kind == barrier.Watermark {
		err := p.advance(ev.Time, func(t int64) error { return p.onTimer(&p.ctx, t, &p.em) })
		if err != nil {
			p.em.flush()
			return err
		}
	}
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

// timerBatch is how many due timers are read from state at a time.
const timerBatch = 4096

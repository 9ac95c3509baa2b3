package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/weirstream/weir/barrier"
	"github.com/weirstream/weir/statebackend"
)

// Gate is the input of one subtask whose records arrive over an exchange:
// a bounded channel shared by all its senders (a single sender's envelopes
// stay in order) and a free list through which emptied batches go back to
// the senders, so a steady stream allocates nothing.
//
// Every sender holds credits for at most `queue` envelopes in flight to the
// gate; the gate returns a credit when it processes an envelope. While the
// aligner holds a sender back (it delivered barrier n, others have not), its
// envelopes are stashed, unprocessed, so it runs out of credits and blocks:
// that is per-input backpressure over a shared channel, as Flink's
// credit-based flow control gives per channel.
type Gate[T any] struct {
	inbox   chan Envelope[T]
	free    chan []T
	credits []chan struct{} // by sender
	senders int
	batch   int

	aligner *barrier.Aligner
	marks   *barrier.WatermarkMerger
	idle    bool          // told the head that every live input is idle
	stash   []envQueue[T] // by sender: received while blocked, in order
	align   alignment     // of the newest checkpoint whose barrier arrived
}

// alignment times the alignment of one checkpoint, for its span.
type alignment struct {
	id       uint64
	trace    barrier.TraceContext
	start    time.Time
	arrivals []arrival
}

type arrival struct {
	input int
	at    time.Time
}

// note records the arrival of a barrier from input i.
func (a *alignment) note(i int, ev barrier.Event) {
	if ev.Checkpoint > a.id {
		*a = alignment{id: ev.Checkpoint, trace: ev.Trace, start: time.Now(), arrivals: a.arrivals[:0]}
	}
	if ev.Checkpoint == a.id {
		a.arrivals = append(a.arrivals, arrival{i, time.Now()})
	}
}

type envQueue[T any] struct {
	items []Envelope[T]
	head  int
}

func (q *envQueue[T]) empty() bool { return q.head == len(q.items) }

func (q *envQueue[T]) push(e Envelope[T]) { q.items = append(q.items, e) }

func (q *envQueue[T]) pop() Envelope[T] {
	e := q.items[q.head]
	q.items[q.head] = Envelope[T]{}
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return e
}

func newGate[T any](senders, queue, batch int) *Gate[T] {
	g := &Gate[T]{
		inbox:   make(chan Envelope[T], queue),
		free:    make(chan []T, queue+2*senders),
		credits: make([]chan struct{}, senders),
		senders: senders,
		batch:   batch,
		aligner: barrier.NewAligner(senders),
		marks:   barrier.NewWatermarkMerger(senders),
		stash:   make([]envQueue[T], senders),
	}
	for i := range g.credits {
		g.credits[i] = make(chan struct{}, queue)
		for range queue {
			g.credits[i] <- struct{}{}
		}
	}
	return g
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
	var wake <-chan struct{}
	if t.ck != nil {
		wake = t.ck.wake
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var env Envelope[T]
		select {
		case env = <-g.inbox:
		case <-wake:
			if done, err := g.service(t, head); err != nil || done {
				return err
			}
			continue
		default:
			// Nothing to read: fire the processing-time timers that are
			// due, then wait for input or the next timer.
			var due <-chan time.Time
			if len(t.procTimers) > 0 {
				if next, ok := t.nextTimer(); ok {
					if d := time.Until(next); d <= 0 {
						if err := t.fireTimers(); err != nil {
							return err
						}
						continue
					} else if timer == nil {
						timer = time.NewTimer(d)
					} else {
						timer.Reset(d)
					}
					due = timer.C
				}
			}
			if err := t.flush(); err != nil {
				return err
			}
			waited := time.Now()
			select {
			case env = <-g.inbox:
				t.idleSince(waited)
			case <-due:
				t.idleSince(waited)
				if err := t.fireTimers(); err != nil {
					return err
				}
				continue
			case <-wake:
				t.idleSince(waited)
				if done, err := g.service(t, head); err != nil || done {
					return err
				}
				continue
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		i := env.From
		if g.aligner.Blocked(int(i)) || !g.stash[i].empty() {
			g.stash[i].push(env)
			continue
		}
		done, err := g.process(env, t, head)
		if err != nil || done {
			return err
		}
		if done, err := g.drain(t, head); err != nil || done {
			return err
		}
		// Timers also fire while input keeps coming.
		if len(t.procTimers) > 0 {
			if next, ok := t.nextTimer(); ok && !time.Now().Before(next) {
				if err := t.fireTimers(); err != nil {
					return err
				}
			}
		}
		if t.ck != nil && len(t.ck.snaps) > 0 {
			if err := t.ck.throttle(ctx); err != nil {
				return err
			}
		}
	}
}

// service does the task's checkpoint chores (releases, commits) and
// carries out the coordinator's aborts: an aborted alignment releases the
// inputs it held back.
func (g *Gate[T]) service(t *task, head Output[T]) (done bool, err error) {
	if err := t.ck.service(); err != nil {
		return false, err
	}
	id, ok := t.ck.takeAbort()
	if !ok {
		return false, nil
	}
	if done, err := g.perform(g.aligner.Abort(id), t, head); err != nil || done {
		return done, err
	}
	return g.drain(t, head)
}

// drain processes what was stashed from senders that are no longer held
// back, until nothing more can be processed.
func (g *Gate[T]) drain(t *task, head Output[T]) (done bool, err error) {
	for progress := true; progress; {
		progress = false
		for i := range g.stash {
			for !g.stash[i].empty() && !g.aligner.Blocked(i) {
				progress = true
				if done, err := g.process(g.stash[i].pop(), t, head); err != nil || done {
					return done, err
				}
			}
		}
	}
	return false, nil
}

// process handles one envelope of a sender that is not held back, then
// returns the sender's credit.
func (g *Gate[T]) process(env Envelope[T], t *task, head Output[T]) (done bool, err error) {
	i := int(env.From)
	defer func() {
		select {
		case g.credits[i] <- struct{}{}:
		default:
		}
	}()
	switch env.Event.Kind {
	case barrier.None:
		err := head.Push(env.Batch)
		g.recycle(env.Batch)
		if err != nil {
			return false, err
		}
		return false, t.lingered()
	case barrier.Watermark, barrier.WatermarkStatus:
		var (
			wm int64
			ok bool
		)
		if env.Event.Kind == barrier.Watermark {
			wm, ok = g.marks.Watermark(i, env.Event.Time)
		} else {
			wm, ok = g.marks.Status(i, env.Event.Idle)
		}
		// Active again before the watermark that may come with it; idle
		// after it.
		if idle := g.marks.AllIdle(); !idle && g.idle {
			g.idle = false
			if err := head.Control(barrier.NewStatus(false)); err != nil {
				return false, err
			}
		}
		if ok {
			if err := head.Control(barrier.NewWatermark(wm)); err != nil {
				return false, err
			}
		}
		if idle := g.marks.AllIdle(); idle && !g.idle {
			g.idle = true
			return false, head.Control(barrier.NewStatus(true))
		}
		return false, nil
	case barrier.EndOfInput:
		d := g.aligner.EndOfInput(i)
		if wm, ok := g.marks.EndOfInput(i); ok && !d.Has(barrier.AllEnded) {
			if err := head.Control(barrier.NewWatermark(wm)); err != nil {
				return false, err
			}
		}
		return g.perform(d, t, head)
	case barrier.Barrier, barrier.CancelBarrier:
		if env.Event.Kind == barrier.Barrier {
			g.align.note(i, env.Event)
		}
		return g.perform(g.aligner.Step(i, env.Event), t, head)
	}
	return false, fmt.Errorf("engine: unexpected control event %v from sender %d", env.Event, i)
}

// perform carries out an aligner decision. Releasing held-back senders
// needs nothing here: drain processes their stash once they are unblocked.
func (g *Gate[T]) perform(d barrier.Decision, t *task, head Output[T]) (done bool, err error) {
	if d.Has(barrier.AbortAlignment) && t.ck != nil && d.Reason != barrier.CoordinatorAbort {
		t.ck.c.decline(t.ck.head, d.Aborted, fmt.Errorf("alignment abandoned: %s", d.Reason))
	}
	if d.Has(barrier.ForwardCancel) {
		if err := head.Control(barrier.NewCancel(d.Cancel)); err != nil {
			return false, err
		}
	}
	if d.Has(barrier.Snapshot) {
		// Every operator of the chain takes its synchronous snapshot as the
		// barrier passes, then forwards it.
		ev := barrier.NewBarrier(d.Checkpoint)
		if g.align.id == d.Checkpoint {
			ev.Trace = g.align.trace
			if t.ck != nil {
				t.ck.recordAlignment(&g.align, g.senders)
			}
		}
		if err := head.Control(ev); err != nil {
			return false, err
		}
	}
	if d.Has(barrier.AllEnded) {
		return true, head.Control(barrier.End)
	}
	return false, nil
}

// sender is the sending half of an exchange, held by one producer subtask:
// one batch under construction per consumer subtask.
type sender[T any] struct {
	ctx     context.Context
	from    int32
	gates   []*Gate[T]
	credits []chan struct{} // by target gate: this sender's credits there
	bufs    [][]T
	stats   *taskStats // the sending task's (nil in tests): time blocked
}

func newSender[T any](ctx context.Context, from int, gates []*Gate[T], ts *taskStats) sender[T] {
	s := sender[T]{ctx: ctx, from: int32(from), gates: gates, bufs: make([][]T, len(gates)), credits: make([]chan struct{}, len(gates)), stats: ts}
	for i, g := range gates {
		s.credits[i] = g.credits[from]
	}
	return s
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
	select {
	case <-s.credits[i]:
	default:
		start := time.Now()
		select {
		case <-s.credits[i]:
			s.blocked(start)
		case <-s.ctx.Done():
			return context.Cause(s.ctx)
		}
	}
	ch := s.gates[i].inbox
	select {
	case ch <- env:
		return nil
	default:
	}
	start := time.Now()
	select {
	case ch <- env:
		s.blocked(start)
		return nil
	case <-s.ctx.Done():
		return context.Cause(s.ctx)
	}
}

// blocked counts the time since start as backpressure.
func (s *sender[T]) blocked(start time.Time) {
	if s.stats != nil {
		s.stats.blocked.Add(int64(time.Since(start)))
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

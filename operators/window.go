package operators

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/weirstream/weir/barrier"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/statebackend"
)

// Window is the event-time interval [Start, End), in milliseconds since the
// epoch.
type Window struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// Windows assigns event times to windows: Size long, starting every Slide
// (Slide == Size: tumbling; Slide < Size: sliding, each time in Size/Slide
// windows), aligned to the epoch plus Offset.
type Windows struct {
	Size, Slide, Offset time.Duration
	// Gap, when set, makes session windows instead: a key's records less
	// than Gap apart are in one window, [first record, last record + Gap).
	// Sessions merge accumulators, so the aggregator must be a Merger.
	Gap time.Duration
	// AllowedLateness keeps a window's state that long after its end: a
	// late record still updates it and the window fires again with the new
	// result. Records later than that are dropped.
	AllowedLateness time.Duration
}

// Lateness returns w with AllowedLateness d.
func (w Windows) Lateness(d time.Duration) Windows {
	w.AllowedLateness = d
	return w
}

// Tumbling returns windows of size that do not overlap.
func Tumbling(size time.Duration) Windows { return Windows{Size: size, Slide: size} }

// Sliding returns windows of size starting every slide (Flink's and SQL's
// HOP(slide, size)).
func Sliding(size, slide time.Duration) Windows { return Windows{Size: size, Slide: slide} }

// Sessions returns session windows with the given gap.
func Sessions(gap time.Duration) Windows { return Windows{Gap: gap} }

func (w Windows) check() error {
	if w.Gap != 0 {
		if w.Gap.Milliseconds() <= 0 || w.Size != 0 || w.Slide != 0 || w.AllowedLateness != 0 {
			return fmt.Errorf("session windows with gap %v: need a gap of at least 1 ms and no size, slide or lateness", w.Gap)
		}
		return nil
	}
	size, slide := w.Size.Milliseconds(), w.Slide.Milliseconds()
	if size <= 0 || slide <= 0 || slide > size {
		return fmt.Errorf("windows of size %v every %v: need 0 < slide <= size, in whole milliseconds", w.Size, w.Slide)
	}
	if w.AllowedLateness < 0 {
		return fmt.Errorf("windows: allowed lateness %v is negative", w.AllowedLateness)
	}
	return nil
}

// LastStart returns the start of the last (tumbling: the only) window that
// contains event time t.
func (w Windows) LastStart(t int64) int64 {
	off := w.Offset.Milliseconds()
	return t - floorMod(t-off, w.Slide.Milliseconds())
}

// assign appends the windows that contain t.
func (w Windows) assign(t int64, dst []Window) []Window {
	size, slide := w.Size.Milliseconds(), w.Slide.Milliseconds()
	last := w.LastStart(t)
	for s := last; s > t-size; s -= slide {
		dst = append(dst, Window{Start: s, End: s + size})
	}
	return dst
}

func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// WindowResult is what a window emits: its key, its interval and the
// result of its records.
type WindowResult[K, R any] struct {
	Key    K      `json:"key"`
	Window Window `json:"window"`
	Value  R      `json:"value"`
}

// NewWindowAggregate folds each key's records into event-time windows with
// agg and emits every window's result once the watermark passes its end
// (end-1 ms). Records whose windows have all expired (their end plus the
// allowed lateness is at or below the watermark) are dropped and counted.
//
// A window's accumulator is value state of the composite key (key, window
// end), so the write-back cache holds the windows in use, and each window
// has one timer, set by its first record.
func NewWindowAggregate[K, T, A, R any](codec statebackend.Codec[K], windows Windows, timestamp func(T) int64, agg Aggregator[T, A, R]) engine.OperatorFactory[engine.Keyed[K, T], WindowResult[K, R]] {
	return newWindowAggregate(codec, windows, timestamp, agg, func(r WindowResult[K, R]) WindowResult[K, R] { return r }, nil)
}

// WindowOrLate is the output of a window operator that also emits its late
// records: a result (Late false) or a record that came after all its
// windows expired.
type WindowOrLate[K, T, R any] struct {
	Late   bool
	Result WindowResult[K, R]
	Record T
}

// NewWindowAggregateLate is NewWindowAggregate that emits the records it
// drops as late too, instead of only counting them.
func NewWindowAggregateLate[K, T, A, R any](codec statebackend.Codec[K], windows Windows, timestamp func(T) int64, agg Aggregator[T, A, R]) engine.OperatorFactory[engine.Keyed[K, T], WindowOrLate[K, T, R]] {
	return newWindowAggregate(codec, windows, timestamp, agg,
		func(r WindowResult[K, R]) WindowOrLate[K, T, R] { return WindowOrLate[K, T, R]{Result: r} },
		func(v T) (WindowOrLate[K, T, R], bool) { return WindowOrLate[K, T, R]{Late: true, Record: v}, true })
}

func newWindowAggregate[K, T, A, R, O any](codec statebackend.Codec[K], windows Windows, timestamp func(T) int64, agg Aggregator[T, A, R],
	result func(WindowResult[K, R]) O, late func(T) (O, bool)) engine.OperatorFactory[engine.Keyed[K, T], O] {
	return func(oc *engine.OpContext, next engine.Output[O]) (engine.Output[engine.Keyed[K, T]], error) {
		if err := windows.check(); err != nil {
			return nil, err
		}
		w := &windowOp[K, T, A, R, O]{windows: windows, ts: timestamp, agg: agg, lateness: windows.AllowedLateness.Milliseconds(),
			em: newEmitter(next, DefaultBatch), result: result, late: late}
		if err := w.open(oc, codec); err != nil {
			return nil, err
		}
		if err := w.useTimers(); err != nil {
			return nil, err
		}
		ac, err := statebackend.CodecFor[A]()
		if err != nil {
			return nil, fmt.Errorf("window accumulator: %w", err)
		}
		if windows.Gap != 0 {
			m, ok := any(agg).(Merger[A])
			if !ok {
				return nil, fmt.Errorf("session windows need an aggregator that merges accumulators (weir.Merger); %T does not", agg)
			}
			w.merge = m
			sc, err := statebackend.CodecFor[[]Session[A]]()
			if err != nil {
				return nil, fmt.Errorf("window accumulator: %w", err)
			}
			if w.sessions, err = statebackend.NewValue(w.backend, w.ctx.scope.fullName("sessions"), sc); err != nil {
				return nil, err
			}
			return w, nil
		}
		if m, ok := any(agg).(Merger[A]); ok && windows.Slide < windows.Size && windows.Size%windows.Slide == 0 && w.lateness == 0 {
			w.merge = m
			sc, err := statebackend.CodecFor[[]Slice[A]]()
			if err != nil {
				return nil, fmt.Errorf("window accumulator: %w", err)
			}
			if w.slices, err = statebackend.NewValue(w.backend, w.ctx.scope.fullName("slices"), sc); err != nil {
				return nil, err
			}
			return w, nil
		}
		if w.accs, err = statebackend.NewValue(w.backend, w.ctx.scope.fullName("window"), ac); err != nil {
			return nil, err
		}
		if err := w.compositeKeys("window", "timers"); err != nil {
			return nil, err
		}
		return w, nil
	}
}

// Merger is implemented by aggregators whose accumulators merge. A sliding
// window of such an aggregator keeps one accumulator per slide-long slice
// and merges Size/Slide of them when a window fires, so each record updates
// one accumulator instead of one per window it is in (Flink SQL's window
// slicing).
type Merger[A any] interface {
	Merge(a, b A) A
}

type windowOp[K, T, A, R, O any] struct {
	keyed[K]
	windows  Windows
	ts       func(T) int64
	agg      Aggregator[T, A, R]
	merge    Merger[A]                         // non-nil: sliced
	slices   *statebackend.Value[[]Slice[A]]   // sliced: a key's slices
	sessions *statebackend.Value[[]Session[A]] // sessions: a key's open sessions
	lateness int64
	accs     *statebackend.Value[A] // of (key, window end)
	em       emitter[O]
	result   func(WindowResult[K, R]) O // wraps a result for em
	late     func(T) (O, bool)          // wraps a dropped record, if they are wanted
	assigned []Window
	// Dropped counts records that came after all their windows expired.
	Dropped int64
}

// setWindow makes (key, window end) the current key.
func (w *windowOp[K, T, A, R, O]) setWindow(key K, kg uint16, end int64) {
	w.setComposite(key, kg, end)
}

// recordDone checks state and output after a record: stop is true when the
// batch must end, with err (the output flushed) or because the emitter
// failed (its error comes from the flush).
func (w *windowOp[K, T, A, R, O]) recordDone() (stop bool, err error) {
	if err := w.backend.Err(); err != nil {
		w.em.flush()
		return true, fmt.Errorf("keyed state: %w", err)
	}
	if w.em.err != nil {
		return true, w.em.flush()
	}
	return false, nil
}

// drop counts a record whose windows all expired and emits it if late
// records are wanted.
func (w *windowOp[K, T, A, R, O]) drop(v T) {
	w.Dropped++
	if w.late != nil {
		if o, ok := w.late(v); ok {
			w.em.Emit(o)
		}
	}
}

// compositeKeys records that the named states are keyed by (key, window
// end) (setComposite), for tools that decode state (weir state export).
func (k *keyed[K]) compositeKeys(names ...string) error {
	s := statebackend.SchemaOf(k.codec)
	if s == "" {
		return nil
	}
	for _, name := range names {
		if err := k.backend.SetCurrentKeySchema(k.ctx.scope.fullName(name), "window("+s+")"); err != nil {
			return err
		}
	}
	return nil
}

// setComposite makes (key, window end) the current key: the encoded key
// followed by the end, 8 bytes big endian.
func (k *keyed[K]) setComposite(key K, kg uint16, end int64) {
	k.scratch = binary.BigEndian.AppendUint64(k.codec.Append(k.scratch[:0], key), uint64(end))
	k.backend.SetCurrentKey(kg, k.scratch)
}

// advanceComposite takes the watermark to wm and calls fire for each due
// timer (at t) of a composite key (key, window end), with that key set.
func (k *keyed[K]) advanceComposite(wm int64, fire func(key K, end, t int64) error) error {
	if wm <= k.ctx.watermark {
		return nil
	}
	k.ctx.watermark = wm
	return k.fireDue(k.ctx.timers, wm, func(d statebackend.Timer) error {
		if len(d.Key) < 8 {
			return fmt.Errorf("window timer with a key of %d bytes", len(d.Key))
		}
		enc, end := d.Key[:len(d.Key)-8], int64(binary.BigEndian.Uint64(d.Key[len(d.Key)-8:]))
		key, err := k.codec.Decode(enc)
		if err != nil {
			return fmt.Errorf("window timer of an undecodable key: %w", err)
		}
		k.backend.SetCurrentKey(d.KeyGroup, d.Key)
		return fire(key, end, d.Time)
	})
}

func (w *windowOp[K, T, A, R, O]) Push(b []engine.Keyed[K, T]) error {
	if w.sessions != nil {
		return w.pushSessions(b)
	}
	if w.merge != nil {
		return w.pushSliced(b)
	}
	timers := w.ctx.timers
	wm := w.ctx.watermark
	for i := range b {
		r := &b[i]
		w.assigned = w.windows.assign(w.ts(r.Value), w.assigned[:0])
		live := false
		for _, win := range w.assigned {
			if win.End-1+w.lateness <= wm {
				continue // expired
			}
			live = true
			w.setWindow(r.Key, r.KeyGroup, win.End)
			acc, ok := w.accs.Lookup()
			if !ok {
				acc = w.agg.Zero()
				if win.End-1 > wm {
					timers.Register(win.End - 1)
				}
				if w.lateness > 0 {
					timers.Register(win.End - 1 + w.lateness)
				}
			}
			acc = w.agg.Add(acc, r.Value)
			w.accs.Set(acc)
			if win.End-1 <= wm {
				// Late but allowed: fire again with the new result.
				w.em.Emit(w.result(WindowResult[K, R]{Key: r.Key, Window: win, Value: w.agg.Result(acc)}))
			}
		}
		if !live {
			w.drop(r.Value)
		}
		if stop, err := w.recordDone(); stop {
			return err
		}
	}
	return w.em.flush()
}

// Slice is the accumulator of a key's records in [End-Slide, End), in a
// sliding window of a Merger.
type Slice[A any] struct {
	End int64
	Acc A
}

// pushSliced adds each record to the slice [s, s+Slide) that holds its
// time. A key's slices are one value (its few live slices), so a record
// reads and writes one cache entry. A new slice sets the key's timers at
// the ends of the windows it is in that have not fired.
func (w *windowOp[K, T, A, R, O]) pushSliced(b []engine.Keyed[K, T]) error {
	timers := w.ctx.timers
	wm := w.ctx.watermark
	size, slide := w.windows.Size.Milliseconds(), w.windows.Slide.Milliseconds()
	for i := range b {
		r := &b[i]
		t := w.ts(r.Value)
		start := w.windows.LastStart(t)
		end := start + slide
		if start+size-1 <= wm {
			w.drop(r.Value) // every window of its slice fired
			continue
		}
		w.setKey(r.Key, r.KeyGroup)
		ss, _ := w.slices.Lookup()
		j := slices.IndexFunc(ss, func(s Slice[A]) bool { return s.End == end })
		if j < 0 {
			ss = append(ss, Slice[A]{End: end, Acc: w.agg.Zero()})
			j = len(ss) - 1
			for e := end; e <= start+size; e += slide {
				if e-1 > wm {
					timers.Register(e - 1)
				}
			}
		}
		ss[j].Acc = w.agg.Add(ss[j].Acc, r.Value)
		w.slices.Set(ss)
		if stop, err := w.recordDone(); stop {
			return err
		}
	}
	return w.em.flush()
}

// fireSliced emits the current key's window ending at end, merged from its
// slices, and drops the slices whose last window it is.
func (w *windowOp[K, T, A, R, O]) fireSliced(end int64) {
	size, slide := w.windows.Size.Milliseconds(), w.windows.Slide.Milliseconds()
	ss, ok := w.slices.Lookup()
	if !ok {
		return
	}
	var acc A
	found := false
	keep := ss[:0]
	for _, s := range ss {
		if s.End > end-size && s.End <= end {
			if found {
				acc = w.merge.Merge(acc, s.Acc)
			} else {
				acc, found = s.Acc, true
			}
		}
		if s.End > end-size+slide {
			keep = append(keep, s)
		}
	}
	if found {
		w.em.Emit(w.result(WindowResult[K, R]{Key: w.ctx.key, Window: Window{Start: end - size, End: end}, Value: w.agg.Result(acc)}))
	}
	if len(keep) == 0 {
		w.slices.Clear()
	} else if len(keep) < len(ss) {
		w.slices.Set(keep)
	}
}

// Session is an open session of a key: [Start, End) and its accumulator.
type Session[A any] struct {
	Start, End int64
	Acc        A
}

// pushSessions adds each record as the session [t, t+Gap) and merges it
// with the key's open sessions it overlaps. The merged session's end gets
// a timer; timers of the sessions it absorbed find nothing when they fire.
func (w *windowOp[K, T, A, R, O]) pushSessions(b []engine.Keyed[K, T]) error {
	timers := w.ctx.timers
	wm := w.ctx.watermark
	gap := w.windows.Gap.Milliseconds()
	for i := range b {
		r := &b[i]
		t := w.ts(r.Value)
		if t+gap-1 <= wm {
			w.drop(r.Value) // its session would have closed already
			continue
		}
		w.setKey(r.Key, r.KeyGroup)
		ss, _ := w.sessions.Lookup()
		cur := Session[A]{Start: t, End: t + gap, Acc: w.agg.Add(w.agg.Zero(), r.Value)}
		keep := ss[:0]
		for _, s := range ss {
			if s.Start < cur.End && cur.Start < s.End {
				cur.Start, cur.End = min(cur.Start, s.Start), max(cur.End, s.End)
				cur.Acc = w.merge.Merge(s.Acc, cur.Acc)
				continue
			}
			keep = append(keep, s)
		}
		w.sessions.Set(append(keep, cur))
		timers.Register(cur.End - 1)
		if stop, err := w.recordDone(); stop {
			return err
		}
	}
	return w.em.flush()
}

// fireSession emits and drops the current key's session that ends at end,
// if it still exists.
func (w *windowOp[K, T, A, R, O]) fireSession(end int64) {
	ss, ok := w.sessions.Lookup()
	if !ok {
		return
	}
	for i, s := range ss {
		if s.End == end {
			w.em.Emit(w.result(WindowResult[K, R]{Key: w.ctx.key, Window: Window{Start: s.Start, End: s.End}, Value: w.agg.Result(s.Acc)}))
			ss = slices.Delete(ss, i, i+1)
			if len(ss) == 0 {
				w.sessions.Clear()
			} else {
				w.sessions.Set(ss)
			}
			return
		}
	}
}

// advance takes the watermark to wm and fires the windows' timers: at
// end-1 a window emits its result (and, without allowed lateness, ends); at
// end-1+lateness it ends.
func (w *windowOp[K, T, A, R, O]) advance(wm int64) error {
	if w.sessions != nil {
		return w.keyed.advance(wm, func(t int64) error {
			w.fireSession(t + 1)
			return nil
		})
	}
	if w.merge != nil {
		return w.keyed.advance(wm, func(t int64) error {
			w.fireSliced(t + 1)
			return nil
		})
	}
	size := w.windows.Size.Milliseconds()
	return w.advanceComposite(wm, func(key K, end, t int64) error {
		acc, ok := w.accs.Lookup()
		if !ok {
			return nil
		}
		if t == end-1 {
			w.em.Emit(w.result(WindowResult[K, R]{Key: key, Window: Window{Start: end - size, End: end}, Value: w.agg.Result(acc)}))
		}
		if t == end-1+w.lateness {
			w.accs.Clear()
		}
		return nil
	})
}

func (w *windowOp[K, T, A, R, O]) Control(ev barrier.Event) error {
	if ev.Kind == barrier.Watermark {
		if err := w.advance(ev.Time); err != nil {
			w.em.flush()
			return err
		}
	}
	if err := w.em.flush(); err != nil {
		return err
	}
	return w.em.next.Control(ev)
}

// WindowFunc sees all the records of one key's window, in arrival order,
// when the window fires, and emits any number of results.
type WindowFunc[K, T, R any] func(key K, w Window, records []T, out Emitter[R]) error

// NewWindowProcess keeps each key's records per tumbling or sliding window
// (list state of the composite key (key, window end): an append per
// record) and calls fn with all of them once the watermark passes the
// window's end. Late records are dropped.
func NewWindowProcess[K, T, R any](codec statebackend.Codec[K], windows Windows, timestamp func(T) int64, fn WindowFunc[K, T, R]) engine.OperatorFactory[engine.Keyed[K, T], R] {
	return func(oc *engine.OpContext, next engine.Output[R]) (engine.Output[engine.Keyed[K, T]], error) {
		if err := windows.check(); err != nil {
			return nil, err
		}
		if windows.Gap != 0 || windows.AllowedLateness != 0 {
			return nil, fmt.Errorf("window functions over all records support tumbling and sliding windows without lateness, not %+v", windows)
		}
		w := &windowProcessOp[K, T, R]{windows: windows, ts: timestamp, fn: fn, em: newEmitter(next, DefaultBatch)}
		if err := w.open(oc, codec); err != nil {
			return nil, err
		}
		if err := w.useTimers(); err != nil {
			return nil, err
		}
		tc, err := statebackend.CodecFor[T]()
		if err != nil {
			return nil, fmt.Errorf("window records: %w", err)
		}
		if w.records, err = statebackend.NewList(w.backend, w.ctx.scope.fullName("records"), tc); err != nil {
			return nil, err
		}
		ic, _ := statebackend.CodecFor[int64]()
		if w.count, err = statebackend.NewValue(w.backend, w.ctx.scope.fullName("count"), ic); err != nil {
			return nil, err
		}
		if err := w.compositeKeys("records", "count", "timers"); err != nil {
			return nil, err
		}
		return w, nil
	}
}

type windowProcessOp[K, T, R any] struct {
	keyed[K]
	windows  Windows
	ts       func(T) int64
	fn       WindowFunc[K, T, R]
	records  *statebackend.List[T]
	count    *statebackend.Value[int64] // records of (key, window end); a new window sets its timer
	em       emitter[R]
	assigned []Window
}

func (w *windowProcessOp[K, T, R]) Push(b []engine.Keyed[K, T]) error {
	wm := w.ctx.watermark
	for i := range b {
		r := &b[i]
		w.assigned = w.windows.assign(w.ts(r.Value), w.assigned[:0])
		for _, win := range w.assigned {
			if win.End-1 <= wm {
				continue // late
			}
			w.setComposite(r.Key, r.KeyGroup, win.End)
			n := w.count.Get()
			if n == 0 {
				w.ctx.timers.Register(win.End - 1)
			}
			w.count.Set(n + 1)
			w.records.Add(r.Value)
		}
		if err := w.backend.Err(); err != nil {
			w.em.flush()
			return fmt.Errorf("keyed state: %w", err)
		}
	}
	return w.em.flush()
}

func (w *windowProcessOp[K, T, R]) Control(ev barrier.Event) error {
	if ev.Kind == barrier.Watermark {
		size := w.windows.Size.Milliseconds()
		err := w.advanceComposite(ev.Time, func(key K, end, _ int64) error {
			records := w.records.Get()
			w.records.Clear()
			w.count.Clear()
			if len(records) == 0 {
				return nil
			}
			return w.fn(key, Window{Start: end - size, End: end}, records, &w.em)
		})
		if err != nil {
			w.em.flush()
			return err
		}
	}
	if err := w.em.flush(); err != nil {
		return err
	}
	return w.em.next.Control(ev)
}

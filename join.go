package weir

import (
	"fmt"
	"time"
)

// Side is one record of either input of a two-input keyed operator, with
// its event time.
type Side[L, R any] struct {
	IsLeft bool
	TS     int64
	L      L
	R      R
}

// timed is a buffered record and its event time.
type timed[V any] struct {
	TS int64
	V  V
}

// IntervalJoin joins two keyed streams on their key and on time: a left
// record at time t meets every right record of the same key at a time in
// [t+lower, t+upper], whichever arrives first, and fn makes one output of
// each pair. Each side's records wait in keyed state until the watermark
// shows that no record of the other side can still meet them (a left one
// until t+upper, a right one until t-lower), so the join's state is
// bounded by the interval and the watermark delay. Both streams need
// watermarks (WithWatermarks at their sources).
func IntervalJoin[K, L, R, O any](left KeyedStream[K, L], right KeyedStream[K, R], name string,
	lower, upper time.Duration, leftTime func(L) int64, rightTime func(R) int64, fn func(key K, l L, r R) O, opts ...OperatorOption) Stream[O] {
	lo, hi := lower.Milliseconds(), upper.Milliseconds()
	if lo > hi {
		left.s.job.fail(fmt.Errorf("interval join %q: lower bound %v above upper bound %v", name, lower, upper))
	}
	sides := union2(left, right, name, leftTime, rightTime)
	return KeyedProcess(sides, name,
		func(ctx KeyedContext[K], s Side[L, R], out Emitter[O]) error {
			ls := List[timed[L]](ctx, "left")
			rs := List[timed[R]](ctx, "right")
			if s.IsLeft {
				for r := range rs.All() {
					if r.TS >= s.TS+lo && r.TS <= s.TS+hi {
						out.Emit(fn(ctx.Key(), s.L, r.V))
					}
				}
				ls.Add(timed[L]{s.TS, s.L})
				ctx.Timers().Register(s.TS + hi)
				return nil
			}
			for l := range ls.All() {
				if s.TS >= l.TS+lo && s.TS <= l.TS+hi {
					out.Emit(fn(ctx.Key(), l.V, s.R))
				}
			}
			rs.Add(timed[R]{s.TS, s.R})
			ctx.Timers().Register(s.TS - lo)
			return nil
		},
		func(ctx KeyedContext[K], t int64, _ Emitter[O]) error {
			// At watermark t, a left record at time x can still meet rights
			// after t only if x+upper > t; a right one at y lefts only if
			// y-lower > t.
			ls := List[timed[L]](ctx, "left")
			rs := List[timed[R]](ctx, "right")
			prune(ls, func(l timed[L]) bool { return l.TS+hi > t })
			prune(rs, func(r timed[R]) bool { return r.TS-lo > t })
			return nil
		}, opts...)
}

// prune keeps the elements of a list state that keep() accepts.
func prune[V any](l *ListState[V], keep func(V) bool) {
	var kept []V
	dropped := false
	for v := range l.All() {
		if keep(v) {
			kept = append(kept, v)
		} else {
			dropped = true
		}
	}
	if !dropped {
		return
	}
	if len(kept) == 0 {
		l.Clear()
		return
	}
	l.Update(kept)
}

// union2 tags both sides' records with their side and time and keys them
// by their streams' keys.
func union2[K, L, R any](left KeyedStream[K, L], right KeyedStream[K, R], name string, leftTime func(L) int64, rightTime func(R) int64) KeyedStream[K, Side[L, R]] {
	lk, rk := left.key, right.key
	ls := Map(left.s, name+"-left", func(l L) Side[L, R] { return Side[L, R]{IsLeft: true, TS: leftTime(l), L: l} })
	rs := Map(right.s, name+"-right", func(r R) Side[L, R] { return Side[L, R]{TS: rightTime(r), R: r} })
	return KeyBy(Union(name+"-sides", ls, rs), func(s Side[L, R]) K {
		if s.IsLeft {
			return lk(s.L)
		}
		return rk(s.R)
	})
}

// WindowJoin joins two keyed streams on key within event-time windows:
// when a window of a key fires, fn makes one output of each pair of a left
// and a right record of that key in the window. Both sides' records wait
// in list state until then (WindowProcess over both inputs). Both streams
// need watermarks.
func WindowJoin[K, L, R, O any](left KeyedStream[K, L], right KeyedStream[K, R], name string, windows Windows,
	leftTime func(L) int64, rightTime func(R) int64, fn func(key K, w Window, l L, r R) O, opts ...OperatorOption) Stream[O] {
	sides := union2(left, right, name, leftTime, rightTime)
	return WindowProcess(sides, name, windows, func(s Side[L, R]) int64 { return s.TS },
		func(key K, w Window, records []Side[L, R], out Emitter[O]) error {
			var ls []L
			var rs []R
			for _, s := range records {
				if s.IsLeft {
					ls = append(ls, s.L)
				} else {
					rs = append(rs, s.R)
				}
			}
			for _, l := range ls {
				for _, r := range rs {
					out.Emit(fn(key, w, l, r))
				}
			}
			return nil
		}, opts...)
}

package weir

import (
	"context"
	"fmt"
	"time"

	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/statebackend"
)

// Stream is a typed stream of records: the output of a source or an
// operator. Its zero value is not usable.
type Stream[T any] struct {
	job  *Job
	node *engine.Node
	part engine.Partitioning
}

// KeyedStream is a stream partitioned by a key: every record with the same
// key reaches the same subtask of the next operator, which keeps keyed state
// for it.
type KeyedStream[K, T any] struct {
	s     Stream[T]
	key   func(T) K
	codec statebackend.Codec[K]
}

// Emitter receives the records a function emits.
type Emitter[T any] = operators.Emitter[T]

// KeyedContext is what a keyed process function sees besides the record:
// the current key and, through Value, MapOf, List and Reducing, its keyed
// state.
type KeyedContext[K any] = operators.KeyedContext[K]

// ProcessFunc is a keyed process function, called for every record with
// the record's key set in ctx. An error fails the job.
type ProcessFunc[K, In, Out any] = operators.ProcessFunc[K, In, Out]

// Aggregator folds records into an accumulator (kept in keyed state) and
// derives a result from it.
type Aggregator[T, A, R any] = operators.Aggregator[T, A, R]

// OperatorOption configures one operator.
type OperatorOption func(*engine.Node)

// Parallelism sets the number of parallel subtasks of the operator.
func Parallelism(n int) OperatorOption {
	return func(nd *engine.Node) { nd.Parallelism = n }
}

// UID sets the operator's stable id, which names its state in checkpoints
// so that state can be matched to operators across versions of a job. The
// default is the operator's name.
func UID(uid string) OperatorOption {
	return func(nd *engine.Node) { nd.UID = uid }
}

func configure(j *Job, n *engine.Node, opts []OperatorOption) {
	for _, o := range opts {
		o(n)
	}
	switch {
	case n.Name == "":
		j.fail(fmt.Errorf("operator %d: empty name", n.ID))
	case n.UID == "":
		j.fail(fmt.Errorf("operator %q: empty UID", n.Name))
	case n.Parallelism < 0:
		j.fail(fmt.Errorf("operator %q: parallelism %d must be positive", n.Name, n.Parallelism))
	}
}

func info(oc *engine.OpContext) SubtaskInfo {
	return SubtaskInfo{
		Job:            oc.Job,
		Operator:       oc.Operator,
		UID:            oc.UID,
		Index:          oc.Index,
		Parallelism:    oc.Parallelism,
		MaxParallelism: oc.MaxParallelism,
		Logger:         oc.Logger,

		CheckpointInterval: oc.CheckpointInterval(),
		MaxRestartDelay:    oc.MaxRestartDelay(),
		RestoredCheckpoint: oc.RestoredCheckpoint(),
	}
}

// From adds a source to the job.
func From[T any](job *Job, name string, src Source[T], opts ...OperatorOption) Stream[T] {
	n := engine.AddSource(&job.g, name, func(ctx context.Context, oc *engine.OpContext) (engine.Reader[T], error) {
		if positions, ok := oc.RestoredPositions(); ok {
			rs, ok := src.(RescalableSource[T])
			if !ok {
				return nil, fmt.Errorf("the checkpoint ran this source at parallelism %d, but %T cannot be rescaled (it does not implement weir.RescalableSource)", len(positions), src)
			}
			var r SourceReader[T]
			err := oc.TraceRecovery(engine.SpanSeekSource, func() (err error) {
				r, err = rs.RestoreRescaled(ctx, info(oc), positions)
				return err
			})
			return r, err
		}
		if pos := oc.RestoredPosition(); pos != nil {
			rs, ok := src.(RestorableSource[T])
			if !ok {
				return nil, fmt.Errorf("the checkpoint holds a position for this source, but %T cannot restore one (it does not implement weir.RestorableSource)", src)
			}
			var r SourceReader[T]
			err := oc.TraceRecovery(engine.SpanSeekSource, func() (err error) {
				r, err = rs.Restore(ctx, info(oc), pos)
				return err
			})
			return r, err
		}
		return src.Open(ctx, info(oc))
	})
	if why := noRescale[T](src); why != "" {
		n.NoRescale = why
	}
	configure(job, n, opts)
	return Stream[T]{job: job, node: n}
}

// noRescale says why src cannot be restored at another parallelism, or "".
func noRescale[T any](src Source[T]) string {
	if c, ok := src.(interface{ CannotRescale() string }); ok {
		return c.CannotRescale()
	}
	if _, ok := src.(RescalableSource[T]); !ok {
		return fmt.Sprintf("%T cannot be rescaled (it does not implement weir.RescalableSource)", src)
	}
	return ""
}

// To writes the stream to a sink.
func To[T any](s Stream[T], name string, sink Sink[T], opts ...OperatorOption) {
	open := func(oc *engine.OpContext) (operators.Writer[T], error) {
		if rs, ok := sink.(RecoveringSink); ok && oc.Checkpointing() {
			// Also on a fresh start: it removes what attempts that never
			// completed a checkpoint left behind.
			redo := func() error {
				for _, r := range oc.RestoredCommits() {
					in := info(oc)
					in.Index, in.Parallelism = r.Index, r.Parallelism
					if r.Index != oc.Index {
						in.Logger = oc.Logger.With("recovering_subtask", r.Index, "of", r.Parallelism)
					}
					if err := rs.Recover(oc.Context(), in, r.Pending); err != nil {
						return err
					}
				}
				return nil
			}
			if err := oc.TraceRecovery(engine.SpanRedoCommits, redo); err != nil {
				return nil, fmt.Errorf("recover: %w", err)
			}
		}
		w, err := sink.Open(oc.Context(), info(oc))
		if err != nil {
			return nil, err
		}
		if cw, ok := w.(CommittingWriter); ok {
			pre := func(n uint64) ([]byte, func() error, error) {
				p, err := cw.PreCommit(n)
				return p, nil, err
			}
			if a, ok := w.(AsyncPreCommitter); ok {
				pre = a.PreCommitAsync
			}
			oc.OnCheckpoint(pre, cw.Commit)
		}
		return w, nil
	}
	addOp(s, name, operators.NewSink(open), opts)
}

func addOp[In, Out any](s Stream[In], name string, f engine.OperatorFactory[In, Out], opts []OperatorOption) Stream[Out] {
	n := engine.AddOperator(&s.job.g, name, f)
	engine.Connect(s.node, n, s.part)
	configure(s.job, n, opts)
	return Stream[Out]{job: s.job, node: n}
}

// Map applies fn to every record.
func Map[In, Out any](s Stream[In], name string, fn func(In) Out, opts ...OperatorOption) Stream[Out] {
	return addOp(s, name, operators.NewMap(fn), opts)
}

// Filter keeps the records for which fn returns true.
func Filter[T any](s Stream[T], name string, fn func(T) bool, opts ...OperatorOption) Stream[T] {
	return addOp(s, name, operators.NewFilter(fn), opts)
}

// FlatMap calls fn for every record; fn emits zero or more records.
func FlatMap[In, Out any](s Stream[In], name string, fn func(In, Emitter[Out]), opts ...OperatorOption) Stream[Out] {
	return addOp(s, name, operators.NewFlatMap(fn), opts)
}

// Rebalance spreads the stream's records evenly over the subtasks of the
// next operator, instead of keeping them in the subtask that produced them.
func Rebalance[T any](s Stream[T]) Stream[T] {
	s.part = engine.Rebalance
	return s
}

// Union merges streams of the same type into one. The streams may come
// from different sources and have different parallelism. Union of no
// streams panics: there is no job to report the error to.
func Union[T any](name string, streams ...Stream[T]) Stream[T] {
	if len(streams) == 0 {
		panic("weir: Union " + name + " of no streams")
	}
	j := streams[0].job
	n := engine.AddOperator(&j.g, name, operators.NewMap(func(v T) T { return v }))
	for _, s := range streams {
		if s.job != j {
			j.fail(fmt.Errorf("union %q: streams of different jobs", name))
			continue
		}
		// A node with several inputs is never chained; a forward input
		// keeps subtask i to subtask i where parallelism agrees.
		engine.Connect(s.node, n, s.part)
	}
	configure(j, n, nil)
	return Stream[T]{job: j, node: n}
}

// KeyBy partitions the stream by key. K must be a type that keyed state can
// encode: a string, an integer, a float, a bool, a byte slice or a struct of
// those.
func KeyBy[K, T any](s Stream[T], key func(T) K) KeyedStream[K, T] {
	c, err := statebackend.CodecFor[K]()
	if err != nil {
		s.job.fail(fmt.Errorf("keyBy after %q: key type: %w", s.node.Name, err))
	}
	return KeyedStream[K, T]{s: s, key: key, codec: c}
}

func addKeyed[K, T, Out any](k KeyedStream[K, T], name string, f engine.OperatorFactory[engine.Keyed[K, T], Out], opts []OperatorOption) Stream[Out] {
	j := k.s.job
	n := engine.AddOperator(&j.g, name, f)
	engine.ConnectKeyed(k.s.node, n, k.key, k.codec)
	configure(j, n, opts)
	return Stream[Out]{job: j, node: n}
}

// Process runs a keyed process function: fn sees every record with its key
// and the key's state, and emits any number of records.
func Process[K, In, Out any](k KeyedStream[K, In], name string, fn ProcessFunc[K, In, Out], opts ...OperatorOption) Stream[Out] {
	return addKeyed(k, name, operators.NewProcess(k.codec, fn), opts)
}

// Reduce keeps, per key, the reduction of the key's records (the first
// record is the initial value) and emits it after every record.
func Reduce[K, T any](k KeyedStream[K, T], name string, fn func(acc, v T) T, opts ...OperatorOption) Stream[T] {
	return addKeyed(k, name, operators.NewReduce(k.codec, fn), opts)
}

// Aggregate keeps, per key, an accumulator of the key's records and emits
// its result after every record.
func Aggregate[K, T, A, R any](k KeyedStream[K, T], name string, agg Aggregator[T, A, R], opts ...OperatorOption) Stream[R] {
	return addKeyed(k, name, operators.NewAggregate(k.codec, agg), opts)
}

// TimerFunc is called when an event-time timer of the current key fires.
type TimerFunc[K, Out any] = operators.TimerFunc[K, Out]

// TimerService sets event-time timers for the current key
// (KeyedContext.Timers).
type TimerService = operators.TimerService

// KeyedProcess is Process with event-time timers: fn may set timers for
// the current key with ctx.Timers(), and onTimer runs, with that key set,
// when the watermark reaches one. Timers are keyed state: checkpointed,
// restored and fired exactly once across recovery.
func KeyedProcess[K, In, Out any](k KeyedStream[K, In], name string, fn ProcessFunc[K, In, Out], onTimer TimerFunc[K, Out], opts ...OperatorOption) Stream[Out] {
	return addKeyed(k, name, operators.NewKeyedProcess(k.codec, fn, onTimer), opts)
}

// Window is an event-time interval [Start, End) in milliseconds.
type Window = operators.Window

// Windows assigns event times to tumbling or sliding windows.
type Windows = operators.Windows

// WindowResult is a window's key, interval and result.
type WindowResult[K, R any] = operators.WindowResult[K, R]

// Tumbling returns windows of size that do not overlap.
func Tumbling(size time.Duration) Windows { return operators.Tumbling(size) }

// Sliding returns windows of size that start every slide.
func Sliding(size, slide time.Duration) Windows { return operators.Sliding(size, slide) }

// Sessions returns session windows: a key's records less than gap apart
// share a window, which closes gap after its last record. The aggregator
// must implement Merger.
func Sessions(gap time.Duration) Windows { return operators.Sessions(gap) }

// WindowAggregate folds each key's records into the event-time windows
// that contain their timestamp and emits each window's result once the
// watermark passes its end. Records whose windows have all expired (see
// Windows.Lateness) are dropped. Window state is keyed state: it survives
// recovery.
func WindowAggregate[K, T, A, R any](k KeyedStream[K, T], name string, windows Windows, timestamp func(T) int64, agg Aggregator[T, A, R], opts ...OperatorOption) Stream[WindowResult[K, R]] {
	return addKeyed(k, name, operators.NewWindowAggregate(k.codec, windows, timestamp, agg), opts)
}

// Merger is implemented by aggregators whose accumulators merge; sliding
// windows of such an aggregator update one slice per record (see
// WindowAggregate).
type Merger[A any] = operators.Merger[A]

// WindowFunc sees all the records of one key's window when it fires.
type WindowFunc[K, T, R any] = operators.WindowFunc[K, T, R]

// WindowProcess keeps each key's records per tumbling or sliding window and
// calls fn with all of them, in arrival order, once the watermark passes
// the window's end. Prefer WindowAggregate when an accumulator will do: it
// keeps one value per window instead of every record.
func WindowProcess[K, T, R any](k KeyedStream[K, T], name string, windows Windows, timestamp func(T) int64, fn WindowFunc[K, T, R], opts ...OperatorOption) Stream[R] {
	return addKeyed(k, name, operators.NewWindowProcess(k.codec, windows, timestamp, fn), opts)
}

// TimeDomain says which clock a timer follows (TimerService.Domain).
type TimeDomain = operators.TimeDomain

// Time domains of timers.
const (
	EventTime      = operators.EventTime
	ProcessingTime = operators.ProcessingTime
)

// WindowAggregateWithLate is WindowAggregate that also returns the records
// it drops as late (those whose windows had all expired): the side output
// of a window. Both streams come from one operator; the split is two
// chained FlatMaps.
func WindowAggregateWithLate[K, T, A, R any](k KeyedStream[K, T], name string, windows Windows, timestamp func(T) int64, agg Aggregator[T, A, R], opts ...OperatorOption) (results Stream[WindowResult[K, R]], late Stream[T]) {
	both := addKeyed(k, name, operators.NewWindowAggregateLate(k.codec, windows, timestamp, agg), opts)
	results = FlatMap(both, name+"-results", func(o operators.WindowOrLate[K, T, R], out Emitter[WindowResult[K, R]]) {
		if !o.Late {
			out.Emit(o.Result)
		}
	})
	late = FlatMap(both, name+"-late", func(o operators.WindowOrLate[K, T, R], out Emitter[T]) {
		if o.Late {
			out.Emit(o.Record)
		}
	})
	return results, late
}

// reduced is the accumulator of WindowReduce: the reduction so far, if any.
type reduced[T any] struct {
	Set bool
	V   T
}

type reducer[T any] func(a, b T) T

func (f reducer[T]) Zero() reduced[T] { return reduced[T]{} }
func (f reducer[T]) Add(acc reduced[T], v T) reduced[T] {
	if !acc.Set {
		return reduced[T]{true, v}
	}
	return reduced[T]{true, f(acc.V, v)}
}
func (f reducer[T]) Result(acc reduced[T]) T { return acc.V }
func (f reducer[T]) Merge(a, b reduced[T]) reduced[T] {
	if !a.Set {
		return b
	}
	if !b.Set {
		return a
	}
	return reduced[T]{true, f(a.V, b.V)}
}

// WindowReduce reduces each key's records per window with fn (which must
// be associative: sliding and session windows combine partial reductions)
// and emits the reduction when the window fires.
func WindowReduce[K, T any](k KeyedStream[K, T], name string, windows Windows, timestamp func(T) int64, fn func(a, b T) T, opts ...OperatorOption) Stream[WindowResult[K, T]] {
	return WindowAggregate(k, name, windows, timestamp, Aggregator[T, reduced[T], T](reducer[T](fn)), opts...)
}

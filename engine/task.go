package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weirstream/weir/barrier"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/statebackend"
	"github.com/weirstream/weir/storage"
)

// OpContext describes one subtask of one operator and gives it access to the
// task's resources. It is valid while the task runs.
type OpContext struct {
	Job            string
	Operator       string
	UID            string
	Index          int
	Parallelism    int
	MaxParallelism int
	Logger         *slog.Logger

	ctx     context.Context
	stats   *opStats // records in and out
	task    *task
	backend *statebackend.Backend
	// keySchema is the schema of the operator's key codec (SetKeySchema).
	keySchema string

	// Checkpoints (nil and zero without them).
	ckpt      *checkpointer
	restore   *storage.SubtaskState  // this subtask's state in the restored checkpoint
	rescaled  []storage.SubtaskState // all subtasks' states, checkpointed at another parallelism
	preCommit func(uint64) ([]byte, func() error, error)
	uploader  *uploader
}

// CheckpointInterval is the time between periodic checkpoints (0 without
// checkpoints or without periodic ones).
func (oc *OpContext) CheckpointInterval() time.Duration {
	if oc.ckpt == nil {
		return 0
	}
	return oc.ckpt.cfg.Policy.Interval
}

// MaxRestartDelay is the longest the job waits before it restarts after a
// failure.
func (oc *OpContext) MaxRestartDelay() time.Duration {
	if oc.ckpt == nil {
		return 0
	}
	return oc.ckpt.cfg.MaxRestartDelay
}

// TraceRecovery runs fn, a step of this subtask's recovery (a sink redoing
// its pending commits, a source seeking its position), as a span named
// name of the run's recovery trace. Without checkpoints it just runs fn.
func (oc *OpContext) TraceRecovery(name string, fn func() error) error {
	if oc.ckpt == nil || oc.ckpt.recovery == nil {
		return fn()
	}
	_, span := oc.ckpt.tracer.Start(oc.ckpt.recovery, name, trace.WithAttributes(opAttrs(oc)...))
	err := fn()
	endSpan(span, err)
	return err
}

// Checkpointing reports whether the job takes checkpoints.
func (oc *OpContext) Checkpointing() bool { return oc.ckpt != nil }

// RestoredPosition returns the source position that this source subtask
// stored in the checkpoint the job restored, or nil.
func (oc *OpContext) RestoredPosition() []byte {
	if oc.restore == nil || len(oc.restore.SourcePosition) == 0 {
		return nil
	}
	return oc.restore.SourcePosition
}

// RestoredPending returns what this sink subtask pre-committed in the
// checkpoint the job restored, or nil.
func (oc *OpContext) RestoredPending() []byte {
	if oc.restore == nil || len(oc.restore.PendingCommit) == 0 {
		return nil
	}
	return oc.restore.PendingCommit
}

// OnCheckpoint makes the operator part of every checkpoint: preCommit runs
// as barrier n passes the operator and returns what the checkpoint stores
// for it (RestoredPending returns it after a restore) and, optionally,
// durable, which runs on another goroutine before the operator acks
// checkpoint n (its error fails the job); commit runs on the operator's
// goroutine once checkpoint n (or a later one) is complete. All see
// checkpoint ids in increasing order. Without checkpoints it does nothing.
func (oc *OpContext) OnCheckpoint(preCommit func(checkpoint uint64) (pending []byte, durable func() error, err error), commit func(checkpoint uint64) error) {
	if oc.ckpt == nil {
		return
	}
	oc.preCommit = func(id uint64) (b []byte, durable func() error, err error) {
		err = oc.call(func() error {
			b, durable, err = preCommit(id)
			return err
		})
		if durable != nil {
			d := durable
			durable = func() error { return oc.call(d) }
		}
		return b, durable, err
	}
	oc.task.ck.committers = append(oc.task.ck.committers, committer{oc: oc, span: spanSinkCommit, commit: func(id uint64) error {
		return oc.call(func() error { return commit(id) })
	}})
}

// Context is cancelled when the job stops or fails.
func (oc *OpContext) Context() context.Context { return oc.ctx }

// OnClose registers fn to run when the job ends, in reverse order of
// registration, whether the job succeeded or not. Its error or panic is
// attributed to the operator.
func (oc *OpContext) OnClose(fn func() error) {
	oc.task.closers = append(oc.task.closers, func() error { return oc.call(fn) })
}

// ProcessingTimer is an operator with processing-time timers. The task
// asks for the earliest one whenever it would wait for input, and fires
// the due ones on its own goroutine, between two batches, so timers see
// the same state as records and checkpoints do.
type ProcessingTimer interface {
	// NextProcessingTime returns when the earliest timer is due, in
	// milliseconds since the epoch (ok false: none is set).
	NextProcessingTime() (t int64, ok bool)
	// FireProcessingTime fires every timer at or before now.
	FireProcessingTime(now int64) error
}

// OnProcessingTime registers the operator's processing-time timers with
// its task.
func (oc *OpContext) OnProcessingTime(p ProcessingTimer) {
	oc.task.procTimers = append(oc.task.procTimers, guardedTimer{oc, p})
}

// guardedTimer turns a panic while firing into the operator's error.
type guardedTimer struct {
	oc *OpContext
	p  ProcessingTimer
}

func (g guardedTimer) NextProcessingTime() (int64, bool) { return g.p.NextProcessingTime() }

func (g guardedTimer) FireProcessingTime(now int64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = g.oc.recovered(r)
		}
	}()
	return g.oc.wrap(g.p.FireProcessingTime(now))
}

// OnFinish registers fn to run once every task of the job has consumed all
// its input, before any OnClose function; it does not run when the job
// fails or is cancelled. Sinks commit their output here, so a failure
// anywhere in the job leaves nothing committed.
func (oc *OpContext) OnFinish(fn func() error) {
	oc.task.finishers = append(oc.task.finishers, func() error { return oc.call(fn) })
}

// call runs fn, attributing its error or panic to the operator.
func (oc *OpContext) call(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = oc.recovered(r)
		}
	}()
	return oc.wrap(fn())
}

// KeyGroups is the range of key groups this subtask owns.
func (oc *OpContext) KeyGroups() statebackend.KeyGroupRange {
	return statebackend.RangeForSubtask(oc.MaxParallelism, oc.Parallelism, oc.Index)
}

// SetKeySchema records the schema of the operator's key codec
// (statebackend.SchemaOf) in the snapshots of its keyed state, so that
// weir state export can decode keys. Keyed operators call it before
// StateBackend.
func (oc *OpContext) SetKeySchema(schema string) { oc.keySchema = schema }

// StateBackend opens (once) the keyed state backend of this operator
// subtask: a Pebble instance in STATE_DIR/operators/ESCAPED_UID/INDEX.
func (oc *OpContext) StateBackend() (*statebackend.Backend, error) {
	if oc.backend != nil {
		return oc.backend, nil
	}
	dir := filepath.Join(oc.task.stateDir, "operators", safeName(oc.UID), strconv.Itoa(oc.Index))
	// The directory of an earlier run holds writes made after its last
	// checkpoint: a run starts from empty state or from a checkpoint.
	if err := oc.task.trash.discard(dir); err != nil {
		return nil, fmt.Errorf("clear state directory: %w", err)
	}
	opts := statebackend.Options{
		MaxParallelism: oc.MaxParallelism,
		KeyGroups:      oc.KeyGroups(),
		Changelog:      oc.Checkpointing(),
		KeySchema:      oc.keySchema,
		ValueCacheSize: oc.task.cacheSize,
	}
	var (
		b   *statebackend.Backend
		err error
	)
	if oc.restore != nil && len(oc.restore.Files) > 0 || oc.rescaled != nil {
		b, err = oc.ckpt.restoreKeyed(oc.ctx, oc, dir, opts)
	} else {
		b, err = statebackend.Open(dir, opts)
	}
	if err != nil {
		return nil, err
	}
	oc.backend = b
	oc.OnClose(b.Close)
	return b, nil
}

// safeName turns a UID into one path element, injectively: letters,
// digits, '-', '_' and a '.' that is not first stay; every other byte
// becomes %XX.
func safeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() == 0 {
		return "%"
	}
	return b.String()
}

// task is one subtask of a chain: one goroutine.
type task struct {
	name      string // head operator and subtask, for logs
	stateDir  string
	cacheSize int64 // Config.StateCacheBytes
	trash     *trash
	opened    func() // called once its operators are open (or it failed)
	stop      <-chan struct{}
	linger    time.Duration
	batch     int
	// ck is the task's part in checkpoints; nil without them.
	ck *taskCkpt
	// inject delivers the ids of checkpoints whose barrier a source task
	// injects; nil for tasks that are not sources or jobs without
	// checkpoints.
	inject <-chan injection

	metrics *runMetrics
	stats   *taskStats

	flushers   []flushOutput
	finishers  []func() error
	closers    []func() error
	procTimers []ProcessingTimer
	lastFlush  time.Time
}

// idleSince counts the time since start as idle (waiting for input).
func (t *task) idleSince(start time.Time) {
	if t.stats != nil {
		t.stats.idle.Add(int64(time.Since(start)))
	}
}

// nextTimer returns when the task's earliest processing-time timer is due.
func (t *task) nextTimer() (time.Time, bool) {
	var next int64
	found := false
	for _, p := range t.procTimers {
		if at, ok := p.NextProcessingTime(); ok && (!found || at < next) {
			next, found = at, true
		}
	}
	return time.UnixMilli(next), found
}

// fireTimers fires the processing-time timers due now.
func (t *task) fireTimers() error {
	now := time.Now().UnixMilli()
	for _, p := range t.procTimers {
		if err := p.FireProcessingTime(now); err != nil {
			return err
		}
	}
	return nil
}

// flush sends every partial output batch of the task.
func (t *task) flush() error {
	t.lastFlush = time.Now()
	for _, f := range t.flushers {
		if err := f.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// lingered flushes when the last flush is older than the linger time, so a
// busy task does not hold a sparse output batch for long.
func (t *task) lingered() error {
	if len(t.flushers) == 0 || time.Since(t.lastFlush) < t.linger {
		return nil
	}
	return t.flush()
}

func (t *task) finish() error {
	for _, f := range t.finishers {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

func (t *task) close() error {
	var errs []error
	for i := len(t.closers) - 1; i >= 0; i-- {
		if err := t.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func runSource[T any](ctx context.Context, t *task, oc *OpContext, f SourceFactory[T], out Output[T]) error {
	r, err := f(ctx, oc)
	if err != nil {
		return oc.wrap(fmt.Errorf("open: %w", err))
	}
	if _, ok := r.(positioned); !ok && t.ck != nil {
		// Restored without a position it would read its input again:
		// duplicates, not exactly once.
		r.Close()
		return oc.wrap(fmt.Errorf("the source cannot be checkpointed: its reader (%T) has no position (weir.CheckpointedReader); run the job without --checkpoint-dir", r))
	}
	oc.OnClose(func() error {
		if err := r.Close(); err != nil {
			return fmt.Errorf("close: %w", err)
		}
		return nil
	})
	if lr, ok := r.(LagReporter); ok && t.metrics != nil {
		t.metrics.sourceLag(oc, lr)
	}
	if l, ok := r.(CheckpointListener); ok && t.ck != nil {
		t.ck.committers = append(t.ck.committers, committer{oc: oc, span: spanSourceCommit, commit: func(id uint64) error {
			return oc.call(func() error { return l.CheckpointComplete(id) })
		}})
	}
	buf := make([]T, 0, t.batch)
	wm, _ := r.(Watermarker)
	var wake <-chan struct{}
	if t.ck != nil {
		wake = t.ck.wake
	}
	for {
		select {
		case <-t.stop:
			return endSource(ctx, t, oc, r, out, false)
		case inj := <-t.inject:
			if err := injectBarrier(oc, t, r, out, inj); err != nil {
				return err
			}
			continue
		case <-wake:
			if err := t.ck.service(); err != nil {
				return err
			}
		default:
		}
		read := time.Now()
		b, err := r.Read(ctx, buf[:0])
		if len(b) == 0 {
			t.idleSince(read) // a Read that found nothing waited for input
		}
		if len(b) > 0 {
			if perr := out.Push(b); perr != nil {
				return perr
			}
			clear(b)
		}
		if wm != nil {
			if t, ok := wm.Watermark(); ok {
				if err := out.Control(barrier.NewWatermark(t)); err != nil {
					return err
				}
			}
			if idle, changed := wm.Idle(len(b) > 0); changed {
				if err := out.Control(barrier.NewStatus(idle)); err != nil {
					return err
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return oc.wrap(err)
		}
		if len(b) == 0 {
			if err := t.flush(); err != nil {
				return err
			}
		} else if err := t.lingered(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
	}
	return endSource(ctx, t, oc, r, out, true)
}

// endSource ends a source subtask whose input is exhausted (or that was
// stopped). With checkpoints, it stays alive and keeps injecting barriers
// until the job's final checkpoint is complete, so that checkpoint holds
// its end position and the sinks commit everything; only then does
// end-of-input flow downstream.
func endSource[T any](ctx context.Context, t *task, oc *OpContext, r Reader[T], out Output[T], exhausted bool) error {
	// Event time ends with the input: windows and timers fire now, before
	// the final checkpoint, so that its commit includes what they emit. A
	// stopped source is not at its end: a later run resumes it, and its
	// windows must not have fired.
	if exhausted {
		if err := out.Control(barrier.NewWatermark(math.MaxInt64)); err != nil {
			return err
		}
	}
	if t.ck == nil {
		return out.Control(barrier.End)
	}
	if err := t.flush(); err != nil {
		return err
	}
	c := t.ck.c
	c.send(ckptEvent{kind: evFinished, task: checkpoint.TaskID{Vertex: oc.UID, Subtask: oc.Index}})
	for {
		select {
		case inj := <-t.inject:
			if err := injectBarrier(oc, t, r, out, inj); err != nil {
				return err
			}
		case <-t.ck.wake:
			if err := t.ck.service(); err != nil {
				return err
			}
		case <-c.finalDone:
			return out.Control(barrier.End)
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// positioned is weir.CheckpointedReader.
type positioned interface {
	Position() ([]byte, error)
}

// CheckpointListener is a Reader that hears about its checkpoints:
// CheckpointTaken(id) right after its position for checkpoint id was
// taken, in the same step, and CheckpointComplete(id) on the source's
// goroutine once checkpoint id (or a later one) is complete. A Kafka
// source uses it to commit the offsets of completed checkpoints to its
// consumer group, for lag tools.
type CheckpointListener interface {
	CheckpointTaken(id uint64)
	CheckpointComplete(id uint64) error
}

// LagReporter is implemented by readers of partitioned logs (Kafka): the
// engine reports their lag as the metric weir.source.lag.
type LagReporter interface {
	// Lag returns the lag of each partition the reader reads. It is
	// called on another goroutine than Read.
	Lag() []PartitionLag
}

// PartitionLag is how far a source is behind in one partition.
type PartitionLag struct {
	Topic     string
	Partition int32
	Lag       int64 // records (offsets) available that the source has not returned yet
}

// Watermarker is implemented by readers that track event time. After
// every Read, the source task asks for the watermark and sends it
// downstream when it advanced (ok), then tells the reader whether the Read
// returned records and sends its idleness downstream when it changed.
type Watermarker interface {
	Watermark() (t int64, ok bool)
	Idle(read bool) (idle, changed bool)
}

// injectBarrier acks checkpoint id with the source's position and sends
// barrier id downstream. The reader's position is taken in the same step,
// between two batches, so it covers exactly the records before the
// barrier. A position that fails declines id; a cancel marker then flows
// instead, so that downstream alignment ends.
func injectBarrier[T any](oc *OpContext, t *task, r Reader[T], out Output[T], inj injection) error {
	id := inj.id
	task := checkpoint.TaskID{Vertex: oc.UID, Subtask: oc.Index}
	t.ck.traceOf(id, inj.trace)
	_, span := t.ck.c.tracer.Start(fromBarrier(inj.trace), spanSnapshot, trace.WithAttributes(append(opAttrs(oc), attrCheckpoint.Int64(int64(id)))...))
	pos, err := r.(positioned).Position() // checked when the source opened
	if err != nil {
		err = oc.wrap(fmt.Errorf("position at checkpoint %d: %w", id, err))
		endSpan(span, err)
		t.ck.c.decline(task, id, err)
		return out.Control(barrier.NewCancel(id))
	}
	if l, ok := r.(CheckpointListener); ok {
		l.CheckpointTaken(id)
	}
	endSpan(span, nil, attribute.Int("weir.position_bytes", len(pos)))
	t.ck.c.ack(task, id, stateHandle{Position: pos})
	ev := barrier.NewBarrier(id)
	ev.Trace = inj.trace
	return out.Control(ev)
}

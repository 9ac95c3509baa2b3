package weir

import (
	"context"
	"log/slog"
	"time"

	"github.com/weirstream/weir/engine"
)

// SubtaskInfo describes one parallel instance (subtask) of an operator. It
// is handed to sources and sinks when they open.
type SubtaskInfo struct {
	Job            string       // job name
	Operator       string       // operator name
	UID            string       // stable operator id (defaults to the name)
	Index          int          // 0 <= Index < Parallelism
	Parallelism    int          // number of subtasks of this operator
	MaxParallelism int          // number of key groups of the job
	Logger         *slog.Logger // tagged with job, operator and subtask
	// CheckpointInterval is the time between periodic checkpoints and
	// MaxRestartDelay the longest wait before a restart after a failure
	// (both 0 without checkpoints): a sink whose open transactions time
	// out checks that they outlive a checkpoint interval and a restart.
	CheckpointInterval time.Duration
	MaxRestartDelay    time.Duration
	// RestoredCheckpoint is the id of the checkpoint the job restored (0 on
	// a fresh start).
	RestoredCheckpoint uint64
}

// Source produces records of type T. Open is called once for every parallel
// subtask; the readers of one source split the input between them, usually by
// info.Index and info.Parallelism.
type Source[T any] interface {
	Open(ctx context.Context, info SubtaskInfo) (SourceReader[T], error)
}

// SourceReader is the per-subtask half of a Source. It is used by one
// goroutine only.
type SourceReader[T any] interface {
	// Read appends the next records to buf, which has length 0 and the
	// batch size as capacity, and returns it. A bounded reader returns
	// io.EOF once its input is exhausted, with or without a last batch of
	// records. Read must return promptly when ctx is cancelled, and should
	// not block for long when no input is available: returning an empty
	// batch lets the runtime flush output and inject control events.
	Read(ctx context.Context, buf []T) ([]T, error)
	// Close releases the reader's resources. It is called exactly once.
	Close() error
}

// Sink consumes records of type T. Open is called once for every parallel
// subtask.
type Sink[T any] interface {
	Open(ctx context.Context, info SubtaskInfo) (SinkWriter[T], error)
}

// SinkWriter is the per-subtask half of a Sink, used by one goroutine only.
type SinkWriter[T any] interface {
	// Write consumes a batch. The writer must not retain batch after it
	// returns: the runtime reuses it.
	Write(batch []T) error
	// Finish is called once when all input has been consumed, before
	// Close: the writer makes its output durable and visible (for example it
	// renames in-progress files to their committed names). It is not called
	// when the job fails or is cancelled. With checkpoints, a
	// CommittingWriter has committed everything through Commit of the job's
	// final checkpoint by then, so its Finish has nothing left to do.
	Finish() error
	// Close releases the writer's resources. It is called exactly once,
	// after Finish on a clean end, or alone when the job fails or is
	// cancelled, in which case uncommitted output must stay invisible.
	Close() error
}

// CheckpointedReader is a SourceReader whose read position can be stored in
// a checkpoint. The runtime calls Position between two Read calls, in the
// same step as it injects a checkpoint barrier, so the position covers
// exactly the records returned before the barrier.
type CheckpointedReader interface {
	Position() ([]byte, error)
}

// Permanent marks an error that restarting the job cannot cure (a missing
// topic, a refused password, a rejected configuration): the job fails at
// once instead of restarting in-process. Sources and sinks return it from
// Open, Restore and Recover.
func Permanent(err error) error { return engine.Permanent(err) }

// CheckpointListener is a SourceReader that hears about its checkpoints:
// CheckpointTaken(id) right after Position for checkpoint id, and
// CheckpointComplete(id) on the reader's goroutine once checkpoint id (or a
// later one) is complete, for side effects that must wait for a checkpoint,
// such as committing offsets to a Kafka consumer group.
type CheckpointListener = engine.CheckpointListener

// LagReporter is a SourceReader of a partitioned log that reports how far
// behind it is, per partition (the metric weir.source.lag). Lag is called
// on another goroutine than Read.
type LagReporter = engine.LagReporter

// PartitionLag is the lag of one partition.
type PartitionLag = engine.PartitionLag

// RestorableSource is a Source whose readers can resume from a stored
// position.
type RestorableSource[T any] interface {
	Source[T]
	// Restore opens the reader of subtask info.Index at position, which
	// CheckpointedReader.Position returned for the same subtask index and
	// parallelism; the reader then returns exactly the records after it.
	Restore(ctx context.Context, info SubtaskInfo, position []byte) (SourceReader[T], error)
}

// RescalableSource is a RestorableSource whose positions can be restored at
// another parallelism than they were taken at, as Kafka partitions with their
// offsets are reassigned to the new subtasks.
type RescalableSource[T any] interface {
	RestorableSource[T]
	// RestoreRescaled opens the reader of subtask info.Index of
	// info.Parallelism from the positions of all subtasks of the restored
	// checkpoint, which ran the source at parallelism len(positions)
	// (positions[j] is what subtask j stored, nil if nothing). The readers
	// of the new subtasks together return exactly the records after all
	// those positions.
	RestoreRescaled(ctx context.Context, info SubtaskInfo, positions [][]byte) (SourceReader[T], error)
}

// CommittingWriter is a SinkWriter that commits its output at checkpoints
// (two-phase commit), which makes a job's output exactly once.
type CommittingWriter interface {
	// PreCommit is called at barrier n, after every record before the
	// barrier was written: it makes them durable but keeps them invisible,
	// and describes them. The description is stored in checkpoint n.
	PreCommit(checkpoint uint64) ([]byte, error)
	// Commit makes visible what PreCommit(checkpoint) described, once the
	// checkpoint is complete. It is idempotent: recovery may redo it.
	Commit(checkpoint uint64) error
}

// AsyncPreCommitter is a CommittingWriter whose pre-commit has a slow part,
// such as an fsync, that need not hold the barrier.
type AsyncPreCommitter interface {
	// PreCommitAsync is PreCommit in two steps. At barrier n it ends the
	// records before the barrier and returns their description and
	// durable; the runtime calls durable on another goroutine and
	// acknowledges checkpoint n only once it returned nil (an error fails
	// the job). The writer must not touch what durable makes durable.
	PreCommitAsync(checkpoint uint64) (pending []byte, durable func() error, err error)
}

// RecoveringSink is a Sink that completes the commits of a restored
// checkpoint and cleans up after attempts that never reached one.
type RecoveringSink interface {
	// Recover redoes the commit that pending describes (what PreCommit
	// returned for subtask info.Index in the restored checkpoint; nil when
	// there was none) and removes the output of later, failed attempts of
	// the same subtask. It is called before the subtask's writer opens.
	//
	// After a rescale (the checkpoint ran the sink at another parallelism
	// p), subtask i recovers, before it opens, every old subtask j with
	// j mod the new parallelism == i: info then has Index j and Parallelism
	// p. A new subtask with no old counterpart (i >= p) recovers itself with
	// nil pending; output of checkpoints up to info.RestoredCheckpoint is
	// committed and must stay.
	Recover(ctx context.Context, info SubtaskInfo, pending []byte) error
}

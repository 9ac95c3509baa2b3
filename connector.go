package weir

import (
	"context"
	"log/slog"
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
	// when the job fails or is cancelled.
	Finish() error
	// Close releases the writer's resources. It is called exactly once,
	// after Finish on a clean end, or alone when the job fails or is
	// cancelled, in which case uncommitted output must stay invisible.
	Close() error
}

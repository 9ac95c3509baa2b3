package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/weirstream/weir/barrier"
)

// ErrStopped is the cause of a job that was cancelled by its caller.
var ErrStopped = errors.New("engine: job stopped")

// OperatorError is the error of a job whose operator failed: it names the
// operator and the subtask.
type OperatorError struct {
	Operator    string
	Subtask     int
	Parallelism int
	Err         error
	Stack       []byte // the goroutine's stack when the operator panicked
}

func (e *OperatorError) Error() string {
	return fmt.Sprintf("operator %q (subtask %d of %d): %v", e.Operator, e.Subtask, e.Parallelism, e.Err)
}

func (e *OperatorError) Unwrap() error { return e.Err }

// PanicError is the cause of an OperatorError when the operator panicked.
type PanicError struct{ Value any }

func (p *PanicError) Error() string { return fmt.Sprintf("panic: %v", p.Value) }

func (oc *OpContext) wrap(err error) error {
	if err == nil {
		return nil
	}
	var oe *OperatorError
	if errors.As(err, &oe) {
		return err
	}
	// A job being cancelled is nobody's fault: pass the cause through.
	if oc.ctx != nil && oc.ctx.Err() != nil && errors.Is(err, context.Cause(oc.ctx)) {
		return err
	}
	return &OperatorError{Operator: oc.Operator, Subtask: oc.Index, Parallelism: oc.Parallelism, Err: err}
}

func (oc *OpContext) recovered(r any) error {
	return &OperatorError{
		Operator:    oc.Operator,
		Subtask:     oc.Index,
		Parallelism: oc.Parallelism,
		Err:         &PanicError{Value: r},
		Stack:       debug.Stack(),
	}
}

// guard attributes the errors and panics of the operator it wraps (and of
// nothing downstream, whose own guard already attributed them) to that
// operator. It costs one deferred call per batch.
//
// The guard of an operator also takes the operator's part in checkpoints
// as a barrier passes (see taskCkpt.snapshot), before the operator forwards
// it; a key selector's guard (snapshot false) does not.
type guard[T any] struct {
	out      Output[T]
	oc       *OpContext
	snapshot bool
}

func (g *guard[T]) Push(b []T) (err error) {
	if g.snapshot && g.oc.stats != nil { // an operator's guard, not a key selector's
		g.oc.stats.in.Add(int64(len(b)))
	}
	defer func() {
		if r := recover(); r != nil {
			err = g.oc.recovered(r)
		}
	}()
	return g.oc.wrap(g.out.Push(b))
}

func (g *guard[T]) Control(ev barrier.Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = g.oc.recovered(r)
		}
	}()
	if ev.Kind == barrier.Barrier && g.snapshot && g.oc.task.ck != nil {
		if err := g.oc.task.ck.snapshot(g.oc, ev.Checkpoint, ev.Trace); err != nil {
			return g.oc.wrap(err)
		}
	}
	return g.oc.wrap(g.out.Control(ev))
}

func (g *guard[T]) Flush() error {
	if f, ok := g.out.(flushOutput); ok {
		return g.oc.wrap(f.Flush())
	}
	return nil
}

// Permanent marks an error that restarting the job cannot cure: a missing
// topic, a refused password, a configuration the sink rejects. A job that
// fails with it does not restart in-process; it fails at once with the
// error.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

// IsPermanent reports whether err, or an error it wraps, was marked by
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

package barrier

import "fmt"

// Kind is the kind of a control event.
type Kind uint8

const (
	// None marks an envelope that carries records, not a control event.
	None Kind = iota
	// Watermark says no record with an event time at or below Time follows
	// from this sender.
	Watermark
	// Barrier separates the records that belong to checkpoint Checkpoint
	// from those that come after it.
	Barrier
	// EndOfInput says this sender will send nothing more.
	EndOfInput
	// CancelBarrier says the sender abandoned checkpoint Checkpoint (and
	// every older one): the receiver stops aligning it and ignores its
	// barriers, and those of older checkpoints, from every input.
	CancelBarrier
	// WatermarkStatus says the sender turned idle (Idle) or active again:
	// while idle it sends no records and does not hold the watermark back.
	WatermarkStatus
)

func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case Watermark:
		return "watermark"
	case Barrier:
		return "barrier"
	case EndOfInput:
		return "end-of-input"
	case CancelBarrier:
		return "cancel-barrier"
	case WatermarkStatus:
		return "watermark-status"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event is a control event. It is a small value type: it is copied, never
// shared.
type Event struct {
	Kind       Kind
	Checkpoint uint64 // Barrier, CancelBarrier: the checkpoint id
	Time       int64  // Watermark: event time in milliseconds since the epoch
	Idle       bool   // WatermarkStatus: idle (true) or active
	// Trace (Barrier) is the trace context of the checkpoint, so that
	// every subtask records its spans of checkpoint n under the
	// coordinator's span of n, wherever the subtask runs.
	Trace TraceContext
}

// TraceContext is a W3C trace context (trace id, parent span id, flags),
// opaque to this package; the zero value is none.
type TraceContext struct {
	TraceID [16]byte
	SpanID  [8]byte
	Flags   byte
}

func (e Event) String() string {
	switch e.Kind {
	case Watermark:
		return fmt.Sprintf("watermark(%d)", e.Time)
	case Barrier:
		return fmt.Sprintf("barrier(%d)", e.Checkpoint)
	case CancelBarrier:
		return fmt.Sprintf("cancel-barrier(%d)", e.Checkpoint)
	case WatermarkStatus:
		if e.Idle {
			return "idle"
		}
		return "active"
	}
	return e.Kind.String()
}

// End is the end-of-input event.
var End = Event{Kind: EndOfInput}

// NewBarrier returns the barrier of checkpoint id.
func NewBarrier(id uint64) Event { return Event{Kind: Barrier, Checkpoint: id} }

// NewCancel returns the cancel marker of checkpoint id.
func NewCancel(id uint64) Event { return Event{Kind: CancelBarrier, Checkpoint: id} }

// NewWatermark returns the watermark at event time t (milliseconds since the
// epoch).
func NewWatermark(t int64) Event { return Event{Kind: Watermark, Time: t} }

// NewStatus returns the watermark status event: idle or active.
func NewStatus(idle bool) Event { return Event{Kind: WatermarkStatus, Idle: idle} }

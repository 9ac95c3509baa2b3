package barrier

import (
	"fmt"
	"strings"
)

// Action is one thing the gate must do after it fed an event to the
// Aligner. A Decision carries a set of them; the gate performs them in the
// order of their values (AbortAlignment first, AllEnded last), and only then
// replays what it stashed from inputs that were released.
type Action uint16

const (
	// AbortAlignment: the alignment of Decision.Aborted is abandoned
	// (Decision.Reason says why). Stop its alignment timer; the checkpoint
	// is declined by this task.
	AbortAlignment Action = 1 << iota
	// ForwardCancel: send a cancel marker for Decision.Cancel downstream,
	// so tasks downstream stop waiting for that checkpoint.
	ForwardCancel
	// StartAlignment: the alignment of Decision.Checkpoint started. Start
	// its alignment timer.
	StartAlignment
	// Snapshot: every live input delivered barrier Decision.Checkpoint (or
	// ended). Stop the alignment timer, take the synchronous snapshot, then
	// forward barrier Decision.Checkpoint downstream.
	Snapshot
	// ReleaseAll: hold back no input any longer. Inputs that stay blocked
	// after this decision are re-blocked by Block in the same decision.
	ReleaseAll
	// Block: hold back Decision.Input: stash what it sends, do not process
	// it, until a later decision releases it.
	Block
	// Ignore: the event was late or redundant (Decision.Ignored says why);
	// drop it. The input is not blocked by it.
	Ignore
	// AllEnded: every input ended. Forward end-of-input downstream.
	AllEnded
)

var actionNames = [...]string{
	"abort-alignment", "forward-cancel", "start-alignment", "snapshot",
	"release-all", "block", "ignore", "all-ended",
}

func (a Action) String() string {
	if a == 0 {
		return "none"
	}
	var parts []string
	for i, name := range actionNames {
		if a&(1<<i) != 0 {
			parts = append(parts, name)
			a &^= 1 << i
		}
	}
	if a != 0 {
		parts = append(parts, fmt.Sprintf("action(%#x)", uint16(a)))
	}
	return strings.Join(parts, "|")
}

// AbortReason says why an alignment was abandoned or a cancel marker is
// forwarded.
type AbortReason uint8

const (
	// Subsumed: a barrier of a newer checkpoint arrived before every input
	// delivered the barrier being aligned.
	Subsumed AbortReason = iota + 1
	// CancelMarker: an input delivered a cancel marker for the checkpoint
	// or a newer one.
	CancelMarker
	// CoordinatorAbort: the checkpoint coordinator aborted the checkpoint
	// or a newer one.
	CoordinatorAbort
)

func (r AbortReason) String() string {
	switch r {
	case 0:
		return "none"
	case Subsumed:
		return "subsumed"
	case CancelMarker:
		return "cancel-marker"
	case CoordinatorAbort:
		return "coordinator"
	}
	return fmt.Sprintf("abort-reason(%d)", uint8(r))
}

// IgnoreReason says why an event was ignored.
type IgnoreReason uint8

const (
	// Late: the event concerns a checkpoint that is already snapshotted,
	// aborted or cancelled, or older than the one being aligned.
	Late IgnoreReason = iota + 1
	// Duplicate: the input already delivered this barrier, or already
	// ended.
	Duplicate
	// InputEnded: the input already ended; nothing may follow
	// end-of-input.
	InputEnded
)

func (r IgnoreReason) String() string {
	switch r {
	case 0:
		return "none"
	case Late:
		return "late"
	case Duplicate:
		return "duplicate"
	case InputEnded:
		return "input ended"
	}
	return fmt.Sprintf("ignore-reason(%d)", uint8(r))
}

// Progress is the state of the alignment after an event.
type Progress struct {
	// Aligning is true while an alignment is in progress.
	Aligning bool
	// Checkpoint is the checkpoint being aligned.
	Checkpoint uint64
	// Seen is the number of live inputs that delivered its barrier (and
	// are blocked); Live is the number of inputs that have not ended.
	Seen, Live int
}

func (p Progress) String() string {
	if !p.Aligning {
		return fmt.Sprintf("waiting: %d live", p.Live)
	}
	return fmt.Sprintf("aligning cp=%d: %d/%d", p.Checkpoint, p.Seen, p.Live)
}

// evKind names the kind of event a Decision answers, for String.
type evKind uint8

const (
	evBarrier evKind = iota + 1
	evCancel
	evAbort
	evEnd
)

// Decision is the Aligner's answer to one event: the actions the gate must
// perform and the ids they concern. It is a small value; the zero Decision
// asks for nothing.
type Decision struct {
	Actions Action
	// Checkpoint is the checkpoint that StartAlignment, Snapshot and Ignore
	// concern.
	Checkpoint uint64
	// Input is the input that Block or Ignore concerns, and the one that
	// delivered the cancel marker when Reason is CancelMarker.
	Input int
	// Aborted is the checkpoint whose alignment AbortAlignment abandons.
	Aborted uint64
	// Cancel is the checkpoint ForwardCancel sends a cancel marker for.
	Cancel uint64
	// Reason says why AbortAlignment or ForwardCancel happened.
	Reason AbortReason
	// Ignored says why the event was ignored.
	Ignored IgnoreReason
	// Progress is the state of the alignment after the event.
	Progress Progress

	event evKind
}

// Has reports whether d asks for every action in a.
func (d Decision) Has(a Action) bool { return d.Actions&a == a }

// String renders d as a line of a protocol trace, its actions in the order
// the gate performs them, for example
//
//	abort cp=1 (subsumed by cp=2); forward cancel cp=1; start cp=2; release all; block input=0 (aligning cp=2: 1/3)
func (d Decision) String() string {
	var b strings.Builder
	sep := func() {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
	}
	if d.Has(AbortAlignment) {
		sep()
		fmt.Fprintf(&b, "abort cp=%d (%s)", d.Aborted, d.cause(d.Aborted))
	}
	if d.Has(ForwardCancel) {
		sep()
		fmt.Fprintf(&b, "forward cancel cp=%d", d.Cancel)
		if !d.Has(AbortAlignment) {
			fmt.Fprintf(&b, " (%s)", d.cause(d.Cancel))
		}
	}
	if d.Has(StartAlignment) {
		sep()
		fmt.Fprintf(&b, "start cp=%d", d.Checkpoint)
	}
	if d.Has(Snapshot) {
		sep()
		fmt.Fprintf(&b, "snapshot cp=%d; forward barrier cp=%d", d.Checkpoint, d.Checkpoint)
	}
	if d.Has(ReleaseAll) {
		sep()
		b.WriteString("release all")
	}
	if d.Has(Block) {
		sep()
		fmt.Fprintf(&b, "block input=%d (%s)", d.Input, d.Progress)
	}
	if d.Has(Ignore) {
		sep()
		b.WriteString("ignore ")
		switch d.event {
		case evBarrier:
			fmt.Fprintf(&b, "barrier cp=%d on input=%d", d.Checkpoint, d.Input)
		case evCancel:
			fmt.Fprintf(&b, "cancel cp=%d on input=%d", d.Checkpoint, d.Input)
		case evAbort:
			fmt.Fprintf(&b, "abort cp=%d", d.Checkpoint)
		case evEnd:
			fmt.Fprintf(&b, "end-of-input on input=%d", d.Input)
		}
		fmt.Fprintf(&b, " (%s", d.Ignored)
		if d.Progress.Aligning {
			fmt.Fprintf(&b, "; %s", d.Progress)
		}
		b.WriteByte(')')
	}
	if d.Has(AllEnded) {
		sep()
		b.WriteString("all ended; forward end-of-input")
	}
	if b.Len() == 0 {
		b.WriteString("none")
		if d.Progress.Aligning {
			fmt.Fprintf(&b, " (%s)", d.Progress)
		}
	}
	return b.String()
}

// cause explains AbortAlignment of, or ForwardCancel for, checkpoint id.
func (d Decision) cause(id uint64) string {
	switch d.Reason {
	case Subsumed:
		return fmt.Sprintf("subsumed by cp=%d", d.Checkpoint)
	case CancelMarker:
		if d.Cancel != id {
			return fmt.Sprintf("cancel marker cp=%d on input=%d", d.Cancel, d.Input)
		}
		return fmt.Sprintf("cancel marker on input=%d", d.Input)
	case CoordinatorAbort:
		if d.Cancel != id {
			return fmt.Sprintf("coordinator aborted cp=%d", d.Cancel)
		}
		return "coordinator"
	}
	return d.Reason.String()
}

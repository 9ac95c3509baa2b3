package barrier

import (
	"fmt"
	"strings"
)

// Aligner aligns the checkpoint barriers of a task with several inputs. It
// is a pure state machine: the gate feeds it the control events it reads
// and performs the Decision each call returns. It is not safe for
// concurrent use; one task goroutine owns it.
//
// An input is identified by its index among the task's senders,
// 0 ≤ input < Inputs(); a call with an index out of range panics.
type Aligner struct {
	state state
	// ended[i]: input i delivered end-of-input.
	ended []bool
	// seen[i]: input i delivered the barrier being aligned and is blocked.
	// Only set while aligning.
	seen []bool
	live int // inputs not ended
	// nseen counts the live inputs with seen set.
	nseen int
	// done is the newest checkpoint snapshotted, aborted or cancelled (if
	// anyDone): barriers and cancel markers at or below it are late.
	done    uint64
	anyDone bool
}

// NewAligner returns an Aligner for a task with the given number of inputs
// (at least 1), waiting for the first barrier.
func NewAligner(inputs int) *Aligner {
	if inputs < 1 {
		panic(fmt.Sprintf("barrier: NewAligner(%d): need at least one input", inputs))
	}
	return &Aligner{
		state: waiting{},
		ended: make([]bool, inputs),
		seen:  make([]bool, inputs),
		live:  inputs,
	}
}

// Inputs returns the number of inputs.
func (a *Aligner) Inputs() int { return len(a.ended) }

// Live returns the number of inputs that have not ended.
func (a *Aligner) Live() int { return a.live }

// Ended reports whether input delivered end-of-input.
func (a *Aligner) Ended(input int) bool { return a.ended[input] }

// Blocked reports whether input is held back: the gate must stash what it
// sends and not process it until a Decision releases it.
func (a *Aligner) Blocked(input int) bool { return a.seen[input] }

// Aligning returns the checkpoint being aligned, if any.
func (a *Aligner) Aligning() (id uint64, ok bool) {
	s, ok := a.state.(aligning)
	return s.id, ok
}

// Progress returns the state of the alignment.
func (a *Aligner) Progress() Progress {
	p := Progress{Live: a.live}
	if s, ok := a.state.(aligning); ok {
		p.Aligning, p.Checkpoint, p.Seen = true, s.id, a.nseen
	}
	return p
}

// Step feeds a control event that arrived on input: a barrier, a cancel
// marker or end-of-input. Watermarks and records are not the Aligner's
// business; Step panics on them.
func (a *Aligner) Step(input int, ev Event) Decision {
	switch ev.Kind {
	case Barrier:
		return a.Barrier(input, ev.Checkpoint)
	case CancelBarrier:
		return a.Cancel(input, ev.Checkpoint)
	case EndOfInput:
		return a.EndOfInput(input)
	}
	panic(fmt.Sprintf("barrier: Aligner.Step(%d, %v): not an alignment event", input, ev))
}

// Barrier feeds barrier id, delivered by input.
//
// The first barrier of a newer checkpoint starts its alignment (and
// abandons the alignment of an older one); a barrier of the checkpoint being
// aligned blocks its input, or completes the alignment when it is the last
// live input missing. A barrier of an older, snapshotted, aborted or
// cancelled checkpoint is ignored.
func (a *Aligner) Barrier(input int, id uint64) Decision {
	return a.fromInput(evBarrier, input, id, func(d *Decision) { a.state = a.state.barrier(a, input, id, d) })
}

// Cancel feeds a cancel marker for checkpoint id, delivered by input. It
// abandons the alignment of id or of an older checkpoint, and makes barriers
// of id and older checkpoints late on every input. The first cancel marker
// for a checkpoint is forwarded; later ones are ignored.
func (a *Aligner) Cancel(input int, id uint64) Decision {
	return a.fromInput(evCancel, input, id, func(d *Decision) { a.state = a.state.cancel(a, id, CancelMarker, d) })
}

// fromInput feeds an event about checkpoint id from input: ignored when the
// input ended or id is late, else applied by step.
func (a *Aligner) fromInput(ev evKind, input int, id uint64, step func(*Decision)) Decision {
	d := Decision{event: ev, Checkpoint: id, Input: input}
	switch {
	case a.ended[input]:
		d.ignore(InputEnded)
	case a.late(id):
		d.ignore(Late)
	default:
		step(&d)
	}
	d.Progress = a.Progress()
	return d
}

// Abort tells the Aligner that the coordinator aborted checkpoint id. It
// acts as a cancel marker for id that arrived on every input at once.
func (a *Aligner) Abort(id uint64) Decision {
	d := Decision{event: evAbort, Checkpoint: id}
	if a.late(id) {
		d.ignore(Late)
	} else {
		a.state = a.state.cancel(a, id, CoordinatorAbort, &d)
	}
	d.Progress = a.Progress()
	return d
}

// EndOfInput feeds end-of-input, delivered by input. From now on the input
// counts as having delivered every barrier: when it was the last input an
// alignment waited for, the alignment completes. When it was the last live
// input, the decision includes AllEnded.
func (a *Aligner) EndOfInput(input int) Decision {
	d := Decision{event: evEnd, Input: input}
	if a.ended[input] {
		d.ignore(Duplicate)
		d.Progress = a.Progress()
		return d
	}
	a.ended[input] = true
	a.live--
	if a.seen[input] {
		// A blocked input sends nothing the gate processes, so this
		// only happens when the gate feeds stashed events early. The
		// input is gone; its end counts as its barrier did.
		a.seen[input] = false
		a.nseen--
	}
	a.state = a.state.endOfInput(a, &d)
	if a.live == 0 {
		d.Actions |= AllEnded
	}
	d.Progress = a.Progress()
	return d
}

// String describes the state, for traces and debugging, for example
// "aligning cp=4: blocked=[0 2] ended=[1] done=3".
func (a *Aligner) String() string {
	var b strings.Builder
	if s, ok := a.state.(aligning); ok {
		fmt.Fprintf(&b, "aligning cp=%d: blocked=%v", s.id, indices(a.seen))
	} else {
		b.WriteString("waiting:")
	}
	fmt.Fprintf(&b, " ended=%v", indices(a.ended))
	if a.anyDone {
		fmt.Fprintf(&b, " done=%d", a.done)
	}
	return b.String()
}

func indices(set []bool) []int {
	out := []int{}
	for i, in := range set {
		if in {
			out = append(out, i)
		}
	}
	return out
}

// late reports whether checkpoint id is at or below the newest one
// snapshotted, aborted or cancelled.
func (a *Aligner) late(id uint64) bool { return a.anyDone && id <= a.done }

// over records that checkpoint id is over — snapshotted, aborted or
// cancelled — so its barriers and those of older checkpoints are late.
func (a *Aligner) over(id uint64) {
	if !a.anyDone || id > a.done {
		a.done, a.anyDone = id, true
	}
}

// releaseAll unblocks every input.
func (a *Aligner) releaseAll(d *Decision) {
	clear(a.seen)
	a.nseen = 0
	d.Actions |= ReleaseAll
}

func (d *Decision) ignore(r IgnoreReason) {
	d.Actions |= Ignore
	d.Ignored = r
}

// state is one state of the Aligner, after Flink's BarrierHandlerState:
// each event method performs the transition, records the actions in d and
// returns the next state. The Aligner has already dropped events from ended
// inputs and events of late checkpoints.
type state interface {
	barrier(a *Aligner, input int, id uint64, d *Decision) state
	cancel(a *Aligner, id uint64, r AbortReason, d *Decision) state
	// endOfInput runs after the input was marked ended.
	endOfInput(a *Aligner, d *Decision) state
}

// waiting is the state between alignments: no input is blocked.
type waiting struct{}

func (waiting) barrier(a *Aligner, input int, id uint64, d *Decision) state {
	d.Actions |= StartAlignment
	return aligning{id}.collect(a, input, d)
}

func (waiting) cancel(a *Aligner, id uint64, r AbortReason, d *Decision) state {
	d.Actions |= ForwardCancel
	d.Cancel, d.Reason = id, r
	a.over(id)
	return waiting{}
}

func (waiting) endOfInput(*Aligner, *Decision) state { return waiting{} }

// aligning is the state while checkpoint id is aligned: the inputs that
// delivered its barrier (Aligner.seen) are blocked.
type aligning struct{ id uint64 }

func (s aligning) barrier(a *Aligner, input int, id uint64, d *Decision) state {
	switch {
	case id < s.id:
		d.ignore(Late)
		return s
	case id == s.id:
		if a.seen[input] {
			d.ignore(Duplicate)
			return s
		}
		return s.collect(a, input, d)
	}
	// A newer checkpoint overtakes the one being aligned.
	d.Actions |= AbortAlignment | ForwardCancel
	d.Aborted, d.Cancel, d.Reason = s.id, s.id, Subsumed
	a.over(s.id)
	a.releaseAll(d)
	return waiting{}.barrier(a, input, id, d)
}

func (s aligning) cancel(a *Aligner, id uint64, r AbortReason, d *Decision) state {
	if id < s.id {
		// Subsumed by the checkpoint being aligned, which downstream
		// tasks will see the barrier or a cancel marker of.
		d.ignore(Late)
		return s
	}
	d.Actions |= AbortAlignment | ForwardCancel
	d.Aborted, d.Cancel, d.Reason = s.id, id, r
	a.over(id)
	a.releaseAll(d)
	return waiting{}
}

func (s aligning) endOfInput(a *Aligner, d *Decision) state {
	if a.nseen < a.live {
		return s
	}
	return s.snapshot(a, d)
}

// collect records that input delivered barrier s.id: it blocks the input,
// or completes the alignment when the input was the last one missing.
func (s aligning) collect(a *Aligner, input int, d *Decision) state {
	a.seen[input] = true
	a.nseen++
	d.Checkpoint = s.id
	if a.nseen == a.live {
		return s.snapshot(a, d)
	}
	d.Actions |= Block
	d.Input = input
	return s
}

// snapshot completes the alignment of s.id.
func (s aligning) snapshot(a *Aligner, d *Decision) state {
	d.Actions |= Snapshot
	d.Checkpoint = s.id
	a.over(s.id)
	a.releaseAll(d)
	return waiting{}
}

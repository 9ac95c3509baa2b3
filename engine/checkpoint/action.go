package checkpoint

import (
	"fmt"
	"strings"
)

// Action is a decision of the coordinator for the engine to carry out, in
// the order returned. Actions are messages: they say the same thing whether
// the tasks are goroutines or other processes.
//
// The concrete types are InjectBarrier, WriteManifest[H], NotifyComplete,
// Abort, RequestRejected and FailJob.
type Action interface {
	fmt.Stringer
	action()
}

// InjectBarrier starts checkpoint ID: every source subtask injects barrier
// ID between two batches and records its position in the same step; the
// positions come back in the sources' acks.
type InjectBarrier struct {
	ID   ID
	Kind Kind
}

// TaskHandle is the state handle one task acked a checkpoint with.
type TaskHandle[H any] struct {
	Task  TaskID
	State H
}

// WriteManifest asks the engine to write the manifest of checkpoint ID —
// the commit point — and to report the result with ManifestWritten or
// ManifestFailed. At most one manifest write is outstanding at a time.
type WriteManifest[H any] struct {
	ID     ID
	Parent ID // last completed checkpoint, 0 if none
	Kind   Kind
	// Handles holds every expected task's handle, sorted by task.
	Handles []TaskHandle[H]
}

// NotifyComplete tells the tasks checkpoint ID is complete (its manifest
// is durable): sinks commit. After a Final one the job may end.
type NotifyComplete struct {
	ID   ID
	Kind Kind
}

// Abort tells the tasks to drop checkpoint ID: release inputs held for it
// and delete what they wrote for it. Never issued for a checkpoint whose
// manifest write is outstanding.
type Abort struct {
	ID     ID
	Kind   Kind
	Reason Reason
	Detail string // e.g. the declining task and its cause
}

// RequestRejected says a trigger request (Manual, Savepoint, or a queued
// Final) will not start. Its Reason is pre-flight.
type RequestRejected struct {
	Kind   Kind
	Reason Reason
}

// FailJob says more consecutive checkpoints failed than
// Policy.TolerableFailures allows. The coordinator stops triggering until
// Resume.
type FailJob struct {
	Reason   Reason // of the last failure
	Failures int    // consecutive failures
}

func (InjectBarrier) action()    {}
func (WriteManifest[H]) action() {}
func (NotifyComplete) action()   {}
func (Abort) action()            {}
func (RequestRejected) action()  {}
func (FailJob) action()          {}

func (a InjectBarrier) String() string {
	return fmt.Sprintf("inject-barrier cp=%d %s", a.ID, a.Kind)
}

func (a WriteManifest[H]) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "write-manifest cp=%d parent=%d %s", a.ID, a.Parent, a.Kind)
	for _, h := range a.Handles {
		fmt.Fprintf(&b, " %s:%v", h.Task, h.State)
	}
	return b.String()
}

func (a NotifyComplete) String() string {
	return fmt.Sprintf("notify-complete cp=%d %s", a.ID, a.Kind)
}

func (a Abort) String() string {
	s := fmt.Sprintf("abort cp=%d %s reason=%s", a.ID, a.Kind, a.Reason)
	if a.Detail != "" {
		s += " (" + a.Detail + ")"
	}
	return s
}

func (a RequestRejected) String() string {
	return fmt.Sprintf("request-rejected %s reason=%s", a.Kind, a.Reason)
}

func (a FailJob) String() string {
	return fmt.Sprintf("fail-job reason=%s failures=%d", a.Reason, a.Failures)
}

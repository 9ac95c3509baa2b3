package checkpoint

import "fmt"

// Reason is why a checkpoint, or a request for one, failed. The set is
// fixed: reasons become span attributes and metric labels.
type Reason uint8

const (
	// TooManyRequests: a trigger request found the request queue full.
	TooManyRequests Reason = iota + 1
	// NotRunning: a trigger request arrived, or was still queued, while the
	// coordinator was not triggering (a task failed, the job is failing,
	// finishing, finished or shut down).
	NotRunning
	// Declined: a task declined the checkpoint (e.g. its snapshot failed).
	Declined
	// Expired: the checkpoint was still collecting acks after Timeout.
	Expired
	// TaskFailed: a task failed; every pending checkpoint is aborted.
	TaskFailed
	// ManifestFailed: the engine could not write the manifest.
	ManifestFailed
	// Subsumed: a later checkpoint completed first.
	Subsumed
	// Shutdown: the coordinator was shut down.
	Shutdown
)

func (r Reason) String() string {
	switch r {
	case TooManyRequests:
		return "too-many-requests"
	case NotRunning:
		return "not-running"
	case Declined:
		return "declined"
	case Expired:
		return "expired"
	case TaskFailed:
		return "task-failed"
	case ManifestFailed:
		return "manifest-failed"
	case Subsumed:
		return "subsumed"
	case Shutdown:
		return "shutdown"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// PreFlight reports whether the failure happens before any task saw a
// barrier (so no task holds anything to release), like Flink's
// CheckpointFailureReason.isPreFlight.
func (r Reason) PreFlight() bool {
	return r == TooManyRequests || r == NotRunning
}

// CountsAsFailure reports whether the failure counts toward
// Policy.TolerableFailures. Like Flink's CheckpointFailureManager, only
// failures of the checkpoint itself count: not pre-flight rejections, not
// subsumption, not a task failure (which fails the job by itself) and not a
// shutdown.
func (r Reason) CountsAsFailure() bool {
	return r == Declined || r == Expired || r == ManifestFailed
}

// Outcome answers an event about one checkpoint (an ack, a decline, a
// manifest result) or one task.
type Outcome uint8

const (
	// OK: the event was applied.
	OK Outcome = iota
	// Duplicate: the event was already applied (the task acked this
	// checkpoint before). Nothing changed; keep the task's files.
	Duplicate
	// Unknown: no such checkpoint or task — never triggered, not expected,
	// or too old to remember. Nothing changed; do not delete anything on
	// the strength of this answer.
	Unknown
	// Discarded: the checkpoint was aborted. The caller should delete what
	// the task uploaded for it.
	Discarded
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Duplicate:
		return "duplicate"
	case Unknown:
		return "unknown"
	case Discarded:
		return "discarded"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// RequestOutcome answers a trigger request.
type RequestOutcome uint8

const (
	// Triggered: the checkpoint started; its InjectBarrier is in the actions.
	Triggered RequestOutcome = iota
	// Queued: it starts as soon as MaxConcurrent allows.
	Queued
	// Rejected: it will not start; a RequestRejected action says why.
	Rejected
)

func (o RequestOutcome) String() string {
	switch o {
	case Triggered:
		return "triggered"
	case Queued:
		return "queued"
	case Rejected:
		return "rejected"
	}
	return fmt.Sprintf("request-outcome(%d)", uint8(o))
}

// Package checkpoint is the checkpoint coordinator: a pure state machine
// that decides when to take aligned-barrier checkpoints and when they are
// complete (see DESIGN.md, "Checkpoints" and "Recovery").
//
// Like etcd raft's RawNode it has no goroutines, no clock and no I/O. The
// engine feeds it events — Tick, Request, Ack, Decline, ManifestWritten,
// ManifestFailed, TaskFailed, Resume, SourceFinished, Shutdown — each with
// the current reading of a monotonic clock, and carries out the Actions it
// returns, in order:
//
//	InjectBarrier    every source injects barrier n and records its position
//	WriteManifest    write the manifest of n (all handles, parent), report back
//	NotifyComplete   n is durable: sinks commit
//	Abort            drop n: release held inputs, delete its files
//	RequestRejected  a requested checkpoint will not start
//	FailJob          too many consecutive checkpoint failures
//
// Acks and declines are answered with an Outcome (OK, Duplicate, Unknown,
// Discarded); only Discarded tells the engine to delete a task's upload.
// Failures carry a Reason from a fixed set; Reason.PreFlight says whether
// the tasks ever saw the barrier.
//
// The parts are small: pending tracks one checkpoint's acks, scheduler
// applies the Policy (interval, min pause, max concurrent, queued
// requests), history remembers recent outcomes for late acks, and
// Coordinator glues them.
//
// The life of one checkpoint:
//
//	trigger (InjectBarrier)
//	   |
//	   v
//	+------------+   decline, timeout, task failed,
//	| collecting |   subsumed, shutdown
//	+------------+ -----------------------------------+
//	   | last expected ack                            |
//	   v                                              |
//	+------------+   timeout, task failed,            |
//	| acked-all  |   subsumed, shutdown               |
//	+------------+ -----------------------------------+
//	   | no other manifest write outstanding          |
//	   | (WriteManifest, newest acked-all first)      |
//	   v                                              v
//	+------------+   ManifestFailed            +-----------------+
//	|  writing   | --------------------------> | aborted(reason) |
//	+------------+                             |    (Abort)      |
//	   | ManifestWritten                       +-----------------+
//	   v
//	+------------+
//	| completed  |   NotifyComplete; older pending -> aborted(subsumed)
//	+------------+
//
// A checkpoint in writing is never aborted by anything but ManifestFailed:
// the write may already be durable, and its files must not be deleted.
//
// The coordinator itself is Running, Halted (a task failed or FailJob;
// until Resume), Finished (the Final checkpoint of a bounded job
// completed) or Stopped (Shutdown). IDs strictly increase across all of
// them and continue after Config.Restored.
package checkpoint

// Package sinks holds weir's local outputs:
//
//   - [Print] writes one line per record to a writer (stdout by default),
//     prefixed with the subtask number when the sink runs in parallel.
//   - [JSONFiles] writes JSON-lines part files that become visible only when
//     committed, and [ReadJSONFiles] reads the committed ones back.
//   - [Collect] keeps every record in memory, for tests.
//   - [Discard] drops every record and counts them, for benchmarks.
//
// The Kafka sink (transactional, two-phase commit) lives in sinks/kafka.
//
// A JSONFiles subtask's files go through these states; only committed files
// are visible to readers (I is the subtask index, E the epoch: the checkpoint
// whose barrier ends it, S the file's sequence number within the epoch):
//
//	          first record               size limit
//	(no file) ────────────▶ writing ─────────────────▶ rolled
//	                        .part-I-E-S.jsonl          .part-I-E-S.jsonl
//	                        (open, buffered)           (closed, fsynced)
//	                           │                          │
//	                           │ PreCommit(E): flush,     │ PreCommit(E)
//	                           │ fsync, close; describe   │
//	                           ▼                          ▼
//	                        pre-committed .part-I-E-S.jsonl (in checkpoint E)
//	                           │                          │
//	                           │ Commit(n >= E), Recover, or Finish
//	                           ▼
//	                        committed part-I-E-S.jsonl (renamed; then fsync dir)
//
// Finish (a bounded end) commits the in-progress epoch too. Close without
// Finish or Commit leaves in-progress and pre-committed files hidden.
// Recover, given the pending description of the restored checkpoint n,
// redoes the commit a crash may have lost and deletes the subtask's hidden
// files of epochs after n, in any state.
package sinks

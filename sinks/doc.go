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
// are visible to readers (I is the subtask index, S the file's sequence):
//
//	          first record               size limit
//	(no file) ────────────▶ writing ─────────────────▶ rolled
//	                        .part-I-S.jsonl            .part-I-S.jsonl
//	                        (open, buffered)           (closed, fsynced)
//	                           │                          │
//	                           │ Finish: flush, fsync     │ Finish
//	                           ▼                          ▼
//	                        committed part-I-S.jsonl (renamed; then fsync dir)
//
// Close without Finish leaves in-progress and rolled files hidden.
package sinks

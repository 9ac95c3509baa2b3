// Package sources holds weir's bounded and generated inputs: sources that
// need nothing outside the process, for examples, tests and benchmarks.
//
//   - [Slice] replays an in-memory slice.
//   - [Sequence] generates (key, seq) pairs, optionally at a fixed rate; a
//     key's records come from one subtask in increasing seq order, which makes
//     it the input of exactly-once checks.
//   - [Lines] reads a text file, split between subtasks by byte ranges.
//   - [Words] generates deterministic English-looking text for word-count
//     demos.
//
// Every source splits its input between the parallel subtasks of the
// operator (weir.SubtaskInfo.Index and Parallelism) so that each record is
// produced exactly once whatever the parallelism, and every reader returns
// promptly when its context is cancelled.
//
// Every source is a weir.RestorableSource and every reader a
// weir.CheckpointedReader. A position is a small versioned binary encoding
// (version, source kind, parallelism, subtask index, a fingerprint of the
// input and how far the reader got: records returned, or the byte offset of
// the next line for Lines; then a CRC-32C). Restore checks all of it: a
// position that is corrupt, truncated, of another source kind, subtask or
// parallelism, or that does not fit the input is an error wrapping
// ErrPosition that says what is wrong, never a silent restart.
//
// Sources that talk to other systems live in their own packages: the Kafka
// source (with the Kafka sink) in package kafka at the module's root, and
// the Nexmark benchmark generator in
// sources/nexmark.
package sources

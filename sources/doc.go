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
// Sources that talk to other systems live in their own packages: the Kafka
// source in sources/kafka and the Nexmark benchmark generator in
// sources/nexmark.
package sources

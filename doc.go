// Package weir is a stream-processing engine: a job is an ordinary Go
// program that builds a typed dataflow and is compiled into a job binary,
// which runs it on all cores of one machine with keyed state in Pebble.
//
// The model in five points:
//
//   - A Job holds a dataflow. From adds a source and gives a Stream[T]; Map,
//     Filter and FlatMap transform it; To writes it to a sink. Functions that
//     change the record type are package functions, since Go methods cannot
//     take type parameters.
//   - Every operator has a name, which is also its default UID (the stable
//     id of its state) and the prefix of its logs. Parallelism(n) runs n
//     parallel subtasks of it; UID(s) pins the id.
//   - KeyBy partitions a stream by key into a KeyedStream[K, T]: every record
//     of a key reaches the same subtask of the next operator — Process,
//     Reduce or Aggregate — which keeps state per key (Value, MapOf, List,
//     Reducing) in the subtask's Pebble instance.
//   - Operators joined by a forward edge with equal parallelism run in one
//     goroutine as plain calls on batches; every other edge (keyBy,
//     Rebalance, Union, a change of parallelism) moves batches over bounded
//     channels, and a full channel slows the sender down (backpressure).
//   - Main turns a program into a job binary with a command line (run,
//     version, --parallelism, --state-dir, WEIR_* variables), signals and
//     exit codes; Job.Run runs a job inside any program or test.
//
// Later versions add checkpoints with exactly-once recovery, event time and
// windows, Kafka, S3 and OpenTelemetry traces.
package weir

// Package engine runs a job graph on the cores of one machine.
//
// The root package weir builds a typed dataflow; this package receives it as
// a Graph of Nodes whose typed parts are hidden behind small interfaces, and
// runs it:
//
//   - every node has a parallelism; each parallel instance is a subtask;
//   - a forward edge between nodes of equal parallelism whose consumer has a
//     single input is chained: one goroutine runs the chain as plain method
//     calls on batches ([]T), with no channel in between;
//   - every other edge (keyBy, rebalance, union, different parallelism) is
//     an exchange: the producer's subtasks append records to per-target
//     batches and send full batches, with control events in between, over a
//     bounded channel per consumer subtask (a Gate). A full channel blocks the
//     sender: that is backpressure;
//   - partial batches are flushed when the sending task goes idle (its own
//     input is empty, or its source returned an empty batch) or after a
//     short linger, so latency stays low without a timer goroutine;
//   - keyBy hashes the encoded key to one of MaxParallelism key groups and
//     key groups map to subtasks in contiguous ranges (statebackend);
//   - a bounded job ends when every source is exhausted: end-of-input flows
//     through the graph, sinks finish (commit) and every goroutine returns;
//   - the first error or panic cancels every task and is returned, naming
//     the operator and subtask.
//
// With Config.Checkpoint, a driver goroutine runs the checkpoint coordinator
// (engine/checkpoint): sources inject barriers between batches, every Gate
// aligns them (barrier), each operator takes its part of the checkpoint as a
// barrier passes it (checkpointing.go), and a run starts by restoring the
// newest valid checkpoint (restore.go). See docs/architecture.md,
// "Checkpoints". The Output interface (what a task emits) and the Gate (what
// a task reads) carry batches and control events in order; neither knows
// whether its peer is a goroutine or another process.
package engine

// Package checkpoint will hold the checkpoint coordinator: a pure state
// machine (no goroutines, no clock, no I/O) driven by ticks, trigger
// requests, acks, declines and task failures, which answers with what to do
// — inject barrier n, write the manifest, notify completion, abort. The
// engine executes those decisions. See DESIGN.md, "Checkpoints".
package checkpoint

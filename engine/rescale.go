package engine

// Rescaling: a checkpoint taken with an operator at parallelism p restores
// into the operator at parallelism q != p.
//
//   - Keyed state: new subtask i takes its key groups from the old subtasks
//     whose ranges overlap its own (restoreKeyed, statebackend.OpenRescaled).
//   - Sources get every old subtask's position (RestoredPositions) and decide
//     what subtask i reads: a Kafka source reassigns partitions with their
//     offsets, a generator its splits.
//   - Sinks: new subtask i redoes the pending commits of the old subtasks j
//     with j mod q == i, as those subtasks (RestoredCommits), so every
//     transaction or file of the checkpoint is committed exactly once and the
//     leftovers of their failed attempts are removed; a subtask with no old
//     counterpart (i >= p) cleans up after its own earlier attempts.

// RestoredPositions returns, when the job restored a checkpoint that ran
// this source at another parallelism, the position of each of its old
// subtasks (nil where one stored none), and true.
func (oc *OpContext) RestoredPositions() ([][]byte, bool) {
	if oc.rescaled == nil {
		return nil, false
	}
	out := make([][]byte, len(oc.rescaled))
	for j, st := range oc.rescaled {
		if len(st.SourcePosition) > 0 {
			out[j] = st.SourcePosition
		}
	}
	return out, true
}

// SinkRecovery is the recovery of one sink subtask identity: what subtask
// Index of Parallelism pre-committed in the restored checkpoint (nil if
// nothing).
type SinkRecovery struct {
	Index, Parallelism int
	Pending            []byte
}

// RestoredCommits returns the sink subtask identities this subtask recovers
// before it opens: its own at the checkpoint's parallelism; after a rescale,
// those of the old subtasks j with j mod Parallelism == Index, and its own
// when it had no old counterpart.
func (oc *OpContext) RestoredCommits() []SinkRecovery {
	if oc.rescaled == nil {
		return []SinkRecovery{{Index: oc.Index, Parallelism: oc.Parallelism, Pending: oc.RestoredPending()}}
	}
	p := len(oc.rescaled)
	var out []SinkRecovery
	for j := oc.Index; j < p; j += oc.Parallelism {
		r := SinkRecovery{Index: j, Parallelism: p}
		if pc := oc.rescaled[j].PendingCommit; len(pc) > 0 {
			r.Pending = pc
		}
		out = append(out, r)
	}
	if oc.Index >= p {
		out = append(out, SinkRecovery{Index: oc.Index, Parallelism: oc.Parallelism})
	}
	return out
}

// RestoredCheckpoint returns the id of the checkpoint the job restored, or 0.
func (oc *OpContext) RestoredCheckpoint() uint64 {
	if oc.ckpt == nil || oc.ckpt.restored == nil {
		return 0
	}
	return oc.ckpt.restored.CheckpointID
}

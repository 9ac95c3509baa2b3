package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weirstream/weir/internal/failpoint"
	"github.com/weirstream/weir/statebackend"
	"github.com/weirstream/weir/storage"
)

// Rescaling: a checkpoint taken with an operator at parallelism p restores
// into the operator at parallelism q != p.
//
//   - Keyed state: new subtask i takes its key groups from the old subtasks
//     whose ranges overlap its own (statebackend.OpenRescaled).
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

// restoreRescaled opens the keyed state of an operator subtask from the
// old subtasks of a checkpoint taken at another parallelism: each one whose
// key groups overlap the subtask's is assembled (linked from local
// snapshots or downloaded) into its own directory, once for all the new
// subtasks that need it, then statebackend.OpenRescaled takes the
// subtask's key groups from them (it only reads those directories).
func (c *checkpointer) restoreRescaled(ctx context.Context, oc *OpContext, dir string, opts statebackend.Options) (*statebackend.Backend, error) {
	id := c.restored.CheckpointID
	want := opts.KeyGroups
	start := time.Now()
	attrs := append(opAttrs(oc), attrCheckpoint.Int64(int64(id)))
	_, dspan := c.tracer.Start(c.recovery, spanDownload, trace.WithAttributes(attrs...))
	var (
		dirs               []string
		olds               []int
		files, linked, got int
		bytes              int64
	)
	p, q := len(oc.rescaled), oc.Parallelism
	defer func() {
		for _, j := range olds {
			c.releaseAssembly(oc.UID, j)
		}
	}()
	for j, st := range oc.rescaled {
		kg := st.KeyGroups
		if len(st.Files) == 0 || max(kg.Start, want.Start) > min(kg.End, want.End) {
			continue
		}
		a, first, err := c.assembleShared(ctx, oc, j, st, overlapping(oc.MaxParallelism, q, kg))
		olds = append(olds, j)
		if err != nil {
			endSpan(dspan, err)
			return nil, fmt.Errorf("restore checkpoint %d (subtask %d of %d): %w", id, j, p, err)
		}
		dirs = append(dirs, a.dir)
		files += len(st.Files)
		if first {
			linked, got = linked+a.linked, got+a.downloaded
		}
		for _, f := range st.Files {
			bytes += f.Size
		}
	}
	endSpan(dspan, nil, attrFiles.Int(files), attribute.Int("weir.files_local", linked), attribute.Int("weir.files_downloaded", got),
		attribute.Int("weir.rescaled_from", len(oc.rescaled)))
	assembled := time.Now()
	failpoint.Hit("restore")
	_, ospan := c.tracer.Start(c.recovery, spanOpenState, trace.WithAttributes(attrs...))
	b, stats, err := statebackend.OpenRescaled(dir, dirs, opts)
	endSpan(ospan, err, attribute.Int64("weir.keys_copied", stats.Copied))
	if err != nil {
		return nil, fmt.Errorf("restore checkpoint %d: %w", id, err)
	}
	for i, d := range dirs {
		if d == stats.Primary {
			// The subtask's next checkpoint is a new base, mostly of the
			// primary's tables: storage has them.
			oc.uploader.prime(oc.rescaled[olds[i]].Files)
		}
	}
	oc.Logger.Info("restored rescaled keyed state", "checkpoint", id, "from_parallelism", len(oc.rescaled), "key_groups", want.String(),
		"old_subtasks", olds, "bytes", bytes, "local", linked, "downloaded", got, "excised", stats.Excised, "keys_copied", stats.Copied,
		"assemble", assembled.Sub(start), "open", time.Since(assembled))
	return b, nil
}

// assembly is an old subtask's files assembled into dir for the new
// subtasks (users) of a rescaled operator that overlap it.
type assembly struct {
	dir                string
	done               chan struct{}
	linked, downloaded int
	err                error
	users              int
}

// overlapping returns how many of q subtasks own key groups in r.
func overlapping(maxPar, q int, r storage.KeyGroupRange) int {
	return statebackend.SubtaskForKeyGroup(maxPar, q, r.End) - statebackend.SubtaskForKeyGroup(maxPar, q, r.Start) + 1
}

// assembleShared returns old subtask j's files assembled in a directory:
// the first caller assembles them (first is true), the others wait for it.
func (c *checkpointer) assembleShared(ctx context.Context, oc *OpContext, j int, st storage.SubtaskState, users int) (a *assembly, first bool, err error) {
	key := oc.UID + "\x00" + strconv.Itoa(j)
	c.assemblyMu.Lock()
	if c.assemblies == nil {
		c.assemblies = map[string]*assembly{}
	}
	a, ok := c.assemblies[key]
	if !ok {
		a = &assembly{done: make(chan struct{}), users: users,
			dir: filepath.Join(oc.task.stateDir, "restore", storage.CheckpointDir(c.restored.CheckpointID), safeName(oc.UID), fmt.Sprint("old-", j))}
		c.assemblies[key] = a
	}
	c.assemblyMu.Unlock()
	if !ok {
		a.linked, a.downloaded, a.err = c.assemble(ctx, oc.UID, j, st.Files, a.dir)
		close(a.done)
		return a, true, a.err
	}
	select {
	case <-a.done:
		return a, false, a.err
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// releaseAssembly says a new subtask is done with old subtask j's
// directory; the last one removes it.
func (c *checkpointer) releaseAssembly(uid string, j int) {
	key := uid + "\x00" + strconv.Itoa(j)
	c.assemblyMu.Lock()
	defer c.assemblyMu.Unlock()
	a, ok := c.assemblies[key]
	if !ok {
		return
	}
	if a.users--; a.users <= 0 {
		<-a.done
		os.RemoveAll(a.dir)
		delete(c.assemblies, key)
	}
}

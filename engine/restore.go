package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/internal/failpoint"
	"github.com/weirstream/weir/statebackend"
	"github.com/weirstream/weir/storage"
)

// newCheckpointer chooses what the run restores and prepares the driver of
// its checkpoints.
func newCheckpointer(ctx context.Context, p *Plan, cfg *Config, fail func(error)) (_ *checkpointer, err error) {
	cc := *cfg.Checkpoint
	if cc.Store == nil {
		return nil, errors.New("engine: checkpoints without a store")
	}
	if cc.Retain == 0 {
		cc.Retain = DefaultRetain
	}
	if cc.MaxHeldBytes == 0 {
		cc.MaxHeldBytes = DefaultMaxHeldBytes
	}
	c := &checkpointer{
		cfg:          cc,
		job:          cfg.Job,
		maxPar:       cfg.MaxParallelism,
		store:        cc.Store,
		restoreStore: cc.Store,
		log:          cfg.Logger,
		start:        time.Now(),
		localRoot:    filepath.Join(cfg.StateDir, "checkpoints"),
		injects:      map[checkpoint.TaskID]chan injection{},
		requests:     make(chan ckRequest),
		status:       cfg.Status,
		traces:       map[uint64]ckTrace{},
		tracer:       newTracer(cfg.TracerProvider),
		restoreMap:   map[string][]storage.SubtaskState{},
		events:       make(chan ckptEvent, 256),
		done:         make(chan struct{}),
		finalDone:    make(chan struct{}),
		fail:         fail,
		inFlight:     map[uint64]*CheckpointStats{},
		started:      map[uint64]time.Time{},
	}
	ids, err := storage.ListCheckpoints(ctx, c.store)
	if err != nil {
		return nil, fmt.Errorf("engine: list checkpoints: %w", err)
	}
	var lastID uint64
	if len(ids) > 0 {
		lastID = ids[len(ids)-1]
	}
	// A process killed while uploading leaves a local snapshot directory
	// of an id that storage may not show: never reuse it either.
	if entries, err := os.ReadDir(c.localRoot); err == nil {
		for _, e := range entries {
			if id, ok := storage.ParseCheckpointDir(e.Name()); ok {
				lastID = max(lastID, id)
			}
		}
	}
	var rspan trace.Span
	c.recovery, rspan = c.tracer.Start(context.Background(), spanRecovery, trace.WithAttributes(attrJob.String(cfg.Job)))
	var once sync.Once
	c.endRecovery = func(failed error) {
		once.Do(func() {
			if c.restored != nil {
				rspan.SetAttributes(attrCheckpoint.Int64(int64(c.restored.CheckpointID)))
			}
			switch {
			case failed != nil:
				endSpan(rspan, failed)
			case c.restored != nil:
				rspan.SetAttributes(attrOutcome.String("restored"))
				rspan.End()
			default:
				rspan.SetAttributes(attrOutcome.String("fresh start"))
				rspan.End()
			}
		})
	}
	_, choose := c.tracer.Start(c.recovery, spanChoose, trace.WithAttributes(attribute.String("weir.restore", fmt.Sprint(cc.Restore.Mode))))
	err = c.choose(ctx, cc)
	if c.restored != nil {
		choose.SetAttributes(attrCheckpoint.Int64(int64(c.restored.CheckpointID)))
	}
	endSpan(choose, err)
	defer func() {
		if err != nil {
			endSpan(rspan, err)
		}
	}()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.localRoot, 0o755); err != nil {
		return nil, fmt.Errorf("engine: local checkpoint directory: %w", err)
	}
	var restoredID uint64
	if m := c.restored; m != nil {
		restoredID = m.CheckpointID
		if err := c.checkRestore(p, m); err != nil {
			return nil, err
		}
		if c.restoreStore == c.store {
			c.retained = retainedAtStart(ctx, c.store, ids, m, cc.Retain)
		}
		c.log.Info("restoring checkpoint", "checkpoint", m.CheckpointID, "created", time.UnixMilli(m.CreatedUnixMs).UTC().Format(time.RFC3339))
	}
	if c.retained == nil {
		// A fresh start (--restore none) or a restore from another store
		// keeps the store's newest checkpoints until newer ones replace
		// them.
		c.retained = retainedAtStart(ctx, c.store, ids, nil, cc.Retain)
	}
	// Local snapshots stay until this run completes a checkpoint: the
	// restore may link files from any of them.

	var tasks, sources []checkpoint.TaskID
	for _, n := range p.Graph.Nodes {
		for i := 0; i < p.Parallelism[n.ID]; i++ {
			t := checkpoint.TaskID{Vertex: n.UID, Subtask: i}
			tasks = append(tasks, t)
			if n.impl.source() {
				sources = append(sources, t)
				c.injects[t] = make(chan injection, 16)
			}
		}
	}
	c.coord, err = checkpoint.New[stateHandle](checkpoint.Config{
		Policy:   cc.Policy,
		Tasks:    tasks,
		Sources:  sources,
		Restored: checkpoint.ID(restoredID),
		LastID:   checkpoint.ID(lastID),
	}, c.now())
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return c, nil
}

// choose decides what the run restores (c.restored, c.restoreStore).
func (c *checkpointer) choose(ctx context.Context, cc CheckpointConfig) error {
	switch cc.Restore.Mode {
	case RestoreLatest:
		start := time.Now()
		d, m, err := storage.FindRestorePoint(ctx, c.store)
		if err != nil {
			return fmt.Errorf("engine: restore: %w; to start from empty state anyway, run with --restore none (checkpoint ids continue after the damaged ones)", err)
		}
		c.log.Debug("chose the checkpoint to restore", "checkpoint", d.ID, "verify", time.Since(start))
		for _, s := range d.Skipped {
			c.log.Warn("passing over a checkpoint that cannot be restored", "checkpoint", s.ID, "state", s.State.String(), "problems", problems(s.Problems))
		}
		c.restored = m
	case RestoreID:
		if cc.Restore.From != nil {
			c.restoreStore = cc.Restore.From
		}
		cand, m, err := storage.Inspect(ctx, c.restoreStore, cc.Restore.ID)
		if err != nil {
			return fmt.Errorf("engine: restore checkpoint %d: %w", cc.Restore.ID, err)
		}
		if cand.State != storage.ManifestOK {
			return fmt.Errorf("engine: restore checkpoint %d: %s: %s", cc.Restore.ID, cand.State, problems(cand.Problems))
		}
		c.restored = m
	case RestoreNone:
	}
	return nil
}

// checkRestore checks that the checkpoint fits the job: same key groups,
// every operator with state still there at the same parallelism.
func (c *checkpointer) checkRestore(p *Plan, m *storage.Manifest) error {
	for _, op := range CheckCompatibility(p, c.maxPar, m) {
		if op.Fails(c.cfg.AllowUnclaimedState) {
			return fmt.Errorf("engine: checkpoint %d: operator %q: %s: %s (JOB verify --from PATH checks a checkpoint against the job)", m.CheckpointID, op.UID, op.Verdict, op.Reason)
		}
		if op.Verdict == Missing && op.State {
			c.log.Warn("dropping state that no operator claims (--allow-unclaimed-state)", "checkpoint", m.CheckpointID, "operator", op.UID)
		}
	}
	byUID := map[string]*Node{}
	for _, n := range p.Graph.Nodes {
		byUID[n.UID] = n
	}
	for _, op := range m.Operators {
		if n, ok := byUID[op.UID]; ok {
			c.restoreMap[op.UID] = op.Subtasks
			if q := p.Parallelism[n.ID]; len(op.Subtasks) != q && hasState(op) {
				c.log.Info("rescaling operator", "checkpoint", m.CheckpointID, "operator", op.UID, "from", len(op.Subtasks), "to", q)
			}
		}
	}
	return nil
}

func hasState(op storage.OperatorState) bool {
	for _, st := range op.Subtasks {
		if len(st.Files) > 0 || len(st.SourcePosition) > 0 || len(st.PendingCommit) > 0 {
			return true
		}
	}
	return false
}

// retainedAtStart returns the manifests retention keeps at start, oldest
// first: the restored one (if any) and the newest valid ones before it, up
// to n.
func retainedAtStart(ctx context.Context, store storage.BlobStore, ids []uint64, restored *storage.Manifest, n int) []*storage.Manifest {
	var out []*storage.Manifest
	if restored != nil {
		out = append(out, restored)
	}
	for i := len(ids) - 1; i >= 0 && len(out) < n; i-- {
		if restored != nil && ids[i] >= restored.CheckpointID {
			continue
		}
		if m, err := storage.ReadManifest(ctx, store, ids[i]); err == nil {
			out = append(out, m)
		}
	}
	slices.Reverse(out)
	return out
}

func problems(ps []storage.Problem) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, "; ")
}

// subtaskState returns what the restored checkpoint holds for one operator
// subtask when the operator runs at the parallelism it was checkpointed at,
// or nil.
func (c *checkpointer) subtaskState(uid string, subtask, parallelism int) *storage.SubtaskState {
	if c == nil {
		return nil
	}
	sts := c.restoreMap[uid]
	if subtask >= len(sts) || len(sts) != parallelism {
		return nil
	}
	return &sts[subtask]
}

// rescaledState returns every subtask's state of an operator checkpointed at
// another parallelism than parallelism, or nil.
func (c *checkpointer) rescaledState(uid string, parallelism int) []storage.SubtaskState {
	if c == nil {
		return nil
	}
	if sts := c.restoreMap[uid]; len(sts) > 0 && len(sts) != parallelism {
		return sts
	}
	return nil
}

// restoreKeyed opens the keyed state of an operator subtask from the
// restored checkpoint into dir. Its sources are the old subtasks whose key
// groups overlap the subtask's: itself at the same parallelism, or after a
// rescale (see rescale.go) those that held its key groups. Each one's
// files are assembled into a directory once for all the subtasks that
// need it: hard-linked from local snapshot directories where a file with
// the same name, size and CRC32C is there (local recovery: after a restart
// on the same machine usually all of them), else downloaded. The state then
// opens with statebackend.OpenFromCheckpoint (its own, continuing its
// change-log chain) or statebackend.OpenRescaled.
func (c *checkpointer) restoreKeyed(ctx context.Context, oc *OpContext, dir string, opts statebackend.Options) (*statebackend.Backend, error) {
	id := c.restored.CheckpointID
	want := opts.KeyGroups
	olds := c.restoreMap[oc.UID]
	start := time.Now()
	attrs := append(opAttrs(oc), attrCheckpoint.Int64(int64(id)))
	_, dspan := c.tracer.Start(c.recovery, spanDownload, trace.WithAttributes(attrs...))
	var (
		dirs               []string
		used               []int // old subtask of each of dirs
		files, linked, got int
		bytes              int64
	)
	defer func() {
		for _, j := range used {
			c.releaseAssembly(oc.UID, j)
		}
	}()
	for j, st := range olds {
		kg := st.KeyGroups
		if len(st.Files) == 0 || max(kg.Start, want.Start) > min(kg.End, want.End) {
			continue
		}
		a, first, err := c.assembleShared(ctx, oc, j, st, overlapping(oc.MaxParallelism, oc.Parallelism, kg))
		used = append(used, j)
		if err != nil {
			endSpan(dspan, err)
			return nil, fmt.Errorf("restore checkpoint %d (subtask %d of %d): %w", id, j, len(olds), err)
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
		attribute.Int("weir.restored_parallelism", len(olds)))
	assembled := time.Now()
	failpoint.Hit("restore")
	_, ospan := c.tracer.Start(c.recovery, spanOpenState, trace.WithAttributes(attrs...))
	var (
		b     *statebackend.Backend
		stats statebackend.RescaleStats
		err   error
	)
	if oc.rescaled == nil {
		b, err = statebackend.OpenFromCheckpoint(dir, dirs[0], opts)
		stats.Primary = dirs[0]
	} else {
		b, stats, err = statebackend.OpenRescaled(dir, dirs, opts)
	}
	endSpan(ospan, err, attribute.Int64("weir.keys_copied", stats.Copied))
	if err != nil {
		return nil, fmt.Errorf("restore checkpoint %d: %w", id, err)
	}
	for i, d := range dirs {
		if d == stats.Primary {
			// The files keep their names in dir; a rescaled subtask's
			// next checkpoint is a new base, mostly of the primary's
			// tables, which storage has.
			oc.uploader.prime(olds[used[i]].Files)
		}
	}
	if oc.rescaled == nil {
		oc.Logger.Debug("restored keyed state", "checkpoint", id, "files", files, "local", linked, "downloaded", got,
			"assemble", assembled.Sub(start), "open_and_replay", time.Since(assembled))
		return b, nil
	}
	oc.Logger.Info("restored rescaled keyed state", "checkpoint", id, "from_parallelism", len(olds), "key_groups", want.String(),
		"old_subtasks", used, "bytes", bytes, "local", linked, "downloaded", got, "excised", stats.Excised, "keys_copied", stats.Copied,
		"assemble", assembled.Sub(start), "open", time.Since(assembled))
	return b, nil
}

// assemble makes dir hold the files listed: hard links to local snapshot
// files of this subtask (the restored checkpoint's own directory first)
// with the same name, size and CRC32C, downloads for the others.
func (c *checkpointer) assemble(ctx context.Context, uid string, subtask int, files []storage.StateFile, dir string) (linked, downloaded int, err error) {
	if err := os.RemoveAll(dir); err != nil {
		return 0, 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	own := c.localDir(c.restored.CheckpointID, uid, subtask)
	locals := []string{own}
	if entries, err := os.ReadDir(c.localRoot); err == nil {
		for _, e := range entries {
			if _, ok := storage.ParseCheckpointDir(e.Name()); ok {
				if d := filepath.Join(c.localRoot, e.Name(), safeName(uid), fmt.Sprint(subtask)); d != own {
					locals = append(locals, d)
				}
			}
		}
	}
	var fetch []storage.StateFile
	var paths []string
	for _, f := range files {
		dst := filepath.Join(dir, f.LocalName)
		if local := findLocal(ctx, locals, f); local != "" && os.Link(local, dst) == nil {
			linked++
			continue
		}
		fetch = append(fetch, f)
		paths = append(paths, dst)
	}
	if _, err := storage.Download(ctx, c.restoreStore, fetch, paths, 0); err != nil {
		return linked, 0, err
	}
	return linked, len(fetch), nil
}

// findLocal returns a file in one of dirs with f's name, size and CRC32C.
func findLocal(ctx context.Context, dirs []string, f storage.StateFile) string {
	for _, d := range dirs {
		path := filepath.Join(d, f.LocalName)
		if fi, err := os.Stat(path); err != nil || fi.Size() != f.Size {
			continue
		}
		file, err := os.Open(path)
		if err != nil {
			continue
		}
		size, crc, err := storage.ChecksumOf(ctx, file)
		file.Close()
		if err == nil && size == f.Size && crc == f.CRC32C {
			return path
		}
	}
	return ""
}

// assembly is a checkpointed subtask's files assembled into dir for the
// subtasks (users) of the restoring operator whose key groups overlap its
// own: itself, or after a rescale one or more new subtasks.
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
			dir: filepath.Join(oc.task.stateDir, "restore", storage.CheckpointDir(c.restored.CheckpointID), safeName(oc.UID), fmt.Sprint(j))}
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

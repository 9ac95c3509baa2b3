package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/weirstream/weir/barrier"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/internal/failpoint"
	"github.com/weirstream/weir/statebackend"
	"github.com/weirstream/weir/storage"
)

// CheckpointConfig turns on checkpoints (see docs/architecture.md,
// "Checkpoints").
type CheckpointConfig struct {
	// Store holds the checkpoints.
	Store storage.BlobStore
	// Policy says when checkpoints start and when they fail.
	Policy checkpoint.Policy
	// Retain is how many completed checkpoints are kept; 0 means
	// DefaultRetain.
	Retain int
	// Restore says what the job starts from.
	Restore Restore
	// MaxHeldBytes bounds the state writes a task holds back while its
	// snapshot is persisted; above it the task waits for the snapshot
	// before it reads more input. 0 means DefaultMaxHeldBytes.
	MaxHeldBytes int
	// OnComplete, if set, is called on the driver goroutine with the
	// statistics of every completed checkpoint. It must return quickly.
	OnComplete func(CheckpointStats)
	// SavepointStore, if set, receives savepoints: a Savepoint checkpoint
	// (requested) and, with SavepointOnFinal, the final checkpoint of a
	// stop, each copied whole (storage.CopyCheckpoint) so that it does not
	// depend on Store. weir never deletes anything in it. SavepointDir
	// names it in logs and answers.
	SavepointStore   storage.BlobStore
	SavepointDir     string
	SavepointOnFinal bool
	// AllowUnclaimedState restores a checkpoint that holds state of an
	// operator the job no longer has, dropping that state; without it such
	// a restore fails.
	AllowUnclaimedState bool
	// OrphanGrace is how old an object no checkpoint references (left by
	// a process killed while uploading) must be before the sweep at start
	// deletes it: younger ones may belong to another process still
	// writing. 0 means DefaultOrphanGrace; a negative value sweeps every
	// orphan.
	OrphanGrace time.Duration
	// MaxRestartDelay is the longest the job waits before it restarts
	// after a failure (informational: sinks whose transactions time out
	// check that a restart comes in time).
	MaxRestartDelay time.Duration
}

// CheckpointStats describes a completed checkpoint.
type CheckpointStats struct {
	ID       uint64
	Kind     checkpoint.Kind
	Duration time.Duration // from trigger to manifest written
	// SyncMax is the longest synchronous part of any operator subtask: the
	// time a barrier was held while the subtask froze its state.
	SyncMax  time.Duration
	Uploaded int64 // bytes uploaded for this checkpoint
	Size     int64 // bytes of all the files it references
	Files    int

	triggered time.Time
}

// Checkpoint defaults.
const (
	DefaultRetain       = 3
	DefaultMaxHeldBytes = 64 << 20
	DefaultOrphanGrace  = time.Hour
)

// RestoreMode says what a job with checkpoints starts from.
type RestoreMode uint8

const (
	// RestoreLatest restores the newest valid checkpoint and falls back to
	// older ones when it is damaged; with no checkpoint it starts fresh.
	RestoreLatest RestoreMode = iota
	// RestoreNone starts from empty state; checkpoint ids continue after
	// those in the store.
	RestoreNone
	// RestoreID restores checkpoint Restore.ID and fails when it is damaged.
	RestoreID
)

func (m RestoreMode) String() string {
	switch m {
	case RestoreLatest:
		return "latest"
	case RestoreNone:
		return "none"
	case RestoreID:
		return "id"
	}
	return fmt.Sprintf("restore-mode(%d)", uint8(m))
}

// Restore is the restore choice of a run.
type Restore struct {
	Mode RestoreMode
	ID   uint64 // RestoreID only
	// From is the store that holds checkpoint ID when it is not Store
	// (RestoreID only; nil: Store).
	From storage.BlobStore
}

// stateHandle is what one operator subtask acks a checkpoint with.
type stateHandle struct {
	KeyGroups   storage.KeyGroupRange
	Files       []storage.StateFile
	Descriptors []storage.StateDescriptor
	Position    []byte
	Pending     []byte
	Uploaded    int64         // bytes uploaded for this checkpoint
	Sync        time.Duration // the synchronous part
}

type eventKind uint8

const (
	evAck eventKind = iota
	evDecline
	evFinished
	evManifest
	evSavepoint
)

type ckptEvent struct {
	kind eventKind
	task checkpoint.TaskID
	id   uint64
	h    stateHandle
	err  error
	m    *storage.Manifest // evManifest
	sent time.Time         // evAck, evDecline: when the subtask sent it
}

// ckRequest asks the driver for a checkpoint of kind.
type ckRequest struct {
	kind  checkpoint.Kind
	reply chan RequestResult
}

// request asks the driver for a checkpoint and waits for its answer.
func (c *checkpointer) request(kind checkpoint.Kind) (RequestResult, error) {
	r := ckRequest{kind: kind, reply: make(chan RequestResult, 1)}
	select {
	case c.requests <- r:
	case <-c.done:
		return RequestResult{}, ErrNoCheckpoints
	}
	select {
	case res := <-r.reply:
		return res, nil
	case <-c.done:
		return RequestResult{}, ErrNoCheckpoints
	}
}

// injection asks a source subtask to inject the barrier of checkpoint id.
type injection struct {
	id    uint64
	trace barrier.TraceContext
}

// ckTrace is the coordinator's span of one checkpoint.
type ckTrace struct {
	ctx  context.Context
	span trace.Span
}

// checkpointer drives the checkpoints of one run: a goroutine owns the pure
// coordinator and carries out its actions; tasks and snapshot goroutines
// report to it through events.
type checkpointer struct {
	cfg    CheckpointConfig
	job    string
	maxPar int
	store  storage.BlobStore
	// restoreStore holds the restored checkpoint: store, or another one
	// (Restore.From).
	restoreStore storage.BlobStore
	log          *slog.Logger
	start        time.Time
	coord        *checkpoint.Coordinator[stateHandle]
	localRoot    string // local checkpoint directories: STATE_DIR/checkpoints

	tracer   trace.Tracer
	metrics  *runMetrics // set by Run
	status   *Status     // nil: none
	requests chan ckRequest
	// recovery is the span of this run's recovery, ended once every task
	// opened (endRecovery).
	recovery    context.Context
	endRecovery func(failed error)

	// Set up before the run starts, read-only afterwards.
	injects    map[checkpoint.TaskID]chan injection
	tasks      []*taskCkpt
	restored   *storage.Manifest
	restoreMap map[string][]storage.SubtaskState // by operator UID
	// assemblies are the old subtasks' files assembled once for all the
	// new subtasks of a rescaled operator that need them (rescale.go).
	assemblyMu sync.Mutex
	assemblies map[string]*assembly

	events    chan ckptEvent
	done      chan struct{} // closed when the driver returns
	finalDone chan struct{} // closed when the final checkpoint completed
	fail      func(error)
	wg        sync.WaitGroup // snapshot and manifest goroutines

	// Driver goroutine only.
	retained []*storage.Manifest          // oldest first
	written  *storage.Manifest            // the newest manifest written
	pinned   map[uint64]*storage.Manifest // savepoints being copied: kept from garbage collection
	dropped  []*storage.Manifest          // dropped from retained, not yet collected
	inFlight map[uint64]*CheckpointStats  // by id, from trigger to completion or abort
	traces   map[uint64]ckTrace           // by id, from trigger to completion or abort
	started  map[uint64]time.Time         // trigger time of the checkpoints in inFlight
	lastFail string                       // the last abort, for FailJob's error
}

func (c *checkpointer) now() time.Duration { return time.Since(c.start) }

// send delivers an event to the driver, or drops it once the driver has
// stopped (the run is over; nothing more is decided).
func (c *checkpointer) send(ev ckptEvent) {
	select {
	case c.events <- ev:
	case <-c.done:
	}
}

func (c *checkpointer) ack(task checkpoint.TaskID, id uint64, h stateHandle) {
	c.send(ckptEvent{kind: evAck, task: task, id: id, h: h, sent: time.Now()})
}

func (c *checkpointer) decline(task checkpoint.TaskID, id uint64, err error) {
	c.send(ckptEvent{kind: evDecline, task: task, id: id, err: err, sent: time.Now()})
}

// drive runs the coordinator until ctx is done.
func (c *checkpointer) drive(ctx context.Context) {
	defer close(c.done)
	every := c.cfg.Policy.Interval / 10
	every = min(max(every, 10*time.Millisecond), time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	c.sweep(ctx)
	for {
		select {
		case <-ctx.Done():
			c.apply(ctx, c.coord.Shutdown(c.now()))
			for id := range c.traces {
				c.endTrace(id, errors.New("the run ended"))
			}
			return
		case <-tick.C:
			c.apply(ctx, c.coord.Tick(c.now()))
		case r := <-c.requests:
			out, acts := c.coord.Request(c.now(), r.kind)
			res := RequestResult{Outcome: out.String()}
			for _, a := range acts {
				switch a := a.(type) {
				case checkpoint.InjectBarrier:
					res.Checkpoint = uint64(a.ID)
				case checkpoint.RequestRejected:
					res.Reason = a.Reason.String()
				}
			}
			c.apply(ctx, acts)
			r.reply <- res
		case ev := <-c.events:
			c.handle(ctx, ev)
		}
	}
}

func (c *checkpointer) handle(ctx context.Context, ev ckptEvent) {
	now := c.now()
	switch ev.kind {
	case evAck:
		out, acts := c.coord.Ack(now, ev.task, checkpoint.ID(ev.id), ev.h)
		if st := c.inFlight[ev.id]; out == checkpoint.OK && st != nil {
			st.Uploaded += ev.h.Uploaded
			st.SyncMax = max(st.SyncMax, ev.h.Sync)
		}
		c.recordAck(spanAck, ev, out.String())
		c.apply(ctx, acts)
	case evDecline:
		c.log.Warn("checkpoint declined", "checkpoint", ev.id, "task", ev.task.String(), "err", ev.err)
		out, acts := c.coord.Decline(now, ev.task, checkpoint.ID(ev.id), ev.err.Error())
		c.recordAck(spanDecline, ev, out.String())
		c.apply(ctx, acts)
	case evFinished:
		_, acts := c.coord.SourceFinished(now, ev.task)
		c.apply(ctx, acts)
	case evManifest:
		if ev.err != nil {
			if errors.Is(ev.err, storage.ErrExists) {
				c.fail(fmt.Errorf("checkpoint %d: %w: another run of the job wrote it; stopping", ev.id, ev.err))
				return
			}
			_, acts := c.coord.ManifestFailed(now, checkpoint.ID(ev.id), ev.err.Error())
			c.apply(ctx, acts)
			return
		}
		if st := c.inFlight[ev.id]; st != nil {
			for _, op := range ev.m.Operators {
				for _, sub := range op.Subtasks {
					for _, f := range sub.Files {
						st.Size += f.Size
						st.Files++
					}
				}
			}
		}
		c.retain(ctx, ev.m)
		c.written = ev.m
		_, acts := c.coord.ManifestWritten(now, checkpoint.ID(ev.id))
		c.apply(ctx, acts)
	case evSavepoint:
		delete(c.pinned, ev.id)
		path := savepointPath(c.cfg.SavepointDir, ev.id)
		c.status.savepointDone(ev.id, path, ev.err)
		if ev.err != nil {
			c.log.Error("savepoint failed", "checkpoint", ev.id, "dir", c.cfg.SavepointDir, "err", ev.err)
			return
		}
		c.log.Info("savepoint complete", "checkpoint", ev.id, "restore_with", "--restore "+path)
	}
}

// savepointPath is what --restore takes to restore savepoint id.
func savepointPath(dir string, id uint64) string {
	return strings.TrimRight(dir, "/") + "/" + strings.TrimSuffix(storage.CheckpointDir(id), "/")
}

// savepoint copies checkpoint m into the savepoint store: the final one
// at once (the job ends when it is done; a failure fails the job), a
// requested one on a goroutine while garbage collection leaves m alone.
func (c *checkpointer) savepoint(ctx context.Context, m *storage.Manifest, final bool) {
	if final {
		start := time.Now()
		n, err := storage.CopyCheckpoint(ctx, c.store, c.cfg.SavepointStore, m, 0)
		if err != nil {
			c.fail(fmt.Errorf("engine: savepoint of checkpoint %d into %s: %w", m.CheckpointID, c.cfg.SavepointDir, err))
			return
		}
		path := savepointPath(c.cfg.SavepointDir, m.CheckpointID)
		c.log.Info("savepoint complete", "checkpoint", m.CheckpointID, "bytes", n, "took", time.Since(start).Round(time.Millisecond),
			"restore_with", "--restore "+path)
		c.status.savepointDone(m.CheckpointID, path, nil)
		return
	}
	if c.pinned == nil {
		c.pinned = map[uint64]*storage.Manifest{}
	}
	c.pinned[m.CheckpointID] = m
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_, err := storage.CopyCheckpoint(ctx, c.store, c.cfg.SavepointStore, m, 0)
		c.send(ckptEvent{kind: evSavepoint, id: m.CheckpointID, err: err})
	}()
}

func (c *checkpointer) apply(ctx context.Context, acts []checkpoint.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case checkpoint.InjectBarrier:
			id := uint64(a.ID)
			c.inFlight[id] = &CheckpointStats{ID: id, Kind: a.Kind}
			c.started[id] = time.Now()
			rootCtx, root := c.tracer.Start(context.Background(), spanCheckpoint, trace.WithAttributes(
				attrJob.String(c.job), attrCheckpoint.Int64(int64(id)), attrKind.String(a.Kind.String())))
			c.traces[id] = ckTrace{rootCtx, root}
			_, trig := c.tracer.Start(rootCtx, spanTrigger, trace.WithAttributes(attrCheckpoint.Int64(int64(id))))
			inj := injection{id: id, trace: toBarrier(root.SpanContext())}
			var full []checkpoint.TaskID
			for task, ch := range c.injects {
				select {
				case ch <- inj:
				default:
					full = append(full, task)
				}
			}
			trig.SetAttributes(attribute.Int("weir.sources", len(c.injects)), attribute.Int("weir.sources_full", len(full)))
			trig.End()
			for _, task := range full {
				// The source has not taken the earlier barriers yet:
				// decline rather than block the driver.
				c.log.Warn("checkpoint declined", "checkpoint", id, "task", task.String(), "err", "source has too many barriers queued")
				_, acts := c.coord.Decline(c.now(), task, a.ID, "source has too many barriers queued")
				c.apply(ctx, acts)
			}
		case checkpoint.WriteManifest[stateHandle]:
			m := c.manifest(a)
			_, span := c.tracer.Start(c.traces[m.CheckpointID].ctx, spanManifest, trace.WithAttributes(attrCheckpoint.Int64(int64(m.CheckpointID))))
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				failpoint.Hit("before-manifest")
				err := storage.WriteManifest(ctx, c.store, m)
				endSpan(span, err)
				if err == nil {
					failpoint.Hit("after-manifest")
				}
				c.send(ckptEvent{kind: evManifest, id: m.CheckpointID, err: err, m: m})
			}()
		case checkpoint.NotifyComplete:
			id := uint64(a.ID)
			st := c.end(id)
			c.log.Info("checkpoint complete", "checkpoint", id, "kind", a.Kind.String(),
				"duration", st.Duration.Round(time.Millisecond), "sync_max", st.SyncMax,
				"uploaded_bytes", st.Uploaded, "size_bytes", st.Size, "files", st.Files)
			if m := c.metrics; m != nil {
				kind := attrKind.String(a.Kind.String())
				m.ckDuration.Record(context.Background(), st.Duration.Seconds(), metric.WithAttributes(m.job, kind))
				m.ckSize.Record(context.Background(), st.Size, metric.WithAttributes(m.job, kind))
				m.ckUploaded.Add(context.Background(), st.Uploaded, metric.WithAttributes(m.job))
				m.ckCount.Add(context.Background(), 1, metric.WithAttributes(m.job, attrOutcome.String("completed")))
				m.lastCompleted.Store(time.Now().UnixNano())
			}
			if c.status != nil {
				c.status.addCheckpoint(CheckpointRecord{ID: id, Kind: a.Kind.String(), Status: "completed", Triggered: st.triggered,
					DurationMs: ms(st.Duration), SizeBytes: st.Size, UploadedBytes: st.Uploaded, Files: st.Files, SyncMaxMs: ms(st.SyncMax)})
			}
			if c.cfg.OnComplete != nil {
				c.cfg.OnComplete(st)
			}
			tr := c.traces[id]
			_, notify := c.tracer.Start(tr.ctx, spanNotify, trace.WithAttributes(attrCheckpoint.Int64(int64(id)), attribute.Int("weir.tasks", len(c.tasks))))
			for _, t := range c.tasks {
				t.notifyComplete(id)
			}
			notify.End()
			c.endTrace(id, nil, attrBytes.Int64(st.Uploaded), attribute.Int64("weir.size_bytes", st.Size), attrFiles.Int(st.Files),
				attribute.Float64("weir.sync_max_ms", float64(st.SyncMax.Microseconds())/1000))
			c.removeLocal(func(other uint64) bool { return other < id })
			if m := c.written; c.cfg.SavepointStore != nil && m != nil && m.CheckpointID == id &&
				(a.Kind == checkpoint.Savepoint || a.Kind == checkpoint.Final && (c.cfg.SavepointOnFinal || c.status.savepointOnFinal())) {
				c.savepoint(ctx, m, a.Kind == checkpoint.Final)
			}
			if a.Kind == checkpoint.Final {
				close(c.finalDone)
			}
		case checkpoint.Abort:
			id := uint64(a.ID)
			c.log.Warn("checkpoint aborted", "checkpoint", id, "kind", a.Kind.String(), "reason", a.Reason.String(), "detail", a.Detail)
			c.lastFail = fmt.Sprintf("checkpoint %d: %s: %s", id, a.Reason, a.Detail)
			st := c.end(id)
			if c.status != nil && !a.Reason.PreFlight() {
				c.status.addCheckpoint(CheckpointRecord{ID: id, Kind: a.Kind.String(), Status: "aborted", Triggered: st.triggered,
					DurationMs: ms(st.Duration), Failure: fmt.Sprintf("%s: %s", a.Reason, a.Detail)})
			}
			c.endTrace(id, fmt.Errorf("%s: %s", a.Reason, a.Detail))
			if m := c.metrics; m != nil {
				m.ckCount.Add(context.Background(), 1, metric.WithAttributes(m.job, attrOutcome.String("aborted"), attrReason.String(a.Reason.String())))
			}
			c.removeLocal(func(other uint64) bool { return other == id })
			if !a.Reason.PreFlight() {
				// Gates still aligning it release their held inputs.
				for _, t := range c.tasks {
					t.notifyAbort(id)
				}
			}
		case checkpoint.RequestRejected:
			c.log.Warn("checkpoint request rejected", "kind", a.Kind.String(), "reason", a.Reason.String())
		case checkpoint.FailJob:
			c.fail(fmt.Errorf("engine: %d consecutive checkpoints failed (see --checkpoint-tolerable-failures); the last: %s", a.Failures, c.lastFail))
		}
	}
}

// recordAck records an ack or decline of a subtask as a span of its
// checkpoint, from when the subtask sent it to when the coordinator took
// it; outcome is the coordinator's verdict.
func (c *checkpointer) recordAck(name string, ev ckptEvent, outcome string) {
	tr, ok := c.traces[ev.id]
	if !ok {
		return
	}
	attrs := []attribute.KeyValue{attrCheckpoint.Int64(int64(ev.id)), attrUID.String(ev.task.Vertex), attrSubtask.Int(ev.task.Subtask), attrOutcome.String(outcome)}
	if ev.kind == evAck {
		attrs = append(attrs, attrBytes.Int64(ev.h.Uploaded), attrFiles.Int(len(ev.h.Files)))
	} else {
		attrs = append(attrs, attrReason.String(ev.err.Error()))
	}
	recordSpan(c.tracer, tr.ctx, name, ev.sent, time.Now(), attrs...)
}

// endTrace ends the span of checkpoint id: completed (err nil) or aborted.
func (c *checkpointer) endTrace(id uint64, err error, attrs ...attribute.KeyValue) {
	tr, ok := c.traces[id]
	if !ok {
		return
	}
	delete(c.traces, id)
	if err != nil {
		tr.span.SetStatus(codes.Error, err.Error())
		attrs = append(attrs, attrOutcome.String("aborted"), attrReason.String(err.Error()))
	} else {
		attrs = append(attrs, attrOutcome.String("completed"))
	}
	tr.span.SetAttributes(attrs...)
	tr.span.End()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// end forgets checkpoint id and returns its statistics.
func (c *checkpointer) end(id uint64) CheckpointStats {
	var st CheckpointStats
	if p := c.inFlight[id]; p != nil {
		st = *p
		st.Duration = time.Since(c.started[id])
		st.triggered = c.started[id]
	}
	delete(c.inFlight, id)
	delete(c.started, id)
	return st
}

// manifest builds the manifest of a checkpoint whose tasks all acked.
func (c *checkpointer) manifest(a checkpoint.WriteManifest[stateHandle]) *storage.Manifest {
	m := &storage.Manifest{
		JobName:        c.job,
		CheckpointID:   uint64(a.ID),
		ParentID:       uint64(a.Parent),
		CreatedUnixMs:  time.Now().UnixMilli(),
		MaxParallelism: c.maxPar,
	}
	byUID := map[string]int{}
	for _, h := range a.Handles {
		i, ok := byUID[h.Task.Vertex]
		if !ok {
			i = len(m.Operators)
			byUID[h.Task.Vertex] = i
			m.Operators = append(m.Operators, storage.OperatorState{UID: h.Task.Vertex})
		}
		op := &m.Operators[i]
		for len(op.Subtasks) <= h.Task.Subtask {
			op.Subtasks = append(op.Subtasks, storage.SubtaskState{})
		}
		op.Subtasks[h.Task.Subtask] = storage.SubtaskState{
			KeyGroups:      h.State.KeyGroups,
			Files:          h.State.Files,
			Descriptors:    h.State.Descriptors,
			SourcePosition: h.State.Position,
			PendingCommit:  h.State.Pending,
		}
	}
	return m
}

// retain adds the newly written manifest m to the retained ones and, when no
// other checkpoint is in flight (one could reuse a shared object that is not
// referenced yet), deletes what no retained checkpoint references. It runs on
// the driver goroutine, so no checkpoint starts meanwhile.
func (c *checkpointer) retain(ctx context.Context, m *storage.Manifest) {
	c.retained = append(c.retained, m)
	if n := max(c.cfg.Retain, 1); len(c.retained) > n {
		c.dropped = append(c.dropped, c.retained[:len(c.retained)-n]...)
		c.retained = c.retained[len(c.retained)-n:]
	}
	for _, p := range c.coord.Status().Pending {
		if uint64(p.ID) != m.CheckpointID {
			return
		}
	}
	// Nothing is in flight, so objects no checkpoint references are
	// garbage however young.
	if c.collect(ctx, "checkpoint retention", c.dropped, -1) {
		c.dropped = nil
	}
}

// sweep runs once before the first checkpoint of a run: it deletes what
// retention would, and orphans older than the grace period, left by a
// process killed while uploading (retention would only delete them once
// a newer checkpoint completes).
func (c *checkpointer) sweep(ctx context.Context) {
	grace := c.cfg.OrphanGrace
	if grace == 0 {
		grace = DefaultOrphanGrace
	}
	ids, err := storage.ListCheckpoints(ctx, c.store)
	if err != nil {
		c.log.Warn("checkpoint sweep: list storage", "err", err)
		return
	}
	retained := map[uint64]bool{}
	for _, m := range c.retained {
		retained[m.CheckpointID] = true
	}
	var known []*storage.Manifest
	for _, id := range ids {
		if retained[id] {
			continue
		}
		m, err := storage.ReadManifest(ctx, c.store, id)
		switch {
		case err == nil:
			known = append(known, m)
		case errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrCorruptManifest), errors.Is(err, storage.ErrUnknownVersion):
			// Never committed, or unreadable: Collect knows what to
			// keep of it.
		default:
			c.log.Warn("checkpoint sweep: read manifest", "checkpoint", id, "err", err)
			return
		}
	}
	if c.collect(ctx, sweepMsg, known, grace) {
		if a, ok := c.store.(storage.UploadAborter); ok {
			n, err := a.AbortUploads(ctx, time.Now().Add(-grace))
			if err != nil {
				c.log.Warn("checkpoint sweep: abort unfinished uploads", "err", err)
			} else if n > 0 {
				c.log.Info("checkpoint sweep: aborted unfinished uploads", "uploads", n, "grace", grace)
			}
		}
	}
}

const sweepMsg = "checkpoint sweep"

// collect deletes what storage.Collect returns for the retained
// checkpoints; known are other manifests (dropped or newer ones). It
// reports whether it deleted all of it.
func (c *checkpointer) collect(ctx context.Context, what string, known []*storage.Manifest, grace time.Duration) bool {
	all, err := c.store.List(ctx, "")
	if err != nil {
		c.log.Warn(what+": list storage", "err", err)
		return false
	}
	keep := append(slices.Clone(c.retained), slices.Collect(maps.Values(c.pinned))...)
	garbage := storage.Collect(all, keep, known, time.Now(), max(grace, 0))
	var bytes int64
	for _, g := range garbage {
		if err := c.store.Delete(ctx, g.Object); err != nil {
			c.log.Warn(what+": delete", "object", g.Object, "err", err)
			return false
		}
		bytes += g.Size
		c.log.Debug(what+": deleted", "object", g.Object, "reason", g.Reason)
	}
	if len(garbage) > 0 {
		level := slog.LevelDebug
		if what == sweepMsg { // rare, and worth knowing
			level = slog.LevelInfo
		}
		c.log.Log(ctx, level, what, "deleted_objects", len(garbage), "deleted_bytes", bytes, "retained", len(c.retained))
	}
	return true
}

// removeLocal removes the local checkpoint directories whose id matches.
func (c *checkpointer) removeLocal(match func(uint64) bool) {
	entries, err := os.ReadDir(c.localRoot)
	if err != nil {
		return
	}
	for _, e := range entries {
		if id, ok := storage.ParseCheckpointDir(e.Name()); ok && match(id) {
			if err := os.RemoveAll(filepath.Join(c.localRoot, e.Name())); err != nil {
				c.log.Warn("remove local checkpoint", "dir", e.Name(), "err", err)
			}
		}
	}
}

// localDir is where subtask's snapshot of checkpoint id is persisted.
func (c *checkpointer) localDir(id uint64, uid string, subtask int) string {
	return filepath.Join(c.localRoot, storage.CheckpointDir(id), safeName(uid), strconv.Itoa(subtask))
}

// taskCkpt is the checkpoint side of one task (goroutine).
type taskCkpt struct {
	c        *checkpointer
	head     checkpoint.TaskID // the task's first operator, for declines
	headName string
	wake     chan struct{} // capacity 1: something for service to do

	mu       sync.Mutex
	complete uint64 // newest completed checkpoint notified
	aborted  uint64 // newest checkpoint the coordinator aborted

	// Task goroutine only.
	abortSeen  uint64
	committed  uint64
	committers []committer
	snaps      []*inflight
	traces     map[uint64]barrier.TraceContext // of checkpoints not yet committed
}

// committer is what an operator does when a checkpoint completes.
type committer struct {
	oc     *OpContext
	span   string // its span's name
	commit func(uint64) error
}

// recordAlignment records the span of an alignment that just ended: from
// the first barrier to the last, with the wait of each input as an event.
func (tc *taskCkpt) recordAlignment(a *alignment, inputs int) {
	end := time.Now()
	_, span := tc.c.tracer.Start(fromBarrier(a.trace), spanAlignment, trace.WithTimestamp(a.start), trace.WithAttributes(
		attrOperator.String(tc.headName), attrUID.String(tc.head.Vertex), attrSubtask.Int(tc.head.Subtask),
		attrCheckpoint.Int64(int64(a.id)), attrInputs.Int(inputs)))
	for _, ar := range a.arrivals {
		span.AddEvent("barrier", trace.WithTimestamp(ar.at), trace.WithAttributes(
			attrInput.Int(ar.input), attrWait.Float64(float64(ar.at.Sub(a.start).Microseconds())/1000)))
	}
	span.End(trace.WithTimestamp(end))
	if s := tc.c.status; s != nil {
		s.noteAlignment(a.id, end.Sub(a.start))
	}
	if m := tc.c.metrics; m != nil && inputs > 1 {
		m.ckAlign.Record(context.Background(), end.Sub(a.start).Seconds(), metric.WithAttributes(m.job, attrUID.String(tc.head.Vertex), attrSubtask.Int(tc.head.Subtask)))
	}
}

// maxTraces bounds the trace contexts a task keeps for commits to come.
const maxTraces = 64

// traceOf records the trace context of checkpoint id as its barrier
// passes, for the spans of its commits. Task goroutine.
func (tc *taskCkpt) traceOf(id uint64, t barrier.TraceContext) {
	if tc.traces == nil {
		tc.traces = map[uint64]barrier.TraceContext{}
	}
	tc.traces[id] = t
	// Failed checkpoints never commit: keep the newest only.
	for old := range tc.traces {
		if old+maxTraces <= id {
			delete(tc.traces, old)
		}
	}
}

type inflight struct {
	b *statebackend.Backend
	s *statebackend.Snapshot
}

func (tc *taskCkpt) signal() {
	select {
	case tc.wake <- struct{}{}:
	default:
	}
}

// notifyComplete runs on the driver: the task's sinks commit id.
func (tc *taskCkpt) notifyComplete(id uint64) { tc.raise(&tc.complete, id) }

// notifyAbort runs on the driver: the task's gate stops aligning id (and
// older checkpoints) and releases the inputs it holds back.
func (tc *taskCkpt) notifyAbort(id uint64) { tc.raise(&tc.aborted, id) }

// raise sets *newest (guarded by mu) to id if id is newer and wakes the task.
func (tc *taskCkpt) raise(newest *uint64, id uint64) {
	tc.mu.Lock()
	*newest = max(*newest, id)
	tc.mu.Unlock()
	tc.signal()
}

// takeAbort returns the newest aborted checkpoint not taken yet. Task
// goroutine.
func (tc *taskCkpt) takeAbort() (uint64, bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.aborted <= tc.abortSeen {
		return 0, false
	}
	tc.abortSeen = tc.aborted
	return tc.aborted, true
}

// service releases persisted snapshots and commits completed checkpoints.
// Task goroutine.
func (tc *taskCkpt) service() error {
	kept := tc.snaps[:0]
	for _, f := range tc.snaps {
		select {
		case <-f.s.Done():
			if err := f.b.Release(f.s); err != nil {
				return err
			}
		default:
			kept = append(kept, f)
		}
	}
	clear(tc.snaps[len(kept):])
	tc.snaps = kept
	tc.mu.Lock()
	id := tc.complete
	tc.mu.Unlock()
	if id > tc.committed {
		parent := fromBarrier(tc.traces[id])
		for _, cm := range tc.committers {
			_, span := tc.c.tracer.Start(parent, cm.span, trace.WithAttributes(append(opAttrs(cm.oc), attrCheckpoint.Int64(int64(id)))...))
			err := cm.commit(id)
			endSpan(span, err)
			if err != nil {
				return err
			}
		}
		tc.committed = id
		for other := range tc.traces {
			if other <= id {
				delete(tc.traces, other)
			}
		}
	}
	return nil
}

// throttle waits for in-flight snapshots whose backend holds more than the
// bound of writes made since its barrier. Task goroutine.
func (tc *taskCkpt) throttle(ctx context.Context) error {
	return tc.waitFor(ctx, func(f *inflight) bool { return f.b.HeldBytes() > tc.c.cfg.MaxHeldBytes })
}

// waitSnapshot waits until backend b has no snapshot in flight. Task
// goroutine.
func (tc *taskCkpt) waitSnapshot(ctx context.Context, b *statebackend.Backend) error {
	return tc.waitFor(ctx, func(f *inflight) bool { return f.b == b })
}

// waitFor waits until the in-flight snapshots that match are persisted,
// then releases them. Task goroutine.
func (tc *taskCkpt) waitFor(ctx context.Context, match func(*inflight) bool) error {
	for _, f := range tc.snaps {
		if !match(f) {
			continue
		}
		select {
		case <-f.s.Done():
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return tc.service()
}

// snapshot takes the synchronous part of checkpoint id for one operator
// subtask, as barrier id passes it: the sink pre-commits, keyed state is
// frozen and persisted and uploaded on another goroutine, which acks.
// Operators with neither ack at once. Task goroutine.
func (tc *taskCkpt) snapshot(oc *OpContext, id uint64, tcx barrier.TraceContext) (err error) {
	task := checkpoint.TaskID{Vertex: oc.UID, Subtask: oc.Index}
	start := time.Now()
	tc.traceOf(id, tcx)
	tr := tc.c.tracer
	attrs := append(opAttrs(oc), attrCheckpoint.Int64(int64(id)))
	_, span := tr.Start(fromBarrier(tcx), spanSnapshot, trace.WithAttributes(attrs...), trace.WithTimestamp(start))
	var declined error // a decline that does not fail the task
	defer func() {
		if err != nil {
			declined = err
		}
		endSpan(span, declined)
	}()
	var (
		h       stateHandle
		durable func() error
	)
	if oc.preCommit != nil {
		p, d, err := oc.preCommit(id)
		if err != nil {
			tc.c.decline(task, id, err)
			return err
		}
		h.Pending, durable = p, d
	}
	b := oc.backend
	if b == nil {
		h.Sync = time.Since(start)
		if durable == nil {
			tc.c.ack(task, id, h)
			return nil
		}
		tc.c.wg.Add(1)
		go func() {
			defer tc.c.wg.Done()
			_, span := tr.Start(fromBarrier(tcx), spanDurable, trace.WithAttributes(attrs...))
			err := durable()
			endSpan(span, err)
			if err != nil {
				tc.c.decline(task, id, err)
				tc.c.fail(err)
				return
			}
			tc.c.ack(task, id, h)
		}()
		return nil
	}
	if durable != nil {
		// Keyed operators do not pre-commit; keep it simple if one does.
		if err := durable(); err != nil {
			tc.c.decline(task, id, err)
			return err
		}
	}
	if err := tc.waitSnapshot(oc.ctx, b); err != nil {
		return err
	}
	s, err := b.Snapshot(id)
	if err != nil {
		declined = err
		tc.c.decline(task, id, err)
		if b.Err() != nil {
			return oc.wrap(err)
		}
		return nil
	}
	tc.snaps = append(tc.snaps, &inflight{b: b, s: s})
	kg := oc.KeyGroups()
	h.KeyGroups = storage.KeyGroupRange{Start: kg.Start, End: kg.End}
	for _, si := range s.States() {
		h.Descriptors = append(h.Descriptors, storage.StateDescriptor{
			Name: si.Name, Kind: si.Kind.String(), KeyCodec: si.KeyFingerprint, ValueCodec: si.ValueFingerprint,
		})
	}
	h.Sync = time.Since(start)
	up := oc.uploader
	ctx := oc.ctx
	tc.c.wg.Add(1)
	go func() {
		defer tc.c.wg.Done()
		dir := tc.c.localDir(id, oc.UID, oc.Index)
		var files *statebackend.SnapshotFiles
		pctx := withTrace(ctx, tcx)
		_, persist := tr.Start(pctx, spanPersist, trace.WithAttributes(attrs...))
		err := os.MkdirAll(filepath.Dir(dir), 0o755)
		if err == nil {
			files, err = s.Persist(ctx, dir)
		}
		if files != nil {
			persist.SetAttributes(attrFiles.Int(len(files.Files)))
		}
		endSpan(persist, err)
		tc.signal() // the task releases the snapshot
		if err != nil {
			tc.c.decline(task, id, fmt.Errorf("persist state: %w", err))
			return
		}
		uctx, upload := tr.Start(pctx, spanUpload, trace.WithAttributes(attrs...))
		h.Files, h.Uploaded, err = up.upload(uctx, tr, tc.c.store, id, task, files)
		endSpan(upload, err, attrBytes.Int64(h.Uploaded), attrFiles.Int(len(h.Files)))
		if err != nil {
			tc.c.decline(task, id, fmt.Errorf("upload state: %w", err))
			return
		}
		tc.c.ack(task, id, h)
	}()
	return nil
}

// uploader uploads the snapshots of one operator subtask. It remembers the
// stored object of every shared file (local name and size identify an
// immutable table of one Pebble instance), so a table is hashed once and
// uploaded once.
type uploader struct {
	mu     sync.Mutex
	shared map[string]storage.StateFile // by local name
}

func newUploader() *uploader { return &uploader{shared: map[string]storage.StateFile{}} }

// prime records the files of a restored subtask: its state directory is
// made of them, under the same local names.
func (u *uploader) prime(files []storage.StateFile) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, f := range files {
		if o, err := storage.ParseObject(f.Object); err == nil && o.Kind == storage.KindShared {
			u.shared[f.LocalName] = f
		}
	}
}

func (u *uploader) upload(ctx context.Context, tr trace.Tracer, store storage.BlobStore, id uint64, task checkpoint.TaskID, files *statebackend.SnapshotFiles) ([]storage.StateFile, int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var (
		out      []storage.StateFile
		uploaded int64
	)
	for _, f := range files.Files {
		path := filepath.Join(files.Dir, f.Name)
		if f.Kind == statebackend.FileShared {
			sf, ok := u.shared[f.Name]
			if !ok || sf.Size != f.Size {
				d, err := digestFile(ctx, path)
				if err != nil {
					return nil, 0, err
				}
				sf = storage.StateFile{LocalName: f.Name, Object: storage.SharedObject(d), Size: d.Size, CRC32C: d.CRC32C}
			}
			// Objects are checked every time: retention may have deleted
			// an object that no retained checkpoint referenced.
			if size, err := store.Stat(ctx, sf.Object); err != nil || size != sf.Size {
				failpoint.Hit("upload-sst")
				if err := putFile(ctx, tr, store, sf.Object, path, sf.Size); err != nil {
					return nil, 0, err
				}
				uploaded += sf.Size
			}
			u.shared[f.Name] = sf
			out = append(out, sf)
			continue
		}
		obj, err := storage.PrivateObject(id, task.Vertex, task.Subtask, f.Name)
		if err != nil {
			return nil, 0, err
		}
		d, err := digestFile(ctx, path)
		if err != nil {
			return nil, 0, err
		}
		if err := putFile(ctx, tr, store, obj, path, d.Size); err != nil {
			return nil, 0, err
		}
		uploaded += d.Size
		out = append(out, storage.StateFile{LocalName: f.Name, Object: obj, Size: d.Size, CRC32C: d.CRC32C})
	}
	return out, uploaded, nil
}

func digestFile(ctx context.Context, path string) (storage.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return storage.Digest{}, err
	}
	defer f.Close()
	return storage.DigestOf(ctx, f)
}

func putFile(ctx context.Context, tr trace.Tracer, store storage.BlobStore, name, path string, size int64) (err error) {
	_, span := tr.Start(ctx, spanUploadFile, trace.WithAttributes(attrFile.String(name), attrBytes.Int64(size)))
	defer func() { endSpan(span, err) }()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := store.Put(ctx, name, f); err != nil {
		return fmt.Errorf("upload %s as %s: %w", filepath.Base(path), name, err)
	}
	return nil
}

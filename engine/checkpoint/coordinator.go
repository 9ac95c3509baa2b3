package checkpoint

import (
	"fmt"
	"slices"
	"time"
)

// Mode is whether the coordinator is triggering checkpoints.
type Mode uint8

const (
	// Running: triggering periodic and requested checkpoints.
	Running Mode = iota
	// Halted: a task failed or the job is failing; nothing is triggered
	// until Resume.
	Halted
	// Finished: the Final checkpoint completed; nothing more is triggered.
	Finished
	// Stopped: Shutdown was called; nothing more is triggered.
	Stopped
)

func (m Mode) String() string {
	switch m {
	case Running:
		return "running"
	case Halted:
		return "halted"
	case Finished:
		return "finished"
	case Stopped:
		return "stopped"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// Config configures a Coordinator.
type Config struct {
	Policy Policy
	// Tasks is every subtask that must ack each checkpoint.
	Tasks []TaskID
	// Sources is the subset of Tasks that inject barriers; when all of them
	// finished (bounded input) a Final checkpoint is taken.
	Sources []TaskID
	// Restored is the last completed checkpoint found at recovery, 0 for a
	// fresh start. It is the first parent.
	Restored ID
	// LastID is the highest checkpoint id used before, completed or not
	// (for example a damaged checkpoint that recovery passed over); IDs
	// continue after max(Restored, LastID), so no id is ever reused.
	LastID ID
}

// Coordinator is the checkpoint coordinator: a pure state machine. Each
// event method takes the current reading of a monotonic clock (any origin,
// e.g. time.Since(engineStart)), applies the event and returns the actions
// the engine must carry out, in order. It has no goroutines, no clock and
// no I/O, and it is not safe for concurrent use: the engine drives it from
// one goroutine (or behind one lock).
//
// H is the tasks' opaque state handle type.
//
// Every event first expires timed-out checkpoints, and every event ends by
// starting a manifest write when one can start and triggering checkpoints
// the policy allows, so Tick is only needed to let time pass.
type Coordinator[H any] struct {
	policy   Policy
	tasks    []TaskID // sorted
	sources  map[TaskID]bool
	finished map[TaskID]bool // sources that reported SourceFinished
	final    bool            // a Final checkpoint was requested

	mode          Mode
	now           time.Duration
	nextID        ID
	lastCompleted ID
	failures      int // consecutive, see Reason.CountsAsFailure

	pending []*pending[H] // in id order
	writing ID            // checkpoint whose manifest write is outstanding
	sched   scheduler
	hist    history

	out []Action // actions of the event being applied
}

// New returns a coordinator in mode Running whose clock reads now; the first
// periodic checkpoint is due at now+Interval.
func New[H any](cfg Config, now time.Duration) (*Coordinator[H], error) {
	if err := cfg.Policy.validate(); err != nil {
		return nil, err
	}
	if len(cfg.Tasks) == 0 {
		return nil, fmt.Errorf("checkpoint: no tasks")
	}
	c := &Coordinator[H]{
		policy:        cfg.Policy,
		sources:       make(map[TaskID]bool, len(cfg.Sources)),
		finished:      make(map[TaskID]bool),
		now:           now,
		nextID:        max(cfg.Restored, cfg.LastID) + 1,
		lastCompleted: cfg.Restored,
		sched:         newScheduler(cfg.Policy, now),
	}
	seen := make(map[TaskID]bool, len(cfg.Tasks))
	for _, t := range cfg.Tasks {
		if seen[t] {
			return nil, fmt.Errorf("checkpoint: task %s listed twice", t)
		}
		seen[t] = true
		c.tasks = append(c.tasks, t)
	}
	slices.SortFunc(c.tasks, func(a, b TaskID) int {
		if a.Less(b) {
			return -1
		}
		return 1
	})
	for _, s := range cfg.Sources {
		if !seen[s] {
			return nil, fmt.Errorf("checkpoint: source %s is not a task", s)
		}
		c.sources[s] = true
	}
	return c, nil
}

// Tick lets time pass: expires checkpoints and triggers due ones.
func (c *Coordinator[H]) Tick(now time.Duration) []Action {
	c.begin(now)
	return c.end()
}

// Request asks for a Manual or Savepoint checkpoint. It starts now if
// MaxConcurrent allows (ignoring Interval and MinPause), else it is queued.
// Request panics on any other kind: Periodic and Final are the
// coordinator's own decisions.
func (c *Coordinator[H]) Request(now time.Duration, kind Kind) (RequestOutcome, []Action) {
	if kind != Manual && kind != Savepoint {
		panic(fmt.Sprintf("checkpoint: Request(%s): only manual checkpoints and savepoints are requested", kind))
	}
	c.begin(now)
	c.triggerDue()
	switch {
	case c.mode != Running || c.final:
		c.emit(RequestRejected{Kind: kind, Reason: NotRunning})
		return Rejected, c.end()
	case len(c.sched.queue) == 0 && len(c.pending) < c.policy.maxConcurrent():
		c.trigger(kind)
		return Triggered, c.end()
	case !c.sched.enqueue(kind):
		c.emit(RequestRejected{Kind: kind, Reason: TooManyRequests})
		return Rejected, c.end()
	}
	return Queued, c.end()
}

// Ack records that task acked checkpoint id with handle h. On Discarded
// the engine should delete what the task uploaded for id.
func (c *Coordinator[H]) Ack(now time.Duration, task TaskID, id ID, h H) (Outcome, []Action) {
	c.begin(now)
	p := c.find(id)
	if p == nil {
		return c.classify(task, id), c.end()
	}
	return p.ack(task, h), c.end()
}

// Decline records that task could not take checkpoint id; cause is kept in
// the Abort's detail. A task that already acked id cannot decline it
// (Duplicate).
func (c *Coordinator[H]) Decline(now time.Duration, task TaskID, id ID, cause string) (Outcome, []Action) {
	c.begin(now)
	p := c.find(id)
	switch {
	case p == nil:
		return c.classify(task, id), c.end()
	case !p.expects(task):
		return Unknown, c.end()
	}
	if _, acked := p.acked[task]; acked {
		return Duplicate, c.end()
	}
	detail := task.String()
	if cause != "" {
		detail += ": " + cause
	}
	c.abort(p, Declined, detail)
	return OK, c.end()
}

// ManifestWritten reports that the manifest of checkpoint id is durable:
// the checkpoint completes, earlier pending ones are subsumed.
func (c *Coordinator[H]) ManifestWritten(now time.Duration, id ID) (Outcome, []Action) {
	c.begin(now)
	if id == 0 || id != c.writing {
		return Unknown, c.end()
	}
	c.complete(c.find(id))
	return OK, c.end()
}

// ManifestFailed reports that the manifest of checkpoint id could not be
// written; the checkpoint is aborted.
func (c *Coordinator[H]) ManifestFailed(now time.Duration, id ID, cause string) (Outcome, []Action) {
	c.begin(now)
	if id == 0 || id != c.writing {
		return Unknown, c.end()
	}
	c.abort(c.find(id), ManifestFailed, cause)
	return OK, c.end()
}

// TaskFailed aborts every pending checkpoint (except one whose manifest
// write is outstanding: its result still decides it) and halts triggering
// until Resume. Queued requests are rejected.
func (c *Coordinator[H]) TaskFailed(now time.Duration, task TaskID) []Action {
	c.begin(now)
	// Sources will replay from the restored checkpoint: they are not
	// finished any more, and no Final checkpoint is due.
	clear(c.finished)
	c.final = false
	c.abortAll(TaskFailed, task.String())
	if c.mode == Running {
		c.halt()
	}
	return c.end()
}

// Resume restarts triggering after a task failure or FailJob, once the
// engine restarted the tasks. The failure count is reset and the periodic
// timer re-armed: the next periodic checkpoint is due at now+Interval.
func (c *Coordinator[H]) Resume(now time.Duration) []Action {
	c.begin(now)
	if c.mode == Halted {
		c.mode = Running
		c.failures = 0
		c.sched.restart(c.now)
	}
	return c.end()
}

// SourceFinished records that a source subtask reached the end of its
// input. When every source finished, periodic checkpoints stop and a Final
// checkpoint is queued. Unknown if task is not a source.
func (c *Coordinator[H]) SourceFinished(now time.Duration, task TaskID) (Outcome, []Action) {
	c.begin(now)
	if !c.sources[task] {
		return Unknown, c.end()
	}
	if c.finished[task] {
		return Duplicate, c.end()
	}
	c.finished[task] = true
	if len(c.finished) == len(c.sources) && c.mode == Running && !c.final {
		c.final = true
		c.sched.push(Final) // behind requests queued earlier
	}
	return OK, c.end()
}

// Shutdown stops the coordinator for good: pending checkpoints are aborted
// (except an outstanding manifest write, whose result is still accepted)
// and queued requests rejected.
func (c *Coordinator[H]) Shutdown(now time.Duration) []Action {
	c.begin(now)
	c.mode = Stopped
	c.abortAll(Shutdown, "")
	c.rejectQueued()
	return c.end()
}

// Status is a snapshot of the coordinator, for tests, metrics and logs.
type Status struct {
	Mode                Mode
	Now                 time.Duration
	LastCompleted       ID
	NextID              ID
	ConsecutiveFailures int
	Pending             []PendingStatus // in id order
	Queued              []Kind
}

// PendingStatus describes one in-flight checkpoint.
type PendingStatus struct {
	ID       ID
	Kind     Kind
	Stage    Stage
	Started  time.Duration
	Acked    int
	Expected int
}

// Status returns a snapshot of the coordinator.
func (c *Coordinator[H]) Status() Status {
	s := Status{
		Mode:                c.mode,
		Now:                 c.now,
		LastCompleted:       c.lastCompleted,
		NextID:              c.nextID,
		ConsecutiveFailures: c.failures,
		Queued:              slices.Clone(c.sched.queue),
	}
	for _, p := range c.pending {
		s.Pending = append(s.Pending, PendingStatus{
			ID: p.id, Kind: p.kind, Stage: p.stage, Started: p.started,
			Acked: len(p.acked), Expected: len(p.acked) + len(p.waiting),
		})
	}
	return s
}

// begin starts applying an event at now: the clock never goes back, and
// checkpoints that timed out are aborted first.
func (c *Coordinator[H]) begin(now time.Duration) {
	c.out = nil
	c.now = max(c.now, now)
	for _, p := range slices.Clone(c.pending) {
		if p.expired(c.now, c.policy.Timeout) {
			c.abort(p, Expired, fmt.Sprintf("after %s", c.now-p.started))
		}
	}
}

// end finishes applying an event: start a manifest write if one can start,
// trigger what the policy allows, and hand the actions over.
func (c *Coordinator[H]) end() []Action {
	c.startManifest()
	c.triggerDue()
	out := c.out
	c.out = nil
	return out
}

// triggerDue starts queued requests and a due periodic checkpoint, as far
// as the policy allows.
func (c *Coordinator[H]) triggerDue() {
	for c.mode == Running {
		kind, ok := c.sched.next(c.now, len(c.pending), !c.final)
		if !ok {
			return
		}
		c.trigger(kind)
	}
}

func (c *Coordinator[H]) emit(a Action) { c.out = append(c.out, a) }

func (c *Coordinator[H]) trigger(kind Kind) {
	id := c.nextID
	c.nextID++
	c.pending = append(c.pending, newPending[H](id, kind, c.now, c.tasks))
	c.sched.triggered(c.now)
	c.emit(InjectBarrier{ID: id, Kind: kind})
}

// startManifest issues WriteManifest for the newest checkpoint that every
// task acked, unless a write is outstanding. Older fully acked ones wait:
// they are subsumed if it succeeds, and written next if it fails.
func (c *Coordinator[H]) startManifest() {
	if c.writing != 0 {
		return
	}
	for i := len(c.pending) - 1; i >= 0; i-- {
		p := c.pending[i]
		if p.stage != AckedAll {
			continue
		}
		p.stage = Writing
		c.writing = p.id
		c.emit(WriteManifest[H]{ID: p.id, Parent: c.lastCompleted, Kind: p.kind, Handles: p.handles()})
		return
	}
}

func (c *Coordinator[H]) complete(p *pending[H]) {
	c.remove(p)
	c.hist.add(p.id, true)
	c.lastCompleted = p.id
	c.failures = 0
	c.sched.endedAt(c.now)
	c.emit(NotifyComplete{ID: p.id, Kind: p.kind})
	for _, q := range slices.Clone(c.pending) {
		if q.id < p.id {
			c.abort(q, Subsumed, fmt.Sprintf("by %d", p.id))
		}
	}
	if p.kind == Final && c.mode == Running {
		c.mode = Finished
		c.rejectQueued()
	}
}

// abort drops p and says so, counts the failure and, if too many failed in
// a row, fails the job. A Final checkpoint that failed while running is
// retried first thing.
func (c *Coordinator[H]) abort(p *pending[H], r Reason, detail string) {
	c.remove(p)
	c.hist.add(p.id, false)
	c.sched.endedAt(c.now)
	c.emit(Abort{ID: p.id, Kind: p.kind, Reason: r, Detail: detail})
	if r.CountsAsFailure() {
		c.failures++
		tol := c.policy.TolerableFailures
		if tol >= 0 && c.failures > tol && c.mode == Running {
			c.emit(FailJob{Reason: r, Failures: c.failures})
			c.halt()
		}
	}
	if p.kind == Final && c.mode == Running && c.final {
		c.sched.requeueFirst(Final)
	}
}

// abortAll aborts every pending checkpoint whose manifest write is not
// outstanding.
func (c *Coordinator[H]) abortAll(r Reason, detail string) {
	for _, p := range slices.Clone(c.pending) {
		if p.stage != Writing {
			c.abort(p, r, detail)
		}
	}
}

func (c *Coordinator[H]) halt() {
	c.mode = Halted
	c.rejectQueued()
}

func (c *Coordinator[H]) rejectQueued() {
	for _, k := range c.sched.drain() {
		c.emit(RequestRejected{Kind: k, Reason: NotRunning})
	}
}

func (c *Coordinator[H]) find(id ID) *pending[H] {
	for _, p := range c.pending {
		if p.id == id {
			return p
		}
	}
	return nil
}

func (c *Coordinator[H]) remove(p *pending[H]) {
	c.pending = slices.DeleteFunc(c.pending, func(q *pending[H]) bool { return q == p })
	if c.writing == p.id {
		c.writing = 0
	}
}

// classify answers an event about a checkpoint that is not pending.
func (c *Coordinator[H]) classify(task TaskID, id ID) Outcome {
	if id == 0 || id >= c.nextID {
		return Unknown // never triggered
	}
	if _, ok := slices.BinarySearchFunc(c.tasks, task, func(a, b TaskID) int {
		switch {
		case a.Less(b):
			return -1
		case b.Less(a):
			return 1
		}
		return 0
	}); !ok {
		return Unknown
	}
	completed, ok := c.hist.lookup(id)
	switch {
	case !ok:
		return Unknown // restored, or too old to remember
	case completed:
		return Duplicate // every task acked it, this one included
	}
	return Discarded
}

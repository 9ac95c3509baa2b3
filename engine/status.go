package engine

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/weirstream/weir/engine/checkpoint"
)

// Status is what a job binary reports about itself over HTTP: the job
// graph, the state of the job and its checkpoint history. Run keeps it up
// to date when Config.Status is set. Safe for concurrent use.
type Status struct {
	mu       sync.Mutex
	job      string
	started  time.Time
	state    string
	lastErr  string
	restarts int
	ready    bool
	nodes    []NodeStatus
	edges    []EdgeStatus
	history  []CheckpointRecord // oldest first, at most historyLen
	align    map[uint64]time.Duration
	request  func(checkpoint.Kind) (RequestResult, error)
	// savepoints: the job has a savepoint directory.
	savepoints bool
	// Stopping (RequestStop): stop makes the sources end; with
	// stopSavepoint the final checkpoint is copied into the savepoint
	// directory (its history record says where); ended is closed when the
	// job binary's run is over (End), with endErr.
	stop          func()
	stopSavepoint bool
	ended         chan struct{}
	endErr        error
}

// historyLen bounds the checkpoint history kept.
const historyLen = 200

// Job states.
const (
	StateStarting   = "starting"
	StateRunning    = "running"
	StateRestarting = "restarting"
	StateFinished   = "finished"
	StateFailed     = "failed"
)

// NodeStatus is one operator of the job graph.
type NodeStatus struct {
	ID          int    `json:"id"`
	UID         string `json:"uid"`
	Name        string `json:"name"`
	Parallelism int    `json:"parallelism"`
	Source      bool   `json:"source"`
	Chained     bool   `json:"chained"` // runs in the goroutine of its input
}

// EdgeStatus is one edge of the job graph.
type EdgeStatus struct {
	From    int    `json:"from"`
	To      int    `json:"to"`
	Part    string `json:"partitioning"`
	Chained bool   `json:"chained"`
}

// CheckpointRecord is one checkpoint of the history.
type CheckpointRecord struct {
	ID            uint64    `json:"id"`
	Kind          string    `json:"kind"`
	Status        string    `json:"status"` // completed or aborted
	Triggered     time.Time `json:"triggered"`
	DurationMs    float64   `json:"duration_ms"`
	SizeBytes     int64     `json:"size_bytes"`
	UploadedBytes int64     `json:"uploaded_bytes"`
	Files         int       `json:"files"`
	AlignmentMs   float64   `json:"alignment_ms"` // the longest alignment of any gate
	SyncMaxMs     float64   `json:"sync_max_ms"`
	Failure       string    `json:"failure,omitempty"`
	// Savepoint is where a savepoint of this checkpoint was copied, once
	// the copy is complete (restore with --restore SAVEPOINT), and
	// SavepointFailure why the copy failed.
	Savepoint        string `json:"savepoint,omitempty"`
	SavepointFailure string `json:"savepoint_failure,omitempty"`
}

// RequestResult is the answer to a checkpoint request.
type RequestResult struct {
	Outcome    string `json:"outcome"` // triggered, queued or rejected
	Checkpoint uint64 `json:"checkpoint,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// ErrNoCheckpoints: the job runs without checkpoints, or not now.
var ErrNoCheckpoints = errors.New("engine: the job takes no checkpoints now")

// ErrNoSavepoints: the job has no savepoint directory.
var ErrNoSavepoints = errors.New("engine: the job has no savepoint directory (--savepoint-dir)")

// NewStatus returns the status of job, starting.
func NewStatus(job string) *Status {
	return &Status{job: job, started: time.Now(), state: StateStarting, align: map[uint64]time.Duration{}, ended: make(chan struct{})}
}

// StopResult is the answer to a stop request once the job has ended.
type StopResult struct {
	State     string `json:"state"`               // finished or failed
	Savepoint string `json:"savepoint,omitempty"` // restore with --restore SAVEPOINT
	Error     string `json:"error,omitempty"`
}

// SetStop sets what RequestStop calls to stop the job (what SIGTERM does).
func (s *Status) SetStop(stop func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop = stop
}

// RequestStop stops the job as SIGTERM does: sources end, a final
// checkpoint is taken, sinks commit; with savepoint, the final checkpoint
// is also copied into the savepoint directory, as --stop-with-savepoint
// does. It returns a channel closed when the job has ended; Stopped then
// says how.
func (s *Status) RequestStop(savepoint bool) (<-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stop == nil:
		return nil, errors.New("engine: the job cannot be stopped this way")
	case savepoint && s.request == nil:
		return nil, ErrNoCheckpoints
	case savepoint && !s.savepoints:
		return nil, ErrNoSavepoints
	}
	if savepoint {
		s.stopSavepoint = true
	}
	s.stop()
	return s.ended, nil
}

// Stopped returns how the job ended, once the channel of RequestStop is
// closed.
func (s *Status) Stopped() StopResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := StopResult{State: StateFinished}
	for i := len(s.history) - 1; i >= 0; i-- {
		if h := s.history[i]; h.Kind == checkpoint.Final.String() {
			r.Savepoint = h.Savepoint
			break
		}
	}
	if s.endErr != nil {
		r.State, r.Error = StateFailed, s.endErr.Error()
	}
	return r
}

// End records that the job binary's run is over.
func (s *Status) End(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.ended:
	default:
		s.endErr = err
		close(s.ended)
	}
}

// savepointOnFinal reports whether a stop asked for a savepoint.
func (s *Status) savepointOnFinal() bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopSavepoint
}

// savepointDone records the outcome of the savepoint copy of checkpoint id.
func (s *Status) savepointDone(id uint64, path string, err error) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.history {
		if r := &s.history[i]; r.ID == id {
			if err != nil {
				r.SavepointFailure = err.Error()
			} else {
				r.Savepoint = path
			}
		}
	}
}

func (s *Status) setPlan(p *Plan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes, s.edges = s.nodes[:0], s.edges[:0]
	chainedIn := map[*Node]bool{}
	for _, n := range p.Graph.Nodes {
		for _, e := range n.Outputs {
			if p.chained[e] {
				chainedIn[e.To] = true
			}
		}
	}
	for _, n := range p.Graph.Nodes {
		s.nodes = append(s.nodes, NodeStatus{ID: n.ID, UID: n.UID, Name: n.Name, Parallelism: p.Parallelism[n.ID], Source: n.impl.source(), Chained: chainedIn[n]})
		for _, e := range n.Outputs {
			s.edges = append(s.edges, EdgeStatus{From: e.From.ID, To: e.To.ID, Part: e.Part.String(), Chained: p.chained[e]})
		}
	}
}

func (s *Status) setState(state string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = state
	if err != nil {
		s.lastErr = err.Error()
	}
	if state == StateRestarting {
		s.restarts++
	}
	if state != StateRunning {
		s.ready = false
	}
}

func (s *Status) setReady() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = s.state == StateRunning
}

func (s *Status) setRequest(f func(checkpoint.Kind) (RequestResult, error), savepoints bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.request, s.savepoints = f, savepoints
}

func (s *Status) noteAlignment(id uint64, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.align[id] = max(s.align[id], d)
}

func (s *Status) addCheckpoint(r CheckpointRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.AlignmentMs = float64(s.align[r.ID].Microseconds()) / 1000
	for id := range s.align {
		if id <= r.ID {
			delete(s.align, id)
		}
	}
	s.history = append(s.history, r)
	if len(s.history) > historyLen {
		s.history = slices.Delete(s.history, 0, len(s.history)-historyLen)
	}
}

// JobInfo is the job part of the status.
type JobInfo struct {
	Job       string       `json:"job"`
	Version   string       `json:"version"`
	State     string       `json:"state"`
	Ready     bool         `json:"ready"`
	Started   time.Time    `json:"started"`
	UptimeSec float64      `json:"uptime_seconds"`
	Restarts  int          `json:"restarts"`
	LastError string       `json:"last_error,omitempty"`
	Nodes     []NodeStatus `json:"nodes"`
	Edges     []EdgeStatus `json:"edges"`
}

// Job returns the job's state and graph.
func (s *Status) Job() JobInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return JobInfo{Job: s.job, Version: Version(), State: s.state, Ready: s.ready, Started: s.started,
		UptimeSec: time.Since(s.started).Seconds(), Restarts: s.restarts, LastError: s.lastErr,
		Nodes: append([]NodeStatus{}, s.nodes...), Edges: append([]EdgeStatus{}, s.edges...)}
}

// Checkpoints returns the checkpoint history, newest first.
func (s *Status) Checkpoints() []CheckpointRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := append([]CheckpointRecord{}, s.history...) // [] in JSON, never null
	slices.Reverse(h)
	return h
}

// Ready reports whether the job runs with every task open.
func (s *Status) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// RequestCheckpoint asks the running job for a manual checkpoint.
func (s *Status) RequestCheckpoint(ctx context.Context) (RequestResult, error) {
	return s.requestKind(checkpoint.Manual)
}

// RequestSavepoint asks the running job for a savepoint (see
// CheckpointConfig.SavepointStore).
func (s *Status) RequestSavepoint(ctx context.Context) (RequestResult, error) {
	s.mu.Lock()
	ok := s.savepoints
	s.mu.Unlock()
	if !ok {
		return RequestResult{}, ErrNoSavepoints
	}
	return s.requestKind(checkpoint.Savepoint)
}

func (s *Status) requestKind(kind checkpoint.Kind) (RequestResult, error) {
	s.mu.Lock()
	f := s.request
	s.mu.Unlock()
	if f == nil {
		return RequestResult{}, ErrNoCheckpoints
	}
	return f(kind)
}

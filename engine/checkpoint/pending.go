package checkpoint

import (
	"fmt"
	"slices"
	"time"
)

// Stage is where a pending checkpoint is in its life.
type Stage uint8

const (
	// Collecting: barrier injected, waiting for acks.
	Collecting Stage = iota
	// AckedAll: every expected task acked; waiting for the manifest write
	// to be started (one write is outstanding at a time).
	AckedAll
	// Writing: WriteManifest issued; waiting for its result. A checkpoint
	// in this stage is never aborted except by ManifestFailed: the write
	// may already have succeeded.
	Writing
)

func (s Stage) String() string {
	switch s {
	case Collecting:
		return "collecting"
	case AckedAll:
		return "acked-all"
	case Writing:
		return "writing"
	}
	return fmt.Sprintf("stage(%d)", uint8(s))
}

// pending tracks one in-flight checkpoint's acks. It knows nothing of
// policy or of other checkpoints.
type pending[H any] struct {
	id      ID
	kind    Kind
	started time.Duration
	stage   Stage
	waiting map[TaskID]struct{} // expected tasks that have not acked
	acked   map[TaskID]H
}

func newPending[H any](id ID, kind Kind, started time.Duration, tasks []TaskID) *pending[H] {
	p := &pending[H]{
		id:      id,
		kind:    kind,
		started: started,
		waiting: make(map[TaskID]struct{}, len(tasks)),
		acked:   make(map[TaskID]H, len(tasks)),
	}
	for _, t := range tasks {
		p.waiting[t] = struct{}{}
	}
	return p
}

// expects reports whether task t must ack this checkpoint.
func (p *pending[H]) expects(t TaskID) bool {
	_, w := p.waiting[t]
	_, a := p.acked[t]
	return w || a
}

// ack records task t's handle; it moves the checkpoint to AckedAll when t
// was the last one missing.
func (p *pending[H]) ack(t TaskID, h H) Outcome {
	if _, ok := p.acked[t]; ok {
		return Duplicate
	}
	if _, ok := p.waiting[t]; !ok {
		return Unknown
	}
	delete(p.waiting, t)
	p.acked[t] = h
	if len(p.waiting) == 0 {
		p.stage = AckedAll
	}
	return OK
}

// expired reports whether the checkpoint has outlived timeout (0: never).
// A checkpoint whose manifest is being written does not expire.
func (p *pending[H]) expired(now, timeout time.Duration) bool {
	return timeout > 0 && p.stage != Writing && now-p.started >= timeout
}

// handles returns every ack, sorted by task.
func (p *pending[H]) handles() []TaskHandle[H] {
	hs := make([]TaskHandle[H], 0, len(p.acked))
	for t, h := range p.acked {
		hs = append(hs, TaskHandle[H]{Task: t, State: h})
	}
	slices.SortFunc(hs, func(a, b TaskHandle[H]) int {
		switch {
		case a.Task.Less(b.Task):
			return -1
		case b.Task.Less(a.Task):
			return 1
		}
		return 0
	})
	return hs
}

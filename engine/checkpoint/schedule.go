package checkpoint

import (
	"fmt"
	"time"
)

// Policy says when checkpoints may start and when to give up.
type Policy struct {
	// Interval between periodic triggers; 0 disables periodic checkpoints.
	Interval time.Duration
	// MinPause is the least time between the end (completion or abort) of
	// one checkpoint and the start of the next periodic one. Requested
	// checkpoints ignore it.
	MinPause time.Duration
	// MaxConcurrent bounds checkpoints in flight (triggered, not yet
	// completed or aborted); 0 means 1.
	MaxConcurrent int
	// Timeout aborts a checkpoint still collecting acks this long after its
	// trigger; 0 means never.
	Timeout time.Duration
	// TolerableFailures is how many consecutive checkpoint failures (see
	// Reason.CountsAsFailure) are tolerated; one more emits FailJob. 0
	// fails the job on the first failure (Flink's default); negative
	// tolerates any number.
	TolerableFailures int
	// MaxQueuedRequests bounds requests waiting for a free slot; 0 means 16.
	MaxQueuedRequests int
}

func (p Policy) maxConcurrent() int { return max(p.MaxConcurrent, 1) }

func (p Policy) maxQueued() int {
	if p.MaxQueuedRequests <= 0 {
		return 16
	}
	return p.MaxQueuedRequests
}

func (p Policy) validate() error {
	if p.Interval < 0 || p.MinPause < 0 || p.Timeout < 0 || p.MaxConcurrent < 0 {
		return fmt.Errorf("checkpoint: negative policy value in %+v", p)
	}
	return nil
}

// scheduler decides when to start the next checkpoint. It knows the policy,
// the clock readings that matter and the queue of requests, but nothing of
// acks or manifests.
type scheduler struct {
	policy       Policy
	nextPeriodic time.Duration // periodic trigger due at or after this time
	lastEnd      time.Duration // end of the last completed or aborted checkpoint
	ended        bool          // lastEnd is set
	queue        []Kind        // requested kinds, oldest first
}

func newScheduler(p Policy, now time.Duration) scheduler {
	return scheduler{policy: p, nextPeriodic: now + p.Interval}
}

// next returns the kind of checkpoint to start now, if any, given inflight
// checkpoints and whether periodic checkpoints are allowed at all. Queued
// requests go first and ignore the interval and MinPause.
func (s *scheduler) next(now time.Duration, inflight int, periodic bool) (Kind, bool) {
	if inflight >= s.policy.maxConcurrent() {
		return 0, false
	}
	if len(s.queue) > 0 {
		k := s.queue[0]
		s.queue = s.queue[1:]
		return k, true
	}
	if !periodic || s.policy.Interval == 0 || now < s.nextPeriodic {
		return 0, false
	}
	if s.ended && now < s.lastEnd+s.policy.MinPause {
		return 0, false
	}
	return Periodic, true
}

// triggered records that a checkpoint started: the next periodic one is a
// full interval away.
func (s *scheduler) triggered(now time.Duration) { s.nextPeriodic = now + s.policy.Interval }

// endedAt records the end of a checkpoint, for MinPause.
func (s *scheduler) endedAt(now time.Duration) { s.lastEnd, s.ended = now, true }

// restart re-arms the periodic timer, e.g. after a resume.
func (s *scheduler) restart(now time.Duration) { s.nextPeriodic = now + s.policy.Interval }

// enqueue adds a request; false when the queue is full.
func (s *scheduler) enqueue(k Kind) bool {
	if len(s.queue) >= s.policy.maxQueued() {
		return false
	}
	s.queue = append(s.queue, k)
	return true
}

// push adds k at the tail, ignoring the bound (for Final).
func (s *scheduler) push(k Kind) { s.queue = append(s.queue, k) }

// requeueFirst puts k at the head of the queue, ignoring the bound: a
// Final checkpoint that failed is retried before anything else.
func (s *scheduler) requeueFirst(k Kind) { s.queue = append([]Kind{k}, s.queue...) }

// drain empties the queue and returns what was in it.
func (s *scheduler) drain() []Kind {
	q := s.queue
	s.queue = nil
	return q
}

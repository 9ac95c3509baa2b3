package checkpoint

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// event is one input to the coordinator, as the tests feed it.
type event struct {
	kind  string // tick, request, ack, decline, manifest-written, manifest-failed, task-failed, resume, source-finished, shutdown
	now   time.Duration
	task  TaskID
	id    ID
	req   Kind
	cause string
}

// apply feeds ev to c and returns the outcome (if the event has one) and
// the actions.
func apply(c *Coordinator[string], ev event) (string, []Action) {
	switch ev.kind {
	case "tick":
		return "", c.Tick(ev.now)
	case "request":
		o, acts := c.Request(ev.now, ev.req)
		return o.String(), acts
	case "ack":
		o, acts := c.Ack(ev.now, ev.task, ev.id, fmt.Sprintf("h%d-%s", ev.id, ev.task))
		return o.String(), acts
	case "decline":
		o, acts := c.Decline(ev.now, ev.task, ev.id, ev.cause)
		return o.String(), acts
	case "manifest-written":
		o, acts := c.ManifestWritten(ev.now, ev.id)
		return o.String(), acts
	case "manifest-failed":
		o, acts := c.ManifestFailed(ev.now, ev.id, ev.cause)
		return o.String(), acts
	case "task-failed":
		return "", c.TaskFailed(ev.now, ev.task)
	case "resume":
		return "", c.Resume(ev.now)
	case "source-finished":
		o, acts := c.SourceFinished(ev.now, ev.task)
		return o.String(), acts
	case "shutdown":
		return "", c.Shutdown(ev.now)
	}
	panic("unknown event " + ev.kind)
}

// checker watches the events fed to a coordinator and the actions it
// returns, and reports the first broken invariant.
type checker struct {
	maxConcurrent int
	tasks         []TaskID
	lastInjected  ID
	lastCompleted ID
	acked         map[ID]map[TaskID]bool
	writing       map[ID]bool // WriteManifest issued, no result fed yet
	aborted       map[ID]bool
	completed     map[ID]bool
}

func newChecker(cfg Config) *checker {
	return &checker{
		maxConcurrent: cfg.Policy.maxConcurrent(),
		tasks:         cfg.Tasks,
		lastInjected:  cfg.Restored,
		lastCompleted: cfg.Restored,
		acked:         map[ID]map[TaskID]bool{},
		writing:       map[ID]bool{},
		aborted:       map[ID]bool{},
		completed:     map[ID]bool{},
	}
}

func (k *checker) check(c *Coordinator[string], ev event, outcome string, acts []Action) error {
	switch {
	case ev.kind == "ack" && outcome == "ok":
		if k.aborted[ev.id] || k.completed[ev.id] {
			return fmt.Errorf("ack of finished checkpoint %d accepted", ev.id)
		}
		if k.acked[ev.id] == nil {
			k.acked[ev.id] = map[TaskID]bool{}
		}
		k.acked[ev.id][ev.task] = true
	case ev.kind == "manifest-written" || ev.kind == "manifest-failed":
		if outcome == "ok" && !k.writing[ev.id] {
			return fmt.Errorf("%s accepted for %d with no write outstanding", ev.kind, ev.id)
		}
	}
	for _, a := range acts {
		switch a := a.(type) {
		case InjectBarrier:
			if a.ID <= k.lastInjected {
				return fmt.Errorf("injected %d after %d", a.ID, k.lastInjected)
			}
			k.lastInjected = a.ID
		case WriteManifest[string]:
			if len(k.writing) > 0 {
				return fmt.Errorf("second manifest write %d while %v outstanding", a.ID, k.writing)
			}
			if k.aborted[a.ID] || len(k.acked[a.ID]) != len(k.tasks) || len(a.Handles) != len(k.tasks) {
				return fmt.Errorf("manifest %d written without every ack", a.ID)
			}
			if a.Parent != k.lastCompleted {
				return fmt.Errorf("manifest %d parent %d, last completed %d", a.ID, a.Parent, k.lastCompleted)
			}
			k.writing[a.ID] = true
		case NotifyComplete:
			if ev.kind != "manifest-written" || ev.id != a.ID || !k.writing[a.ID] {
				return fmt.Errorf("%d completed without its manifest written", a.ID)
			}
			if a.ID <= k.lastCompleted {
				return fmt.Errorf("completed %d after %d", a.ID, k.lastCompleted)
			}
			delete(k.writing, a.ID)
			k.lastCompleted = a.ID
			k.completed[a.ID] = true
		case Abort:
			if k.completed[a.ID] || k.aborted[a.ID] {
				return fmt.Errorf("abort of finished checkpoint %d", a.ID)
			}
			if k.writing[a.ID] {
				if ev.kind != "manifest-failed" || ev.id != a.ID {
					return fmt.Errorf("abort of %d while its manifest write is outstanding", a.ID)
				}
				delete(k.writing, a.ID)
			}
			k.aborted[a.ID] = true
		}
	}
	// Checked after the actions: the event may have expired the checkpoint.
	if (ev.kind == "ack" || ev.kind == "decline") && outcome == "discarded" && !k.aborted[ev.id] {
		return fmt.Errorf("%s of checkpoint %d discarded but it was not aborted", ev.kind, ev.id)
	}
	if n := len(c.Status().Pending); n > k.maxConcurrent {
		return fmt.Errorf("%d checkpoints pending, max %d", n, k.maxConcurrent)
	}
	return nil
}

// TestRandomInvariants feeds random event sequences to coordinators under
// several policies and checks the invariants after every event. A failing
// seed reproduces exactly.
func TestRandomInvariants(t *testing.T) {
	policies := []Policy{
		{Interval: 10 * time.Second, MaxConcurrent: 1, Timeout: 60 * time.Second, TolerableFailures: -1},
		{Interval: 5 * time.Second, MinPause: 2 * time.Second, MaxConcurrent: 3, Timeout: 30 * time.Second, TolerableFailures: 3},
		{Interval: 1 * time.Second, MaxConcurrent: 4, TolerableFailures: 0, MaxQueuedRequests: 2},
		{MaxConcurrent: 2, Timeout: 5 * time.Second, TolerableFailures: 1},
	}
	tasks := []TaskID{{"src", 0}, {"src", 1}, {"count", 0}, {"sink", 0}}
	sources := tasks[:2]
	kinds := []string{"tick", "tick", "tick", "request", "ack", "ack", "ack", "ack", "ack", "ack",
		"decline", "manifest-written", "manifest-written", "manifest-failed", "task-failed",
		"resume", "resume", "source-finished", "shutdown"}
	seen := map[string]int{} // what the runs exercised
	for pi, pol := range policies {
		for seed := uint64(0); seed < 200; seed++ {
			rng := rand.New(rand.NewPCG(seed, uint64(pi)))
			cfg := Config{Policy: pol, Tasks: tasks, Sources: sources, Restored: ID(rng.IntN(3) * 7)}
			c, err := New[string](cfg, 0)
			if err != nil {
				t.Fatal(err)
			}
			k := newChecker(cfg)
			var now time.Duration
			for step := 0; step < 300; step++ {
				now += time.Duration(rng.IntN(3000)) * time.Millisecond
				ev := event{kind: kinds[rng.IntN(len(kinds))], now: now, task: tasks[rng.IntN(len(tasks))]}
				if (ev.kind == "shutdown" && rng.IntN(20) != 0) || (ev.kind == "task-failed" && rng.IntN(5) != 0) {
					ev.kind = "ack" // fail and shut down rarely
				}
				// Mostly ids near the frontier; sometimes the outstanding write.
				st := c.Status()
				ev.id = ID(max(0, int(st.NextID)-1-rng.IntN(4)))
				if len(st.Pending) > 0 && rng.IntN(4) != 0 {
					ev.id = st.Pending[rng.IntN(len(st.Pending))].ID
				}
				for id := range k.writing {
					if rng.IntN(2) == 0 {
						ev.id = id
					}
				}
				if ev.kind == "request" {
					ev.req = []Kind{Manual, Savepoint}[rng.IntN(2)]
				}
				outcome, acts := apply(c, ev)
				if err := k.check(c, ev, outcome, acts); err != nil {
					t.Fatalf("policy %d seed %d step %d: %+v -> %s %v: %v", pi, seed, step, ev, outcome, acts, err)
				}
				seen[ev.kind+" "+outcome]++
				for _, a := range acts {
					switch a := a.(type) {
					case Abort:
						seen["abort "+a.Reason.String()]++
					case NotifyComplete:
						seen["complete "+a.Kind.String()]++
					case FailJob:
						seen["fail-job"]++
					}
				}
			}
		}
	}
	// Guard against a vacuous run.
	for _, want := range []string{"complete periodic", "complete final", "abort declined",
		"abort expired", "abort subsumed", "abort task-failed", "abort manifest-failed",
		"fail-job", "ack ok", "ack duplicate", "ack discarded", "ack unknown"} {
		if seen[want] == 0 {
			t.Errorf("random runs never saw %q: %v", want, seen)
		}
	}
	t.Logf("%v", seen)
}

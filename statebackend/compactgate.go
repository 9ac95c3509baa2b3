package statebackend

import (
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// compactionGate is the Pebble compaction scheduler of one backend: like
// Pebble's default, it lets GetAllowedWithoutPermission compactions run at
// once, but none until it is opened. A restore opens it after the change
// logs are replayed: a Pebble restored from a checkpoint usually owes a
// compaction, its default scheduler starts one within 100 ms of Open, and
// Open then waits for it to finish (scanning for obsolete files) — 0.4 s of
// a 1 GB recovery here, with the compaction competing with the replay for
// the processor after that.
//
// Lock order (pebble.CompactionScheduler): Pebble's mutexes come first;
// calls into the DB other than GetAllowedWithoutPermission are made without
// g.mu.
type compactionGate struct {
	mu       sync.Mutex
	cond     sync.Cond // signalled when granting ends
	db       pebble.DBForCompaction
	open     bool
	running  int
	granting bool
	gone     bool // unregistered
	poke     chan struct{}
	stop     chan struct{}
}

var _ pebble.CompactionScheduler = (*compactionGate)(nil)

func newCompactionGate(open bool) *compactionGate {
	g := &compactionGate{open: open, poke: make(chan struct{}, 1), stop: make(chan struct{})}
	g.cond.L = &g.mu
	return g
}

// openGate lets compactions run, and starts those Pebble is waiting for.
func (g *compactionGate) openGate() {
	g.mu.Lock()
	g.open = true
	g.grantLocked()
}

// Register implements pebble.CompactionScheduler.
func (g *compactionGate) Register(_ int, db pebble.DBForCompaction) {
	g.db = db
	go g.tick()
}

// Unregister implements pebble.CompactionScheduler.
func (g *compactionGate) Unregister() {
	close(g.stop)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gone = true
	for g.granting {
		g.cond.Wait()
	}
}

// TrySchedule implements pebble.CompactionScheduler.
func (g *compactionGate) TrySchedule() (bool, pebble.CompactionGrantHandle) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone || !g.open || g.running >= g.db.GetAllowedWithoutPermission() {
		return false, nil
	}
	g.running++
	return true, g
}

// UpdateGetAllowedWithoutPermission implements pebble.CompactionScheduler.
// Pebble may hold its mutex: the ticking goroutine grants.
func (g *compactionGate) UpdateGetAllowedWithoutPermission() {
	select {
	case g.poke <- struct{}{}:
	default:
	}
}

// Started, MeasureCPU, CumulativeStats and Done implement
// pebble.CompactionGrantHandle.
func (g *compactionGate) Started()                                          {}
func (g *compactionGate) MeasureCPU(pebble.CompactionGoroutineKind)         {}
func (g *compactionGate) CumulativeStats(pebble.CompactionGrantHandleStats) {}

// Done implements pebble.CompactionGrantHandle.
func (g *compactionGate) Done() {
	g.mu.Lock()
	g.running--
	g.grantLocked()
}

// tick grants when poked and every 100 ms, as Pebble's default scheduler
// does: the number of compactions allowed grows with the backlog without
// telling anyone.
func (g *compactionGate) tick() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-g.poke:
		case <-g.stop:
			return
		}
		g.mu.Lock()
		g.grantLocked()
	}
}

// grantLocked starts the compactions Pebble waits for, up to the number
// allowed, and unlocks g.mu. One goroutine grants at a time.
func (g *compactionGate) grantLocked() {
	defer g.mu.Unlock()
	for g.granting {
		g.cond.Wait()
	}
	if g.gone || !g.open {
		return
	}
	g.granting = true
	for g.running < g.db.GetAllowedWithoutPermission() {
		g.mu.Unlock()
		accepted := false
		if waiting, _ := g.db.GetWaitingCompaction(); waiting {
			accepted = g.db.Schedule(g)
		}
		g.mu.Lock()
		if !accepted {
			break
		}
		g.running++
	}
	g.granting = false
	g.cond.Broadcast()
}

package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// trash deletes directories a run no longer needs without making the run
// wait: discard renames a directory into STATE_DIR/trash (one rename,
// however large it is), and one goroutine deletes the trash once every task
// has opened its operators, so that deleting the state of the run before a
// crash (a gigabyte took half a second of unlinks here) never delays a
// recovery. Trash left by a process that died is deleted by the next run.
type trash struct {
	dir   string
	seq   atomic.Uint64
	start chan struct{} // closed when every task opened, or the run ends
	once  sync.Once
	wake  chan struct{}
	quit  chan struct{}
	done  chan struct{}
}

func newTrash(stateDir string) (*trash, error) {
	t := &trash{
		dir:   filepath.Join(stateDir, "trash"),
		start: make(chan struct{}),
		wake:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return nil, fmt.Errorf("engine: state directory: %w", err)
	}
	go t.run()
	return t, nil
}

// discard moves dir (if it exists) into the trash. If it cannot be moved,
// it is deleted in place.
func (t *trash) discard(dir string) error {
	to := filepath.Join(t.dir, fmt.Sprintf("%d-%d", time.Now().UnixNano(), t.seq.Add(1)))
	if err := os.Rename(dir, to); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return os.RemoveAll(dir)
	}
	select {
	case t.wake <- struct{}{}:
	default:
	}
	return nil
}

// opened lets the deletion begin.
func (t *trash) opened() { t.once.Do(func() { close(t.start) }) }

// close deletes what is left and waits for it.
func (t *trash) close() {
	t.opened()
	close(t.quit)
	<-t.done
}

func (t *trash) run() {
	defer close(t.done)
	<-t.start
	for {
		t.empty()
		select {
		case <-t.wake:
		case <-t.quit:
			t.empty()
			return
		}
	}
}

// empty deletes every entry of the trash directory. Failures are left for
// the next pass or the next run.
func (t *trash) empty() {
	entries, err := os.ReadDir(t.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(t.dir, e.Name()))
	}
}

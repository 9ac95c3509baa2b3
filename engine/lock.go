package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrStateDirLocked is returned when another running job holds the state
// directory.
var ErrStateDirLocked = errors.New("engine: state directory is in use by another job")

// lockDir takes an exclusive advisory lock on dir/LOCK, creating dir. The
// lock is released by the returned function, or by the kernel when the
// process dies, so a crashed job never leaves a stale lock behind.
func lockDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("engine: state directory: %w", err)
	}
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("engine: state directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (remove nothing; stop the other job or choose another --state-dir)", ErrStateDirLocked, dir)
		}
		return nil, fmt.Errorf("engine: lock state directory %s: %w", dir, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

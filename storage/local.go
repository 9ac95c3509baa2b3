package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// syscallENOTDIR: an element of the name is a file, so the object cannot exist.
var syscallENOTDIR error = syscall.ENOTDIR

// tempPrefix starts the base name of every temporary file. ValidName rejects
// elements that start with '.', so a temp file never collides with an object
// and is never listed.
const tempPrefix = ".tmp-"

// Local is a BlobStore in a local directory. Object "a/b" is the file
// <dir>/a/b. Writes go to a temporary file in the target directory, which is
// fsynced and then renamed (Put) or hard-linked (PutIfAbsent) into place, and
// the directory is fsynced, so a crash leaves the old object, the new one, or
// none, plus possibly a temporary file that Sweep removes.
type Local struct {
	dir string
}

var _ BlobStore = (*Local)(nil)

// NewLocal returns a store rooted at dir, creating it if needed.
func NewLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: create store directory: %w", err)
	}
	return &Local{dir: dir}, nil
}

// Dir returns the root directory.
func (l *Local) Dir() string { return l.dir }

func (l *Local) path(name string) string {
	return filepath.Join(l.dir, filepath.FromSlash(name))
}

// Put implements BlobStore.
func (l *Local) Put(ctx context.Context, name string, r io.Reader) error {
	return l.put(ctx, OpPut, name, r)
}

// PutIfAbsent implements BlobStore. The temporary file is hard-linked to the
// final name; link fails if the name exists, so creation is atomic.
func (l *Local) PutIfAbsent(ctx context.Context, name string, r io.Reader) error {
	return l.put(ctx, OpPutIfAbsent, name, r)
}

func (l *Local) put(ctx context.Context, op Op, name string, r io.Reader) (err error) {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: %s %s: %w", op, name, err)
	}
	final := l.path(name)
	dir := filepath.Dir(final)
	if op == OpPutIfAbsent {
		if _, err := os.Lstat(final); err == nil {
			return fmt.Errorf("%w: %s", ErrExists, name)
		}
	}
	tmp, err := l.createTemp(dir, filepath.Base(final))
	if err != nil {
		return fmt.Errorf("storage: %s %s: %w", op, name, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if tmp != nil {
			tmp.Close()
		}
		os.Remove(tmpName) // after a rename this is a no-op; after a link it drops the extra name
		if err != nil {
			err = fmt.Errorf("storage: %s %s: %w", op, name, err)
		}
	}()
	if _, err := io.Copy(tmp, ctxReader{ctx, r}); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	err = tmp.Close()
	tmp = nil
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if op == OpPutIfAbsent {
		if err := os.Link(tmpName, final); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return ErrExists
			}
			return err
		}
	} else if err := os.Rename(tmpName, final); err != nil {
		return err
	}
	return syncDir(dir)
}

// createTemp creates a temporary file in dir, creating dir if needed. It
// retries when a concurrent Delete removed the just-created, empty directory.
func (l *Local) createTemp(dir, base string) (*os.File, error) {
	// A Delete can remove an empty parent between MkdirAll's steps too.
	var err error
	for range 100 {
		if err = os.MkdirAll(dir, 0o755); err == nil {
			var f *os.File
			if f, err = os.CreateTemp(dir, tempPrefix+base+"-*"); err == nil {
				return f, nil
			}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get implements BlobStore.
func (l *Local) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("storage: get %s: %w", name, err)
	}
	f, err := os.Open(l.path(name))
	if err != nil {
		return nil, l.mapErr(OpGet, name, err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return nil, l.mapErr(OpGet, name, err)
	}
	return f, nil
}

// Stat implements BlobStore.
func (l *Local) Stat(ctx context.Context, name string) (int64, error) {
	if err := ValidName(name); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("storage: stat %s: %w", name, err)
	}
	st, err := os.Stat(l.path(name))
	if err != nil {
		return 0, l.mapErr(OpStat, name, err)
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return st.Size(), nil
}

func (l *Local) mapErr(op Op, name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscallENOTDIR) {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return fmt.Errorf("storage: %s %s: %w", op, name, err)
}

// List implements BlobStore. It skips temporary files and descends only into
// directories that can hold names with the prefix.
func (l *Local) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var objs []ObjectInfo
	err := filepath.WalkDir(l.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != l.dir {
				return nil // removed by a concurrent Delete
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == l.dir {
			return nil
		}
		rel, err := filepath.Rel(l.dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			// Descend if some name under rel/ can start with prefix.
			if strings.HasPrefix(prefix, rel+"/") || strings.HasPrefix(rel+"/", prefix) {
				return nil
			}
			return fs.SkipDir
		}
		if d.Type().IsRegular() && strings.HasPrefix(rel, prefix) && ValidName(rel) == nil {
			fi, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed by a concurrent Delete
			} else if err != nil {
				return err
			}
			objs = append(objs, ObjectInfo{Name: rel, Size: fi.Size(), ModTime: fi.ModTime()})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: list %q: %w", prefix, err)
	}
	slices.SortFunc(objs, func(a, b ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
	return objs, nil
}

// Delete implements BlobStore. It also removes directories left empty, up to
// the root, so dropped checkpoints leave no chk-<id> directory behind.
func (l *Local) Delete(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: delete %s: %w", name, err)
	}
	p := l.path(name)
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscallENOTDIR) {
			return nil
		}
		return fmt.Errorf("storage: delete %s: %w", name, err)
	}
	dir := filepath.Dir(p)
	if err := syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: delete %s: %w", name, err)
	}
	for dir != l.dir && strings.HasPrefix(dir, l.dir) {
		if os.Remove(dir) != nil { // not empty, or already gone
			break
		}
		dir = filepath.Dir(dir)
	}
	return nil
}

// Sweep removes temporary files last modified before cutoff, left behind by
// writers that crashed. Pass now minus a grace period longer than any upload,
// so files of writes in progress survive. It returns how many it removed.
func (l *Local) Sweep(ctx context.Context, cutoff time.Time) (int, error) {
	n := 0
	err := filepath.WalkDir(l.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if info.ModTime().Before(cutoff) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("storage: sweep: %w", err)
	}
	return n, nil
}

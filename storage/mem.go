package storage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// Mem is an in-memory BlobStore for tests.
type Mem struct {
	now func() time.Time
	mu  struct {
		sync.Mutex
		objects map[string]memObject
	}
}

type memObject struct {
	data []byte
	mod  time.Time
}

var _ BlobStore = (*Mem)(nil)

// NewMem returns an empty in-memory store.
func NewMem() *Mem { return NewMemClock(time.Now) }

// NewMemClock returns an empty in-memory store whose objects are stamped
// with now() when written, for tests of what depends on object ages.
func NewMemClock(now func() time.Time) *Mem {
	m := &Mem{now: now}
	m.mu.objects = make(map[string]memObject)
	return m
}

func (m *Mem) read(ctx context.Context, op Op, name string, r io.Reader) ([]byte, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(ctxReader{ctx, r})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("storage: %s %s: %w", op, name, err)
	}
	return data, nil
}

// Put implements BlobStore.
func (m *Mem) Put(ctx context.Context, name string, r io.Reader) error {
	data, err := m.read(ctx, OpPut, name, r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.objects[name] = memObject{data, m.now()}
	return nil
}

// PutIfAbsent implements BlobStore.
func (m *Mem) PutIfAbsent(ctx context.Context, name string, r io.Reader) error {
	data, err := m.read(ctx, OpPutIfAbsent, name, r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.mu.objects[name]; ok {
		return fmt.Errorf("%w: %s", ErrExists, name)
	}
	m.mu.objects[name] = memObject{data, m.now()}
	return nil
}

func (m *Mem) lookup(ctx context.Context, op Op, name string) ([]byte, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("storage: %s %s: %w", op, name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.mu.objects[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return o.data, nil
}

// Get implements BlobStore. Stored bytes are never modified in place, so
// the reader needs no copy.
func (m *Mem) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	data, err := m.lookup(ctx, OpGet, name)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// Stat implements BlobStore.
func (m *Mem) Stat(ctx context.Context, name string) (int64, error) {
	data, err := m.lookup(ctx, OpStat, name)
	return int64(len(data)), err
}

// List implements BlobStore.
func (m *Mem) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("storage: list %q: %w", prefix, err)
	}
	m.mu.Lock()
	var objs []ObjectInfo
	for name, o := range m.mu.objects {
		if strings.HasPrefix(name, prefix) {
			objs = append(objs, ObjectInfo{Name: name, Size: int64(len(o.data)), ModTime: o.mod})
		}
	}
	m.mu.Unlock()
	slices.SortFunc(objs, func(a, b ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
	return objs, nil
}

// Delete implements BlobStore.
func (m *Mem) Delete(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: delete %s: %w", name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mu.objects, name)
	return nil
}

package storage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// Mem is an in-memory BlobStore for tests.
type Mem struct {
	mu struct {
		sync.Mutex
		objects map[string][]byte
	}
}

var _ BlobStore = (*Mem)(nil)

// NewMem returns an empty in-memory store.
func NewMem() *Mem {
	m := &Mem{}
	m.mu.objects = make(map[string][]byte)
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
	m.mu.objects[name] = data
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
	m.mu.objects[name] = data
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
	data, ok := m.mu.objects[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return data, nil
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
func (m *Mem) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("storage: list %q: %w", prefix, err)
	}
	m.mu.Lock()
	var names []string
	for name := range m.mu.objects {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	m.mu.Unlock()
	sort.Strings(names)
	return names, nil
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

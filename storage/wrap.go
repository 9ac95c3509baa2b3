package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrInjected is a ready-made error for Inject predicates to return.
var ErrInjected = errors.New("storage: injected error")

// Inject wraps s so that every call first asks fail(op, name) — name is the
// prefix for OpList — and, if it returns an error, returns that error
// without calling s. Like pebble's vfs/errorfs it fails chosen operations
// by predicate; fail must be safe for concurrent use.
func Inject(s BlobStore, fail func(op Op, name string) error) BlobStore {
	return &injector{s: s, fail: fail}
}

type injector struct {
	s    BlobStore
	fail func(Op, string) error
}

func (i *injector) Put(ctx context.Context, name string, r io.Reader) error {
	if err := i.fail(OpPut, name); err != nil {
		return err
	}
	return i.s.Put(ctx, name, r)
}

func (i *injector) PutIfAbsent(ctx context.Context, name string, r io.Reader) error {
	if err := i.fail(OpPutIfAbsent, name); err != nil {
		return err
	}
	return i.s.PutIfAbsent(ctx, name, r)
}

func (i *injector) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := i.fail(OpGet, name); err != nil {
		return nil, err
	}
	return i.s.Get(ctx, name)
}

func (i *injector) Stat(ctx context.Context, name string) (int64, error) {
	if err := i.fail(OpStat, name); err != nil {
		return 0, err
	}
	return i.s.Stat(ctx, name)
}

func (i *injector) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := i.fail(OpList, prefix); err != nil {
		return nil, err
	}
	return i.s.List(ctx, prefix)
}

func (i *injector) Delete(ctx context.Context, name string) error {
	if err := i.fail(OpDelete, name); err != nil {
		return err
	}
	return i.s.Delete(ctx, name)
}

// Call is one BlobStore call recorded by Logging.
type Call struct {
	Op   Op
	Name string // the prefix for OpList
	Err  error
}

// String formats the call as "op name", plus " (error)" if it failed.
func (c Call) String() string {
	if c.Err != nil {
		return fmt.Sprintf("%s %s (error)", c.Op, c.Name)
	}
	return fmt.Sprintf("%s %s", c.Op, c.Name)
}

// Logging is a BlobStore that records every call to the store it wraps, for
// golden tests of which objects a checkpoint wrote and deleted.
type Logging struct {
	s  BlobStore
	mu struct {
		sync.Mutex
		calls []Call
	}
}

var _ BlobStore = (*Logging)(nil)

// NewLogging wraps s.
func NewLogging(s BlobStore) *Logging { return &Logging{s: s} }

// Calls returns the calls so far, in completion order. Calls made
// concurrently finish in any order; sort before comparing if needed.
func (l *Logging) Calls() []Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Call(nil), l.mu.calls...)
}

// Reset forgets the recorded calls.
func (l *Logging) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.calls = nil
}

func (l *Logging) record(op Op, name string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.calls = append(l.mu.calls, Call{Op: op, Name: name, Err: err})
}

// Put implements BlobStore.
func (l *Logging) Put(ctx context.Context, name string, r io.Reader) error {
	err := l.s.Put(ctx, name, r)
	l.record(OpPut, name, err)
	return err
}

// PutIfAbsent implements BlobStore.
func (l *Logging) PutIfAbsent(ctx context.Context, name string, r io.Reader) error {
	err := l.s.PutIfAbsent(ctx, name, r)
	l.record(OpPutIfAbsent, name, err)
	return err
}

// Get implements BlobStore.
func (l *Logging) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	rc, err := l.s.Get(ctx, name)
	l.record(OpGet, name, err)
	return rc, err
}

// Stat implements BlobStore.
func (l *Logging) Stat(ctx context.Context, name string) (int64, error) {
	n, err := l.s.Stat(ctx, name)
	l.record(OpStat, name, err)
	return n, err
}

// List implements BlobStore.
func (l *Logging) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	names, err := l.s.List(ctx, prefix)
	l.record(OpList, prefix, err)
	return names, err
}

// Delete implements BlobStore.
func (l *Logging) Delete(ctx context.Context, name string) error {
	err := l.s.Delete(ctx, name)
	l.record(OpDelete, name, err)
	return err
}

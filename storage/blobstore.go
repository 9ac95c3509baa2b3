package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Sentinel errors. Operations wrap them with the object name; test with errors.Is.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("storage: object not found")
	// ErrExists: PutIfAbsent found the object already present.
	ErrExists = errors.New("storage: object exists")
	// ErrInvalidName: the name breaks the rules of ValidName or of the layout.
	ErrInvalidName = errors.New("storage: invalid object name")
	// ErrCorruptManifest: the manifest bytes do not decode or fail validation.
	ErrCorruptManifest = errors.New("storage: corrupt manifest")
	// ErrUnknownVersion: the manifest has a format version this build cannot read.
	ErrUnknownVersion = errors.New("storage: unknown manifest version")
	// ErrNoValidCheckpoint: checkpoints exist but none can be restored.
	ErrNoValidCheckpoint = errors.New("storage: no valid checkpoint")
)

// BlobStore holds checkpoint objects. Implementations must be safe for
// concurrent use. Every method validates name with ValidName first.
//
// A name that is a proper '/'-prefix of another object's name (an object "a"
// next to "a/b") is not supported; the layout of this package never makes one.
type BlobStore interface {
	// Put writes the object from r, replacing any previous one. The object is
	// visible only once complete: a reader sees the old object, the new one,
	// or none, never a part. If r fails, nothing changes.
	Put(ctx context.Context, name string, r io.Reader) error
	// PutIfAbsent is Put that fails with ErrExists when the object exists.
	// Creation is atomic: of concurrent callers, exactly one succeeds.
	PutIfAbsent(ctx context.Context, name string, r io.Reader) error
	// Get opens the object for reading; ErrNotFound if it does not exist.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// Stat returns the object's size in bytes; ErrNotFound if it does not exist.
	Stat(ctx context.Context, name string) (int64, error)
	// List returns all objects whose names start with prefix (a plain
	// string prefix, not necessarily whole elements; "" lists all), sorted
	// by name.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, name string) error
}

// ObjectInfo describes a stored object, as List returns it.
type ObjectInfo struct {
	Name string
	Size int64
	// ModTime is when the object was last written, by the store's clock
	// (the S3 server's, or the file system's): garbage collection leaves
	// unreferenced objects younger than a grace period alone, as they may
	// belong to a checkpoint being written.
	ModTime time.Time
}

// Names returns the names of objs.
func Names(objs []ObjectInfo) []string {
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = o.Name
	}
	return names
}

// Name limits.
const (
	MaxNameLen    = 1024
	MaxElementLen = 255
)

// ValidName reports whether name may name an object: non-empty, at most
// MaxNameLen bytes, '/'-separated elements that are non-empty, at most
// MaxElementLen bytes, do not start with '.' (which also rules out "." and
// ".." and reserves dot names for temporary files), and contain no
// backslash and no control characters. It returns an error wrapping
// ErrInvalidName, or nil.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: %q: length %d not in [1, %d]", ErrInvalidName, name, len(name), MaxNameLen)
	}
	for elem := range strings.SplitSeq(name, "/") {
		if err := validElement(elem); err != nil {
			return fmt.Errorf("%w: %q: %s", ErrInvalidName, name, err)
		}
	}
	return nil
}

// validElement checks one path element; it returns a bare reason.
func validElement(elem string) error {
	switch {
	case elem == "":
		return errors.New("empty element")
	case len(elem) > MaxElementLen:
		return fmt.Errorf("element longer than %d bytes", MaxElementLen)
	case elem[0] == '.':
		return errors.New("element starts with '.'")
	}
	for i := 0; i < len(elem); i++ {
		if c := elem[i]; c == '\\' || c < 0x20 || c == 0x7f {
			return fmt.Errorf("byte %#x not allowed", c)
		}
	}
	return nil
}

// ValidElement reports whether s may be one element of an object name (a
// file name without separators); it returns an error wrapping ErrInvalidName.
func ValidElement(s string) error {
	if err := validElement(s); err != nil {
		return fmt.Errorf("%w: element %q: %s", ErrInvalidName, s, err)
	}
	if strings.Contains(s, "/") {
		return fmt.Errorf("%w: element %q: contains '/'", ErrInvalidName, s)
	}
	return nil
}

// Op names a BlobStore operation, for fault injection and logging.
type Op uint8

// The operations of BlobStore.
const (
	OpPut Op = iota + 1
	OpPutIfAbsent
	OpGet
	OpStat
	OpList
	OpDelete
)

func (o Op) String() string {
	switch o {
	case OpPut:
		return "put"
	case OpPutIfAbsent:
		return "put-if-absent"
	case OpGet:
		return "get"
	case OpStat:
		return "stat"
	case OpList:
		return "list"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// ctxReader fails reads once ctx is done, so long copies stop on cancellation.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

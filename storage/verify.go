package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
)

// WriteManifest encodes m and commits it as chk-<id>/MANIFEST with
// PutIfAbsent. Call it last, after every referenced object is stored. An
// error wrapping ErrExists means checkpoint id was already committed (by
// another coordinator); it must not be retried.
func WriteManifest(ctx context.Context, s BlobStore, m *Manifest) error {
	data, err := Encode(m)
	if err != nil {
		return err
	}
	name := ManifestObject(m.CheckpointID)
	if err := s.PutIfAbsent(ctx, name, bytes.NewReader(data)); err != nil {
		if errors.Is(err, ErrExists) {
			return fmt.Errorf("storage: commit checkpoint %d: %w", m.CheckpointID, err)
		}
		return err
	}
	return nil
}

// ReadManifest reads and decodes the manifest of checkpoint id. A missing
// manifest is ErrNotFound; a manifest that does not decode, or records a
// different checkpoint id, is ErrCorruptManifest (or ErrUnknownVersion).
func ReadManifest(ctx context.Context, s BlobStore, id uint64) (*Manifest, error) {
	name := ManifestObject(id)
	rc, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(ctxReader{ctx, rc}, MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("storage: read %s: %w", name, err)
	}
	m, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if m.CheckpointID != id {
		return nil, fmt.Errorf("%w: %s: records checkpoint %d", ErrCorruptManifest, name, m.CheckpointID)
	}
	return m, nil
}

// ProblemKind says what is wrong with a referenced object.
type ProblemKind uint8

// Kinds of problems Verify reports.
const (
	ProblemMissing    ProblemKind = iota + 1 // the object does not exist
	ProblemSize                              // it exists with another size
	ProblemChecksum                          // its CRC32C differs
	ProblemUnreadable                        // reading it failed (Err says why)
	ProblemManifest                          // the manifest itself is missing, corrupt or of an unknown version
)

func (k ProblemKind) String() string {
	switch k {
	case ProblemMissing:
		return "missing"
	case ProblemSize:
		return "wrong size"
	case ProblemChecksum:
		return "wrong checksum"
	case ProblemUnreadable:
		return "unreadable"
	case ProblemManifest:
		return "bad manifest"
	}
	return fmt.Sprintf("problem(%d)", uint8(k))
}

// Problem is one damaged object of a checkpoint.
type Problem struct {
	Object    string // the damaged object's name
	Kind      ProblemKind
	Want, Got uint64 // size or CRC32C, for ProblemSize and ProblemChecksum
	Err       error  // for ProblemUnreadable and ProblemManifest
}

func (p Problem) String() string {
	switch p.Kind {
	case ProblemSize:
		return fmt.Sprintf("%s: size %d, want %d", p.Object, p.Got, p.Want)
	case ProblemChecksum:
		return fmt.Sprintf("%s: crc32c %08x, want %08x", p.Object, p.Got, p.Want)
	case ProblemUnreadable, ProblemManifest:
		return fmt.Sprintf("%s: %s: %v", p.Object, p.Kind, p.Err)
	}
	return fmt.Sprintf("%s: %s", p.Object, p.Kind)
}

// Verify checks that every object m references exists with the recorded
// size and CRC32C, reading each distinct object once, streaming. It returns
// one Problem per damaged object, sorted by name; none means m is
// restorable. If ctx ends, the object being checked is reported unreadable.
func Verify(ctx context.Context, s BlobStore, m *Manifest) []Problem {
	wants := make(map[string][]want)
	for _, op := range m.Operators {
		for _, st := range op.Subtasks {
			for _, f := range st.Files {
				w := want{f.Size, f.CRC32C}
				ws := wants[f.Object]
				dup := false
				for _, x := range ws {
					dup = dup || x == w
				}
				if !dup {
					wants[f.Object] = append(ws, w)
				}
			}
		}
	}
	names := make([]string, 0, len(wants))
	for name := range wants {
		names = append(names, name)
	}
	sort.Strings(names)
	// Objects are checked in parallel: checksums are CPU-bound on a local
	// disk (1.2 GB took 0.25 s on one core here) and latency-bound on S3.
	found := make([]*Problem, len(names))
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(len(names), max(verifyWorkers, runtime.GOMAXPROCS(0))) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(names); i = int(next.Add(1) - 1) {
				found[i] = verifyObject(ctx, s, names[i], wants[names[i]])
			}
		})
	}
	wg.Wait()
	var problems []Problem
	for _, p := range found {
		if p != nil {
			problems = append(problems, *p)
		}
	}
	return problems
}

// verifyWorkers is the least number of objects Verify checks at once.
const verifyWorkers = 4

// verifyObject checks one object against what the manifest's references
// want of it; nil means it is intact.
func verifyObject(ctx context.Context, s BlobStore, name string, ws []want) *Problem {
	size, err := s.Stat(ctx, name)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return &Problem{Object: name, Kind: ProblemMissing}
		}
		return &Problem{Object: name, Kind: ProblemUnreadable, Err: err}
	}
	if p, ok := sizeProblem(name, size, ws); ok {
		return &p
	}
	crc, n, err := checksum(ctx, s, name)
	switch {
	case err != nil:
		return &Problem{Object: name, Kind: ProblemUnreadable, Err: err}
	case n != size: // changed under us
		return &Problem{Object: name, Kind: ProblemSize, Want: uint64(size), Got: uint64(n)}
	}
	for _, w := range ws {
		if crc != w.crc {
			return &Problem{Object: name, Kind: ProblemChecksum, Want: uint64(w.crc), Got: uint64(crc)}
		}
	}
	return nil
}

// sizeProblem reports the first recorded size that differs from size. Two
// references that disagree about one object are a problem either way.
func sizeProblem(name string, size int64, ws []want) (Problem, bool) {
	for _, w := range ws {
		if w.size != size {
			return Problem{Object: name, Kind: ProblemSize, Want: uint64(w.size), Got: uint64(size)}, true
		}
	}
	return Problem{}, false
}

// want is what one manifest reference expects of an object.
type want struct {
	size int64
	crc  uint32
}

func checksum(ctx context.Context, s BlobStore, name string) (uint32, int64, error) {
	rc, err := s.Get(ctx, name)
	if err != nil {
		return 0, 0, err
	}
	defer rc.Close()
	n, crc, err := ChecksumOf(ctx, rc)
	return crc, n, err
}

// Referenced returns the set of objects the manifests need: every file they
// reference and their own MANIFEST objects.
func Referenced(manifests []*Manifest) map[string]bool {
	ref := make(map[string]bool)
	for _, m := range manifests {
		ref[ManifestObject(m.CheckpointID)] = true
		for _, op := range m.Operators {
			for _, st := range op.Subtasks {
				for _, f := range st.Files {
					ref[f.Object] = true
				}
			}
		}
	}
	return ref
}

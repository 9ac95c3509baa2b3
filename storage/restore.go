package storage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ManifestState is what reading and verifying one checkpoint found.
type ManifestState uint8

// States of a checkpoint candidate.
const (
	ManifestOK      ManifestState = iota + 1 // decodes and all objects verify
	ManifestDamaged                          // present but corrupt, or objects damaged
	ManifestMissing                          // no manifest: never committed, so not a checkpoint
)

func (s ManifestState) String() string {
	switch s {
	case ManifestOK:
		return "ok"
	case ManifestDamaged:
		return "damaged"
	case ManifestMissing:
		return "missing manifest"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Candidate is the observed state of one checkpoint directory.
type Candidate struct {
	ID       uint64
	State    ManifestState
	Problems []Problem // for ManifestDamaged
}

// RestoreKind is the outcome of ChooseRestore.
type RestoreKind uint8

// Outcomes of ChooseRestore.
const (
	StartFresh  RestoreKind = iota + 1 // no checkpoint exists
	RestoreFrom                        // restore checkpoint Decision.ID
)

func (k RestoreKind) String() string {
	switch k {
	case StartFresh:
		return "start fresh"
	case RestoreFrom:
		return "restore"
	}
	return fmt.Sprintf("restore-kind(%d)", uint8(k))
}

// Decision is what recovery should do.
type Decision struct {
	Kind    RestoreKind
	ID      uint64      // for RestoreFrom
	Skipped []Candidate // newer candidates passed over, newest first
}

// ChooseRestore picks the restore point from the observed candidates, in
// any order: the newest ManifestOK one; candidates without a manifest were
// never committed and are skipped; if none exists but some have a manifest
// (all damaged), it fails with an error wrapping ErrNoValidCheckpoint that
// lists the damaged objects and says how to start fresh deliberately. It
// never silently starts empty while a committed checkpoint exists.
func ChooseRestore(found []Candidate) (Decision, error) {
	cs := append([]Candidate(nil), found...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].ID > cs[j].ID })
	var skipped []Candidate
	damaged := 0
	for _, c := range cs {
		switch c.State {
		case ManifestOK:
			return Decision{Kind: RestoreFrom, ID: c.ID, Skipped: skipped}, nil
		case ManifestMissing:
		default: // damaged, or an unknown state: never treat it as absent
			damaged++
		}
		skipped = append(skipped, c)
	}
	if damaged == 0 {
		return Decision{Kind: StartFresh, Skipped: skipped}, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d checkpoint(s) found, none restorable:", damaged)
	for _, c := range skipped {
		if c.State == ManifestMissing {
			continue
		}
		fmt.Fprintf(&b, "\n  checkpoint %d:", c.ID)
		if len(c.Problems) == 0 {
			fmt.Fprintf(&b, " %s", c.State)
		}
		for _, p := range c.Problems {
			fmt.Fprintf(&b, "\n    %s", p)
		}
	}
	b.WriteString("\nrestore the damaged objects, or start with --restore none to discard all state and begin empty")
	return Decision{Skipped: skipped}, fmt.Errorf("%w: %s", ErrNoValidCheckpoint, b.String())
}

// Inspect reads and verifies checkpoint id and returns what it found, with
// the manifest when the state is ManifestOK. Errors that do not prove damage
// (a cancelled ctx, a failing read) are returned as errors, not as damage.
func Inspect(ctx context.Context, s BlobStore, id uint64) (Candidate, *Manifest, error) {
	c := Candidate{ID: id}
	m, err := ReadManifest(ctx, s, id)
	switch {
	case errors.Is(err, ErrNotFound):
		c.State = ManifestMissing
		return c, nil, nil
	case errors.Is(err, ErrCorruptManifest) || errors.Is(err, ErrUnknownVersion):
		c.State = ManifestDamaged
		c.Problems = []Problem{{Object: ManifestObject(id), Kind: ProblemManifest, Err: err}}
		return c, nil, nil
	case err != nil:
		return c, nil, err
	}
	if err := ctx.Err(); err != nil {
		return c, nil, err
	}
	c.Problems = Verify(ctx, s, m)
	if err := ctx.Err(); err != nil {
		return c, nil, err
	}
	for _, p := range c.Problems {
		// A read that failed says nothing about the object: retry rather
		// than fall back to an older checkpoint over a transient error.
		if p.Kind == ProblemUnreadable {
			return c, nil, fmt.Errorf("storage: verify checkpoint %d: %s: %w", id, p.Object, p.Err)
		}
	}
	if len(c.Problems) > 0 {
		c.State = ManifestDamaged
		return c, nil, nil
	}
	c.State = ManifestOK
	return c, m, nil
}

// FindRestorePoint lists the checkpoints in s, inspects them newest first
// until one is restorable, and decides with ChooseRestore. The manifest is
// non-nil exactly when the decision is RestoreFrom.
func FindRestorePoint(ctx context.Context, s BlobStore) (Decision, *Manifest, error) {
	ids, err := ListCheckpoints(ctx, s)
	if err != nil {
		return Decision{}, nil, err
	}
	var found []Candidate
	var chosen *Manifest
	for i := len(ids) - 1; i >= 0 && chosen == nil; i-- {
		c, m, err := Inspect(ctx, s, ids[i])
		if err != nil {
			return Decision{}, nil, err
		}
		found = append(found, c)
		chosen = m
	}
	d, err := ChooseRestore(found)
	if err != nil || d.Kind != RestoreFrom {
		return d, nil, err
	}
	return d, chosen, nil
}

// OpenCheckpoint reads the checkpoint at path: DIR/chk-ID (whose objects
// must all be there with their sizes and CRC-32C, as Inspect checks) or a
// checkpoint directory DIR, meaning its newest valid checkpoint
// (FindRestorePoint). open opens DIR, a directory or s3://bucket/prefix.
func OpenCheckpoint(ctx context.Context, path string, open func(dir string) (BlobStore, error)) (BlobStore, *Manifest, error) {
	trimmed := strings.TrimRight(path, "/")
	if trimmed == "" {
		trimmed = path
	}
	slash := strings.LastIndex(trimmed, "/")
	if id, ok := ParseCheckpointDir(trimmed[slash+1:]); ok {
		parent := "."
		if slash > 0 {
			parent = trimmed[:slash]
		}
		store, err := open(parent)
		if err != nil {
			return nil, nil, err
		}
		c, m, err := Inspect(ctx, store, id)
		if err != nil {
			return nil, nil, fmt.Errorf("checkpoint %d: %w", id, err)
		}
		if c.State != ManifestOK {
			var ps []string
			for _, p := range c.Problems {
				ps = append(ps, p.String())
			}
			return nil, nil, fmt.Errorf("checkpoint %d: %s: %s", id, c.State, strings.Join(ps, "; "))
		}
		return store, m, nil
	}
	store, err := open(trimmed)
	if err != nil {
		return nil, nil, err
	}
	_, m, err := FindRestorePoint(ctx, store)
	if err != nil {
		return nil, nil, err
	}
	if m == nil {
		return nil, nil, errors.New("no checkpoints in this directory")
	}
	return store, m, nil
}

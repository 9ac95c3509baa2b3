package storage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Garbage is an object that garbage collection deletes, and why.
type Garbage struct {
	Object string
	Size   int64
	Reason string
}

// Collect decides what garbage collection deletes from a store holding
// objs, and returns it in the order to delete it: manifests first (so a
// dropped checkpoint stops being a checkpoint before its files go), then
// everything else, each group sorted by name.
//
// retained are the checkpoints kept. known are other manifests that
// decode (dropped or newer ones), which only name the reasons and keep what
// newer checkpoints reference. Let newest be the newest retained id (0 if
// none). Collect deletes
//   - the manifest and private files of every checkpoint older than newest
//     that is not retained (dropped by retention, or never committed);
//   - a shared object that only manifests older than newest reference;
//   - an orphan, left by an upload that never committed — a private file of
//     a checkpoint without a manifest, or a shared object no manifest
//     references — once it is at least grace old at now.
//
// It never deletes an object a retained manifest references, anything of a
// committed checkpoint newer than newest or what such a checkpoint's
// manifest references, or a name this package did not make. While a
// manifest newer than newest does not decode (a damaged one, or one of a
// newer format), what it references is unknown, so no shared object is
// deleted as an orphan.
//
// Objects of a checkpoint being written are orphans until its manifest is
// written, so the caller must not run Collect with a grace shorter than an
// upload may take while a checkpoint may be in flight — unless, as the
// engine's retention does, it runs only when no checkpoint is in flight.
func Collect(objs []ObjectInfo, retained, known []*Manifest, now time.Time, grace time.Duration) []Garbage {
	var newest uint64
	for _, m := range retained {
		newest = max(newest, m.CheckpointID)
	}
	keep := Referenced(retained)
	// refs: shared object → ids of known manifests referencing it.
	refs := make(map[string][]uint64)
	decoded := make(map[uint64]bool)
	for _, m := range retained {
		decoded[m.CheckpointID] = true
	}
	for _, m := range known {
		decoded[m.CheckpointID] = true
		seen := map[string]bool{}
		for _, op := range m.Operators {
			for _, st := range op.Subtasks {
				for _, f := range st.Files {
					if !seen[f.Object] {
						seen[f.Object] = true
						refs[f.Object] = append(refs[f.Object], m.CheckpointID)
					}
				}
			}
		}
	}
	committed := manifestIDs(objs)
	unknownNewer := false // a manifest newer than newest that does not decode
	for id := range committed {
		unknownNewer = unknownNewer || id > newest && !decoded[id]
	}
	orphan := func(o ObjectInfo) bool { return now.Sub(o.ModTime) >= grace }
	var manifests, rest []Garbage
	for _, o := range objs {
		if keep[o.Name] {
			continue
		}
		obj, err := ParseObject(o.Name)
		if err != nil {
			continue
		}
		g := Garbage{Object: o.Name, Size: o.Size}
		switch obj.Kind {
		case KindManifest:
			if obj.Checkpoint >= newest {
				continue
			}
			g.Reason = fmt.Sprintf("manifest of checkpoint %d, dropped by retention", obj.Checkpoint)
			if !decoded[obj.Checkpoint] {
				g.Reason = fmt.Sprintf("damaged manifest of checkpoint %d, older than the retained ones", obj.Checkpoint)
			}
			manifests = append(manifests, g)
			continue
		case KindPrivate:
			switch {
			case committed[obj.Checkpoint] && obj.Checkpoint < newest:
				g.Reason = fmt.Sprintf("file of checkpoint %d, dropped by retention", obj.Checkpoint)
			case committed[obj.Checkpoint]:
				continue
			case obj.Checkpoint < newest:
				g.Reason = fmt.Sprintf("file of checkpoint %d, never committed (no manifest; checkpoint %d completed after it)", obj.Checkpoint, newest)
			case orphan(o):
				g.Reason = fmt.Sprintf("file of checkpoint %d, never committed (no manifest), written %s ago", obj.Checkpoint, age(now, o))
			default:
				continue
			}
		case KindShared:
			ids := refs[o.Name]
			switch {
			case len(ids) > 0 && slices.Max(ids) > newest:
				continue
			case len(ids) > 0:
				g.Reason = "shared file referenced only by checkpoints dropped by retention: " + joinIDs(ids)
			case !unknownNewer && orphan(o):
				g.Reason = fmt.Sprintf("shared file referenced by no manifest, written %s ago", age(now, o))
			default:
				continue
			}
		}
		rest = append(rest, g)
	}
	byName := func(a, b Garbage) int { return strings.Compare(a.Object, b.Object) }
	slices.SortFunc(manifests, byName)
	slices.SortFunc(rest, byName)
	return append(manifests, rest...)
}

func age(now time.Time, o ObjectInfo) time.Duration {
	return max(now.Sub(o.ModTime), 0).Round(time.Second)
}

func joinIDs(ids []uint64) string {
	s := slices.Clone(ids)
	slices.Sort(s)
	parts := make([]string, len(s))
	for i, id := range s {
		parts[i] = fmt.Sprint(id)
	}
	return strings.Join(parts, ", ")
}

// GCPlan is what garbage collection of a checkpoint directory would do.
type GCPlan struct {
	Retained  []uint64  // the checkpoints kept, ascending
	Damaged   []uint64  // checkpoints whose manifest does not decode
	Delete    []Garbage // in the order to delete
	manifests map[uint64]bool
}

// PlanGC reads every manifest in s and plans a garbage collection that
// keeps the newest retain checkpoints whose manifests decode (everything
// they reference included) and deletes what Collect returns; orphans must
// be at least grace old. A manifest of a format this build cannot read
// refuses the plan: what it references is unknown.
func PlanGC(ctx context.Context, s BlobStore, retain int, grace time.Duration, now time.Time) (*GCPlan, error) {
	if retain < 1 {
		return nil, fmt.Errorf("storage: garbage collection must retain at least one checkpoint, not %d", retain)
	}
	objs, err := s.List(ctx, "")
	if err != nil {
		return nil, err
	}
	plan := &GCPlan{manifests: manifestIDs(objs)}
	var decoded []*Manifest
	for _, id := range slices.Sorted(maps.Keys(plan.manifests)) {
		m, err := ReadManifest(ctx, s, id)
		switch {
		case err == nil:
			decoded = append(decoded, m)
		case errors.Is(err, ErrUnknownVersion):
			return nil, fmt.Errorf("storage: garbage collection: checkpoint %d: %w; refusing to delete anything, since what it references is unknown", id, err)
		case errors.Is(err, ErrCorruptManifest), errors.Is(err, ErrNotFound):
			plan.Damaged = append(plan.Damaged, id)
		default:
			return nil, err
		}
	}
	cut := max(len(decoded)-retain, 0)
	retained, known := decoded[cut:], decoded[:cut]
	for _, m := range retained {
		plan.Retained = append(plan.Retained, m.CheckpointID)
	}
	plan.Delete = Collect(objs, retained, known, now, grace)
	// Belt and braces: nothing a retained manifest references.
	ref := Referenced(retained)
	for _, g := range plan.Delete {
		if ref[g.Object] {
			return nil, fmt.Errorf("storage: garbage collection: %s is referenced by a retained checkpoint; refusing (a bug)", g.Object)
		}
	}
	return plan, nil
}

// manifestIDs returns the ids of the checkpoints among objs that have a
// manifest object.
func manifestIDs(objs []ObjectInfo) map[uint64]bool {
	ids := make(map[uint64]bool)
	for _, o := range objs {
		if obj, err := ParseObject(o.Name); err == nil && obj.Kind == KindManifest {
			ids[obj.Checkpoint] = true
		}
	}
	return ids
}

// ExecuteGC deletes what plan says, in order. It first lists the manifests
// again: a checkpoint committed since the plan was made (a job writing the
// directory) that references an object of the plan stops it before
// anything is deleted. It returns the objects deleted.
func ExecuteGC(ctx context.Context, s BlobStore, plan *GCPlan) (int, error) {
	objs, err := s.List(ctx, chkPrefix)
	if err != nil {
		return 0, err
	}
	doomed := make(map[string]bool, len(plan.Delete))
	for _, g := range plan.Delete {
		doomed[g.Object] = true
	}
	for id := range manifestIDs(objs) {
		if plan.manifests[id] {
			continue
		}
		m, err := ReadManifest(ctx, s, id)
		if err != nil {
			return 0, fmt.Errorf("storage: garbage collection: checkpoint %d was committed since the plan was made, and cannot be read (%w); nothing deleted", id, err)
		}
		for obj := range Referenced([]*Manifest{m}) {
			if doomed[obj] {
				return 0, fmt.Errorf("storage: garbage collection: checkpoint %d, committed since the plan was made, references %s; nothing deleted (is a job writing this directory?)", id, obj)
			}
		}
	}
	for i, g := range plan.Delete {
		if err := s.Delete(ctx, g.Object); err != nil {
			return i, err
		}
	}
	return len(plan.Delete), nil
}

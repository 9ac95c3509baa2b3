package statebackend

import (
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// RescaleStats says what OpenRescaled did.
type RescaleStats struct {
	// Sources is the number of checkpoint directories whose key groups
	// overlap the new range; Primary is the one opened in place.
	Sources int
	Primary string
	// Excised is the number of key-group spans of the primary cut away.
	Excised int
	// Copied is the number of keys read from the other sources (only
	// their overlap with the new range) and ingested as tables, and
	// CopiedBytes their size.
	Copied      int64
	CopiedBytes int64
}

// OpenRescaled opens the keyed state of a subtask whose key groups
// (opts.KeyGroups) were held by other subtasks when the checkpoint was taken:
// checkpointDirs are their persisted snapshots (as OpenFromCheckpoint takes),
// in any order, at the same max parallelism. Snapshots whose key groups do not
// overlap the range are ignored.
//
// The snapshot with the largest overlap is opened in place, like
// OpenFromCheckpoint, and the key groups outside the range are excised (a
// virtual-table edit of Pebble's manifest: no table is rewritten or read
// beyond its bounds). From each other snapshot only the overlapping key range
// is read, through a Pebble iterator bounded to it, into one table that is
// ingested. The change logs of every snapshot are replayed, keeping only
// operations on keys of the range. Scaling out (every new range inside one old
// one) therefore reads nothing but the logs.
//
// The backend does not adopt any change-log chain: its first snapshot is a
// new base.
func OpenRescaled(dir string, checkpointDirs []string, opts Options) (*Backend, RescaleStats, error) {
	var stats RescaleStats
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	probe := &Backend{fs: fs}
	if _, err := probe.applyOptions(opts); err != nil {
		return nil, stats, err
	}
	want := probe.keyGroups
	type source struct {
		dir     string
		meta    *snapshotMeta
		overlap KeyGroupRange
	}
	var srcs []source
	for _, d := range checkpointDirs {
		meta, err := readMeta(fs, d)
		if err != nil {
			return nil, stats, err
		}
		if meta.MaxParallelism != probe.maxParallelism {
			return nil, stats, fmt.Errorf("statebackend: checkpoint %q holds max parallelism %d; options give %d (the number of key groups cannot change)",
				d, meta.MaxParallelism, probe.maxParallelism)
		}
		ov := KeyGroupRange{Start: max(want.Start, meta.KeyGroups.Start), End: min(want.End, meta.KeyGroups.End)}
		if ov.Len() == 0 {
			continue
		}
		for _, s := range srcs {
			if o := (KeyGroupRange{Start: max(s.overlap.Start, ov.Start), End: min(s.overlap.End, ov.End)}); o.Len() > 0 {
				return nil, stats, fmt.Errorf("statebackend: checkpoints %q (%v) and %q (%v) overlap", s.dir, s.meta.KeyGroups, d, meta.KeyGroups)
			}
		}
		srcs = append(srcs, source{dir: d, meta: meta, overlap: ov})
	}
	stats.Sources = len(srcs)
	if len(srcs) == 0 {
		b, err := Open(dir, opts)
		return b, stats, err
	}
	covered := 0
	for _, s := range srcs {
		covered += s.overlap.Len()
	}
	if covered != want.Len() {
		return nil, stats, fmt.Errorf("statebackend: the checkpoints cover %d of the %d key groups of %v", covered, want.Len(), want)
	}
	// The primary: the largest overlap, opened in place.
	slices.SortFunc(srcs, func(a, b source) int { return b.overlap.Len() - a.overlap.Len() })
	primary := srcs[0]
	stats.Primary = primary.dir
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, stats, fmt.Errorf("statebackend: create state directory %q: %w", dir, err)
	}
	if names, err := fs.List(dir); err != nil {
		return nil, stats, fmt.Errorf("statebackend: list %q: %w", dir, err)
	} else if len(names) > 0 {
		return nil, stats, fmt.Errorf("statebackend: restore into %q: directory is not empty", dir)
	}
	if err := linkPebbleFiles(fs, primary.dir, dir); err != nil {
		return nil, stats, err
	}
	b, err := open(dir, opts, true)
	if err != nil {
		return nil, stats, err
	}
	defer b.compactions.openGate()
	fail := func(err error) (*Backend, RescaleStats, error) {
		_ = b.Close()
		return nil, stats, fmt.Errorf("statebackend: rescaled restore into %q: %w", dir, err)
	}
	ctx := context.Background()
	old := primary.meta.KeyGroups
	for _, cut := range []KeyGroupRange{{Start: old.Start, End: want.Start - 1}, {Start: want.End + 1, End: old.End}} {
		if cut.Len() == 0 {
			continue
		}
		lo, hi := cut.KeyBounds()
		if err := b.db.Excise(ctx, pebble.KeyRange{Start: lo, End: hi}); err != nil {
			return fail(fmt.Errorf("excise %v of %q: %w", cut, primary.dir, err))
		}
		stats.Excised++
	}
	for i, s := range srcs[1:] {
		n, size, err := b.ingestRange(fs, s.dir, s.overlap, fmt.Sprintf("%s.rescale-%d", dir, i))
		if err != nil {
			return fail(err)
		}
		stats.Copied += n
		stats.CopiedBytes += size
	}
	var paths []string
	cached := map[uint32]bool{}
	b.restored = map[string]StateInfo{}
	from := map[string]string{} // state name -> the checkpoint its entry came from
	for _, s := range srcs {
		ps, err := logPaths(fs, s.dir, s.meta)
		if err != nil {
			return fail(err)
		}
		paths = append(paths, ps...)
		for _, si := range s.meta.States {
			cached[si.ID] = si.Kind == KindValue || si.Kind == KindReducing
			prev, ok := b.restored[si.Name]
			switch {
			case !ok:
			case prev.Kind != si.Kind || prev.KeyFingerprint != si.KeyFingerprint || prev.ValueFingerprint != si.ValueFingerprint:
				return fail(fmt.Errorf("%w: state %q is %s in %q and %s in %q", ErrIncompatibleState, si.Name,
					describe(si.Kind, si.KeyFingerprint, si.ValueFingerprint), s.dir,
					describe(prev.Kind, prev.KeyFingerprint, prev.ValueFingerprint), from[si.Name]))
			case prev.ValueSchema != "" || prev.KeySchema != "":
				continue // keep the entry with schemas (a snapshot of an older version has none)
			}
			b.restored[si.Name], from[si.Name] = si, s.dir
		}
	}
	if len(paths) > 0 {
		if err := b.replayLogs(paths, cached, &want); err != nil {
			return fail(err)
		}
	}
	return b, stats, nil
}

// ingestRange reads the keys of key groups r from the checkpoint directory
// src (its Pebble files, not its logs), writes them into a table and ingests
// it. tmp is a scratch directory, removed at return.
func (b *Backend) ingestRange(fs vfs.FS, src string, r KeyGroupRange, tmp string) (keys, size int64, err error) {
	if err := fs.RemoveAll(tmp); err != nil {
		return 0, 0, err
	}
	db := fs.PathJoin(tmp, "db")
	path := fs.PathJoin(tmp, "range.sst")
	if err := fs.MkdirAll(db, 0o755); err != nil {
		return 0, 0, err
	}
	defer func() { _ = fs.RemoveAll(tmp) }()
	if err := linkPebbleFiles(fs, src, db); err != nil {
		return 0, 0, err
	}
	sb, err := open(db, Options{FS: fs, MaxParallelism: b.maxParallelism, KeyGroups: r, ValueCacheSize: -1, CacheSize: 8 << 20}, true)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = sb.Close() }()
	lo, hi := r.KeyBounds()
	it, err := sb.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, 0, err
	}
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		_ = it.Close()
		return 0, 0, err
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), sstable.WriterOptions{
		TableFormat: b.db.TableFormat(),
		Comparer:    pebble.DefaultComparer,
		MergerName:  pebble.DefaultMerger.Name,
	})
	for it.First(); it.Valid(); it.Next() {
		v, verr := it.ValueAndErr()
		if verr != nil {
			err = verr
			break
		}
		if err = w.Set(it.Key(), v); err != nil {
			break
		}
		keys++
		size += int64(len(it.Key()) + len(v))
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read key groups %v of %q: %w", r, src, err)
	}
	if keys == 0 {
		return 0, 0, nil
	}
	if err := b.db.Ingest(context.Background(), []string{path}); err != nil {
		return 0, 0, fmt.Errorf("ingest key groups %v of %q: %w", r, src, err)
	}
	return keys, size, nil
}

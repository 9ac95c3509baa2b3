package statebackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Snapshot errors; check with errors.Is.
var (
	// ErrSnapshotInFlight: Snapshot was called while an earlier snapshot
	// has not ended (Release or Abort). The engine declines the checkpoint.
	ErrSnapshotInFlight = errors.New("statebackend: a snapshot is already in flight")
	// ErrSnapshotNotDone: Release was called before Persist returned.
	ErrSnapshotNotDone = errors.New("statebackend: snapshot not persisted yet")
	// ErrSnapshotAborted: Persist of a snapshot that was aborted (or whose
	// Persist had already been called).
	ErrSnapshotAborted = errors.New("statebackend: snapshot aborted")
)

// SnapshotMetaFile is the file that Persist writes into the checkpoint
// directory next to Pebble's files: the checkpoint id, key groups and
// registered states (JSON), read back by OpenFromCheckpoint.
const SnapshotMetaFile = "WEIR-SNAPSHOT"

// snapshotMeta is the content of SnapshotMetaFile.
type snapshotMeta struct {
	Version        int           `json:"version"`
	Checkpoint     uint64        `json:"checkpoint"`
	MaxParallelism int           `json:"max_parallelism"`
	KeyGroups      KeyGroupRange `json:"key_groups"`
	States         []StateInfo   `json:"states"`
	// Changelog lists the change logs to apply, in order, on top of the
	// Pebble files, which are those of the materialized checkpoint Base
	// (changelog.go). Empty: the Pebble files hold the whole state.
	Base      uint64   `json:"base,omitempty"`
	Changelog []string `json:"changelog,omitempty"`
	// KeySchema is Options.KeySchema: the schema of the current key, for
	// tools that decode state (weir state export).
	KeySchema string `json:"key_schema,omitempty"`
}

// snapshotMetaVersion 2 added Base and Changelog; version 1 is read too.
const snapshotMetaVersion = 2

// FileKind tells the files of a persisted snapshot apart.
type FileKind uint8

const (
	// FileShared is an immutable Pebble table (.sst), blob file (.blob) or
	// change log (changelog-<checkpoint>.wlog):
	// the same name and size in a later checkpoint of the same Backend is
	// the same file, so it is uploaded once and shared by checkpoints.
	FileShared FileKind = iota + 1
	// FilePrivate is a file that belongs to this checkpoint only
	// (MANIFEST-*, OPTIONS-*, marker.*, SnapshotMetaFile...).
	FilePrivate
)

func (k FileKind) String() string {
	switch k {
	case FileShared:
		return "shared"
	case FilePrivate:
		return "private"
	default:
		return fmt.Sprintf("FileKind(%d)", uint8(k))
	}
}

// SnapshotFile is one file of a persisted snapshot.
type SnapshotFile struct {
	Name string // base name in the checkpoint directory
	Size int64
	Kind FileKind
}

// SnapshotFiles lists a persisted snapshot: the checkpoint directory and its
// files, sorted by name.
type SnapshotFiles struct {
	Checkpoint uint64
	Dir        string
	Files      []SnapshotFile
}

func fileKind(name string) FileKind {
	if strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".blob") || isLog(name) {
		return FileShared
	}
	return FilePrivate
}

// Verify checks that the directory f.Dir on fs holds exactly the files of f,
// with the same sizes. The engine uses it for local recovery: a local
// checkpoint directory that passes (against the file list of the state
// handle in the manifest) can be given to OpenFromCheckpoint instead of
// downloading the files.
func (f *SnapshotFiles) Verify(fs vfs.FS) error {
	if fs == nil {
		fs = vfs.Default
	}
	got, err := listFiles(fs, f.Dir)
	if err != nil {
		return err
	}
	if !slices.Equal(got, f.Files) {
		return fmt.Errorf("statebackend: checkpoint directory %q does not match: holds %v, want %v", f.Dir, got, f.Files)
	}
	return nil
}

// listFiles lists the regular files of dir, sorted by name.
func listFiles(fs vfs.FS, dir string) ([]SnapshotFile, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("statebackend: list %q: %w", dir, err)
	}
	slices.Sort(names)
	out := make([]SnapshotFile, 0, len(names))
	for _, name := range names {
		fi, err := fs.Stat(fs.PathJoin(dir, name))
		if err != nil {
			return nil, fmt.Errorf("statebackend: list %q: %w", dir, err)
		}
		if fi.IsDir() {
			continue
		}
		out = append(out, SnapshotFile{Name: name, Size: fi.Size(), Kind: fileKind(name)})
	}
	return out, nil
}

// Snapshot is the state of a Backend frozen at a barrier by Backend.Snapshot.
// Persist makes it durable on any goroutine; the Backend's goroutine ends it
// with Release (after Persist returned) or Abort.
type Snapshot struct {
	checkpoint uint64
	db         *pebble.DB
	fs         vfs.FS
	dir        string // the backend's directory, for errors
	meta       snapshotMeta
	// frozen are the value-cache entries dirty at the barrier. Until the
	// snapshot ends only Persist reads them and nobody writes them (see
	// valueCache).
	frozen []*cacheEntry
	done   chan struct{}

	// materialize: Persist writes the frozen entries into Pebble (all
	// dirty ones) and checkpoints it; else it logs them (the entries
	// changed since the previous barrier) into log, which holds the
	// batches committed since then (nil if none), see changelog.go.
	materialize bool
	log         *logWriter
	logDir      string
	stateDir    string
	base        string // the backend's base directory and its checkpoint
	baseID      uint64
	chain       []logRef
	newLog      logRef // set by a successful logging Persist
	newBase     string // set by a successful materializing Persist (changelog on)

	// testHook, if set, is called by Persist before each step ("apply",
	// "flush", "checkpoint", "meta").
	testHook func(ctx context.Context, step string)

	mu struct {
		sync.Mutex
		state   snapState
		cancel  func() // aborts a running Persist
		applied bool   // frozen entries are in Pebble
		err     error
		files   *SnapshotFiles
	}
}

type snapState uint8

const (
	snapFrozen     snapState = iota // Persist not called
	snapPersisting                  // Persist running
	snapDone                        // Persist returned, or aborted before it ran
)

// Checkpoint returns the checkpoint id given to Backend.Snapshot.
func (s *Snapshot) Checkpoint() uint64 { return s.checkpoint }

// Done returns a channel closed when Persist has returned (the files are
// linked, or it failed) or the snapshot was aborted before Persist ran. The
// task goroutine polls it between batches and then calls Release.
func (s *Snapshot) Done() <-chan struct{} { return s.done }

// Result returns what Persist returned; valid once Done is closed.
func (s *Snapshot) Result() (*SnapshotFiles, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.files, s.mu.err
}

// Snapshot freezes the state as of now (the barrier of checkpoint) and enters
// holding mode. It is the synchronous part of a checkpoint, called on the
// task goroutine: it commits the indexed batch (at most CommitEvery writes)
// and swaps the value cache's dirty list for an empty one, so it costs the
// same whatever the number of dirty entries.
//
// Until the snapshot ends (Release or Abort), writes stay in the indexed
// batch, which reads see, and never reach Pebble, so no file of this
// snapshot holds a write made after the barrier. HeldBytes reports the size
// of that batch for back-pressure. Flush does not commit while holding.
//
// At most one snapshot is in flight: a second call fails with
// ErrSnapshotInFlight. A backend with a recorded error (Err) cannot be
// snapshotted.
func (b *Backend) Snapshot(checkpoint uint64) (*Snapshot, error) {
	if b.closed {
		return nil, ErrClosed
	}
	if b.snap != nil {
		return nil, fmt.Errorf("%w (checkpoint %d)", ErrSnapshotInFlight, b.snap.checkpoint)
	}
	if b.err != nil {
		return nil, fmt.Errorf("statebackend: snapshot %d of %q: backend failed: %w", checkpoint, b.dir, b.err)
	}
	if err := b.commit(); err != nil {
		return nil, err
	}
	s := &Snapshot{
		checkpoint: checkpoint,
		db:         b.db,
		fs:         b.fs,
		dir:        b.dir,
		meta: snapshotMeta{
			Version:        snapshotMetaVersion,
			Checkpoint:     checkpoint,
			MaxParallelism: b.maxParallelism,
			KeyGroups:      b.keyGroups,
			States:         b.snapshotStates(),
			KeySchema:      b.keySchema,
		},
		done:        make(chan struct{}),
		materialize: b.materializes(),
		logDir:      b.cl.dir,
		stateDir:    b.dir,
		base:        b.cl.base,
		baseID:      b.cl.baseID,
		chain:       slices.Clone(b.cl.chain),
	}
	// A materializing Persist discards the log (off the barrier path: an
	// unlink of a large file can take milliseconds).
	s.log, b.cl.w = b.cl.w, nil
	if c := b.vcache; c != nil {
		if s.materialize {
			s.frozen, c.dirty = c.dirty, nil
			clear(c.changed)
			c.changed = c.changed[:0]
		} else {
			s.frozen, c.changed, c.spare = c.changed, c.spare, nil
		}
		c.frozenEpoch, c.frozen, c.frozenAll = c.epoch, true, s.materialize
		c.epoch++
		b.last = nil // may be frozen
	}
	b.snap = s
	b.holding = !b.testNoHold
	return s, nil
}

// snapshotStates is every state the snapshot holds: the registered ones and
// those restored but not registered (yet) in this run, which are still in
// Pebble.
func (b *Backend) snapshotStates() []StateInfo {
	out := b.States()
	for _, si := range b.RestoredStates() {
		if _, ok := b.states[si.Name]; !ok {
			out = append(out, si)
		}
	}
	slices.SortFunc(out, func(x, y StateInfo) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// HeldBytes returns the size in bytes of the writes held in the indexed
// batch since the in-flight snapshot's barrier (0 when none is in flight).
// They grow with the write rate times the duration of Persist; the engine
// stops reading input above a bound of its choice until Release.
func (b *Backend) HeldBytes() int {
	if !b.holding || b.batch == nil {
		return 0
	}
	return b.batch.Len()
}

// Holding reports whether a snapshot is in flight (writes are held).
func (b *Backend) Holding() bool { return b.snap != nil }

// Persist is the asynchronous part of the snapshot, safe to run on another
// goroutine while the Backend is in use: it writes the frozen value-cache
// entries to Pebble, flushes the memtables, and makes dir (which must not
// exist) a Pebble checkpoint of the state as of the barrier: hard links to
// the tables, copies of the MANIFEST and OPTIONS, plus SnapshotMetaFile. It
// returns the files of dir. Persist runs once per snapshot; on error it
// removes what it created in dir. Canceling ctx (or Abort) stops it between
// steps; a memtable flush or link in progress is not interrupted.
func (s *Snapshot) Persist(ctx context.Context, dir string) (*SnapshotFiles, error) {
	s.mu.Lock()
	if s.mu.state != snapFrozen {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: checkpoint %d already persisted or aborted", ErrSnapshotAborted, s.checkpoint)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.mu.state, s.mu.cancel = snapPersisting, func() { cancel(errAbort) }
	s.mu.Unlock()

	files, applied, err := s.persist(ctx, dir)
	if err != nil {
		err = fmt.Errorf("statebackend: persist checkpoint %d of %q into %q: %w", s.checkpoint, s.dir, dir, err)
	}
	s.mu.Lock()
	s.mu.state, s.mu.cancel = snapDone, nil
	s.mu.applied, s.mu.files, s.mu.err = applied, files, err
	s.mu.Unlock()
	close(s.done)
	return files, err
}

func (s *Snapshot) step(ctx context.Context, name string) error {
	if s.testHook != nil {
		s.testHook(ctx, name)
	}
	if err := ctx.Err(); err != nil {
		if errors.Is(context.Cause(ctx), errAbort) {
			return ErrSnapshotAborted
		}
		return err
	}
	return nil
}

var errAbort = errors.New("abort")

func (s *Snapshot) persist(ctx context.Context, dir string) (_ *SnapshotFiles, applied bool, _ error) {
	if s.logDir != "" {
		if s.materialize {
			files, err := s.persistBase(ctx, dir)
			return files, false, err
		}
		files, err := s.persistLog(ctx, dir)
		return files, false, err
	}
	if err := s.step(ctx, "apply"); err != nil {
		return nil, false, err
	}
	if err := applyFrozen(s.db, s.frozen); err != nil {
		return nil, false, err
	}
	if err := s.step(ctx, "flush"); err != nil {
		return nil, true, err
	}
	if err := s.db.Flush(); err != nil {
		return nil, true, err
	}
	if err := s.step(ctx, "checkpoint"); err != nil {
		return nil, true, err
	}
	if err := s.db.Checkpoint(dir); err != nil {
		return nil, true, err // Checkpoint removes a directory it created
	}
	files, err := s.finish(ctx, dir)
	if err != nil {
		_ = s.fs.RemoveAll(dir)
		return nil, true, err
	}
	return files, true, nil
}

// finish writes SnapshotMetaFile into the checkpoint directory and lists it.
func (s *Snapshot) finish(ctx context.Context, dir string) (*SnapshotFiles, error) {
	if err := s.step(ctx, "meta"); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(s.meta, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileSync(s.fs, s.fs.PathJoin(dir, SnapshotMetaFile), data); err != nil {
		return nil, err
	}
	if err := syncDir(s.fs, dir); err != nil {
		return nil, err
	}
	files, err := listFiles(s.fs, dir)
	if err != nil {
		return nil, err
	}
	return &SnapshotFiles{Checkpoint: s.checkpoint, Dir: dir, Files: files}, nil
}

// applyFrozen writes the frozen entries to Pebble, in batches of about
// defaultCommitBytes (the apply needs no atomicity: nobody reads these keys
// from Pebble before the snapshot ends, see valueCache).
func applyFrozen(db *pebble.DB, frozen []*cacheEntry) error {
	w := newChunked(db)
	defer w.close()
	for _, e := range frozen {
		if !e.dirty || e.stale { // written back, or replaced, before the barrier
			continue
		}
		kind := pebble.InternalKeyKindDelete
		if e.present {
			kind = pebble.InternalKeyKindSet
		}
		if err := w.write(kind, unsafeBytes(e.key), e.val); err != nil {
			return err
		}
	}
	return w.commit()
}

// Release ends snapshot s after its Persist returned (s.Done() is closed),
// successfully or not, on the task goroutine, between batches: it leaves
// holding mode and commits the held batch. If Persist failed before writing
// the frozen entries, Release writes them first. It returns
// ErrSnapshotNotDone, changing nothing, if Persist has not returned, and the
// commit error, if any (also recorded in Err).
func (b *Backend) Release(s *Snapshot) error {
	if err := b.checkSnap(s); err != nil {
		return err
	}
	select {
	case <-s.done:
	default:
		return fmt.Errorf("%w (checkpoint %d)", ErrSnapshotNotDone, s.checkpoint)
	}
	return b.endSnapshot(s)
}

// Abort ends snapshot s whatever its state, on the task goroutine: a later
// Persist fails with ErrSnapshotAborted, a running one is canceled and
// waited for (it stops at its next step: at most one memtable flush or
// checkpoint). Then it ends the snapshot like Release. The directory of an
// aborted Persist is removed unless its files were already linked; the
// engine deletes checkpoint directories it does not use.
func (b *Backend) Abort(s *Snapshot) error {
	if err := b.checkSnap(s); err != nil {
		return err
	}
	s.mu.Lock()
	switch s.mu.state {
	case snapFrozen:
		s.mu.state, s.mu.err = snapDone, fmt.Errorf("%w (checkpoint %d)", ErrSnapshotAborted, s.checkpoint)
		close(s.done)
	case snapPersisting:
		s.mu.cancel()
	}
	s.mu.Unlock()
	<-s.done
	return b.endSnapshot(s)
}

func (b *Backend) checkSnap(s *Snapshot) error {
	if s == nil || s != b.snap {
		return errors.New("statebackend: snapshot is not in flight on this backend")
	}
	return nil
}

// endSnapshot leaves holding mode once no Persist runs.
func (b *Backend) endSnapshot(s *Snapshot) error {
	s.mu.Lock()
	applied, perr := s.mu.applied, s.mu.err
	s.mu.Unlock()
	b.snap = nil
	b.holding = false
	if s.materialize && !applied && !b.cl.on {
		// The frozen values must reach Pebble before the held batch, whose
		// writes are newer.
		if err := applyFrozen(b.db, s.frozen); err != nil {
			err = fmt.Errorf("statebackend: write frozen state of %q: %w", b.dir, err)
			b.setErr(err)
			return err
		}
	}
	b.endLogging(s, perr)
	if c := b.vcache; c != nil {
		switch {
		case s.materialize && !b.cl.on:
			c.materialized = c.frozenEpoch
		case s.materialize:
			// The entries stay dirty: back into the dirty list, but for
			// those that left the map meanwhile.
			kept := s.frozen[:0]
			for _, e := range s.frozen {
				if e.replaced {
					e.stale = true
				} else if e.dirty && !e.stale {
					kept = append(kept, e)
				}
			}
			clear(s.frozen[len(kept):])
			c.dirty = append(kept, c.dirty...)
		default:
			clear(s.frozen)
			c.spare = s.frozen[:0]
		}
		c.frozen, c.frozenAll = false, false
	}
	s.frozen = nil
	return b.commit()
}

// OpenFromCheckpoint makes dir a copy of the persisted snapshot in
// checkpointDir and opens it. dir must not exist or be empty: the state
// directory of a failed run holds writes made after the checkpoint and is
// never reused (the engine removes it). Tables are hard-linked when dir is
// on the same file system (SSTs are immutable: the checkpoint directory
// stays valid and can be restored again), else copied; the MANIFEST and
// other private files are always copied, since Pebble appends to them.
//
// opts must give the MaxParallelism and KeyGroups stored in the snapshot
// (rescaling is not supported yet). The restored backend checks each state
// registration against the states stored in the snapshot: another kind or
// codec fingerprint fails with ErrIncompatibleState. RestoredStates lists
// them.
//
// Local recovery: the checkpoint directory written by Persist on this
// machine is kept by the engine; if SnapshotFiles.Verify passes against the
// file list in the manifest, it is passed here directly and nothing is
// downloaded.
func OpenFromCheckpoint(dir, checkpointDir string, opts Options) (*Backend, error) {
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	meta, err := readMeta(fs, checkpointDir)
	if err != nil {
		return nil, err
	}
	probe := &Backend{fs: fs}
	if _, err := probe.applyOptions(opts); err != nil {
		return nil, err
	}
	if probe.maxParallelism != meta.MaxParallelism || probe.keyGroups != meta.KeyGroups {
		return nil, fmt.Errorf("statebackend: checkpoint %q holds max parallelism %d, %v; options give %d, %v",
			checkpointDir, meta.MaxParallelism, meta.KeyGroups, probe.maxParallelism, probe.keyGroups)
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("statebackend: create state directory %q: %w", dir, err)
	}
	if names, err := fs.List(dir); err != nil {
		return nil, fmt.Errorf("statebackend: list %q: %w", dir, err)
	} else if len(names) > 0 {
		return nil, fmt.Errorf("statebackend: restore into %q: directory is not empty", dir)
	}
	if err := linkPebbleFiles(fs, checkpointDir, dir); err != nil {
		return nil, err
	}
	// Compactions wait until the logs are replayed (see compactionGate).
	b, err := open(dir, opts, true)
	if err != nil {
		return nil, err
	}
	defer b.compactions.openGate()
	if len(meta.Changelog) > 0 {
		paths, err := logPaths(fs, checkpointDir, meta)
		if err != nil {
			_ = b.Close()
			return nil, err
		}
		cached := map[uint32]bool{}
		for _, si := range meta.States {
			cached[si.ID] = si.Kind == KindValue || si.Kind == KindReducing
		}
		if err := b.replayLogs(paths, cached, nil); err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("statebackend: restore %q: %w", checkpointDir, err)
		}
		if b.cl.on {
			if err := b.adoptChain(checkpointDir, meta); err != nil {
				_ = b.Close()
				return nil, fmt.Errorf("statebackend: restore %q: %w", checkpointDir, err)
			}
		}
	}
	b.restored = make(map[string]StateInfo, len(meta.States))
	for _, si := range meta.States {
		b.restored[si.Name] = si
	}
	return b, nil
}

// logPaths returns the paths of the change logs that meta lists in dir.
func logPaths(fs vfs.FS, dir string, meta *snapshotMeta) ([]string, error) {
	paths := make([]string, len(meta.Changelog))
	for i, name := range meta.Changelog {
		if !isLog(name) || fs.PathBase(name) != name {
			return nil, fmt.Errorf("statebackend: %q: %s lists %q, not a change log", dir, SnapshotMetaFile, name)
		}
		paths[i] = fs.PathJoin(dir, name)
	}
	return paths, nil
}

// linkPebbleFiles puts the Pebble files of the checkpoint directory src into
// the empty directory dir: tables linked (they are immutable and the
// checkpoint stays valid), the MANIFEST and other private files copied.
func linkPebbleFiles(fs vfs.FS, src, dir string) error {
	files, err := listFiles(fs, src)
	if err != nil {
		return err
	}
	for _, f := range files {
		if f.Name == SnapshotMetaFile || isLog(f.Name) {
			continue
		}
		from, to := fs.PathJoin(src, f.Name), fs.PathJoin(dir, f.Name)
		if f.Kind == FileShared {
			err = vfs.LinkOrCopy(fs, from, to)
		} else {
			err = vfs.Copy(fs, from, to)
		}
		if err != nil {
			return fmt.Errorf("statebackend: restore %q into %q: %w", from, dir, err)
		}
	}
	if err := syncDir(fs, dir); err != nil {
		return fmt.Errorf("statebackend: restore into %q: %w", dir, err)
	}
	return nil
}

// RestoredStates returns the states stored in the snapshot the backend was
// restored from (nil if it was opened with Open), sorted by name. A state
// listed here and never registered is state the job no longer uses.
func (b *Backend) RestoredStates() []StateInfo {
	if b.restored == nil {
		return nil
	}
	out := make([]StateInfo, 0, len(b.restored))
	for _, si := range b.restored {
		out = append(out, si)
	}
	slices.SortFunc(out, func(x, y StateInfo) int { return strings.Compare(x.Name, y.Name) })
	return out
}

func readMeta(fs vfs.FS, dir string) (*snapshotMeta, error) {
	f, err := fs.Open(fs.PathJoin(dir, SnapshotMetaFile))
	if err != nil {
		return nil, fmt.Errorf("statebackend: %q is not a snapshot: %w", dir, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("statebackend: read %s of %q: %w", SnapshotMetaFile, dir, err)
	}
	var m snapshotMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("statebackend: %q: corrupt %s: %w", dir, SnapshotMetaFile, err)
	}
	if m.Version < 1 || m.Version > snapshotMetaVersion {
		return nil, fmt.Errorf("statebackend: %q: %s version %d, want 1 to %d", dir, SnapshotMetaFile, m.Version, snapshotMetaVersion)
	}
	return &m, nil
}

func writeFileSync(fs vfs.FS, name string, data []byte) error {
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}

// States returns the states the snapshot holds, sorted by name: those
// registered and those restored but not registered in this run.
func (s *Snapshot) States() []StateInfo { return s.meta.States }

package statebackend

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/batchrepr"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// The changelog (Options.Changelog) makes a checkpoint cost what changed
// since the last one, written once, instead of a pass of every change
// through Pebble's memtable, a flush and compactions.
//
// A snapshot either materializes or logs:
//
//   - Materializing (the first one, after a failed snapshot, and once the
//     logs written since the base, not counting its own log, reach
//     Options.MaxChangelogBytes): the memtable (the writes committed until
//     the barrier) is flushed and checkpointed into
//     STATE_DIR/weir-base-<checkpoint>, and every dirty value-cache entry is
//     written into the base's own log. The entries stay cached and dirty.
//   - Logging: the checkpoint directory holds the base's files, the base's
//     log and the logs of the snapshots since, and a new log: the state
//     writes committed since the previous barrier (logged at each commit;
//     write-backs of the cache are not logged) followed by the value-cache
//     entries changed since then (written by Persist). Dirty cache entries
//     stay dirty: their values reach Pebble when evicted.
//
// OpenFromCheckpoint opens the base and applies the logs in order. Logs are
// immutable, named changelog-<checkpoint>.wlog, and FileShared: storage holds
// each once, referenced by every checkpoint until the next materialization.
//
// Log file format: the magic changelogMagic, then records, each a uvarint
// length and a Pebble batch representation (Set, Merge and Delete
// operations), then the CRC32C (Castagnoli) of all bytes before it, big
// endian, and the magic changelogEnd. (Little endian, a CRC32C right after
// the bytes it covers makes the whole file's CRC32C the same for every log;
// the engine tells files apart by it.)
const (
	changelogDir   = "weir-changelog"
	changelogExt   = ".wlog"
	changelogMagic = "WEIRLOG1"
	changelogEnd   = "WEIREND1"
	basePrefix     = "weir-base-"

	// DefaultMaxChangelogBytes is the default Options.MaxChangelogBytes.
	DefaultMaxChangelogBytes = 32 << 20
	logRecordBytes           = 1 << 20 // frozen entries per record
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// logName is the name of the change log of checkpoint id.
func logName(id uint64) string { return "changelog-" + strconv.FormatUint(id, 10) + changelogExt }

func isLog(name string) bool {
	return strings.HasPrefix(name, "changelog-") && strings.HasSuffix(name, changelogExt)
}

// logRef is a finished change log of the backend.
type logRef struct {
	name string // logName(checkpoint)
	path string // in the backend's changelog directory
	size int64
}

// logWriter appends records to a change log.
type logWriter struct {
	fs   vfs.FS
	path string
	f    vfs.File
	w    *bufio.Writer
	crc  uint32
	n    int64
	err  error
	lenb [binary.MaxVarintLen64]byte
}

func createLog(fs vfs.FS, path string) (*logWriter, error) {
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("create change log: %w", err)
	}
	l := &logWriter{fs: fs, path: path, f: f, w: bufio.NewWriterSize(f, 256<<10)}
	l.write([]byte(changelogMagic))
	if l.err != nil {
		l.discard()
		return nil, l.err
	}
	return l, nil
}

func (l *logWriter) write(p []byte) {
	if l.err != nil {
		return
	}
	l.crc = crc32.Update(l.crc, castagnoli, p)
	n, err := l.w.Write(p)
	l.n += int64(n)
	if err != nil {
		l.err = fmt.Errorf("write change log %q: %w", l.path, err)
	}
}

// record appends one batch representation.
func (l *logWriter) record(repr []byte) error {
	n := binary.PutUvarint(l.lenb[:], uint64(len(repr)))
	l.write(l.lenb[:n])
	l.write(repr)
	return l.err
}

// finish writes the trailer, syncs and closes the file, and returns its size.
func (l *logWriter) finish() (int64, error) {
	var t [4]byte
	binary.BigEndian.PutUint32(t[:], l.crc)
	l.write(t[:])
	l.write([]byte(changelogEnd))
	if l.err == nil {
		if err := l.w.Flush(); err != nil {
			l.err = err
		} else if err := l.f.Sync(); err != nil {
			l.err = err
		}
	}
	if err := l.f.Close(); err != nil && l.err == nil {
		l.err = err
	}
	l.f = nil
	if l.err != nil {
		return 0, fmt.Errorf("finish change log %q: %w", l.path, l.err)
	}
	return l.n, nil
}

// discard closes and removes an unfinished log.
func (l *logWriter) discard() {
	if l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
	_ = l.fs.Remove(l.path)
}

// writeFrozen appends the frozen value-cache entries as records, encoded
// as Pebble batches (header, then per entry the kind, the key and, for a
// set, the value, each string with a uvarint length) in a reused buffer.
// With dirtyOnly it skips entries that are clean or stale (a materializing
// snapshot's list of dirty entries).
func writeFrozen(l *logWriter, frozen []*cacheEntry, dirtyOnly bool) error {
	buf := make([]byte, batchrepr.HeaderLen, logRecordBytes+64<<10)
	var count uint32
	flush := func() error {
		binary.LittleEndian.PutUint32(buf[8:batchrepr.HeaderLen], count)
		err := l.record(buf)
		buf, count = buf[:batchrepr.HeaderLen], 0
		return err
	}
	for _, e := range frozen {
		if dirtyOnly && (!e.dirty || e.stale) {
			continue
		}
		if e.present {
			buf = append(buf, byte(pebble.InternalKeyKindSet))
		} else {
			buf = append(buf, byte(pebble.InternalKeyKindDelete))
		}
		buf = binary.AppendUvarint(buf, uint64(len(e.key)))
		buf = append(buf, e.key...)
		if e.present {
			buf = binary.AppendUvarint(buf, uint64(len(e.val)))
			buf = append(buf, e.val...)
		}
		count++
		if len(buf) >= logRecordBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if count > 0 {
		return flush()
	}
	return l.err
}

var errCorruptLog = errors.New("corrupt change log")

// readLog returns the records of the change log at path, checking its
// framing and checksum.
func readLog(fs vfs.FS, path string) ([][]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", path, err)
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("read %q: %w", path, err)
	}
	return parseLog(path, data)
}

func parseLog(path string, data []byte) ([][]byte, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q (%d bytes): %s", errCorruptLog, path, len(data), fmt.Sprintf(format, args...))
	}
	tail := 4 + len(changelogEnd)
	if len(data) < len(changelogMagic)+tail || string(data[:len(changelogMagic)]) != changelogMagic {
		return nil, bad("no %s header", changelogMagic)
	}
	if string(data[len(data)-len(changelogEnd):]) != changelogEnd {
		return nil, bad("no %s trailer (truncated?)", changelogEnd)
	}
	body := data[:len(data)-tail]
	want := binary.BigEndian.Uint32(data[len(body):])
	if got := crc32.Checksum(body, castagnoli); got != want {
		return nil, bad("CRC32C %08x, trailer says %08x", got, want)
	}
	var recs [][]byte
	for rest := body[len(changelogMagic):]; len(rest) > 0; {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, bad("record at byte %d: bad length", len(body)-len(rest))
		}
		rec := rest[k : k+int(n)]
		if _, ok := batchrepr.ReadHeader(rec); !ok {
			return nil, bad("record at byte %d: not a batch", len(body)-len(rest))
		}
		recs = append(recs, rec)
		rest = rest[k+int(n):]
	}
	return recs, nil
}

// replayOp is the net effect of a key's operations in the logs.
type replayOp struct {
	kind pebble.InternalKeyKind // Set, Delete, or Merge (operands on top of Pebble's value)
	val  []byte
}

// replayLogs applies the change logs at paths, in order, to the backend
// just opened on their base. Sets and deletes of value and reducing state
// (cached[state id]) go into the value cache as dirty entries, whatever its
// capacity: evictions write the excess to Pebble while the job runs,
// instead of delaying its first record. The other operations are folded per
// key (the last Set or Delete wins, merge operands concatenate as
// pebble.DefaultMerger does) and written to Pebble once per key.
//
// Cached entries alias the logs' bytes (keys and values capped to their
// length), which are never modified: no allocation per value. With keep,
// operations on keys of other key groups are skipped (a rescaled restore).
func (b *Backend) replayLogs(paths []string, cached map[uint32]bool, keep *KeyGroupRange) error {
	var (
		recs  [][]byte
		total int
	)
	for _, path := range paths {
		rs, err := readLog(b.fs, path)
		if err != nil {
			return err
		}
		for _, r := range rs {
			h, _ := batchrepr.ReadHeader(r)
			total += int(h.Count)
		}
		recs = append(recs, rs...)
	}
	c := b.vcache
	if c != nil && len(c.m) == 0 {
		c.m = make(map[string]*cacheEntry, total)
		c.dirty = make([]*cacheEntry, 0, total)
		c.bytes = 0
	}
	ops := map[string]*replayOp{}
	// Restored entries are allocated 1024 at a time (an entry keeps its
	// block alive until all its neighbours are evicted or replaced).
	var slab []cacheEntry
	for i, rec := range recs {
		r := batchrepr.Read(rec)
		for {
			kind, k, v, ok, err := r.Next()
			if err != nil {
				return fmt.Errorf("%w: record %d of %d: %v", errCorruptLog, i, len(recs), err)
			}
			if !ok {
				break
			}
			if keep != nil && (len(k) < 2 || !keep.Contains(int(binary.BigEndian.Uint16(k)))) {
				continue
			}
			if c != nil && len(k) >= 6 && cached[binary.BigEndian.Uint32(k[2:6])] {
				err = c.replay(ops, &slab, kind, k, v)
			} else {
				err = foldOp(ops, kind, k, v)
			}
			if err != nil {
				return fmt.Errorf("%w: record %d of %d: %v", errCorruptLog, i, len(recs), err)
			}
		}
	}
	w := newChunked(b.db)
	defer w.close()
	for k, op := range ops {
		if err := w.write(op.kind, unsafeBytes(k), op.val); err != nil {
			return err
		}
	}
	return w.commit()
}

// chunked writes into a batch of db that it commits every
// defaultCommitBytes (for writes that need no atomicity) and at commit.
type chunked struct {
	db    *pebble.DB
	batch *pebble.Batch
}

func newChunked(db *pebble.DB) *chunked { return &chunked{db: db, batch: db.NewBatch()} }

// write adds a Set, Delete or Merge.
func (c *chunked) write(kind pebble.InternalKeyKind, k, v []byte) error {
	var err error
	switch kind {
	case pebble.InternalKeyKindSet:
		err = c.batch.Set(k, v, nil)
	case pebble.InternalKeyKindDelete:
		err = c.batch.Delete(k, nil)
	default:
		err = c.batch.Merge(k, v, nil)
	}
	if err != nil || c.batch.Len() < defaultCommitBytes {
		return err
	}
	if err := c.batch.Commit(pebble.NoSync); err != nil {
		return err
	}
	c.batch.Reset()
	return nil
}

func (c *chunked) commit() error {
	if c.batch.Empty() {
		return nil
	}
	return c.batch.Commit(pebble.NoSync)
}

func (c *chunked) close() { _ = c.batch.Close() }

// replay applies one logged operation of a cached state to the cache (ops
// holds the keys that a merge took out of it).
func (c *valueCache) replay(ops map[string]*replayOp, slab *[]cacheEntry, kind pebble.InternalKeyKind, k, v []byte) error {
	if kind == pebble.InternalKeyKindMerge {
		// Not written by value or reducing state; fold it on top of the
		// cached value in ops, like any other state.
		if e, ok := c.m[string(k)]; ok {
			op := &replayOp{kind: pebble.InternalKeyKindDelete}
			if e.present {
				op.kind, op.val = pebble.InternalKeyKindSet, e.val
			}
			ops[e.key] = op
			delete(c.m, e.key)
			c.drop(e)
			c.bytes -= e.size()
		}
		return foldOp(ops, kind, k, v)
	}
	if kind != pebble.InternalKeyKindSet && kind != pebble.InternalKeyKindDelete {
		return fmt.Errorf("unexpected operation %v", kind)
	}
	if len(ops) > 0 {
		delete(ops, string(k))
	}
	// A new entry every time, replacing any earlier one of the key. The
	// lookup misses the processor's caches (it was most of the replay);
	// the assignment after it finds the same slot in them. Entries are
	// listed as dirty in log order; one that is replaced is marked stale
	// (lists skip stale entries).
	if len(*slab) == 0 {
		*slab = make([]cacheEntry, 1024)
	}
	e := &(*slab)[0]
	*slab = (*slab)[1:]
	*e = cacheEntry{key: unsafe.String(unsafe.SliceData(k), len(k)), dirty: true, epoch: c.epoch}
	if kind == pebble.InternalKeyKindSet {
		e.present, e.val = true, v[:len(v):len(v)]
	}
	old := c.m[e.key]
	c.m[e.key] = e
	if old != nil {
		c.drop(old)
		c.bytes -= old.size()
	}
	c.dirty = append(c.dirty, e)
	c.bytes += e.size()
	return nil
}

// adoptChain makes the restored checkpoint in checkpointDir (its Pebble
// files and its logs) the backend's base and change logs, so that the next
// snapshot logs on top of them like the run that took it.
func (b *Backend) adoptChain(checkpointDir string, meta *snapshotMeta) error {
	base := b.fs.PathJoin(b.dir, basePrefix+strconv.FormatUint(meta.Base, 10))
	if err := b.fs.MkdirAll(base, 0o755); err != nil {
		return err
	}
	files, err := listFiles(b.fs, checkpointDir)
	if err != nil {
		return err
	}
	sizes := map[string]int64{}
	for _, f := range files {
		sizes[f.Name] = f.Size
		if f.Name == SnapshotMetaFile || isLog(f.Name) {
			continue
		}
		if err := vfs.LinkOrCopy(b.fs, b.fs.PathJoin(checkpointDir, f.Name), b.fs.PathJoin(base, f.Name)); err != nil {
			return err
		}
	}
	var chain []logRef
	var total int64
	for _, name := range meta.Changelog {
		r := logRef{name: name, path: b.fs.PathJoin(b.cl.dir, name), size: sizes[name]}
		if err := vfs.LinkOrCopy(b.fs, b.fs.PathJoin(checkpointDir, name), r.path); err != nil {
			return err
		}
		chain = append(chain, r)
		total += r.size
	}
	b.cl.base, b.cl.baseID, b.cl.chain, b.cl.bytes, b.cl.needBase = base, meta.Base, chain, total, false
	return nil
}

// foldOp folds one operation into ops.
func foldOp(ops map[string]*replayOp, kind pebble.InternalKeyKind, k, v []byte) error {
	switch kind {
	case pebble.InternalKeyKindSet:
		ops[string(k)] = &replayOp{kind: kind, val: v}
	case pebble.InternalKeyKindDelete:
		ops[string(k)] = &replayOp{kind: kind}
	case pebble.InternalKeyKindMerge:
		op := ops[string(k)]
		switch {
		case op == nil:
			ops[string(k)] = &replayOp{kind: kind, val: v}
		case op.kind == pebble.InternalKeyKindDelete:
			// A merge onto nothing is its operand.
			op.kind, op.val = pebble.InternalKeyKindSet, v
		default:
			op.val = append(op.val[:len(op.val):len(op.val)], v...)
		}
	default:
		return fmt.Errorf("unexpected operation %v", kind)
	}
	return nil
}

// logOp records a state write for the change log.
func (b *Backend) logOp(kind pebble.InternalKeyKind, key, val []byte) {
	if !b.cl.on {
		return
	}
	if len(b.cl.ops) == 0 {
		b.cl.ops = append(b.cl.ops, make([]byte, batchrepr.HeaderLen)...)
	}
	b.cl.ops = append(b.cl.ops, byte(kind))
	b.cl.ops = binary.AppendUvarint(b.cl.ops, uint64(len(key)))
	b.cl.ops = append(b.cl.ops, key...)
	if kind != pebble.InternalKeyKindDelete {
		b.cl.ops = binary.AppendUvarint(b.cl.ops, uint64(len(val)))
		b.cl.ops = append(b.cl.ops, val...)
	}
	b.cl.count++
}

// logCommit appends the writes logged since the last commit to this
// epoch's change log, when the next snapshot may log (else the base will
// hold them). Write-backs of the value cache are not logged (writeEntry).
func (b *Backend) logCommit() error {
	if b.cl.count == 0 {
		return nil
	}
	ops := b.cl.ops
	binary.LittleEndian.PutUint32(ops[8:batchrepr.HeaderLen], b.cl.count)
	b.cl.ops, b.cl.count = ops[:0], 0
	if b.cl.needBase || b.closed {
		return nil
	}
	if b.cl.w == nil {
		w, err := b.newLog()
		if err != nil {
			return err
		}
		b.cl.w = w
	}
	return b.cl.w.record(ops)
}

func (b *Backend) newLog() (*logWriter, error) {
	b.cl.seq++
	return createLog(b.fs, b.fs.PathJoin(b.cl.dir, "open-"+strconv.Itoa(b.cl.seq)+changelogExt))
}

// materializes reports whether the next snapshot materializes: none did
// yet or the last one failed, or the logs written since the base, not
// counting the base's own log (the dirty cache entries at the base, which a
// new base would log again), reach MaxChangelogBytes. A restore replays the
// base's log and at most that much more, plus one checkpoint's log.
func (b *Backend) materializes() bool {
	if !b.cl.on || b.cl.needBase || len(b.cl.chain) == 0 {
		return true
	}
	n := b.cl.bytes - b.cl.chain[0].size
	if b.cl.w != nil {
		n += b.cl.w.n
	}
	return n >= b.cl.maxBytes
}

// endLogging updates the changelog state when snapshot s ends; err is what
// its Persist returned (ErrSnapshotAborted if it never ran).
func (b *Backend) endLogging(s *Snapshot, err error) {
	if !b.cl.on {
		return
	}
	if s.log != nil && s.log.f != nil {
		s.log.discard() // Persist never ran
	}
	if err != nil {
		b.cl.needBase = true
		return
	}
	if s.materialize {
		// persistBase removed the old base and logs.
		b.cl.base, b.cl.baseID = s.newBase, s.checkpoint
		b.cl.chain, b.cl.bytes, b.cl.needBase = nil, 0, false
	}
	b.cl.chain = append(b.cl.chain, s.newLog)
	b.cl.bytes += s.newLog.size
}

// persistLog is Persist of a logging snapshot: it finishes the change log
// (the batches committed since the previous barrier, then the entries
// changed since), then links the base, the earlier logs and the new one
// into dir.
func (s *Snapshot) persistLog(ctx context.Context, dir string) (*SnapshotFiles, error) {
	if err := s.step(ctx, "log"); err != nil {
		return nil, err
	}
	ref, err := s.writeLog(s.log, false)
	if err != nil {
		return nil, err
	}
	files, err := s.link(ctx, dir, s.base, s.baseID, append(s.chain, ref))
	if err != nil {
		_ = s.fs.RemoveAll(dir)
		_ = s.fs.Remove(ref.path)
		return nil, err
	}
	s.newLog = ref
	return files, nil
}

// persistBase is Persist of a materializing snapshot with a changelog: it
// flushes the batches committed until the barrier from the memtable, makes a
// Pebble checkpoint of them in a new base directory, and logs every dirty
// cache entry into the base's own log. The cache keeps the entries (and
// they stay dirty): a base costs a memtable flush and one log of the dirty
// set, however many entries that pass through Pebble would rewrite.
func (s *Snapshot) persistBase(ctx context.Context, dir string) (*SnapshotFiles, error) {
	if s.log != nil {
		s.log.discard() // the base holds these batches
		s.log = nil
	}
	if err := s.step(ctx, "flush"); err != nil {
		return nil, err
	}
	if err := s.db.Flush(); err != nil {
		return nil, err
	}
	if err := s.step(ctx, "checkpoint"); err != nil {
		return nil, err
	}
	base := s.fs.PathJoin(s.stateDir, basePrefix+strconv.FormatUint(s.checkpoint, 10))
	_ = s.fs.RemoveAll(base)
	if err := s.db.Checkpoint(base); err != nil {
		return nil, err // Checkpoint removes a directory it created
	}
	if err := s.step(ctx, "log"); err != nil {
		_ = s.fs.RemoveAll(base)
		return nil, err
	}
	ref, err := s.writeLog(nil, true)
	if err != nil {
		_ = s.fs.RemoveAll(base)
		return nil, err
	}
	files, err := s.link(ctx, dir, base, s.checkpoint, []logRef{ref})
	if err != nil {
		_ = s.fs.RemoveAll(dir)
		_ = s.fs.RemoveAll(base)
		_ = s.fs.Remove(ref.path)
		return nil, err
	}
	s.newBase, s.newLog = base, ref
	// The backend switches to the new base whatever happens next; the
	// checkpoint directories that use the old one hold links.
	if s.base != "" && s.base != base {
		_ = s.fs.RemoveAll(s.base)
	}
	for _, r := range s.chain {
		if r.path != ref.path {
			_ = s.fs.Remove(r.path)
		}
	}
	return files, nil
}

// writeLog appends the frozen entries to w (a new log if nil) and finishes
// it as the log of this checkpoint.
func (s *Snapshot) writeLog(w *logWriter, dirtyOnly bool) (logRef, error) {
	if w == nil {
		var err error
		w, err = createLog(s.fs, s.fs.PathJoin(s.logDir, "open-"+strconv.FormatUint(s.checkpoint, 10)+"-frozen"+changelogExt))
		if err != nil {
			return logRef{}, err
		}
	}
	s.log = w
	if err := writeFrozen(w, s.frozen, dirtyOnly); err != nil {
		w.discard()
		return logRef{}, err
	}
	size, err := w.finish()
	if err != nil {
		w.discard()
		return logRef{}, err
	}
	ref := logRef{name: logName(s.checkpoint), path: s.fs.PathJoin(s.logDir, logName(s.checkpoint)), size: size}
	if err := s.fs.Rename(w.path, ref.path); err != nil {
		_ = s.fs.Remove(w.path)
		return logRef{}, err
	}
	return ref, nil
}

// link makes dir hold the files of base and the logs, and the meta file.
func (s *Snapshot) link(ctx context.Context, dir, base string, baseID uint64, logs []logRef) (*SnapshotFiles, error) {
	if err := s.step(ctx, "link"); err != nil {
		return nil, err
	}
	if err := s.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	names, err := s.fs.List(base)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if err := vfs.LinkOrCopy(s.fs, s.fs.PathJoin(base, name), s.fs.PathJoin(dir, name)); err != nil {
			return nil, err
		}
	}
	for _, r := range logs {
		if err := vfs.LinkOrCopy(s.fs, r.path, s.fs.PathJoin(dir, r.name)); err != nil {
			return nil, err
		}
		s.meta.Changelog = append(s.meta.Changelog, r.name)
	}
	s.meta.Base = baseID
	return s.finish(ctx, dir)
}
